"""Worker processes for ``DataLoader(num_workers=N)``.

Batch ``k`` of an epoch goes to worker ``k % N`` (as PyTorch), so which worker loads which batch
-- and therefore what a random augmentation in ``__getitem__`` draws -- is the same every run.
Results come back on one queue and are handed out in batch order: the batches and their order are
exactly those of ``num_workers=0``.

Workers are started with the "spawn" method, never "fork": forking a process whose OpenMP runtime
(our kernels) or OpenBLAS has already started threads can deadlock the child. Spawned workers
import the dataset afresh, so the dataset, ``collate_fn`` and ``worker_init_fn`` must be
picklable (defined at module level), and a script that uses workers needs the usual
``if __name__ == "__main__":`` guard. Samples travel between our own processes through
multiprocessing's pipes; nothing is ever written to or read from a file with pickle.

Each worker seeds NumPy's global generator, Python's ``random`` and ``tinygrad_lite.manual_seed``
with ``base_seed + worker_id`` (``base_seed`` follows from the loader's ``seed`` and the epoch),
then calls ``worker_init_fn(worker_id)``. ``get_worker_info()`` tells code inside a worker which
one it is.
"""

import multiprocessing
import queue
import random
import traceback
from collections import namedtuple

import numpy as np

WorkerInfo = namedtuple("WorkerInfo", ["id", "num_workers", "seed", "dataset"])
_worker_info = None


def get_worker_info():
    """In a DataLoader worker: ``WorkerInfo(id, num_workers, seed, dataset)``; else None."""
    return _worker_info


def _seed_everything(seed):
    np.random.seed(seed % 2**32)
    random.seed(seed)
    try:
        from ..tensor import manual_seed
    except ImportError:   # the data tools without the engine
        return
    manual_seed(seed)


def _loop(fetch, dataset, index_q, result_q, worker_id, num_workers, seed, init_fn):
    global _worker_info
    _worker_info = WorkerInfo(worker_id, num_workers, seed, dataset)
    try:
        _seed_everything(seed)
        if init_fn is not None:
            init_fn(worker_id)
    except Exception:
        result_q.put((-1, None, f"worker_init_fn in worker {worker_id}:\n"
                                f"{traceback.format_exc()}"))
        return
    while True:
        item = index_q.get()
        if item is None:
            return
        k, idx = item
        try:
            result_q.put((k, fetch(dataset, idx), None))
        except Exception:
            result_q.put((k, None, f"worker {worker_id}, batch {k}:\n{traceback.format_exc()}"))


def run(loader, index_batches, fetch, base_seed):
    """Yield ``fetch(dataset, idx)`` for every ``idx`` of ``index_batches``, in order, computed in
    ``loader.num_workers`` spawned processes."""
    ctx = multiprocessing.get_context(loader.multiprocessing_context)
    n = loader.num_workers
    result_q = ctx.Queue()
    index_qs = [ctx.Queue() for _ in range(n)]
    procs = []
    try:
        for w in range(n):
            p = ctx.Process(target=_loop, daemon=True,
                            args=(fetch, loader.dataset, index_qs[w], result_q, w, n,
                                  base_seed + w, loader.worker_init_fn))
            try:
                p.start()
            except Exception as e:   # pickling the dataset/collate_fn/worker_init_fn failed
                raise RuntimeError(
                    f"DataLoader: num_workers={n} sends the dataset, collate_fn and "
                    f"worker_init_fn to spawned worker processes, so they must be picklable, got "
                    f"{type(e).__name__}: {e}; define them at module level, or use "
                    "num_workers=0") from None
            procs.append(p)
        batches = list(index_batches)
        sent, done, pending = 0, 0, {}
        ahead = max(1, loader.prefetch_factor) * n
        while done < len(batches):
            while sent < len(batches) and sent - done < ahead:
                index_qs[sent % n].put((sent, batches[sent]))
                sent += 1
            while done not in pending:
                try:
                    k, batch, err = result_q.get(timeout=loader.timeout or 5.0)
                except queue.Empty:
                    dead = [i for i, p in enumerate(procs) if not p.is_alive()]
                    if dead:
                        raise RuntimeError(f"DataLoader: worker {dead[0]} exited unexpectedly "
                                           f"(exit code {procs[dead[0]].exitcode})") from None
                    if loader.timeout:
                        raise RuntimeError(f"DataLoader: timed out after {loader.timeout} s "
                                           "waiting for a batch from the workers") from None
                    continue
                if err is not None:
                    raise RuntimeError(f"DataLoader: an error in a worker process, got\n{err}")
                pending[k] = batch
            yield pending.pop(done)
            done += 1
    finally:
        for q in index_qs:
            try:
                q.put(None)
            except (OSError, ValueError):
                pass
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
        for q in index_qs + [result_q]:
            q.close()
            q.cancel_join_thread()
