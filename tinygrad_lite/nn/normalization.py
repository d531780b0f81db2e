"""Normalization layers: BatchNorm1d, BatchNorm2d, LayerNorm.

Batch normalization (Ioffe & Szegedy, 2015), per channel c:

    x_hat = (x - mean_c) / sqrt(var_c + eps),    y = gamma_c * x_hat + beta_c

While training, mean_c and var_c are the statistics of the current batch (over N, and H, W or L;
the biased variance), and gradients flow through them -- autograd differentiates the composition,
no hand-written backward. Running estimates are updated on the side:
running = (1 - momentum) * running + momentum * batch_stat (the unbiased variance for
running_var; ``momentum=None`` gives a cumulative average). In eval mode those running estimates
replace the batch statistics, so a prediction does not depend on the rest of the batch.

Layer normalization normalizes each sample over its last dimensions instead, so it is the same in
training and evaluation.

Default init (PyTorch): gamma (``weight``) = 1, beta (``bias``) = 0, running_mean = 0,
running_var = 1, num_batches_tracked = 0.

Next: recurrent.py.
"""

import numpy as np

from ..autograd import no_grad
from ..errors import ShapeError
from ..tensor import Tensor, get_default_dtype
from . import init
from .linear import _empty
from .module import Module


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5, axis=1, unbiased_running_var=True):
    """Batch normalization of ``x`` with one statistic per index of ``axis`` (PyTorch's
    ``F.batch_norm`` with a choice of channel axis; the Keras layer uses ``axis=-1``).

    Training (or no running estimates given): normalize by the batch mean and biased variance over
    every other axis; gradients flow through both. If running estimates are given, they are
    updated in place (no gradient): ``running = (1 - momentum) * running + momentum * batch``,
    with the unbiased variance ``var * n / (n - 1)`` (PyTorch) or, with
    ``unbiased_running_var=False``, the biased one (Keras). Otherwise normalize by the running
    estimates. Then ``y = weight * x_hat + bias`` (each optional).

    >>> x = Tensor(np.array([[1.0, 10.0], [3.0, 30.0]]))
    >>> batch_norm(x, None, None, training=True, eps=0.0).numpy().tolist()
    [[-1.0, -1.0], [1.0, 1.0]]
    """
    axis = axis % x.ndim
    axes = tuple(i for i in range(x.ndim) if i != axis)
    shape = tuple(-1 if i == axis else 1 for i in range(x.ndim))
    if training or running_mean is None:
        n = x.size // x.shape[axis]
        mean = x.mean(axis=axes, keepdims=True)
        var = x.var(axis=axes, keepdims=True, correction=0)
        if training and running_mean is not None:
            if unbiased_running_var and n <= 1:
                raise ShapeError(f"batch_norm: expected more than 1 value per channel when "
                                 f"training, got input shape {x.shape}")
            with no_grad():
                rm, rv = running_mean, running_var
                batch_mean = mean.data.reshape(-1).astype(rm.dtype)
                batch_var = var.data.reshape(-1).astype(rv.dtype)
                if unbiased_running_var:
                    batch_var = batch_var * (n / (n - 1))
                rm.data = (1 - momentum) * rm.data + momentum * batch_mean
                rv.data = (1 - momentum) * rv.data + momentum * batch_var
    else:
        mean = running_mean.reshape(shape)
        var = running_var.reshape(shape)
    y = (x - mean) / (var + eps).sqrt()
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y


