"""Classification metrics with scikit-learn's names, arguments and results.

For one class c, counting samples:  tp = true c and predicted c,  fp = predicted c but not c,
fn = true c but predicted something else.

    precision = tp / (tp + fp)        of what we called c, how much was c
    recall    = tp / (tp + fn)        of the real c, how much we found
    F_beta    = (1 + b^2) tp / ((1 + b^2) tp + b^2 fn + fp)     (F1: b = 1, harmonic mean)

Averages over classes: ``'macro'`` (plain mean: every class counts the same), ``'weighted'``
(mean weighted by support, the number of true samples), ``'micro'`` (pool tp/fp/fn of all classes
first; equals accuracy for single-label data), ``'binary'`` (only ``pos_label``), ``None`` (one
value per class). A 0/0 (a class never predicted, or absent) is ill-defined: it becomes
``zero_division`` (0, 1 or nan; ``'warn'`` means 0 plus an ``UndefinedMetricWarning``).

Inputs may be lists, NumPy arrays or tinygrad_lite Tensors.
"""

from __future__ import annotations

import warnings

import numpy as np

from tinygrad_lite._arrays import as_numpy
from tinygrad_lite.errors import ShapeError

__all__ = [
    "UndefinedMetricWarning",
    "accuracy_score",
    "classification_report",
    "confusion_matrix",
    "f1_score",
    "fbeta_score",
    "log_loss",
    "precision_recall_fscore_support",
    "precision_score",
    "recall_score",
    "top_k_accuracy_score",
]


class UndefinedMetricWarning(UserWarning):
    """A metric is 0/0 for some class (never predicted, or no true sample)."""


# ------------------------------------------------------------------ helpers ---

