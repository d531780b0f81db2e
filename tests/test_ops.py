"""The op-case table: one row per op, and one generic test per property.

Properties, each run on every available CPU backend:
  1. forward equals a NumPy oracle;
  2. first derivatives match central differences (float64, random upstream weight);
  3. second derivatives match central differences of the first (double backward).
A guard test fails when a registered op is covered by no row.

Domains keep inputs away from kinks (relu, abs at 0) and singularities (log, sqrt, div at 0),
and ``distinct`` draws tie-free values for max/min/maximum/max_pool (a tie is a kink).
"""

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import reference as ref
import tinygrad_lite as tl
from tinygrad_lite import distributed as _dist
from tinygrad_lite.autograd import REGISTRY
from tinygrad_lite.nn import _recurrent_core as RC
from tinygrad_lite.nn import functional as F
from tinygrad_lite.ops import elementwise as E
from tinygrad_lite.ops import indexing as I
from tinygrad_lite.ops import movement as M
from tinygrad_lite.ops import nn as N
from tinygrad_lite.testing import gradcheck, gradgradcheck
from tinygrad_lite.testing import strategies as tst


@dataclass
class OpCase:
    name: str
    fn: Callable                      # (*tensors, **kw) -> Tensor
    oracle: Callable                  # (*arrays, **kw) -> array
    arity: int = 1
    low: float = -2.0
    high: float = 2.0
    away_from: tuple = ()
    broadcast: bool = False
    distinct: bool = False
    min_dims: int = 0
    draw: Optional[Callable] = None   # custom: strategy of (arrays tuple, kw dict)
    covers: tuple = ()                # registered ops this row exercises (default: (name,))
    grad: bool = True
    second: bool = True
    const: tuple = ()                 # indices of inputs that get no gradient
    tol: dict = field(default_factory=dict)

    def ops(self):
        return self.covers or (self.name,)


def _inputs_strategy(case):
    if case.draw is not None:
        return case.draw
    make = tst.distinct_arrays if case.distinct else tst.arrays
    kw = dict(low=case.low, high=case.high)
    if not case.distinct:
        kw["away_from"] = case.away_from
    if case.arity == 1:
        return make(tst.shapes(min_dims=case.min_dims), **kw).map(lambda a: ((a,), {}))
    shapes = (tst.broadcastable_shapes(case.arity, min_dims=case.min_dims) if case.broadcast
              else tst.shapes(min_dims=case.min_dims).map(lambda s: (s,) * case.arity))
    return shapes.flatmap(lambda ss: st.tuples(*(make(tuple(s), **kw) for s in ss))).map(
        lambda arrs: (arrs, {}))


# ------------------------------------------------------------------ custom draws ---

def _axis_draw(low=-2.0, high=2.0, distinct=False, min_dims=1):
    """An array plus a random axis spec: None, an int (maybe negative) or a tuple."""

    @st.composite
    def draw(d):
        shape = d(tst.shapes(min_dims=min_dims))
        arr = d(tst.distinct_arrays(shape, low, high) if distinct else tst.arrays(shape, low, high))
        nd = len(shape)
        axis = d(st.one_of(st.none(), st.integers(-nd, nd - 1),
                           st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd,
                                    unique=True).map(tuple)))
        return (arr,), dict(axis=axis, keepdims=d(st.booleans()))

    return draw()


def _np_axis(axis):
    return axis


@st.composite
def _matmul_draw(d):
    sa, sb = d(tst.matmul_shapes())
    return (d(tst.arrays(sa)), d(tst.arrays(sb))), {}


@st.composite
def _matmul_t_draw(d):
    """2-D operands with transpose flags: C = op(A) op(B) for every (ta, tb)."""
    m, k, n = (d(st.integers(1, 5)) for _ in range(3))
    ta, tb = d(st.booleans()), d(st.booleans())
    a = d(tst.arrays((k, m) if ta else (m, k)))
    b = d(tst.arrays((n, k) if tb else (k, n)))
    return (a, b), dict(ta=ta, tb=tb)


@st.composite
def _conv_draw(d, kind="conv"):
    g = d(tst.conv_geometries())
    geom = dict(stride=g["stride"], padding=g["padding"], dilation=g["dilation"],
                groups=g["groups"])
    x = d(tst.arrays(g["x_shape"]))
    w = d(tst.arrays(g["w_shape"]))
    if kind == "conv":
        return (x, w), geom
    if kind == "bias":
        return (x, w, d(tst.arrays((w.shape[0],)))), geom
    y_shape = ref.conv2d(x, w, **geom).shape
    gy = d(tst.arrays(y_shape))
    if kind == "bwd_input":
        return (gy, w), dict(geom, x_shape=x.shape)
    return (gy, x), dict(geom, w_shape=w.shape)


