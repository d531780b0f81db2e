"""Collectives on Tensors and arrays: ``all_reduce`` (sum/mean), ``broadcast``, ``all_gather``.

Each returns a new value of the same kind it was given (Tensor in, Tensor out; array in, array
out) and leaves its input untouched. Host (NumPy) arrays go straight through MPI. CUDA (CuPy)
arrays go through NCCL when ``cupy.cuda.nccl`` is available, else through MPI on host copies
(``select_transport`` decides; the NCCL run itself needs a GPU and is not tested here).
"""

import numpy as np

from ..errors import ShapeError
from .comm import group

_OPS = ("sum", "mean")


# ------------------------------------------------------------------ transport ---

def is_cuda_array(a):
    """True for a CuPy (device) array, without importing CuPy."""
    return type(a).__module__.split(".")[0] == "cupy"


def nccl_available():
    """(ok, why): can this process use ``cupy.cuda.nccl``?"""
    try:
        from cupy.cuda import nccl
    except Exception as e:   # noqa: BLE001 - ImportError, or CUDA missing at import
        return False, f"cupy.cuda.nccl not importable ({type(e).__name__}: {e})"
    if not getattr(nccl, "available", True):
        return False, "cupy was built without NCCL"
    return True, "cupy.cuda.nccl"


def select_transport(a, nccl_ok=None):
    """Which path moves array ``a``: ``'mpi'`` (host array), ``'nccl'`` (CUDA array, NCCL
    present) or ``'mpi-host-copy'`` (CUDA array, no NCCL: copy to host, MPI, copy back)."""
    if not is_cuda_array(a):
        return "mpi"
    ok = nccl_available()[0] if nccl_ok is None else nccl_ok
    return "nccl" if ok else "mpi-host-copy"


_NCCL = {}


def _nccl_comm():
    """One NCCL communicator per process, its unique id broadcast from rank 0 over MPI."""
    g = group()
    if "comm" not in _NCCL:
        from cupy.cuda import nccl

        uid = nccl.get_unique_id() if g.rank == 0 else None
        uid = g.comm.bcast(uid, root=0)
        _NCCL["comm"] = nccl.NcclCommunicator(g.size, uid, g.rank)
    return _NCCL["comm"]


def _nccl_allreduce_sum(a):
    import cupy
    from cupy.cuda import nccl

    types = {np.dtype(np.float32): nccl.NCCL_FLOAT32, np.dtype(np.float64): nccl.NCCL_FLOAT64,
             np.dtype(np.int64): nccl.NCCL_INT64, np.dtype(np.int32): nccl.NCCL_INT32}
    out = cupy.empty_like(a)
    stream = cupy.cuda.get_current_stream()
    _nccl_comm().allReduce(a.data.ptr, out.data.ptr, a.size, types[np.dtype(a.dtype)],
                           nccl.NCCL_SUM, stream.ptr)
    stream.synchronize()
    return out


# ------------------------------------------------------------------ helpers ---

def _unwrap(x, op):
    from ..tensor import Tensor

    if isinstance(x, Tensor):
        return x.data, True
    if is_cuda_array(x):
        return x, False
    a = np.asarray(x)
    if a.dtype == object:
        raise TypeError(f"{op}: expected a Tensor or a numeric array, got {type(x).__name__}")
    return a, False


def _rewrap(a, was_tensor):
    from ..tensor import Tensor

    return Tensor._wrap(a, False) if was_tensor else a


def _host(a):
    if is_cuda_array(a):
        import cupy

        return cupy.asnumpy(a), True
    return np.asarray(a, order="C"), False   # (ascontiguousarray would make 0-d 1-d)


def _device(a, on_gpu):
    if on_gpu:
        import cupy

        return cupy.asarray(a)
    return a


def allreduce_array_inplace(buf, op_name):
    """Blocking in-place sum of a contiguous host array ``buf`` over all ranks."""
    g = group()
    if g.size == 1:
        return buf
    seq = g._announce()
    g.wait(g.comm.Iallreduce(g.MPI.IN_PLACE, buf.reshape(-1), op=g.MPI.SUM), op_name, seq)
    return buf


# ------------------------------------------------------------------ collectives ---

