"""Elementwise ops: y[i] = f(x[i]) or y[i] = f(a[i], b[i]) with NumPy broadcasting.

Each backward returns dL/d(input) = dL/dy * dy/d(input), computed with Tensor operations so that
it can be differentiated again. Rules marked ``array_backward`` use only what Tensors and arrays
share, so the lean walk (autograd.py) runs the same text on raw arrays when nothing is recorded;
``fresh_grads`` marks rules whose every result is a new array (``g * b``, never ``g`` itself),
which the lean walk may hand to a leaf's ``.grad`` without copying it. Gradients of broadcast
inputs are summed back to the input's shape by the engine (autograd.sum_to_shape), so the rules
here ignore broadcasting.

Next: pointwise.py (trigonometric, logs, rounding), then reduce.py (sum, max, ...), where one
output depends on many inputs.
"""

import math

import numpy as np

from ..autograd import Function, call, const_like, register


def _mask(t, dtype):
    """A constant Tensor of 0/1 in ``dtype`` from a boolean array (no gradient flows)."""
    from ..tensor import Tensor

    return Tensor._wrap(t.astype(dtype, copy=False), False)


# ------------------------------------------------------------------ binary ---


@register("add")
class Add(Function):
    """y = a + b;  dy/da = 1, dy/db = 1."""

    array_backward = True

    @staticmethod
    def forward(ctx, a, b):
        return a + b

    @staticmethod
    def backward(ctx, g):
        return g, g


@register("sub")
class Sub(Function):
    """y = a - b;  dy/da = 1, dy/db = -1."""

    array_backward = True

    @staticmethod
    def forward(ctx, a, b):
        return a - b

    @staticmethod
    def backward(ctx, g):
        return g, (-g if ctx.needs_input_grad[1] else None)


@register("mul")
class Mul(Function):
    """y = a * b;  dy/da = b, dy/db = a."""

    array_backward = True
    fresh_grads = True

    @staticmethod
    def forward(ctx, a, b):
        ctx.save(a, b)
        return a * b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        return (g * b if na else None), (g * a if nb else None)


@register("div")
class Div(Function):
    """y = a / b;  dy/da = 1/b, dy/db = -a/b^2."""

    array_backward = True
    fresh_grads = True

    @staticmethod
    def forward(ctx, a, b):
        ctx.save(a, b)
        return a / b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        return (g / b if na else None), (-g * a / (b * b) if nb else None)


@register("pow")
class Pow(Function):
    """y = a ** b;  dy/da = b * a^(b-1), dy/db = y * log(a)  (needs a > 0 for the b-gradient).

    With a constant exponent only the a-gradient is formed, so negative bases work for
    ``x ** 2``. At base 0 the gradients are finite, as PyTorch: dy/da = 0 where b = 0 (the
    derivative of the constant a^0), and dy/db = 0 where a = 0 (log 0 is replaced by 0).
    """

    array_backward = True
    fresh_grads = True

    @staticmethod
    def forward(ctx, a, b):
        y = a ** b
        ctx.save(a, b, y)
        return y

    @staticmethod
    def backward(ctx, g):
        a, b, y = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        ga = gb = None
        if na:
            bm1 = b - 1
            b_zero = ctx._saved[1] == 0          # the raw arrays (masks are constants)
            if ctx._saved[1].dtype.kind == "f" and b_zero.any():
                bm1 = bm1 + 2 * const_like(b_zero, bm1)   # b = 0: 0 * a^1 = 0 (no 0 * inf)
            ga = g * b * a ** bm1
        if nb:                           # a = 0: log(0 + 1) = 0 there (dy/db = 0, as PyTorch)
            a_zero = ctx._saved[0] == 0
            gb = g * y * call(Log, a + const_like(a_zero, a) if a_zero.any() else a)
        return ga, gb


@register("maximum")
class Maximum(Function):
    """y = max(a, b);  dy/da = [a > b] + 0.5 [a == b]  (ties split the gradient evenly)."""

    array_backward = True
    fresh_grads = True

    @staticmethod
    def forward(ctx, a, b):
        ctx.win_a = (a > b) + 0.5 * (a == b)
        return ctx.xp.maximum(a, b)

    @staticmethod
    def backward(ctx, g):
        w = const_like(ctx.win_a, g)
        return g * w, g * (1 - w)


@register("minimum")
class Minimum(Function):
    """y = min(a, b);  dy/da = [a < b] + 0.5 [a == b]."""

    array_backward = True
    fresh_grads = True

    @staticmethod
    def forward(ctx, a, b):
        ctx.win_a = (a < b) + 0.5 * (a == b)
        return ctx.xp.minimum(a, b)

    @staticmethod
    def backward(ctx, g):
        w = const_like(ctx.win_a, g)
        return g * w, g * (1 - w)


@register("where")
class Where(Function):
    """y = cond ? a : b;  dy/da = [cond], dy/db = [not cond]; cond gets no gradient."""

    array_backward = True
    fresh_grads = True

    @staticmethod
    def forward(ctx, cond, a, b):
        ctx.cond = cond.astype(bool, copy=False)
        return ctx.xp.where(ctx.cond, a, b)

    @staticmethod
    def backward(ctx, g):
        m = const_like(ctx.cond, g)
        return None, g * m, g * (1 - m)


# ------------------------------------------------------------------ unary ---


@register("neg")
class Neg(Function):
    """y = -x;  dy/dx = -1."""

    array_backward = True
    fresh_grads = True

    @staticmethod
    def forward(ctx, x):
        return -x

    @staticmethod
    def backward(ctx, g):
        return (-g,)


