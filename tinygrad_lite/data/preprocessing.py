"""Preprocessing: clean raw arrays, impute, scale and encode them (scikit-learn names, semantics).

Every transformer learns its statistics in ``fit`` (on the training split only, so nothing leaks
from the test data), applies them in ``transform``, undoes them in ``inverse_transform``, and can
be saved: ``state_dict()`` returns a plain dict of JSON-able values and NumPy arrays, and
``from_state_dict`` rebuilds the object without pickle (see ``split_state`` for model files).

    clean(X, y)            drop (or impute) rows with NaN/Inf, drop exact duplicates, report it
    SimpleImputer          fill missing values with the column mean / median / mode / a constant
    MinMaxScaler           x' = (x - min) / (max - min) * (hi - lo) + lo
    StandardScaler         x' = (x - mean) / std
    LabelEncoder, one_hot, OneHotEncoder   class labels <-> integers <-> indicator columns
    Pipeline               a chain of the above, fitted in order
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

from tinygrad_lite._arrays import as_numpy
from tinygrad_lite.errors import NotFittedError, ShapeError

__all__ = [
    "CleanReport",
    "LabelEncoder",
    "MinMaxScaler",
    "OneHotEncoder",
    "Pipeline",
    "SimpleImputer",
    "StandardScaler",
    "clean",
    "from_state_dict",
    "merge_state",
    "one_hot",
    "split_state",
]


# ------------------------------------------------------------------ helpers ---

def _check_2d(X, op, *, allow_nan=False):
    """X as a 2-D float array (float32 stays float32, anything else becomes float64)."""
    X = as_numpy(X)
    if X.ndim == 1:
        raise ShapeError(f"{op}: expected a 2-D array (n_samples, n_features), got shape "
                         f"{X.shape}; "
                         "use X.reshape(-1, 1) for a single feature or X.reshape(1, -1) "
                         "for a single sample")
    if X.ndim != 2:
        raise ShapeError(f"{op}: expected a 2-D array (n_samples, n_features), got shape {X.shape}")
    if X.dtype != np.float32:
        try:
            X = X.astype(np.float64)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{op}: expected numeric data, got dtype {X.dtype}") from e
    bad = ~np.isfinite(X) if not allow_nan else np.isinf(X)
    if bad.any():
        what = "NaN or Inf" if not allow_nan else "Inf"
        row = int(np.argwhere(bad)[0][0])
        raise ValueError(f"{op}: input contains {what} ({int(bad.sum())} values, first in row "
                         f"{row}); clean it first with tinygrad_lite.data.clean(X, y)")
    return X


def _check_features(self, X, op):
    if X.shape[1] != self.n_features_in_:
        raise ShapeError(f"{type(self).__name__}.{op}: X has {X.shape[1]} features, but "
                         f"{type(self).__name__} was fitted with {self.n_features_in_} features "
                         f"(expected {self.n_features_in_}, got {X.shape[1]})")


def _check_fitted(self, attr, op):
    if getattr(self, attr, None) is None:
        raise NotFittedError(f"{type(self).__name__}.{op}: this {type(self).__name__} is not "
                             f"fitted yet, got {op}() before fit(); call fit(X) or "
                             "fit_transform(X) first")


def _json_value(v):
    """Plain Python value for numpy scalars and 0-d arrays (keeps state_dicts JSON-able)."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, tuple):
        return [_json_value(i) for i in v]
    return v


# -------------------------------------------------------------------- clean ---

@dataclass
class CleanReport:
    """What ``clean`` did: ``str(report)`` is one human-readable line, ``to_dict()`` JSON-able."""

    n_rows_in: int = 0
    n_rows_out: int = 0
    n_nonfinite_rows: int = 0
    n_imputed_values: int = 0
    n_duplicate_rows: int = 0
    n_conflicting_rows: int = 0
    dropped_rows: list = field(default_factory=list)
    impute: str | None = None

    def to_dict(self):
        return asdict(self)

    def __str__(self):
        parts = [f"clean: {self.n_rows_in} rows in, {self.n_rows_out} out"]
        if self.impute:
            parts.append(f"{self.n_imputed_values} NaN/Inf values imputed by {self.impute}")
        parts.append(f"{self.n_nonfinite_rows} rows with NaN/Inf dropped")
        parts.append(f"{self.n_duplicate_rows} duplicate rows dropped")
        if self.n_conflicting_rows:
            parts.append(f"{self.n_conflicting_rows} rows share features but not labels (kept)")
        return ", ".join(parts)


