"""Dataset / DataLoader: batches, drop_last, shuffling per epoch, streams, collate; transforms."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_lite.data import (
    DataLoader,
    Dataset,
    GeneratorDataset,
    IterableDataset,
    TensorDataset,
    compose,
    default_collate,
    numpy_collate,
    random_flip,
    random_shift,
)
from tinygrad_lite.errors import ShapeError
from tinygrad_lite.tensor import Tensor


def _data(n=10):
    return np.arange(n * 3, dtype=np.float32).reshape(n, 3), np.arange(n)


def test_batches_are_tensors_with_dtypes_kept():
    X, y = _data()
    batches = list(DataLoader(TensorDataset(X, y), batch_size=4))
    assert [b[0].shape for b in batches] == [(4, 3), (4, 3), (2, 3)]
    xb, yb = batches[0]
    assert isinstance(xb, Tensor) and isinstance(yb, Tensor)
    assert xb.dtype == np.float32 and yb.dtype == np.int64
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), y)


@given(n=st.integers(1, 50), bs=st.integers(1, 20), drop_last=st.booleans(),
       shuffle=st.booleans())
def test_len_and_coverage(n, bs, drop_last, shuffle):
    X, y = _data(n)
    dl = DataLoader(TensorDataset(X, y), batch_size=bs, shuffle=shuffle, drop_last=drop_last,
                    seed=0, collate_fn=None)
    batches = list(dl)
    assert len(batches) == len(dl) == (n // bs if drop_last else -(-n // bs))
    sizes = [len(b[1].numpy()) for b in batches]
    assert all(s == bs for s in sizes[:-1])
    if drop_last and sizes:
        assert sizes[-1] == bs
    seen = np.concatenate([b[1].numpy() for b in batches]) if batches else np.array([])
    assert len(set(seen.tolist())) == len(seen)
    if not drop_last:
        assert sorted(seen.tolist()) == list(range(n))
    for xb, yb in batches:
        np.testing.assert_array_equal(xb.numpy(), X[yb.numpy()])


def test_shuffle_reproducible_per_epoch():
    X, y = _data(20)

    def run(seed):
        dl = DataLoader(TensorDataset(X, y), batch_size=5, shuffle=True, seed=seed)
        return [np.concatenate([b[1].numpy() for b in dl]) for _ in range(3)]
    a, b, c = run(1), run(1), run(2)
    for e in range(3):
        np.testing.assert_array_equal(a[e], b[e])
    assert not np.array_equal(a[0], a[1])          # a new order each epoch
    assert not np.array_equal(a[0], c[0])
    assert not np.array_equal(a[0], np.arange(20))
    dl = DataLoader(TensorDataset(X, y), batch_size=5, shuffle=True, seed=1)
    dl.set_epoch(2)
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in dl]), a[2])


def test_manual_seed_controls_unseeded_loader():
    from tinygrad_lite import manual_seed
    X, y = _data(20)
    orders = []
    for _ in range(2):
        manual_seed(123)
        dl = DataLoader(TensorDataset(X, y), batch_size=20, shuffle=True)
        orders.append(next(iter(dl))[1].numpy())
    np.testing.assert_array_equal(*orders)


class Squares(Dataset):
    def __len__(self):
        return 5

    def __getitem__(self, i):
        return {"x": np.full(2, i, dtype=np.float64), "y": i * i, "name": f"n{i}"}


def test_map_dataset_with_dicts_and_custom_collate():
    batch = next(iter(DataLoader(Squares(), batch_size=3)))
    assert isinstance(batch["x"], Tensor) and batch["x"].shape == (3, 2)
    assert batch["x"].dtype == np.float64
    assert batch["y"].numpy().tolist() == [0, 1, 4]
    assert batch["name"] == ["n0", "n1", "n2"]
    batch = next(iter(DataLoader(Squares(), batch_size=2, collate_fn=numpy_collate)))
    assert isinstance(batch["x"], np.ndarray)
    batch = next(iter(DataLoader(Squares(), batch_size=2, collate_fn=len)))
    assert batch == 2


def test_list_dataset_and_no_batching():
    samples = [(np.ones(2) * i, i) for i in range(4)]
    batches = list(DataLoader(samples, batch_size=3))
    assert [b[1].numpy().tolist() for b in batches] == [[0, 1, 2], [3]]
    singles = list(DataLoader(TensorDataset(*_data(3)), batch_size=None))
    assert len(singles) == 3 and singles[0][0].shape == (3,)


class Stream(IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        for i in range(self.n):
            yield np.full(2, i, dtype=np.float32), i


def test_iterable_dataset_streams_in_batches():
    dl = DataLoader(Stream(7), batch_size=3)
    for _ in range(2):                                   # restarts every epoch
        batches = list(dl)
        assert [b[1].numpy().tolist() for b in batches] == [[0, 1, 2], [3, 4, 5], [6]]
    assert [len(b[1].numpy()) for b in DataLoader(Stream(7), batch_size=3, drop_last=True)] \
        == [3, 3]
    with pytest.raises(TypeError, match="len\\(\\) is unknown"):
        len(dl)
    with pytest.raises(ValueError, match="shuffle=True needs a map-style"):
        DataLoader(Stream(3), shuffle=True)


def test_generator_function_and_generator_object():
    def gen():
        for i in range(5):
            yield np.array([i, i], dtype=np.float32), i % 2
    dl = DataLoader(gen, batch_size=2)
    assert len(list(dl)) == 3 and len(list(dl)) == 3      # called again each epoch
    assert len(list(DataLoader(GeneratorDataset(gen), batch_size=5))) == 1
    once = DataLoader(gen(), batch_size=2)
    assert len(list(once)) == 3
    with pytest.raises(RuntimeError, match="generator function"):
        list(once)


def test_stream_of_ready_batches_with_batch_size_none():
    def batches():
        for i in range(3):
            yield np.zeros((4, 2)), np.arange(4)
    out = list(DataLoader(batches, batch_size=None))
    assert len(out) == 3 and out[0][0].shape == (4, 2) and isinstance(out[0][0], Tensor)


def test_errors():
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        DataLoader(TensorDataset(*_data()), batch_size=0)
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(TensorDataset(*_data()), batch_size=2.5)
    with pytest.raises(TypeError, match="len\\(\\) and indexing, or iteration"):
        DataLoader(42)
    with pytest.raises(ShapeError, match=r"different lengths, got \[3, 2\]"):
        TensorDataset(np.zeros(3), np.zeros(2))
    with pytest.raises(NotImplementedError):
        Dataset()[0]
    with pytest.raises(ValueError, match="empty batch"):
        numpy_collate([])
    with pytest.raises(TypeError, match="generator function"):
        GeneratorDataset(iter([]))


def test_default_collate_tensors_in_samples():
    xb, yb = default_collate([(Tensor(np.ones(2)), 1), (Tensor(np.zeros(2)), 0)])
    assert xb.shape == (2, 2) and yb.numpy().tolist() == [1, 0]


# --------------------------------------------------------------- transforms ---

def test_random_shift_moves_content_and_is_seeded():
    x = np.zeros((50, 5, 5))
    x[:, 2, 2] = 1.0
    out = random_shift(x, np.random.default_rng(0), max_shift=1)
    assert out.shape == x.shape and x[:, 2, 2].all()          # input untouched
    ys, xs = np.nonzero(out.reshape(50, 25))[1] // 5, np.nonzero(out.reshape(50, 25))[1] % 5
    assert set(ys.tolist()) <= {1, 2, 3} and set(xs.tolist()) <= {1, 2, 3}
    assert len(set(zip(ys.tolist(), xs.tolist()))) > 3         # different shifts per image
    np.testing.assert_array_equal(out, random_shift(x, np.random.default_rng(0), max_shift=1))
    np.testing.assert_array_equal(random_shift(x, np.random.default_rng(0), max_shift=0), x)


def test_random_shift_layouts_keep_mass_when_room():
    rng = np.random.default_rng(1)
    x = np.zeros((4, 2, 6, 6))
    x[:, :, 2:4, 2:4] = 1
    out = random_shift(x, rng, max_shift=2)
    np.testing.assert_array_equal(out.sum(axis=(2, 3)), 4)      # channels move together
    xl = np.moveaxis(x, 1, -1)
    out = random_shift(xl, rng, max_shift=2, channels_last=True)
    np.testing.assert_array_equal(out.sum(axis=(1, 2)), 4)


def test_random_flip():
    x = np.arange(8).reshape(2, 2, 2)
    np.testing.assert_array_equal(random_flip(x, np.random.default_rng(0), p=1.0),
                                  x[:, :, ::-1])
    np.testing.assert_array_equal(random_flip(x, np.random.default_rng(0), p=0.0), x)
    np.testing.assert_array_equal(
        random_flip(x, np.random.default_rng(0), p=1.0, horizontal=False, vertical=True),
        x[:, ::-1, :])
    many = random_flip(np.tile(x[:1], (200, 1, 1)), np.random.default_rng(0), p=0.5)
    flipped = (many == x[0, :, ::-1]).all(axis=(1, 2)).mean()
    assert 0.3 < flipped < 0.7


def test_transform_errors_and_compose():
    with pytest.raises(TypeError, match="default_rng"):
        random_shift(np.zeros((1, 3, 3)), 0)
    with pytest.raises(ShapeError, match="batch axis"):
        random_flip(np.zeros((3, 3)), np.random.default_rng(0))
    with pytest.raises(ValueError, match="probability"):
        random_flip(np.zeros((1, 3, 3)), np.random.default_rng(0), p=2)
    out = compose(random_shift, random_flip)(np.ones((3, 4, 4)), np.random.default_rng(0))
    assert out.shape == (3, 4, 4)


class _Augmented(TensorDataset):
    """Per-sample augmentation: only works on one index at a time (int(y), np.flip of one row)."""

    def __getitem__(self, i):
        x, y = super().__getitem__(i)
        return np.flip(x).copy(), int(y) * 10


@pytest.mark.parametrize("shuffle", [False, True])
def test_tensor_dataset_subclass_getitem_is_used(shuffle):
    X, y = _data(7)
    dl = DataLoader(_Augmented(X, y), batch_size=3, shuffle=shuffle, seed=0)
    batches = list(dl)
    assert [tuple(b[0].shape) for b in batches] == [(3, 3), (3, 3), (1, 3)]
    for xb, yb in batches:
        labels = yb.numpy() // 10
        np.testing.assert_array_equal(yb.numpy(), labels * 10)
        np.testing.assert_array_equal(xb.numpy(), X[labels][:, ::-1])
    seen = np.concatenate([b[1].numpy() for b in batches])
    assert sorted(seen.tolist()) == [10 * i for i in range(7)]


def test_plain_tensor_dataset_still_uses_one_fancy_index(monkeypatch):
    """The fast path stays for TensorDataset itself: one __getitem__ call per batch."""
    calls = []
    original = TensorDataset.__getitem__

    def counting(self, index):
        calls.append(np.ndim(index))
        return original(self, index)

    monkeypatch.setattr(TensorDataset, "__getitem__", counting)
    ds = TensorDataset(*_data(10))
    assert len(list(DataLoader(ds, batch_size=4))) == 3
    assert calls == [1, 1, 1]


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True, [1]])
def test_seed_validated_up_front(seed):
    with pytest.raises(ValueError, match=r"^DataLoader: seed must be a non-negative int or "
                                         r"None, got "):
        DataLoader(TensorDataset(*_data()), batch_size=2, shuffle=True, seed=seed)


def test_seed_numpy_int_accepted():
    dl = DataLoader(TensorDataset(*_data()), batch_size=2, shuffle=True, seed=np.int64(3))
    assert dl.seed == 3 and type(dl.seed) is int
    ref = DataLoader(TensorDataset(*_data()), batch_size=2, shuffle=True, seed=3)
    for (_, a), (_, b) in zip(dl, ref):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


class _Ragged(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return np.zeros(2 + (i == 2)), i


@pytest.mark.parametrize("collate", [None, numpy_collate])
def test_ragged_samples_name_dataloader_and_shapes(collate):
    dl = DataLoader(_Ragged(), batch_size=4, collate_fn=collate)
    with pytest.raises(ShapeError, match=r"^DataLoader: collate cannot stack samples of "
                                         r"different shapes, got \(2,\) .* and \(3,\) "
                                         r"\(sample 2\)"):
        next(iter(dl))
    with pytest.raises(ShapeError, match=r"got \(2,\).*\(3,\)"):
        default_collate([(Tensor(np.ones(2)), 0), (Tensor(np.ones(3)), 1)])
