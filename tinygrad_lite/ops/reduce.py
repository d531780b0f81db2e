"""Reductions: one output element summarizes many input elements along ``axis``.

The backward pass of every reduction first puts the reduced axes back (as size-1 axes, the
``keepdims`` shape) and then broadcasts the gradient over the elements that fed each output.

Next: scan.py (cumsum, cumprod: running reductions), then movement.py (reshape, transpose,
indexing), ops that only move elements around.
"""

from ..autograd import Function, call, const_like, register
from ..errors import AxisError, ShapeError
from .movement import expand


def check_axis(axis, ndim, op):
    """One axis (negatives allowed) as a positive int; ``AxisError`` when out of range."""
    try:
        a = int(axis)
    except (TypeError, ValueError):
        raise ShapeError(f"{op}: axis must be an int, got {axis!r}") from None
    if not -ndim <= a < ndim:
        raise AxisError(f"{op}: axis {a} is out of range for a tensor of {ndim} dims (valid: "
                        f"{-ndim}..{ndim - 1}), got axis={axis!r}")
    return a % ndim


def normalize_axis(axis, ndim, op):
    """``axis`` (None, int or tuple, negatives allowed) as a sorted tuple of positive ints.

    A 0-d tensor accepts axis 0 or -1 (as PyTorch) and reduces over no axis."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        if not -max(ndim, 1) <= a < max(ndim, 1):
            raise AxisError(f"{op}: axis {a} is out of range for a tensor of {ndim} dims, "
                            f"got axis={axis!r}")
        out.append(a % ndim if ndim else None)
    if ndim == 0:
        return ()
    if len(set(out)) != len(out):
        raise ShapeError(f"{op}: repeated axis, got axis={axis!r}")
    return tuple(sorted(out))


def keepdims_shape(shape, axes):
    if len(axes) == len(shape):      # every axis reduced (the common full sum)
        return (1,) * len(shape)
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


@register("sum")
class Sum(Function):
    """y = sum_{i in axes} x_i;  dy/dx_i = 1: the gradient is broadcast back over the axes."""

    array_backward = True

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.in_shape, ctx.axis = x.shape, axis
        if not keepdims and len(axis) == x.ndim:   # the full sum: NumPy's cheaper axis=None call
            return x.sum()
        return x.sum(axis=axis, keepdims=keepdims)

    @staticmethod
    def backward(ctx, g):
        if g.ndim:                               # a 0-d gradient broadcasts as it is
            kd_shape = keepdims_shape(ctx.in_shape, ctx.axis)
            if g.shape != kd_shape:
                g = g.reshape(kd_shape)
        return (expand(g, ctx.in_shape),)


@register("prod")
class Prod(Function):
    """y = prod_i x_i;  dy/dx_i = prod_{j != i} x_j.

    Without zeros that is y / x_i. With zeros (exact, as PyTorch) it is the product of the
    exclusive cumulative products from the left and from the right: prod_{j<i} x_j *
    prod_{j>i} x_j, written with cumprod so it can be differentiated again.
    """

    array_backward = True

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.kd_shape = keepdims_shape(x.shape, axis)
        ctx.axis = axis
        ctx.has_zero = bool((x == 0).any())
        y = x.prod(axis=axis, keepdims=keepdims)
        ctx.save(x, y)   # save the output itself: y stays attached to the graph (double backward)
        return y

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        g = g.reshape(ctx.kd_shape)
        if not ctx.has_zero:
            return (g * y.reshape(ctx.kd_shape) / x,)
        from ..tensor import Tensor

        if isinstance(x, Tensor):
            return (g * _product_of_others(x, ctx.axis),)
        # the lean walk hands arrays: the Tensor formula runs here unrecorded (grad mode is off)
        return (g * _product_of_others(Tensor._wrap(x, False), ctx.axis).data,)


def _product_of_others(x, axes):
    """prod_{j != i} x_j over ``axes`` for every i, exact with zeros (Tensor ops)."""
    from ..functions import cat

    keep = [i for i in range(x.ndim) if i not in axes]
    order = keep + list(axes)
    xt = x.permute(order) if order != list(range(x.ndim)) else x
    lead = xt.shape[:len(keep)]
    xm = xt.reshape(lead + (-1,))
    one = x._wrap(x.xp.ones(lead + (1,), dtype=x.dtype), False)
    left = cat([one, xm[..., :-1]], axis=-1).cumprod(-1)
    right = cat([xm[..., 1:], one], axis=-1).flip(-1).cumprod(-1).flip(-1)
    others = (left * right).reshape(xt.shape)
    inverse = [order.index(i) for i in range(x.ndim)]
    return others.permute(inverse) if order != list(range(x.ndim)) else others


class _Extremum(Function):
    """y = max_i x_i (or min);  dy/dx_i = [x_i == y] / (number of ties): ties share evenly."""

    array_backward = True

    reducer = None

    @classmethod
    def forward(cls, ctx, x, axis=None, keepdims=False):
        if x.size == 0:
            raise ShapeError(f"{cls.op_name}: cannot reduce an empty tensor, got shape {x.shape}")
        y = getattr(x, cls.reducer)(axis=axis, keepdims=True)
        hits = x == y
        ctx.share = hits / hits.sum(axis=axis, keepdims=True)
        ctx.kd_shape = y.shape
        return y if keepdims else y.reshape([s for i, s in enumerate(y.shape) if i not in axis])

    @staticmethod
    def backward(ctx, g):
        return (g.reshape(ctx.kd_shape) * const_like(ctx.share, g),)


@register("max")
class Max(_Extremum):
    __doc__ = _Extremum.__doc__
    reducer = "max"


@register("min")
class Min(_Extremum):
    __doc__ = _Extremum.__doc__.replace("max_i", "min_i").replace("(or min)", "")
    reducer = "min"
