"""GEMM parity against NumPy: every ISA variant, dtype, transpose combination, odd and empty
sizes, accumulate on/off, 1 and 2 threads; the naive loop too; layouts through the backend."""

import numpy as np
import pytest

from tinygrad_lite import _cpu

from .conftest import tol

SIZES = [(1, 1, 1), (2, 13, 1), (13, 37, 2), (37, 1, 13), (257, 37, 13), (13, 257, 37),
         (37, 13, 257), (150, 70, 300),
         (64, 10, 128), (257, 3, 5),          # thin n: computed as C^T = B^T A^T
         (64, 64, 33), (56, 32, 20)]          # last A panel of exactly 4 / 8 rows
EMPTY = [(0, 5, 3), (4, 0, 3), (4, 5, 0), (0, 0, 0)]


def _operands(rng, m, n, k, ta, tb, dtype):
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    want = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
    return a, b, want


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta,tb", [(0, 0), (0, 1), (1, 0), (1, 1)])
def test_gemm_matches_numpy(isa, threads, dtype, ta, tb):
    rng = np.random.default_rng(7)
    for m, n, k in SIZES + EMPTY:
        a, b, want = _operands(rng, m, n, k, ta, tb, dtype)
        out = np.full((m, n), np.nan, dtype)
        _cpu.gemm(a, b, ta, tb, out, False, threads)
        np.testing.assert_allclose(out, want, rtol=0, atol=tol(dtype, k) * 10,
                                   err_msg=f"{isa} {(m, n, k)}")
        acc = np.ones((m, n), dtype)
        _cpu.gemm(a, b, ta, tb, acc, True, threads)
        np.testing.assert_allclose(acc, want + 1, rtol=0, atol=tol(dtype, k) * 10)


# Above the one-thread cutoff (m*n*k >= 96*96*128), odd sizes: column slabs (n >= m), row slabs
# (m > n) and the thin-n swap (n < NR, computed as C^T), on 1, 2 and 3 threads.
THREADED = [(151, 377, 211), (401, 97, 301), (999, 7, 257), (13, 1201, 131)]


@pytest.mark.parametrize("nthreads", [1, 2, 3])
@pytest.mark.parametrize("ta,tb", [(0, 0), (1, 1)])
def test_threaded_gemm_above_the_cutoff(isa, nthreads, ta, tb):
    rng = np.random.default_rng(8)
    for m, n, k in THREADED:
        assert m * n * k >= 96 * 96 * 128
        a, b, want = _operands(rng, m, n, k, ta, tb, np.float32)
        out = np.full((m, n), np.nan, np.float32)
        _cpu.gemm(a, b, ta, tb, out, False, nthreads)
        np.testing.assert_allclose(out, want, rtol=0, atol=tol(np.float32, k) * 10,
                                   err_msg=f"{isa} {(m, n, k)} threads={nthreads}")
        out += 1
        _cpu.gemm(a, b, ta, tb, out, True, nthreads)
        np.testing.assert_allclose(out, 2 * want + 1, rtol=0, atol=tol(np.float32, k) * 20)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_naive_matches_numpy(dtype):
    rng = np.random.default_rng(1)
    for ta in (0, 1):
        for tb in (0, 1):
            for m, n, k in SIZES[:5] + EMPTY:
                a, b, want = _operands(rng, m, n, k, ta, tb, dtype)
                out = np.full((m, n), np.nan, dtype)
                _cpu.gemm_naive(a, b, ta, tb, out, False)
                np.testing.assert_allclose(out, want, rtol=0, atol=tol(dtype, k) * 10)
                _cpu.gemm_naive(a, b, ta, tb, out, True)
                np.testing.assert_allclose(out, 2 * want, rtol=0, atol=tol(dtype, k) * 20)


def test_large_blocks_cross_every_loop(threads):
    """Sizes past KC, NC and MC so every blocking loop takes more than one trip."""
    rng = np.random.default_rng(2)
    a, b, want = _operands(rng, 301, 1100, 530, 0, 1, np.float32)
    out = np.empty((301, 1100), np.float32)
    _cpu.gemm(a, b, False, True, out, False, threads)
    np.testing.assert_allclose(out, want, rtol=0, atol=tol(np.float32, 530) * 10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backend_matmul_layouts(cy, ref, threads, dtype):
    """Non-contiguous, F-contiguous, read-only and mixed inputs through the backend wrapper."""
    rng = np.random.default_rng(3)
    a = rng.standard_normal((37, 13)).astype(dtype)
    b = rng.standard_normal((13, 29)).astype(dtype)
    ro = a.copy()
    ro.flags.writeable = False
    cases = [
        (a, b), (ro, b),
        (np.asfortranarray(a), np.asfortranarray(b)),      # folded into the transpose flags
        (a[::-1], b[:, ::-1]),                              # negative strides: copied
        (a[::-1].T.T, b[::-1]),
        (np.repeat(a, 2, axis=1)[:, ::2], b),              # strided: copied
        (rng.standard_normal((13, 37)).astype(dtype).T, b),
    ]
    for x, y in cases:
        np.testing.assert_allclose(cy.matmul(x, y), ref.matmul(x, y), atol=tol(dtype, 13) * 10)
    for ta in (False, True):
        for tb in (False, True):
            x = a.T.copy() if ta else a
            y = b.T.copy() if tb else b
            np.testing.assert_allclose(cy.matmul(x, y, ta, tb), ref.matmul(x, y, ta, tb),
                                       atol=tol(dtype, 13) * 10)
    # out= : C-contiguous, accumulate, and a non-contiguous out
    out = np.ones((37, 29), dtype)
    cy.matmul(a, b, out=out, accumulate=True)
    np.testing.assert_allclose(out, a @ b + 1, atol=tol(dtype, 13) * 10)
    big = np.zeros((29, 37), dtype)
    res = cy.matmul(a, b, out=big.T)
    assert res.base is big or res is big.T
    np.testing.assert_allclose(big.T, a @ b, atol=tol(dtype, 13) * 10)
    mixed = cy.matmul(a.astype(np.float32), b.astype(np.float64))
    assert mixed.dtype == np.float64


def test_f_contiguous_is_not_copied(cy, monkeypatch):
    """An F-contiguous operand reaches the kernel as its C-contiguous transpose (a view)."""
    seen = []
    real = _cpu.gemm

    def spy(a, b, ta, tb, out, acc, nt):
        seen.append((a, b, ta, tb))
        return real(a, b, ta, tb, out, acc, nt)

    from tinygrad_lite.backends import cython_backend

    monkeypatch.setitem(cython_backend._GEMM, np.dtype(np.float32), spy)
    # above the small-GEMM size (m*n*k > 64**3), which reads any strides in place anyway
    a = np.asfortranarray(np.ones((70, 64), np.float32))
    b = np.ones((64, 65), np.float32)
    cy.matmul(a, b)
    ka, _, ta, tb = seen[0]
    assert np.shares_memory(ka, a) and ta and not tb


def test_batched_matmul(cy, ref):
    rng = np.random.default_rng(4)
    a = rng.standard_normal((2, 3, 5, 4))
    b = rng.standard_normal((4, 6))
    np.testing.assert_allclose(cy.batched_matmul(a, b), ref.batched_matmul(a, b), atol=1e-12)
    b3 = rng.standard_normal((3, 4, 6))
    np.testing.assert_allclose(cy.batched_matmul(a, b3), ref.batched_matmul(a, b3), atol=1e-12)
