"""Free functions over tensors (``tinygrad_lite.cat``, ``stack``, ``where``, ...)."""

import numpy as np

from ._tensor_methods import _lift
from .einsum import einsum  # noqa: F401
from .errors import ShapeError
from .ops.reduce import check_axis
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
    if nd == 0:
        raise ShapeError(f"cat: zero-dimensional tensors cannot be concatenated, got shapes "
                         f"{[t.shape for t in xs]}; use stack")
    axis = check_axis(axis, nd, "cat")
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
    axis = check_axis(axis, xs[0].ndim + 1, "stack")
    return cat([x.unsqueeze(axis) for x in xs], axis=axis)


def where(condition, a=None, b=None):
    """Elementwise ``a`` where ``condition`` else ``b``; the condition carries no gradient.
    ``where(condition)`` alone is ``condition.nonzero(as_tuple=True)`` (NumPy and PyTorch)."""
    cond = condition if isinstance(condition, Tensor) else Tensor(np.asarray(condition))
    if a is None and b is None:
        return cond.nonzero(as_tuple=True)
    if a is None or b is None:
        raise TypeError("where: give both a and b, or neither")
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


def meshgrid(*tensors, indexing="ij"):
    """Coordinate grids from 1-D tensors; ``indexing='ij'`` (PyTorch's default: out[i] varies
    along axis i) or ``'xy'`` (NumPy's default: the first two axes swapped)."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if indexing not in ("ij", "xy"):
        raise ValueError(f"meshgrid: indexing must be 'ij' or 'xy', got {indexing!r}")
    xs = [t.reshape(-1) if isinstance(t, Tensor) else Tensor(np.asarray(t)).reshape(-1)
          for t in tensors]
    axes = list(range(len(xs)))
    if indexing == "xy" and len(xs) >= 2:
        axes[0], axes[1] = 1, 0
    shape = [0] * len(xs)
    for x, a in zip(xs, axes):
        shape[a] = x.shape[0]
    out = []
    for x, a in zip(xs, axes):
        view = [1] * len(xs)
        view[a] = -1
        out.append(x.reshape(view).expand(tuple(shape)))
    return tuple(out)


def _forward(name):
    def f(input, *args, **kwargs):
        x = input if isinstance(input, Tensor) else Tensor(input)
        return getattr(x, name)(*args, **kwargs)

    f.__name__ = name
    f.__doc__ = f"``{name}(x, ...)`` is ``x.{name}(...)``."
    return f


# torch-style free functions: tl.sin(x), tl.cumsum(x, 0), tl.gather(x, 1, idx), ...
# ("name:method" where the free function's name differs from the method's)
_FORWARD_SPEC = (
    "sin cos tan asin acos atan sinh cosh asinh acosh atanh arcsin arccos arctan arcsinh "
    "arccosh arctanh atan2 arctan2 rsqrt reciprocal square log2 log10 log1p expm1 exp2 exp log "
    "sqrt abs copysign logaddexp lerp floor ceil round trunc frac fmod remainder floor_divide "
    "div true_divide sign isnan isinf isfinite isclose allclose nan_to_num logical_and "
    "logical_or logical_xor logical_not bitwise_and bitwise_or bitwise_xor bitwise_not "
    "cumsum cumprod cummax cummin logcumsumexp var_mean std_mean norm count_nonzero sort "
    "argsort topk kthvalue median flip fliplr flipud roll tril triu diag diagonal unflatten "
    "repeat_interleave chunk narrow movedim moveaxis gather scatter scatter_add scatter_reduce "
    "index_select take_along_dim masked_fill masked_select nonzero argwhere sigmoid tanh "
    "relu softmax log_softmax any all sum prod mean var std logsumexp clamp clip erf neg "
    "negative:neg add sub mul pow sgn fix"
).split()
FORWARDED = tuple(n.split(":")[0] for n in _FORWARD_SPEC)
# exported by __init__; they shadow builtins (any, all, abs, round), so they stay out of this
# module's namespace
FORWARDED_FUNCTIONS = {n.split(":")[0]: _forward(n.split(":")[-1]) for n in _FORWARD_SPEC}
