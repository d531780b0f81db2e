"""In-process tests of the parts that need no second process (and no MPI)."""

import numpy as np
import pytest

from tinygrad_lite import Tensor
from tinygrad_lite import distributed as dist
from tinygrad_lite.data import DataLoader, TensorDataset
from tinygrad_lite.distributed import collectives, comm


@pytest.mark.parametrize("n,w,drop", [(10, 3, False), (10, 3, True), (12, 4, False),
                                      (2, 4, False)])
def test_sampler_shards_cover_the_permutation(n, w, drop):
    parts = [dist.DistributedSampler(n, num_replicas=w, rank=r, seed=1, drop_last=drop)
             for r in range(w)]
    for s in parts:
        s.set_epoch(3)
    idx = [s.indices() for s in parts]
    assert len({len(i) for i in idx}) == 1               # equal length on every rank
    counts = np.bincount(np.concatenate(idx), minlength=n)
    if drop:
        assert counts.max() == 1 and counts.sum() == (n // w) * w
    else:
        assert counts.min() >= 1 and counts.sum() == -(-n // w) * w
    other = dist.DistributedSampler(n, num_replicas=w, rank=0, seed=1, drop_last=drop)
    other.set_epoch(4)
    if n > 2:
        assert not np.array_equal(other.indices(), idx[0]) or len(idx[0]) < 2


def test_sampler_rejects_bad_arguments():
    with pytest.raises(ValueError, match="rank must be in"):
        dist.DistributedSampler(10, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="num_replicas"):
        dist.DistributedSampler(10, num_replicas=0, rank=0)


def test_dataloader_with_sampler_follows_it_and_its_epoch():
    ds = TensorDataset(np.arange(10, dtype=np.float32).reshape(10, 1), np.arange(10))
    s = dist.DistributedSampler(ds, num_replicas=2, rank=1, seed=0)
    dl = DataLoader(ds, batch_size=2, sampler=s)
    assert len(dl) == 3
    got = np.concatenate([yb.numpy() for _, yb in dl])
    np.testing.assert_array_equal(got, s.indices())
    got2 = np.concatenate([yb.numpy() for _, yb in dl])      # epoch 1 now
    assert s.epoch == 1 and not np.array_equal(got, got2)
    with pytest.raises(ValueError, match="sampler needs shuffle=False"):
        DataLoader(ds, batch_size=2, sampler=s, shuffle=True)


def test_launch_detection_reads_the_environment(monkeypatch):
    for var in comm._ENV_SIZE_VARS:
        monkeypatch.delenv(var, raising=False)
    assert not dist.launched_with_mpi()
    assert dist.world_size() == 1 and dist.rank() == 0 and dist.is_main()
    monkeypatch.setenv("PMI_SIZE", "1")
    assert not dist.launched_with_mpi()
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    assert dist.launched_with_mpi()


class _FakeCupyArray:      # what select_transport sees of a CuPy array: its module
    pass


_FakeCupyArray.__module__ = "cupy._core.core"


def test_transport_selection_without_a_gpu():
    assert collectives.select_transport(np.zeros(3)) == "mpi"
    fake = _FakeCupyArray()
    assert collectives.is_cuda_array(fake)
    assert collectives.select_transport(fake, nccl_ok=True) == "nccl"
    assert collectives.select_transport(fake, nccl_ok=False) == "mpi-host-copy"
    ok, why = collectives.nccl_available()
    try:
        import cupy.cuda.nccl  # noqa: F401
        has = True
    except Exception:   # noqa: BLE001
        has = False
    if not has:
        assert not ok and "nccl" in why
        assert collectives.select_transport(fake) == "mpi-host-copy"


def test_all_reduce_sum_is_the_identity_on_one_process():
    x = Tensor(np.array([1.0, -2.0]), requires_grad=True)
    y = dist.all_reduce_sum(x)
    (y * Tensor(np.array([3.0, 4.0]))).sum().backward()
    np.testing.assert_array_equal(y.numpy(), [1.0, -2.0])
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 4.0])

