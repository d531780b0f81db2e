"""Scalers, imputer and encoders equal scikit-learn's; clean(); state_dict round trips; errors."""

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinygrad_lite.data import preprocessing as P
from tinygrad_lite.errors import NotFittedError, ShapeError

skp = pytest.importorskip("sklearn.preprocessing")
ski = pytest.importorskip("sklearn.impute")


@st.composite
def matrices(draw, nan=False):
    n, d = draw(st.integers(1, 12)), draw(st.integers(1, 4))
    elements = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False)
    X = draw(hnp.arrays(np.float64, (n, d), elements=elements))
    if draw(st.booleans()):                       # a constant feature
        X[:, draw(st.integers(0, d - 1))] = draw(elements)
    if nan:
        mask = draw(hnp.arrays(np.bool_, (n, d)))
        X[mask] = np.nan
    return X


@given(X=matrices(), lo=st.integers(-3, 0), width=st.integers(1, 4))
def test_minmax_matches_sklearn(X, lo, width):
    rng = (lo, lo + width)
    ours, ref = P.MinMaxScaler(rng).fit(X), skp.MinMaxScaler(feature_range=rng).fit(X)
    for attr in ("data_min_", "data_max_", "data_range_", "scale_", "min_"):
        np.testing.assert_allclose(getattr(ours, attr), getattr(ref, attr), rtol=1e-12)
    np.testing.assert_allclose(ours.transform(X), ref.transform(X), rtol=1e-9, atol=1e-9)
    Z = ours.transform(X)
    np.testing.assert_allclose(ours.inverse_transform(Z), ref.inverse_transform(Z), rtol=1e-9,
                               atol=1e-6)


@given(X=matrices())
def test_standard_matches_sklearn(X):
    ours, ref = P.StandardScaler().fit(X), skp.StandardScaler().fit(X)
    np.testing.assert_allclose(ours.mean_, ref.mean_, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ours.var_, ref.var_, rtol=1e-7, atol=1e-6)
    np.testing.assert_allclose(ours.scale_, ref.scale_, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(ours.transform(X), ref.transform(X), rtol=1e-6, atol=1e-6)
    Z = ours.transform(X)
    np.testing.assert_allclose(ours.inverse_transform(Z), X, rtol=1e-7, atol=1e-6)


@given(X=matrices(nan=True))
def test_scalers_ignore_nan_like_sklearn(X):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = skp.MinMaxScaler().fit(X).transform(X)
    np.testing.assert_allclose(P.MinMaxScaler().fit(X).transform(X), ref, atol=1e-9)
    if (~np.isnan(X)).sum(axis=0).min() > 0:
        np.testing.assert_allclose(P.StandardScaler().fit(X).transform(X),
                                   skp.StandardScaler().fit(X).transform(X), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("strategy", ["mean", "median", "most_frequent", "constant"])
@given(X=matrices(nan=True))
def test_imputer_matches_sklearn(strategy, X):
    import warnings
    kw = {"fill_value": -1.0} if strategy == "constant" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = ski.SimpleImputer(strategy=strategy, **kw).fit_transform(X)
        ours = P.SimpleImputer(strategy, **kw).fit_transform(X)
    np.testing.assert_allclose(ours, ref, rtol=1e-12)


def test_imputer_keep_empty_features_and_warning():
    X = np.array([[1.0, np.nan], [3.0, np.nan]])
    with pytest.warns(UserWarning, match="without any observed values"):
        assert P.SimpleImputer().fit_transform(X).shape == (2, 1)
    np.testing.assert_array_equal(P.SimpleImputer(keep_empty_features=True).fit_transform(X),
                                  [[1.0, 0.0], [3.0, 0.0]])


def test_constant_features():
    X = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]])
    np.testing.assert_array_equal(P.MinMaxScaler().fit_transform(X)[:, 1], 0.0)
    np.testing.assert_array_equal(P.MinMaxScaler((-1, 1)).fit_transform(X)[:, 1], -1.0)
    s = P.StandardScaler().fit(X)
    assert s.scale_[1] == 1.0
    np.testing.assert_array_equal(s.transform(X)[:, 1], 0.0)
    np.testing.assert_allclose(s.inverse_transform(s.transform(X)), X)


def test_dtype_is_kept():
    X = np.arange(6, dtype=np.float32).reshape(3, 2)
    assert P.MinMaxScaler().fit_transform(X).dtype == np.float32
    assert P.StandardScaler().fit_transform(X).dtype == np.float32
    assert P.StandardScaler().fit_transform(X.astype(int)).dtype == np.float64


@pytest.mark.parametrize("cls", [P.MinMaxScaler, P.StandardScaler, P.SimpleImputer,
                                 P.OneHotEncoder])
