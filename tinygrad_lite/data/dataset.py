"""Datasets: where samples come from (PyTorch's ``torch.utils.data`` names).

- ``Dataset``: map-style, knows its length and returns sample ``i`` (``__getitem__``).
- ``TensorDataset(X, y, ...)``: rows of arrays that fit in memory; sample ``i`` is ``(X[i], y[i])``.
- ``IterableDataset``: a stream (``__iter__``), for data that does not fit in memory: read a
  file chunk by chunk, generate samples on the fly. The DataLoader batches it as it goes.
- ``GeneratorDataset(fn)``: an IterableDataset from a generator *function*, called once per epoch.
"""

from __future__ import annotations

import numpy as np  # noqa: F401  (the doctests use np)

from tinygrad_lite._arrays import as_numpy
from tinygrad_lite.errors import ShapeError

__all__ = ["Dataset", "GeneratorDataset", "IterableDataset", "TensorDataset"]


class Dataset:
    """Map-style dataset: subclass it and define ``__len__`` and ``__getitem__(i)``.

    Examples
    --------
    >>> class Squares(Dataset):
    ...     def __len__(self): return 4
    ...     def __getitem__(self, i): return np.float32(i * i)
    >>> [float(Squares()[i]) for i in range(4)]
    [0.0, 1.0, 4.0, 9.0]
    """

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__}: subclasses of Dataset must define "
                                  "__getitem__(index)")

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__}: subclasses of Dataset must define "
                                  "__len__()")


class TensorDataset(Dataset):
    """Samples are the rows of equally long arrays: ``ds[i] == (a[i], b[i], ...)``.

    Arrays, lists and Tensors are accepted (kept as NumPy arrays). Indexing with an array of
    indices returns whole batches, which is what the DataLoader uses (fast: one fancy index per
    array instead of one Python call per sample).

    Examples
    --------
    >>> ds = TensorDataset(np.zeros((5, 3)), np.arange(5))
    >>> len(ds), ds[2][1]
    (5, np.int64(2))
    """

    def __init__(self, *arrays):
        if not arrays:
            raise ValueError("TensorDataset: at least one array is required, got none")
        self.arrays = tuple(as_numpy(a) for a in arrays)
        for a in self.arrays:
            if a.ndim == 0:
                raise ShapeError(f"TensorDataset: arrays need a sample axis, got a scalar {a!r}")
        lengths = [len(a) for a in self.arrays]
        if len(set(lengths)) != 1:
            raise ShapeError(f"TensorDataset: arrays have different lengths, got {lengths}; "
                             "every array needs one row per sample")

    def __len__(self):
        return len(self.arrays[0])

    def __getitem__(self, index):
        return tuple(a[index] for a in self.arrays)


class IterableDataset:
    """Stream-style dataset: subclass it and define ``__iter__`` yielding samples.

    Each epoch calls ``iter(dataset)`` again, so ``__iter__`` should start over (reopen the file,
    restart the generator).

    Examples
    --------
    >>> class Count(IterableDataset):
    ...     def __iter__(self): return iter(range(3))
    >>> list(Count())
    [0, 1, 2]
    """

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__}: subclasses of IterableDataset must "
                                  "define __iter__()")


class GeneratorDataset(IterableDataset):
    """Wrap a generator function (called with ``*args`` each epoch) as an IterableDataset.

    Examples
    --------
    >>> def read(n):
    ...     for i in range(n):
    ...         yield np.full(2, i), i % 2
    >>> ds = GeneratorDataset(read, 3)
    >>> [int(y) for _, y in ds], [int(y) for _, y in ds]   # restarts every epoch
    ([0, 1, 0], [0, 1, 0])
    """

    def __init__(self, fn, *args, **kwargs):
        if not callable(fn):
            raise TypeError(f"GeneratorDataset: expected a generator function, got "
                            f"{type(fn).__name__}; pass the function itself, not fn()")
        self.fn, self.args, self.kwargs = fn, args, kwargs

    def __iter__(self):
        return iter(self.fn(*self.args, **self.kwargs))
