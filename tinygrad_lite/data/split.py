"""Split arrays into train/test (and validation) parts, like scikit-learn's ``train_test_split``.

Sizes: a float in (0, 1) is a fraction (test rounds up, train rounds down, scikit-learn's rule),
an int is a count. With ``stratify=y`` every class keeps (as nearly as integers allow) its share in
each part, so a rare class cannot vanish from the test set by bad luck.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np

from tinygrad_lite.errors import ShapeError

__all__ = ["train_test_split", "train_val_test_split"]


def _length(a):
    if hasattr(a, "shape") and getattr(a, "shape", None) is not None and len(a.shape) > 0:
        return int(a.shape[0])
    try:
        return len(a)
    except TypeError:
        raise TypeError(f"train_test_split: expected array-like inputs, got {type(a).__name__}") \
            from None


def _take(a, idx):
    """Rows ``idx`` of a, returned as the same kind of container (ndarray, list, Tensor)."""
    if isinstance(a, np.ndarray):
        return a[idx]
    if isinstance(a, (list, tuple)):
        return [a[i] for i in idx]
    data = getattr(a, "data", None)
    if isinstance(data, np.ndarray) and type(a).__name__ in ("Tensor", "Parameter"):
        from tinygrad_lite.tensor import Tensor
        return Tensor(data[idx])
    try:
        return a[idx]
    except (TypeError, IndexError, KeyError):   # pandas-like objects, anything with __array__
        return np.asarray(a)[idx]


def _resolve_seed(seed, random_state, op):
    if seed is not None and random_state is not None and seed != random_state:
        raise ValueError(f"{op}: seed and random_state are aliases, got seed={seed} and "
                         f"random_state={random_state}; pass only one")
    s = seed if seed is not None else random_state
    return s if isinstance(s, np.random.Generator) else np.random.default_rng(s)


def _sizes(n, test_size, train_size, op):
    """(n_train, n_test) following scikit-learn's rules, with clear errors."""
    def check(v, name):
        if v is None:
            return
        if isinstance(v, bool) or not isinstance(v, (Integral, Real)):
            raise TypeError(f"{op}: {name} must be a float in (0, 1) or an int, got {v!r}")
        if isinstance(v, Integral):
            if not 0 < v < n:   # an int test_size of n would leave nothing to train on
                raise ValueError(f"{op}: {name}={v} must be between 1 and n_samples - 1, got "
                                 f"n_samples={n}")
        elif not 0.0 < v < 1.0:
            raise ValueError(f"{op}: {name}={v} as a fraction must be in (0, 1), got {v}")
    check(test_size, "test_size")
    check(train_size, "train_size")
    if test_size is None and train_size is None:
        test_size = 0.25
    n_test = None if test_size is None else (
        math.ceil(test_size * n) if isinstance(test_size, Real) and not
        isinstance(test_size, Integral) else int(test_size))
    n_train = None if train_size is None else (
        math.floor(train_size * n) if isinstance(train_size, Real) and not
        isinstance(train_size, Integral) else int(train_size))
    if n_train is None:
        n_train = n - n_test
    elif n_test is None:
        n_test = n - n_train
    if n_train + n_test > n:
        raise ValueError(f"{op}: train and test sizes add up to more than the data, got "
                         f"n_train={n_train} + n_test={n_test} > n_samples={n}")
    if n_train == 0 or n_test == 0:
        raise ValueError(f"{op}: with n_samples={n}, test_size={test_size} and "
                         f"train_size={train_size} one split is empty, got n_train={n_train} "
                         f"and n_test={n_test}; adjust test_size/train_size")
    return n_train, n_test


def _allocate(counts, n_draw, rng):
    """Split ``n_draw`` among classes proportionally to ``counts`` (largest remainder, random
    tie-break) without taking more than a class has."""
    exact = counts * n_draw / counts.sum()
    take = np.floor(exact).astype(np.int64)
    left = n_draw - take.sum()
    if left:
        rem = exact - take
        order = np.lexsort((rng.random(len(counts)), -rem))   # largest remainder first
        for c in order:
            if left == 0:
                break
            if take[c] < counts[c]:
                take[c] += 1
                left -= 1
    return take


