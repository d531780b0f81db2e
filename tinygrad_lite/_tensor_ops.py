"""More Tensor methods: elementwise math, rounding, tests, activations, scans and statistics.
One-liners over the Functions of ops/pointwise.py and ops/scan.py, or short compositions of
existing ops (autograd differentiates those). Sorting, layout, gather and scatter methods are in
_tensor_indexing.py.

``cummax/cummin`` called with a positional ``dim`` or ``dim=`` return
``returns.ValuesIndices(values, indices)``; with NumPy's ``axis=`` the values alone. The values
are a gather at the indices, so the gradient flows to the chosen elements.

Dtypes: the float math of an integer or bool tensor runs in the default float dtype (float32),
as PyTorch (``exp`` of an int is float32, never a silent float64).
"""

import numpy as np

from . import tensor as _T  # the module (imported while tinygrad_lite.tensor loads)
from ._tensor_methods import _binary, _check_broadcast, _lift
from .errors import DTypeError, ShapeError
from .ops import indexing as I
from .ops import pointwise as P
from .ops import scan as S
from .ops.reduce import check_axis, normalize_axis
from .returns import ValuesIndices
from .tensor import Tensor


def _method(name):
    def deco(f):
        setattr(Tensor, name, f)
        return f

    return deco


def _floating(t):
    """Integer and bool tensors enter float math in the default float dtype."""
    return t if t.dtype.kind == "f" else t.astype(_T._DEFAULT_FLOAT)


def _const(a):
    return Tensor._wrap(a, False)


def _as_index(index, op):
    a = index.data if isinstance(index, Tensor) else np.asarray(index)
    if a.dtype.kind not in "iu":
        raise DTypeError(f"{op}: index must be an integer tensor, got dtype {a.dtype}")
    return a.astype(np.int64, copy=False)


# ------------------------------------------------------------------ elementwise math ---

for _name, _fn in (("sin", P.Sin), ("cos", P.Cos), ("tan", P.Tan), ("asin", P.Asin),
                   ("acos", P.Acos), ("atan", P.Atan), ("sinh", P.Sinh), ("cosh", P.Cosh),
                   ("asinh", P.Asinh), ("acosh", P.Acosh), ("atanh", P.Atanh),
                   ("rsqrt", P.Rsqrt), ("log2", P.Log2), ("log10", P.Log10),
                   ("log1p", P.Log1p), ("expm1", P.Expm1), ("exp2", P.Exp2), ("frac", P.Frac)):
    setattr(Tensor, _name, (lambda fn: lambda self: fn.apply(_floating(self)))(_fn))
for _alias, _name in (("arcsin", "asin"), ("arccos", "acos"), ("arctan", "atan"),
                      ("arcsinh", "asinh"), ("arccosh", "acosh"), ("arctanh", "atanh")):
    setattr(Tensor, _alias, getattr(Tensor, _name))


def _rounding(fn):
    def method(self):
        return self if self.dtype.kind in "iub" else fn.apply(self)   # integers are exact

    method.__doc__ = fn.__doc__
    return method


Tensor.floor, Tensor.ceil, Tensor.trunc = (_rounding(P.Floor), _rounding(P.Ceil),
                                           _rounding(P.Trunc))
Tensor.fix = Tensor.trunc


@_method("round")
def round_(self, decimals=0):
    """Round half to even (NumPy and PyTorch); zero gradient."""
    return self if self.dtype.kind in "iub" and decimals >= 0 else P.Round.apply(
        self, decimals=decimals)


Tensor.__round__ = lambda self, ndigits=None: self.round(ndigits or 0)


@_method("sign")
def sign(self):
    """sign(x) in {-1, 0, 1}; piecewise constant: its gradient is zero (PyTorch)."""
    return P.Sign.apply(self)


Tensor.sgn = sign