def _labels_1d(y, name, op):
    y = as_numpy(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.ravel()
    if y.ndim != 1:
        hint = f"; for probabilities or one-hot rows pass {name}.argmax(axis=1)" \
            if y.ndim == 2 else ""
        raise ShapeError(f"{op}: {name} must be a 1-D array of class labels, got shape "
                         f"{y.shape}{hint}")
    if y.dtype.kind == "f" and y.size and not np.all(np.isfinite(y)):
        raise ValueError(f"{op}: {name} contains NaN or Inf, got {int((~np.isfinite(y)).sum())} "
                         "non-finite values")
    if y.dtype.kind == "f" and y.size and np.any(y != np.round(y)):
        raise ValueError(f"{op}: {name} looks continuous (non-integer floats), got e.g. "
                         f"{y[y != np.round(y)][0]}; classification metrics need class labels "
                         "(threshold or argmax your scores first)")
    return y


def _check_targets(y_true, y_pred, op, sample_weight=None):
    """(y_type, present_labels, y_true, y_pred, sample_weight) with lengths and kinds checked."""
    y_true = _labels_1d(y_true, "y_true", op)
    y_pred = _labels_1d(y_pred, "y_pred", op)
    if len(y_true) != len(y_pred):
        raise ShapeError(f"{op}: y_true and y_pred have different lengths, got {len(y_true)} and "
                         f"{len(y_pred)}")
    if len(y_true) == 0:
        raise ValueError(f"{op}: y_true and y_pred are empty, got 0 samples")
    if (y_true.dtype.kind in "US") != (y_pred.dtype.kind in "US"):
        raise TypeError(f"{op}: y_true and y_pred mix string and number labels, got "
                        f"{y_true.dtype} and {y_pred.dtype}")
    if sample_weight is not None:
        sample_weight = as_numpy(sample_weight).astype(np.float64).ravel()
        if len(sample_weight) != len(y_true):
            raise ShapeError(f"{op}: sample_weight has a different length, got "
                             f"{len(sample_weight)} for {len(y_true)} samples")
    present = np.union1d(y_true, y_pred)
    return ("binary" if len(present) <= 2 else "multiclass"), present, y_true, y_pred, \
        sample_weight


def _check_zero_division(zero_division, op):
    if isinstance(zero_division, str):
        if zero_division != "warn":
            raise ValueError(f"{op}: zero_division must be 'warn', 0, 1 or np.nan, got "
                             f"{zero_division!r}")
        return 0.0
    if not (zero_division in (0, 1) or np.isnan(zero_division)):
        raise ValueError(f"{op}: zero_division must be 'warn', 0, 1 or np.nan, got "
                         f"{zero_division!r}")
    return float(zero_division)


def _divide(num, den, zero_value):
    mask = den == 0
    out = np.asarray(num, dtype=np.float64) / np.where(mask, 1.0, den)
    out[mask] = zero_value
    return out, mask


def _nanaverage(a, weights=None):
    """Weighted mean ignoring NaN (a class whose score is nan by zero_division=np.nan)."""
    if a.shape[0] == 0:
        return np.nan
    mask = np.isnan(a)
    if mask.all():
        return np.nan
    if weights is None:
        return float(np.mean(a[~mask]))
    w = np.asarray(weights, dtype=np.float64)[~mask]
    return float(np.average(a[~mask], weights=w)) if w.sum() != 0 else float(np.mean(a[~mask]))


def _class_counts(y_true, y_pred, labels, present, sample_weight):
    """tp, predicted and true counts per label in ``labels`` (labels absent from the data: 0)."""
    universe = np.union1d(present, labels)
    t = np.searchsorted(universe, y_true)
    p = np.searchsorted(universe, y_pred)
    w = np.ones(len(t)) if sample_weight is None else sample_weight
    m = len(universe)
    tp = np.bincount(t[t == p], weights=w[t == p], minlength=m)
    pred = np.bincount(p, weights=w, minlength=m)
    true = np.bincount(t, weights=w, minlength=m)
    idx = np.searchsorted(universe, labels)
    if sample_weight is None:
        tp, pred, true = tp.astype(np.int64), pred.astype(np.int64), true.astype(np.int64)
    return tp[idx], pred[idx], true[idx]


# ------------------------------------------------------------------ metrics ---

def accuracy_score(y_true, y_pred, normalize=True, sample_weight=None):
    """Fraction (``normalize=True``) or number of samples whose prediction equals the label.

    Examples
    --------
    >>> accuracy_score([0, 1, 2, 2], [0, 2, 2, 2])
    0.75
    """
    _, _, y_true, y_pred, w = _check_targets(y_true, y_pred, "accuracy_score", sample_weight)
    hits = (y_true == y_pred).astype(np.float64)
    if normalize:
        return float(np.average(hits, weights=w))
    return float(hits.sum() if w is None else (hits * w).sum())


def precision_recall_fscore_support(y_true, y_pred, *, beta=1.0, labels=None, pos_label=1,
                                    average=None, warn_for=("precision", "recall", "f-score"),
                                    sample_weight=None, zero_division="warn"):
    """Precision, recall, F-beta and support (true count) per class or averaged.

    Parameters follow scikit-learn. With ``average=None`` each value is an array over ``labels``
    (default: the sorted union of labels in y_true and y_pred) and support is the count per
    class; otherwise they are floats and support is None.

    Examples
    --------
    >>> p, r, f, s = precision_recall_fscore_support([0, 1, 1, 2], [0, 1, 2, 2])
    >>> p.tolist(), r.tolist(), s.tolist()
    ([1.0, 1.0, 0.5], [1.0, 0.5, 1.0], [1, 2, 1])
    """
    op = "precision_recall_fscore_support"
    zero_value = _check_zero_division(zero_division, op)
    if average not in (None, "binary", "micro", "macro", "weighted"):
        raise ValueError(f"{op}: average must be one of None, 'binary', 'micro', 'macro', "
                         f"'weighted', got {average!r}")
    if beta < 0:
        raise ValueError(f"{op}: beta must be >= 0, got {beta}")
    y_type, present, y_true, y_pred, w = _check_targets(y_true, y_pred, op, sample_weight)
    if average == "binary":
        if y_type != "binary":
            raise ValueError(f"{op}: target is multiclass but average='binary', got labels "
                             f"{present.tolist()[:10]}; choose average='macro', 'micro', "
                             "'weighted' or None")
        if pos_label not in present.tolist() and len(present) >= 2:
            raise ValueError(f"{op}: pos_label={pos_label!r} is not a valid label, got labels "
                             f"{present.tolist()}")
        labels = np.asarray([pos_label])
    elif labels is None:
        labels = present
    else:
        labels = as_numpy(labels)
        if labels.size == 0:
            raise ValueError(f"{op}: labels must hold at least one label, got []")
    tp, pred, true = _class_counts(y_true, y_pred, labels, present, w)
    if average == "micro":
        tp, pred, true = tp.sum(keepdims=True), pred.sum(keepdims=True), true.sum(keepdims=True)

    precision, m_p = _divide(tp, pred, zero_value)
    recall, m_r = _divide(tp, true, zero_value)
    if np.isposinf(beta):
        f, m_f = recall, m_r
    elif beta == 0:
        f, m_f = precision, m_p
    else:
        b2 = beta * beta
        f, m_f = _divide((1 + b2) * tp, b2 * true + pred, zero_value)
    if zero_division == "warn":
        bad = [name for name, m in (("precision", m_p), ("recall", m_r), ("f-score", m_f))
               if name in warn_for and m.any()]
        if bad:
            which = labels[np.flatnonzero(m_p | m_r | m_f)].tolist() if average != "micro" \
                else "all"
            warnings.warn(f"{op}: {', '.join(bad)} ill-defined and set to 0.0 for labels "
                          f"{which} (no predicted or no true samples); use zero_division to "
                          "control this", UndefinedMetricWarning, stacklevel=3)
    if average is None:
        return precision, recall, f, true
    weights = true if average == "weighted" else None
    return _nanaverage(precision, weights), _nanaverage(recall, weights), \
        _nanaverage(f, weights), None


def fbeta_score(y_true, y_pred, *, beta, labels=None, pos_label=1, average="binary",
                sample_weight=None, zero_division="warn"):
    """F-beta: ``(1 + b^2) P R / (b^2 P + R)``; beta > 1 favours recall, beta < 1 precision.

    Examples
    --------
    >>> round(fbeta_score([0, 1, 1, 0], [0, 1, 0, 0], beta=2.0), 4)
    0.5556
    """
    _, _, f, _ = precision_recall_fscore_support(
        y_true, y_pred, beta=beta, labels=labels, pos_label=pos_label, average=average,
        warn_for=("f-score",), sample_weight=sample_weight, zero_division=zero_division)
    return f


def f1_score(y_true, y_pred, *, labels=None, pos_label=1, average="binary", sample_weight=None,
             zero_division="warn"):
    """F1, the harmonic mean of precision and recall: ``2 P R / (P + R)``.

    Examples
    --------
    >>> f1_score([0, 1, 2, 2], [0, 2, 2, 2], average="macro")
    0.6
    """
    return fbeta_score(y_true, y_pred, beta=1.0, labels=labels, pos_label=pos_label,
                       average=average, sample_weight=sample_weight, zero_division=zero_division)


def precision_score(y_true, y_pred, *, labels=None, pos_label=1, average="binary",
                    sample_weight=None, zero_division="warn"):
    """Precision ``tp / (tp + fp)``: of the samples predicted as a class, the fraction right.

    Examples
    --------
    >>> precision_score([0, 1, 1, 0], [1, 1, 1, 0])
    0.6666666666666666
    """
    p, _, _, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, pos_label=pos_label, average=average,
        warn_for=("precision",), sample_weight=sample_weight, zero_division=zero_division)
    return p