def clean(X, y=None, impute=None):
    """Remove rows a model cannot learn from, and say what was removed.

    1. Non-finite values (NaN, +Inf, -Inf) in X: with ``impute=None`` the whole row is dropped;
       with ``impute='mean'`` or ``'median'`` each one is replaced by the mean/median of the finite
       values of its column. Rows whose *label* is non-finite are always dropped (a label cannot
       be guessed).
    2. Exact duplicate rows (same features *and* same label) are dropped, the first one is kept.
       Rows with the same features but different labels are kept and counted in the report.

    Row order is preserved. Statistics for imputation come from the data passed in; to avoid
    leaking test data into training, clean before splitting only what is raw noise, or use
    ``SimpleImputer`` fitted on the training split.

    Parameters
    ----------
    X : array-like (n_samples, n_features)
    y : array-like (n_samples,), optional
    impute : None, 'mean' or 'median'

    Returns
    -------
    X_clean, y_clean (None when y is None), report : CleanReport

    Examples
    --------
    >>> X = np.array([[1., 2.], [np.nan, 1.], [1., 2.]]); y = np.array([0, 1, 0])
    >>> Xc, yc, report = clean(X, y)
    >>> Xc.tolist(), yc.tolist(), report.n_nonfinite_rows, report.n_duplicate_rows
    ([[1.0, 2.0]], [0], 1, 1)
    """
    if impute not in (None, "mean", "median"):
        raise ValueError(f"clean: impute must be None, 'mean' or 'median', got {impute!r}")
    X = as_numpy(X)
    if X.ndim != 2:
        raise ShapeError(f"clean: expected X of shape (n_samples, n_features), got shape {X.shape}")
    X = X.astype(np.float32 if X.dtype == np.float32 else np.float64, copy=True)
    n = X.shape[0]
    if n == 0:
        raise ValueError("clean: X is empty, got 0 rows")
    if y is not None:
        y = as_numpy(y)
        if len(y) != n:
            raise ShapeError(f"clean: X and y have different lengths, got len(X)={n} and "
                             f"len(y)={len(y)}")
    report = CleanReport(n_rows_in=n, impute=impute)
    keep = np.ones(n, dtype=bool)
    if y is not None and np.issubdtype(y.dtype, np.number):
        keep &= np.isfinite(y.reshape(n, -1)).all(axis=1)
    bad = ~np.isfinite(X)
    if impute is None:
        keep &= ~bad.any(axis=1)
    else:
        report.n_imputed_values = int(bad[keep].sum())
        for j in np.flatnonzero(bad.any(axis=0)):
            finite = X[keep & ~bad[:, j], j]
            if finite.size == 0:
                raise ValueError(f"clean: column {j} has no finite value to impute from, got "
                                 f"{int(bad[:, j].sum())} NaN/Inf of {n}; drop the column")
            X[bad[:, j], j] = finite.mean() if impute == "mean" else np.median(finite)
    report.n_nonfinite_rows = int(n - keep.sum())

    # duplicates: compare whole rows (features + label) as bytes, keep the first occurrence
    rows = np.ascontiguousarray(X)
    seen, seen_x = {}, {}
    for i in np.flatnonzero(keep):
        kx = rows[i].tobytes()
        key = (kx, None if y is None else np.asarray(y[i]).tobytes())
        if key in seen:
            keep[i] = False
            report.n_duplicate_rows += 1
            continue
        seen[key] = i
        if kx in seen_x:
            report.n_conflicting_rows += 1
        seen_x[kx] = i
    report.dropped_rows = np.flatnonzero(~keep).tolist()
    report.n_rows_out = int(keep.sum())
    if report.n_rows_out == 0:
        raise ValueError(f"clean: every row was removed, got {n} rows with "
                         f"{report.n_nonfinite_rows} non-finite; try clean(X, y, impute='mean')")
    return X[keep], (None if y is None else y[keep]), report


# -------------------------------------------------------------- transformer ---

def _check_labels_array(op, name, v):
    """A 1-D, sorted, duplicate-free array of numbers, strings or bools (searchsorted needs it)."""
    if not isinstance(v, np.ndarray) or v.ndim != 1 or v.size == 0:
        raise ValueError(f"{op}: {name} must be a non-empty 1-D list, got "
                         f"{getattr(v, 'shape', type(v).__name__)}")
    if v.dtype.kind not in "biufU":
        raise ValueError(f"{op}: {name} must hold numbers or strings, got dtype {v.dtype}")
    if v.dtype.kind == "f" and not np.isfinite(v).all():
        raise ValueError(f"{op}: {name} must be finite, got NaN/Inf")
    if v.size > 1 and not (v[1:] > v[:-1]).all():
        raise ValueError(f"{op}: {name} must be sorted and without duplicates, got "
                         f"{v.tolist()[:10]}")


