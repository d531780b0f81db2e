"""kernels/cpu/quant.pxi (``_cpu.qgemm_s8s8s32``, quant_kernels.h) against the NumPy int32
oracle: exact equality for every ISA variant (generic C, AVX2, AVX-512BW: forced with
``set_isa``) and the naive loop, odd shapes (1, primes, k not a multiple of 16/32, n not a
multiple of 4, empty), extreme values (-128/127 everywhere: the largest sums), non-contiguous
sources (made contiguous by ``quantize.qgemm``), 1 and 2 threads."""

import numpy as np
import pytest

from tinygrad_lite import _cpu
from tinygrad_lite.quantize import qgemm, qgemm_reference

SHAPES = [(1, 1, 1), (1, 64, 10), (7, 1, 3), (13, 17, 11), (64, 784, 128), (97, 131, 257),
          (3, 16, 4), (5, 32, 8), (2, 47, 5), (0, 5, 3), (4, 0, 6), (5, 3, 0)]


@pytest.mark.parametrize("m,k,n", SHAPES)
def test_qgemm_equals_numpy_int32(isa, threads, m, k, n):
    rng = np.random.default_rng(m * 10007 + k * 101 + n)
    a = rng.integers(-128, 128, (m, k), dtype=np.int8)
    w = rng.integers(-128, 128, (n, k), dtype=np.int8)
    want = qgemm_reference(a, w)
    out = np.full((m, n), 12345, np.int32)
    _cpu.qgemm_s8s8s32(a, w, out, threads)
    np.testing.assert_array_equal(out, want)
    naive = np.full((m, n), 12345, np.int32)
    _cpu.qgemm_s8s8s32_naive(a, w, naive)
    np.testing.assert_array_equal(naive, want)


def test_qgemm_extremes_and_the_overflow_cap(isa, threads):
    k = 4099                                   # prime; every product is +-16384 or 16129
    for va, vw in ((-128, -128), (127, 127), (-128, 127)):
        a = np.full((3, k), va, np.int8)
        w = np.full((5, k), vw, np.int8)
        out = np.empty((3, 5), np.int32)
        _cpu.qgemm_s8s8s32(a, w, out, threads)
        assert (out == va * vw * k).all()
        np.testing.assert_array_equal(out, qgemm_reference(a, w))
    with pytest.raises(ValueError, match="overflow"):
        _cpu.qgemm_s8s8s32(np.zeros((1, 133153), np.int8), np.zeros((1, 133153), np.int8),
                           np.empty((1, 1), np.int32), 1)
    with pytest.raises(ValueError, match="shapes do not fit"):
        _cpu.qgemm_s8s8s32(np.zeros((2, 3), np.int8), np.zeros((4, 5), np.int8),
                           np.empty((2, 4), np.int32), 1)


def test_qgemm_wrapper_non_contiguous_inputs(threads):
    rng = np.random.default_rng(3)
    a_big = rng.integers(-127, 128, (31, 46), dtype=np.int8)
    w_big = rng.integers(-127, 128, (23, 19), dtype=np.int8)
    a = a_big[::2, 1:20]            # strided rows and an offset: (16, 19), not C-contiguous
    w = w_big[:, ::-1]              # reversed columns
    assert not a.flags.c_contiguous and not w.flags.c_contiguous
    np.testing.assert_array_equal(qgemm(a, w, threads=threads), qgemm_reference(a, w))
    np.testing.assert_array_equal(qgemm(a.T.copy().T, np.asfortranarray(w)),
                                  qgemm_reference(a, w))


def _numpy_qlinear(x, sx, w, ws, bias, relu, monkeypatch):
    from tinygrad_lite import quantize

    with monkeypatch.context() as mp:
        mp.setattr(quantize, "_KERNELS", [None])
        return quantize.qlinear(x, sx, w, ws, bias, relu)


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (7, 13, 5), (64, 64, 10), (65, 33, 4),
                                   (300, 131, 67), (2, 0, 3)])
@pytest.mark.parametrize("relu", [False, True])
def test_qlinear_is_bitwise_the_numpy_fallback(isa, threads, m, k, n, relu, monkeypatch):
    """The fused layer (quantize rows, int8 GEMM, dequantize + bias + ReLU) against the same
    float32 steps in NumPy: bitwise, NaN/Inf/-0.0 inputs and values past the clip included."""
    rng = np.random.default_rng(m + 31 * k + 977 * n)
    x = (rng.standard_normal((m, k)) * 2).astype(np.float32)
    if x.size > 4:
        x.flat[:4] = [np.nan, np.inf, -np.inf, -0.0]
    w = rng.integers(-127, 128, (n, k), dtype=np.int8)
    ws = rng.uniform(1e-3, 1e-1, n).astype(np.float32)
    sx = np.float32(0.037)
    want_scale = (sx * ws).astype(np.float32)
    for bias in (rng.standard_normal(n).astype(np.float32), None):
        want = _numpy_qlinear(x, sx, w, ws, bias, relu, monkeypatch)
        out = np.full((m, n), 7.0, np.float32)
        _cpu.qlinear_f32(x, np.float32(1 / float(sx)), w, want_scale, bias, out,
                         1 if relu else 0, threads)
        assert out.tobytes() == want.tobytes()


def test_qlinear_checks_shapes():
    x, w = np.zeros((2, 3), np.float32), np.zeros((4, 3), np.int8)
    with pytest.raises(ValueError, match="shapes do not fit"):
        _cpu.qlinear_f32(x, 1.0, w, np.ones(5, np.float32), None, np.empty((2, 4), np.float32))
    with pytest.raises(ValueError, match="bias needs shape"):
        _cpu.qlinear_f32(x, 1.0, w, np.ones(4, np.float32), np.ones(3, np.float32),
                         np.empty((2, 4), np.float32))