def recall_score(y_true, y_pred, *, labels=None, pos_label=1, average="binary",
                 sample_weight=None, zero_division="warn"):
    """Recall ``tp / (tp + fn)``: of the samples of a class, the fraction found.

    Examples
    --------
    >>> recall_score([0, 1, 1, 0], [1, 1, 0, 0])
    0.5
    """
    _, r, _, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, pos_label=pos_label, average=average,
        warn_for=("recall",), sample_weight=sample_weight, zero_division=zero_division)
    return r


def confusion_matrix(y_true, y_pred, *, labels=None, sample_weight=None, normalize=None):
    """``C[i, j]`` = number of samples of true class ``labels[i]`` predicted as ``labels[j]``.

    The diagonal holds the correct predictions. ``normalize='true'`` divides each row by its sum
    (row = recall per class), ``'pred'`` each column (diagonal = precision), ``'all'`` everything;
    an empty row or column stays 0.

    Examples
    --------
    >>> confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2]).tolist()
    [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
    """
    op = "confusion_matrix"
    if normalize not in (None, "true", "pred", "all"):
        raise ValueError(f"{op}: normalize must be None, 'true', 'pred' or 'all', got "
                         f"{normalize!r}")
    _, present, y_true, y_pred, w = _check_targets(y_true, y_pred, op, sample_weight)
    if labels is None:
        labels = present
    else:
        labels = as_numpy(labels)
        if labels.size == 0:
            raise ValueError(f"{op}: labels must hold at least one label, got []")
        if not np.isin(y_true, labels).any():
            raise ValueError(f"{op}: none of the given labels is in y_true, got labels "
                             f"{labels.tolist()[:10]}")
    n = len(labels)
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    ti = np.searchsorted(sorted_labels, y_true).clip(0, n - 1)
    pi = np.searchsorted(sorted_labels, y_pred).clip(0, n - 1)
    keep = (sorted_labels[ti] == y_true) & (sorted_labels[pi] == y_pred)
    ti, pi = order[ti[keep]], order[pi[keep]]
    if w is None:
        weights, dtype = np.ones(len(ti)), np.int64
    else:
        weights = w[keep]
        raw = as_numpy(sample_weight)
        dtype = np.int64 if raw.dtype.kind in "iub" else np.float64
    cm = np.bincount(ti * n + pi, weights=weights, minlength=n * n).reshape(n, n).astype(dtype)
    if normalize is None:
        return cm
    with np.errstate(all="ignore"):
        if normalize == "true":
            cm = cm / cm.sum(axis=1, keepdims=True)
        elif normalize == "pred":
            cm = cm / cm.sum(axis=0, keepdims=True)
        else:
            cm = cm / cm.sum()
    return np.nan_to_num(cm)


