"""Layout and indexing ops: flip, roll, triangles, diagonals, gather and the scatters.

Each backward is the adjoint move: flip undoes flip, roll rolls back, a diagonal's gradient is
embedded back on the diagonal of zeros, and gather's gradient is a scatter-add (repeated indices
add up), whose own gradient is a gather again, so double backward closes.

Index convention (PyTorch's ``gather``/``scatter``): ``index`` has the same number of dims as
the input; along ``axis`` it holds positions, along every other axis d it covers positions
0..index.shape[d]-1 (it may be smaller than the input there).

Next: nn.py (softmax, matmul, conv2d, pooling).
"""

from ..autograd import Function, register
from .elementwise import _mask


def full_index(xp, index, axis):
    """The advanced-indexing tuple that reads ``x[..., index, ...]`` PyTorch-gather style."""
    out = []
    for d, n in enumerate(index.shape):
        if d == axis:
            out.append(index)
        else:
            shape = [1] * index.ndim
            shape[d] = n
            out.append(xp.arange(n).reshape(shape))
    return tuple(out)


@register("flip")
class Flip(Function):
    """y = x reversed along ``axes``;  dx = dy flipped back."""

    @staticmethod
    def forward(ctx, x, axes):
        ctx.axes = axes
        return ctx.xp.flip(x, axes)

    @staticmethod
    def backward(ctx, g):
        return (Flip.apply(g, axes=ctx.axes),)


@register("roll")
class Roll(Function):
    """y = x shifted cyclically by ``shifts`` along ``axes``;  dx = dy rolled by -shifts."""

    @staticmethod
    def forward(ctx, x, shifts, axes):
        ctx.shifts, ctx.axes = shifts, axes
        return ctx.xp.roll(x, shifts, axes)

    @staticmethod
    def backward(ctx, g):
        back = tuple(-s for s in ctx.shifts) if ctx.axes is not None else -ctx.shifts
        return (Roll.apply(g, shifts=back, axes=ctx.axes),)


@register("tril")
class Tril(Function):
    """y = x with entries above diagonal k zeroed (last two axes);  dx = tril(dy, k)."""

    @staticmethod
    def forward(ctx, x, k=0):
        ctx.k = k
        return ctx.xp.tril(x, k)

    @staticmethod
    def backward(ctx, g):
        return (Tril.apply(g, k=ctx.k),)


@register("triu")
class Triu(Function):
    """y = x with entries below diagonal k zeroed (last two axes);  dx = triu(dy, k)."""

    @staticmethod
    def forward(ctx, x, k=0):
        ctx.k = k
        return ctx.xp.triu(x, k)

    @staticmethod
    def backward(ctx, g):
        return (Triu.apply(g, k=ctx.k),)


def _diag_positions(xp, shape, offset, a1, a2):
    n1, n2 = shape[a1], shape[a2]
    length = max(0, min(n1, n2 - offset) if offset >= 0 else min(n1 + offset, n2))
    i = xp.arange(length)
    return (i, i + offset) if offset >= 0 else (i - offset, i)


@register("diagonal")
class Diagonal(Function):
    """y[..., i] = x[..., i, i + offset, ...] on axes (axis1, axis2), the diagonal moved last;
    dx = zeros with dy written back on that diagonal (diagonal_backward)."""

    @staticmethod
    def forward(ctx, x, offset=0, axis1=0, axis2=1):
        ctx.geom = (offset, axis1, axis2)
        ctx.shape = x.shape
        return ctx.xp.diagonal(x, offset, axis1, axis2).copy()

    @staticmethod
    def backward(ctx, g):
        return (DiagonalBackward.apply(g, geom=ctx.geom, shape=ctx.shape),)


@register("diagonal_backward")
class DiagonalBackward(Function):
    """y = zeros(shape) with g written on the diagonal (the adjoint of diagonal);
    dg = diagonal(dy)."""

    @staticmethod
    def forward(ctx, g, geom, shape):
        xp = ctx.xp
        offset, a1, a2 = geom
        ctx.geom = geom
        out = xp.zeros(shape, dtype=g.dtype)
        rows, cols = _diag_positions(xp, shape, offset, a1, a2)
        xp.moveaxis(out, (a1, a2), (-2, -1))[..., rows, cols] = g
        return out

    @staticmethod
    def backward(ctx, gy):
        offset, a1, a2 = ctx.geom
        return (Diagonal.apply(gy, offset=offset, axis1=a1, axis2=a2),)


@register("gather")
class Gather(Function):
    """y[i][j][k] = x[i][index[i][j][k]][k] for axis = 1 (PyTorch's gather);
    dx = scatter_add of dy into zeros at the same positions (repeated indices add up)."""

    @staticmethod
    def forward(ctx, x, index, axis):
        ctx.index, ctx.axis, ctx.shape = index, axis, x.shape
        return x[full_index(ctx.xp, index, axis)]

    @staticmethod
    def backward(ctx, g):
        return (ScatterAdd.apply(g, index=ctx.index, axis=ctx.axis, shape=ctx.shape),)