def test_not_fitted_and_feature_mismatch(cls):
    X = np.array([[1.0, 2.0], [3.0, 5.0]])
    with pytest.raises(NotFittedError, match="not fitted yet"):
        cls().transform(X)
    with pytest.raises(NotFittedError):
        cls().inverse_transform(X)
    t = cls().fit(X)
    with pytest.raises(ShapeError, match=r"expected 2, got 3"):
        t.transform(np.ones((2, 3)))
    with pytest.raises(ShapeError, match="2-D"):
        cls().fit(np.array([1.0, 2.0]))


def test_scaler_rejects_inf_and_bad_range():
    with pytest.raises(ValueError, match="clean"):
        P.StandardScaler().fit(np.array([[1.0], [np.inf]]))
    with pytest.raises(ValueError, match="min < max"):
        P.MinMaxScaler((1, 0))
    with pytest.raises(ValueError, match="empty"):
        P.MinMaxScaler().fit(np.zeros((0, 2)))


def test_minmax_clip():
    s = P.MinMaxScaler(clip=True).fit([[0.0], [10.0]])
    np.testing.assert_array_equal(s.transform([[-5.0], [20.0]]), [[0.0], [1.0]])


def _json_roundtrip(state):
    meta, arrays = P.split_state(state, "pre.")
    meta = json.loads(json.dumps(meta))
    return P.merge_state(meta, {k: v.copy() for k, v in arrays.items()})


@pytest.mark.parametrize("make", [
    lambda: P.MinMaxScaler((-1, 2)), lambda: P.StandardScaler(), lambda: P.SimpleImputer("median"),
    lambda: P.OneHotEncoder(handle_unknown="ignore"),
    lambda: P.Pipeline([("imp", P.SimpleImputer()), ("sc", P.StandardScaler())]),
])
def test_state_dict_roundtrip_through_json(make):
    X = np.array([[1.0, 2.0], [3.0, np.nan], [5.0, 9.0], [1.0, 2.0]])
    if isinstance(make(), P.OneHotEncoder):
        X = np.array([[1, 7], [2, 7], [1, 8]])
    t = make().fit(X)
    X = np.nan_to_num(X) if isinstance(t, (P.MinMaxScaler, P.StandardScaler)) else X
    t = make().fit(X)
    state = t.state_dict()
    restored = P.from_state_dict(_json_roundtrip(state))
    np.testing.assert_array_equal(restored.transform(X), t.transform(X))
    fresh = make()
    fresh.load_state_dict(_json_roundtrip(state))
    np.testing.assert_array_equal(fresh.transform(X), t.transform(X))


def test_from_state_dict_refuses_unknown_class():
    with pytest.raises(ValueError, match="unknown transformer"):
        P.from_state_dict({"class": "os.system"})
    with pytest.raises(ValueError, match="state is for"):
        P.MinMaxScaler().load_state_dict(P.StandardScaler().fit([[1.0]]).state_dict())


def test_label_encoder_matches_sklearn_and_roundtrip():
    y = np.array(["dog", "cat", "bird", "cat"])
    ours, ref = P.LabelEncoder().fit(y), skp.LabelEncoder().fit(y)
    np.testing.assert_array_equal(ours.classes_, ref.classes_)
    np.testing.assert_array_equal(ours.transform(y), ref.transform(y))
    np.testing.assert_array_equal(ours.inverse_transform([2, 0]), ref.inverse_transform([2, 0]))
    with pytest.raises(ValueError, match="not seen in fit"):
        ours.transform(["fish"])
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        ours.inverse_transform([3])
    restored = P.from_state_dict(json.loads(json.dumps(ours.state_dict())))
    np.testing.assert_array_equal(restored.transform(y), ours.transform(y))
    with pytest.raises(NotFittedError):
        P.LabelEncoder().transform(y)


@given(y=st.lists(st.integers(0, 5), min_size=1, max_size=20))
def test_one_hot(y):
    out = P.one_hot(y, num_classes=6)
    assert out.shape == (len(y), 6) and out.dtype == np.float32
    np.testing.assert_array_equal(out.argmax(axis=1), y)
    np.testing.assert_array_equal(out.sum(axis=1), 1)


def test_one_hot_errors():
    with pytest.raises(ValueError, match=r"in \[0, 3\)"):
        P.one_hot([0, 3], num_classes=3)
    with pytest.raises(ValueError, match="LabelEncoder"):
        P.one_hot(["a", "b"])


