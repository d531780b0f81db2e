"""The replay of a captured step as direct kernel calls on preallocated buffers (used by jit.py).

A checked recording (jit.py) is a list of array steps: each ``Function.forward`` with its
Context, each backward rule of the lean walk, each un-broadcast, ``.grad`` hand-over and
optimizer call. Replaying that list as it is already skips the Tensor graph, but every step
still pays for its Python (the rule, ``call``, the backend method's checks) and allocates its
output afresh. This module *lowers* the steps it knows -- a forward and the backward of the same
Context together -- into closures that call the same kernels the eager step calls, with the
same arguments, writing into a buffer made once per plan::

    LinearReLU   forward: gemm_bias_act (+ the ReLU mask);  backward: mask, 2 GEMMs, bias sum
    MatMul       2-D, both ways: the small-GEMM kernel or the packed GEMM, as eager picks them
    Add          forward: numpy.add(out=);  backward: the gradient itself, twice
    SoftmaxCrossEntropy   forward: the fused kernel into dz;  backward: g * dz
    sum_to_shape of a bias gradient: numpy.add.reduce(out=)

Each lowered step computes exactly the eager step's array operations in the same order (the
GEMM of the same kernel, ``numpy`` ufuncs with ``out=`` instead of a fresh result), so the
replay stays bitwise equal to eager (tests/test_jit.py checks it over 20 steps). Anything else
(another op, another backend, an unusual layout or dtype) stays a generic step, and a Function
is lowered only when both its forward and its backward are (they share what forward saves).

When a buffer may be reused. A buffer is written again on the next call only if nothing but
the plan holds it: before each write the step checks the buffer's reference count, and if
anything else still refers to it -- a loss or output Tensor the caller kept, a ``.grad`` the
caller kept (``zero_grad`` inside the step drops the step's own reference first), a view of it
-- the step allocates a new buffer and keeps that one instead. So a value handed out is never
overwritten behind the caller's back, and a training loop that drops last step's results runs
without allocating any large array after the warm-up.

Next: jit.py, which records the steps this module lowers.
"""

import sys

import numpy as np

from . import autograd
from .backends import threads as _threads
from .backends._ext import load_cpu_kernels

_cpu, _ = load_cpu_kernels()
_refcount = sys.getrefcount
_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)
_empty = np.empty
_np_multiply, _np_add, _np_greater, _np_add_reduce = (np.multiply, np.add, np.greater,
                                                      np.add.reduce)

if _cpu is not None:   # the float32/float64 specializations (no fused-type dispatch per call)
    _GEMM = {_F32: _cpu.gemm.__signatures__["float"], _F64: _cpu.gemm.__signatures__["double"]}
    _GEMM_BIAS_ACT = {_F32: _cpu.gemm_bias_act.__signatures__["float"],
                      _F64: _cpu.gemm_bias_act.__signatures__["double"]}
    _XENT = {_F32: _cpu.softmax_xent.__signatures__["float"],
             _F64: _cpu.softmax_xent.__signatures__["double"]}
    _SMALL = _cpu.matmul_small


class _Buf:
    """One output buffer of a lowered step: ``get()`` gives it back for writing, or a new one
    when something besides the plan still refers to the old one (see the module docstring)."""

    __slots__ = ("a", "shape", "dtype")

    def __init__(self, shape, dtype):
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.a = _empty(self.shape, self.dtype)

    def get(self):
        a = self.a
        if _refcount(a) > _FREE:      # more than self.a, the local ``a`` and the argument
            a = self.a = _empty(self.shape, self.dtype)
        return a

    def _count(self):
        a = self.a
        return _refcount(a)           # the same references as in get(), and no other


# What the count reads in get() when nothing else refers to the buffer (3 on CPython 3.11;
# measured, not assumed, as interpreters differ in the references a call holds).
_FREE = _Buf((1,), bool)._count()


class Unlowerable(Exception):
    """This step stays a generic one."""