Tensor.atan2 = Tensor.arctan2 = _binary(P.Atan2)
Tensor.copysign = _binary(P.Copysign)
Tensor.logaddexp = _binary(P.Logaddexp)
Tensor.fmod = _binary(P.Fmod)
Tensor.remainder = Tensor.__mod__ = _binary(P.Remainder)
Tensor.__rmod__ = _binary(P.Remainder, swap=True)
Tensor.floor_divide = Tensor.__floordiv__ = _binary(P.FloorDivide)
Tensor.__rfloordiv__ = _binary(P.FloorDivide, swap=True)


@_method("lerp")
def lerp(self, end, weight):
    """self + weight * (end - self)."""
    end, weight = _lift(end, self), _lift(weight, self)
    if not self.shape == end.shape == weight.shape:
        _check_broadcast("lerp", self, end, weight)
    return P.Lerp.apply(self, end, weight)


@_method("div")
def div(self, other, rounding_mode=None):
    """True division; ``rounding_mode='trunc'`` rounds toward zero, ``'floor'`` down (``//``).
    Rounded quotients have zero gradient and keep an integer dtype for integer operands."""
    if rounding_mode is None:
        return self / other
    if rounding_mode == "floor":
        return self // other
    if rounding_mode != "trunc":
        raise ValueError(f"div: rounding_mode must be None, 'trunc' or 'floor', got "
                         f"{rounding_mode!r}")
    other = _lift(other, self)
    if self.dtype.kind in "iub" and other.dtype.kind in "iub":
        q = self // other
        wrong = (self.fmod(other) != 0) & ((self < 0) ^ (other < 0))
        return q + wrong.astype(q.dtype)
    return (self / other).trunc()


Tensor.true_divide = Tensor.__truediv__

# ------------------------------------------------------------------ tests (no gradient) ---


def _test(ufunc):
    def method(self):
        return _const(ufunc(self.data))

    return method


Tensor.isnan, Tensor.isinf, Tensor.isfinite = _test(np.isnan), _test(np.isinf), _test(np.isfinite)
Tensor.isposinf, Tensor.isneginf = _test(np.isposinf), _test(np.isneginf)


@_method("isclose")
def isclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    other = _lift(other, self)
    return _const(np.isclose(self.data, other.data, rtol=rtol, atol=atol, equal_nan=equal_nan))


@_method("allclose")
def allclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    return bool(self.isclose(other, rtol, atol, equal_nan).data.all())


@_method("nan_to_num")
def nan_to_num(self, nan=0.0, posinf=None, neginf=None):
    """Replace nan/inf (defaults: 0 and the dtype's largest/smallest finite values)."""
    return P.NanToNum.apply(self, nan=nan, posinf=posinf, neginf=neginf)


def _logical(ufunc, name, swap=False):
    def method(self, other):
        other = _lift(other, self)
        if self.dtype.kind not in "iub" or other.dtype.kind not in "iub":
            raise DTypeError(f"{name}: needs bool or integer tensors, got {self.dtype} and "
                             f"{other.dtype}")
        a, b = (other, self) if swap else (self, other)
        return _const(ufunc(a.data, b.data))

    return method


for _name, _uf in (("and", np.bitwise_and), ("or", np.bitwise_or), ("xor", np.bitwise_xor)):
    setattr(Tensor, f"__{_name}__", _logical(_uf, f"__{_name}__"))
    setattr(Tensor, f"__r{_name}__", _logical(_uf, f"__r{_name}__", swap=True))
    setattr(Tensor, f"bitwise_{_name}", _logical(_uf, f"bitwise_{_name}"))
    setattr(Tensor, f"logical_{_name}",
            (lambda uf: lambda self, o: _const(getattr(np, uf)(
                self.data, _lift(o, self).data)))(f"logical_{_name}"))


@_method("__invert__")
def invert(self):
    if self.dtype.kind not in "iub":
        raise DTypeError(f"__invert__: ~ needs a bool or integer tensor, got {self.dtype}")
    return _const(np.invert(self.data))


