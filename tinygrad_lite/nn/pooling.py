"""Pooling layers: MaxPool2d, AvgPool2d, AdaptiveAvgPool2d (NCHW).

Next: normalization.py.
"""

from . import functional as F
from .module import Module


class MaxPool2d(Module):
    """Max over each kh x kw window (stride defaults to the kernel size); the gradient goes to
    the window's maximum."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self):
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}, "
            f"padding={self.padding}"
        )


class AvgPool2d(MaxPool2d):
    """Mean over each window (padded zeros count in the divisor, PyTorch's default)."""

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding)


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
