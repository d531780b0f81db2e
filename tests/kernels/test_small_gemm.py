"""The small-GEMM path (kernels/cpu/small_gemm.h, small.pxi) against NumPy: every ISA variant,
float32 and float64, sizes 1 and primes, transposed and non-contiguous operands (read through
their strides, never copied), the cached per-shape plans, and the None answers that send a case
to the general path."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_lite import _cpu

from .conftest import tol

DIRECT_MAX = 64 ** 3


def _op(x, t):
    return x.T if t else x


def _want(a, b, ta, tb):
    return _op(a, ta).astype(np.float64) @ _op(b, tb).astype(np.float64)


def _view(rng, shape, dtype, layout):
    """An array of this logical shape: 'c' contiguous, 'f' Fortran order, 's' a strided slice
    (every other row and column of a bigger array), 'n' negative strides."""
    if layout == "c":
        return rng.standard_normal(shape).astype(dtype)
    if layout == "f":
        return np.asfortranarray(rng.standard_normal(shape).astype(dtype))
    if layout == "s":
        return rng.standard_normal((2 * shape[0], 2 * shape[1] + 1)).astype(dtype)[::2, 1::2]
    return rng.standard_normal(shape).astype(dtype)[::-1, ::-1]


# The MLP's N = 10 layers, sizes 1 and primes, the edges of every tile (8/4/2/1 rows, 2W lanes).
SIZES = [(64, 10, 128), (64, 128, 10), (10, 128, 64), (1, 1, 1), (1, 7, 1), (7, 1, 13),
         (13, 17, 19), (3, 37, 5), (31, 33, 17), (8, 32, 16), (9, 31, 15), (61, 2, 41),
         (2, 61, 43), (5, 3, 64), (11, 47, 23)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta,tb", [(0, 0), (0, 1), (1, 0), (1, 1)])
def test_small_matches_numpy(isa, dtype, ta, tb):
    rng = np.random.default_rng(11)
    lanes = {"avx512": 64, "avx2": 32}.get(isa, 0) // np.dtype(dtype).itemsize
    for m, n, k in SIZES:
        a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
        b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
        y = _cpu.matmul_small(a, b, ta, tb)
        form = _cpu.small_plan_info(m, n, k, ta, tb, dtype)
        # B's rows contiguous (its column stride is k when transposed): the row form; else A and
        # B contiguous along k: the dot form
        want = None if isa == "generic" else "rows" if not tb or k == 1 else (
            "dot" if not ta and k >= lanes else None)
        assert form == want, (m, n, k)
        assert (y is None) == (form is None), (m, n, k, form)
        if y is None:
            continue
        assert y.shape == (m, n) and y.dtype == dtype and y.flags.c_contiguous
        np.testing.assert_allclose(y, _want(a, b, ta, tb), rtol=0, atol=tol(dtype, k) * 10,
                                   err_msg=f"{isa} {(m, n, k)} {form}")


def test_small_forms_of_the_mlp_layers(isa):
    """The three N = 10 MLP matmuls take the direct kernels (rows, rows, dot) on SIMD ISAs."""
    want = [None, None, None] if isa == "generic" else ["dot", "rows", "rows"]
    got = [_cpu.small_plan_info(64, 10, 128, False, True),
           _cpu.small_plan_info(64, 128, 10, False, False),
           _cpu.small_plan_info(10, 128, 64, True, False)]
    assert got == want


@given(m=st.integers(1, 40), n=st.integers(1, 40), k=st.integers(1, 70),
       ta=st.booleans(), tb=st.booleans(), f64=st.booleans(),
       la=st.sampled_from("cfsn"), lb=st.sampled_from("cfsn"))
def test_small_any_strides(m, n, k, ta, tb, f64, la, lb):
    """Non-contiguous operands (F order, strided slices, negative strides) are read in place;
    the result is NumPy's, or None when no direct kernel reads that layout."""
    dtype = np.float64 if f64 else np.float32
    rng = np.random.default_rng(m * 10007 + n * 101 + k)
    a = _view(rng, (k, m) if ta else (m, k), dtype, la)
    b = _view(rng, (n, k) if tb else (k, n), dtype, lb)
    y = _cpu.matmul_small(a, b, ta, tb)
    if _cpu.isa() == "generic":
        assert y is None
        return
    b_op = _op(b, tb)
    a_op = _op(a, ta)
    rows = b_op.strides[1] == b.itemsize
    dot = a_op.strides[1] == a.itemsize and b_op.strides[0] == b.itemsize and k >= (
        64 if _cpu.isa() == "avx512" else 32) // b.itemsize
    if min(m, n, k) > 1:
        assert (y is not None) == (rows or dot)
    else:       # numpy may export any stride for a length-1 axis (a contiguous array's)
        assert y is not None or not (rows or dot)
    if y is not None:
        np.testing.assert_allclose(y, _want(a, b, ta, tb), rtol=0, atol=tol(dtype, k) * 10)


