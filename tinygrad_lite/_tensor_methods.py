"""Tensor methods and operators, each a one-liner over a Function or a short composition.

Kept apart from tensor.py so the Tensor class itself (data, grad, backward) reads in one sitting.
Composite methods (mean, var, logsumexp, ...) need no backward of their own: autograd
differentiates the ops they are made of.
"""

import numpy as np

from . import tensor as _T  # the module (imported while tinygrad_lite.tensor loads)
from .errors import AxisError, ShapeError
from .returns import ValuesIndices
from .ops import elementwise as E
from .ops import movement as M
from .ops import nn as N
from .ops import reduce as R
from .tensor import Tensor


def _lift(other, like):
    """Turn a Python scalar or array into a Tensor. Python scalars are weak (PyTorch): one that
    fits ``like``'s kind takes its dtype (any number with a float tensor, an int with an int
    tensor); a float with an int/bool tensor gets the default float dtype, an int with a bool
    tensor int64."""
    if isinstance(other, Tensor):
        return other
    if isinstance(other, (bool, int, float)) and not isinstance(other, np.generic):
        kind = like.dtype.kind
        if kind == "f" or isinstance(other, bool) or (isinstance(other, int) and kind in "iu"):
            return Tensor._wrap(like.xp.asarray(other, dtype=like.dtype), False)
        dtype = np.int64 if isinstance(other, int) else _T._DEFAULT_FLOAT
        return Tensor._wrap(like.xp.asarray(other, dtype=dtype), False)
    if like.xp is not np:
        return Tensor._wrap(like.xp.asarray(other), False)
    return Tensor._wrap(np.asarray(other), False)


def _promote(a, b):
    """PyTorch's category rule: a float operand pulls an int/bool one to its float dtype (an int
    tensor + a float32 tensor is float32, not NumPy's float64); otherwise NumPy promotion."""
    ka, kb = a.data.dtype.kind, b.data.dtype.kind
    if ka == kb:
        return a, b
    if ka == "f":
        return a, b.astype(a.dtype)
    if kb == "f" and ka != "f":
        return a.astype(b.dtype), b
    return a, b


def _binary(fn, swap=False):
    def method(self, other):
        if type(other) is Tensor and other.data.dtype is self.data.dtype and fn is not E.Div:
            a, b = (other, self) if swap else (self, other)     # the common case: as it is
        else:
            other = _lift(other, self)
            a, b = _promote(other, self) if swap else _promote(self, other)
            if fn is E.Div and a.dtype.kind != "f":   # int / int: true division in default float
                a, b = a.astype(_T._DEFAULT_FLOAT), b.astype(_T._DEFAULT_FLOAT)
        try:
            return fn.apply(a, b)
        except ValueError:
            _check_broadcast(fn.op_name, a, b)
            raise

    return method


def _check_broadcast(op, *ts):
    """Raise our ShapeError (not NumPy's ValueError) when the operands do not broadcast."""
    try:
        np.broadcast_shapes(*(t.shape for t in ts))
    except ValueError:
        raise ShapeError(f"{op}: shapes do not broadcast, got "
                         f"{' and '.join(str(t.shape) for t in ts)}; align trailing dimensions "
                         "(each pair equal or one of them 1), e.g. with reshape") from None


def _method(name):
    def deco(f):
        setattr(Tensor, name, f)
        return f

    return deco


# ------------------------------------------------------------------ arithmetic ---

for _name, _fn in (("add", E.Add), ("sub", E.Sub), ("mul", E.Mul), ("truediv", E.Div),
                   ("pow", E.Pow)):
    setattr(Tensor, f"__{_name}__", _binary(_fn))
    setattr(Tensor, f"__r{_name}__", _binary(_fn, swap=True))
Tensor.add, Tensor.sub, Tensor.mul = Tensor.__add__, Tensor.__sub__, Tensor.__mul__
Tensor.div = Tensor.__truediv__
Tensor.maximum = _binary(E.Maximum)
Tensor.minimum = _binary(E.Minimum)


@_method("pow")
def pow(self, exponent):
    return self.__pow__(exponent)


@_method("__neg__")
def neg(self):
    return E.Neg.apply(self)


Tensor.neg = neg