Tensor.bitwise_not = invert
Tensor.logical_not = lambda self: _const(np.logical_not(self.data))

# ------------------------------------------------------------------ activations ---


@_method("silu")
def silu(self):
    """x * sigmoid(x) (swish)."""
    return self * self.sigmoid()


Tensor.swish = silu


@_method("mish")
def mish(self):
    """x * tanh(softplus(x))."""
    return self * self.softplus().tanh()


@_method("selu")
def selu(self):
    """scale * elu(x, alpha) with PyTorch's alpha = 1.6732632..., scale = 1.0507009..."""
    return self.elu(1.6732632423543772848170429916717) * 1.0507009873554804934193349852946


@_method("celu")
def celu(self, alpha=1.0):
    """max(0, x) + min(0, alpha (e^(x/alpha) - 1)) = alpha * elu(x / alpha)."""
    return (self * (1.0 / alpha)).elu(1.0) * alpha


@_method("hardtanh")
def hardtanh(self, min_val=-1.0, max_val=1.0):
    """clip(x, min_val, max_val) with a zero gradient at the two boundaries (PyTorch)."""
    return P.HardTanh.apply(self, lo=min_val, hi=max_val)


@_method("relu6")
def relu6(self):
    """min(max(x, 0), 6) = hardtanh(x, 0, 6)."""
    return P.HardTanh.apply(self, lo=0.0, hi=6.0)


@_method("hardsigmoid")
def hardsigmoid(self):
    """relu6(x + 3) / 6 = hardtanh(x / 6 + 1/2, 0, 1); gradient 0 at x = +-3 (PyTorch)."""
    return P.HardTanh.apply(self * (1 / 6) + 0.5, lo=0.0, hi=1.0)


@_method("hardswish")
def hardswish(self):
    """x * relu6(x + 3) / 6 = x * hardsigmoid(x) (gradient 0 at x = -3 and 1 at x = 3, as
    PyTorch)."""
    return self * self.hardsigmoid()


@_method("softsign")
def softsign(self):
    """x / (1 + |x|)."""
    return self / (1 + self.abs())


@_method("logsigmoid")
def logsigmoid(self):
    """log sigmoid(x) = -softplus(-x) (stable for large |x|)."""
    return -(-self).softplus()


@_method("softmin")
def softmin(self, axis=-1, dim=None):
    return (-self).softmax(axis=dim if dim is not None else axis)


