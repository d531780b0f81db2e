"""Regression metrics (scikit-learn names and results).

    MSE  = mean (y - y_hat)^2          (the seed's cost J is MSE / 2)
    RMSE = sqrt(MSE)                   same unit as y
    MAE  = mean |y - y_hat|            less sensitive to outliers
    R^2  = 1 - SS_res / SS_tot,  SS_res = sum (y - y_hat)^2,  SS_tot = sum (y - mean y)^2
           1 is perfect, 0 is "always predict the mean", negative is worse than that.

Multi-output targets (n, k) are averaged over outputs (``multioutput='uniform_average'``),
returned per output (``'raw_values'``), or averaged with weights (an array; for R^2 also
``'variance_weighted'``: each output weighted by its variance).
"""

from __future__ import annotations

import numpy as np

from tinygrad_lite._arrays import as_numpy
from tinygrad_lite.errors import ShapeError

__all__ = ["mean_absolute_error", "mean_squared_error", "r2_score", "root_mean_squared_error"]


_AVERAGES = ("raw_values", "uniform_average")


def _check(y_true, y_pred, sample_weight, multioutput, op, averages=_AVERAGES):
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
    if isinstance(multioutput, str):
        if multioutput not in averages:
            names = ", ".join(repr(a) for a in averages)
            raise ValueError(f"{op}: multioutput must be one of {names} or an array of weights, "
                             f"got {multioutput!r}")
    else:
        weights = as_numpy(multioutput)
        if weights.shape != (y_true.shape[1],):
            raise ShapeError(f"{op}: multioutput weights need one value per output, got shape "
                             f"{weights.shape} for {y_true.shape[1]} outputs")
    return y_true, y_pred, w


def _reduce(per_output, multioutput, variance=None):
    """Combine per-output scores: as they are, their plain mean, or a weighted mean.

    ``'variance_weighted'`` (R^2 only) weights output j by its total sum of squares
    ``variance[j]``, so outputs that vary more count more; when every output is constant
    (all zero) it falls back to the plain mean, like scikit-learn.
    """
    if isinstance(multioutput, str):
        if multioutput == "raw_values":
            return per_output
        if multioutput == "variance_weighted" and np.any(variance != 0):
            with np.errstate(invalid="ignore"):    # 0 * (-inf) for constant outputs: nan
                return float(np.average(per_output, weights=variance))
        return float(np.mean(per_output))
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

    ``multioutput`` combines the R^2 of each output j: ``'uniform_average'`` (plain mean),
    ``'raw_values'`` (one score per output), ``'variance_weighted'`` (mean weighted by each
    output's SS_tot_j, i.e. by how much that output varies; equal to
    ``1 - sum_j SS_res_j / sum_j SS_tot_j`` when no output is constant), or an array of weights.

    Examples
    --------
    >>> r2_score([3, -0.5, 2, 7], [2.5, 0.0, 2, 8])
    0.9486081370449679
    >>> round(r2_score([[0.5, 1], [-1, 1], [7, -6]], [[0, 2], [-1, 2], [8, -5]],
    ...                multioutput="variance_weighted"), 4)
    0.9383
    """
    t, p, w = _check(y_true, y_pred, sample_weight, multioutput, "r2_score",
                     _AVERAGES + ("variance_weighted",))
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
    return _reduce(scores, multioutput, variance=den)