def _number(v):
    return not isinstance(v, bool) and isinstance(v, (int, float, np.integer, np.floating)) \
        and bool(np.isfinite(v))


def _json_scalar(v):
    return None if v is None or isinstance(v, (str, bool)) or _number(v) else \
        "must be a JSON scalar"


def _is_bool(v):
    return None if isinstance(v, (bool, np.bool_)) else "must be true or false"


def _one_of(*choices):
    return lambda v: None if isinstance(v, str) and v in choices else f"must be one of {choices}"


def _feature_range(v):
    ok = isinstance(v, tuple) and len(v) == 2 and all(_number(a) for a in v) and v[0] < v[1]
    return None if ok else "must be two finite numbers (min, max) with min < max"


# How each stored constructor parameter is checked when a state dict is loaded (model files are
# untrusted): by type, never by truthiness.
_PARAM_CHECKS = {
    "clip": _is_bool, "with_mean": _is_bool, "with_std": _is_bool,
    "keep_empty_features": _is_bool, "feature_range": _feature_range,
    "strategy": _one_of("mean", "median", "most_frequent", "constant"),
    "handle_unknown": _one_of("error", "ignore"),
    "fill_value": lambda v: None if v is None or _number(v) or isinstance(v, str)
    else "must be a finite number, a string or null",
    "missing_values": lambda v: None if v is None or _number(v)
    else "must be a finite number or null (NaN)",
}


class _Transformer:
    """fit_transform, state_dict/load_state_dict plumbing shared by every transformer."""

    _params: tuple = ()   # constructor arguments (JSON-able)
    _state: tuple = ()    # fitted attributes (arrays or JSON-able)

    def fit_transform(self, X, y=None):
        return self.fit(X).transform(X)

    def state_dict(self):
        """Plain dict: ``class``, constructor params and fitted attributes (ndarrays or JSON)."""
        out = {"class": type(self).__name__}
        for k in self._params:
            out[k] = _json_value(getattr(self, k))
        for k in self._state:
            v = getattr(self, k, None)
            out[k] = v.copy() if isinstance(v, np.ndarray) else _json_value(v)
        return out

    def load_state_dict(self, state):
        if state.get("class", type(self).__name__) != type(self).__name__:
            raise ValueError(f"{type(self).__name__}.load_state_dict: state is for "
                             f"{state.get('class')!r}, got it for {type(self).__name__}")
        missing = [k for k in self._params + self._state if k not in state]
        if missing:
            raise KeyError(f"{type(self).__name__}.load_state_dict: missing keys, got no {missing}")
        op = f"{type(self).__name__}.load_state_dict"
        params = {k: tuple(state[k]) if isinstance(state[k], list) else state[k]
                  for k in self._params}
        for k, v in params.items():   # by type, never by truthiness ("x" is not True)
            problem = _PARAM_CHECKS.get(k, _json_scalar)(v)
            if problem:
                raise ValueError(f"{op}: {k} {problem}, got {str(v)[:60]!r}")
        values = {k: np.asarray(state[k]) if isinstance(state[k], (np.ndarray, list))
                  else state[k] for k in self._state}
        self._check_state(values)
        for k, v in params.items():
            setattr(self, k, v)
        for k, v in values.items():
            setattr(self, k, v)
        return self

    _nan_ok: tuple = ()   # fitted arrays where NaN is a legitimate marker (not Inf)
    _own_checks: tuple = ()   # fitted values the subclass's load_state_dict checks itself

    def _check_state(self, values):
        """Fitted arrays must be 1-D numeric, one entry per feature, and finite; checked before
        anything is assigned (a model file's state is untrusted)."""
        op = f"{type(self).__name__}.load_state_dict"
        if "n_features_in_" not in values:   # LabelEncoder: classes_ is a 1-D list of labels
            for k, v in values.items():
                if v is not None:
                    _check_labels_array(op, k, v)
            return
        n = values.get("n_features_in_")
        fitted = [k for k in values
                  if k not in ("n_features_in_", "n_samples_seen_") + self._own_checks]
        if n is None:
            present = sorted(k for k, v in values.items()
                             if v is not None and k != "n_features_in_")
            if present:
                raise ValueError(f"{op}: fitted values without n_features_in_, got {present}")
            return
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"{op}: n_features_in_ must be an int >= 1, got {n!r}")
        seen = values.get("n_samples_seen_", 0)
        if isinstance(seen, np.ndarray):
            if seen.dtype.kind not in "iu" or seen.shape != (n,) or (seen < 0).any():
                raise ValueError(f"{op}: n_samples_seen_ must be an int >= 0 or {n} of them, got "
                                 f"dtype {seen.dtype} shape {seen.shape}")
        elif isinstance(seen, bool) or not isinstance(seen, (int, np.integer)) or seen < 0:
            raise ValueError(f"{op}: n_samples_seen_ must be an int >= 0, got {str(seen)[:40]!r}")
        arrays = {}
        for k in fitted:   # a fitted model stores every fitted array, as float64 from fit()
            v = values[k]
            if not isinstance(v, np.ndarray):
                raise ValueError(f"{op}: {k} must be an array of {n} floats, got "
                                 f"{type(v).__name__} {str(v)[:40]!r}")
            arrays[k] = v
        for k, v in arrays.items():
            if v.dtype not in (np.float32, np.float64):
                raise ValueError(f"{op}: {k} must be float32 or float64 (fit stores float64), "
                                 f"got dtype {v.dtype}")
            if v.shape != (n,):
                raise ValueError(f"{op}: {k} must have shape ({n},) for n_features_in_={n}, got "
                                 f"{v.shape}")
            bad = np.isinf(v) if k in self._nan_ok else ~np.isfinite(v)
            if bad.any():
                raise ValueError(f"{op}: {k} must be finite, got {int(bad.sum())} "
                                 f"{'Inf' if k in self._nan_ok else 'NaN/Inf'} value(s)")

    def __repr__(self):
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._params)
        return f"{type(self).__name__}({args})"


