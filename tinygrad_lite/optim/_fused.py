"""The fused optimizer path: one Cython call updates every parameter of a param group.

``SGD`` and ``Adam`` (sgd.py, adam.py) write their update once, in NumPy, per parameter -- the
reference. When the Cython backend is active, this module hands a whole group to one kernel call
(``tinygrad_lite._cpu.sgd_step_many`` / ``adam_step_many``, kernels/cpu/fused.pxi), which runs
the same per-element operations as the single-parameter kernels (kernels/cpu/optim.pxi) in the
same order, so the results are bit for bit those of one call per parameter, and agree with the
NumPy path to the last bit on x86-64 (tests/optim/test_optim_fused.py).

The kernels trust their inputs, so every check happens here. A parameter that does not pass
(extension not built, another backend, not a NumPy float32/float64 array, a gradient of another
dtype, a non-contiguous parameter or state array) is returned to the caller, which runs the
NumPy ``_update`` on it.
"""

import math

import numpy as np

from tinygrad_lite import backends as _backends
from tinygrad_lite.backends import threads as _threads
from tinygrad_lite.backends._ext import load_cpu_kernels

_cpu, _ = load_cpu_kernels()   # None: the extension is not built (or disabled); NumPy updates

_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)


def enabled():
    """True when the fused kernels may run: built, and the ``cython`` backend active (so
    ``TINYGRAD_LITE_BACKEND=numpy`` and ``backends.use("numpy")`` give the NumPy path)."""
    return _cpu is not None and _backends.current().name == "cython"


def call(name, *args):
    """Run kernel ``name`` of ``tinygrad_lite._cpu`` (the one place the tests count calls)."""
    return getattr(_cpu, name)(*args)


def _fits(data, grad):
    return (type(data) is np.ndarray and type(grad) is np.ndarray and grad.dtype == data.dtype
            and (data.dtype == _F32 or data.dtype == _F64))


def _flat(state, data, grad, *arrays):
    """1-D C-contiguous views ``[param, grad, *arrays]``, or None when the parameter or a state
    array (None entries pass through) has another dtype, shape or layout. The views of the
    parameter and state are kept in ``state['_flat']`` while those arrays stay the same objects;
    a non-contiguous gradient is copied (it is only read)."""
    cached = state.get("_flat")
    key = (data,) + arrays
    if cached is not None and len(cached[0]) == len(key) and all(
            a is b for a, b in zip(cached[0], key)):
        views = cached[1]
    else:
        dt, shape = data.dtype, data.shape
        if not data.flags.c_contiguous:
            return None
        for a in arrays:
            if a is not None and (type(a) is not np.ndarray or a.dtype != dt or a.shape != shape
                                  or not a.flags.c_contiguous):
                return None
        views = [data.reshape(-1)] + [None if a is None else a.reshape(-1) for a in arrays]
        state["_flat"] = (key, views)
    if not grad.flags.c_contiguous:
        grad = np.ascontiguousarray(grad)
    return [views[0], grad.reshape(-1)] + views[1:]


def sgd_group(items, state_of, group):
    """Update ``items`` ((param, grad) pairs of one group) with one ``sgd_step_many`` call per
    dtype; returns the pairs left for the NumPy path."""
    if not enabled():
        return items
    mu = group["momentum"]
    rest, batches = [], {}
    for p, grad in items:
        data = p.data
        if not _fits(data, grad):
            rest.append((p, grad))
            continue
        state = state_of[p]
        buf = state.get("momentum_buffer") if mu != 0 else None
        first = mu != 0 and buf is None
        if first:                      # the kernel fills it with g on the first step
            buf = np.empty_like(data)
        flat = _flat(state, data, grad, buf)
        if flat is None:
            rest.append((p, grad))
            continue
        if first:
            state["momentum_buffer"] = buf
        b = batches.setdefault(data.dtype, ([], [], [], []))
        b[0].append(flat[0])
        b[1].append(flat[1])
        b[2].append(flat[2])
        b[3].append(first)
    for dt, (ps, gs, bufs, firsts) in batches.items():
        call("sgd_step_many", ps, gs, bufs, group["lr"], mu, group["dampening"],
             group["nesterov"], firsts, dt == _F64, _threads._num_threads)
    return rest


class _AdamGroup:
    """What one fused Adam call over a group needs besides the gradients, kept while the group
    keeps the same parameters, arrays and state dicts: the flat views of every parameter and
    state array. ``adam_group`` checks each of them by identity per step (a few attribute reads
    per parameter) instead of rebuilding the lists."""

    __slots__ = ("group", "params", "datas", "states", "ms", "vs", "vms", "flat", "dtype",
                 "amsgrad")