def all_reduce(x, op="sum"):
    """Sum (or mean) of ``x`` over all ranks, returned on every rank.

    >>> total = all_reduce(np.array([rank()]))          # 0 + 1 + ... + (world_size - 1)
    """
    if op not in _OPS:
        raise ValueError(f"all_reduce: op must be one of {_OPS}, got {op!r}")
    a, was_tensor = _unwrap(x, "all_reduce")
    g = group()
    if select_transport(a) == "nccl" and g.size > 1:
        out = _nccl_allreduce_sum(a)
    else:
        host, on_gpu = _host(a)
        buf = np.array(host, copy=True, order="C")
        if op == "mean" and buf.dtype.kind in "iub":
            buf = buf.astype(np.float64)
        out = _device(allreduce_array_inplace(buf, "all_reduce"), on_gpu)
    if op == "mean":
        out = out / g.size if out.dtype.kind in "iub" else out * out.dtype.type(1.0 / g.size)
    return _rewrap(out, was_tensor)


def broadcast(x, src=0):
    """Rank ``src``'s ``x`` on every rank; every rank passes an array of the same shape and dtype
    (checked: a mismatch raises ``ShapeError`` on every rank)."""
    a, was_tensor = _unwrap(x, "broadcast")
    g = group()
    if not 0 <= src < g.size:
        raise ValueError(f"broadcast: src must be in [0, {g.size}), got {src}")
    host, on_gpu = _host(a)
    if g.size == 1:
        return _rewrap(_device(host.copy(), on_gpu), was_tensor)
    head = np.array([host.ndim] + list(host.shape) + [0] * (8 - host.ndim)
                    + [host.dtype.num], np.int64) if host.ndim <= 8 else None
    if head is None:
        raise ShapeError(f"broadcast: at most 8 dimensions, got shape {host.shape}")
    heads = np.zeros((g.size, head.size), np.int64)     # every rank checks every header
    seq = g._announce()
    g.wait(g.comm.Iallgather(head, heads), "broadcast", seq)
    for r in range(g.size):
        if not np.array_equal(heads[r], heads[src]):
            h, hs = heads[r], heads[src]
            raise ShapeError(
                f"broadcast: rank {r} passed shape {tuple(int(v) for v in h[1:1 + h[0]])} "
                f"(dtype number {h[-1]}) but rank {src}, the source, has shape "
                f"{tuple(int(v) for v in hs[1:1 + hs[0]])} (dtype number {hs[-1]}); pass "
                "arrays of the same shape and dtype on every rank")
    buf = np.array(host, copy=True, order="C")
    seq = g._announce()
    g.wait(g.comm.Ibcast(buf, root=src), "broadcast", seq)
    return _rewrap(_device(buf, on_gpu), was_tensor)


def all_gather(x):
    """A list with every rank's ``x`` in rank order. The shapes may differ along axis 0 only."""
    a, was_tensor = _unwrap(x, "all_gather")
    g = group()
    host, on_gpu = _host(a)
    if g.size == 1:
        return [_rewrap(_device(host.copy(), on_gpu), was_tensor)]
    from .comm import allgather_json

    metas = allgather_json([list(host.shape), host.dtype.str], "all_gather")
    for r, (shape, dt) in enumerate(metas):
        if dt != host.dtype.str or tuple(shape[1:]) != host.shape[1:]:
            raise ShapeError(f"all_gather: rank {r} passed shape {tuple(shape)} dtype {dt}, rank "
                             f"{g.rank} shape {host.shape} dtype {host.dtype.str}; shapes may "
                             "differ only along axis 0 and dtypes must match")
    counts = np.array([int(np.prod(s)) for s, _ in metas], np.int64)
    out = np.empty(int(counts.sum()), host.dtype)
    mt = g.MPI._typedict[host.dtype.char]
    seq = g._announce()
    g.wait(g.comm.Iallgatherv([np.ascontiguousarray(host).reshape(-1), mt],
                              [out, (counts, None), mt]), "all_gather", seq)
    offs = np.concatenate([[0], np.cumsum(counts)])
    return [_rewrap(_device(out[offs[r]:offs[r + 1]].reshape(metas[r][0]), on_gpu), was_tensor)
            for r in range(g.size)]