class SimpleImputer(_Transformer):
    """Replace missing values column by column (scikit-learn's ``SimpleImputer``).

    strategy: 'mean', 'median', 'most_frequent' (smallest of ties) or 'constant' (``fill_value``,
    default 0). A column that is missing everywhere is dropped with a warning, like scikit-learn,
    unless ``keep_empty_features=True`` (then it is filled with 0, or ``fill_value``).

    Examples
    --------
    >>> SimpleImputer().fit_transform([[1., np.nan], [3., 4.]]).tolist()
    [[1.0, 4.0], [3.0, 4.0]]
    """

    _params = ("strategy", "fill_value", "missing_values", "keep_empty_features")
    _state = ("statistics_", "n_features_in_")
    _nan_ok = ("statistics_",)   # NaN marks a feature without any observed value

    def __init__(self, strategy="mean", fill_value=None, missing_values=np.nan,
                 keep_empty_features=False):
        if strategy not in ("mean", "median", "most_frequent", "constant"):
            raise ValueError("SimpleImputer: strategy must be 'mean', 'median', 'most_frequent' "
                             f"or 'constant', got {strategy!r}")
        self.strategy, self.fill_value = strategy, fill_value
        # None stands for NaN (JSON has no NaN)
        self.missing_values = None if missing_values is None or np.isnan(missing_values) \
            else missing_values
        self.keep_empty_features = keep_empty_features
        self.statistics_ = None

    def _mask(self, X):
        return np.isnan(X) if self.missing_values is None else (X == self.missing_values)

    def fit(self, X, y=None):
        X = _check_2d(X, "SimpleImputer.fit", allow_nan=True)
        mask = self._mask(X)
        stats = np.empty(X.shape[1])
        for j in range(X.shape[1]):
            col = X[~mask[:, j], j]
            fill = 0 if self.fill_value is None else self.fill_value
            if col.size == 0:
                stats[j] = np.nan if not self.keep_empty_features else \
                    (fill if self.strategy == "constant" else 0)
            elif self.strategy == "constant":
                stats[j] = fill
            elif self.strategy == "mean":
                stats[j] = col.mean()
            elif self.strategy == "median":
                stats[j] = np.median(col)
            else:
                values, counts = np.unique(col, return_counts=True)
                stats[j] = values[np.argmax(counts)]
        self.statistics_ = stats
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X):
        _check_fitted(self, "statistics_", "transform")
        X = _check_2d(X, "SimpleImputer.transform", allow_nan=True).copy()
        _check_features(self, X, "transform")
        mask = self._mask(X)
        valid = ~np.isnan(self.statistics_)
        if not valid.all():
            warnings.warn(f"SimpleImputer: skipping features without any observed values: "
                          f"{np.flatnonzero(~valid).tolist()}", UserWarning, stacklevel=2)
        rows, cols = np.nonzero(mask)
        X[rows, cols] = self.statistics_[cols]
        return X[:, valid]

    def inverse_transform(self, X):
        """Imputation forgets which values were missing: this returns X unchanged (a copy)."""
        _check_fitted(self, "statistics_", "inverse_transform")
        return _check_2d(X, "SimpleImputer.inverse_transform", allow_nan=True).copy()


