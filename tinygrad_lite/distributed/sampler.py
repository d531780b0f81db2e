"""DistributedSampler: which sample indices each rank reads in an epoch.

Every rank draws the same permutation (seeded by ``(seed, epoch)``, so call ``set_epoch`` before
each epoch, or let ``DataLoader.set_epoch`` do it), then takes every ``num_replicas``-th index
starting at its rank. Every rank must get the same number of samples (the gradient all-reduce
needs every rank at every step), so when ``len(dataset)`` is not a multiple of ``num_replicas``:

* ``drop_last=False`` (default): pad by repeating indices from the start of the permutation, so
  a few samples are seen twice in that epoch (each sample at least once);
* ``drop_last=True``: drop the last ``len % num_replicas`` indices of the permutation, so a few
  samples are not seen in that epoch (each sample at most once; a different few each epoch).

>>> sampler = DistributedSampler(dataset, shuffle=True, seed=0)
>>> loader = DataLoader(dataset, batch_size=64, sampler=sampler)
>>> for epoch in range(3):
...     loader.set_epoch(epoch)          # also sets the sampler's epoch
...     for xb, yb in loader: ...
"""

import math
from numbers import Integral

import numpy as np


class DistributedSampler:
    """Shards ``range(len(dataset))`` across ranks; see the module docstring for padding.

    Parameters
    ----------
    dataset : anything with ``len()`` (or an int: the number of samples)
    num_replicas, rank : default: the process group's world size and rank
    shuffle : draw a new permutation each epoch (else the natural order)
    seed : the same on every rank
    drop_last : drop the tail instead of padding (see above)
    """

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0,
                 drop_last=False):
        from . import comm

        n = dataset if isinstance(dataset, Integral) else len(dataset)
        if num_replicas is None:
            num_replicas = comm.world_size()
        if rank is None:
            rank = comm.rank()
        if not isinstance(num_replicas, Integral) or num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be an int >= 1, got "
                             f"{num_replicas!r}")
        if not isinstance(rank, Integral) or not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: rank must be in [0, {num_replicas}), got "
                             f"{rank!r}")
        if not isinstance(seed, Integral) or seed < 0:
            raise ValueError(f"DistributedSampler: seed must be an int >= 0, got {seed!r}")
        self.n, self.num_replicas, self.rank = int(n), int(num_replicas), int(rank)
        self.shuffle, self.seed, self.drop_last = bool(shuffle), int(seed), bool(drop_last)
        self.epoch = 0
        if self.drop_last:
            self.num_samples = self.n // self.num_replicas
        else:
            self.num_samples = math.ceil(self.n / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def set_epoch(self, epoch):
        """Use epoch ``epoch``'s permutation next (call with the same value on every rank)."""
        self.epoch = int(epoch)

    def indices(self):
        """This rank's indices for the current epoch (a NumPy int64 array)."""
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        else:
            order = np.arange(self.n)
        if self.total_size > self.n:            # pad, wrapping around as often as needed
            reps = math.ceil(self.total_size / max(self.n, 1))
            order = np.tile(order, reps)[:self.total_size]
        else:
            order = order[:self.total_size]
        return order[self.rank:self.total_size:self.num_replicas].astype(np.int64)

    def __iter__(self):
        return iter(self.indices().tolist())

    def __len__(self):
        return self.num_samples

    def __repr__(self):
        return (f"DistributedSampler(n={self.n}, num_replicas={self.num_replicas}, "
                f"rank={self.rank}, shuffle={self.shuffle}, seed={self.seed}, "
                f"drop_last={self.drop_last})")
