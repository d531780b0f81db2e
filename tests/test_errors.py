"""Every user-facing error: the right type, and a message naming the op and the values."""

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import DTypeError, ShapeError, Tensor
from tinygrad_lite.nn import functional as F


def x4(shape=(1, 2, 5, 5)):
    return Tensor(np.zeros(shape, dtype=np.float32))


CASES = [
    (lambda: Tensor(np.ones((3, 4))) @ Tensor(np.ones((5, 2))), ShapeError,
     r"matmul: inner dimensions differ, got a.shape=\(3, 4\) and b.shape=\(5, 2\) \(4 != 5\)"),
    (lambda: Tensor(np.ones((2, 3, 4))) @ Tensor(np.ones((3, 4, 2))), ShapeError,
     r"matmul: batch dimensions do not broadcast"),
    (lambda: Tensor(2.0) @ Tensor([1.0]), ShapeError, r"matmul: both operands need"),
    (lambda: Tensor(np.ones(6)).reshape(4, 2), ShapeError,
     r"reshape: cannot reshape, got shape \(6,\)"),
    (lambda: Tensor(np.ones((2, 3))).sum(axis=2), ShapeError, r"sum: axis 2 is out of range"),
    (lambda: Tensor(np.ones((2, 3))).max(axis=(0, 0)), ShapeError, r"max: repeated axis"),
    (lambda: Tensor(np.ones((2, 3))).permute(0, 0), ShapeError, r"permute: axes must be"),
    (lambda: Tensor(np.ones((2, 3))).expand(4, 3), ShapeError,
     r"expand: cannot broadcast, got shape \(2, 3\) to \(4, 3\)"),
    (lambda: Tensor(np.ones((2, 3)))[5], ShapeError, r"getitem: bad index for shape \(2, 3\)"),
    (lambda: tl.cat([Tensor(np.ones((2, 3))), Tensor(np.ones((2, 4)))], axis=0), ShapeError,
     r"cat: shapes must match except along axis 0"),
    (lambda: tl.stack([Tensor(np.ones(2)), Tensor(np.ones(3))]), ShapeError,
     r"stack: all tensors must have the same shape"),
    (lambda: tl.cat([]), ShapeError, r"cat: expected a non-empty sequence"),
    (lambda: Tensor(np.ones(3)).pad(-1), ShapeError, r"pad: pad widths must be >= 0"),
    (lambda: Tensor(np.ones(5)).split([2, 2]), ShapeError, r"split: sizes must add up"),
    (lambda: Tensor(np.ones(3)).clip(), ValueError, r"clip: at least one of min and max"),
    (lambda: F.conv2d(x4(), x4((3, 3, 3, 3))), ShapeError,
     r"conv2d: input channels differ from weight, got x.shape=\(1, 2, 5, 5\) and "
     r"w.shape=\(3, 3, 3, 3\)"),
    (lambda: F.conv2d(x4((2, 5, 5)), x4((3, 2, 3, 3))), ShapeError, r"conv2d: input must be 4-D"),
    (lambda: F.conv2d(x4(), x4((3, 2, 7, 7))), ShapeError,
     r"conv2d: kernel larger than the padded input.*use a smaller kernel or more padding"),
    (lambda: F.conv2d(x4(), x4((3, 2, 3, 3)), stride=0), ShapeError,
     r"conv2d: stride and dilation must be >= 1, got stride=\(0, 0\)"),
    (lambda: F.conv2d(x4(), x4((3, 2, 3, 3)), padding=-1), ShapeError,
     r"conv2d: padding must be >= 0, got padding=\(-1, -1\)"),
    (lambda: F.conv2d(x4(), x4((3, 1, 3, 3)), groups=2), ShapeError,
     r"conv2d: groups must divide both in and out channels, got groups=2"),
    (lambda: F.conv2d(Tensor(np.zeros((1, 2, 5, 5), dtype=np.int64)), x4((3, 2, 3, 3))),
     DTypeError, r"conv2d: expected a floating-point tensor, got dtype int64"),
    (lambda: F.max_pool2d(x4(), 7), ShapeError, r"max_pool2d: kernel larger than the padded"),
    (lambda: F.max_pool2d(x4(), 2, padding=2), ShapeError,
     r"max_pool2d: padding must be between 0 and half the kernel"),
    (lambda: F.avg_pool2d(x4(), 2, stride=0), ShapeError, r"avg_pool2d: kernel_size and stride"),
    (lambda: F.conv_transpose2d(x4(), x4((2, 3, 3, 3)), stride=2, output_padding=2), ShapeError,
     r"conv_transpose2d: output_padding must be in \[0, stride\)"),
    (lambda: F.linear(Tensor(np.ones((2, 3))), Tensor(np.ones((4, 5)))), ShapeError,
     r"linear: input features differ from the weight, got x.shape=\(2, 3\)"),
    (lambda: F.one_hot(np.array([0, 5]), 3), tl.LabelError, r"one_hot: labels must be in \[0, 3\)"),
    (lambda: F.embedding(np.array([0, 9]), Tensor(np.ones((4, 2)))), ShapeError,
     r"embedding: indices must be in \[0, 4\)"),
    (lambda: F.dropout(Tensor(np.ones(2)), p=1.5), ValueError, r"dropout: p must be in \[0, 1\]"),
    (lambda: Tensor(np.ones(2)).gelu("fast"), ValueError, r"gelu: approximate must be"),
    (lambda: Tensor(["a"]), DTypeError, r"Tensor: unsupported dtype"),
    (lambda: Tensor([1.0], device="tpu"), tl.DeviceError, r"Tensor: unknown device, got 'tpu'"),
    (lambda: tl.backends.get("nope"), tl.BackendUnavailableError,
     r"backends.get: backend 'nope' is not available"),
]


@pytest.mark.parametrize("call,exc,pattern", CASES, ids=[c[2][:40] for c in CASES])
def test_error_messages(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_errors_are_builtin_subclasses():
    assert issubclass(ShapeError, ValueError) and issubclass(DTypeError, TypeError)
    assert issubclass(tl.ModelFormatError, ValueError)
    assert issubclass(tl.BackendUnavailableError, RuntimeError)
    assert issubclass(tl.DeviceError, RuntimeError)
    for e in (ShapeError, DTypeError, tl.ModelFormatError, tl.GraphError):
        assert issubclass(e, tl.TinygradLiteError)
