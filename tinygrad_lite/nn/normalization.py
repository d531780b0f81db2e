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
from ..tensor import _DEFAULT_FLOAT, Tensor
from . import init
from .linear import _empty
from .module import Module


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
        dt = np.dtype(dtype or _DEFAULT_FLOAT)
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
        axes = (0,) + tuple(range(2, x.ndim))
        shape = (1, -1) + (1,) * (x.ndim - 2)
        use_batch = self.training or not self.track_running_stats
        if use_batch:
            n = x.size // self.num_features
            if self.training and n <= 1:
                raise ShapeError(
                    f"{name}: expected more than 1 value per channel when training, "
                    f"got input shape {x.shape}; use a larger batch or eval()"
                )
            mean = x.mean(axis=axes, keepdims=True)
            var = x.var(axis=axes, keepdims=True)
            if self.training and self.track_running_stats:
                self._update_running(mean, var, n)
        else:
            mean = self.running_mean.reshape(shape)
            var = self.running_var.reshape(shape)
        y = (x - mean) / (var + self.eps).sqrt()
        if self.affine:
            y = y * self.weight.reshape(shape) + self.bias.reshape(shape)
        return y

    def _update_running(self, mean, var, n):
        with no_grad():
            nbt = self.num_batches_tracked
            nbt.data = nbt.xp.asarray(nbt.data + 1)
            m = self.momentum
            if m is None:
                m = 1.0 / float(self.num_batches_tracked.data)
            rm, rv = self.running_mean, self.running_var
            batch_mean = mean.data.reshape(-1).astype(rm.dtype)
            batch_var = var.data.reshape(-1).astype(rv.dtype) * (n / (n - 1))
            rm.data = (1 - m) * rm.data + m * batch_mean
            rv.data = (1 - m) * rv.data + m * batch_var

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
        var = x.var(axis=axes, keepdims=True)
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
