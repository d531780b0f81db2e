"""Data parallelism: every rank holds a replica, sees its own shard, and the gradients are averaged.

``GradientSync`` is the engine. It lays the parameters' gradients out in flat buckets (about
``bucket_cap_mb`` each, in reverse registration order, because backward reaches the last layers
first) and puts a hook on every parameter (``Tensor._hooks``, see autograd.run_backward). When the
backward walk has a parameter's complete gradient, the hook copies it into its bucket; when a
bucket is full, a non-blocking ``Iallreduce`` for it starts at once, so it travels while backward
goes on computing the earlier layers. The hook of the last parameter waits for every bucket and
writes the averages back into ``.grad`` (that hook runs just before autograd stores the last
parameter's gradient, so it hands the average back as that parameter's gradient).

Buckets always start in the same order on every rank (MPI needs collectives in the same order);
a bucket that completes early waits for the ones before it.

``DistributedDataParallel(module)`` wraps a Module with it: rank 0's parameters and buffers are
broadcast at wrap time (after checking that every rank has the same names, shapes and dtypes),
``no_sync()`` skips the averaging for gradient accumulation, and ``sync_batchnorm=True`` turns
BatchNorm layers into ``SyncBatchNorm``.
"""

from contextlib import contextmanager

import numpy as np

from ..errors import ShapeError
from ..nn.module import Module
from ..tensor import Tensor
from .collectives import broadcast
from .comm import DistributedError, allgather_json, group


def _wrap_grad(a):
    return Tensor._wrap(a, False)


class _Bucket:
    __slots__ = ("idx", "offsets", "flat", "pending", "req", "seq", "started")

    def __init__(self, idx, params, xp):
        self.idx = idx
        self.offsets, n = [], 0
        for i in idx:
            self.offsets.append(n)
            n += params[i].size
        self.flat = xp.zeros(n, params[idx[0]].dtype)
        self.pending = len(idx)
        self.req = self.seq = None
        self.started = False