@st.composite
def _conv_transpose_draw(d):
    g = d(tst.conv_geometries())
    s, p, dl = g["stride"], g["padding"], g["dilation"]
    op = tuple(d(st.integers(0, s[a] - 1)) for a in range(2))
    # the transposed conv's input has the shape of a conv2d output: (N, O, OH, OW)
    n, c, h, w = g["x_shape"]
    o = g["w_shape"][0]
    oh = (h + 2 * p[0] - dl[0] * (g["w_shape"][2] - 1) - 1) // s[0] + 1
    ow = (w + 2 * p[1] - dl[1] * (g["w_shape"][3] - 1) - 1) // s[1] + 1
    k = g["w_shape"][2:]
    # a conv that dropped trailing pixels can have an empty transpose: not a valid case
    assume(all((oh_ - 1) * s[a] - 2 * p[a] + dl[a] * (k[a] - 1) + op[a] + 1 >= 1
               for a, oh_ in enumerate((oh, ow))))
    x = d(tst.arrays((n, o, oh, ow)))
    wt = d(tst.arrays((o, c // g["groups"]) + k))
    return (x, wt), dict(stride=s, padding=p, dilation=dl, groups=g["groups"],
                         output_padding=op)


def _conv_transpose_oracle(x, w, stride, padding, dilation, groups, output_padding):
    n, o, oh, ow = x.shape
    out_hw = tuple((x.shape[2 + a] - 1) * stride[a] - 2 * padding[a]
                   + dilation[a] * (w.shape[2 + a] - 1) + output_padding[a] + 1 for a in range(2))
    x_shape = (n, w.shape[1] * groups) + out_hw
    return ref.conv2d_backward_input(x, w, x_shape, stride, padding, dilation, groups)


@st.composite
def _pool_draw(d, with_grad=False, distinct=True):
    g = d(tst.pool_geometries())
    x = d(tst.distinct_arrays(g["x_shape"]) if distinct else tst.arrays(g["x_shape"]))
    kw = dict(kernel_size=g["kernel_size"], stride=g["stride"], padding=g["padding"])
    if not with_grad:
        return (x,), kw
    y = ref.pool2d(x, g["kernel_size"], g["stride"], g["padding"], "avg")
    return (d(tst.arrays(y.shape)), x), kw


def _pool_geom(x_shape, kernel_size, stride, padding):
    return N.pool_geometry("test", x_shape, kernel_size, stride, padding)


def _max_pool_bwd(gy, x, kernel_size, stride, padding):
    """max_pool2d_backward as a function of gy (x only fixes the argmax indices)."""
    geom = _pool_geom(x.shape, kernel_size, stride, padding)
    _, idx = tl.backends.current().max_pool2d(x.data, *geom)
    return N.MaxPool2dBackward.apply(gy, idx=idx, x_shape=x.shape, geom=geom)


def _pool_gather(u, x, kernel_size, stride, padding):
    geom = _pool_geom(x.shape, kernel_size, stride, padding)
    _, idx = tl.backends.current().max_pool2d(x.data, *geom)
    return N.PoolGather.apply(u, idx=idx)


def _pool_gather_oracle(u, x, kernel_size, stride, padding):
    # gather = the adjoint of the scatter: <gather(u), g> = <u, scatter(g)> for every g;
    # the oracle reads the argmax directly from a loop over windows.
    geom = _pool_geom(x.shape, kernel_size, stride, padding)
    (kh, kw), (sh, sw), (ph, pw) = geom
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
    y = ref.pool2d(x, *geom, "max")
    out = np.zeros(y.shape)
    for idx in np.ndindex(*y.shape):
        b, c, p, q = idx
        win = xp[b, c, p * sh:p * sh + kh, q * sw:q * sw + kw]
        i, j = np.unravel_index(np.argmax(win), win.shape)
        out[idx] = u[b, c, p * sh + i - ph, q * sw + j - pw]
    return out


@st.composite
def _getitem_draw(d):
    shape = d(tst.shapes(min_dims=1, max_dims=3))
    arr = d(tst.arrays(shape))
    kind = d(st.sampled_from(["int", "slice", "ellipsis_none", "bool", "int_array"]))
    n0 = shape[0]
    if kind == "int":
        index = d(st.integers(-n0, n0 - 1))
    elif kind == "slice":
        index = slice(d(st.integers(0, n0 - 1)), None, d(st.sampled_from([1, 2, -1])))
    elif kind == "ellipsis_none":
        index = (Ellipsis, None, slice(None, None, 2))
    elif kind == "bool":
        index = np.asarray(d(st.lists(st.booleans(), min_size=n0, max_size=n0)))
    else:  # repeated indices must accumulate
        index = np.asarray(d(st.lists(st.integers(0, n0 - 1), min_size=1, max_size=5)))
    return (arr,), dict(index=index)


@st.composite
def _index_add_draw(d):
    (arr,), kw = d(_getitem_draw())
    return (d(tst.arrays(arr[kw["index"]].shape)),), dict(kw, shape=arr.shape)


def _index_add_oracle(g, index, shape):
    out = np.zeros(shape)
    np.add.at(out, index, g)
    return out


@st.composite
def _cat_draw(d):
    shape = d(tst.shapes(min_dims=1))
    axis = d(st.integers(-len(shape), len(shape) - 1))
    k = d(st.integers(1, 3))
    arrs = []
    for _ in range(k):
        s = list(shape)
        s[axis] = d(st.integers(1, 3))
        arrs.append(d(tst.arrays(tuple(s))))
    return tuple(arrs), dict(axis=axis)


@st.composite
def _pad_draw(d):
    shape = d(tst.shapes(min_dims=1))
    pw = tuple((d(st.integers(0, 2)), d(st.integers(0, 2))) for _ in shape)
    return (d(tst.arrays(shape)),), dict(pad_width=pw, value=d(st.sampled_from([0.0, 1.5])))


@st.composite
def _permute_draw(d):
    shape = d(tst.shapes(min_dims=1))
    axes = tuple(d(st.permutations(range(len(shape)))))
    return (d(tst.arrays(shape)),), dict(axes=axes)


@st.composite
def _reshape_draw(d):
    shape = d(tst.shapes())
    n = int(np.prod(shape))
    divs = [k for k in range(1, n + 1) if n % k == 0]
    a = d(st.sampled_from(divs))
    return (d(tst.arrays(shape)),), dict(shape=(a, -1))


@st.composite
def _expand_draw(d):
    shape = d(tst.shapes(max_side=3))
    target = tuple(d(st.integers(1, 3)) if s == 1 else s for s in shape)
    lead = tuple(d(st.lists(st.integers(1, 3), max_size=2)))
    return (d(tst.arrays(shape)),), dict(shape=lead + target)


@st.composite
def _tile_draw(d):
    shape = d(tst.shapes(max_dims=2, max_side=3))
    reps = tuple(d(st.lists(st.integers(1, 3), min_size=1, max_size=3)))
    return (d(tst.arrays(shape)),), dict(reps=reps)


@st.composite
def _where_draw(d):
    sc, sa, sb = d(tst.broadcastable_shapes(3))
    cond = d(st.lists(st.booleans(), min_size=int(np.prod(sc)), max_size=int(np.prod(sc))))
    return (np.asarray(cond, dtype=bool).reshape(sc), d(tst.arrays(sa)), d(tst.arrays(sb))), {}


@st.composite
def _stack_draw(d):
    shape = d(tst.shapes())
    k = d(st.integers(1, 3))
    return tuple(d(tst.arrays(shape)) for _ in range(k)), dict(axis=d(st.integers(0, len(shape))))


@st.composite
def _split_draw(d):
    shape = d(tst.shapes(min_dims=1, max_side=6))
    return (d(tst.arrays(shape)),), dict(size=d(st.integers(1, shape[0])))


@st.composite
def _linear_draw(d):
    n, i, o = d(st.integers(1, 4)), d(st.integers(1, 5)), d(st.integers(1, 4))
    return (d(tst.arrays((n, i))), d(tst.arrays((o, i))), d(tst.arrays((o,)))), {}


@st.composite
def _softmax_draw(d):
    shape = d(tst.shapes(min_dims=1))
    return (d(tst.arrays(shape)),), dict(axis=d(st.integers(-len(shape), len(shape) - 1)))


@st.composite
def _xent_draw(d):
    """Logits (N, C) (N, C in 1..7, primes included) and int64 labels in [0, C)."""
    n, c = d(st.integers(1, 7)), d(st.integers(1, 7))
    labels = np.asarray(d(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)), np.int64)
    return (d(tst.arrays((n, c), low=-4.0, high=4.0)),), dict(labels=labels)


def _xent_oracle(z, labels):
    return -np.mean(np.log(ref.softmax(z, 1))[np.arange(len(labels)), labels])


@st.composite
def _linear_relu_draw(d):
    """x (m, k), W in either layout, b (n,), with every pre-activation at least 0.1 from the
    ReLU kink (finite differences across it would be meaningless)."""
    m, k, n = (d(st.integers(1, 5)) for _ in range(3))
    keras = d(st.booleans())
    x = d(tst.arrays((m, k)))
    w = d(tst.arrays((k, n) if keras else (n, k)))
    b = d(tst.arrays((n,)))
    pre = x @ (w if keras else w.T) + b
    assume(np.abs(pre).min() > 0.1)
    return (x, w, b), dict(keras_layout=keras)


@st.composite
def _embedding_draw(d):
    v, e = d(st.integers(1, 6)), d(st.integers(1, 4))
    idx = np.asarray(d(st.lists(st.integers(0, v - 1), min_size=1, max_size=6)))
    return (d(tst.arrays((v, e))),), dict(idx=idx)


@st.composite
def _pair_distinct_draw(d):
    """Two same-shape arrays with no element of a equal (or close) to the paired one of b."""
    shape = d(tst.shapes())
    both = d(tst.distinct_arrays((2,) + tuple(shape)))
    return (both[0], both[1]), {}


def _lse_oracle(x, axis, keepdims):
    m = x.max(axis=axis, keepdims=True)
    out = np.log(np.exp(x - m).sum(axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis) if axis is not None else out.reshape(())


def _dropout(x):
    return F.dropout(x, 0.3, training=True, generator=np.random.default_rng(7))


def _dropout_oracle(x):
    keep = np.random.default_rng(7).random(x.shape) >= 0.3
    return x * keep / 0.7


def _clip_oracle(x):
    return np.clip(x, -0.5, 0.7)


# ------------------------------------------------------------------ draws for the op families of
# issue 9 (pointwise math, scans, sorting, layout, gather/scatter, einsum)


def _int_axis_draw(low=-2.0, high=2.0, distinct=False, min_dims=1, max_side=4):
    """An array plus one int axis (maybe negative)."""

    @st.composite
    def draw(d):
        shape = d(tst.shapes(min_dims=min_dims, max_side=max_side))
        arr = d(tst.distinct_arrays(shape, low, high) if distinct else tst.arrays(shape, low, high))
        return (arr,), dict(axis=d(st.integers(-len(shape), len(shape) - 1)))

    return draw()


@st.composite
def _with_zeros_draw(d):
    """An array with some exact zeros (prod/cumprod gradients must stay exact there)."""
    (arr,), kw = d(_int_axis_draw(0.3, 2.0))
    zeros = np.asarray(d(st.lists(st.booleans(), min_size=arr.size, max_size=arr.size)))
    sign = np.asarray(d(st.lists(st.sampled_from([-1.0, 1.0]), min_size=arr.size,
                                 max_size=arr.size)))
    return (np.where(zeros.reshape(arr.shape), 0.0, arr * sign.reshape(arr.shape)),), kw


def _away_from_ints(lo, hi, half=False):
    pts = tuple(np.arange(np.floor(lo), np.ceil(hi) + 1) + (0.5 if half else 0.0))
    return dict(low=lo, high=hi, away_from=pts)


@st.composite
def _divmod_draw(d):
    """a, b with b away from 0 and a / b away from an integer (where fmod/% jump)."""
    sa, sb = d(tst.broadcastable_shapes(2))
    a = d(tst.arrays(sa, -3.0, 3.0))
    b = d(tst.arrays(sb, 0.5, 2.0)) * d(st.sampled_from([-1.0, 1.0]))
    q = a / b
    assume(np.all(np.abs(q - np.round(q)) > 0.02))
    return (a, b), {}


@st.composite
def _lerp_draw(d):
    s = d(tst.broadcastable_shapes(3))
    return tuple(d(tst.arrays(x)) for x in s), {}


@st.composite
def _glu_draw(d):
    shape = list(d(tst.shapes(min_dims=1)))
    axis = d(st.integers(-len(shape), len(shape) - 1))
    shape[axis] *= 2
    return (d(tst.arrays(tuple(shape))),), dict(axis=axis)


@st.composite
def _sort_draw(d, k=False):
    (x,), kw = d(_int_axis_draw(distinct=True))
    n = x.shape[kw["axis"]]
    if k:
        kw["k"] = d(st.integers(1, n))
    return (x,), kw


def _kth_oracle(x, axis, k):
    return np.take(np.sort(x, axis=axis), k - 1, axis=axis)


def _topk_oracle(x, axis, k, largest):
    s = np.sort(x, axis=axis)
    s = np.flip(s, axis) if largest else s
    return np.take(s, np.arange(k), axis=axis)


def _lower_median(x, axis):
    return np.take(np.sort(x, axis=axis), (x.shape[axis] - 1) // 2, axis=axis)


@st.composite
def _roll_draw(d):
    shape = d(tst.shapes(min_dims=1))
    nd = len(shape)
    dims = d(st.lists(st.integers(-nd, nd - 1), min_size=1, max_size=nd,
                      unique_by=lambda a: a % nd))
    shifts = [d(st.integers(-5, 5)) for _ in dims]
    return (d(tst.arrays(shape)),), dict(shifts=tuple(shifts), dims=tuple(dims))


@st.composite
def _tri_draw(d):
    shape = d(tst.shapes(min_dims=2))
    return (d(tst.arrays(shape)),), dict(k=d(st.integers(-3, 3)))


@st.composite
def _diagonal_draw(d):
    shape = d(tst.shapes(min_dims=2))
    nd = len(shape)
    d1, d2 = d(st.lists(st.integers(0, nd - 1), min_size=2, max_size=2, unique=True))
    return (d(tst.arrays(shape)),), dict(offset=d(st.integers(-2, 2)), dim1=d1, dim2=d2)


@st.composite
def _diag_draw(d):
    nd = d(st.sampled_from([1, 2]))
    x = d(tst.arrays(d(tst.shapes(min_dims=nd, max_dims=nd))))
    return (x,), dict(k=d(st.integers(-2, 2)))


@st.composite
def _diagonal_backward_draw(d):
    (x,), kw = d(_diagonal_draw())
    y = np.diagonal(x, kw["offset"], kw["dim1"], kw["dim2"])
    return (d(tst.arrays(y.shape)),), dict(geom=(kw["offset"], kw["dim1"], kw["dim2"]),
                                           shape=x.shape)


def _diagonal_backward_oracle(g, geom, shape):
    out = np.zeros(shape)
    view = np.diagonal(out, *geom)
    view.flags.writeable = True   # a view into out: np.diagonal returns read-only by default
    view[...] = g
    return out


@st.composite
def _unfold_draw(d):
    (x,), kw = d(_int_axis_draw())
    n = x.shape[kw["axis"]]
    return (x,), dict(kw, size=d(st.integers(1, n)), step=d(st.integers(1, 3)))


def _unfold_oracle(x, axis, size, step):
    axis %= x.ndim
    w = np.lib.stride_tricks.sliding_window_view(x, size, axis=axis)
    return np.take(w, np.arange(0, w.shape[axis], step), axis=axis)


@st.composite
def _repeat_interleave_draw(d):
    (x,), kw = d(_int_axis_draw())
    n = x.shape[kw["axis"]]
    reps = d(st.one_of(st.integers(0, 3), st.lists(st.integers(0, 3), min_size=n, max_size=n)))
    return (x,), dict(kw, repeats=reps)


@st.composite
def _narrow_draw(d):
    (x,), kw = d(_int_axis_draw())
    n = x.shape[kw["axis"]]
    start = d(st.integers(0, n))
    return (x,), dict(kw, start=start, length=d(st.integers(0, n - start)))


@st.composite
def _movedim_draw(d):
    shape = d(tst.shapes(min_dims=1))
    nd = len(shape)
    k = d(st.integers(1, nd))
    src = d(st.lists(st.integers(0, nd - 1), min_size=k, max_size=k, unique=True))
    dst = d(st.lists(st.integers(0, nd - 1), min_size=k, max_size=k, unique=True))
    return (d(tst.arrays(shape)),), dict(src=tuple(src), dst=tuple(dst))


@st.composite
def _index_draw(d, unique=False, values=None):
    """x, an int axis and a PyTorch-style index: the index's dims are <= x's off the axis;
    ``unique``: no position is written twice (scatter)."""
    shape = d(tst.shapes(min_dims=1))
    nd = len(shape)
    axis = d(st.integers(0, nd - 1))
    n = shape[axis]
    ishape = [d(st.integers(1, s)) for s in shape]
    ishape[axis] = d(st.integers(1, n if unique else 4))
    seed = d(st.integers(0, 2 ** 16))
    rng = np.random.default_rng(seed)
    if unique:
        perm = np.argsort(rng.random(tuple(ishape[:axis]) + (n,) + tuple(ishape[axis + 1:])),
                          axis=axis)
        index = np.take(perm, np.arange(ishape[axis]), axis=axis)
    else:
        index = rng.integers(0, n, size=tuple(ishape))
    x = d(values(tuple(shape)) if values else tst.arrays(tuple(shape)))
    return x, index, axis


def _full_index(index, axis):
    return tuple(index if i == axis else np.arange(n).reshape(
        [-1 if j == i else 1 for j in range(index.ndim)]) for i, n in enumerate(index.shape))


@st.composite
def _gather_draw(d):
    x, index, axis = d(_index_draw())
    return (x,), dict(dim=axis, index=index)


@st.composite
def _scatter_draw(d, unique=False):
    x, index, axis = d(_index_draw(unique=unique))
    return (x, d(tst.arrays(index.shape))), dict(dim=axis, index=index)


def _scatter_add_oracle(x, src, dim, index):
    out = x.copy()
    np.add.at(out, _full_index(index, dim), src)
    return out


def _scatter_oracle(x, src, dim, index):
    out = x.copy()
    out[_full_index(index, dim)] = src
    return out


@st.composite
def _scatter_reduce_draw(d):
    reduce = d(st.sampled_from(["sum", "mean", "prod", "amax", "amin"]))
    x, index, axis = d(_index_draw())
    both = d(tst.distinct_arrays((x.size + index.size,), 0.3, 2.0))
    return (both[:x.size].reshape(x.shape), both[x.size:].reshape(index.shape)), dict(
        dim=axis, index=index, reduce=reduce, include_self=d(st.booleans()))


def _scatter_reduce_oracle(x, src, dim, index, reduce, include_self):
    fi = _full_index(index, dim)
    out = x.copy()
    touched = np.zeros(x.shape, bool)
    touched[fi] = True
    if not include_self:
        out[touched] = {"sum": 0, "mean": 0, "prod": 1, "amax": -np.inf, "amin": np.inf}[reduce]
    uf = {"sum": np.add, "mean": np.add, "prod": np.multiply, "amax": np.maximum,
          "amin": np.minimum}[reduce]
    uf.at(out, fi, src)
    if reduce == "mean":
        count = np.zeros(x.shape)
        np.add.at(count, fi, 1)
        out = out / (count + (1 if include_self else ~touched))
    return out


@st.composite
def _index_select_draw(d):
    (x,), kw = d(_int_axis_draw())
    n = x.shape[kw["axis"]]
    return (x,), dict(kw, index=np.asarray(d(st.lists(st.integers(0, n - 1), max_size=5)),
                                           dtype=np.int64))


@st.composite
def _take_along_draw(d):
    """x and indices whose dims off the axis equal x's or are 1 (they broadcast)."""
    (x,), kw = d(_int_axis_draw())
    axis = kw["axis"] % x.ndim
    ishape = [d(st.sampled_from([1, s])) for s in x.shape]
    ishape[axis] = d(st.integers(1, 4))
    index = np.random.default_rng(d(st.integers(0, 2 ** 16))).integers(
        -x.shape[axis], x.shape[axis], size=tuple(ishape))
    return (x,), dict(dim=kw["axis"], index=index)


def _take_along_oracle(x, dim, index):
    dim %= x.ndim
    one = (lambda s: s[:dim] + (1,) + s[dim + 1:])
    shape = list(np.broadcast_shapes(one(x.shape), one(index.shape)))
    xs, shape[dim] = list(shape), index.shape[dim]
    xs[dim] = x.shape[dim]
    return np.take_along_axis(np.broadcast_to(x, xs), np.broadcast_to(index, shape) % x.shape[dim],
                              axis=dim)


@st.composite
def _mask_draw(d):
    sx, sm = d(tst.broadcastable_shapes(2))
    x = d(tst.arrays(sx))
    m = np.asarray(d(st.lists(st.booleans(), min_size=int(np.prod(sm)),
                              max_size=int(np.prod(sm))))).reshape(sm)
    return (x,), dict(mask=m)


@st.composite
def _meshgrid_draw(d):
    k = d(st.integers(1, 3))
    xs = tuple(d(tst.arrays((d(st.integers(1, 4)),))) for _ in range(k))
    return xs, dict(indexing=d(st.sampled_from(["ij", "xy"])))


_EINSUM = [("ij,jk->ik", [(2, 3), (3, 4)]), ("bij,bjk->bik", [(2, 2, 3), (2, 3, 2)]),
           ("ij->ji", [(2, 3)]), ("ii->i", [(3, 3)]), ("ii", [(3, 3)]), ("i,i->", [(4,), (4,)]),
           ("i,j->ij", [(3,), (2,)]), ("...ij,...jk", [(2, 2, 3), (3, 1)]),
           ("bhqd,bhkd->bhqk", [(1, 2, 3, 2), (1, 2, 2, 2)]), ("ij,jk,kl->il",
                                                               [(2, 3), (3, 2), (2, 2)]),
           ("ijk->j", [(2, 3, 2)]), ("ij,ij->i", [(2, 3), (1, 3)])]


@st.composite
def _einsum_draw(d):
    eq, shapes = d(st.sampled_from(_EINSUM))
    return tuple(d(tst.arrays(s)) for s in shapes), dict(eq=eq)


# ------------------------------------------------------------------ the table ---
# Rows marked second=False are compositions (or variants) of ops whose own rows already run the
# second-order check; they keep the forward and first-order checks (CI time).

POS = dict(low=0.2, high=3.0)

CASES = [
    # elementwise, binary
    OpCase("add", lambda a, b: a + b, np.add, arity=2, broadcast=True),
    OpCase("sub", lambda a, b: a - b, np.subtract, arity=2, broadcast=True),
    OpCase("mul", lambda a, b: a * b, np.multiply, arity=2, broadcast=True),
    OpCase("div", lambda a, b: a / b, np.divide, arity=2, broadcast=True, **POS),
    OpCase("pow", lambda a, b: a ** b, np.power, arity=2, broadcast=True, low=0.3, high=2.0),
    OpCase("pow_scalar", lambda a: a ** 3, lambda a: a ** 3, covers=("pow",)),
    OpCase("rsub_scalar", lambda a: 2.5 - a, lambda a: 2.5 - a, covers=("sub",)),
    OpCase("maximum", lambda a, b: a.maximum(b), np.maximum, draw=_pair_distinct_draw()),
    OpCase("minimum", lambda a, b: a.minimum(b), np.minimum, draw=_pair_distinct_draw()),
    OpCase("where", lambda c, a, b: tl.where(c, a, b), np.where, draw=_where_draw(), const=(0,)),
    # elementwise, unary
    OpCase("neg", lambda x: -x, np.negative),
    OpCase("exp", lambda x: x.exp(), np.exp),
    OpCase("log", lambda x: x.log(), np.log, **POS),
    OpCase("sqrt", lambda x: x.sqrt(), np.sqrt, **POS),
    OpCase("abs", lambda x: x.abs(), np.abs, away_from=(0.0,)),
    OpCase("relu", lambda x: x.relu(), lambda x: np.maximum(x, 0), away_from=(0.0,)),
    OpCase("leaky_relu", lambda x: x.leaky_relu(0.1), lambda x: np.where(x > 0, x, 0.1 * x),
           away_from=(0.0,)),
    OpCase("elu", lambda x: x.elu(0.7), lambda x: np.where(x > 0, x, 0.7 * np.expm1(x)),
           away_from=(0.0,)),
    OpCase("sigmoid", lambda x: x.sigmoid(), lambda x: 1 / (1 + np.exp(-x)), low=-6, high=6),
    OpCase("tanh", lambda x: x.tanh(), np.tanh),
    OpCase("softplus", lambda x: x.softplus(), lambda x: np.log1p(np.exp(x))),
    OpCase("erf", lambda x: x.erf(),
           lambda x: np.vectorize(__import__("math").erf)(x) if x.size else x),
    OpCase("gelu", lambda x: x.gelu(),
           lambda x: 0.5 * x * (1 + np.vectorize(__import__("math").erf)(x / np.sqrt(2)))
           if x.size else x, covers=("erf", "mul", "add")),
    OpCase("gelu_tanh", lambda x: x.gelu("tanh"),
           lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3))),
           covers=("tanh",)),
    OpCase("clip", lambda x: x.clip(-0.5, 0.7), _clip_oracle, away_from=(-0.5, 0.7)),
    OpCase("cast", lambda x: E.Cast.apply(x, dtype=np.dtype(np.float64)).astype(x.dtype),
           lambda x: x),
    # elementwise math (issue 9): trigonometric, hyperbolic, powers and logs
    OpCase("sin", lambda x: x.sin(), np.sin, low=-4, high=4),
    OpCase("cos", lambda x: x.cos(), np.cos, low=-4, high=4),
    OpCase("tan", lambda x: x.tan(), np.tan, low=-1.2, high=1.2),
    OpCase("asin", lambda x: x.asin(), np.arcsin, low=-0.9, high=0.9),
    OpCase("acos", lambda x: x.acos(), np.arccos, low=-0.9, high=0.9),
    OpCase("atan", lambda x: x.atan(), np.arctan, low=-4, high=4),
    OpCase("atan2", lambda a, b: a.atan2(b), np.arctan2, arity=2, broadcast=True,
           away_from=(0.0,), low=-2, high=2),
    OpCase("sinh", lambda x: x.sinh(), np.sinh),
    OpCase("cosh", lambda x: x.cosh(), np.cosh),
    OpCase("asinh", lambda x: x.asinh(), np.arcsinh, low=-4, high=4),
    OpCase("acosh", lambda x: x.acosh(), np.arccosh, low=1.2, high=4),
    OpCase("atanh", lambda x: x.atanh(), np.arctanh, low=-0.9, high=0.9),
    OpCase("rsqrt", lambda x: x.rsqrt(), lambda x: 1 / np.sqrt(x), **POS),
    OpCase("reciprocal", lambda x: x.reciprocal(), np.reciprocal, covers=("div",), **POS,
           second=False),
    OpCase("square", lambda x: x.square(), np.square, covers=("mul",), second=False),
    OpCase("log2", lambda x: x.log2(), np.log2, **POS),
    OpCase("log10", lambda x: x.log10(), np.log10, **POS),
    OpCase("log1p", lambda x: x.log1p(), np.log1p, low=-0.8, high=3),
    OpCase("expm1", lambda x: x.expm1(), np.expm1),
    OpCase("exp2", lambda x: x.exp2(), np.exp2),
    # combining, rounding and division (rounding ops have a zero gradient)
    OpCase("copysign", lambda a, b: a.copysign(b), np.copysign, arity=2, broadcast=True,
           away_from=(0.0,)),
    OpCase("logaddexp", lambda a, b: a.logaddexp(b), np.logaddexp, arity=2, broadcast=True),
    OpCase("lerp", lambda a, b, w: a.lerp(b, w), lambda a, b, w: a + w * (b - a),
           draw=_lerp_draw()),
    OpCase("floor", lambda x: x.floor(), np.floor, **_away_from_ints(-3, 3)),
    OpCase("ceil", lambda x: x.ceil(), np.ceil, **_away_from_ints(-3, 3)),
    OpCase("trunc", lambda x: x.trunc(), np.trunc, **_away_from_ints(-3, 3)),
    OpCase("round", lambda x: x.round(), np.round, **_away_from_ints(-3, 3, half=True)),
    OpCase("sign", lambda x: x.sign(), np.sign, away_from=(0.0,)),
    OpCase("frac", lambda x: x.frac(), lambda x: x - np.trunc(x), **_away_from_ints(-3, 3)),
    OpCase("fmod", lambda a, b: a.fmod(b), np.fmod, draw=_divmod_draw()),
    OpCase("remainder", lambda a, b: a % b, np.remainder, draw=_divmod_draw()),
    OpCase("floor_divide", lambda a, b: a // b, np.floor_divide, draw=_divmod_draw()),
    OpCase("div_trunc", lambda a, b: a.div(b, rounding_mode="trunc"),
           lambda a, b: np.trunc(a / b), draw=_divmod_draw(), covers=("div", "trunc"),
           second=False),
    OpCase("nan_to_num", lambda x: x.nan_to_num(), np.nan_to_num),
    # activations (compositions: their rows exercise the ops they are made of)
    OpCase("silu", lambda x: F.silu(x), lambda x: x / (1 + np.exp(-x)), covers=("sigmoid",),
           second=False),
    OpCase("mish", lambda x: F.mish(x), lambda x: x * np.tanh(np.log1p(np.exp(x))),
           covers=("softplus", "tanh"), second=False),
    OpCase("selu", lambda x: F.selu(x),
           lambda x: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(x)),
           away_from=(0.0,), covers=("elu",), second=False),
    OpCase("celu", lambda x: F.celu(x, 0.7),
           lambda x: np.maximum(x, 0) + np.minimum(0, 0.7 * np.expm1(x / 0.7)),
           away_from=(0.0,), covers=("elu",), second=False),
    OpCase("hardtanh", lambda x: F.hardtanh(x, -0.5, 1.0), lambda x: np.clip(x, -0.5, 1.0),
           away_from=(-0.5, 1.0), covers=("hardtanh",)),
    OpCase("relu6", lambda x: F.relu6(x * 4), lambda x: np.clip(x * 4, 0, 6),
           away_from=(0.0, 1.5), covers=("hardtanh",), second=False),
    OpCase("hardsigmoid", lambda x: F.hardsigmoid(x * 2), lambda x: np.clip(x / 3 + 0.5, 0, 1),
           away_from=(-1.5, 1.5), covers=("hardtanh",), second=False),
    OpCase("hardswish", lambda x: F.hardswish(x * 2),
           lambda x: 2 * x * np.clip(x / 3 + 0.5, 0, 1), away_from=(-1.5, 1.5),
           covers=("hardtanh",), second=False),
    OpCase("softsign", lambda x: F.softsign(x), lambda x: x / (1 + np.abs(x)), away_from=(0.0,),
           covers=("abs",), second=False),
    OpCase("logsigmoid", lambda x: F.logsigmoid(x), lambda x: -np.log1p(np.exp(-x)),
           low=-6, high=6, covers=("softplus",), second=False),
    OpCase("softmin", lambda x, axis: F.softmin(x, dim=axis), lambda x, axis: ref.softmax(-x, axis),
           draw=_softmax_draw(), covers=("softmax",), second=False),
    OpCase("softplus_beta", lambda x: F.softplus(x, beta=2.0, threshold=3.0),
           lambda x: np.where(2 * x > 3, x, np.log1p(np.exp(2 * x)) / 2), away_from=(1.5,),
           covers=("softplus",), second=False),
    OpCase("glu", lambda x, axis: F.glu(x, dim=axis),
           lambda x, axis: np.split(x, 2, axis)[0] / (1 + np.exp(-np.split(x, 2, axis)[1])),
           draw=_glu_draw(), covers=("sigmoid",), second=False),
    # reductions
    OpCase("sum", lambda x, axis, keepdims: x.sum(axis=axis, keepdims=keepdims),
           lambda x, axis, keepdims: np.sum(x, axis=axis, keepdims=keepdims), draw=_axis_draw()),
    OpCase("mean", lambda x, axis, keepdims: x.mean(axis=axis, keepdims=keepdims),
           lambda x, axis, keepdims: np.mean(x, axis=axis, keepdims=keepdims), draw=_axis_draw(),
           covers=("sum",)),
    OpCase("prod", lambda x, axis, keepdims: x.prod(axis=axis, keepdims=keepdims),
           lambda x, axis, keepdims: np.prod(x, axis=axis, keepdims=keepdims),
           draw=_axis_draw(0.5, 1.5)),
    OpCase("max", lambda x, axis, keepdims: x.max(axis=axis, keepdims=keepdims),
           lambda x, axis, keepdims: np.max(x, axis=axis, keepdims=keepdims),
           draw=_axis_draw(distinct=True)),
    OpCase("min", lambda x, axis, keepdims: x.min(axis=axis, keepdims=keepdims),
           lambda x, axis, keepdims: np.min(x, axis=axis, keepdims=keepdims),
           draw=_axis_draw(distinct=True)),
    OpCase("var", lambda x, axis, keepdims: x.var(axis=axis, keepdims=keepdims, ddof=0),
           lambda x, axis, keepdims: np.var(x, axis=axis, keepdims=keepdims), draw=_axis_draw()),
    OpCase("std", lambda x, axis, keepdims: x.std(axis=axis, keepdims=keepdims, ddof=1),
           lambda x, axis, keepdims: np.std(x, axis=axis, keepdims=keepdims, ddof=1),
           draw=_axis_draw(distinct=True, min_dims=1).filter(
               lambda c: np.prod([c[0][0].shape[a] for a in
                                  (range(c[0][0].ndim) if c[1]["axis"] is None else
                                   np.atleast_1d(c[1]["axis"]))]) >= 2)),
    OpCase("logsumexp", lambda x, axis, keepdims: x.logsumexp(axis=axis, keepdims=keepdims),
           _lse_oracle, draw=_axis_draw()),
    # scans and statistics (issue 9)
    OpCase("cumsum", lambda x, axis: x.cumsum(axis), lambda x, axis: np.cumsum(x, axis),
           draw=_int_axis_draw()),
    OpCase("cumprod", lambda x, axis: x.cumprod(axis), lambda x, axis: np.cumprod(x, axis),
           draw=_int_axis_draw(0.5, 1.5)),
    OpCase("cumprod_zeros", lambda x, axis: x.cumprod(axis), lambda x, axis: np.cumprod(x, axis),
           draw=_with_zeros_draw(), covers=("cumprod",)),
    OpCase("prod_zeros", lambda x, axis: x.prod(axis), lambda x, axis: np.prod(x, axis),
           draw=_with_zeros_draw(), covers=("prod", "cumprod")),
    OpCase("logcumsumexp", lambda x, axis: x.logcumsumexp(axis),
           lambda x, axis: np.logaddexp.accumulate(x, axis), draw=_int_axis_draw(-4, 4)),
    OpCase("cummax", lambda x, axis: x.cummax(axis).values,
           lambda x, axis: np.maximum.accumulate(x, axis), draw=_int_axis_draw(distinct=True),
           covers=("gather",)),
    OpCase("cummin", lambda x, axis: x.cummin(axis=axis),
           lambda x, axis: np.minimum.accumulate(x, axis), draw=_int_axis_draw(distinct=True),
           covers=("gather",), second=False),
    OpCase("var_mean", lambda x, axis: tl.cat([t.reshape(-1) for t in x.var_mean(axis)]),
           lambda x, axis: np.concatenate([np.var(x, axis, ddof=1).reshape(-1),
                                           np.mean(x, axis).reshape(-1)]),
           draw=_int_axis_draw(distinct=True).filter(lambda c: c[0][0].shape[c[1]["axis"]] > 1),
           covers=("sum",), second=False),
    OpCase("std_mean_ddof0", lambda x, axis: x.std_mean(axis, ddof=0)[0],
           lambda x, axis: np.std(x, axis),
           draw=_int_axis_draw(distinct=True).filter(lambda c: c[0][0].shape[c[1]["axis"]] > 1),
           covers=("sqrt",), second=False),
    OpCase("norm_1", lambda x: x.norm(1), lambda x: np.abs(x).sum(), away_from=(0.0,),
           covers=("abs",), second=False),
    OpCase("norm_2", lambda x, axis: x.norm(2, dim=axis),
           lambda x, axis: np.sqrt((x * x).sum(axis)), draw=_int_axis_draw(0.2, 2.0),
           covers=("sqrt",), second=False),
    OpCase("norm_inf", lambda x: x.norm(float("inf")), lambda x: np.abs(x).max(),
           draw=_int_axis_draw(0.1, 2.0, distinct=True).map(lambda c: (c[0], {})),
           covers=("max",), second=False),
    OpCase("norm_fro", lambda x: x.norm(), lambda x: np.sqrt((x * x).sum()), min_dims=1,
           low=0.2, high=2, covers=("sqrt",), second=False),
    # sorting: values are a gather at the chosen indices
    OpCase("sort", lambda x, axis: x.sort(axis).values, lambda x, axis: np.sort(x, axis),
           draw=_sort_draw(), covers=("gather",)),
    OpCase("sort_descending", lambda x, axis: x.sort(axis=axis, descending=True),
           lambda x, axis: np.flip(np.sort(x, axis), axis), draw=_sort_draw(),
           covers=("gather",), second=False),
    OpCase("topk", lambda x, axis, k: x.topk(k, axis).values,
           lambda x, axis, k: _topk_oracle(x, axis, k, True), draw=_sort_draw(k=True),
           covers=("gather",), second=False),
    OpCase("topk_smallest", lambda x, axis, k: x.topk(k, axis=axis, largest=False),
           lambda x, axis, k: _topk_oracle(x, axis, k, False), draw=_sort_draw(k=True),
           covers=("gather",), second=False),
    OpCase("kthvalue", lambda x, axis, k: x.kthvalue(k, axis).values, _kth_oracle,
           draw=_sort_draw(k=True), covers=("gather",), second=False),
    OpCase("median_dim", lambda x, axis: x.median(axis).values, _lower_median,
           draw=_sort_draw(), covers=("gather",)),
    OpCase("median_axis", lambda x, axis: x.median(axis=axis),
           lambda x, axis: np.median(x, axis), draw=_sort_draw(), covers=("gather",), second=False),
    # movement
    OpCase("reshape", lambda x, shape: x.reshape(shape), lambda x, shape: x.reshape(shape),
           draw=_reshape_draw()),
    OpCase("permute", lambda x, axes: x.permute(axes), np.transpose, draw=_permute_draw()),
    OpCase("T", lambda x: x.T, lambda x: x.T, covers=("permute",)),
    OpCase("contiguous", lambda x: x.T.contiguous(), lambda x: np.ascontiguousarray(x.T),
           min_dims=2, covers=("contiguous", "permute")),
    OpCase("expand", lambda x, shape: x.expand(shape), np.broadcast_to, draw=_expand_draw()),
    OpCase("getitem", lambda x, index: x[index], lambda x, index: x[index], draw=_getitem_draw()),
    OpCase("index_add", lambda g, index, shape: M.IndexAdd.apply(g, index=index, shape=shape),
           _index_add_oracle, draw=_index_add_draw()),
    OpCase("cat", lambda *xs, axis: tl.cat(xs, axis=axis),
           lambda *xs, axis: np.concatenate(xs, axis=axis), draw=_cat_draw()),
    OpCase("stack", lambda *xs, axis: tl.stack(xs, axis=axis),
           lambda *xs, axis: np.stack(xs, axis=axis), draw=_stack_draw(), covers=("cat",)),
    OpCase("split", lambda x, size: tl.cat(x.split(size)[::-1]),
           lambda x, size: np.concatenate(
               [x[i:i + size] for i in range(0, x.shape[0], size)][::-1]),
           draw=_split_draw(), covers=("getitem",)),
    OpCase("pad", lambda x, pad_width, value: x.pad(pad_width, value),
           lambda x, pad_width, value: np.pad(x, pad_width, constant_values=value),
           draw=_pad_draw()),
    OpCase("tile", lambda x, reps: x.tile(reps), np.tile, draw=_tile_draw(),
           covers=("expand", "reshape")),
    # layout (issue 9)
    OpCase("flip", lambda x, axis, keepdims: x.flip(axis=axis),
           lambda x, axis, keepdims: np.flip(x, axis), draw=_axis_draw()),
    OpCase("roll", lambda x, shifts, dims: x.roll(shifts, dims),
           lambda x, shifts, dims: np.roll(x, shifts, dims), draw=_roll_draw()),
    OpCase("roll_flat", lambda x: x.roll(2), lambda x: np.roll(x, 2), covers=("roll",),
           second=False),
    OpCase("tril", lambda x, k: x.tril(k), lambda x, k: np.tril(x, k), draw=_tri_draw()),
    OpCase("triu", lambda x, k: x.triu(k), lambda x, k: np.triu(x, k), draw=_tri_draw()),
    OpCase("diagonal", lambda x, offset, dim1, dim2: x.diagonal(offset, dim1, dim2),
           lambda x, offset, dim1, dim2: np.diagonal(x, offset, dim1, dim2),
           draw=_diagonal_draw()),
    OpCase("diagonal_backward",
           lambda g, geom, shape: I.DiagonalBackward.apply(g, geom=geom, shape=shape),
           _diagonal_backward_oracle, draw=_diagonal_backward_draw()),
    OpCase("diag", lambda x, k: x.diag(k), lambda x, k: np.diag(x, k), draw=_diag_draw(),
           covers=("diagonal", "diagonal_backward")),
    OpCase("unflatten", lambda x: x.unflatten(-1, (1, x.shape[-1], 1)),
           lambda x: x.reshape(x.shape[:-1] + (1, x.shape[-1], 1)), min_dims=1,
           covers=("reshape",), second=False),
    OpCase("unfold", lambda x, axis, size, step: x.unfold(axis, size, step), _unfold_oracle,
           draw=_unfold_draw(), covers=("getitem", "index_add")),
    OpCase("repeat_interleave", lambda x, axis, repeats: x.repeat_interleave(repeats, axis),
           lambda x, axis, repeats: np.repeat(x, repeats, axis),
           draw=_repeat_interleave_draw(), covers=("getitem", "index_add"), second=False),
    OpCase("chunk", lambda x, axis: tl.cat(x.chunk(2, axis)[::-1], axis=axis),
           lambda x, axis: np.concatenate(
               [np.take(x, np.arange(-(-x.shape[axis] // 2), x.shape[axis]), axis),
                np.take(x, np.arange(-(-x.shape[axis] // 2)), axis)], axis),
           draw=_int_axis_draw(), covers=("getitem", "cat"), second=False),
    OpCase("narrow", lambda x, axis, start, length: x.narrow(axis, start, length),
           lambda x, axis, start, length: np.take(x, np.arange(start, start + length), axis),
           draw=_narrow_draw(), covers=("getitem",), second=False),
    OpCase("movedim", lambda x, src, dst: x.movedim(src, dst),
           lambda x, src, dst: np.moveaxis(x, src, dst),
           draw=_movedim_draw(), covers=("permute",), second=False),
    # gather and scatter: gradients flow through the indices
    OpCase("gather", lambda x, dim, index: x.gather(dim, index),
           lambda x, dim, index: x[_full_index(index, dim)], draw=_gather_draw()),
    OpCase("scatter_add", lambda x, s, dim, index: x.scatter_add(dim, index, s),
           _scatter_add_oracle, draw=_scatter_draw()),
    OpCase("scatter", lambda x, s, dim, index: x.scatter(dim, index, s), _scatter_oracle,
           draw=_scatter_draw(unique=True)),
    OpCase("scatter_reduce",
           lambda x, s, dim, index, reduce, include_self: x.scatter_reduce(
               dim, index, s, reduce, include_self=include_self),
           _scatter_reduce_oracle, draw=_scatter_reduce_draw()),
    OpCase("index_select", lambda x, axis, index: x.index_select(axis, index),
           lambda x, axis, index: np.take(x, index, axis), draw=_index_select_draw(),
           covers=("getitem", "index_add"), second=False),
    OpCase("take_along_dim", lambda x, dim, index: x.take_along_dim(index, dim),
           _take_along_oracle, draw=_take_along_draw(), covers=("gather", "expand"), second=False),
    OpCase("masked_fill", lambda x, mask: x.masked_fill(mask, -1.5),
           lambda x, mask: np.where(mask, -1.5, x), draw=_mask_draw(), covers=("where",),
           second=False),
    OpCase("masked_select", lambda x, mask: x.masked_select(mask),
           lambda x, mask: np.broadcast_to(x, np.broadcast_shapes(x.shape, mask.shape))[
               np.broadcast_to(mask, np.broadcast_shapes(x.shape, mask.shape))],
           draw=_mask_draw(), covers=("getitem", "expand"), second=False),
    OpCase("meshgrid", lambda *xs, indexing: tl.stack(tl.meshgrid(*xs, indexing=indexing)),
           lambda *xs, indexing: np.stack(np.meshgrid(*xs, indexing=indexing)),
           draw=_meshgrid_draw(), covers=("expand",), second=False),
    OpCase("einsum", lambda *xs, eq: tl.einsum(eq, *xs), lambda *xs, eq: np.einsum(eq, *xs),
           draw=_einsum_draw(), covers=("matmul", "diagonal")),
    # nn
    OpCase("softmax", lambda x, axis: x.softmax(axis), ref.softmax, draw=_softmax_draw()),
    OpCase("log_softmax", lambda x, axis: x.log_softmax(axis),
           lambda x, axis: np.log(ref.softmax(x, axis)), draw=_softmax_draw()),
    OpCase("softmax_cross_entropy",
           lambda z, labels: N.SoftmaxCrossEntropy.apply(z, tl.Tensor(labels)), _xent_oracle,
           draw=_xent_draw()),
    OpCase("linear_relu", F.linear_relu,
           lambda x, w, b, keras_layout: np.maximum(x @ (w if keras_layout else w.T) + b, 0),
           draw=_linear_relu_draw()),
    OpCase("matmul", lambda a, b: a @ b, np.matmul, draw=_matmul_draw()),
    OpCase("linear", F.linear, lambda x, w, b: x @ w.T + b, draw=_linear_draw(),
           covers=("matmul",)),
    OpCase("matmul_transposed", lambda a, b, ta, tb: N.MatMul.apply(a, b, ta=ta, tb=tb),
           lambda a, b, ta, tb: (a.T if ta else a) @ (b.T if tb else b),
           draw=_matmul_t_draw(), covers=("matmul",)),
    OpCase("embedding", lambda w, idx: F.embedding(idx, w), lambda w, idx: w[idx],
           draw=_embedding_draw(), covers=("getitem", "index_add")),
    OpCase("dropout", _dropout, _dropout_oracle),
    OpCase("conv2d", lambda x, w, **g: F.conv2d(x, w, **g), ref.conv2d, draw=_conv_draw(),
           tol=dict(atol=1e-4)),
    OpCase("conv2d_bias", lambda x, w, b, **g: F.conv2d(x, w, b, **g),
           lambda x, w, b, **g: ref.conv2d(x, w, **g) + b[None, :, None, None],
           draw=_conv_draw(kind="bias"), covers=("conv2d",), tol=dict(atol=1e-4)),
    OpCase("conv2d_backward_input",
           lambda gy, w, x_shape, **g: N.Conv2dBackwardInput.apply(
               gy, w, x_shape=x_shape, geom=(g["stride"], g["padding"], g["dilation"],
                                             g["groups"])),
           lambda gy, w, x_shape, **g: ref.conv2d_backward_input(gy, w, x_shape, **g),
           draw=_conv_draw(kind="bwd_input"), tol=dict(atol=1e-4)),
    OpCase("conv2d_backward_weight",
           lambda gy, x, w_shape, **g: N.Conv2dBackwardWeight.apply(
               gy, x, w_shape=w_shape, geom=(g["stride"], g["padding"], g["dilation"],
                                             g["groups"])),
           lambda gy, x, w_shape, **g: ref.conv2d_backward_weight(gy, x, w_shape, **g),
           draw=_conv_draw(kind="bwd_weight"), tol=dict(atol=1e-4)),
    OpCase("conv_transpose2d", lambda x, w, **g: F.conv_transpose2d(x, w, **g),
           _conv_transpose_oracle, draw=_conv_transpose_draw(),
           covers=("conv2d_backward_input",), tol=dict(atol=1e-4)),
    OpCase("max_pool2d", lambda x, **k: F.max_pool2d(x, **k),
           lambda x, **k: ref.pool2d(x, *_pool_geom(x.shape, **k), "max"), draw=_pool_draw()),
    OpCase("max_pool2d_backward", _max_pool_bwd,
           lambda gy, x, **k: ref.max_pool2d_backward(gy, x, *_pool_geom(x.shape, **k)),
           draw=_pool_draw(with_grad=True), const=(1,)),
    OpCase("pool_gather", _pool_gather, _pool_gather_oracle,
           draw=_pool_draw(distinct=True).map(lambda c: ((c[0][0] * 0.5, c[0][0]), c[1])),
           const=(1,)),
    OpCase("avg_pool2d", lambda x, **k: F.avg_pool2d(x, **k),
           lambda x, **k: ref.pool2d(x, *_pool_geom(x.shape, **k), "avg"),
           draw=_pool_draw(distinct=False)),
    OpCase("avg_pool2d_backward",
           lambda gy, x, **k: N.AvgPool2dBackward.apply(
               gy, x_shape=x.shape, geom=_pool_geom(x.shape, **k)),
           lambda gy, x, **k: ref.avg_pool2d_backward(gy, x.shape, *_pool_geom(x.shape, **k)),
           draw=_pool_draw(with_grad=True, distinct=False), const=(1,)),
    # distributed: the sum over ranks; one process here, so the identity (the 2-rank case is
    # checked against single-process BatchNorm in tests/distributed)
    OpCase("all_reduce_sum", lambda x: _dist.all_reduce_sum(x), lambda x: x),
]


# The fused recurrent Functions (one layer, one direction, whole sequence); the second-order
# check runs their double-backward fallback (the reference formulation).
@st.composite
def _recurrent_draw(d, kind):
    T, B, n_in, H = (d(st.integers(1, 3)), d(st.integers(1, 2)), d(st.integers(1, 2)),
                     d(st.integers(1, 2)))
    G = {"rnn": 1, "lstm": 4, "gru": 3}[kind] * H
    layout = d(st.sampled_from(["torch", "keras"]))
    kw = dict(layout=layout, reverse=d(st.booleans()))
    if kind != "rnn":
        kw["gates"] = "".join(d(st.permutations("ifgo" if kind == "lstm" else "rzn")))
    shapes = [(T, B, n_in), (B, H)] + ([(B, H)] if kind == "lstm" else [])
    shapes += [(n_in, G), (H, G)] if layout == "keras" else [(G, n_in), (G, H)]
    shapes += [(G,)] * d(st.integers(0, 2))
    return tuple(d(tst.arrays(s, low=-1.5, high=1.5)) for s in shapes), kw


def _recurrent_oracle(kind):
    def oracle(x, h0, *rest, **kw):
        c0, rest = (rest[0], rest[1:]) if kind == "lstm" else (None, rest)
        return ref.recurrent_sequence(kind, x, h0, c0, rest[0], rest[1], rest[2:], **kw)
    return oracle


CASES += [
    OpCase("lstm_sequence", lambda *a, **kw: RC.LSTMSequence.apply(*a, **kw),
           _recurrent_oracle("lstm"), draw=_recurrent_draw("lstm")),
    OpCase("gru_sequence", lambda *a, **kw: RC.GRUSequence.apply(*a, **kw),
           _recurrent_oracle("gru"), draw=_recurrent_draw("gru")),
    OpCase("rnn_sequence", lambda *a, **kw: RC.RNNSequence.apply(*a, **kw),
           _recurrent_oracle("rnn"), draw=_recurrent_draw("rnn")),
]


# ------------------------------------------------------------ nn: 1-D/3-D, options, attention ---
# Composite functionals (nn/spatial.py, nn/attention.py) and max_unpool; small shapes keep the
# three properties cheap.

from tinygrad_lite.nn import spatial as SP  # noqa: E402


def _np_pool(x, k, s, p, d, ceil, kind, include_pad=True):
    """Loop oracle for N-d max/avg pooling with PyTorch's options."""
    nd = len(k)
    sp = x.shape[2:]
    out = []
    for a in range(nd):
        span = sp[a] + 2 * p[a] - d[a] * (k[a] - 1) - 1
        o = (-(-span // s[a]) if ceil else span // s[a]) + 1
        if ceil and (o - 1) * s[a] >= sp[a] + p[a]:
            o -= 1
        out.append(o)
    y = np.zeros(x.shape[:2] + tuple(out))
    for pos in np.ndindex(*out):
        cells = [[pos[a] * s[a] - p[a] + j * d[a] for j in range(k[a])] for a in range(nd)]
        if kind == "max":
            inside = [[c for c in cs if 0 <= c < sp[a]] for a, cs in enumerate(cells)]
            win = x[(slice(None), slice(None)) + np.ix_(*inside)]
            y[(slice(None), slice(None)) + pos] = win.reshape(x.shape[:2] + (-1,)).max(-1)
        else:
            inside = [[c for c in cs if 0 <= c < sp[a]] for a, cs in enumerate(cells)]
            win = x[(slice(None), slice(None)) + np.ix_(*inside)]
            if include_pad:
                cnt = np.prod([min(cs[-1] + 1, sp[a] + p[a]) - cs[0]
                               for a, cs in enumerate(cells)])
            else:
                cnt = np.prod([len(c) for c in inside])
            y[(slice(None), slice(None)) + pos] = win.reshape(x.shape[:2] + (-1,)).sum(-1) / cnt
    return y


@st.composite
def _pool_nd_draw(d, nd, kind):
    k = tuple(d(st.integers(1, 3)) for _ in range(nd))
    s = tuple(d(st.integers(1, 2)) for _ in range(nd))
    p = tuple(d(st.integers(0, ki // 2)) for ki in k)
    dil = tuple(d(st.integers(1, 2)) for _ in range(nd)) if kind == "max" else (1,) * nd
    lows = [max(1, dl * (ki - 1) + 1 - 2 * pi) for ki, pi, dl in zip(k, p, dil)]
    sizes = tuple(d(st.integers(lo, max(lo, 5 if nd < 3 else 3))) for lo in lows)
    shape = (d(st.integers(1, 2)), d(st.integers(1, 2))) + sizes
    x = d(tst.distinct_arrays(shape) if kind == "max" else tst.arrays(shape))
    kw = dict(kernel_size=k, stride=s, padding=p, ceil_mode=d(st.booleans()))
    # a dilated window can fall wholly into the padding (PyTorch gives -inf there, we give 0;
    # a known difference): keep to windows that see at least one element
    for a in range(nd):
        span = sizes[a] + 2 * p[a] - dil[a] * (k[a] - 1) - 1
        o = (-(-span // s[a]) if kw["ceil_mode"] else span // s[a]) + 1
        for q in range(o):
            assume(any(0 <= q * s[a] - p[a] + j * dil[a] < sizes[a] for j in range(k[a])))
    if kind == "max":
        kw["dilation"] = dil
    else:
        kw["count_include_pad"] = d(st.booleans())
    return (x,), kw


def _max_pool_nd_oracle(x, kernel_size, stride, padding, dilation, ceil_mode):
    return _np_pool(x, kernel_size, stride, padding, dilation, ceil_mode, "max")


def _avg_pool_nd_oracle(x, kernel_size, stride, padding, ceil_mode, count_include_pad):
    return _np_pool(x, kernel_size, stride, padding, (1,) * len(kernel_size), ceil_mode, "avg",
                    count_include_pad)


@st.composite
def _conv1d_draw(d, transpose=False):
    g = d(tst.conv_geometries(max_channels=2, max_hw=6))
    n, c, _, w = g["x_shape"]
    o, cg, _, kw = g["w_shape"]
    kw_ = dict(stride=g["stride"][1], padding=g["padding"][1], dilation=g["dilation"][1],
               groups=g["groups"])
    if not transpose:
        return (d(tst.arrays((n, c, w))), d(tst.arrays((o, cg, kw)))), kw_
    ow = (w + 2 * kw_["padding"] - kw_["dilation"] * (kw - 1) - 1) // kw_["stride"] + 1
    op_ = d(st.integers(0, kw_["stride"] - 1))
    assume((ow - 1) * kw_["stride"] - 2 * kw_["padding"] + kw_["dilation"] * (kw - 1) + op_ >= 0)
    return ((d(tst.arrays((n, o, ow))), d(tst.arrays((o, c // g["groups"], kw)))),
            dict(kw_, output_padding=op_))


def _conv1d_oracle(x, w, stride, padding, dilation, groups):
    return ref.conv2d(x[:, :, None], w[:, :, None], (1, stride), (0, padding), (1, dilation),
                      groups)[:, :, 0]


def _conv_transpose1d_oracle(x, w, stride, padding, dilation, groups, output_padding):
    out = ((x.shape[2] - 1) * stride - 2 * padding + dilation * (w.shape[2] - 1)
           + output_padding + 1)
    x_shape = (x.shape[0], w.shape[1] * groups, 1, out)
    return ref.conv2d_backward_input(x[:, :, None], w[:, :, None], x_shape, (1, stride),
                                     (0, padding), (1, dilation), groups)[:, :, 0]


@st.composite
def _conv3d_draw(d):
    g = d(st.integers(1, 2))
    c, o = g, g                    # 3-D gradchecks cost 2 passes per element: keep them small
    k = tuple(d(st.integers(1, 2)) for _ in range(3))
    s = tuple(d(st.integers(1, 2)) for _ in range(3))
    p = tuple(d(st.integers(0, 1)) for _ in range(3))
    sizes = tuple(d(st.integers(max(1, ki - 2 * pi), 3)) for ki, pi in zip(k, p))
    x = d(tst.arrays((1, c) + sizes))
    w = d(tst.arrays((o, c // g) + k))
    return (x, w), dict(stride=s, padding=p, groups=g)


def _conv3d_oracle(x, w, stride, padding, groups):
    xp = np.pad(x, ((0, 0), (0, 0)) + tuple((q, q) for q in padding))
    out = [(xp.shape[2 + a] - w.shape[2 + a]) // stride[a] + 1 for a in range(3)]
    og, cg = w.shape[0] // groups, w.shape[1]
    y = np.zeros((x.shape[0], w.shape[0], *out))
    for oc in range(w.shape[0]):
        gi = oc // og
        for pos in np.ndindex(*out):
            sl = tuple(slice(pos[a] * stride[a], pos[a] * stride[a] + w.shape[2 + a])
                       for a in range(3))
            patch = xp[(slice(None), slice(gi * cg, (gi + 1) * cg)) + sl]
            y[(slice(None), oc) + pos] = (patch * w[oc]).sum(axis=(1, 2, 3, 4))
    return y


@st.composite
def _pad_mode_draw(d):
    shape = d(tst.shapes(min_dims=2, max_dims=4, min_side=2))
    mode = d(st.sampled_from(["constant", "reflect", "replicate", "circular"]))
    naxes = d(st.integers(1, min(3, len(shape))))
    pads = []
    for a in range(naxes):
        size = shape[-1 - a]
        hi = size - 1 if mode == "reflect" else size if mode == "circular" else 3
        pads += [d(st.integers(0, hi)), d(st.integers(0, hi))]
    return (d(tst.arrays(shape)),), dict(pad=tuple(pads), mode=mode)


def _pad_mode_oracle(x, pad, mode):
    widths = [(0, 0)] * x.ndim
    for j in range(len(pad) // 2):
        widths[x.ndim - 1 - j] = (pad[2 * j], pad[2 * j + 1])
    np_mode = {"constant": "constant", "reflect": "reflect", "replicate": "edge",
               "circular": "wrap"}[mode]
    return np.pad(x, widths, mode=np_mode)


@st.composite
def _interp_draw(d):
    nd = d(st.integers(1, 2))
    shape = (d(st.integers(1, 2)), d(st.integers(1, 2))) + tuple(
        d(st.integers(1, 4)) for _ in range(nd))
    mode = d(st.sampled_from(["nearest", "nearest-exact", "linear"]))
    size = tuple(d(st.integers(1, 6)) for _ in range(nd))
    kw = dict(size=size, mode=mode if mode != "linear" else ("linear", "bilinear")[nd - 1])
    if mode == "linear":
        kw["align_corners"] = d(st.booleans())
    return (d(tst.arrays(shape)),), kw


def _interp_oracle(x, size, mode, align_corners=None):
    """Per output cell: the PyTorch source coordinate(s) and weights, written out directly."""
    ins = x.shape[2:]
    y = np.zeros(x.shape[:2] + tuple(size))
    for pos in np.ndindex(*size):
        terms = [((), 1.0)]
        for a, (o, n_in, n_out) in enumerate(zip(pos, ins, size)):
            if mode.startswith("nearest"):
                off = 0.5 if mode == "nearest-exact" else 0.0
                idx = [(min(int(np.floor((o + off) * n_in / n_out)), n_in - 1), 1.0)]
            else:
                if align_corners:
                    src = o * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
                else:
                    src = max((o + 0.5) * n_in / n_out - 0.5, 0.0)
                i0 = min(int(np.floor(src)), n_in - 1)
                t = src - i0
                idx = [(i0, 1 - t), (min(i0 + 1, n_in - 1), t)]
            terms = [(ij + (i,), wt * w2) for ij, wt in terms for i, w2 in idx]
        for ij, wt in terms:
            y[(slice(None), slice(None)) + pos] += wt * x[(slice(None), slice(None)) + ij]
    return y


@st.composite
def _dim_draw(d, arity=1, low=0.3, high=2.0):
    shape = d(tst.shapes(min_dims=1, max_dims=3))
    dim = d(st.integers(-len(shape), len(shape) - 1))
    return tuple(d(tst.arrays(shape, low, high)) for _ in range(arity)), dict(dim=dim)


def _np_normalize(x, dim, p=2.0, eps=1e-12):
    n = np.sum(np.abs(x) ** p, axis=dim, keepdims=True) ** (1 / p)
    return x / np.maximum(n, eps)


@st.composite
def _group_norm_draw(d):
    g = d(st.integers(1, 2))
    c = g * d(st.integers(1, 3))
    shape = (d(st.integers(1, 2)), c) + tuple(d(st.lists(st.integers(2, 3), max_size=2)))
    x = d(tst.distinct_arrays(shape, -2.0, 2.0, gap=0.05))
    return (x, d(tst.arrays((c,))), d(tst.arrays((c,)))), dict(num_groups=g)


def _group_norm_oracle(x, w, b, num_groups):
    g = x.reshape(x.shape[0], num_groups, -1)
    y = ((g - g.mean(-1, keepdims=True)) / np.sqrt(g.var(-1, keepdims=True) + 1e-5))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return y.reshape(x.shape) * w.reshape(shape) + b.reshape(shape)


@st.composite
def _sdpa_draw(d):
    b, lq, lk, e = (d(st.integers(1, 3)) for _ in range(4))
    q, k, v = (d(tst.arrays(s)) for s in ((b, lq, e), (b, lk, e), (b, lk, e)))
    kind = d(st.sampled_from(["none", "causal", "float", "bool"]))
    kw = dict(is_causal=kind == "causal", attn_mask=None)
    if kind == "causal":
        assume(lq == lk)
    if kind == "float":
        kw["attn_mask"] = d(tst.arrays((lq, lk)))
    if kind == "bool":
        m = np.asarray(d(st.lists(st.booleans(), min_size=lq * lk, max_size=lq * lk)))
        kw["attn_mask"] = m.reshape(lq, lk)
    return (q, k, v), kw


def _sdpa_oracle(q, k, v, attn_mask, is_causal):
    s = q @ k.swapaxes(-1, -2) / np.sqrt(q.shape[-1])
    if is_causal:
        attn_mask = np.tril(np.ones(s.shape[-2:], bool))
    if attn_mask is not None and attn_mask.dtype == bool:
        s = np.where(attn_mask, s, -np.inf)
    elif attn_mask is not None:
        s = s + attn_mask
    m = s.max(-1, keepdims=True)
    e = np.exp(s - np.where(np.isfinite(m), m, 0.0))
    den = e.sum(-1, keepdims=True)
    return np.divide(e, den, out=np.zeros_like(e), where=den > 0) @ v


@st.composite
def _unpool_draw(d):
    n, c, k = d(st.integers(1, 2)), d(st.integers(1, 2)), d(st.integers(1, 4))
    size = d(st.integers(k, 8))
    idx = np.stack([np.stack([np.asarray(d(st.permutations(range(size))))[:k]
                              for _ in range(c)]) for _ in range(n)])
    return (d(tst.arrays((n, c, k, 1))),), dict(idx=idx[..., None], size=size)


def _unpool_oracle(x, idx, size):
    out = np.zeros(x.shape[:2] + (size, 1))
    for a, b, j in np.ndindex(*x.shape[:3]):
        out[a, b, idx[a, b, j, 0], 0] = x[a, b, j, 0]
    return out


CASES += [
    OpCase("conv1d", lambda x, w, **g: F.conv1d(x, w, **g), _conv1d_oracle, draw=_conv1d_draw(),
           covers=("conv2d",), tol=dict(atol=1e-4)),
    OpCase("conv_transpose1d", lambda x, w, **g: F.conv_transpose1d(x, w, **g),
           _conv_transpose1d_oracle, draw=_conv1d_draw(transpose=True),
           covers=("conv2d_backward_input",), tol=dict(atol=1e-4)),
    OpCase("conv3d", lambda x, w, **g: F.conv3d(x, w, **g), _conv3d_oracle, draw=_conv3d_draw(),
           covers=("conv2d",), tol=dict(atol=1e-4)),
    OpCase("max_pool_nd", lambda x, **k: SP.max_pool_nd(x, len(k["kernel_size"]), **k),
           _max_pool_nd_oracle, draw=st.integers(1, 3).flatmap(
               lambda nd: _pool_nd_draw(nd, "max")), covers=("pool_gather", "max_pool2d")),
    OpCase("avg_pool_nd", lambda x, **k: SP.avg_pool_nd(x, len(k["kernel_size"]), **k),
           _avg_pool_nd_oracle, draw=st.integers(1, 3).flatmap(
               lambda nd: _pool_nd_draw(nd, "avg")), covers=("avg_pool2d",)),
    OpCase("max_unpool", lambda x, idx, size: N.MaxUnpool.apply(x, idx=idx, shape=x.shape[:2]
                                                                + (size, 1)),
           _unpool_oracle, draw=_unpool_draw()),
    OpCase("pad_modes", lambda x, pad, mode: F.pad(x, pad, mode=mode), _pad_mode_oracle,
           draw=_pad_mode_draw(), covers=("getitem", "pad")),
    OpCase("interpolate", lambda x, **k: F.interpolate(x, **k), _interp_oracle,
           draw=_interp_draw(), covers=("getitem",)),
    OpCase("normalize", lambda x, dim: F.normalize(x, dim=dim), _np_normalize,
           draw=_dim_draw(), covers=("clip", "sqrt")),
    OpCase("cosine_similarity", lambda a, b, dim: F.cosine_similarity(a, b, dim=dim),
           lambda a, b, dim: np.sum(_np_normalize(a, dim) * _np_normalize(b, dim), axis=dim),
           draw=_dim_draw(2), covers=("sum",)),
    OpCase("pairwise_distance", F.pairwise_distance,
           lambda a, b: np.sqrt(np.sum((a - b + 1e-6) ** 2, axis=-1)),
           draw=tst.shapes(min_dims=1, max_dims=2).flatmap(
               lambda s: st.tuples(tst.arrays(s), tst.arrays(s)).map(lambda ab: (ab, {}))).filter(
               lambda c: np.all(np.abs(c[0][0] - c[0][1]).max(-1) > 0.1)), covers=("sqrt",)),
    OpCase("group_norm", lambda x, w, b, num_groups: F.group_norm(x, num_groups, w, b),
           _group_norm_oracle, draw=_group_norm_draw(), covers=("mean",), tol=dict(atol=1e-4)),
    OpCase("scaled_dot_product_attention",
           lambda q, k, v, **kw: F.scaled_dot_product_attention(q, k, v, **kw), _sdpa_oracle,
           draw=_sdpa_draw(), covers=("softmax", "where", "matmul")),
]


IDS = [c.name for c in CASES]


def _tensors(arrays, case, requires_grad=True):
    out = []
    for i, a in enumerate(arrays):
        rg = requires_grad and i not in case.const and a.dtype.kind == "f"
        out.append(tl.Tensor(np.array(a, order="C"), requires_grad=rg))
    return out


# ------------------------------------------------------------------ generic tests ---


def test_every_registered_op_has_a_case():
    covered = {op for c in CASES for op in c.ops()}
    missing = sorted(set(REGISTRY) - covered)
    assert not missing, f"registered ops without an op case: {missing}"


def test_case_names_are_unique():
    assert len(IDS) == len(set(IDS))


@pytest.mark.parametrize("case", CASES, ids=IDS)
@given(data=st.data())
def test_forward_matches_oracle(case, backend, data):
    arrays, kw = data.draw(_inputs_strategy(case), label="inputs")
    for dtype in (np.float64, np.float32):
        arrs = [a.astype(dtype) if a.dtype.kind == "f" else a for a in arrays]
        got = case.fn(*_tensors(arrs, case, requires_grad=False), **kw)
        want = case.oracle(*[a.astype(np.float64) if a.dtype.kind == "f" else a
                             for a in arrs], **kw)
        tol = 1e-10 if dtype == np.float64 else 2e-5
        np.testing.assert_allclose(got.numpy(), want, rtol=tol * 10, atol=tol * 10,
                                   err_msg=f"{case.name} forward ({np.dtype(dtype).name})")
        assert got.shape == np.shape(want), f"{case.name}: shape {got.shape} != {np.shape(want)}"
        if got.dtype.kind == "f":
            assert got.dtype == dtype, f"{case.name}: dtype {got.dtype} for {dtype} input"


GRAD_CASES = [c for c in CASES if c.grad]


@pytest.mark.parametrize("case", GRAD_CASES, ids=[c.name for c in GRAD_CASES])
@given(data=st.data(), seed=st.integers(0, 2 ** 16))
def test_first_order_gradient(case, backend, data, seed):
    arrays, kw = data.draw(_inputs_strategy(case), label="inputs")
    tensors = _tensors(arrays, case)
    assume(any(t.requires_grad and t.size for t in tensors))
    gradcheck(lambda *ts: case.fn(*ts, **kw), tensors, seed=seed, op=case.name, **case.tol)


SECOND_CASES = [c for c in CASES if c.grad and c.second]


@pytest.mark.parametrize("case", SECOND_CASES, ids=[c.name for c in SECOND_CASES])
@given(data=st.data(), seed=st.integers(0, 2 ** 16))
def test_second_order_gradient(case, backend, data, seed):
    arrays, kw = data.draw(_inputs_strategy(case), label="inputs")
    tensors = _tensors(arrays, case)
    assume(any(t.requires_grad and t.size for t in tensors))
    gradgradcheck(lambda *ts: case.fn(*ts, **kw), tensors, seed=seed, op=case.name, **case.tol)


# ------------------------------------------------------------------ no-grad ops ---

NO_GRAD = [
    ("argmax", lambda x: x.argmax(axis=-1), lambda x: np.argmax(x, axis=-1)),
    ("argmin", lambda x: x.argmin(), np.argmin),
    ("eq", lambda x: x == 0.5, lambda x: x == 0.5),
    ("ne", lambda x: x != 0.5, lambda x: x != 0.5),
    ("lt", lambda x: x < 0.5, lambda x: x < 0.5),
    ("le", lambda x: x <= 0.5, lambda x: x <= 0.5),
    ("gt", lambda x: x > 0.5, lambda x: x > 0.5),
    ("ge", lambda x: x >= 0.5, lambda x: x >= 0.5),
    ("one_hot", lambda x: F.one_hot((x.abs() * 2).astype(np.int64), 7),
     lambda x: np.eye(7)[(np.abs(x) * 2).astype(np.int64)]),
    ("isnan", lambda x: (x.log()).isnan(), lambda x: np.isnan(np.log(x))),
    ("isinf", lambda x: (1 / x.floor()).isinf(), lambda x: np.isinf(1 / np.floor(x))),
    ("isfinite", lambda x: (1 / x.floor()).isfinite(), lambda x: np.isfinite(1 / np.floor(x))),
    ("isclose", lambda x: x.isclose(x.round(1), atol=0.02), lambda x: np.isclose(
        x, np.round(x, 1), atol=0.02)),
    ("argsort", lambda x: x.argsort(-1), lambda x: np.argsort(x, -1, kind="stable")),
    ("argsort_descending", lambda x: x.argsort(0, descending=True),
     lambda x: np.argsort(-x, 0, kind="stable")),
    ("topk_indices", lambda x: x.topk(1, -1).indices, lambda x: np.argmax(x, -1)[..., None]),
    ("count_nonzero", lambda x: x.floor().count_nonzero(-1),
     lambda x: np.count_nonzero(np.floor(x), -1)),
    ("nonzero", lambda x: x.floor().nonzero(), lambda x: np.argwhere(np.floor(x))),
    ("and", lambda x: (x > 0) & (x < 1), lambda x: (x > 0) & (x < 1)),
    ("or", lambda x: (x > 1) | (x < -1), lambda x: (x > 1) | (x < -1)),
    ("xor", lambda x: (x > 0) ^ (x > 1), lambda x: (x > 0) ^ (x > 1)),
    ("invert", lambda x: ~(x > 0), lambda x: ~(x > 0)),
    ("floor_divide_int", lambda x: (x * 3).long() // 2, lambda x: (x * 3).astype(np.int64) // 2),
    ("remainder_int", lambda x: (x * 3).long() % -2, lambda x: (x * 3).astype(np.int64) % -2),
    ("div_trunc_int", lambda x: (x * 3).long().div(2, rounding_mode="trunc"),
     lambda x: np.trunc((x * 3).astype(np.int64) / 2).astype(np.int64)),
]


@pytest.mark.parametrize("name,fn,oracle", NO_GRAD, ids=[n[0] for n in NO_GRAD])
@given(a=tst.arrays(tst.shapes(min_dims=1), low=-3, high=3))
def test_no_grad_ops(name, fn, oracle, a):
    x = tl.Tensor(a, requires_grad=True)
    y = fn(x)
    np.testing.assert_array_equal(y.numpy(), oracle(a))
    assert not y.requires_grad, f"{name} must not carry a gradient"


# ------------------------------------------------------------------ lean walk == graph walk ---


# Fused ops whose create_graph backward is a different (differentiable) formula from the one
# the lean walk uses, so the two agree to rounding only ({name: (float64 tol, float32 tol)}):
# softmax_cross_entropy's forward keeps (softmax - onehot)/N for the lean walk, while the graph
# walk recomputes softmax with Tensor ops; the fused recurrent sequences run hand-written BPTT
# (float32 gates through an exp approximation, ~2e-7 relative) on the lean walk and
# differentiate the Tensor-op reference formulation on the graph walk.
# conv2d_bias: the lean walk sums the bias gradient in the kernel that computes dw (its own
# summation order), the graph walk with a Tensor sum over (N, H, W).
_GRAPH_WALK_RECOMPUTES = {"softmax_cross_entropy": (1e-12, 1e-5), "lstm_sequence": (1e-10, 1e-4),
                          "gru_sequence": (1e-10, 1e-4), "rnn_sequence": (1e-10, 1e-4),
                          "conv2d_bias": (1e-12, 1e-5)}


@pytest.mark.parametrize("case", GRAD_CASES, ids=[c.name for c in GRAD_CASES])
@given(data=st.data(), seed=st.integers(0, 2 ** 16))
def test_lean_walk_equals_graph_walk(case, backend, data, seed):
    """backward() walks raw arrays (array_backward rules run on ndarrays); create_graph=True
    walks Tensors. Both must give the very same gradients, bit for bit, in float64 and float32."""
    arrays, kw = data.draw(_inputs_strategy(case), label="inputs")
    for dtype in (np.float64, np.float32):
        arrs = [a.astype(dtype) if a.dtype.kind == "f" else a for a in arrays]
        tensors = _tensors(arrs, case)
        wanted = [t for t in tensors if t.requires_grad]
        assume(wanted and any(t.size for t in wanted))
        out = case.fn(*tensors, **kw)
        w = np.random.default_rng(seed).standard_normal(out.shape).astype(out.dtype)
        loss = (out * tl.Tensor(w)).sum()
        lean = tl.grad(loss, wanted, retain_graph=True, allow_unused=True)
        graph = tl.grad(loss, wanted, create_graph=True, allow_unused=True)
        for t, a, b in zip(wanted, lean, graph):
            assert (a is None) == (b is None), case.name
            if a is not None:
                assert a.dtype == b.dtype and a.shape == b.shape == t.shape, case.name
                msg = f"{case.name} ({np.dtype(dtype).name})"
                if case.name in _GRAPH_WALK_RECOMPUTES:
                    tol = _GRAPH_WALK_RECOMPUTES[case.name][dtype == np.float32]
                    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=tol, atol=tol,
                                               err_msg=msg)
                else:
                    np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=msg)


_FRESH_CASES = [c for c in GRAD_CASES if any(REGISTRY[o].fresh_grads for o in c.ops()
                                             if o in REGISTRY)]


@pytest.mark.parametrize("case", _FRESH_CASES, ids=[c.name for c in _FRESH_CASES])
@given(data=st.data(), seed=st.integers(0, 2 ** 16))
def test_fresh_grads_rules_return_new_arrays(case, data, seed):
    """A Function marked fresh_grads lets the lean walk make its results a leaf's .grad without
    a copy. Its promise, checked on every recorded node of the case: each array its rule returns
    on the lean walk is writeable and shares memory with nothing the graph holds (the upstream
    gradient, the saved and input arrays, ctx attributes) nor with another of its results."""
    from tinygrad_lite import autograd

    arrays, kw = data.draw(_inputs_strategy(case), label="inputs")
    tensors = _tensors(arrays, case)
    assume(any(t.requires_grad for t in tensors))
    out = case.fn(*tensors, **kw)
    assume(out.requires_grad)
    rng = np.random.default_rng(seed)
    checked = 0
    for t in autograd._topo_order([out]):
        node = t._node
        if not node.fn.fresh_grads:
            continue
        g = np.asarray(rng.standard_normal(t.shape), dtype=t.dtype)
        held = [g, *node.ctx._saved, *(p.data for p in node.parents),
                *(v for v in getattr(node.ctx, "__dict__", {}).values()
                  if isinstance(v, np.ndarray))]
        results = [r for r in autograd._backward_arrays(node.fn, node.ctx, g)
                   if isinstance(r, np.ndarray)]
        for i, r in enumerate(results):
            assert r.flags.writeable, node.fn.op_name
            for h in held + results[:i]:
                assert not np.shares_memory(r, h), f"{node.fn.op_name} returned a held array"
        checked += 1
    assert checked, f"{case.name}: no fresh_grads node in its graph"

