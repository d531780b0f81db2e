"""train_test_split / train_val_test_split: sizes as scikit-learn, stratification, seeds, errors."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_lite.data import train_test_split, train_val_test_split
from tinygrad_lite.errors import ShapeError


@given(n=st.integers(2, 200), test_size=st.floats(0.05, 0.95))
def test_sizes_match_sklearn(n, test_size):
    from sklearn.model_selection import train_test_split as sk_split
    X = np.arange(n)
    try:
        ref = sk_split(X, test_size=test_size, random_state=0)
    except ValueError:
        with pytest.raises(ValueError, match="empty"):
            train_test_split(X, test_size=test_size, seed=0)
        return
    tr, te = train_test_split(X, test_size=test_size, seed=0)
    assert (len(tr), len(te)) == (len(ref[0]), len(ref[1]))
    assert sorted(np.concatenate([tr, te]).tolist()) == list(range(n))


def test_defaults_int_sizes_and_train_size():
    X = np.arange(10)
    assert [len(a) for a in train_test_split(X, seed=0)] == [7, 3]
    assert [len(a) for a in train_test_split(X, test_size=4, seed=0)] == [6, 4]
    assert [len(a) for a in train_test_split(X, train_size=0.5, seed=0)] == [5, 5]
    assert [len(a) for a in train_test_split(X, train_size=3, test_size=2, seed=0)] == [3, 2]


def test_rows_stay_aligned_and_containers_kept():
    X = np.arange(40).reshape(20, 2)
    y = X[:, 0] // 2
    names = [f"s{i}" for i in range(20)]
    X_tr, X_te, y_tr, y_te, n_tr, n_te = train_test_split(X, y, names, test_size=0.25, seed=3)
    np.testing.assert_array_equal(X_tr[:, 0] // 2, y_tr)
    np.testing.assert_array_equal(X_te[:, 0] // 2, y_te)
    assert isinstance(n_tr, list) and n_tr == [f"s{r}" for r in y_tr.tolist()]
    assert n_te == [f"s{r}" for r in y_te.tolist()]


def test_tensor_inputs():
    from tinygrad_lite.tensor import Tensor
    X = Tensor(np.arange(12.0).reshape(6, 2))
    X_tr, X_te = train_test_split(X, test_size=2, seed=0)
    assert isinstance(X_tr, Tensor) and X_tr.shape == (4, 2) and X_te.shape == (2, 2)


def test_reproducible_and_seed_sensitive():
    X = np.arange(100)
    a = train_test_split(X, seed=7)
    b = train_test_split(X, random_state=7)
    c = train_test_split(X, seed=8)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])
    with pytest.raises(ValueError, match="aliases"):
        train_test_split(X, seed=1, random_state=2)


def test_no_shuffle_keeps_order():
    tr, te = train_test_split(np.arange(10), test_size=0.3, shuffle=False)
    np.testing.assert_array_equal(tr, np.arange(7))
    np.testing.assert_array_equal(te, [7, 8, 9])
    with pytest.raises(ValueError, match="shuffle=True"):
        train_test_split(np.arange(10), stratify=np.arange(10) % 2, shuffle=False)


@given(counts=st.lists(st.integers(2, 40), min_size=2, max_size=6),
       test_size=st.floats(0.1, 0.5), seed=st.integers(0, 1000))
def test_stratified_keeps_class_shares(counts, test_size, seed):
    y = np.repeat(np.arange(len(counts)), counts)
    n = len(y)
    n_test = math.ceil(test_size * n)
    if n_test < len(counts) or n - n_test < len(counts):
        with pytest.raises(ValueError, match="every class"):
            train_test_split(y, test_size=test_size, stratify=y, seed=seed)
        return
    y_tr, y_te = train_test_split(y, test_size=test_size, stratify=y, seed=seed)
    assert len(y_te) == n_test and len(y_tr) == n - n_test
    want = np.array(counts) * n_test / n
    got = np.bincount(y_te, minlength=len(counts))
    assert np.all(np.abs(got - want) <= 1 + 1e-9)
    np.testing.assert_array_equal(np.bincount(y_tr, minlength=len(counts)) + got, counts)


def test_stratified_on_digits_like_sklearn_proportions():
    from tinygrad_lite.data import load_digits
    X, y = load_digits(return_X_y=True)
    _, _, _, y_te = train_test_split(X, y, test_size=0.2, stratify=y, seed=0)
    share = np.bincount(y) / len(y)
    assert np.abs(np.bincount(y_te) / len(y_te) - share).max() < 0.01
    assert len(y_te) == 360


def test_errors():
    with pytest.raises(ShapeError, match=r"different lengths, got \[3, 2\]"):
        train_test_split(np.arange(3), np.arange(2))
    with pytest.raises(ValueError, match="n_samples=0"):
        train_test_split(np.zeros((0, 2)))
    with pytest.raises(ValueError, match="empty"):
        train_test_split(np.arange(3), test_size=0.1, train_size=0.2)
    with pytest.raises(ValueError, match="empty"):
        train_test_split(np.arange(1))
    with pytest.raises(ValueError, match="in \\(0, 1\\)"):
        train_test_split(np.arange(10), test_size=1.5)
    with pytest.raises(ValueError, match="between 1 and n_samples - 1"):
        train_test_split(np.arange(10), test_size=10)
    with pytest.raises(ValueError, match="more than the data"):
        train_test_split(np.arange(10), test_size=5, train_size=6)
    with pytest.raises(ValueError, match="only 1 member"):
        train_test_split(np.arange(6), stratify=[0, 0, 0, 1, 1, 2], seed=0)
    with pytest.raises(ValueError, match="at least one array"):
        train_test_split()


def test_three_way_split():
    X = np.arange(200).reshape(100, 2)
    y = np.arange(100) % 4
    X_tr, X_va, X_te, _, y_va, y_te = train_val_test_split(
        X, y, val_size=0.15, test_size=0.2, stratify=y, seed=1)
    assert (len(X_tr), len(X_va), len(X_te)) == (65, 15, 20)
    np.testing.assert_array_equal(X_va[:, 0] // 2 % 4, y_va)
    rows = np.concatenate([X_tr[:, 0], X_va[:, 0], X_te[:, 0]])
    assert sorted(rows.tolist()) == list(range(0, 200, 2))
    assert set(y_te.tolist()) == set(y_va.tolist()) == {0, 1, 2, 3}
    again = train_val_test_split(X, y, val_size=0.15, test_size=0.2, stratify=y, seed=1)
    np.testing.assert_array_equal(again[1], X_va)
    with pytest.raises(ValueError, match="one split is empty"):
        train_val_test_split(np.arange(3), val_size=0.5, test_size=0.5)