def classification_report(y_true, y_pred, *, labels=None, target_names=None, sample_weight=None,
                          digits=2, output_dict=False, zero_division="warn"):
    """Per-class precision, recall, F1 and support, plus accuracy and macro/weighted averages.

    The text layout and the dict keys are scikit-learn's (``output_dict=True`` gives
    ``{'0': {'precision': ..., ...}, 'accuracy': ..., 'macro avg': {...}, ...}``).

    Examples
    --------
    >>> print(classification_report([0, 1, 1], [0, 1, 0]))    # doctest: +NORMALIZE_WHITESPACE
                  precision    recall  f1-score   support
    <BLANKLINE>
               0       0.50      1.00      0.67         1
               1       1.00      0.50      0.67         2
    <BLANKLINE>
        accuracy                           0.67         3
       macro avg       0.75      0.75      0.67         3
    weighted avg       0.83      0.67      0.67         3
    <BLANKLINE>
    """
    op = "classification_report"
    _, present, y_true, y_pred, _ = _check_targets(y_true, y_pred, op, sample_weight)
    labels_given = labels is not None
    labels = present if labels is None else as_numpy(labels)
    micro_is_accuracy = not labels_given or set(labels.tolist()) >= set(present.tolist())
    if target_names is not None and len(labels) != len(target_names):
        if labels_given:
            warnings.warn(f"{op}: labels size, {len(labels)}, does not match size of "
                          f"target_names, {len(target_names)}", UserWarning, stacklevel=2)
        else:
            raise ValueError(f"{op}: number of classes does not match target_names, got "
                             f"{len(labels)} classes and {len(target_names)} names; pass "
                             "labels= to choose the classes")
    if target_names is None:
        target_names = [f"{lab}" for lab in labels.tolist()]
    target_names = [str(t) for t in target_names]
    headers = ["precision", "recall", "f1-score", "support"]
    p, r, f1, s = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, sample_weight=sample_weight,
        zero_division=zero_division)
    rows = list(zip(target_names, p, r, f1, s))
    if output_dict:
        report = {name: dict(zip(headers, [float(v) for v in vals])) for name, *vals in rows}
    else:
        width = max(max(len(n) for n in target_names), len("weighted avg"), digits)
        text = ("{:>{width}s} " + " {:>9}" * 4).format("", *headers, width=width) + "\n\n"
        row_fmt = "{:>{width}s} " + " {:>9.{digits}f}" * 3 + " {:>9}\n"
        for row in rows:
            text += row_fmt.format(*row, width=width, digits=digits)
        text += "\n"
    for average in ("micro", "macro", "weighted"):
        heading = "accuracy" if average == "micro" and micro_is_accuracy else f"{average} avg"
        ap, ar, af, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=average, sample_weight=sample_weight,
            zero_division=zero_division)
        total = np.sum(s)
        if output_dict:
            report[heading] = (float(ap) if heading == "accuracy" else
                               dict(zip(headers, [float(ap), float(ar), float(af), float(total)])))
        elif heading == "accuracy":
            fmt = "{:>{width}s} " + " {:>9.{digits}}" * 2 + " {:>9.{digits}f}" + " {:>9}\n"
            text += fmt.format(heading, "", "", af, total, width=width, digits=digits)
        else:
            text += row_fmt.format(heading, ap, ar, af, total, width=width, digits=digits)
    return report if output_dict else text


