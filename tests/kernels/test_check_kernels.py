"""all_finite (kernels/cpu/check.pxi) against NumPy's isfinite(x).all(), and the vectorized exp of
the predict plan's softmax_rows (vexp.h) against float64 NumPy: every ISA variant, float32 and
float64, sizes 1, primes and past the kernel's 64K-value chunk, NaN and both infinities at the
first, a middle and the last position, and the layouts the kernel refuses."""

import numpy as np
import pytest

from tinygrad_lite import _cpu

SIZES = [1, 2, 7, 31, 4099, (1 << 16) + 13]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", SIZES)
def test_all_finite_matches_numpy(isa, dtype, n):
    x = np.random.default_rng(n).standard_normal(n).astype(dtype) * 1e3
    x[::3] = np.finfo(dtype).max                  # extremes that are still finite
    x[1::5] = np.finfo(dtype).tiny / 4            # and denormals
    assert _cpu.all_finite(x) is True
    for bad in (np.nan, np.inf, -np.inf):
        for pos in {0, n // 2, n - 1}:
            y = x.copy()
            y[pos] = bad
            assert _cpu.all_finite(y) is bool(np.isfinite(y).all()) is False, (bad, pos)


def test_all_finite_layouts():
    x = np.random.default_rng(0).random((37, 41), dtype=np.float32)
    assert _cpu.all_finite(x) is True
    assert _cpu.all_finite(np.asfortranarray(x)) is True      # F order: one contiguous block
    assert _cpu.all_finite(x.T) is True
    x[36, 40] = np.inf
    assert _cpu.all_finite(np.asfortranarray(x)) is False
    # Not for the kernel: the caller checks these with NumPy.
    assert _cpu.all_finite(x[:, ::2]) is None                   # strided
    assert _cpu.all_finite(x.astype(np.float16)) is None        # other dtypes
    assert _cpu.all_finite(x.tolist()) is None                  # not an ndarray
    assert _cpu.all_finite(np.empty((0, 3), np.float32)) is True


def test_predict_input_check_names_the_first_bad_value():
    from tinygrad_lite.models import _check_finite

    x = np.zeros((300, 20), np.float32)
    _check_finite(x, "x", "predict")
    x[123, 7] = -np.inf
    x[200, 1] = np.nan
    with pytest.raises(ValueError, match=r"predict: x contains 2 NaN/Inf values, got the "
                                         r"first at index \(123, 7\)"):
        _check_finite(x, "x", "predict")
    with pytest.raises(ValueError, match="index 5"):              # strided: NumPy's path
        _check_finite(np.r_[np.zeros(5), np.nan, 0.0][::1].repeat(2)[::2], "x", "predict")


def test_softmax_rows_vectorized_exp_over_the_whole_range(isa):
    # Rows [v, 0] for v across float32's exp range (underflow to overflow) and past it: the
    # softmax is exp(v) / (exp(v) + 1), so each row tests one exp value.
    v = np.concatenate([np.linspace(-120, 100, 200_003), [-87.4, -87.3, 88.7, 88.8]])
    z = np.stack([v, np.zeros_like(v)], 1).astype(np.float32)
    got = z.copy()
    _cpu.softmax_rows(got)
    z64 = z.astype(np.float64)
    e = np.exp(z64 - z64.max(1, keepdims=True))
    want = e / e.sum(1, keepdims=True)
    normal = want > np.finfo(np.float32).tiny
    rel = np.abs(got - want)[normal] / want[normal]
    assert rel.max() < 4e-7                       # a few float32 ulp
    assert np.abs(got - want).max() < 2e-7        # denormal results too
    assert (got >= 0).all() and np.isfinite(got).all()


def test_softmax_rows_special_values(isa):
    inf, nan = np.inf, np.nan
    z = np.array([[nan, 1, 2], [inf, 1, 2], [-inf, 1, 2], [0, -inf, -inf], [1e30, 0, -1e30],
                  [-100, 0, -90]], np.float32)
    _cpu.softmax_rows(z)
    assert np.isnan(z[:2]).all()                  # a NaN or +Inf logit: NaN, as the Softmax op
    np.testing.assert_allclose(z[2], [0, 0.26894142, 0.73105858], rtol=1e-6)
    assert z[2, 0] == 0 and z[3].tolist() == [1, 0, 0] and z[4].tolist() == [1, 0, 0]
    want = np.array([np.exp(-100.0), 1.0, np.exp(-90.0)])     # two denormal results:
    np.testing.assert_allclose(z[5], want, rtol=1e-6, atol=1.5e-45)   # within a denormal step