@_method("__matmul__")
def matmul(self, other):
    """A @ B with NumPy semantics: 1-D operands are promoted to a matrix and the added axis is
    dropped from the result; leading axes broadcast."""
    other = _lift(other, self)
    if self.ndim == 0 or other.ndim == 0:
        raise ShapeError(f"matmul: both operands need at least 1 dimension, got shapes "
                         f"{self.shape} and {other.shape}; use * for scalars")
    N.check_same_float("matmul", self, other)
    a = self.reshape(1, -1) if self.ndim == 1 else self
    b = other.reshape(-1, 1) if other.ndim == 1 else other
    if a.shape[-1] != b.shape[-2]:
        raise ShapeError(f"matmul: inner dimensions differ, got a.shape={self.shape} and "
                         f"b.shape={other.shape} ({a.shape[-1]} != {b.shape[-2]})")
    try:
        if a.ndim > 2 or b.ndim > 2:
            np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ShapeError(f"matmul: batch dimensions do not broadcast, got a.shape={self.shape} "
                         f"and b.shape={other.shape}") from None
    y = N.MatMul.apply(a, b)
    if self.ndim == 1:
        y = y.squeeze(-2)
    if other.ndim == 1:
        y = y.squeeze(-1)
    return y


Tensor.matmul = matmul
Tensor.__rmatmul__ = lambda self, other: _lift(other, self).__matmul__(self)
Tensor.dot = matmul

# ------------------------------------------------------------------ comparisons (no grad) ---


def _compare(ufunc):
    def method(self, other):
        other = _lift(other, self)
        if self.shape != other.shape:
            _check_broadcast(ufunc.__name__, self, other)
        return Tensor._wrap(ufunc(self.data, other.data), False)

    return method


for _name, _uf in (("eq", np.equal), ("ne", np.not_equal), ("lt", np.less),
                   ("le", np.less_equal), ("gt", np.greater), ("ge", np.greater_equal)):
    setattr(Tensor, f"__{_name}__", _compare(_uf))
    setattr(Tensor, _name, _compare(_uf))
Tensor.__hash__ = lambda self: id(self)


@_method("argmax")
def argmax(self, axis=None, keepdims=False, dim=None, keepdim=None):
    axis, keepdims = _axis_args(axis, keepdims, dim, keepdim)
    if axis is not None:
        axis = R.check_axis(axis, max(self.ndim, 1), "argmax") if self.ndim else None
    return Tensor._wrap(self.xp.argmax(self.data, axis=axis, keepdims=keepdims), False)


@_method("argmin")
def argmin(self, axis=None, keepdims=False, dim=None, keepdim=None):
    axis, keepdims = _axis_args(axis, keepdims, dim, keepdim)
    if axis is not None:
        axis = R.check_axis(axis, max(self.ndim, 1), "argmin") if self.ndim else None
    return Tensor._wrap(self.xp.argmin(self.data, axis=axis, keepdims=keepdims), False)


@_method("any")
def any_(self, axis=None, keepdims=False, dim=None, keepdim=None):
    axis, keepdims = _axis_args(axis, keepdims, dim, keepdim)
    axes = R.normalize_axis(axis, self.ndim, "any")
    return Tensor._wrap(self.data.any(axis=axes, keepdims=keepdims), False)


@_method("all")
def all_(self, axis=None, keepdims=False, dim=None, keepdim=None):
    axis, keepdims = _axis_args(axis, keepdims, dim, keepdim)
    axes = R.normalize_axis(axis, self.ndim, "all")
    return Tensor._wrap(self.data.all(axis=axes, keepdims=keepdims), False)


# ------------------------------------------------------------------ unary ---

for _name, _fn in (("exp", E.Exp), ("log", E.Log), ("sqrt", E.Sqrt), ("abs", E.Abs),
                   ("relu", E.ReLU), ("sigmoid", E.Sigmoid), ("tanh", E.Tanh),
                   ("softplus", E.Softplus), ("erf", E.Erf)):
    setattr(Tensor, _name, (lambda fn: lambda self: fn.apply(
        self if self.dtype.kind == "f" or fn in (E.Abs, E.ReLU)
        else self.astype(_T._DEFAULT_FLOAT)))(_fn))
Tensor.__abs__ = Tensor.abs