class MinMaxScaler(_Transformer):
    """Scale each feature to ``feature_range`` (default [0, 1]).

    With ``lo, hi = feature_range``:  ``scale = (hi - lo) / (max - min)``,
    ``x' = x * scale + (lo - min * scale)``, which maps min -> lo and max -> hi. A constant
    feature (max - min below 10 machine epsilons) gets scale 1, so it maps to ``lo``
    (scikit-learn's rule). NaN is ignored in ``fit`` and kept in ``transform``.

    Examples
    --------
    >>> MinMaxScaler().fit_transform([[0.], [5.], [10.]]).ravel().tolist()
    [0.0, 0.5, 1.0]
    """

    _params = ("feature_range", "clip")
    _state = ("data_min_", "data_max_", "data_range_", "scale_", "min_", "n_features_in_")

    def __init__(self, feature_range=(0, 1), clip=False):
        lo, hi = feature_range
        if not lo < hi:
            raise ValueError(f"MinMaxScaler: feature_range must be (min, max) with min < max, "
                             f"got {tuple(feature_range)}")
        self.feature_range, self.clip = tuple(feature_range), clip
        self.scale_ = None

    def fit(self, X, y=None):
        X = _check_2d(X, "MinMaxScaler.fit", allow_nan=True)
        if X.shape[0] == 0:
            raise ValueError("MinMaxScaler.fit: X is empty, got 0 samples")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)   # all-NaN column -> NaN, like sklearn
            self.data_min_ = np.nanmin(X, axis=0).astype(np.float64)
            self.data_max_ = np.nanmax(X, axis=0).astype(np.float64)
        self.data_range_ = self.data_max_ - self.data_min_
        rng = self.data_range_.copy()
        rng[rng < 10 * np.finfo(np.float64).eps] = 1.0
        lo, hi = self.feature_range
        self.scale_ = (hi - lo) / rng
        self.min_ = lo - self.data_min_ * self.scale_
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X):
        _check_fitted(self, "scale_", "transform")
        X = _check_2d(X, "MinMaxScaler.transform", allow_nan=True)
        _check_features(self, X, "transform")
        out = (X * self.scale_ + self.min_).astype(X.dtype)
        if self.clip:
            np.clip(out, *self.feature_range, out=out)
        return out

    def inverse_transform(self, X):
        _check_fitted(self, "scale_", "inverse_transform")
        X = _check_2d(X, "MinMaxScaler.inverse_transform", allow_nan=True)
        _check_features(self, X, "inverse_transform")
        return ((X - self.min_) / self.scale_).astype(X.dtype)


class StandardScaler(_Transformer):
    """Standardize each feature: ``x' = (x - mean) / std`` (population std, ``ddof=0``).

    A feature whose variance is indistinguishable from 0 (within the float64 error bound of the
    two-pass variance, scikit-learn's test) gets ``scale_ = 1``, so it becomes ``x - mean = 0``
    instead of dividing by ~0. NaN is ignored in ``fit`` and kept in ``transform``.

    Examples
    --------
    >>> StandardScaler().fit_transform([[1.], [3.]]).ravel().tolist()
    [-1.0, 1.0]
    """

    _params = ("with_mean", "with_std")
    _state = ("mean_", "var_", "scale_", "n_samples_seen_", "n_features_in_")

    def __init__(self, with_mean=True, with_std=True):
        self.with_mean, self.with_std = with_mean, with_std
        self.n_features_in_ = None

    def fit(self, X, y=None):
        X = _check_2d(X, "StandardScaler.fit", allow_nan=True)
        if X.shape[0] == 0:
            raise ValueError("StandardScaler.fit: X is empty, got 0 samples")
        X64 = X.astype(np.float64)
        n = (~np.isnan(X64)).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            self.mean_ = np.nanmean(X64, axis=0)
            self.var_ = np.nanmean((X64 - self.mean_) ** 2, axis=0)
        self.n_samples_seen_ = int(n.max()) if n.min() == n.max() else n
        if self.with_std:
            eps = np.finfo(np.float64).eps
            constant = self.var_ <= n * eps * self.var_ + (n * self.mean_ * eps) ** 2
            self.scale_ = np.where(constant, 1.0, np.sqrt(self.var_))
        else:
            self.scale_ = np.ones_like(self.var_)
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X):
        _check_fitted(self, "n_features_in_", "transform")
        X = _check_2d(X, "StandardScaler.transform", allow_nan=True)
        _check_features(self, X, "transform")
        out = X - self.mean_ if self.with_mean else X
        return (out / self.scale_).astype(X.dtype)

    def inverse_transform(self, X):
        _check_fitted(self, "n_features_in_", "inverse_transform")
        X = _check_2d(X, "StandardScaler.inverse_transform", allow_nan=True)
        _check_features(self, X, "inverse_transform")
        out = X * self.scale_
        return (out + self.mean_ if self.with_mean else out).astype(X.dtype)


