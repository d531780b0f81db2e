"""Regression metrics (scikit-learn names and results).

    MSE  = mean (y - y_hat)^2          (the seed's cost J is MSE / 2)
    RMSE = sqrt(MSE)                   same unit as y
    MAE  = mean |y - y_hat|            less sensitive to outliers
    R^2  = 1 - SS_res / SS_tot,  SS_res = sum (y - y_hat)^2,  SS_tot = sum (y - mean y)^2
           1 is perfect, 0 is "always predict the mean", negative is worse than that.

Multi-output targets (n, k) are averaged over outputs (``multioutput='uniform_average'``) or
returned per output (``'raw_values'``).
"""

from __future__ import annotations

import numpy as np

from tinygrad_lite._arrays import as_numpy
from tinygrad_lite.errors import ShapeError

__all__ = ["mean_absolute_error", "mean_squared_error", "r2_score", "root_mean_squared_error"]


def _check(y_true, y_pred, sample_weight, multioutput, op):
    y_true = as_numpy(y_true).astype(np.float64)
    y_pred = as_numpy(y_pred).astype(np.float64)
    if y_true.ndim == 1:
        y_true = y_true[:, None]
    if y_pred.ndim == 1:
        y_pred = y_pred[:, None]
    if y_true.ndim != 2 or y_pred.ndim != 2:
        raise ShapeError(f"{op}: y_true and y_pred must be (n,) or (n, n_outputs), got "
                         f"{y_true.shape} and {y_pred.shape}")
    if y_true.shape != y_pred.shape:
        raise ShapeError(f"{op}: y_true and y_pred have different shapes, got {y_true.shape} and "
                         f"{y_pred.shape}")
    if y_true.shape[0] == 0:
        raise ValueError(f"{op}: y_true is empty, got 0 samples")
    for name, a in (("y_true", y_true), ("y_pred", y_pred)):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{op}: {name} contains NaN or Inf, got "
                             f"{int((~np.isfinite(a)).sum())} non-finite values")
    w = None
    if sample_weight is not None:
        w = as_numpy(sample_weight).astype(np.float64).ravel()
        if len(w) != len(y_true):
            raise ShapeError(f"{op}: sample_weight has a different length, got {len(w)} for "
                             f"{len(y_true)} samples")
    if not (isinstance(multioutput, str) and multioutput in ("raw_values", "uniform_average")
            or not isinstance(multioutput, str)):
        raise ValueError(f"{op}: multioutput must be 'raw_values', 'uniform_average' or weights, "
                         f"got {multioutput!r}")
    return y_true, y_pred, w


def _reduce(per_output, multioutput):
    if isinstance(multioutput, str):
        return per_output if multioutput == "raw_values" else float(np.mean(per_output))
    return float(np.average(per_output, weights=as_numpy(multioutput)))


def mean_squared_error(y_true, y_pred, *, sample_weight=None, multioutput="uniform_average"):
    """Mean of squared errors.

    Examples
    --------
    >>> mean_squared_error([3, -0.5, 2, 7], [2.5, 0.0, 2, 8])
    0.375
    """
    t, p, w = _check(y_true, y_pred, sample_weight, multioutput, "mean_squared_error")
    return _reduce(np.average((t - p) ** 2, axis=0, weights=w), multioutput)


def root_mean_squared_error(y_true, y_pred, *, sample_weight=None,
                            multioutput="uniform_average"):
    """Square root of the MSE, per output, then averaged.

    Examples
    --------
    >>> root_mean_squared_error([0, 0], [3, 4])
    3.5355339059327378
    """
    t, p, w = _check(y_true, y_pred, sample_weight, multioutput, "root_mean_squared_error")
    return _reduce(np.sqrt(np.average((t - p) ** 2, axis=0, weights=w)), multioutput)


def mean_absolute_error(y_true, y_pred, *, sample_weight=None, multioutput="uniform_average"):
    """Mean of absolute errors.

    Examples
    --------
    >>> mean_absolute_error([3, -0.5, 2, 7], [2.5, 0.0, 2, 8])
    0.5
    """
    t, p, w = _check(y_true, y_pred, sample_weight, multioutput, "mean_absolute_error")
    return _reduce(np.average(np.abs(t - p), axis=0, weights=w), multioutput)


def r2_score(y_true, y_pred, *, sample_weight=None, multioutput="uniform_average",
             force_finite=True):
    """Coefficient of determination ``1 - SS_res / SS_tot``.

    A constant ``y_true`` has SS_tot = 0: the score is then 1.0 for a perfect prediction and 0.0
    otherwise (scikit-learn's ``force_finite=True``; ``False`` gives nan / -inf).

    Examples
    --------
    >>> r2_score([3, -0.5, 2, 7], [2.5, 0.0, 2, 8])
    0.9486081370449679
    """
    t, p, w = _check(y_true, y_pred, sample_weight, multioutput, "r2_score")
    if len(t) < 2:
        raise ValueError("r2_score: R^2 is not defined for a single sample, got 1 sample")
    ww = np.ones(len(t)) if w is None else w
    num = (ww[:, None] * (t - p) ** 2).sum(axis=0)
    den = (ww[:, None] * (t - np.average(t, axis=0, weights=w)) ** 2).sum(axis=0)
    ok_num, ok_den = num != 0, den != 0
    scores = np.ones(t.shape[1])
    valid = ok_num & ok_den
    scores[valid] = 1 - num[valid] / den[valid]
    bad = ok_num & ~ok_den
    scores[bad] = 0.0 if force_finite else -np.inf
    if not force_finite:
        scores[~ok_num & ~ok_den] = np.nan
    return _reduce(scores, multioutput)
