"""Classification metrics equal scikit-learn's on generated labels, plus edge cases and errors."""

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_lite import metrics as M
from tinygrad_lite.errors import ShapeError

skm = pytest.importorskip("sklearn.metrics")


@st.composite
def label_pairs(draw, max_classes=5):
    k = draw(st.integers(1, max_classes))
    n = draw(st.integers(1, 30))
    y_true = draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n))
    y_pred = draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n))
    return np.array(y_true), np.array(y_pred)


def _quiet(fn, *a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **kw)


def _same(a, b):
    if a is None or b is None:
        assert a is None and b is None
    else:
        np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float),
                                   rtol=1e-12, atol=1e-12)


@given(label_pairs())
def test_accuracy_matches_sklearn(yy):
    y_true, y_pred = yy
    assert M.accuracy_score(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert M.accuracy_score(y_true, y_pred, normalize=False) == \
        skm.accuracy_score(y_true, y_pred, normalize=False)


@pytest.mark.parametrize("average", [None, "micro", "macro", "weighted"])
@pytest.mark.parametrize("zero_division", [0, 1, np.nan, "warn"])
@given(yy=label_pairs(), beta=st.sampled_from([0.5, 1.0, 2.0]))
def test_prfs_matches_sklearn(average, zero_division, yy, beta):
    y_true, y_pred = yy
    ours = _quiet(M.precision_recall_fscore_support, y_true, y_pred, beta=beta, average=average,
                  zero_division=zero_division)
    ref = _quiet(skm.precision_recall_fscore_support, y_true, y_pred, beta=beta,
                 average=average, zero_division=zero_division)
    for a, b in zip(ours, ref):
        _same(a, b)


@pytest.mark.parametrize("fn", ["precision_score", "recall_score", "f1_score"])
@pytest.mark.parametrize("average", ["binary", "macro", "micro", "weighted"])
@given(yy=label_pairs(max_classes=2))
def test_binary_scores_match_sklearn(fn, average, yy):
    y_true, y_pred = yy
    ours = _quiet(getattr(M, fn), y_true, y_pred, average=average, zero_division=0)
    ref = _quiet(getattr(skm, fn), y_true, y_pred, average=average, zero_division=0)
    _same(ours, ref)


@given(yy=label_pairs(), labels=st.lists(st.integers(0, 6), min_size=1, max_size=4, unique=True))
def test_prfs_with_labels_matches_sklearn(yy, labels):
    y_true, y_pred = yy
    for average in (None, "macro", "micro"):
        ours = _quiet(M.precision_recall_fscore_support, y_true, y_pred, labels=labels,
                      average=average, zero_division=0)
        ref = _quiet(skm.precision_recall_fscore_support, y_true, y_pred, labels=labels,
                     average=average, zero_division=0)
        for a, b in zip(ours, ref):
            _same(a, b)


@given(yy=label_pairs(), w=st.lists(st.floats(0.1, 3.0), min_size=30, max_size=30))
def test_sample_weight_matches_sklearn(yy, w):
    y_true, y_pred = yy
    w = np.array(w[:len(y_true)])
    _same(_quiet(M.f1_score, y_true, y_pred, average="weighted", sample_weight=w),
          _quiet(skm.f1_score, y_true, y_pred, average="weighted", sample_weight=w))
    _same(M.accuracy_score(y_true, y_pred, sample_weight=w),
          skm.accuracy_score(y_true, y_pred, sample_weight=w))
    _same(M.confusion_matrix(y_true, y_pred, sample_weight=w),
          _quiet(skm.confusion_matrix, y_true, y_pred, sample_weight=w))


@pytest.mark.parametrize("normalize", [None, "true", "pred", "all"])
@given(yy=label_pairs())
def test_confusion_matrix_matches_sklearn(normalize, yy):
    y_true, y_pred = yy
    ours = M.confusion_matrix(y_true, y_pred, normalize=normalize)
    ref = _quiet(skm.confusion_matrix, y_true, y_pred, normalize=normalize)
    assert ours.dtype.kind == ref.dtype.kind
    np.testing.assert_allclose(ours, ref)


def test_confusion_matrix_labels_order_and_subset():
    y_true, y_pred = [0, 1, 2, 2, 3], [0, 2, 2, 1, 3]
    for labels in ([2, 0, 1], [3, 2], [5, 0]):
        np.testing.assert_array_equal(M.confusion_matrix(y_true, y_pred, labels=labels),
                                      skm.confusion_matrix(y_true, y_pred, labels=labels))
    with pytest.raises(ValueError, match="none of the given labels"):
        M.confusion_matrix(y_true, y_pred, labels=[7, 8])


@given(yy=label_pairs(), digits=st.integers(1, 4))
def test_classification_report_matches_sklearn(yy, digits):
    y_true, y_pred = yy
    if (y_true == y_pred).any():   # with no hit at all scikit-learn prints supports as floats
        assert _quiet(M.classification_report, y_true, y_pred, digits=digits) == \
            _quiet(skm.classification_report, y_true, y_pred, digits=digits)
    ours = _quiet(M.classification_report, y_true, y_pred, output_dict=True, zero_division=0)
    ref = _quiet(skm.classification_report, y_true, y_pred, output_dict=True, zero_division=0)
    assert ours.keys() == ref.keys()
    for k in ref:
        if isinstance(ref[k], dict):
            assert ours[k].keys() == ref[k].keys()
            for m in ref[k]:
                assert ours[k][m] == pytest.approx(ref[k][m])
        else:
            assert ours[k] == pytest.approx(ref[k])


def test_classification_report_names_and_strings():
    y_true = ["cat", "dog", "dog", "bird"]
    y_pred = ["cat", "dog", "cat", "bird"]
    assert M.classification_report(y_true, y_pred) == skm.classification_report(y_true, y_pred)
    names = ["zero", "one", "two"]
    assert M.classification_report([0, 1, 2], [0, 2, 2], target_names=names, zero_division=0) \
        == skm.classification_report([0, 1, 2], [0, 2, 2], target_names=names, zero_division=0)
    with pytest.raises(ValueError, match="target_names"):
        M.classification_report([0, 1, 2], [0, 2, 2], target_names=["a", "b"])
    # labels that exclude a present class: micro avg instead of accuracy
    assert _quiet(M.classification_report, [0, 1, 2], [0, 2, 2], labels=[0, 1]) == \
        _quiet(skm.classification_report, [0, 1, 2], [0, 2, 2], labels=[0, 1])


def test_class_never_predicted_zero_division():
    y_true, y_pred = [0, 1, 2, 2], [0, 0, 2, 2]       # class 1 never predicted
    with pytest.warns(M.UndefinedMetricWarning, match="precision"):
        p = M.precision_score(y_true, y_pred, average=None)
    np.testing.assert_array_equal(p, [0.5, 0.0, 1.0])
    np.testing.assert_array_equal(
        M.precision_score(y_true, y_pred, average=None, zero_division=1), [0.5, 1.0, 1.0])
    p = M.precision_score(y_true, y_pred, average=None, zero_division=np.nan)
    assert np.isnan(p[1])
    # nan classes are left out of the average
    assert M.precision_score(y_true, y_pred, average="macro", zero_division=np.nan) == 0.75
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        M.precision_score(y_true, y_pred, average=None, zero_division=0)   # no warning


def test_binary_pos_label_and_errors():
    y_true, y_pred = ["a", "b", "b"], ["a", "b", "a"]
    assert M.recall_score(y_true, y_pred, pos_label="b") == 0.5
    with pytest.raises(ValueError, match="pos_label"):
        M.recall_score(y_true, y_pred)
    with pytest.raises(ValueError, match="multiclass but average='binary'"):
        M.f1_score([0, 1, 2], [0, 1, 1])
    with pytest.raises(ValueError, match="average must be"):
        M.f1_score([0, 1], [0, 1], average="mean")
    with pytest.raises(ValueError, match="zero_division"):
        M.f1_score([0, 1], [0, 1], zero_division="skip")


def test_input_errors_are_clear():
    with pytest.raises(ShapeError, match="different lengths, got 3 and 2"):
        M.accuracy_score([0, 1, 1], [0, 1])
    with pytest.raises(ShapeError, match=r"argmax\(axis=1\)"):
        M.accuracy_score([0, 1], np.array([[0.9, 0.1], [0.2, 0.8]]))
    with pytest.raises(ValueError, match="continuous"):
        M.accuracy_score([0, 1], [0.3, 0.9])
    with pytest.raises(ValueError, match="empty"):
        M.f1_score([], [], average="macro")
    with pytest.raises(TypeError, match="mix string and number"):
        M.accuracy_score(["a", "b"], [0, 1])


def test_accepts_lists_column_vectors_and_tensors():
    from tinygrad_lite.tensor import Tensor
    y_true, y_pred = np.array([0, 1, 2, 2]), np.array([0, 2, 2, 2])
    expected = M.accuracy_score(y_true, y_pred)
    assert M.accuracy_score(y_true.tolist(), y_pred.tolist()) == expected
    assert M.accuracy_score(y_true[:, None], y_pred[:, None]) == expected
    assert M.accuracy_score(Tensor(y_true), Tensor(y_pred)) == expected
    np.testing.assert_array_equal(M.confusion_matrix(Tensor(y_true), y_pred),
                                  M.confusion_matrix(y_true, y_pred))


@st.composite
def scores(draw, min_classes=2):
    k = draw(st.integers(min_classes, 5))
    n = draw(st.integers(k, 25))
    y = np.array(draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
    y[:k] = np.arange(k)               # every class present (scikit-learn needs that)
    s = np.array(draw(st.lists(st.floats(-5, 5), min_size=n * k, max_size=n * k))).reshape(n, k)
    return y, s


@given(ys=scores(min_classes=3), k=st.integers(1, 4))
def test_top_k_accuracy_matches_sklearn(ys, k):
    # (scikit-learn refuses 2-column scores for binary y_true; we treat them as multiclass)
    y, s = ys
    assert _quiet(M.top_k_accuracy_score, y, s, k=k) == \
        pytest.approx(_quiet(skm.top_k_accuracy_score, y, s, k=k))


def test_top_k_binary_and_missing_classes():
    y, s = np.array([0, 1, 1, 0]), np.array([0.2, 0.7, 0.4, 0.9])
    assert M.top_k_accuracy_score(y, s, k=1) == skm.top_k_accuracy_score(y, s, k=1)
    two_cols = np.stack([1 - s, s], axis=1)
    assert M.top_k_accuracy_score(y, two_cols, k=1) == M.accuracy_score(y, two_cols.argmax(1))
    # a batch where class 2 never occurs still works with integer labels (beyond scikit-learn)
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]])
    assert M.top_k_accuracy_score([0, 1], probs, k=1) == 1.0
    with pytest.raises(ValueError, match="score columns"):
        M.top_k_accuracy_score(["a", "b"], probs, k=1)


@given(ys=scores())
def test_log_loss_matches_sklearn(ys):
    y, s = ys
    p = np.exp(s - s.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    assert M.log_loss(y, p) == pytest.approx(skm.log_loss(y, p), rel=1e-10)
    assert M.log_loss(y, p, normalize=False) == \
        pytest.approx(skm.log_loss(y, p, normalize=False), rel=1e-10)


def test_log_loss_binary_clipping_and_errors():
    y, p = [0, 1, 1], np.array([0.0, 1.0, 0.3])
    assert M.log_loss(y, p) == pytest.approx(skm.log_loss(y, p))
    assert np.isfinite(M.log_loss([0, 1], [1.0, 0.0]))
    with pytest.raises(ValueError, match="softmax"):
        M.log_loss([0, 1], [[2.0, -1.0], [0.5, 0.5]])
    with pytest.warns(UserWarning, match="sum to one"):
        M.log_loss([0, 1], [[0.5, 0.1], [0.2, 0.3]])