def test_one_hot_encoder_matches_sklearn():
    X = np.array([[1, 10], [2, 10], [1, 30], [3, 20]])
    ours = P.OneHotEncoder().fit(X)
    ref = skp.OneHotEncoder(sparse_output=False).fit(X)
    np.testing.assert_array_equal(ours.transform(X), ref.transform(X))
    np.testing.assert_array_equal(ours.inverse_transform(ours.transform(X)), X)
    with pytest.raises(ValueError, match="handle_unknown='ignore'"):
        ours.transform([[4, 10]])
    ign = P.OneHotEncoder(handle_unknown="ignore").fit(X)
    ref = skp.OneHotEncoder(sparse_output=False, handle_unknown="ignore").fit(X)
    np.testing.assert_array_equal(ign.transform([[4, 10]]), ref.transform([[4, 10]]))


def test_pipeline_chain_and_inverse():
    X = np.array([[0.0, 1.0], [np.nan, 3.0], [4.0, 5.0]])
    p = P.Pipeline([("imp", P.SimpleImputer()), ("sc", P.MinMaxScaler())])
    Z = p.fit_transform(X)
    np.testing.assert_allclose(Z, [[0.0, 0.0], [0.5, 0.5], [1.0, 1.0]])
    np.testing.assert_allclose(p.inverse_transform(Z), [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]])
    assert isinstance(p["sc"], P.MinMaxScaler) and p[0] is p["imp"]
    with pytest.raises(TypeError, match="has no fit"):
        P.Pipeline([object()])
    state = p.state_dict()
    again = P.from_state_dict(state)
    np.testing.assert_allclose(again.transform(X), Z)
    state["names"] = state["names"][:1]          # a tampered state: 1 name for 2 steps
    with pytest.raises(ValueError, match="as many names as steps, got 1 names and 2 steps"):
        P.from_state_dict(state)


# --------------------------------------------------------------------- clean ---

def test_clean_drops_nonfinite_and_duplicates():
    X = np.array([[1.0, 2.0], [np.nan, 1.0], [1.0, 2.0], [3.0, np.inf], [4.0, 5.0], [4.0, 5.0]])
    y = np.array([0, 1, 0, 1, 1, 0])
    Xc, yc, report = P.clean(X, y)
    np.testing.assert_array_equal(Xc, [[1.0, 2.0], [4.0, 5.0], [4.0, 5.0]])
    np.testing.assert_array_equal(yc, [0, 1, 0])
    assert report.n_rows_in == 6 and report.n_rows_out == 3
    assert report.n_nonfinite_rows == 2 and report.n_duplicate_rows == 1
    assert report.n_conflicting_rows == 1
    assert report.dropped_rows == [1, 2, 3]
    assert json.loads(json.dumps(report.to_dict()))["n_duplicate_rows"] == 1
    assert "2 rows with NaN/Inf dropped" in str(report)


@pytest.mark.parametrize("how,fill", [("mean", 2.0), ("median", 1.0)])
def test_clean_imputes(how, fill):
    X = np.array([[1.0, 10.0], [np.nan, 20.0], [1.0, 30.0], [4.0, np.inf]])
    Xc, yc, report = P.clean(X, impute=how)
    assert yc is None
    assert Xc[1, 0] == fill
    assert Xc[3, 1] == 20.0           # mean and median of 10, 20, 30
    assert report.n_imputed_values == 2 and report.n_nonfinite_rows == 0
    assert np.isfinite(Xc).all()


def test_clean_drops_rows_with_bad_labels_and_errors():
    X = np.array([[1.0], [2.0], [3.0]])
    Xc, _, report = P.clean(X, np.array([0.0, np.nan, 1.0]), impute="mean")
    assert len(Xc) == 2 and report.n_nonfinite_rows == 1
    with pytest.raises(ShapeError, match="len\\(X\\)=3 and len\\(y\\)=2"):
        P.clean(X, [0, 1])
    with pytest.raises(ValueError, match="empty"):
        P.clean(np.zeros((0, 2)))
    with pytest.raises(ValueError, match="impute="):
        P.clean(np.array([[np.nan]]))
    with pytest.raises(ValueError, match="column 0 has no finite value"):
        P.clean(np.array([[np.nan, 1.0], [np.nan, 2.0]]), impute="mean")
    with pytest.raises(ValueError, match="impute must be"):
        P.clean(X, impute="zero")


@given(X=matrices(nan=True))
def test_clean_output_is_finite_and_unique(X):
    try:
        Xc, _, report = P.clean(X)
    except ValueError:
        assert not np.isfinite(X).all(axis=1).any()
        return
    assert np.isfinite(Xc).all()
    assert len(np.unique(Xc, axis=0)) == len(Xc)
    assert report.n_rows_out == len(Xc) == report.n_rows_in - len(report.dropped_rows)