@_method("leaky_relu")
def leaky_relu(self, negative_slope=0.01):
    return E.LeakyReLU.apply(self, negative_slope=negative_slope)


@_method("elu")
def elu(self, alpha=1.0):
    return E.ELU.apply(self, alpha=alpha)


@_method("gelu")
def gelu(self, approximate="none"):
    """GELU(x) = x * Phi(x) = x/2 (1 + erf(x / sqrt 2)); ``approximate='tanh'`` uses
    x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    if approximate == "tanh":
        return 0.5 * self * (1 + (0.7978845608028654 * (self + 0.044715 * self ** 3)).tanh())
    if approximate != "none":
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return 0.5 * self * (1 + (self * 0.7071067811865476).erf())


@_method("clip")
def clip(self, min=None, max=None):
    if min is None and max is None:
        raise ValueError("clip: at least one of min and max must be given, got neither")
    return E.Clip.apply(self, lo=min, hi=max)


Tensor.clamp = clip


@_method("where")
def where(self, a, b):
    """``cond.where(a, b)``: elementwise a where self is true, else b (``tinygrad_lite.where``)."""
    like = a if isinstance(a, Tensor) else b if isinstance(b, Tensor) else None
    if like is None:   # two Python scalars: bool, int64 or the default float (PyTorch)
        a, b = _promote(_scalar_tensor(a), _scalar_tensor(b))
    else:
        a, b = _promote(_lift(a, like), _lift(b, like))
    if not self.shape == a.shape == b.shape:
        _check_broadcast("where", self, a, b)
    return E.Where.apply(self, a, b)


def _scalar_tensor(v):
    if isinstance(v, bool):
        return Tensor._wrap(np.asarray(v), False)
    if isinstance(v, int):
        return Tensor._wrap(np.asarray(v, dtype=np.int64), False)
    return Tensor(v)


@_method("square")
def square(self):
    return self * self


@_method("reciprocal")
def reciprocal(self):
    return 1 / self


# ------------------------------------------------------------------ reductions ---


def _axis_args(axis, keepdims, dim, keepdim):
    return (dim if axis is None else axis), (keepdim if keepdim is not None else keepdims)


_ALL_AXES = tuple(tuple(range(n)) for n in range(33))   # axis=None, per ndim (NumPy's max 32)


def _reduce(fn):
    def method(self, axis=None, keepdims=False, dim=None, keepdim=None):
        if dim is not None or keepdim is not None:
            axis, keepdims = _axis_args(axis, keepdims, dim, keepdim)
        axes = (_ALL_AXES[self.data.ndim] if axis is None else
                R.normalize_axis(axis, self.data.ndim, fn.op_name))
        return fn.apply(self, axis=axes, keepdims=keepdims)

    method.__doc__ = fn.__doc__
    return method


Tensor.sum = _reduce(R.Sum)
Tensor.prod = _reduce(R.Prod)


def _count(t, axis):
    axes = R.normalize_axis(axis, t.ndim, "mean")
    return int(np.prod([t.shape[a] for a in axes])) if axes else 1


@_method("mean")
def mean(self, axis=None, keepdims=False, dim=None, keepdim=None):
    """mean = sum / n;  d mean / dx_i = 1/n."""
    axis, keepdims = _axis_args(axis, keepdims, dim, keepdim)
    n = _count(self, axis)
    x = self if self.dtype.kind == "f" else self.astype(_T._DEFAULT_FLOAT)
    return x.sum(axis=axis, keepdims=keepdims) * (1.0 / n if n else float("nan"))  # empty: nan


@_method("var")
def var(self, axis=None, keepdims=False, *, correction=None, ddof=None, dim=None, keepdim=None,
        unbiased=None):
    """var = sum (x - mean)^2 / max(n - correction, 0). Default correction=1 (PyTorch, the
    unbiased estimate); ``ddof=`` is NumPy's name for it (``ddof=0``: the population variance),
    ``unbiased=False`` PyTorch's older one. n - correction <= 0 gives inf (nan where the sum is
    0 too), as PyTorch."""
    axis, keepdims = _axis_args(axis, keepdims, dim, keepdim)
    if unbiased is not None and correction is None and ddof is None:
        correction = int(bool(unbiased))
    if correction is not None and ddof is not None:
        raise ValueError(f"var: give correction or ddof, not both, got {correction} and {ddof}")
    c = correction if correction is not None else ddof if ddof is not None else 1
    d = _count(self, axis) - c
    x = self if self.dtype.kind == "f" else self.astype(_T._DEFAULT_FLOAT)
    centered = x - x.mean(axis=axis, keepdims=True)
    return (centered * centered).sum(axis=axis, keepdims=keepdims) * (
        1.0 / d if d > 0 else float("inf"))


@_method("std")
def std(self, axis=None, keepdims=False, *, correction=None, ddof=None, dim=None, keepdim=None,
        unbiased=None):
    """sqrt(var); same arguments as ``var`` (default correction=1, PyTorch)."""
    return self.var(axis, keepdims, correction=correction, ddof=ddof, dim=dim, keepdim=keepdim,
                    unbiased=unbiased).sqrt()


@_method("logsumexp")
def logsumexp(self, axis=None, keepdims=False, dim=None, keepdim=None):
    """log sum_i e^(x_i) = m + log sum_i e^(x_i - m) with m = max x held constant (stable)."""
    axis, keepdims = _axis_args(axis, keepdims, dim, keepdim)
    m = self.detach().max(axis=axis, keepdims=True)
    out = (self - m).exp().sum(axis=axis, keepdims=True).log() + m
    if not keepdims:
        axes = R.normalize_axis(axis, self.ndim, "logsumexp")
        out = out.reshape([s for i, s in enumerate(out.shape) if i not in axes])
    return out


def _softmax_call(fn, self, axis, dim):
    a = R.check_axis(dim if dim is not None else axis, max(self.ndim, 1), fn.op_name)
    if self.ndim == 0:                     # a 0-d tensor is one class: softmax 1, log 0
        return fn.apply(self.reshape(1), axis=0).reshape(())
    return fn.apply(self, axis=a)


@_method("softmax")
def softmax(self, axis=-1, dim=None):
    return _softmax_call(N.Softmax, self, axis, dim)


@_method("log_softmax")
def log_softmax(self, axis=-1, dim=None):
    return _softmax_call(N.LogSoftmax, self, axis, dim)


# ------------------------------------------------------------------ movement ---


@_method("reshape")
def reshape(self, *shape):
    shape = tuple(shape[0]) if len(shape) == 1 and not isinstance(shape[0], int) else shape
    try:
        new = self.data.reshape(shape).shape  # a view: resolves -1 and checks the size
    except ValueError:
        raise ShapeError(f"reshape: cannot reshape, got shape {self.shape} ({self.size} elements)"
                         f" into {shape}") from None
    if new == self.shape:
        return self
    return M.Reshape.apply(self, shape=new)


Tensor.view = reshape


@_method("flatten")
def flatten(self, start_dim=0, end_dim=-1):
    if self.ndim == 0:
        return self.reshape(1)
    s, e = R.check_axis(start_dim, self.ndim, "flatten"), R.check_axis(end_dim, self.ndim,
                                                                        "flatten")
    return self.reshape(self.shape[:s] + (-1,) + self.shape[e + 1:])


@_method("permute")
def permute(self, *axes):
    axes = tuple(axes[0]) if len(axes) == 1 and not isinstance(axes[0], int) else axes
    if any(not -self.ndim <= a < max(self.ndim, 1) for a in axes):
        raise AxisError(f"permute: axis out of range for a tensor of {self.ndim} dims, got "
                        f"{axes}")
    if sorted(a % max(self.ndim, 1) for a in axes) != list(range(self.ndim)):
        raise ShapeError(f"permute: axes must be a permutation of 0..{self.ndim - 1}, got {axes}")
    axes = tuple(a % self.ndim for a in axes)
    if axes == tuple(range(self.ndim)):
        return self
    return M.Permute.apply(self, axes=axes)


@_method("transpose")
def transpose(self, *axes):
    """``transpose()`` reverses the axes (NumPy); ``transpose(a, b)`` swaps two (PyTorch)."""
    if len(axes) == 2 and all(isinstance(a, int) for a in axes):
        return self.swapaxes(*axes)
    if not axes:
        return self.T
    return self.permute(*axes)


@_method("swapaxes")
def swapaxes(self, a, b):
    order = list(range(self.ndim))
    a, b = R.check_axis(a, self.ndim, "swapaxes"), R.check_axis(b, self.ndim, "swapaxes")
    order[a], order[b] = order[b], order[a]
    return self.permute(order)


@_method("expand")
def expand(self, *shape):
    shape = tuple(shape[0]) if len(shape) == 1 and not isinstance(shape[0], int) else shape
    shape = tuple(self.shape[i - (len(shape) - self.ndim)] if s == -1 else s
                  for i, s in enumerate(shape))
    if shape == self.shape:
        return self
    lead = len(shape) - self.ndim
    if lead < 0 or any(s != t and s != 1 for s, t in zip(self.shape, shape[lead:])):
        raise ShapeError(f"expand: cannot broadcast, got shape {self.shape} to {shape}")
    if shape == self.shape:
        return self
    return M.Expand.apply(self, shape=shape)


Tensor.broadcast_to = expand


@_method("squeeze")
def squeeze(self, axis=None, dim=None):
    axis = dim if axis is None else axis
    if axis is None:
        return self.reshape([s for s in self.shape if s != 1])
    axes = R.normalize_axis(axis, self.ndim, "squeeze")
    return self.reshape([s for i, s in enumerate(self.shape) if not (i in axes and s == 1)])


@_method("unsqueeze")
def unsqueeze(self, axis=None, dim=None):
    axis = R.check_axis(dim if axis is None else axis, self.ndim + 1, "unsqueeze")
    return self.reshape(self.shape[:axis] + (1,) + self.shape[axis:])


Tensor.expand_dims = unsqueeze


def _index_arg(i):
    if isinstance(i, Tensor):
        return i.data
    if isinstance(i, list):
        return np.asarray(i)
    return i


@_method("__getitem__")
def getitem(self, index):
    index = tuple(_index_arg(i) for i in index) if isinstance(index, tuple) else _index_arg(index)
    try:
        np.empty(self.shape, dtype=bool)[index]
    except IndexError as e:
        raise AxisError(f"getitem: bad index for shape {self.shape}, got {e}") from None
    return M.GetItem.apply(self, index=index)


@_method("__setitem__")
def setitem(self, index, value):
    if self.requires_grad or self._node is not None:
        raise RuntimeError("setitem: in-place assignment into a tensor that is part of the "
                           "graph would corrupt its gradient; use where() or cat() instead")
    index = tuple(_index_arg(i) for i in index) if isinstance(index, tuple) else _index_arg(index)
    self.data[index] = value.data if isinstance(value, Tensor) else value


@_method("pad")
def pad(self, pad_width, value=0.0):
    """Constant padding with NumPy's ``pad_width`` (an int, a pair, or one pair per axis)."""
    pw = np.broadcast_to(np.asarray(pad_width, dtype=int), (self.ndim, 2))
    if (pw < 0).any():
        raise ShapeError(f"pad: pad widths must be >= 0, got {pad_width!r}")
    return M.Pad.apply(self, pad_width=tuple(map(tuple, pw.tolist())), value=value)


