"""Movement ops: they rearrange, select or copy elements without arithmetic.

Their backward passes move the gradient back the same way in reverse: reshape undoes reshape,
the inverse permutation undoes a transpose, and a selection (indexing) scatters its gradient
back into a zero tensor of the input's shape, *adding* where an index was picked twice.

Next: indexing.py (flip, roll, diagonals, gather, scatter), then nn.py (softmax, matmul,
conv2d, pooling), the ops neural networks are built from.
"""

import math

import numpy as np

from ..autograd import Function, call, register


@register("reshape")
class Reshape(Function):
    """y = x viewed with a new shape (same elements, row-major order);  dx = dy reshaped back."""

    array_backward = True

    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        return x.reshape(shape)

    @staticmethod
    def backward(ctx, g):
        return (g.reshape(ctx.in_shape),)


@register("permute")
class Permute(Function):
    """y = x.transpose(axes): y.shape[i] = x.shape[axes[i]];  dx = dy permuted by argsort(axes)."""

    array_backward = True

    @staticmethod
    def forward(ctx, x, axes):
        ctx.inverse = tuple(np.argsort(axes))
        return x.transpose(axes)

    @staticmethod
    def backward(ctx, g):
        return (call(Permute, g, axes=ctx.inverse),)


@register("expand")
class Expand(Function):
    """y = x broadcast to ``shape``;  dx = dy summed over the broadcast axes (by the engine)."""

    array_backward = True

    @staticmethod
    def forward(ctx, x, shape):
        return broadcast_view(x, shape) if type(x) is np.ndarray else ctx.xp.broadcast_to(x, shape)

    @staticmethod
    def backward(ctx, g):
        return (g,)  # autograd.sum_to_shape reduces it to x.shape


def broadcast_view(x, shape):
    """``np.broadcast_to(x, shape)``: a read-only view, no copy. A one-element ``x`` (a sum's
    gradient, a seed) gets the same zero-stride view built directly, ~10x cheaper on tiny
    arrays."""
    if x.ndim == 0 or x.size == 1 and x.flags.c_contiguous:
        y = np.ndarray(shape, x.dtype, x, 0, (0,) * len(shape))
        y.flags.writeable = False
        return y
    return np.broadcast_to(x, shape)


_FILL_MAX = 4096   # elements; see expand


def expand(g, shape):
    """``g`` broadcast to ``shape`` in a backward rule, on Tensors or arrays alike (the shared
    vocabulary, autograd.py): ``call(Expand, ...)``, with the array case done here directly, as
    it is the gradient of every sum on the lean walk. There a one-element gradient over at most
    ``_FILL_MAX`` elements becomes a new filled array instead of a zero-stride view: the same
    values, and NumPy's ops on it (``g * b`` in a product's rule) cost half as much."""
    if g.shape == shape:
        return g
    if type(g) is not np.ndarray:
        return call(Expand, g, shape=shape)
    if g.ndim == 0 and math.prod(shape) <= _FILL_MAX:
        out = np.empty(shape, g.dtype)
        out.fill(g)
        return out
    return broadcast_view(g, shape)


def _is_basic(index):
    items = index if isinstance(index, tuple) else (index,)
    return all(i is None or i is Ellipsis or isinstance(i, (int, slice, np.integer))
               for i in items)


@register("getitem")
class GetItem(Function):
    """y = x[index] (NumPy indexing: ints, slices, Ellipsis, None, boolean masks, int arrays);
    dx = zeros_like(x) with dy added at the selected positions (repeated indices add up)."""

    array_backward = True

    @staticmethod
    def forward(ctx, x, index):
        ctx.index = index
        ctx.in_shape = x.shape
        return x[index]

    @staticmethod
    def backward(ctx, g):
        return (call(IndexAdd, g, index=ctx.index, shape=ctx.in_shape),)


@register("index_add")
class IndexAdd(Function):
    """y = zeros(shape) with y[index] += g  (the adjoint of getitem);  dg = dy[index]."""

    array_backward = True

    @staticmethod
    def forward(ctx, g, index, shape):
        ctx.index = index
        out = ctx.xp.zeros(shape, dtype=g.dtype)
        if _is_basic(index):
            out[index] = g            # a basic index selects each element at most once
        else:
            ctx.xp.add.at(out, index, g)
        return out

    @staticmethod
    def backward(ctx, gy):
        return (gy[ctx.index],)


@register("cat")
class Cat(Function):
    """y = concatenate(xs, axis);  dx_k = dy sliced at x_k's place along axis."""

    array_backward = True

    @staticmethod
    def forward(ctx, *xs, axis=0):
        ctx.axis = axis
        ctx.sizes = [x.shape[axis] for x in xs]
        return ctx.xp.concatenate(xs, axis=axis)

    @staticmethod
    def backward(ctx, g):
        out, start = [], 0
        for size, need in zip(ctx.sizes, ctx.needs_input_grad):
            sl = (slice(None),) * ctx.axis + (slice(start, start + size),)
            out.append(g[sl] if need else None)
            start += size
        return tuple(out)


@register("pad")
class Pad(Function):
    """y = x with ``pad_width`` constant padding (NumPy's form);  dx = dy with the border cut."""

    array_backward = True

    @staticmethod
    def forward(ctx, x, pad_width, value=0.0):
        ctx.inner = tuple(slice(lo, lo + s) for (lo, _), s in zip(pad_width, x.shape))
        return ctx.xp.pad(x, pad_width, constant_values=value)

    @staticmethod
    def backward(ctx, g):
        return (g[ctx.inner],)


@register("contiguous")
class Contiguous(Function):
    """y = x laid out C-contiguously (a copy when x is a strided view);  dy/dx = I."""

    @staticmethod
    def forward(ctx, x):
        return ctx.xp.ascontiguousarray(x)

    @staticmethod
    def backward(ctx, g):
        return (g,)