class _Lowering:
    """What the builders see: the recorded arrays (for shapes, dtypes and layouts), and a way to
    read an argument (a slot of this call, or a constant held by reference) in the closures."""

    def __init__(self, slots, slot_type, n_slots):
        self.slots, self.Slot, self.n_slots = slots, slot_type, n_slots
        self.buffers = []

    def array(self, v):
        """The recorded array behind argument ``v``."""
        return self.slots[v.i] if isinstance(v, self.Slot) else v

    def reader(self, v):
        """A function s -> the array of argument ``v`` in the call being replayed."""
        if isinstance(v, self.Slot):
            i = v.i
            return lambda s: s[i]
        return lambda s: v

    def buf(self, like):
        b = _Buf(like.shape, like.dtype)
        self.buffers.append(b)
        return b

    def private_slot(self):
        """A slot of its own for what a lowered forward keeps for its backward."""
        self.n_slots += 1
        return self.n_slots - 1


def _fast_2d(*arrays):
    """C-contiguous 2-D float32/float64 ndarrays of one dtype (the GEMM fast path's test)."""
    dt = arrays[0].dtype
    return all(type(a) is np.ndarray and a.ndim == 2 and a.dtype is dt and a.flags.c_contiguous
               for a in arrays) and (dt is _F32 or dt is _F64)


def _matmul_into(a, b, ta, tb, buf):
    """CythonBackend.matmul's fast path (C-contiguous 2-D operands of one float dtype), with the
    packed GEMM writing into ``buf``: the small-GEMM kernel first, as eager tries it first."""
    y = _SMALL(a, b, ta, tb)
    if y is not None:
        return y
    out = buf.get()
    _GEMM[out.dtype](a, b, ta, tb, out, False, _threads._num_threads)
    return out


def _check_mm(a, b, ta, tb, out):
    """Raise Unlowerable unless ``backend.matmul(a, b, ta, tb)`` takes the fast path to ``out``."""
    if not (_fast_2d(a, b) and type(out) is np.ndarray and out.flags.c_contiguous
            and out.dtype is a.dtype):
        raise Unlowerable
    m = a.shape[1] if ta else a.shape[0]
    n = b.shape[0] if tb else b.shape[1]
    if out.shape != (m, n):
        raise Unlowerable


# ------------------------------------------------------------------ the builders ---
# Each takes (lw, forward step, backward step or None) and returns the two closures (the second
# None when there is no backward step), or raises Unlowerable. A step is (f, args, kw, outs) as
# jit.py records it; the closures take the slot list ``s`` of the call being replayed.


def _linear_relu(lw, fwd, bwd):
    _, (ctx, xv, wv, bv), kw, yo = fwd
    tb = bool(kw.get("tb", False))
    x, w, b, y = lw.array(xv), lw.array(wv), lw.array(bv), lw.slots[yo]
    if not (_fast_2d(x, w) and type(b) is np.ndarray and b.ndim == 1 and b.dtype is x.dtype
            and b.flags.c_contiguous and type(y) is np.ndarray and set(kw) <= {"tb"}):
        raise Unlowerable
    n, k = w.shape if tb else w.shape[::-1]
    if k != x.shape[1] or b.shape[0] != n or y.shape != (x.shape[0], n):
        raise Unlowerable
    kern, rx, rw, rb = _GEMM_BIAS_ACT[x.dtype], lw.reader(xv), lw.reader(wv), lw.reader(bv)
    ybuf, posbuf, pos_slot = lw.buf(y), _Buf(y.shape, bool), lw.private_slot()
    lw.buffers.append(posbuf)

    def forward(s):
        out = ybuf.get()
        kern(rx(s), rw(s), False, tb, rb(s), out, 1, _threads._num_threads)
        s[pos_slot] = _np_greater(out, 0, out=posbuf.get())     # ctx.pos = y > 0
        s[yo] = out

    if bwd is None:
        return forward, None
    _, (_fn, _ctx, gv), _, outs = bwd
    g = lw.array(gv)
    nx, nw, nb = ctx.needs_input_grad
    if not (_fast_2d(g, x) and g.shape == y.shape and len(outs) == 3):
        raise Unlowerable
    rg = lw.reader(gv)
    gmbuf = lw.buf(g)
    ox, ow, ob = outs
    # gx = gm op(W)^T, gW = x^T gm (or gm^T x when tb), gb = sum over rows of gm, as the rule
    gxbuf = lw.buf(x) if nx else None
    gwbuf = lw.buf(w) if nw else None
    gbbuf = lw.buf(b) if nb else None
    if (ox is None) == bool(nx) or (ow is None) == bool(nw) or (ob is None) == bool(nb):
        raise Unlowerable

    def backward(s):
        gm = _np_multiply(rg(s), s[pos_slot], out=gmbuf.get())   # g * pos.astype(g.dtype)
        s[pos_slot] = None
        if nx:
            s[ox] = _matmul_into(gm, rw(s), False, not tb, gxbuf)
        if nw:
            s[ow] = (_matmul_into(gm, rx(s), True, False, gwbuf) if tb else
                     _matmul_into(rx(s), gm, True, False, gwbuf))
        if nb:
            s[ob] = _np_add_reduce(gm, axis=(0,), out=gbbuf.get())

    return forward, backward