@_method("glu")
def glu(self, axis=-1, dim=None):
    """a * sigmoid(b) where (a, b) are the two halves of x along ``dim``."""
    a = check_axis(dim if dim is not None else axis, self.ndim, "glu")
    if self.shape[a] % 2:
        raise ShapeError(f"glu: the halved axis must have an even length, got shape "
                         f"{self.shape} and dim={a}")
    first, second = self.split(self.shape[a] // 2, axis=a)
    return first * second.sigmoid()


# ------------------------------------------------------------------ scans ---


def _scan_axis(self, dim, axis, op):
    ax = axis if axis is not None else dim
    if ax is None:
        return self.reshape(-1), 0
    if self.ndim == 0:
        check_axis(ax, 1, op)
        return self.reshape(1), 0
    return self, check_axis(ax, self.ndim, op)


def _scan(fn):
    def method(self, dim=None, *, axis=None, dtype=None):
        x, a = _scan_axis(self, dim, axis, fn.op_name)
        if dtype is not None:
            x = x.astype(dtype)
        y = fn.apply(_floating(x) if fn is S.Logcumsumexp else x, axis=a)
        return y.reshape(self.shape) if self.ndim == 0 else y

    method.__doc__ = (f"{fn.__doc__}\n\n``dim`` (PyTorch) or ``axis`` (NumPy); neither: over "
                      "the flattened tensor (NumPy).")
    return method


Tensor.cumsum, Tensor.cumprod = _scan(S.Cumsum), _scan(S.Cumprod)
Tensor.logcumsumexp = _scan(S.Logcumsumexp)


def _cum_extreme(ufunc, op):
    def method(self, dim=None, *, axis=None):
        if dim is None and axis is None:
            raise TypeError(f"{op}: missing the axis, give dim (PyTorch) or axis= (NumPy)")
        x, a = _scan_axis(self, dim, axis, op)
        data = x.data
        run = ufunc.accumulate(data, axis=a) if data.size else data
        pos = np.arange(data.shape[a]).reshape([-1 if i == a else 1 for i in range(data.ndim)])
        hit = (data == run) | (np.isnan(data) if data.dtype.kind == "f" else False)
        idx = np.maximum.accumulate(np.where(hit, pos, 0), axis=a) if data.size else \
            np.zeros(data.shape, np.int64)
        values = I.Gather.apply(x, index=idx.astype(np.int64), axis=a)
        if self.ndim == 0:
            values, idx = values.reshape(()), idx.reshape(())
        return values if axis is not None else ValuesIndices(values, _const(idx.astype(np.int64)))

    method.__doc__ = (f"Running {op[3:]} along ``dim``: (values, indices), the index of the "
                      "latest extreme on ties; the gradient flows to the chosen elements.")
    return method


Tensor.cummax = _cum_extreme(np.maximum, "cummax")
Tensor.cummin = _cum_extreme(np.minimum, "cummin")

# ------------------------------------------------------------------ statistics ---


@_method("var_mean")
def var_mean(self, axis=None, keepdims=False, *, correction=None, ddof=None, dim=None,
             keepdim=None, unbiased=None):
    """(var, mean) in one call, as torch.var_mean."""
    kw = dict(correction=correction, ddof=ddof, dim=dim, keepdim=keepdim, unbiased=unbiased)
    return self.var(axis, keepdims, **kw), self.mean(axis, keepdims, dim=dim, keepdim=keepdim)


@_method("std_mean")
def std_mean(self, axis=None, keepdims=False, *, correction=None, ddof=None, dim=None,
             keepdim=None, unbiased=None):
    kw = dict(correction=correction, ddof=ddof, dim=dim, keepdim=keepdim, unbiased=unbiased)
    return self.std(axis, keepdims, **kw), self.mean(axis, keepdims, dim=dim, keepdim=keepdim)


@_method("norm")
def norm(self, p="fro", dim=None, keepdim=False, *, axis=None, keepdims=None):
    """Vector norm over ``dim`` (all elements by default): p = 1 (sum |x|), 2 or 'fro'
    (sqrt sum x^2), inf (max |x|), -inf (min |x|), or any other number
    ((sum |x|^p)^(1/p))."""
    axis = dim if axis is None else axis
    keep = keepdim if keepdims is None else keepdims
    x = _floating(self)
    if p in ("fro", 2, 2.0):
        return (x * x).sum(axis=axis, keepdims=keep).sqrt()
    if p in (1, 1.0):
        return x.abs().sum(axis=axis, keepdims=keep)
    if p == float("inf"):
        return _values(x.abs().max(axis=axis, keepdims=keep))
    if p == -float("inf"):
        return _values(x.abs().min(axis=axis, keepdims=keep))
    if isinstance(p, str):
        raise ValueError(f"norm: p must be a number or 'fro', got {p!r}")
    return (x.abs() ** p).sum(axis=axis, keepdims=keep) ** (1.0 / p)


def _values(r):
    return r.values if isinstance(r, ValuesIndices) else r


@_method("count_nonzero")
def count_nonzero(self, dim=None, *, axis=None):
    axis = dim if axis is None else axis
    axes = normalize_axis(axis, self.ndim, "count_nonzero")
    return _const(np.asarray(np.count_nonzero(self.data, axis=axes or None), dtype=np.int64))


from . import _tensor_indexing  # noqa: E402,F401  (sorting, layout, gather, scatter)
