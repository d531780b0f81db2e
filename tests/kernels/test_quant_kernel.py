"""kernels/cpu/quant.pxi (``_cpu.qgemm_s8s8s32``) against the NumPy int32 oracle: exact equality
for odd shapes (1, primes, empty), extreme values (-128/127 everywhere: the largest sums),
non-contiguous sources (made contiguous by ``quantize.qgemm``), 1 and 2 threads."""

import numpy as np
import pytest

from tinygrad_lite import _cpu
from tinygrad_lite.quantize import qgemm, qgemm_reference

SHAPES = [(1, 1, 1), (1, 64, 10), (7, 1, 3), (13, 17, 11), (64, 784, 128), (97, 131, 257),
          (0, 5, 3), (4, 0, 6), (5, 3, 0)]


@pytest.mark.parametrize("m,k,n", SHAPES)
def test_qgemm_equals_numpy_int32(threads, m, k, n):
    rng = np.random.default_rng(m * 10007 + k * 101 + n)
    a = rng.integers(-128, 128, (m, k), dtype=np.int8)
    w = rng.integers(-128, 128, (n, k), dtype=np.int8)
    out = np.full((m, n), 12345, np.int32)
    _cpu.qgemm_s8s8s32(a, w, out, threads)
    np.testing.assert_array_equal(out, qgemm_reference(a, w))


def test_qgemm_extremes_and_the_overflow_cap(threads):
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