def _matmul(lw, fwd, bwd):
    _, (ctx, av, bv), kw, yo = fwd
    ta, tb = bool(kw.get("ta", False)), bool(kw.get("tb", False))
    a, b, y = lw.array(av), lw.array(bv), lw.slots[yo]
    if not set(kw) <= {"ta", "tb"}:
        raise Unlowerable
    _check_mm(a, b, ta, tb, y)
    ra, rb, ybuf = lw.reader(av), lw.reader(bv), lw.buf(y)

    def forward(s):
        s[yo] = _matmul_into(ra(s), rb(s), ta, tb, ybuf)

    if bwd is None:
        return forward, None
    _, (_fn, _ctx, gv), _, outs = bwd
    g = lw.array(gv)
    na, nb = ctx.needs_input_grad
    if len(outs) != 2 or (outs[0] is None) == bool(na) or (outs[1] is None) == bool(nb):
        raise Unlowerable
    oa, ob = outs
    rg = lw.reader(gv)
    # MatMul.backward's four cases, as (x, y, trans_x, trans_y) of the product per gradient
    # (readers: 0 = g, 1 = a, 2 = b)
    ga = {(False, False): (0, 2, False, True), (False, True): (0, 2, False, False),
          (True, False): (2, 0, False, True), (True, True): (2, 0, True, True)}[(ta, tb)]
    gb = {(False, False): (1, 0, True, False), (False, True): (0, 1, True, False),
          (True, False): (1, 0, False, False), (True, True): (0, 1, True, True)}[(ta, tb)]
    recorded = (g, a, b)
    for need, (i, j, tx, ty), like in ((na, ga, a), (nb, gb, b)):
        if need:
            _check_mm(recorded[i], recorded[j], tx, ty, like)
    rd = (rg, ra, rb)
    abuf = lw.buf(a) if na else None
    bbuf = lw.buf(b) if nb else None
    ia, ja, txa, tya = ga
    ib, jb, txb, tyb = gb

    def backward(s):
        if na:
            s[oa] = _matmul_into(rd[ia](s), rd[ja](s), txa, tya, abuf)
        if nb:
            s[ob] = _matmul_into(rd[ib](s), rd[jb](s), txb, tyb, bbuf)

    return forward, backward


def _add(lw, fwd, bwd):
    _, (_ctx, av, bv), kw, yo = fwd
    y = lw.slots[yo]
    if kw or type(y) is not np.ndarray or y.ndim == 0:
        raise Unlowerable       # a + b of two 0-d arrays is a NumPy scalar, not an array
    ra, rb, ybuf = lw.reader(av), lw.reader(bv), lw.buf(y)

    def forward(s):
        s[yo] = _np_add(ra(s), rb(s), out=ybuf.get())

    if bwd is None:
        return forward, None
    _, (_fn, _ctx2, gv), _, outs = bwd
    rg = lw.reader(gv)
    o1, o2 = outs

    def backward(s):              # Add.backward: (g, g), the very same array twice
        g = rg(s)
        if o1 is not None:
            s[o1] = g
        if o2 is not None:
            s[o2] = g

    return forward, backward


