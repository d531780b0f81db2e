"""Tensor methods for sorting, layout, gather and scatter: one-liners over ops/indexing.py
(Flip, Roll, Tril, Triu, Diagonal, Gather, Scatter, ...) or short compositions of getitem,
permute and reshape.

PyTorch-style pairs: ``sort/topk/kthvalue/median`` called with a positional ``dim`` or ``dim=``
return ``returns.ValuesIndices(values, indices)``; with NumPy's ``axis=`` the values alone
(``median(axis=)`` then averages the two middle values, as NumPy; ``median(dim)`` takes the lower
one, as PyTorch). The values are a ``gather`` of the input at the indices, so gradients flow
through the chosen elements.
"""

import numpy as np

from ._tensor_methods import _lift
from ._tensor_ops import _as_index, _const, _method, _values
from .errors import AxisError, DTypeError, ShapeError
from .ops import elementwise as E
from .ops import indexing as I
from .ops.reduce import check_axis, normalize_axis
from .returns import ValuesIndices
from .tensor import Tensor


# ------------------------------------------------------------------ sorting ---


def _sort_axis(self, dim, axis, op, default=-1):
    """(tensor viewed at least 1-D, axis, pair?) for the sorting family."""
    pair = axis is None
    ax = axis if axis is not None else (default if dim is None else dim)
    x = self.reshape(1) if self.ndim == 0 else self
    check_axis(ax, max(self.ndim, 1), op)
    return x, ax % x.ndim, pair


def _argsort(data, axis, descending):
    if descending:
        key = data.astype(np.int64) if data.dtype.kind in "ub" else data
        return np.argsort(-key, axis=axis, kind="stable")
    return np.argsort(data, axis=axis, kind="stable")


def _finish(self, values, idx, pair):
    if self.ndim == 0:
        values, idx = values.reshape(()), idx.reshape(())
    return ValuesIndices(values, _const(idx)) if pair else values


@_method("sort")
def sort(self, dim=None, descending=False, stable=False, *, axis=None):
    """Sorted along ``dim`` (default -1): (values, indices); ties keep their order."""
    x, a, pair = _sort_axis(self, dim, axis, "sort")
    idx = _argsort(x.data, a, descending)
    return _finish(self, I.Gather.apply(x, index=idx, axis=a), idx, pair)


@_method("argsort")
def argsort(self, dim=-1, descending=False, stable=False, *, axis=None):
    x, a, _ = _sort_axis(self, dim, axis, "argsort")
    idx = _argsort(x.data, a, descending)
    return _const(idx.reshape(self.shape))


@_method("topk")
def topk(self, k, dim=None, largest=True, sorted=True, *, axis=None):
    """The k largest (``largest=False``: smallest) along ``dim``: (values, indices)."""
    x, a, pair = _sort_axis(self, dim, axis, "topk")
    n = x.shape[a]
    if not 0 <= k <= n:
        raise AxisError(f"topk: k out of range, got k={k} for a dimension of size {n}")
    idx = np.take(_argsort(x.data, a, largest), np.arange(k), axis=a)
    return _finish(self, I.Gather.apply(x, index=idx, axis=a), idx, pair)


