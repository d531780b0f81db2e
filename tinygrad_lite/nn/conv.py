"""Convolution layers over NCHW input: Conv2d and ConvTranspose2d.

Default init (PyTorch): weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), where fan_in is
``weight.shape[1] * kh * kw`` -- in_channels/groups * kh * kw for Conv2d and (PyTorch's choice)
out_channels/groups * kh * kw for ConvTranspose2d.

Next: pooling.py.
"""

import numpy as np

from ..ops.nn import pair
from . import functional as F
from . import init
from .linear import _empty
from .module import Module
from .spatial import _tup


class _ConvNd(Module):
    def _setup(self, w_shape, out_channels, bias, dtype):
        self.weight = _empty(w_shape, dtype)
        if bias:
            self.bias = _empty((out_channels,), dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        fan_in = int(np.prod(self.weight.shape[1:]))
        init.default_uniform_(self.weight, fan_in)
        if self.bias is not None:
            init.default_uniform_(self.bias, fan_in)

    def _check_channels(self, in_channels, out_channels, groups):
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(
                f"{type(self).__name__}: groups must divide in_channels and "
                f"out_channels, got groups={groups}, in_channels={in_channels}, "
                f"out_channels={out_channels}"
            )

    def extra_repr(self):
        s = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}"
        )
        if self.padding not in ((0,), (0, 0), (0, 0, 0)):
            s += f", padding={self.padding}"
        if set(self.dilation) != {1}:
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class Conv2d(_ConvNd):
    """2-D convolution (cross-correlation) with weight (out, in/groups, kh, kw):

    y[n, o] = b[o] + sum_c sum_{i,j} w[o, c, i, j] * x_pad[n, c, p*s + i*d, q*s + j*d]

    H_out = floor((H + 2 pad - d (k - 1) - 1) / s) + 1. ``padding='same'`` keeps H and W (stride
    1; an even kernel puts the extra row/column at the bottom/right, as PyTorch);
    ``padding='valid'`` is 0.

    >>> Conv2d(3, 8, 3, padding="same")(Tensor(np.zeros((1, 3, 5, 5), "f"))).shape
    (1, 8, 5, 5)
    """

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups=1,
        bias=True,
        padding_mode="zeros",
        dtype=None,
    ):
        super().__init__()
        if padding_mode not in _PAD_MODES:
            raise ValueError(f"Conv2d: padding_mode must be one of {_PAD_MODES}, got "
                             f"{padding_mode!r}")
        self.padding_mode = padding_mode
        self._check_channels(in_channels, out_channels, groups)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = pair(kernel_size, "kernel_size", "Conv2d")
        self.stride = pair(stride, "stride", "Conv2d")
        self.dilation = pair(dilation, "dilation", "Conv2d")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(
                    f"Conv2d: padding must be an int, a pair, 'same' or 'valid', got {padding!r}"
                )
            if padding == "same" and self.stride != (1, 1):
                raise ValueError(f"Conv2d: padding='same' needs stride 1, got stride={self.stride}")
            self.padding = padding if padding == "same" else (0, 0)
        else:
            self.padding = pair(padding, "padding", "Conv2d")
        self._setup(
            (out_channels, in_channels // groups) + self.kernel_size, out_channels, bias, dtype
        )

    def forward(self, x):
        padding = self.padding
        if self.padding_mode != "zeros":
            x, padding = _mode_pad(x, self.padding, self.kernel_size, self.dilation,
                                   self.padding_mode), 0
        return F.conv2d(x, self.weight, self.bias, self.stride, padding, self.dilation,
                        self.groups)


class ConvTranspose2d(_ConvNd):
    """Transposed convolution (the gradient of Conv2d with respect to its input), used to
    upsample: weight (in, out/groups, kh, kw);
    H_out = (H - 1) s - 2 pad + d (k - 1) + output_padding + 1."""

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        stride=1,
        padding=0,
        output_padding=0,
        groups=1,
        bias=True,
        dilation=1,
        dtype=None,
    ):
        super().__init__()
        self._check_channels(in_channels, out_channels, groups)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = pair(kernel_size, "kernel_size", "ConvTranspose2d")
        self.stride = pair(stride, "stride", "ConvTranspose2d")
        self.padding = pair(padding, "padding", "ConvTranspose2d")
        self.output_padding = pair(output_padding, "output_padding", "ConvTranspose2d")
        self.dilation = pair(dilation, "dilation", "ConvTranspose2d")
        self._setup(
            (in_channels, out_channels // groups) + self.kernel_size, out_channels, bias, dtype
        )

    def forward(self, x):
        return F.conv_transpose2d(
            x,
            self.weight,
            self.bias,
            self.stride,
            self.padding,
            self.output_padding,
            self.groups,
            self.dilation,
        )


# ------------------------------------------------------------------ 1-D and 3-D ---

_PAD_MODES = ("zeros", "reflect", "replicate", "circular")


class _ConvN(_ConvNd):
    """Conv1d / Conv3d: the same layer over ``nd`` spatial axes."""

    nd = 0

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", dtype=None):
        super().__init__()
        name, nd = type(self).__name__, self.nd
        if padding_mode not in _PAD_MODES:
            raise ValueError(f"{name}: padding_mode must be one of {_PAD_MODES}, got "
                             f"{padding_mode!r}")
        self._check_channels(in_channels, out_channels, groups)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = _tup(kernel_size, nd, "kernel_size", name)
        self.stride = _tup(stride, nd, "stride", name)
        self.dilation = _tup(dilation, nd, "dilation", name)
        self.padding_mode = padding_mode
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{name}: padding must be an int, a tuple, 'same' or 'valid', "
                                 f"got {padding!r}")
            if padding == "same" and self.stride != (1,) * nd:
                raise ValueError(f"{name}: padding='same' needs stride 1, got "
                                 f"stride={self.stride}")
            self.padding = padding if padding == "same" else (0,) * nd
        else:
            self.padding = _tup(padding, nd, "padding", name)
        self._setup((out_channels, in_channels // groups) + self.kernel_size, out_channels, bias,
                    dtype)

    def forward(self, x):
        fn = F.conv1d if self.nd == 1 else F.conv3d
        padding = self.padding
        if self.padding_mode != "zeros":
            x, padding = _mode_pad(x, self.padding, self.kernel_size, self.dilation,
                                   self.padding_mode), 0
        return fn(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)

    def extra_repr(self):
        s = super().extra_repr()
        return s if self.padding_mode == "zeros" else s + f", padding_mode={self.padding_mode!r}"


def _mode_pad(x, padding, kernel, dilation, mode):
    """Explicit reflect/replicate/circular padding (PyTorch's padding_mode), last axis first."""
    if padding == "same":
        pads = []
        for k, d in zip(kernel, dilation):
            t = d * (k - 1)
            pads.append((t // 2, t - t // 2))
    else:
        pads = [(p, p) for p in padding]
    flat = tuple(v for lo_hi in reversed(pads) for v in lo_hi)
    return F.pad(x, flat, mode=mode)


class Conv1d(_ConvN):
    """1-D convolution over (N, C, L), weight (out, in/groups, k) (PyTorch's layer and keys):
    y[n, o, t] = b[o] + sum_{c,j} w[o, c, j] x_pad[n, c, t*s + j*d].
    ``padding_mode`` 'zeros' (default), 'reflect', 'replicate' or 'circular'.

    >>> Conv1d(3, 8, 5, padding="same")(Tensor(np.zeros((2, 3, 10), "f"))).shape
    (2, 8, 10)
    """

    nd = 1


class Conv3d(_ConvN):
    """3-D convolution over (N, C, D, H, W), weight (out, in/groups, kd, kh, kw) (PyTorch's layer
    and keys); options as Conv1d.

    >>> Conv3d(2, 4, 3, padding=1)(Tensor(np.zeros((1, 2, 4, 4, 4), "f"))).shape
    (1, 4, 4, 4, 4)
    """

    nd = 3


class ConvTranspose1d(_ConvNd):
    """Transposed 1-D convolution (the gradient of Conv1d in its input), weight
    (in, out/groups, k); L_out = (L - 1) s - 2 pad + d (k - 1) + output_padding + 1."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, dtype=None):
        super().__init__()
        name = "ConvTranspose1d"
        self._check_channels(in_channels, out_channels, groups)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = _tup(kernel_size, 1, "kernel_size", name)
        self.stride = _tup(stride, 1, "stride", name)
        self.padding = _tup(padding, 1, "padding", name)
        self.output_padding = _tup(output_padding, 1, "output_padding", name)
        self.dilation = _tup(dilation, 1, "dilation", name)
        self._setup((in_channels, out_channels // groups) + self.kernel_size, out_channels, bias,
                    dtype)

    def forward(self, x):
        return F.conv_transpose1d(x, self.weight, self.bias, self.stride, self.padding,
                                  self.output_padding, self.groups, self.dilation)