@register("exp")
class Exp(Function):
    """y = e^x;  dy/dx = e^x = y  (keep y: the derivative is the output itself)."""

    array_backward = True
    fresh_grads = True

    @staticmethod
    def forward(ctx, x):
        y = ctx.xp.exp(x)
        ctx.save(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return (g * y,)


@register("log")
class Log(Function):
    """y = ln x;  dy/dx = 1/x  (domain x > 0)."""

    array_backward = True
    fresh_grads = True

    @staticmethod
    def forward(ctx, x):
        ctx.save(x)
        return ctx.xp.log(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return (g / x,)


@register("sqrt")
class Sqrt(Function):
    """y = sqrt(x);  dy/dx = 1 / (2 sqrt(x)) = 1 / (2y)  (domain x > 0)."""

    array_backward = True
    fresh_grads = True

    @staticmethod
    def forward(ctx, x):
        y = ctx.xp.sqrt(x)
        ctx.save(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return (g / (2 * y),)


@register("abs")
class Abs(Function):
    """y = |x|;  dy/dx = sign(x)  (0 at the kink x = 0, as PyTorch)."""

    array_backward = True
    fresh_grads = True

    @staticmethod
    def forward(ctx, x):
        ctx.sign = ctx.xp.sign(x)
        return ctx.xp.abs(x)

    @staticmethod
    def backward(ctx, g):
        return (g * const_like(ctx.sign, g),)


@register("relu")
class ReLU(Function):
    """y = max(x, 0);  dy/dx = [x > 0]  (0 at the kink x = 0, as PyTorch)."""

    array_backward = True
    fresh_grads = True

    @staticmethod
    def forward(ctx, x):
        ctx.pos = x > 0
        return ctx.xp.maximum(x, 0)

    @staticmethod
    def backward(ctx, g):
        return (g * const_like(ctx.pos, g),)   # a 0/1 multiply: np.where is ~10x slower here


@register("leaky_relu")
class LeakyReLU(Function):
    """y = x if x > 0 else s*x;  dy/dx = 1 if x > 0 else s."""

    array_backward = True
    fresh_grads = True

    @staticmethod
    def forward(ctx, x, negative_slope=0.01):
        ctx.slope = ctx.xp.where(x > 0, 1.0, negative_slope).astype(x.dtype)
        return x * ctx.slope

    @staticmethod
    def backward(ctx, g):
        return (g * const_like(ctx.slope, g),)


@register("elu")
class ELU(Function):
    """y = x if x > 0 else a(e^x - 1);  dy/dx = 1 if x > 0 else a e^x = y + a."""

    @staticmethod
    def forward(ctx, x, alpha=1.0):
        ctx.alpha = alpha
        ctx.pos = x > 0
        y = ctx.xp.where(ctx.pos, x, alpha * ctx.xp.expm1(ctx.xp.minimum(x, 0)))
        ctx.save(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        from ..tensor import Tensor

        pos = Tensor._wrap(ctx.pos, False)
        return (g * pos.where(1.0, y + ctx.alpha),)


@register("sigmoid")
class Sigmoid(Function):
    """y = 1 / (1 + e^-x);  dy/dx = y (1 - y). Computed without overflow for large |x|."""

    array_backward = True
    fresh_grads = True

    @staticmethod
    def forward(ctx, x):
        xp = ctx.xp
        e = xp.exp(-xp.abs(x))
        y = xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
        ctx.save(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return (g * y * (1 - y),)


@register("tanh")
class Tanh(Function):
    """y = tanh(x);  dy/dx = 1 - y^2  (keep y, not x: the derivative needs only the output)."""

    array_backward = True
    fresh_grads = True

    @staticmethod
    def forward(ctx, x):
        y = ctx.xp.tanh(x)
        ctx.save(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return (g * (1 - y * y),)


@register("softplus")
class Softplus(Function):
    """y = log(1 + e^x) = max(x, 0) + log1p(e^-|x|);  dy/dx = sigmoid(x)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save(x)
        xp = ctx.xp
        return xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return (g * x.sigmoid(),)


def _erf(xp, x):
    try:
        from scipy.special import erf

        if xp is np:
            return erf(x)
    except ImportError:
        pass
    if xp is not np:
        return xp.erf(x) if hasattr(xp, "erf") else xp.asarray(_erf(np, x.get()))
    return np.frompyfunc(math.erf, 1, 1)(x).astype(x.dtype)


@register("erf")
class Erf(Function):
    """y = erf(x) = 2/sqrt(pi) * integral_0^x e^(-t^2) dt;  dy/dx = 2/sqrt(pi) * e^(-x^2)."""

    array_backward = True
    fresh_grads = True

    @staticmethod
    def forward(ctx, x):
        ctx.save(x)
        return _erf(ctx.xp, x).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return (g * (2 / math.sqrt(math.pi)) * call(Exp, -(x * x)),)


@register("clip")
class Clip(Function):
    """y = min(max(x, lo), hi);  dy/dx = [lo <= x <= hi]  (1 at the boundaries)."""

    array_backward = True
    fresh_grads = True

    @staticmethod
    def forward(ctx, x, lo=None, hi=None):
        xp = ctx.xp
        inside = xp.ones(x.shape, dtype=bool)
        if lo is not None:
            inside &= x >= lo
        if hi is not None:
            inside &= x <= hi
        ctx.inside = inside
        return xp.clip(x, lo, hi)

    @staticmethod
    def backward(ctx, g):
        return (g * const_like(ctx.inside, g),)


@register("cast")
class Cast(Function):
    """y = x converted to ``dtype``;  dy/dx = 1 (the gradient is cast back to x's dtype)."""

    array_backward = True
    fresh_grads = True

    @staticmethod
    def forward(ctx, x, dtype):
        ctx.src = x.dtype
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, g):
        return (g.astype(ctx.src) if ctx.src.kind == "f" else None,)
