"""Regression metrics equal scikit-learn's; constant targets; errors."""

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
