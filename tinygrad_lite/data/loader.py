"""DataLoader: turn a dataset into mini-batches, one epoch per ``for`` loop.

Map-style datasets (``len`` + ``[i]``) are read in index order or, with ``shuffle=True``, in a
fresh permutation each epoch. The permutation of epoch ``e`` is drawn from a generator seeded with
``(seed, e)``, so a run is reproducible epoch by epoch and no two epochs repeat. Without a seed
the library generator (``tinygrad_lite.manual_seed``) picks one.

Iterable datasets and plain generators are streamed: samples are grouped into batches as they
arrive, so data larger than memory works (the "data generator" answer to out-of-memory).
"""

from __future__ import annotations

import functools
import math
import types
from numbers import Integral

import numpy as np

from tinygrad_lite._arrays import as_numpy
from tinygrad_lite.errors import ShapeError

from .dataset import IterableDataset, TensorDataset

__all__ = ["DataLoader", "default_collate", "numpy_collate"]


def _stack_arrays(arrays):
    """np.stack, with a ShapeError naming the first two samples whose shapes differ."""
    shape = arrays[0].shape
    for k, a in enumerate(arrays):
        if a.shape != shape:
            raise ShapeError(f"DataLoader: collate cannot stack samples of different shapes, got "
                             f"{shape} (sample 0 of the batch) and {a.shape} (sample {k}); pad "
                             "or resize them to one shape, use batch_size=None, or pass a "
                             "collate_fn that handles ragged samples")
    return np.stack(arrays)


def _stack(items):
    first = items[0]
    if isinstance(first, (str, bytes)):
        return list(items)
    if isinstance(first, np.ndarray):
        return _stack_arrays([np.asarray(i) for i in items])
    if np.isscalar(first) or isinstance(first, np.generic):
        return np.asarray(items)
    if hasattr(first, "numpy") and callable(first.numpy):   # Tensors
        return _stack_arrays([as_numpy(i) for i in items])
    if isinstance(first, (tuple, list)):
        fields = [_stack(list(f)) for f in zip(*items)]
        return tuple(fields) if isinstance(first, tuple) else fields
    if isinstance(first, dict):
        return {k: _stack([i[k] for i in items]) for k in first}
    return list(items)


def _map_arrays(obj, fn):
    if isinstance(obj, np.ndarray):
        return fn(obj) if obj.dtype.kind in "fiub" else obj
    if isinstance(obj, tuple):
        return tuple(_map_arrays(o, fn) for o in obj)
    if isinstance(obj, list):
        return [_map_arrays(o, fn) for o in obj]
    if isinstance(obj, dict):
        return {k: _map_arrays(v, fn) for k, v in obj.items()}
    return obj


def _to_tensors(batch):
    try:
        from tinygrad_lite.tensor import Tensor
    except ImportError:   # engine not importable: hand out the arrays themselves
        return batch
    return _map_arrays(batch, Tensor)


def numpy_collate(samples):
    """Stack a list of samples into NumPy arrays: a list of ``(x, y)`` becomes ``(X, Y)``.

    Examples
    --------
    >>> X, Y = numpy_collate([(np.zeros(2), 0), (np.ones(2), 1)])
    >>> X.shape, Y.tolist()
    ((2, 2), [0, 1])
    """
    if len(samples) == 0:
        raise ValueError("numpy_collate: cannot collate an empty batch, got 0 samples")
    return _stack(list(samples))


def default_collate(samples):
    """Stack samples (``numpy_collate``) and wrap every numeric array as a ``Tensor``.

    Arrays keep their dtype (float64 stays float64, int64 labels stay int64). Tuples, lists and
    dicts of fields are collated field by field; strings stay lists.

    Examples
    --------
    >>> xb, yb = default_collate([(np.zeros(2, np.float32), 0), (np.ones(2, np.float32), 1)])
    >>> xb.shape, xb.dtype
    ((2, 2), dtype('float32'))
    """
    return _to_tensors(numpy_collate(samples))


# What a worker process runs (module level, so spawn can pickle them by name).
def _fetch_one(dataset, i):
    return dataset[i]


def _fetch_fancy(dataset, idx):
    return dataset[idx]


def _fetch_collate(collate, dataset, idx):
    return collate([dataset[i] for i in idx])