def _classes_for_scores(y_true, n_cols, labels, op):
    """Class labels that the columns of a score matrix stand for, in order."""
    if labels is not None:
        classes = as_numpy(labels)
        if len(np.unique(classes)) != len(classes):
            raise ValueError(f"{op}: labels must be unique, got {classes.tolist()[:10]}")
        if not np.array_equal(np.sort(classes), classes):
            raise ValueError(f"{op}: labels must be sorted, got {classes.tolist()[:10]}")
    else:
        classes = np.unique(y_true)
        # beyond scikit-learn: integer labels 0..k-1 need not all occur (a small test batch)
        if len(classes) != n_cols and y_true.dtype.kind in "iu" and classes.min() >= 0 and \
                classes.max() < n_cols:
            classes = np.arange(n_cols)
    if len(classes) != n_cols:
        raise ValueError(f"{op}: number of classes in y_true ({len(classes)}) differs from the "
                         f"number of score columns, got {n_cols}; pass labels= with all classes")
    missing = np.setdiff1d(y_true, classes)
    if missing.size:
        raise ValueError(f"{op}: y_true contains labels not in labels, got "
                         f"{missing.tolist()[:10]}")
    return classes


def top_k_accuracy_score(y_true, y_score, *, k=2, normalize=True, sample_weight=None,
                         labels=None):
    """Fraction of samples whose true class is among the ``k`` highest scores.

    ``y_score`` is (n, n_classes) (probabilities or logits), or (n,) scores of the positive class
    for binary problems. Ties are broken like scikit-learn (the later column ranks first).

    Examples
    --------
    >>> top_k_accuracy_score([0, 1, 2], [[.5, .3, .2], [.1, .2, .7], [.6, .3, .1]], k=2)
    0.6666666666666666
    """
    op = "top_k_accuracy_score"
    y_true = _labels_1d(y_true, "y_true", op)
    y_score = as_numpy(y_score).astype(np.float64)
    if len(y_true) != len(y_score):
        raise ShapeError(f"{op}: y_true and y_score have different lengths, got {len(y_true)} "
                         f"and {len(y_score)}")
    if len(y_true) == 0:
        raise ValueError(f"{op}: y_true is empty, got 0 samples")
    if y_score.ndim == 2 and y_score.shape[1] == 1:
        y_score = y_score.ravel()
    n_cols = 2 if y_score.ndim == 1 else y_score.shape[1]
    if y_score.ndim not in (1, 2):
        raise ShapeError(f"{op}: y_score must be (n_samples, n_classes), got {y_score.shape}")
    classes = _classes_for_scores(y_true, n_cols, labels, op)
    if k >= len(classes):
        warnings.warn(f"{op}: k ({k}) >= n_classes ({len(classes)}) gives a perfect score",
                      UndefinedMetricWarning, stacklevel=2)
    t = np.searchsorted(classes, y_true)
    if y_score.ndim == 1:
        if k == 1:
            threshold = 0.5 if y_score.min() >= 0 and y_score.max() <= 1 else 0
            hits = (y_score > threshold).astype(np.int64) == t
        else:
            hits = np.ones(len(t), dtype=bool)
    else:
        ranked = np.argsort(y_score, axis=1, kind="mergesort")[:, ::-1]
        hits = (ranked[:, :k] == t[:, None]).any(axis=1)
    w = None if sample_weight is None else as_numpy(sample_weight).astype(np.float64)
    if normalize:
        return float(np.average(hits, weights=w))
    return float(hits.sum() if w is None else (hits * w).sum())