# ----------------------------------------------------------------- encoders ---

class LabelEncoder(_Transformer):
    """Map labels to 0..n_classes-1 in sorted order (``classes_``), and back.

    Examples
    --------
    >>> le = LabelEncoder().fit(["cat", "dog", "cat"])
    >>> le.transform(["dog", "cat"]).tolist(), le.inverse_transform([1]).tolist()
    ([1, 0], ['dog'])
    """

    _state = ("classes_",)

    def __init__(self):
        self.classes_ = None

    @staticmethod
    def _labels(y, op):
        y = as_numpy(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.ravel()
        if y.ndim != 1:
            raise ShapeError(f"LabelEncoder.{op}: expected a 1-D array of labels, got shape "
                             f"{y.shape}; for one-hot rows use y.argmax(axis=1)")
        return y

    def fit(self, y):
        self.classes_ = np.unique(self._labels(y, "fit"))
        return self

    def fit_transform(self, y):
        return self.fit(y).transform(y)

    def transform(self, y):
        _check_fitted(self, "classes_", "transform")
        y = self._labels(y, "transform")
        if y.size == 0:
            return np.zeros(0, dtype=np.int64)
        idx = np.clip(np.searchsorted(self.classes_, y), 0, len(self.classes_) - 1)
        unseen = self.classes_[idx] != y
        if unseen.any():
            raise ValueError(f"LabelEncoder.transform: y contains labels not seen in fit, got "
                             f"{np.unique(y[unseen]).tolist()[:10]}; known: "
                             f"{self.classes_.tolist()[:20]}")
        return idx.astype(np.int64)

    def inverse_transform(self, y):
        _check_fitted(self, "classes_", "inverse_transform")
        y = self._labels(y, "inverse_transform").astype(np.int64)
        bad = (y < 0) | (y >= len(self.classes_))
        if bad.any():
            raise ValueError(f"LabelEncoder.inverse_transform: codes must be in "
                             f"[0, {len(self.classes_)}), got {np.unique(y[bad]).tolist()[:10]}")
        return self.classes_[y]

    def state_dict(self):
        state = super().state_dict()
        state["classes_"] = None if self.classes_ is None else self.classes_.tolist()
        return state


def one_hot(y, num_classes=None, dtype=np.float32):
    """Integer labels (n,) -> indicator rows (n, num_classes): ``out[i, y[i]] = 1``.

    Examples
    --------
    >>> one_hot([0, 2], num_classes=3).tolist()
    [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    """
    y = as_numpy(y)
    if y.ndim != 1:
        raise ShapeError(f"one_hot: expected 1-D integer labels, got shape {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer) and (
            not np.issubdtype(y.dtype, np.floating) or (y != np.round(y)).any()):
        raise ValueError(f"one_hot: labels must be integers, got dtype {y.dtype}; "
                         "use LabelEncoder for string labels")
    y = y.astype(np.int64)
    if num_classes is None:
        num_classes = int(y.max()) + 1 if y.size else 0
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"one_hot: labels must be in [0, {num_classes}), got min {y.min()} and "
                         f"max {y.max()}; pass num_classes= or encode labels with LabelEncoder")
    out = np.zeros((y.size, num_classes), dtype=dtype)
    out[np.arange(y.size), y] = 1
    return out


