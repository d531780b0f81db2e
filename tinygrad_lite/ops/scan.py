"""Scans: running sums, products and log-sum-exps along one axis (y_j depends on x_0..x_j).

The backward of a scan is a scan in the other direction: each x_i fed every y_j with j >= i,
so dL/dx_i sums dL/dy_j over j >= i (a reversed cumulative sum, ``flip . cumsum . flip``).
cummax/cummin are not here: they pick one element per output, so they are a gather along the
axis (tensor method) and their gradient flows through the chosen indices.

Next: movement.py (reshape, transpose, indexing).
"""

from ..autograd import Function, register


def _rev_cumsum(t, axis):
    """sum_{j >= i} t_j along ``axis``, as Tensor ops (differentiable again)."""
    return t.flip(axis).cumsum(axis).flip(axis)


@register("cumsum")
class Cumsum(Function):
    """y_j = sum_{i <= j} x_i;  dL/dx_i = sum_{j >= i} dL/dy_j (a reversed cumsum)."""

    @staticmethod
    def forward(ctx, x, axis):
        ctx.axis = axis
        return ctx.xp.cumsum(x, axis=axis)

    @staticmethod
    def backward(ctx, g):
        return (_rev_cumsum(g, ctx.axis),)


@register("cumprod")
class Cumprod(Function):
    """y_j = prod_{i <= j} x_i;  dL/dx_i = sum_{j >= i} dL/dy_j prod_{k <= j, k != i} x_k.

    Without zeros that is revcumsum(g y)_i / x_i. With a zero the division is undefined, so the
    exact form is used: P[i, j] = cumprod_j of x with x_i replaced by 1 (an n x n matrix per
    slice, O(n^2), only when x has a zero), as PyTorch does.
    """

    @staticmethod
    def forward(ctx, x, axis):
        ctx.axis = axis
        y = ctx.xp.cumprod(x, axis=axis)
        ctx.has_zero = bool((x == 0).any())
        ctx.save(x, y)
        return y

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        a = ctx.axis
        if not ctx.has_zero:
            return (_rev_cumsum(g * y, a) / x,)
        from ..tensor import Tensor

        xm, gm = x.movedim(a, -1), g.movedim(a, -1)
        n = xm.shape[-1]
        xp = ctx.xp
        eye = Tensor._wrap(xp.eye(n, dtype=x.dtype), False)
        upper = Tensor._wrap(xp.triu(xp.ones((n, n), dtype=x.dtype)), False)   # j >= i
        rows = xm.unsqueeze(-2) * (1 - eye) + eye          # rows[..., i, j] = x_j, 1 at j = i
        p = rows.cumprod(-1)
        gx = (p * upper * gm.unsqueeze(-2)).sum(-1)
        return (gx.movedim(-1, a),)


@register("logcumsumexp")
class Logcumsumexp(Function):
    """y_j = ln sum_{i <= j} e^(x_i)  (np.logaddexp.accumulate: stable);
    dL/dx_i = sum_{j >= i} dL/dy_j e^(x_i - y_j)  (the softmax weight of x_i within y_j).

    Backward: factorized as e^(x_i - c) * revcumsum(g e^(c - y))_i with c the slice's max of x,
    when x spans less than 60 in the slice (no overflow); otherwise the exact n x n form, whose
    terms e^(x_i - y_j) <= 1 for j >= i.
    """

    @staticmethod
    def forward(ctx, x, axis):
        ctx.axis = axis
        xp = ctx.xp
        y = xp.logaddexp.accumulate(x, axis=axis) if x.size else x.copy()
        ctx.wide = bool(x.size) and float(xp.max(x) - xp.min(x)) > 60
        ctx.save(x, y)
        return y

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        a = ctx.axis
        if not ctx.wide:
            c = x.detach().max(axis=a, keepdims=True) if x.size else 0.0
            return (_rev_cumsum(g * (c - y).exp(), a) * (x - c).exp(),)
        from ..tensor import Tensor

        xm, ym, gm = x.movedim(a, -1), y.movedim(a, -1), g.movedim(a, -1)
        n = xm.shape[-1]
        upper = Tensor._wrap(ctx.xp.triu(ctx.xp.ones((n, n), dtype=bool)), False)  # j >= i
        e = upper.where(xm.unsqueeze(-1) - ym.unsqueeze(-2), -float("inf")).exp()
        return ((e * gm.unsqueeze(-2)).sum(-1).movedim(-1, a),)