class GradientSync:
    """Average the gradients of ``params`` over all ranks during ``backward()``.

    Parameters
    ----------
    params : list of Tensors (requires_grad)
    names : their names (for error messages); default ``param0``, ``param1``, ...
    bucket_cap_mb : target bucket size in MB (25, as PyTorch)
    """

    def __init__(self, params, names=None, bucket_cap_mb=25.0):
        self.g = group()
        self.params = [p for p in params if p.requires_grad]
        self.names = list(names) if names is not None else [f"param{i}"
                                                           for i in range(len(self.params))]
        self.enabled = True
        self.comm_time = 0.0
        self.launch_log = []  # per started bucket: how many gradients were ready (overlap proof)
        self.where = {}       # param index -> (bucket, position in bucket)
        self.buckets = []
        cap = max(1, int(bucket_cap_mb * 2**20))
        current, size, dtype = [], 0, None
        for i in reversed(range(len(self.params))):
            p = self.params[i]
            nbytes = p.size * p.dtype.itemsize
            if current and (size + nbytes > cap or p.dtype != dtype):
                self._add_bucket(current)
                current, size = [], 0
            current.append(i)
            size += nbytes
            dtype = p.dtype
        if current:
            self._add_bucket(current)
        self._reset()
        self._handles = []
        if self.g.size > 1:
            for i, p in enumerate(self.params):
                hook = self._make_hook(i)
                p._hooks = (p._hooks or []) + [hook]
                self._handles.append((p, hook))

    def _add_bucket(self, idx):
        b = _Bucket(idx, self.params, self.params[idx[0]].xp)
        for pos, i in enumerate(idx):
            self.where[i] = (b, pos)
        self.buckets.append(b)

    def _reset(self):
        self.ready = 0
        self.next_launch = 0
        self.marked = set()
        for b in self.buckets:
            b.pending, b.req, b.started = len(b.idx), None, False

    def close(self):
        """Remove the hooks (the parameters train alone again)."""
        for p, hook in self._handles:
            if p._hooks and hook in p._hooks:
                p._hooks = [h for h in p._hooks if h is not hook] or None
        self._handles = []

    # ---- backward ---------------------------------------------------------------------
    def _make_hook(self, i):
        def hook(g):
            if not self.enabled:
                return None
            return self._mark(i, g.data, in_hook=True)
        return hook

    def _mark(self, i, g, in_hook=False):
        """Parameter ``i``'s gradient for this backward is ``g`` (array or None for zero).
        In a hook, autograd stores the returned value as ``.grad`` of parameter ``i``."""
        if i in self.marked:
            raise DistributedError(
                f"DistributedDataParallel: parameter {self.names[i]!r} got a second gradient "
                "in one synchronized step (two backward passes without optimizer step?); use "
                "no_sync() for all but the last backward of an accumulation")
        self.marked.add(i)
        p = self.params[i]
        b, pos = self.where[i]
        sl = slice(b.offsets[pos], b.offsets[pos] + p.size)
        prev = p.grad.data if p.grad is not None else None
        if g is None:
            b.flat[sl] = 0 if prev is None else prev.reshape(-1)
        elif prev is None:
            b.flat[sl] = g.reshape(-1)
        else:
            b.flat[sl] = (prev + g).reshape(-1)
        b.pending -= 1
        self.ready += 1
        if self.next_launch:      # MPI progresses a started all-reduce only inside MPI calls
            self.buckets[self.next_launch - 1].req.Test()
        self._launch()
        if self.ready == len(self.params):
            return self._finish(i if in_hook else None)
        return None

    def _launch(self):
        MPI = self.g.MPI
        while self.next_launch < len(self.buckets) and self.buckets[self.next_launch].pending == 0:
            b = self.buckets[self.next_launch]
            b.seq = self.g._announce()
            if b.flat.__class__.__module__.split(".")[0] == "cupy":
                from .collectives import all_reduce   # NCCL or host copy; blocking

                b.flat[...] = all_reduce(b.flat, "sum")
                b.req = MPI.REQUEST_NULL
            else:
                b.req = self.g.comm.Iallreduce(MPI.IN_PLACE, b.flat, op=MPI.SUM)
            b.started = True
            self.next_launch += 1
            self.launch_log.append(self.ready)

    def _finish(self, current=None):
        """Wait for every bucket, write the averages into ``.grad``; returns the averaged
        gradient of parameter ``current`` (its hook hands it to autograd)."""
        import time

        t0 = time.perf_counter()
        scale = 1.0 / self.g.size
        out = None
        for k, b in enumerate(self.buckets):
            self.g.wait(b.req, f"DistributedDataParallel: gradient all_reduce (bucket {k} of "
                        f"{len(self.buckets)}, {b.flat.nbytes / 2**20:.2f} MB)", b.seq)
            b.flat *= b.flat.dtype.type(scale)
            for pos, i in enumerate(b.idx):
                p = self.params[i]
                avg = b.flat[b.offsets[pos]:b.offsets[pos] + p.size].reshape(p.shape)
                if i == current:
                    p.grad = None
                    out = _wrap_grad(avg)
                else:
                    p.grad = _wrap_grad(avg.copy())
        self.comm_time += time.perf_counter() - t0
        self._reset()
        return out

    def pending(self):
        """Names of the parameters still waiting for a gradient in a started step."""
        if not self.ready:
            return []
        return [self.names[i] for i in range(len(self.params)) if i not in self.marked]

    def finish(self):
        """Complete the step now: parameters that got no gradient this backward contribute
        their current ``.grad`` (or zeros). Use after a backward that skipped some parameters,
        or on a rank with nothing to compute this step (it still has to join the all-reduce)."""
        if self.g.size == 1 or not self.enabled:
            return
        for i in range(len(self.params)):
            if i not in self.marked:
                self._mark(i, None)

    def check_clean(self, op):
        left = self.pending()
        if left:
            self._reset()
            raise DistributedError(
                f"{op}: the last backward gave no gradient to parameter(s) {left[:8]}, so their "
                "all-reduce never ran and the ranks' gradients differ; pass "
                "find_unused_parameters=True, or call finish() after backward")