class _BatchNorm(Module):
    _ndims = ()

    def __init__(
        self,
        num_features,
        eps=1e-5,
        momentum=0.1,
        affine=True,
        track_running_stats=True,
        dtype=None,
    ):
        super().__init__()
        self.num_features, self.eps, self.momentum = int(num_features), eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        dt = np.dtype(dtype or get_default_dtype())
        if affine:
            self.weight = _empty((num_features,), dt)
            self.bias = _empty((num_features,), dt)
            init.ones_(self.weight)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(num_features, dt)))
            self.register_buffer("running_var", Tensor(np.ones(num_features, dt)))
            self.register_buffer("num_batches_tracked", Tensor(np.zeros((), np.int64)))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def forward(self, x):
        name = type(self).__name__
        if x.ndim not in self._ndims or x.shape[1] != self.num_features:
            raise ShapeError(
                f"{name}: expected input of {' or '.join(map(str, self._ndims))} "
                f"dimensions with {self.num_features} channels on axis 1, got shape "
                f"{x.shape}"
            )
        if self.training and x.size // self.num_features <= 1:
            raise ShapeError(
                f"{name}: expected more than 1 value per channel when training, "
                f"got input shape {x.shape}; use a larger batch or eval()"
            )
        m = self.momentum
        update = self.training and self.track_running_stats
        if update:
            with no_grad():
                nbt = self.num_batches_tracked
                nbt.data = nbt.xp.asarray(nbt.data + 1)
            if m is None:   # cumulative average
                m = 1.0 / float(self.num_batches_tracked.data)
        use_running = self.track_running_stats
        return batch_norm(
            x,
            self.running_mean if use_running else None,
            self.running_var if use_running else None,
            self.weight,
            self.bias,
            training=self.training,
            momentum=m,
            eps=self.eps,
            axis=1,
        )

    def extra_repr(self):
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    """Batch normalization over (N, C) or (N, C, L) input, statistics per channel C.

    >>> bn = BatchNorm1d(3)
    >>> y = bn(Tensor(np.random.randn(8, 3)))      # each column now has mean 0, variance ~1
    """

    _ndims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalization over (N, C, H, W) input, statistics per channel over N, H, W."""

    _ndims = (4,)


class LayerNorm(Module):
    """Normalize each sample over its last ``len(normalized_shape)`` axes, then scale and shift:
    y = (x - mean) / sqrt(var + eps) * weight + bias (biased variance, as PyTorch).

    >>> LayerNorm(4)(Tensor(np.random.randn(2, 4))).shape
    (2, 4)
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, dtype=None):
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(int(s) for s in normalized_shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        if elementwise_affine:
            self.weight = _empty(self.normalized_shape, dtype)
            init.ones_(self.weight)
            if bias:
                self.bias = _empty(self.normalized_shape, dtype)
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x):
        k = len(self.normalized_shape)
        if tuple(x.shape[x.ndim - k :]) != self.normalized_shape or x.ndim < k:
            raise ShapeError(
                f"LayerNorm: the input's last dimensions must be "
                f"{self.normalized_shape}, got shape {x.shape}"
            )
        axes = tuple(range(x.ndim - k, x.ndim))
        mean = x.mean(axis=axes, keepdims=True)
        var = x.var(axis=axes, keepdims=True, correction=0)
        y = (x - mean) / (var + self.eps).sqrt()
        if self.weight is not None:
            y = y * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y

    def extra_repr(self):
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
        )


class GroupNorm(Module):
    """Group normalization: split the C channels of each sample into ``num_groups`` groups,
    normalize each group over its channels and positions (biased variance), then scale and
    shift per channel: y = (x - mean_g) / sqrt(var_g + eps) * weight[c] + bias[c].
    Independent of the batch size (unlike BatchNorm). Keys ``weight``, ``bias`` (C,).

    >>> GroupNorm(2, 4)(Tensor(np.random.randn(3, 4, 5))).shape
    (3, 4, 5)
    """

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, dtype=None):
        super().__init__()
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels must be divisible by num_groups, got "
                             f"num_channels={num_channels}, num_groups={num_groups}")
        self.num_groups, self.num_channels, self.eps, self.affine = (num_groups, num_channels,
                                                                     eps, affine)
        if affine:
            self.weight = _empty((num_channels,), dtype)
            self.bias = _empty((num_channels,), dtype)
            init.ones_(self.weight)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x):
        from .spatial import group_norm

        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ShapeError(f"GroupNorm: expected input (N, {self.num_channels}, ...), got "
                             f"shape {x.shape}")
        return group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"
