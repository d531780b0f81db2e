"""More elementwise math: trigonometric and hyperbolic functions, powers and logs, rounding and
division, and the combining ops (atan2, copysign, logaddexp, lerp).

Same shape as elementwise.py: forward on raw arrays, backward with Tensor operations (so double
backward works). Rounding ops (floor, ceil, round, trunc, floor_divide, sign) are piecewise
constant: their gradient is zero everywhere, as in PyTorch (the jumps are ignored).

Next: reduce.py (sum, max, ...), where one output depends on many inputs.
"""

import math

from ..autograd import Function, register
from .elementwise import _mask


class _Unary(Function):
    """Shared forward for y = f(x) where the backward needs x: subclasses set ``ufunc``."""

    ufunc = None

    @classmethod
    def forward(cls, ctx, x):
        ctx.save(x)
        return getattr(ctx.xp, cls.ufunc)(x)


# ------------------------------------------------------------------ trigonometric ---


@register("sin")
class Sin(_Unary):
    """y = sin x;  dy/dx = cos x."""

    ufunc = "sin"

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return (g * x.cos(),)


@register("cos")
class Cos(_Unary):
    """y = cos x;  dy/dx = -sin x."""

    ufunc = "cos"

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return (-g * x.sin(),)


@register("tan")
class Tan(Function):
    """y = tan x;  dy/dx = 1 / cos^2 x = 1 + y^2  (keep y)."""

    @staticmethod
    def forward(ctx, x):
        y = ctx.xp.tan(x)
        ctx.save(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return (g * (1 + y * y),)


@register("asin")
class Asin(_Unary):
    """y = arcsin x;  dy/dx = 1 / sqrt(1 - x^2)  (domain |x| < 1)."""

    ufunc = "arcsin"

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return (g * (1 - x * x).rsqrt(),)


@register("acos")
class Acos(_Unary):
    """y = arccos x;  dy/dx = -1 / sqrt(1 - x^2)  (domain |x| < 1)."""

    ufunc = "arccos"

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return (-g * (1 - x * x).rsqrt(),)


@register("atan")
class Atan(_Unary):
    """y = arctan x;  dy/dx = 1 / (1 + x^2)."""

    ufunc = "arctan"

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return (g / (1 + x * x),)


@register("atan2")
class Atan2(Function):
    """y = atan2(a, b) (the angle of the point (b, a));
    dy/da = b / (a^2 + b^2), dy/db = -a / (a^2 + b^2)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save(a, b)
        return ctx.xp.arctan2(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        r = g / (a * a + b * b)
        return (r * b if na else None), (-r * a if nb else None)


# ------------------------------------------------------------------ hyperbolic ---


@register("sinh")
class Sinh(_Unary):
    """y = sinh x;  dy/dx = cosh x."""

    ufunc = "sinh"

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return (g * x.cosh(),)


@register("cosh")
class Cosh(_Unary):
    """y = cosh x;  dy/dx = sinh x."""

    ufunc = "cosh"

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return (g * x.sinh(),)


@register("asinh")
class Asinh(_Unary):
    """y = arsinh x;  dy/dx = 1 / sqrt(x^2 + 1)."""

    ufunc = "arcsinh"

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return (g * (x * x + 1).rsqrt(),)


@register("acosh")
class Acosh(_Unary):
    """y = arcosh x;  dy/dx = 1 / sqrt(x^2 - 1)  (domain x > 1)."""

    ufunc = "arccosh"

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return (g * (x * x - 1).rsqrt(),)


@register("atanh")
class Atanh(_Unary):
    """y = artanh x;  dy/dx = 1 / (1 - x^2)  (domain |x| < 1)."""

    ufunc = "arctanh"

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return (g / (1 - x * x),)


# ------------------------------------------------------------------ powers and logs ---


@register("rsqrt")
class Rsqrt(Function):
    """y = 1 / sqrt(x);  dy/dx = -1/2 x^(-3/2) = -y^3 / 2  (domain x > 0)."""

    @staticmethod
    def forward(ctx, x):
        y = 1 / ctx.xp.sqrt(x)
        ctx.save(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return (g * y * y * y * -0.5,)


@register("log2")
class Log2(_Unary):
    """y = log2 x;  dy/dx = 1 / (x ln 2)."""

    ufunc = "log2"

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return (g / (x * math.log(2.0)),)


@register("log10")
class Log10(_Unary):
    """y = log10 x;  dy/dx = 1 / (x ln 10)."""

    ufunc = "log10"

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return (g / (x * math.log(10.0)),)


@register("log1p")
class Log1p(_Unary):
    """y = ln(1 + x), accurate for small x;  dy/dx = 1 / (1 + x)."""

    ufunc = "log1p"

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return (g / (1 + x),)


@register("expm1")
class Expm1(Function):
    """y = e^x - 1, accurate for small x;  dy/dx = e^x = y + 1."""

    @staticmethod
    def forward(ctx, x):
        y = ctx.xp.expm1(x)
        ctx.save(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return (g * (y + 1),)


@register("exp2")
class Exp2(Function):
    """y = 2^x;  dy/dx = 2^x ln 2 = y ln 2."""

    @staticmethod
    def forward(ctx, x):
        y = ctx.xp.exp2(x)
        ctx.save(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return (g * y * math.log(2.0),)


# ------------------------------------------------------------------ combining ---


@register("copysign")
class Copysign(Function):
    """y = |a| with the sign of b;  dy/da = sign(a) sign(b) (0 at a = 0), dy/db = 0."""

    @staticmethod
    def forward(ctx, a, b):
        xp = ctx.xp
        y = xp.copysign(a, b)
        ctx.slope = xp.where(a == 0, 0, xp.sign(a) * xp.copysign(xp.ones((), a.dtype), b))
        return y

    @staticmethod
    def backward(ctx, g):
        return g * _mask(ctx.slope, g.dtype), (g * 0 if ctx.needs_input_grad[1] else None)


@register("logaddexp")
class Logaddexp(Function):
    """y = ln(e^a + e^b) = max(a, b) + ln(1 + e^-|a - b|);
    dy/da = e^a / (e^a + e^b) = sigmoid(a - b), dy/db = sigmoid(b - a)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save(a, b)
        return ctx.xp.logaddexp(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        s = (a - b).sigmoid()
        return (g * s if na else None), (g * (1 - s) if nb else None)


@register("lerp")
class Lerp(Function):
    """y = a + w (b - a);  dy/da = 1 - w, dy/db = w, dy/dw = b - a."""

    @staticmethod
    def forward(ctx, a, b, w):
        ctx.save(a, b, w)
        return a + w * (b - a)

    @staticmethod
    def backward(ctx, g):
        a, b, w = ctx.saved_tensors
        na, nb, nw = ctx.needs_input_grad
        return ((g * (1 - w) if na else None), (g * w if nb else None),
                (g * (b - a) if nw else None))


# ------------------------------------------------------------------ rounding and division ---


class _Step(Function):
    """y = a piecewise-constant function of x;  dy/dx = 0 (PyTorch's convention)."""

    ufunc = None

    @classmethod
    def forward(cls, ctx, *xs):
        return getattr(ctx.xp, cls.ufunc)(*xs)

    @staticmethod
    def backward(ctx, g):
        return tuple(g * 0 if need else None for need in ctx.needs_input_grad)


@register("floor")
class Floor(_Step):
    """y = floor x (largest integer <= x);  dy/dx = 0."""

    ufunc = "floor"


@register("ceil")
class Ceil(_Step):
    """y = ceil x (smallest integer >= x);  dy/dx = 0."""

    ufunc = "ceil"


@register("round")
class Round(_Step):
    """y = x rounded to ``decimals`` places, halves to even (NumPy and PyTorch);  dy/dx = 0."""

    @staticmethod
    def forward(ctx, x, decimals=0):
        return ctx.xp.round(x, decimals)


@register("trunc")
class Trunc(_Step):
    """y = trunc x (round toward zero);  dy/dx = 0."""

    ufunc = "trunc"


@register("sign")
class Sign(_Step):
    """y = sign x in {-1, 0, 1};  dy/dx = 0 (PyTorch: a zero gradient, not an error)."""

    ufunc = "sign"


@register("floor_divide")
class FloorDivide(_Step):
    """y = floor(a / b) (Python's ``//``);  dy/da = dy/db = 0 (piecewise constant)."""

    ufunc = "floor_divide"


@register("frac")
class Frac(Function):
    """y = x - trunc(x) (the fractional part, with the sign of x);  dy/dx = 1."""

    @staticmethod
    def forward(ctx, x):
        return x - ctx.xp.trunc(x)

    @staticmethod
    def backward(ctx, g):
        return (g,)


@register("fmod")
class Fmod(Function):
    """y = a - b trunc(a / b) (C's fmod: the sign of a);  dy/da = 1, dy/db = -trunc(a / b)."""

    @staticmethod
    def forward(ctx, a, b):
        xp = ctx.xp
        ctx.q = xp.trunc(a / b) if a.dtype.kind == "f" or b.dtype.kind == "f" else None
        return xp.fmod(a, b)

    @staticmethod
    def backward(ctx, g):
        na, nb = ctx.needs_input_grad
        return (g if na else None), (-g * _mask(ctx.q, g.dtype) if nb else None)


@register("remainder")
class Remainder(Function):
    """y = a - b floor(a / b) (Python's ``%``: the sign of b);
    dy/da = 1, dy/db = -floor(a / b)."""

    @staticmethod
    def forward(ctx, a, b):
        xp = ctx.xp
        ctx.q = xp.floor(a / b) if a.dtype.kind == "f" or b.dtype.kind == "f" else None
        return xp.remainder(a, b)

    @staticmethod
    def backward(ctx, g):
        na, nb = ctx.needs_input_grad
        return (g if na else None), (-g * _mask(ctx.q, g.dtype) if nb else None)


@register("nan_to_num")
class NanToNum(Function):
    """y = x with nan -> ``nan``, +inf -> ``posinf``, -inf -> ``neginf``;
    dy/dx = 1 where x is finite, 0 where it was replaced."""

    @staticmethod
    def forward(ctx, x, nan=0.0, posinf=None, neginf=None):
        ctx.finite = ctx.xp.isfinite(x)
        return ctx.xp.nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf)

    @staticmethod
    def backward(ctx, g):
        return (g * _mask(ctx.finite, g.dtype),)


# ------------------------------------------------------------------ hard activations ---


@register("hardtanh")
class HardTanh(Function):
    """y = min(max(x, lo), hi);  dy/dx = [lo < x < hi]: 0 at the boundaries, as PyTorch's
    hardtanh/relu6/hardsigmoid (``clip`` instead passes the gradient at the boundaries)."""

    @staticmethod
    def forward(ctx, x, lo=-1.0, hi=1.0):
        ctx.inside = (x > lo) & (x < hi)
        return ctx.xp.clip(x, lo, hi)

    @staticmethod
    def backward(ctx, g):
        return (g * _mask(ctx.inside, g.dtype),)