@_method("kthvalue")
def kthvalue(self, k, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """The k-th smallest (k from 1) along ``dim``: (values, indices)."""
    keep = keepdim if keepdims is None else keepdims
    x, a, pair = _sort_axis(self, dim, axis, "kthvalue")
    n = x.shape[a]
    if not 1 <= k <= n:
        raise AxisError(f"kthvalue: k out of range, got k={k} for a dimension of size {n}")
    idx = np.take(_argsort(x.data, a, False), [k - 1], axis=a)
    return _pick(self, x, idx, a, keep, pair)


def _pick(self, x, idx, a, keep, pair):
    values = I.Gather.apply(x, index=idx, axis=a)
    if not keep or self.ndim == 0:
        shape = self.shape if self.ndim == 0 else x.shape[:a] + x.shape[a + 1:]
        values, idx = values.reshape(shape), idx.reshape(shape)
    return ValuesIndices(values, _const(idx)) if pair else values


@_method("median")
def median(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """PyTorch style (``median()`` or ``median(dim)``): the lower of the two middle values and,
    with a dim, its index. NumPy style (``median(axis=...)``): the mean of the two middle values
    for an even count. Gradients flow to the chosen element(s)."""
    keep = keepdim if keepdims is None else keepdims
    if dim is None and axis is None:
        flat = self.reshape(-1)
        if flat.size == 0:
            raise ShapeError("median: cannot take the median of an empty tensor")
        return _values(flat.median(0, keep)).reshape([1] * self.ndim if keep else [])
    x, a, pair = _sort_axis(self, dim, axis, "median")
    n = x.shape[a]
    if n == 0:
        raise ShapeError(f"median: empty axis {a} in shape {self.shape}")
    order = _argsort(x.data, a, False)
    lo = np.take(order, [(n - 1) // 2], axis=a)
    if pair or n % 2:
        return _pick(self, x, lo, a, keep, pair)
    hi = np.take(order, [n // 2], axis=a)
    return (_pick(self, x, lo, a, keep, False) + _pick(self, x, hi, a, keep, False)) * 0.5


# ------------------------------------------------------------------ layout ---


@_method("flip")
def flip(self, *dims, axis=None, dim=None, **kw):
    """Reverse the order along ``dims`` (all axes when none are given, as np.flip)."""
    dims = kw.pop("dims", dims)
    if kw:
        raise TypeError(f"flip: unexpected keyword arguments {sorted(kw)}")
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    dims = dims[0] if len(dims) == 1 and not isinstance(dims[0], int) else dims
    spec = axis if axis is not None else dim if dim is not None else (dims or None)
    axes = normalize_axis(spec, self.ndim, "flip")
    return I.Flip.apply(self, axes=axes) if axes and self.ndim else self


Tensor.fliplr = lambda self: self.flip(1)
Tensor.flipud = lambda self: self.flip(0)


@_method("roll")
def roll(self, shifts, dims=None, *, axis=None):
    """Shift cyclically by ``shifts`` along ``dims`` (flattened when no dims are given)."""
    dims = axis if axis is not None else dims
    if dims is None:
        return I.Roll.apply(self.reshape(-1), shifts=int(shifts), axes=None).reshape(self.shape)
    shifts = (shifts,) if isinstance(shifts, int) else tuple(shifts)
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    if len(shifts) != len(dims):
        raise ShapeError(f"roll: shifts and dims must have the same length, got {shifts} and "
                         f"{dims}")
    dims = tuple(check_axis(d, self.ndim, "roll") for d in dims)
    return I.Roll.apply(self, shifts=shifts, axes=dims)


def _tri(fn, op):
    def method(self, diagonal=0, *, k=None):
        if self.ndim < 2:
            raise ShapeError(f"{op}: needs at least 2 dims, got shape {self.shape}")
        return fn.apply(self, k=diagonal if k is None else k)

    method.__doc__ = fn.__doc__
    return method


Tensor.tril, Tensor.triu = _tri(I.Tril, "tril"), _tri(I.Triu, "triu")


@_method("diagonal")
def diagonal(self, offset=0, dim1=0, dim2=1, *, axis1=None, axis2=None):
    a1 = check_axis(dim1 if axis1 is None else axis1, self.ndim, "diagonal")
    a2 = check_axis(dim2 if axis2 is None else axis2, self.ndim, "diagonal")
    if a1 == a2:
        raise ShapeError(f"diagonal: dim1 and dim2 must differ, got {dim1} and {dim2}")
    return I.Diagonal.apply(self, offset=offset, axis1=a1, axis2=a2)


@_method("diag")
def diag(self, diagonal=0):
    """1-D: a square matrix with x on diagonal ``diagonal``; 2-D: that diagonal, as 1-D."""
    if self.ndim == 1:
        n = self.shape[0] + abs(diagonal)
        return I.DiagonalBackward.apply(self, geom=(diagonal, 0, 1), shape=(n, n))
    if self.ndim == 2:
        return self.diagonal(diagonal)
    raise ShapeError(f"diag: needs a 1-D or 2-D tensor, got shape {self.shape}")


@_method("movedim")
def movedim(self, source, destination):
    src = (source,) if isinstance(source, int) else tuple(source)
    dst = (destination,) if isinstance(destination, int) else tuple(destination)
    if len(src) != len(dst):
        raise ShapeError(f"movedim: source and destination differ in length, got {src} and {dst}")
    src = [check_axis(s, self.ndim, "movedim") for s in src]
    dst = [check_axis(d, self.ndim, "movedim") for d in dst]
    order = [i for i in range(self.ndim) if i not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return self.permute(order)


Tensor.moveaxis = movedim


@_method("unflatten")
def unflatten(self, dim, sizes):
    a = check_axis(dim, self.ndim, "unflatten")
    return self.reshape(self.shape[:a] + tuple(sizes) + self.shape[a + 1:])


@_method("narrow")
def narrow(self, dim, start, length):
    a = check_axis(dim, self.ndim, "narrow")
    n = self.shape[a]
    start = start + n if start < 0 else start
    if not (0 <= start <= n and 0 <= length and start + length <= n):
        raise AxisError(f"narrow: start {start} + length {length} out of range for dim {a} of "
                        f"size {n}")
    return self[(slice(None),) * a + (slice(start, start + length),)]


@_method("index_select")
def index_select(self, dim, index):
    """Rows (along ``dim``) picked by a 1-D index; its gradient adds at repeated indices."""
    a = check_axis(dim, max(self.ndim, 1), "index_select")
    idx = _as_index(index, "index_select").reshape(-1)
    n = self.shape[a] if self.ndim else 1
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise AxisError(f"index_select: index out of range for dim {a} of size {n}, got "
                        f"values in [{idx.min()}, {idx.max()}]")
    x = self.reshape(1) if self.ndim == 0 else self
    return x[(slice(None),) * a + (idx,)]


@_method("unfold")
def unfold(self, dimension, size, step):
    """All windows of ``size`` along ``dimension``, ``step`` apart, as a new last axis."""
    a = check_axis(dimension, max(self.ndim, 1), "unfold")
    x = self.reshape(1) if self.ndim == 0 else self
    n = x.shape[a]
    if size > n or size < 0 or step < 1:
        raise ShapeError(f"unfold: size {size} and step {step} do not fit dim {a} of size {n}")
    nw = (n - size) // step + 1
    idx = (np.arange(nw)[:, None] * step + np.arange(size)).reshape(-1)
    y = x.index_select(a, idx)
    y = y.reshape(x.shape[:a] + (nw, size) + x.shape[a + 1:])
    return y.movedim(a + 1, -1)


@_method("repeat_interleave")
def repeat_interleave(self, repeats, dim=None, *, axis=None):
    """Repeat each element ``repeats`` times (an int, or one count per element) along ``dim``
    (flattened when none); the gradient sums over the copies."""
    ax = dim if axis is None else axis
    x = self.reshape(-1) if ax is None else self
    a = 0 if ax is None else check_axis(ax, self.ndim, "repeat_interleave")
    reps = repeats.data if isinstance(repeats, Tensor) else repeats
    idx = np.repeat(np.arange(x.shape[a]), reps)
    return x.index_select(a, idx)


def _chunk(self, chunks, dim=0, *, axis=None):
    """``chunks`` pieces of ceil(n / chunks) along ``dim`` (the last may be smaller)."""
    a = check_axis(dim if axis is None else axis, self.ndim, "chunk")
    if chunks < 1:
        raise ShapeError(f"chunk: chunks must be >= 1, got {chunks}")
    n = self.shape[a]
    return self.split(max(-(-n // chunks), 1), axis=a)


Tensor.chunk = _chunk

# ------------------------------------------------------------------ gather and scatter ---


def _gather_checks(self, dim, index, op, src=None):
    a = check_axis(dim, max(self.ndim, 1), op)
    idx = _as_index(index, op)
    if idx.ndim != self.ndim:
        raise ShapeError(f"{op}: index must have as many dims as the input, got "
                         f"{idx.shape} for {self.shape}")
    for d, (i, s) in enumerate(zip(idx.shape, self.shape)):
        if d != a and i > s:
            raise ShapeError(f"{op}: index is larger than the input along dim {d}, got "
                             f"{idx.shape} for {self.shape}")
    n = self.shape[a] if self.ndim else 1
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise AxisError(f"{op}: index out of range for dim {a} of size {n}, got values in "
                        f"[{idx.min()}, {idx.max()}]")
    if src is not None:
        src = _lift(src, self)
        if src.ndim == 0:
            src = src.expand(idx.shape)
        if src.ndim != idx.ndim or any(s < i for s, i in zip(src.shape, idx.shape)):
            raise ShapeError(f"{op}: src must be at least as large as index, got "
                             f"{src.shape} and {idx.shape}")
        if src.shape != idx.shape:
            src = src[tuple(slice(0, i) for i in idx.shape)]
        if src.dtype != self.dtype:
            src = src.astype(self.dtype)
    return a, idx, src


@_method("gather")
def gather(self, dim, index):
    """out[i][j] = self[index[i][j]][j] for dim = 0 (PyTorch); gradient: a scatter-add."""
    a, idx, _ = _gather_checks(self, dim, index, "gather")
    return I.Gather.apply(self, index=idx, axis=a)


@_method("scatter")
def scatter(self, dim, index, src=None, *, value=None):
    """A copy of self with src (or a scalar ``value``) written at index along dim."""
    if (src is None) == (value is None):
        raise TypeError("scatter: give exactly one of src and value, got "
                        f"src={src!r}, value={value!r}")
    a, idx, src = _gather_checks(self, dim, index, "scatter", value if src is None else src)
    return I.Scatter.apply(self, src, index=idx, axis=a)


@_method("scatter_add")
def scatter_add(self, dim, index, src):
    """A copy of self with src added at index along dim (repeated indices add up)."""
    a, idx, src = _gather_checks(self, dim, index, "scatter_add", src)
    return self + I.ScatterAdd.apply(src, index=idx, axis=a, shape=self.shape)


@_method("scatter_reduce")
def scatter_reduce(self, dim, index, src, reduce, *, include_self=True):
    """A copy of self with src reduced in at index: reduce in 'sum', 'prod', 'mean', 'amax',
    'amin'; ``include_self=False`` leaves self's own value out where src lands."""
    if reduce not in I._UFUNC:
        raise ValueError(f"scatter_reduce: reduce must be one of {sorted(I._UFUNC)}, got "
                         f"{reduce!r}")
    a, idx, src = _gather_checks(self, dim, index, "scatter_reduce", src)
    return I.ScatterReduce.apply(self, src, index=idx, axis=a, reduce=reduce,
                                 include_self=include_self)


@_method("take_along_dim")
def take_along_dim(self, indices, dim=None):
    """np.take_along_axis with broadcasting (flattened when dim is None)."""
    idx = _as_index(indices, "take_along_dim")
    if dim is None:
        return self.reshape(-1).gather(0, idx.reshape(-1))
    a = check_axis(dim, self.ndim, "take_along_dim")
    if idx.ndim != self.ndim:
        raise ShapeError(f"take_along_dim: indices must have as many dims as the input, got "
                         f"{idx.shape} for {self.shape}")
    try:
        rest = np.broadcast_shapes(self.shape[:a] + (1,) + self.shape[a + 1:],
                                   idx.shape[:a] + (1,) + idx.shape[a + 1:])
    except ValueError:
        raise ShapeError(f"take_along_dim: shapes do not broadcast, got {self.shape} and "
                         f"{idx.shape}") from None
    x = self.expand(rest[:a] + (self.shape[a],) + rest[a + 1:])
    idx = np.broadcast_to(idx, rest[:a] + (idx.shape[a],) + rest[a + 1:])
    return x.gather(a, np.where(idx < 0, idx + self.shape[a], idx))


@_method("masked_fill")
def masked_fill(self, mask, value):
    """value where mask (broadcast) is true, else self; no gradient flows to filled places."""
    m = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
    if m.dtype != bool:
        raise DTypeError(f"masked_fill: mask must be a bool tensor, got dtype {m.dtype}")
    value = value if isinstance(value, Tensor) else _lift(value, self)
    return E.Where.apply(_const(m), value.astype(self.dtype), self)


@_method("masked_select")
def masked_select(self, mask):
    """The elements where mask (broadcast with self) is true, as a 1-D tensor."""
    m = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
    if m.dtype != bool:
        raise DTypeError(f"masked_select: mask must be a bool tensor, got dtype {m.dtype}")
    try:
        shape = np.broadcast_shapes(self.shape, m.shape)
    except ValueError:
        raise ShapeError(f"masked_select: mask does not broadcast, got {m.shape} for "
                         f"{self.shape}") from None
    return self.expand(shape)[np.broadcast_to(m, shape)]


@_method("nonzero")
def nonzero(self, as_tuple=False):
    """Indices of the nonzero elements: (n, ndim) int64, or one 1-D tensor per dim."""
    if as_tuple:
        return tuple(_const(i.astype(np.int64)) for i in np.nonzero(np.atleast_1d(self.data)))
    return _const(np.argwhere(self.data).astype(np.int64))


Tensor.argwhere = lambda self: self.nonzero()