class DistributedDataParallel(Module):
    """Wrap ``module`` for data-parallel training; use it like the module itself.

    >>> model = DistributedDataParallel(MLP())        # rank 0's weights on every rank
    >>> loss = loss_fn(model(x_shard), y_shard); loss.backward()   # grads averaged
    >>> opt.step()

    Parameters
    ----------
    bucket_cap_mb : gradient bucket size (25 MB)
    broadcast_buffers : copy rank 0's buffers (BatchNorm running stats) to all ranks before each
        forward, as PyTorch does
    find_unused_parameters : after each forward, find parameters the output does not depend on
        and count them as ready (zeros), so backward can finish without them
    sync_batchnorm : replace every BatchNorm layer by ``SyncBatchNorm`` first
    """

    def __init__(self, module, bucket_cap_mb=25.0, broadcast_buffers=True,
                 find_unused_parameters=False, sync_batchnorm=False):
        super().__init__()
        g = group()
        if sync_batchnorm:
            from .sync_batchnorm import SyncBatchNorm

            module = SyncBatchNorm.convert_sync_batchnorm(module)
        self.module = module
        object.__setattr__(self, "broadcast_buffers", bool(broadcast_buffers))
        object.__setattr__(self, "find_unused_parameters", bool(find_unused_parameters))
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        sync_module_state(module, "DistributedDataParallel")
        object.__setattr__(self, "sync", GradientSync([p for _, p in named],
                                                      [n for n, _ in named], bucket_cap_mb))
        object.__setattr__(self, "_rank", g.rank)

    def forward(self, *args, **kwargs):
        self.sync.check_clean("DistributedDataParallel.forward")
        g = self.sync.g
        if self.broadcast_buffers and g.size > 1 and self.training:
            bufs = [b for _, b in self.module.named_buffers() if b is not None]
            for b in bufs:
                b.data = broadcast(b.data, 0)
        out = self.module(*args, **kwargs)
        if self.find_unused_parameters and g.size > 1 and self.sync.enabled:
            self._mark_unused(out)
        return out

    def _mark_unused(self, out):
        from ..autograd import _topo_order

        outs = [o for o in (out if isinstance(out, (tuple, list)) else [out])
                if isinstance(o, Tensor) and o.requires_grad]
        leaves = {}                       # the walk lists non-leaf tensors; leaves land here
        reached = {id(t) for t in _topo_order(outs, leaves)} | set(leaves) | {id(o) for o in outs}
        for i, p in enumerate(self.sync.params):
            if id(p) not in reached:
                self.sync._mark(i, None)

    @contextmanager
    def no_sync(self):
        """Backward passes inside accumulate ``.grad`` locally; the first backward after the
        block averages the sum of everything accumulated."""
        prev = self.sync.enabled
        self.sync.enabled = False
        try:
            yield
        finally:
            self.sync.enabled = prev

    def finish(self):
        """See ``GradientSync.finish``."""
        self.sync.finish()

    @property
    def comm_time(self):
        """Seconds spent waiting for gradient all-reduces (since wrap)."""
        return self.sync.comm_time


def sync_module_state(module, op):
    """Check that every rank has the same parameter/buffer names, shapes and dtypes (raises
    ``ShapeError`` naming the first difference), then copy rank 0's values everywhere."""
    g = group()
    if g.size == 1:
        return
    slots = [(n, t) for n, t in list(module.named_parameters()) + list(module.named_buffers())
             if t is not None]
    sig = [[n, list(t.shape), str(t.dtype)] for n, t in slots]
    sigs = allgather_json(sig, op)
    for r, other in enumerate(sigs):
        if other == sigs[0]:
            continue
        for k in range(max(len(other), len(sigs[0]))):
            a = sigs[0][k] if k < len(sigs[0]) else None
            b = other[k] if k < len(other) else None
            if a != b:
                raise ShapeError(
                    f"{op}: parameters differ across ranks, got rank 0: {_fmt(a)} and rank {r}: "
                    f"{_fmt(b)} (entry {k}; rank 0 has {len(sigs[0])} tensors, rank {r} has "
                    f"{len(other)}); every rank must build the same model")
    for _, t in slots:
        t.data = t.xp.asarray(broadcast(np.asarray(t.data) if t.xp is np else t.data, 0))


def _fmt(entry):
    if entry is None:
        return "nothing"
    n, shape, dt = entry
    return f"{n} {tuple(shape)} {dt}"