class DataLoader:
    """Iterate over a dataset in mini-batches.

    Parameters
    ----------
    dataset : Dataset / TensorDataset (len + indexing), IterableDataset, a generator function,
        or any iterable (a generator object can be read only once).
    batch_size : int >= 1, or None to yield samples one by one without batching
    shuffle : bool. Reshuffle every epoch (map-style datasets only).
    drop_last : bool. Drop the last batch when it is smaller than ``batch_size``.
    seed : int or None. Seeds the shuffling: same seed, same batches, epoch by epoch.
    collate_fn : callable(list of samples) -> batch. Default: ``default_collate`` (Tensors);
        use ``numpy_collate`` for NumPy arrays.
    num_workers : int >= 0. With N > 0, map-style datasets are loaded in N worker processes
        (started with "spawn"; batch k from worker k % N), giving the same batches in the same
        order as ``num_workers=0``. The dataset, ``collate_fn`` and ``worker_init_fn`` must then
        be picklable (module-level); see ``data.workers``.
    worker_init_fn : callable(worker_id) run in each worker after it is seeded with
        ``base_seed + worker_id`` (NumPy's global generator, ``random``, ``manual_seed``).
    pin_memory : bool. Accepted for PyTorch compatibility; a no-op on the CPU (there is no
        host-to-device copy to speed up).
    prefetch_factor : batches each worker works ahead (default 2).
    timeout : seconds to wait for a worker's batch (0: no limit).
    multiprocessing_context : "spawn" (default) or "forkserver"; "fork" is refused.
    sampler : iterable of indices with ``len`` (e.g. ``distributed.DistributedSampler``) that
        decides the order instead of ``shuffle`` (map-style datasets only); ``set_epoch`` is
        passed on to it.

    Examples
    --------
    >>> ds = TensorDataset(np.arange(10.0).reshape(5, 2), np.arange(5))
    >>> [tuple(xb.shape) for xb, yb in DataLoader(ds, batch_size=2)]
    [(2, 2), (2, 2), (1, 2)]
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, seed=None,
                 collate_fn=None, num_workers=0, pin_memory=False, worker_init_fn=None,
                 prefetch_factor=2, timeout=0, multiprocessing_context="spawn",
                 sampler=None):
        if batch_size is not None and (isinstance(batch_size, bool) or
                                       not isinstance(batch_size, Integral) or batch_size < 1):
            raise ValueError(f"DataLoader: batch_size must be an int >= 1 (or None), got "
                             f"{batch_size!r}")
        if batch_size is None and drop_last:
            raise ValueError("DataLoader: drop_last=True needs a batch_size, got batch_size=None")
        self.dataset = dataset
        self.batch_size = None if batch_size is None else int(batch_size)
        self.shuffle, self.drop_last = bool(shuffle), bool(drop_last)
        self.collate_fn = collate_fn
        self._one_shot = isinstance(dataset, (types.GeneratorType, map, filter, zip))
        self._used = False
        if callable(dataset) and not hasattr(dataset, "__iter__") and \
                not hasattr(dataset, "__getitem__"):
            self._stream = lambda: iter(dataset())       # generator function: restart per epoch
        elif isinstance(dataset, IterableDataset) or not (
                hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")):
            if not hasattr(dataset, "__iter__"):
                raise TypeError(f"DataLoader: dataset must support len() and indexing, or "
                                f"iteration, got {type(dataset).__name__}")
            self._stream = lambda: iter(dataset)
        else:
            self._stream = None
        if self._stream is not None and self.shuffle:
            raise ValueError("DataLoader: shuffle=True needs a map-style dataset (len + "
                             "indexing), got a stream; shuffle at the source instead")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, Integral)
                                 or seed < 0):
            raise ValueError(f"DataLoader: seed must be a non-negative int or None, got "
                             f"{seed!r}; e.g. seed=0")
        if seed is None:
            try:
                from tinygrad_lite.tensor import default_generator
                seed = int(default_generator().integers(2**63 - 1))
            except ImportError:
                seed = int(np.random.SeedSequence().entropy % (2**63))
        self.seed = int(seed)
        self.epoch = 0
        if sampler is not None and (self.shuffle or self._stream is not None):
            raise ValueError("DataLoader: sampler needs shuffle=False and a map-style dataset "
                             "(the sampler decides the order), got "
                             f"shuffle={self.shuffle}, dataset {type(dataset).__name__}")
        self.sampler = sampler
        self._init_workers(num_workers, pin_memory, worker_init_fn, prefetch_factor, timeout,
                           multiprocessing_context)

    def _init_workers(self, num_workers, pin_memory, worker_init_fn, prefetch_factor, timeout,
                      context):
        if isinstance(num_workers, bool) or not isinstance(num_workers, Integral) \
                or num_workers < 0:
            raise ValueError(f"DataLoader: num_workers must be an int >= 0, got {num_workers!r}")
        if num_workers and self._stream is not None:
            raise ValueError("DataLoader: num_workers > 0 needs a map-style dataset (len + "
                             f"indexing), got a stream ({type(self.dataset).__name__}); use "
                             "num_workers=0")
        if worker_init_fn is not None and not callable(worker_init_fn):
            raise TypeError(f"DataLoader: worker_init_fn must be callable, got "
                            f"{type(worker_init_fn).__name__}")
        if isinstance(prefetch_factor, bool) or not isinstance(prefetch_factor, Integral) \
                or prefetch_factor < 1:
            raise ValueError(f"DataLoader: prefetch_factor must be an int >= 1, got "
                             f"{prefetch_factor!r}")
        if not isinstance(timeout, (int, float)) or timeout < 0:
            raise ValueError(f"DataLoader: timeout must be a number >= 0, got {timeout!r}")
        if context not in ("spawn", "forkserver"):
            raise ValueError(f"DataLoader: multiprocessing_context must be 'spawn' or "
                             f"'forkserver', got {context!r}; 'fork' after OpenMP or OpenBLAS "
                             "threads have started can deadlock the workers")
        self.num_workers = int(num_workers)
        self.pin_memory = bool(pin_memory)     # no-op on the CPU
        self.worker_init_fn = worker_init_fn
        self.prefetch_factor = int(prefetch_factor)
        self.timeout = timeout
        self.multiprocessing_context = context

    # ------------------------------------------------------------------ size ---

    def __len__(self):
        """Number of batches per epoch (map-style datasets, or streams that define len)."""
        try:
            n = len(self.dataset) if self.sampler is None else len(self.sampler)
        except TypeError:
            raise TypeError("DataLoader: len() is unknown for a streamed dataset, got "
                            f"{type(self.dataset).__name__} without __len__") from None
        if self.batch_size is None:
            return n
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def set_epoch(self, epoch):
        """Choose which epoch's permutation the next iteration uses (it then counts up)."""
        self.epoch = int(epoch)
        if getattr(self.sampler, "set_epoch", None) is not None:
            self.sampler.set_epoch(epoch)

    # ------------------------------------------------------------- iteration ---

    def _collate(self, samples):
        return (self.collate_fn or default_collate)(samples)

    def __iter__(self):
        epoch = self.epoch
        self.epoch += 1
        if self._stream is not None:
            return self._iter_stream()
        return self._iter_map(epoch)

    def _iter_map(self, epoch):
        n = len(self.dataset)
        if self.sampler is not None:
            if getattr(self.sampler, "set_epoch", None) is not None:
                self.sampler.set_epoch(epoch)
            order = np.fromiter(self.sampler, dtype=np.int64)
            n = len(order)
        elif self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(n)
        else:
            order = np.arange(n)
        if self.num_workers:
            yield from self._iter_workers(order, epoch)
            return
        if self.batch_size is None:
            for i in order:
                yield self._single(self.dataset[int(i)])
            return
        # The fast path indexes with a whole array of indices, which only TensorDataset's own
        # __getitem__ is known to accept: a subclass that overrides it (per-sample augmentation,
        # int(y), ...) gets one call per sample like any other dataset.
        fast = self._fast()
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size]
            if len(idx) < self.batch_size and self.drop_last:
                return
            if fast:   # one fancy index per array instead of one call per sample
                yield _to_tensors(self.dataset[idx])
            else:
                yield self._collate([self.dataset[int(i)] for i in idx])

    def _fast(self):
        """One fancy index per batch instead of one call per sample (see _iter_map)."""
        return (self.collate_fn is None and isinstance(self.dataset, TensorDataset)
                and type(self.dataset).__getitem__ is TensorDataset.__getitem__)

    def _iter_workers(self, order, epoch):
        """The same batches as the loop above, each loaded in a worker process."""
        from . import workers

        base_seed = int(np.random.default_rng([self.seed, epoch, 1]).integers(2**62))
        if self.batch_size is None:
            for sample in workers.run(self, [int(i) for i in order], _fetch_one, base_seed):
                yield self._single(sample)
            return
        n, bs = len(order), self.batch_size
        stop = n - n % bs if self.drop_last else n
        batches = [order[s:s + bs] for s in range(0, stop, bs)]
        if self._fast():
            fetch = _fetch_fancy
        else:
            batches = [[int(i) for i in b] for b in batches]
            fetch = functools.partial(_fetch_collate, self.collate_fn or numpy_collate)
        for batch in workers.run(self, batches, fetch, base_seed):
            yield batch if self.collate_fn is not None else _to_tensors(batch)

    def _single(self, sample):
        if self.collate_fn is not None:
            return self.collate_fn(sample)
        return _to_tensors(_map_arrays(sample, np.asarray) if not np.isscalar(sample)
                           else np.asarray(sample))

    def _iter_stream(self):
        if self._one_shot:
            if self._used:
                raise RuntimeError("DataLoader: this generator was already read to the end, got "
                                   "a second epoch over a one-shot generator; pass the generator "
                                   "function itself (DataLoader(gen_fn)) or a GeneratorDataset")
            self._used = True
        batch = []
        for sample in self._stream():
            if self.batch_size is None:
                yield self._single(sample)
                continue
            batch.append(sample)
            if len(batch) == self.batch_size:
                yield self._collate(batch)
                batch = []
        if batch and not self.drop_last:
            yield self._collate(batch)

    def __repr__(self):
        return (f"DataLoader({type(self.dataset).__name__}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, seed={self.seed}, "
                f"num_workers={self.num_workers})")
