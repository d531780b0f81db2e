"""Data-parallel training across processes and machines, on MPI (mpi4py).

Launch N copies of a script with ``mpiexec -n N python train.py`` (or ``mpiexec -n N
tinygrad-lite train``); each copy is a *rank*. Install with ``pip install
'tinygrad_lite[distributed]'`` (mpi4py and the ``mpich`` MPI from PyPI).

* process group: ``init()``, ``rank()``, ``world_size()``, ``is_main()``, ``barrier()``,
  ``shutdown()``; collectives on Tensors and arrays: ``all_reduce`` (sum/mean), ``broadcast``,
  ``all_gather``. Every collective has a timeout (``init(timeout=...)``) whose error names the
  operation and the ranks that never arrived; an uncaught exception on one rank aborts all.
* ``DistributedDataParallel(module)``: rank 0's weights everywhere, gradients averaged in
  buckets whose all-reduce overlaps the backward pass, ``no_sync()``, ``SyncBatchNorm``.
* ``DistributedSampler``: each rank's share of a dataset for ``DataLoader(sampler=...)``.
* ``Sequential.fit`` does all of this itself under ``mpiexec`` (or with ``distributed=True``).

Importing this package does not import mpi4py; the first collective (or ``init()``) does.
"""

from .collectives import all_gather, all_reduce, broadcast, nccl_available, select_transport
from .comm import (CollectiveTimeoutError, DistributedError, RemoteRankError, abort, barrier,
                   init, is_initialized, is_main, launched_with_mpi, rank, shutdown, world_size)
from .ddp import DistributedDataParallel, GradientSync
from .sampler import DistributedSampler
from .sync_batchnorm import SyncBatchNorm, all_reduce_sum

__all__ = ["init", "rank", "world_size", "is_main", "barrier", "shutdown", "abort",
           "is_initialized", "launched_with_mpi", "all_reduce", "broadcast", "all_gather",
           "all_reduce_sum", "select_transport", "nccl_available", "DistributedDataParallel",
           "GradientSync", "DistributedSampler", "SyncBatchNorm", "DistributedError",
           "CollectiveTimeoutError", "RemoteRankError"]