@_method("tile")
def tile(self, *reps):
    """Repeat the whole tensor ``reps`` times along each axis (np.tile / torch.repeat):
    written as reshape -> expand -> reshape, so its gradient is a sum over the copies."""
    reps = tuple(reps[0]) if len(reps) == 1 and not isinstance(reps[0], int) else reps
    nd = max(len(reps), self.ndim)
    reps = (1,) * (nd - len(reps)) + tuple(reps)
    x = self.reshape((1,) * (nd - self.ndim) + self.shape)
    inter = sum(((1, s) for s in x.shape), ())
    big = sum(((r, s) for r, s in zip(reps, x.shape)), ())
    return x.reshape(inter).expand(big).reshape(tuple(r * s for r, s in zip(reps, x.shape)))


Tensor.repeat = tile


@_method("split")
def split(self, split_size_or_sections, axis=0, dim=None):
    """PyTorch semantics: an int gives chunks of that size; a list gives the chunk sizes."""
    axis = R.check_axis(dim if dim is not None else axis, self.ndim, "split")
    n = self.shape[axis]
    if isinstance(split_size_or_sections, int):
        sizes = [split_size_or_sections] * (n // split_size_or_sections)
        if n % split_size_or_sections:
            sizes.append(n % split_size_or_sections)
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != n:
            raise ShapeError(f"split: sizes must add up to the axis length, got {sizes} for "
                             f"length {n}")
    out, start = [], 0
    for s in sizes:
        out.append(self[(slice(None),) * axis + (slice(start, start + s),)])
        start += s
    return tuple(out)


@_method("chunk")
def chunk(self, chunks, axis=0):
    n = self.shape[axis]
    return self.split(-(-n // chunks), axis=axis)


@_method("type_as")
def type_as(self, other):
    return self.astype(other.dtype)


# ------------------------------------------------------------------ PyTorch-style names ---


def _extremum_pair(fn, arg_reducer, name):
    def method(self, *args, axis=None, keepdims=False, dim=None, keepdim=None):
        if args and isinstance(args[0], Tensor):          # torch.max(a, b): elementwise
            return (self.maximum if name == "max" else self.minimum)(args[0])
        if len(args) > 2:
            raise TypeError(f"{name}: takes at most (dim, keepdim) positionally, got {args!r}")
        if args:
            dim = args[0]
            keepdim = args[1] if len(args) > 1 else keepdim
        if dim is not None and axis is not None:
            raise TypeError(f"{name}: pass dim (PyTorch) or axis (NumPy), got dim={dim!r} and "
                            f"axis={axis!r}")
        if dim is None:                                   # NumPy style: the values
            kd = keepdims if keepdim is None else keepdim
            return fn.apply(self, axis=R.normalize_axis(axis, self.ndim, name), keepdims=kd)
        if not isinstance(dim, (int, np.integer)):
            raise TypeError(f"{name}: dim must be an int when indices are returned, got "
                            f"{dim!r}; use axis= for a tuple of axes")
        kd = bool(keepdim) if keepdim is not None else bool(keepdims)
        (d,) = R.normalize_axis(int(dim), self.ndim, name)
        values = fn.apply(self, axis=(d,), keepdims=kd)
        idx = getattr(self.xp, arg_reducer)(self.data, axis=d if self.ndim else None,
                                            keepdims=kd)
        return ValuesIndices(values, Tensor._wrap(self.xp.asarray(idx, dtype=np.int64), False))

    method.__name__ = name
    method.__doc__ = (
        f"{name} over ``dim`` (PyTorch) or ``axis`` (NumPy), with different results:\n\n"
        f"- ``t.{name}(1)`` or ``t.{name}(dim=1)``: a named pair ``ValuesIndices(values, "
        f"indices)``, as torch.{name}; ``t.{name}(1)[1]`` is the {arg_reducer} (first hit on "
        "ties).\n"
        f"- ``t.{name}(axis=1)`` or ``t.{name}()``: the values alone, as np.{name}.\n"
        f"- ``t.{name}(other_tensor)``: elementwise, as torch.{name}(a, b).\n\n"
        "The gradient of the values flows to the extreme elements (ties share it evenly); the "
        "indices carry no gradient.")
    return method


Tensor.max = _extremum_pair(R.Max, "argmax", "max")
Tensor.min = _extremum_pair(R.Min, "argmin", "min")


@_method("__iter__")
def iter_(self):
    """Iterate over the first axis (``for row in t``, ``a, b = t``), as PyTorch and NumPy."""
    if self.ndim == 0:
        raise TypeError("iter: iteration over a 0-d tensor, got shape (); use .item()")
    return (self[i] for i in range(self.shape[0]))


@_method("dim")
def dim_(self):
    """Number of axes (PyTorch's ``dim()``; NumPy's ``ndim``)."""
    return self.ndim


@_method("contiguous")
def contiguous(self):
    """A C-contiguous tensor with the same values (``self`` when it already is)."""
    if self.data.flags.c_contiguous:
        return self
    return M.Contiguous.apply(self)


@_method("int")
def int_(self):
    return self.astype(np.int32)


@_method("bool")
def bool_(self):
    return self.astype(np.bool_)


from . import _tensor_ops  # noqa: E402,F401  (more methods: math, scans, sorting, indexing)