class OneHotEncoder(_Transformer):
    """One indicator column per category of each feature (dense; scikit-learn's column order).

    ``handle_unknown='error'`` (default) raises on a category unseen in ``fit``; ``'ignore'``
    encodes it as all zeros.

    Examples
    --------
    >>> OneHotEncoder().fit_transform([[1], [3], [1]]).tolist()
    [[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]
    """

    _params = ("handle_unknown",)
    _state = ("categories_", "n_features_in_")
    _own_checks = ("categories_",)

    def __init__(self, handle_unknown="error", dtype=np.float64):
        if handle_unknown not in ("error", "ignore"):
            raise ValueError(f"OneHotEncoder: handle_unknown must be 'error' or 'ignore', "
                             f"got {handle_unknown!r}")
        self.handle_unknown, self.dtype = handle_unknown, dtype
        self.categories_ = None

    @staticmethod
    def _2d(X, op):
        X = as_numpy(X)
        if X.ndim != 2:
            raise ShapeError(f"OneHotEncoder.{op}: expected a 2-D array (n_samples, n_features), "
                             f"got shape {X.shape}; use X.reshape(-1, 1) for one feature")
        return X

    def fit(self, X, y=None):
        X = self._2d(X, "fit")
        self.categories_ = [np.unique(X[:, j]) for j in range(X.shape[1])]
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X):
        _check_fitted(self, "categories_", "transform")
        X = self._2d(X, "transform")
        _check_features(self, X, "transform")
        blocks = []
        for j, cats in enumerate(self.categories_):
            idx = np.clip(np.searchsorted(cats, X[:, j]), 0, len(cats) - 1)
            known = cats[idx] == X[:, j]
            if not known.all() and self.handle_unknown == "error":
                raise ValueError(f"OneHotEncoder.transform: feature {j} has categories not seen "
                                 f"in fit, got {np.unique(X[~known, j]).tolist()[:10]}; "
                                 "use handle_unknown='ignore' to encode them as zeros")
            block = np.zeros((X.shape[0], len(cats)), dtype=self.dtype)
            block[np.flatnonzero(known), idx[known]] = 1
            blocks.append(block)
        return np.concatenate(blocks, axis=1) if blocks else np.zeros((X.shape[0], 0))

    def inverse_transform(self, X):
        _check_fitted(self, "categories_", "inverse_transform")
        X = as_numpy(X)
        width = sum(len(c) for c in self.categories_)
        if X.ndim != 2 or X.shape[1] != width:
            raise ShapeError(f"OneHotEncoder.inverse_transform: expected (n, {width}) indicator "
                             f"columns, got shape {X.shape}")
        cols, start = [], 0
        for cats in self.categories_:
            block = X[:, start:start + len(cats)]
            start += len(cats)
            if (block.sum(axis=1) == 0).any():
                raise ValueError("OneHotEncoder.inverse_transform: a row has no active category "
                                 "(unknown at transform time), got an all-zero block")
            cols.append(cats[block.argmax(axis=1)])
        return np.stack(cols, axis=1) if cols else np.zeros((X.shape[0], 0))

    def state_dict(self):
        state = super().state_dict()
        state["categories_"] = None if self.categories_ is None else \
            [c.tolist() for c in self.categories_]
        return state

    def load_state_dict(self, state):
        cats = state.get("categories_")
        n = state.get("n_features_in_")
        if cats is not None:
            if not isinstance(cats, list) or len(cats) != n:
                raise ValueError(f"OneHotEncoder.load_state_dict: categories_ must be a list of "
                                 f"n_features_in_={n!r} lists, got {str(cats)[:60]}")
            cats = [np.asarray(c) if isinstance(c, list) else c for c in cats]
            for j, c in enumerate(cats):
                _check_labels_array("OneHotEncoder.load_state_dict", f"categories_[{j}]", c)
        super().load_state_dict({k: v for k, v in state.items() if k != "categories_"}
                                | {"categories_": None})
        self.categories_ = cats
        return self


# ----------------------------------------------------------------- pipeline ---