@register("scatter_add")
class ScatterAdd(Function):
    """y = zeros(shape) with y[.., index[i][j], ..] += src[i][j] along ``axis``
    (the adjoint of gather);  dsrc = gather(dy)."""

    @staticmethod
    def forward(ctx, src, index, axis, shape):
        ctx.index, ctx.axis = index, axis
        out = ctx.xp.zeros(shape, dtype=src.dtype)
        ctx.xp.add.at(out, full_index(ctx.xp, index, axis), src)
        return out

    @staticmethod
    def backward(ctx, g):
        return (Gather.apply(g, index=ctx.index, axis=ctx.axis),)


@register("scatter")
class Scatter(Function):
    """y = x with y[.., index[i][j], ..] = src[i][j] along ``axis``;
    dx = dy where nothing was written (0 where src landed), dsrc = gather(dy)."""

    @staticmethod
    def forward(ctx, x, src, index, axis):
        xp = ctx.xp
        ctx.index, ctx.axis = index, axis
        fi = full_index(xp, index, axis)
        out = x.copy()
        out[fi] = src
        keep = xp.ones(x.shape, dtype=bool)
        keep[fi] = False
        ctx.keep = keep
        return out

    @staticmethod
    def backward(ctx, g):
        nx, ns = ctx.needs_input_grad
        gx = g * _mask(ctx.keep, g.dtype) if nx else None
        gs = Gather.apply(g, index=ctx.index, axis=ctx.axis) if ns else None
        return gx, gs


_UFUNC = {"sum": "add", "mean": "add", "prod": "multiply", "amax": "maximum", "amin": "minimum"}


@register("scatter_reduce")
class ScatterReduce(Function):
    """y = x with src reduced into it at ``index`` along ``axis``: reduce in sum, mean, prod,
    amax, amin; ``include_self=False`` leaves x's value out wherever src lands.

    Gradients (c = how many values were reduced into each output, t = the ties at the extreme):
    sum: dx = dy (0 at touched places if not include_self), dsrc = gather(dy);
    mean: the sum's, divided by c;  prod: dx = dy y / x, dsrc = gather(dy y) / src (nonzero
    inputs);  amax/amin: dy goes to every value equal to the result, split evenly over t.
    """

    @staticmethod
    def forward(ctx, x, src, index, axis, reduce, include_self=True):
        xp = ctx.xp
        fi = full_index(xp, index, axis)
        ctx.index, ctx.axis, ctx.reduce = index, axis, reduce
        ctx.include_self = include_self
        touched = xp.zeros(x.shape, dtype=bool)
        touched[fi] = True
        ctx.untouched = ~touched
        out = x.copy()
        if not include_self:   # start touched places from the reduction's identity
            ident = {"sum": 0, "mean": 0, "prod": 1, "amax": -xp.inf, "amin": xp.inf}[reduce]
            out[touched] = ident
        getattr(xp, _UFUNC[reduce]).at(out, fi, src)
        count = xp.zeros(x.shape, dtype=x.dtype)
        xp.add.at(count, fi, 1)
        count += 1 if include_self else ctx.untouched
        if reduce == "mean":
            out = out / count
        ctx.count = count
        if reduce in ("amax", "amin"):
            hit_x = (x == out) & (ctx.untouched | include_self)
            hit_s = src == out[fi]
            ties = hit_x.astype(x.dtype)
            xp.add.at(ties, fi, hit_s)
            ctx.wx, ctx.ws = hit_x / ties, hit_s.astype(x.dtype)
            ctx.inv_ties = 1 / xp.maximum(ties, 1)
        if reduce == "prod":
            ctx.save(x, src, out)
        return out

    @staticmethod
    def backward(ctx, g):
        nx, ns = ctx.needs_input_grad
        r, idx, a = ctx.reduce, ctx.index, ctx.axis
        keep_x = _mask(ctx.untouched | ctx.include_self, g.dtype)
        if r in ("sum", "mean"):
            gg = g / _mask(ctx.count, g.dtype) if r == "mean" else g
            gx = gg * keep_x if nx else None
            gs = Gather.apply(gg, index=idx, axis=a) if ns else None
        elif r == "prod":
            x, src, y = ctx.saved_tensors
            gx = g * y / x * keep_x if nx else None
            gs = Gather.apply(g * y, index=idx, axis=a) / src if ns else None
        else:
            gx = g * _mask(ctx.wx, g.dtype) if nx else None
            gs = (Gather.apply(g * _mask(ctx.inv_ties, g.dtype), index=idx, axis=a)
                  * _mask(ctx.ws, g.dtype)) if ns else None
        return gx, gs
