"""Regression metrics equal scikit-learn's; constant targets; errors."""

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinygrad_lite import metrics as M
from tinygrad_lite.errors import ShapeError

skm = pytest.importorskip("sklearn.metrics")

floats = st.floats(-1e3, 1e3, allow_nan=False)


@st.composite
def pairs(draw):
    n = draw(st.integers(2, 20))
    shape = (n,) if draw(st.booleans()) else (n, draw(st.integers(1, 3)))
    return draw(hnp.arrays(np.float64, shape, elements=floats)), \
        draw(hnp.arrays(np.float64, shape, elements=floats))


@pytest.mark.parametrize("name", ["mean_squared_error", "root_mean_squared_error",
                                  "mean_absolute_error", "r2_score"])
@pytest.mark.parametrize("multioutput", ["uniform_average", "raw_values"])
@given(yy=pairs())
def test_matches_sklearn(name, multioutput, yy):
    t, p = yy
    np.testing.assert_allclose(getattr(M, name)(t, p, multioutput=multioutput),
                               getattr(skm, name)(t, p, multioutput=multioutput),
                               rtol=1e-9, atol=1e-9)


@given(yy=pairs(), w=st.lists(st.floats(0.1, 2.0), min_size=20, max_size=20))
def test_weighted_matches_sklearn(yy, w):
    t, p = yy
    w = np.array(w[:len(t)])
    for name in ("mean_squared_error", "mean_absolute_error", "r2_score"):
        np.testing.assert_allclose(getattr(M, name)(t, p, sample_weight=w),
                                   getattr(skm, name)(t, p, sample_weight=w), rtol=1e-9,
                                   atol=1e-9)


def test_r2_constant_target():
    assert M.r2_score([2.0, 2.0, 2.0], [2.0, 2.0, 2.0]) == 1.0
    assert M.r2_score([2.0, 2.0, 2.0], [1.0, 2.0, 3.0]) == 0.0
    assert M.r2_score([2.0, 2.0], [1.0, 2.0], force_finite=False) == -np.inf
    assert np.isnan(M.r2_score([2.0, 2.0], [2.0, 2.0], force_finite=False))


def test_errors_and_tensors():
    from tinygrad_lite.tensor import Tensor
    with pytest.raises(ShapeError, match="different shapes"):
        M.mean_squared_error([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        M.mean_absolute_error([1.0, np.nan], [1.0, 2.0])
    with pytest.raises(ValueError, match="empty"):
        M.mean_squared_error([], [])
    with pytest.raises(ValueError, match="single sample"):
        M.r2_score([1.0], [1.0])
    assert M.mean_squared_error(Tensor(np.array([1.0, 3.0])), [1.0, 1.0]) == 2.0


@st.composite
def multi_pairs(draw):
    """(y_true, y_pred, sample_weight or None) with 1-4 outputs; some outputs may be constant."""
    n, k = draw(st.integers(2, 15)), draw(st.integers(1, 4))
    elements = st.one_of(floats, st.sampled_from([0.0, 1.0, -2.5]))   # ties / constant columns
    t = draw(hnp.arrays(np.float64, (n, k), elements=elements))
    p = draw(hnp.arrays(np.float64, (n, k), elements=elements))
    if draw(st.booleans()):
        const = draw(st.integers(0, k - 1))
        t[:, const] = t[0, const]
        if draw(st.booleans()):
            p[:, const] = t[:, const]
    w = draw(st.none() | hnp.arrays(np.float64, n, elements=st.floats(0.1, 2.0)))
    return t, p, w


@pytest.mark.parametrize("multioutput", ["variance_weighted", "uniform_average", "raw_values"])
@pytest.mark.parametrize("force_finite", [True, False])
@given(data=multi_pairs())
def test_r2_multioutput_matches_sklearn(multioutput, force_finite, data):
    t, p, w = data
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = skm.r2_score(t, p, sample_weight=w, multioutput=multioutput,
                           force_finite=force_finite)
        got = M.r2_score(t, p, sample_weight=w, multioutput=multioutput,
                         force_finite=force_finite)
    assert np.shape(got) == np.shape(ref)
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9)


def test_r2_variance_weighted_by_hand():
    """Weights are the outputs' SS_tot: here 1 - (SS_res_0 + SS_res_1) / (SS_tot_0 + SS_tot_1)."""
    t = np.array([[0.5, 1.0], [-1.0, 1.0], [7.0, -6.0]])
    p = np.array([[0.0, 2.0], [-1.0, 2.0], [8.0, -5.0]])
    ss_res = ((t - p) ** 2).sum(axis=0)
    ss_tot = ((t - t.mean(axis=0)) ** 2).sum(axis=0)
    assert M.r2_score(t, p, multioutput="variance_weighted") == \
        pytest.approx(1 - ss_res.sum() / ss_tot.sum(), rel=1e-12)
    const = np.array([[3.0, 1.0], [3.0, 2.0], [3.0, 4.0]])   # output 0 constant: weight 0
    pred = np.array([[2.0, 1.5], [3.0, 2.0], [3.0, 3.0]])
    assert M.r2_score(const, pred, multioutput="variance_weighted") == \
        pytest.approx(M.r2_score(const[:, 1], pred[:, 1]), rel=1e-12)
    all_const = np.full((3, 2), 2.0)   # every SS_tot is 0: plain mean of the forced scores
    assert M.r2_score(all_const, pred, multioutput="variance_weighted") == 0.0


def test_multioutput_errors():
    t = np.zeros((4, 2))
    with pytest.raises(ValueError, match=r"^mean_squared_error: multioutput must be one of "
                                         r"'raw_values', 'uniform_average' or an array of "
                                         r"weights, got 'variance_weighted'"):
        M.mean_squared_error(t, t, multioutput="variance_weighted")
    with pytest.raises(ValueError, match="variance_weighted.*got 'bogus'"):
        M.r2_score(t, t, multioutput="bogus")
    with pytest.raises(ShapeError, match=r"one value per output, got shape \(3,\) for 2 outputs"):
        M.r2_score(t, t, multioutput=[1.0, 2.0, 3.0])
    assert M.mean_absolute_error([[0, 0], [0, 0]], [[1, 3], [1, 3]], multioutput=[3, 1]) == 1.5
