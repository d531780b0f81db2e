"""Free functions over tensors (``tinygrad_lite.cat``, ``stack``, ``where``, ...)."""

import numpy as np

from ._tensor_methods import _lift
from .errors import ShapeError
from .ops.movement import Cat
from .tensor import Tensor


def _tensors(xs, op):
    xs = [x if isinstance(x, Tensor) else Tensor(x) for x in xs]
    if not xs:
        raise ShapeError(f"{op}: expected a non-empty sequence of tensors, got none")
    return xs


def cat(tensors, axis=0, dim=None):
    """Join tensors along an existing axis (np.concatenate / torch.cat)."""
    xs = _tensors(tensors, "cat")
    axis = dim if dim is not None else axis
    nd = xs[0].ndim
    if nd == 0 or not -nd <= axis < nd:
        raise ShapeError(f"cat: axis {axis} is out of range for {nd}-D tensors")
    axis %= nd
    for x in xs[1:]:
        if x.ndim != nd or x.shape[:axis] + x.shape[axis + 1:] != \
                xs[0].shape[:axis] + xs[0].shape[axis + 1:]:
            raise ShapeError(f"cat: shapes must match except along axis {axis}, got "
                             f"{[t.shape for t in xs]}")
    return Cat.apply(*xs, axis=axis)


concatenate = cat


def stack(tensors, axis=0, dim=None):
    """Join tensors along a new axis: unsqueeze each, then cat."""
    xs = _tensors(tensors, "stack")
    axis = dim if dim is not None else axis
    if any(x.shape != xs[0].shape for x in xs):
        raise ShapeError(f"stack: all tensors must have the same shape, got "
                         f"{[t.shape for t in xs]}")
    axis %= xs[0].ndim + 1
    return cat([x.unsqueeze(axis) for x in xs], axis=axis)


def where(condition, a, b):
    """Elementwise ``a`` where ``condition`` else ``b``; the condition carries no gradient."""
    cond = condition if isinstance(condition, Tensor) else Tensor(np.asarray(condition))
    return cond.where(a, b)


def maximum(a, b):
    return _lift(a, b if isinstance(b, Tensor) else Tensor(b)).maximum(b)


def minimum(a, b):
    return _lift(a, b if isinstance(b, Tensor) else Tensor(b)).minimum(b)


def matmul(a, b):
    return _lift(a, b if isinstance(b, Tensor) else Tensor(b)) @ b


def broadcast_to(x, shape):
    return x.expand(shape)


def split(x, split_size_or_sections, axis=0):
    return x.split(split_size_or_sections, axis=axis)
