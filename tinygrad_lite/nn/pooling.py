"""Pooling layers over 1, 2 or 3 spatial axes: MaxPool1d/2d/3d, AvgPool1d/2d/3d, MaxUnpool1d/2d,
AdaptiveAvgPool2d, and Upsample.

Next: normalization.py.
"""

from . import functional as F
from .module import Module
from .spatial import avg_pool_nd, max_pool_nd, max_unpool_nd


class _MaxPoolNd(Module):
    nd = 2

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.return_indices, self.ceil_mode = dilation, return_indices, ceil_mode

    def forward(self, x):
        return max_pool_nd(x, self.nd, self.kernel_size, self.stride, self.padding,
                           self.dilation, self.ceil_mode, self.return_indices)

    def extra_repr(self):
        s = (f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}, "
             f"padding={self.padding}")
        if self.dilation != 1:
            s += f", dilation={self.dilation}"
        if self.ceil_mode:
            s += ", ceil_mode=True"
        return s


class MaxPool1d(_MaxPoolNd):
    """Max over each window of (N, C, L); options as MaxPool2d."""

    nd = 1


class MaxPool2d(_MaxPoolNd):
    """Max over each kh x kw window (stride defaults to the kernel size); the gradient goes to
    the window's maximum. PyTorch's options: ``dilation``, ``ceil_mode`` and
    ``return_indices`` (then forward returns (values, indices) for MaxUnpool2d)."""

    nd = 2


class MaxPool3d(_MaxPoolNd):
    """Max over each kd x kh x kw window of (N, C, D, H, W); options as MaxPool2d."""

    nd = 3


class _AvgPoolNd(Module):
    nd = 2

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad
        self.divisor_override = divisor_override

    def forward(self, x):
        return avg_pool_nd(x, self.nd, self.kernel_size, self.stride, self.padding,
                           self.ceil_mode, self.count_include_pad, self.divisor_override)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}, "
                f"padding={self.padding}")


class AvgPool1d(_AvgPoolNd):
    """Mean over each window of (N, C, L); options as AvgPool2d."""

    nd = 1


class AvgPool2d(_AvgPoolNd):
    """Mean over each window (padded zeros count in the divisor, PyTorch's default;
    ``count_include_pad=False`` counts only real cells); ``ceil_mode``, ``divisor_override``."""

    nd = 2


class AvgPool3d(_AvgPoolNd):
    """Mean over each kd x kh x kw window of (N, C, D, H, W); options as AvgPool2d."""

    nd = 3


class _MaxUnpoolNd(Module):
    nd = 2

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x, indices, output_size=None):
        return max_unpool_nd(x, indices, self.nd, self.kernel_size, self.stride, self.padding,
                             output_size)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}, "
                f"padding={self.padding}")


class MaxUnpool1d(_MaxUnpoolNd):
    """The partial inverse of MaxPool1d(return_indices=True)."""

    nd = 1


class MaxUnpool2d(_MaxUnpoolNd):
    """The partial inverse of MaxPool2d(return_indices=True): each value goes back to its
    maximum's position, zeros elsewhere."""

    nd = 2


class MaxUnpool3d(_MaxUnpoolNd):
    """The partial inverse of MaxPool3d(return_indices=True)."""

    nd = 3


class Upsample(Module):
    """Resize (N, C, *spatial) input: ``Upsample(scale_factor=2, mode="nearest")`` or
    ``mode="bilinear"`` with ``align_corners``; see ``functional.interpolate``."""

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None):
        super().__init__()
        self.size, self.scale_factor = size, scale_factor
        self.mode, self.align_corners = mode, align_corners

    def forward(self, x):
        return F.interpolate(x, self.size, self.scale_factor, self.mode, self.align_corners)

    def extra_repr(self):
        what = f"size={self.size}" if self.size is not None else \
            f"scale_factor={self.scale_factor}"
        return f"{what}, mode={self.mode!r}"


class AdaptiveAvgPool2d(Module):
    """Average to a fixed (oh, ow); ``AdaptiveAvgPool2d(1)`` is global average pooling. Needs
    H, W divisible by the output size (PyTorch's uneven windows are not supported)."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"
