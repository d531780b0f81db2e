"""The fused kernels of kernels/cpu/fused.pxi against NumPy: gemm_bias_act (GEMM + bias + ReLU
epilogue), softmax_rows, softmax_xent -- every ISA variant, 1 and 2 threads, float32/float64,
odd shapes (1, primes), transposed operands, NaN and signed zeros."""

import numpy as np
import pytest

from tinygrad_lite import _cpu

SHAPES = [(1, 1, 1), (1, 784, 128), (3, 7, 5), (13, 17, 11), (64, 128, 10), (97, 131, 257)]


def _gemm_ref(a, b, ta, tb):
    return (a.T if ta else a) @ (b.T if tb else b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,k,n", SHAPES)
@pytest.mark.parametrize("ta,tb", [(False, False), (False, True), (True, False), (True, True)])
def test_gemm_bias_act_is_bitwise_gemm_then_numpy_epilogue(isa, threads, dtype, m, k, n, ta,
                                                          tb):
    rng = np.random.default_rng(m * 1000 + k + n)
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    bias = rng.standard_normal(n).astype(dtype)
    plain = np.empty((m, n), dtype)
    _cpu.gemm(a, b, ta, tb, plain, False, threads)
    for act in (0, 1):
        for bb in (bias, None):
            out = np.full((m, n), np.nan, dtype)
            _cpu.gemm_bias_act(a, b, ta, tb, bb, out, act, threads)
            want = plain if bb is None else plain + bb
            if act:
                want = np.maximum(want, 0)
            np.testing.assert_array_equal(out, want)
            np.testing.assert_array_equal(np.signbit(out), np.signbit(want))
    # and against float64 NumPy
    out = np.empty((m, n), dtype)
    _cpu.gemm_bias_act(a, b, ta, tb, bias, out, 1, threads)
    ref = np.maximum(_gemm_ref(a.astype(np.float64), b.astype(np.float64), ta, tb) + bias, 0)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(out, ref, rtol=tol * 10, atol=tol * np.sqrt(k) * 10)


def test_gemm_bias_act_relu_keeps_nan_and_gives_positive_zero():
    a = np.array([[np.nan, 0.0], [0.0, 0.0]], np.float32)
    b = np.eye(2, dtype=np.float32)
    out = np.empty((2, 2), np.float32)
    _cpu.gemm_bias_act(a, b, False, False, np.array([0.0, -0.0], np.float32), out, 1, 1)
    assert np.isnan(out[0, 0])
    assert out[1, 1] == 0 and not np.signbit(out[1, 1])


def test_gemm_bias_act_checks_shapes():
    a, b = np.ones((2, 3), np.float32), np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match="bias must have 4 entries"):
        _cpu.gemm_bias_act(a, b, False, False, np.ones(3, np.float32), np.empty((2, 4), "f"))
    with pytest.raises(ValueError, match="shapes do not fit"):
        _cpu.gemm_bias_act(a, b, False, False, None, np.empty((2, 5), "f"))
    with pytest.raises(ValueError, match="act must be 0"):
        _cpu.gemm_bias_act(a, b, False, False, None, np.empty((2, 4), "f"), 2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,n", [(1, 1), (1, 10), (7, 3), (256, 10), (5, 257)])
def test_softmax_rows(dtype, m, n):
    z = (np.random.default_rng(m + n).standard_normal((m, n)) * 10).astype(dtype)
    got = z.copy()
    _cpu.softmax_rows(got)
    z64 = z.astype(np.float64)
    e = np.exp(z64 - z64.max(1, keepdims=True))
    tol = 1e-13 if dtype == np.float64 else 3e-7
    np.testing.assert_allclose(got, e / e.sum(1, keepdims=True), rtol=tol * 10, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,c", [(1, 1), (1, 10), (13, 7), (64, 10), (3, 257)])
def test_softmax_xent(dtype, n, c):
    rng = np.random.default_rng(n * c)
    z = (rng.standard_normal((n, c)) * 5).astype(dtype)
    y = rng.integers(0, c, n).astype(np.int64)
    dz = np.empty_like(z)
    loss = _cpu.softmax_xent(z, y, dz)
    z64 = z.astype(np.float64)
    p = np.exp(z64 - z64.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    tol = 1e-13 if dtype == np.float64 else 3e-7
    np.testing.assert_allclose(loss, -np.log(p[np.arange(n), y]).mean(), rtol=tol * 10)
    want = (p - np.eye(c)[y]) / n
    np.testing.assert_allclose(dz, want, rtol=tol * 10, atol=tol)


def test_softmax_xent_bad_label_writes_nothing():
    z = np.zeros((2, 3), np.float32)
    dz = np.full((2, 3), 7.0, np.float32)
    assert _cpu.softmax_xent(z, np.array([0, 3], np.int64), dz) == -1.0
    np.testing.assert_array_equal(dz, 7.0)