def _adam_cached(items, state_of, group, amsgrad):
    """The fused call through the group's _AdamGroup, or False when it does not fit."""
    cache = getattr(state_of, "_fused_groups", None)
    e = None if cache is None else cache.get(id(group))
    if (e is None or e.group is not group or e.amsgrad != amsgrad
            or len(items) != len(e.params)):
        return False
    dt, nd = e.dtype, np.ndarray
    gs = []
    for (p, g), q, d, st, m, v, vm in zip(items, e.params, e.datas, e.states, e.ms, e.vs,
                                          e.vms):
        if (p is not q or p.data is not d or type(g) is not nd or g.dtype is not dt
                or not g.flags.c_contiguous or state_of[p] is not st
                or st["exp_avg"] is not m or st["exp_avg_sq"] is not v
                or (amsgrad and st.get("max_exp_avg_sq") is not vm)):
            return False
        gs.append(g.reshape(-1))
    (b1, b2) = group["betas"]
    bc1, bc2, memo = [], [], {}
    for st in e.states:
        t = st["step"] = st["step"] + 1
        c = memo.get(t)
        if c is None:   # as adam_group: 1 - b1^t and sqrt(1 - b2^t) in double
            c = memo[t] = (1 - b1**t, math.sqrt(1 - b2**t))
        bc1.append(c[0])
        bc2.append(c[1])
    ps, ms, vs, vms = e.flat
    wd = group["weight_decay"] if group["decoupled_weight_decay"] else 0.0
    call("adam_step_many", ps, gs, ms, vs, vms, group["lr"], b1, b2, group["eps"], bc1, bc2,
         wd, amsgrad, dt == _F64, _threads._num_threads)
    return True


def _remember_adam(items, state_of, group, amsgrad, flat_lists, dtype):
    """After a full fused call over one dtype: keep the group's views for the next step."""
    try:
        cache = state_of._fused_groups
    except AttributeError:
        try:
            cache = state_of._fused_groups = {}
        except AttributeError:       # a state mapping that takes no attributes: no cache
            return
    e = _AdamGroup()
    e.group, e.amsgrad, e.dtype = group, amsgrad, dtype
    e.params = [p for p, _ in items]
    e.datas = [p.data for p in e.params]
    e.states = [state_of[p] for p in e.params]
    e.ms = [st["exp_avg"] for st in e.states]
    e.vs = [st["exp_avg_sq"] for st in e.states]
    e.vms = [st.get("max_exp_avg_sq") if amsgrad else None for st in e.states]
    e.flat = flat_lists
    cache[id(group)] = e


def adam_group(items, state_of, group):
    """Update ``items`` with one ``adam_step_many`` call per dtype; returns the pairs left for
    the NumPy path (their state is initialized but their step count is not advanced)."""
    if not enabled():
        return items
    (b1, b2), amsgrad = group["betas"], group["amsgrad"]
    if _adam_cached(items, state_of, group, amsgrad):
        return []
    rest, batches = [], {}
    for p, grad in items:
        data = p.data
        if not _fits(data, grad):
            rest.append((p, grad))
            continue
        state = state_of[p]
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(data)
            state["exp_avg_sq"] = np.zeros_like(data)
            if amsgrad:
                state["max_exp_avg_sq"] = np.zeros_like(data)
        if amsgrad and "max_exp_avg_sq" not in state:
            # amsgrad switched on mid-run: the NumPy path starts the maximum at v_t; starting it
            # at 0 gives max(0, v_t) = v_t, the same values, inside the kernel.
            state["max_exp_avg_sq"] = np.zeros_like(data)
        vmax = state["max_exp_avg_sq"] if amsgrad else None
        flat = _flat(state, data, grad, state["exp_avg"], state["exp_avg_sq"], vmax)
        if flat is None:
            rest.append((p, grad))
            continue
        state["step"] += 1
        t = state["step"]
        b = batches.setdefault(data.dtype, ([], [], [], [], [], [], []))
        for lst, a in zip(b, flat):
            lst.append(a)
        # bias corrections 1 - b1^t and sqrt(1 - b2^t) in double, exactly as the NumPy path
        b[5].append(1 - b1**t)
        b[6].append(math.sqrt(1 - b2**t))
    wd = group["weight_decay"] if group["decoupled_weight_decay"] else 0.0
    for dt, (ps, gs, ms, vs, vmaxs, bc1, bc2) in batches.items():
        call("adam_step_many", ps, gs, ms, vs, vmaxs, group["lr"], b1, b2, group["eps"], bc1,
             bc2, wd, amsgrad, dt == _F64, _threads._num_threads)
    if not rest and len(batches) == 1:
        ((dt, (ps, _, ms, vs, vmaxs, _, _)),) = batches.items()
        _remember_adam(items, state_of, group, amsgrad, (ps, ms, vs, vmaxs), dt)
    return rest