def test_small_declines(isa):
    """None (the general path decides, and raises the op-named errors) for anything else."""
    rng = np.random.default_rng(3)
    a32, b32 = rng.standard_normal((4, 5)).astype(np.float32), np.ones((5, 3), np.float32)
    assert _cpu.matmul_small(a32, b32.astype(np.float64)) is None          # mixed dtypes
    assert _cpu.matmul_small(a32.astype(np.float16), b32.astype(np.float16)) is None
    assert _cpu.matmul_small(a32.astype(np.int32), b32.astype(np.int32)) is None
    assert _cpu.matmul_small(a32, np.ones((4, 3), np.float32)) is None     # k differs
    assert _cpu.matmul_small(a32[None], b32) is None                       # 3-D
    assert _cpu.matmul_small(a32.tolist(), b32) is None                    # not an ndarray
    assert _cpu.matmul_small(np.ones((0, 5), np.float32), b32) is None     # empty
    big = np.ones((65, 64), np.float32), np.ones((64, 64), np.float32)
    assert 65 * 64 * 64 > DIRECT_MAX and _cpu.matmul_small(*big) is None
    swapped = np.ones((4, 5), np.dtype(np.float32).newbyteorder())        # non-native order
    assert _cpu.matmul_small(swapped, b32) is None


def test_small_plan_cache_follows_shape_layout_and_isa():
    """Plans are cached per (m, n, k, layout, dtype, ISA): reusing shapes with other strides,
    dtypes or a switched ISA still gives NumPy's answer (more shapes than cache slots, too)."""
    rng = np.random.default_rng(5)
    previous = _cpu.isa()
    try:
        for rounds in range(2):
            for isa in _cpu.supported_isas():
                _cpu.set_isa(isa)
                for i in range(80):          # > 64 slots: evictions
                    m, n, k = 1 + i % 9, 1 + i % 13, 16 + i % 7
                    dtype = np.float32 if i % 2 else np.float64
                    a = rng.standard_normal((m, k)).astype(dtype)
                    b = rng.standard_normal((n, k)).astype(dtype)
                    for bb, tb in ((b, True), (np.ascontiguousarray(b.T), False)):
                        y = _cpu.matmul_small(a, bb, False, tb)
                        if isa == "generic":
                            assert y is None
                        else:
                            np.testing.assert_allclose(y, a.astype(np.float64) @ b.T.astype(
                                np.float64), rtol=0, atol=tol(dtype, k) * 10)
    finally:
        _cpu.set_isa(previous)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backend_matmul_uses_it_and_keeps_its_contract(cy, isa, dtype):
    """The backend's matmul (small path first): same results for transposed views and flags,
    and a mismatch still raises the op-named ShapeError from the general path."""
    from tinygrad_lite.errors import ShapeError

    rng = np.random.default_rng(9)
    x = rng.standard_normal((64, 128)).astype(dtype)
    w = rng.standard_normal((10, 128)).astype(dtype)
    want = x.astype(np.float64) @ w.T.astype(np.float64)
    for y in (cy.matmul(x, w, False, True), cy.matmul(x, w.T), cy.matmul(x.T, w, True, True)):
        np.testing.assert_allclose(y, want, rtol=0, atol=tol(dtype, 128) * 10)
    with pytest.raises(ShapeError, match="matmul"):
        cy.matmul(x, w)