def _softmax_xent(lw, fwd, bwd):
    from .ops.nn import _bad_labels

    _, (ctx, zv, lv), kw, yo = fwd
    z, labels, loss = lw.array(zv), lw.array(lv), lw.slots[yo]
    if kw or not (_fast_2d(z) and hasattr(ctx, "dz") and type(ctx.dz) is np.ndarray
                  and type(labels) is np.ndarray):
        raise Unlowerable
    kern, dt, rz, rl = _XENT[z.dtype], z.dtype, lw.reader(zv), lw.reader(lv)
    dzbuf, dz_slot = lw.buf(ctx.dz), lw.private_slot()
    asarray, contiguous, i64 = np.asarray, np.ascontiguousarray, np.int64

    def forward(s):
        zz, lab = rz(s), rl(s)
        dz = dzbuf.get()
        value = kern(zz, contiguous(lab, dtype=i64), dz)
        if value < 0:
            _bad_labels(lab, zz.shape[1])
        s[dz_slot] = dz
        s[yo] = asarray(value, dtype=dt)

    if bwd is None:
        return forward, None
    _, (_fn, _ctx, gv), _, outs = bwd
    g = lw.array(gv)
    if not (type(g) is np.ndarray and g.dtype is dt and len(outs) == 2 and outs[1] is None
            and outs[0] is not None):
        raise Unlowerable
    rg, gbuf, og = lw.reader(gv), lw.buf(ctx.dz), outs[0]

    def backward(s):              # g * const_like(ctx.dz, g)
        s[og] = _np_multiply(rg(s), s[dz_slot], out=gbuf.get())
        s[dz_slot] = None

    return forward, backward


def _sum_to_shape(lw, step):
    """sum_to_shape(g, shape) where only leading axes were added (a bias gradient)."""
    _, (gv, shape), kw, yo = step
    g, y = lw.array(gv), lw.slots[yo]
    shape = tuple(shape)
    lead = g.ndim - len(shape)
    if (kw or type(g) is not np.ndarray or type(y) is not np.ndarray or lead <= 0
            or g.shape[lead:] != shape or len(shape) == 0 or y.shape != shape):
        raise Unlowerable
    axes, rg, ybuf = tuple(range(lead)), lw.reader(gv), lw.buf(y)

    def run(s):
        s[yo] = _np_add_reduce(rg(s), axis=axes, out=ybuf.get())

    return run


def _builders():
    from .ops.elementwise import Add
    from .ops.nn import LinearReLU, MatMul, SoftmaxCrossEntropy

    return {LinearReLU: _linear_relu, MatMul: _matmul, Add: _add,
            SoftmaxCrossEntropy: _softmax_xent}


def lower(steps, slots, slot_type, n_slots, backward_arrays, sum_to_shape):
    """The lowered closures for the steps that have one: ({step index: closure}, new slot
    count, buffers). ``steps`` are jit.py's recorded (f, args, kw, outs); ``slots`` the
    recorded arrays of the call the plan comes from. The Functions are lowered on the Cython
    backend only; the bias sum (NumPy alone) on every CPU backend."""
    builders = _builders() if _cpu is not None else {}
    lw = _Lowering(slots, slot_type, n_slots)
    fwd_of, bwd_of = {}, {}            # id(ctx) -> step index
    for n, (f, args, kw, outs) in enumerate(steps):
        if args and isinstance(args[0], autograd.Context):
            fwd_of.setdefault(id(args[0]), []).append(n)
        elif f is backward_arrays and len(args) == 3 and isinstance(args[1], autograd.Context):
            bwd_of.setdefault(id(args[1]), []).append(n)
    done = {}
    for key, fs in fwd_of.items():
        (n,) = fs if len(fs) == 1 else (None,)
        if n is None:
            continue
        f, args, kw, outs = steps[n]
        ctx = args[0]
        cls = next((c for c in builders if c.forward is f), None)
        bs = bwd_of.get(key, [])
        if (cls is None or len(bs) > 1 or type(outs) is not int
                or getattr(ctx.backend, "name", None) != "cython"):
            continue
        b = bs[0] if bs else None
        if b is not None and steps[b][1][0] is not cls:
            continue
        try:
            fw, bw = builders[cls](lw, steps[n], None if b is None else steps[b])
        except Unlowerable:
            continue
        done[n] = fw
        if b is not None:
            done[b] = bw
    for n, step in enumerate(steps):
        if step[0] is sum_to_shape and n not in done:
            try:
                done[n] = _sum_to_shape(lw, step)
            except Unlowerable:
                pass
    return done, lw.n_slots, lw.buffers