def log_loss(y_true, y_proba, *, normalize=True, sample_weight=None, labels=None):
    """Cross-entropy of predicted probabilities: ``-mean_i sum_c [y_i = c] log p_ic``.

    ``y_proba`` is (n, n_classes) with rows summing to 1, or (n,) probabilities of the positive
    (larger) class. Probabilities are clipped to ``[eps, 1 - eps]`` (eps of their dtype) so a
    confident mistake costs a large but finite loss.

    Examples
    --------
    >>> round(log_loss([0, 1], [[0.9, 0.1], [0.2, 0.8]]), 4)
    0.1643
    """
    op = "log_loss"
    y_true = _labels_1d(y_true, "y_true", op)
    p = as_numpy(y_proba)
    p = p.astype(p.dtype if p.dtype.kind == "f" else np.float64)
    if len(y_true) != len(p):
        raise ShapeError(f"{op}: y_true and y_proba have different lengths, got {len(y_true)} "
                         f"and {len(p)}")
    if len(y_true) == 0:
        raise ValueError(f"{op}: y_true is empty, got 0 samples")
    if not np.all(np.isfinite(p)):
        raise ValueError(f"{op}: y_proba contains NaN or Inf, got "
                         f"{int((~np.isfinite(p)).sum())} non-finite values")
    if p.max() > 1 or p.min() < 0:
        raise ValueError(f"{op}: y_proba must be probabilities in [0, 1], got min {p.min()} and "
                         f"max {p.max()}; apply softmax/sigmoid to logits first")
    if p.ndim == 1:
        p = p[:, None]
    if p.ndim != 2:
        raise ShapeError(f"{op}: y_proba must be (n_samples, n_classes), got {p.shape}")
    if p.shape[1] == 1:
        p = np.concatenate([1 - p, p], axis=1)
    classes = _classes_for_scores(y_true, p.shape[1], labels, op)
    if len(classes) < 2:
        raise ValueError(f"{op}: needs at least two classes, got {classes.tolist()}; pass "
                         "labels=")
    eps = np.finfo(p.dtype).eps
    if not np.allclose(p.sum(axis=1), 1, rtol=np.sqrt(eps), atol=0):
        warnings.warn(f"{op}: the y_proba rows do not sum to one; make sure to pass "
                      "probabilities", UserWarning, stacklevel=2)
    p = np.clip(p, eps, 1 - eps)
    t = np.searchsorted(classes, y_true)
    loss = -np.log(p[np.arange(len(t)), t])
    w = None if sample_weight is None else as_numpy(sample_weight).astype(np.float64)
    if normalize:
        return float(np.average(loss, weights=w))
    return float(loss.sum() if w is None else (loss * w).sum())