class Pipeline:
    """Apply transformers in order: ``fit`` fits each on the output of the previous one.

    ``steps`` is a list of transformers or of ``(name, transformer)`` pairs.
    ``inverse_transform`` undoes the steps in reverse order.

    Examples
    --------
    >>> p = Pipeline([("impute", SimpleImputer()), ("scale", MinMaxScaler())])
    >>> p.fit_transform([[0.], [np.nan], [4.]]).ravel().tolist()
    [0.0, 0.5, 1.0]
    """

    def __init__(self, steps):
        self.steps = []
        for i, s in enumerate(steps):
            name, t = s if isinstance(s, tuple) else (f"step{i}", s)
            for m in ("fit", "transform"):
                if not callable(getattr(t, m, None)):
                    raise TypeError(f"Pipeline: step {name!r} has no {m}(), got {t!r}")
            self.steps.append((name, t))

    def __getitem__(self, key):
        return dict(self.steps)[key] if isinstance(key, str) else self.steps[key][1]

    def fit(self, X, y=None):
        for _, t in self.steps:
            X = t.fit(X).transform(X)
        return self

    def fit_transform(self, X, y=None):
        for _, t in self.steps:
            X = t.fit(X).transform(X)
        return X

    def transform(self, X):
        for _, t in self.steps:
            X = t.transform(X)
        return X

    def inverse_transform(self, X):
        for _, t in reversed(self.steps):
            X = t.inverse_transform(X)
        return X

    def state_dict(self):
        return {"class": "Pipeline", "names": [n for n, _ in self.steps],
                "steps": [t.state_dict() for _, t in self.steps]}

    def load_state_dict(self, state):
        if len(state["steps"]) != len(self.steps):
            raise ValueError(f"Pipeline.load_state_dict: expected {len(self.steps)} steps, got "
                             f"{len(state['steps'])}")
        for (_, t), s in zip(self.steps, state["steps"]):
            t.load_state_dict(s)
        return self

    def __repr__(self):
        return f"Pipeline({self.steps!r})"


# ------------------------------------------------------------ serialization ---

_REGISTRY = {c.__name__: c for c in (SimpleImputer, MinMaxScaler, StandardScaler, LabelEncoder,
                                     OneHotEncoder)}


def from_state_dict(state):
    """Rebuild a fitted transformer (or Pipeline) from ``state_dict()``; allow-listed classes only.

    Examples
    --------
    >>> s = MinMaxScaler().fit([[0.], [2.]]).state_dict()
    >>> from_state_dict(s).transform([[1.]]).tolist()
    [[0.5]]
    """
    name = state.get("class") if isinstance(state, dict) else None
    if name == "Pipeline":
        names, steps = state.get("names"), state.get("steps")
        if not isinstance(names, list) or not isinstance(steps, list) or len(names) != len(steps):
            raise ValueError(f"from_state_dict: a Pipeline needs as many names as steps, got "
                             f"{len(names) if isinstance(names, list) else names!r} names and "
                             f"{len(steps) if isinstance(steps, list) else steps!r} steps")
        return Pipeline([(n, from_state_dict(s)) for n, s in zip(names, steps)])
    if name not in _REGISTRY:
        raise ValueError(f"from_state_dict: unknown transformer class, got {name!r}; "
                         f"expected one of {sorted(_REGISTRY) + ['Pipeline']}")
    cls = _REGISTRY[name]
    obj = cls.__new__(cls)
    cls.__init__(obj)
    return obj.load_state_dict(state)


def split_state(state, prefix=""):
    """Split a (nested) state_dict into ``(meta, arrays)``: JSON-able meta and a flat dict of
    ndarrays (for safetensors / npz). Each array is replaced in meta by ``{"__array__": key}``.

    Examples
    --------
    >>> meta, arrays = split_state(StandardScaler().fit([[1.], [3.]]).state_dict(), "scaler.")
    >>> meta["mean_"], arrays["scaler.mean_"].tolist()
    ({'__array__': 'scaler.mean_'}, [2.0])
    """
    arrays = {}

    def walk(v, path):
        if isinstance(v, np.ndarray):
            arrays[path] = v
            return {"__array__": path}
        if isinstance(v, dict):
            return {k: walk(x, f"{path}{k}" if not path or path.endswith(".") else
                            f"{path}.{k}") for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [walk(x, f"{path}{i}" if not path or path.endswith(".") else f"{path}.{i}")
                    for i, x in enumerate(v)]
        return _json_value(v)

    return walk(state, prefix), arrays


def merge_state(meta, arrays):
    """Inverse of ``split_state``: put the arrays back into the JSON meta."""
    if isinstance(meta, dict):
        if set(meta) == {"__array__"}:
            key = meta["__array__"]
            if key not in arrays:
                raise KeyError(f"merge_state: array {key!r} is missing, got keys "
                               f"{sorted(arrays)[:10]}")
            return np.asarray(arrays[key])
        return {k: merge_state(v, arrays) for k, v in meta.items()}
    if isinstance(meta, list):
        return [merge_state(v, arrays) for v in meta]
    return meta
