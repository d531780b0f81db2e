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
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
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
        if padding_mode != "zeros":
            raise ValueError(
                f"Conv2d: only padding_mode='zeros' is supported, got {padding_mode!r}"
            )
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
        return F.conv2d(
            x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups
        )


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