def _stratified(y, n_train, n_test, rng, op):
    classes, y_idx = np.unique(y, return_inverse=True)
    counts = np.bincount(y_idx)
    if counts.min() < 2:
        raise ValueError(f"{op}: the least populated class in stratify has only 1 member, got "
                         f"class {classes[counts.argmin()]!r}; every class needs at least 2 "
                         "samples to appear in both splits (drop it or do not stratify)")
    if n_test < len(classes) or n_train < len(classes):
        raise ValueError(f"{op}: each split must hold every class, got n_train={n_train} and "
                         f"n_test={n_test} for {len(classes)} classes; make test_size larger")
    t_test = _allocate(counts, n_test, rng)
    t_train = _allocate(counts - t_test, n_train, rng)
    train, test = [], []
    for c in range(len(classes)):
        members = rng.permutation(np.flatnonzero(y_idx == c))
        test.append(members[:t_test[c]])
        train.append(members[t_test[c]:t_test[c] + t_train[c]])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def train_test_split(*arrays, test_size=None, train_size=None, stratify=None, shuffle=True,
                     seed=None, random_state=None):
    """Split arrays into random train and test subsets (scikit-learn's ``train_test_split``).

    Parameters
    ----------
    *arrays : arrays, lists or Tensors of the same length
    test_size, train_size : float in (0, 1), int, or None (default: test 25 %)
    stratify : array of labels or None. Keep each class's share in both parts.
    shuffle : bool. ``False`` takes the first rows for train (cannot stratify).
    seed / random_state : int, numpy Generator, or None. Same seed, same split.

    Returns
    -------
    list ``[a_train, a_test, b_train, b_test, ...]``

    Examples
    --------
    >>> X, y = np.arange(20).reshape(10, 2), np.array([0, 1] * 5)
    >>> X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, stratify=y, seed=0)
    >>> X_tr.shape, sorted(y_te.tolist())
    ((8, 2), [0, 1])
    """
    op = "train_test_split"
    if not arrays:
        raise ValueError(f"{op}: at least one array is required, got none")
    lengths = [_length(a) for a in arrays]
    if len(set(lengths)) > 1:
        raise ShapeError(f"{op}: arrays have different lengths, got {lengths}; every array "
                         "must have one row per sample")
    n = lengths[0]
    if n == 0:
        raise ValueError(f"{op}: cannot split empty arrays, got n_samples=0")
    n_train, n_test = _sizes(n, test_size, train_size, op)
    rng = _resolve_seed(seed, random_state, op)
    if not shuffle:
        if stratify is not None:
            raise ValueError(f"{op}: stratified splitting needs shuffle=True, got shuffle=False "
                             "and stratify set")
        train, test = np.arange(n_train), np.arange(n_train, n_train + n_test)
    elif stratify is not None:
        y = stratify
        y = np.asarray(y.numpy() if hasattr(y, "numpy") and not isinstance(y, np.ndarray) else y)
        if len(y) != n:
            raise ShapeError(f"{op}: stratify has a different length from the arrays, got "
                             f"{len(y)} and {n}")
        if y.ndim == 2:   # one-hot or multi-column labels: stratify on whole rows
            y = np.unique(y, axis=0, return_inverse=True)[1].ravel()
        train, test = _stratified(y, n_train, n_test, rng, op)
    else:
        perm = rng.permutation(n)
        train, test = perm[:n_train], perm[n_train:n_train + n_test]
    out = []
    for a in arrays:
        out += [_take(a, train), _take(a, test)]
    return out


def train_val_test_split(*arrays, val_size=0.1, test_size=0.2, stratify=None, shuffle=True,
                         seed=None, random_state=None):
    """Three-way split: ``[a_train, a_val, a_test, b_train, b_val, b_test, ...]``.

    ``val_size`` and ``test_size`` are fractions of the *whole* data (or counts). The test part is
    taken first, then the validation part from the rest, both stratified when ``stratify`` is set.

    Examples
    --------
    >>> X = np.arange(100).reshape(50, 2)
    >>> [a.shape[0] for a in train_val_test_split(X, val_size=0.2, test_size=0.2, seed=0)]
    [30, 10, 10]
    """
    op = "train_val_test_split"
    if not arrays:
        raise ValueError(f"{op}: at least one array is required, got none")
    n = _length(arrays[0])
    if n == 0:
        raise ValueError(f"{op}: cannot split empty arrays, got n_samples=0")
    rng = _resolve_seed(seed, random_state, op)

    def count(v, name):
        if isinstance(v, bool) or not isinstance(v, (Integral, Real)):
            raise TypeError(f"{op}: {name} must be a float in (0, 1) or an int, got {v!r}")
        if isinstance(v, Integral):
            return int(v)
        if not 0.0 < v < 1.0:
            raise ValueError(f"{op}: {name} as a fraction must be in (0, 1), got {v}")
        return math.ceil(v * n)
    n_test, n_val = count(test_size, "test_size"), count(val_size, "val_size")
    if n_test < 1 or n_val < 1 or n - n_test - n_val < 1:
        raise ValueError(f"{op}: one split is empty, got n_train={n - n_test - n_val}, "
                         f"n_val={n_val}, n_test={n_test} of n_samples={n}; adjust "
                         "val_size/test_size")
    extra = [] if stratify is None else [stratify]
    first = train_test_split(*arrays, *extra, test_size=n_test, stratify=stratify,
                             shuffle=shuffle, seed=rng)
    rest, tests = first[0::2], first[1::2]
    strat_rest = rest[-1] if stratify is not None else None
    second = train_test_split(*rest, test_size=n_val, stratify=strat_rest, shuffle=shuffle,
                              seed=rng)
    out = []
    for i in range(len(arrays)):
        out += [second[2 * i], second[2 * i + 1], tests[i]]
    return out
