"""Implicit-GEMM conv2d (kernels/cpu/conv_kernels.h, conv.pxi) against the im2col reference and
the NumPy backend: forward and stride-1 backward-input, every ISA, float32 and float64, odd
shapes, strides, paddings (also larger than the kernel), dilation, groups, 1-3 threads,
non-contiguous inputs through the backend, and the algorithm switch."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_lite import _cpu

from .conftest import tol


def _run(x, w, gy, geo, algo, threads):
    (sh, sw), (ph, pw), (dh, dw), g = geo
    y = np.full(gy.shape, np.nan, x.dtype)
    _cpu.conv2d_forward(x, w, y, sh, sw, ph, pw, dh, dw, g, threads, algo)
    gx = None
    if (sh, sw) == (1, 1) or algo != "implicit":
        gx = np.full(x.shape, np.nan, x.dtype)
        _cpu.conv2d_backward_input(gy, w, gx, sh, sw, ph, pw, dh, dw, g, threads, algo)
    return y, gx


def _check(ref, x, w, geo, threads, rng):
    y_ref = ref.conv2d(x.astype(np.float64), w.astype(np.float64), *geo)
    gy = rng.standard_normal(y_ref.shape).astype(x.dtype)
    gx_ref = ref.conv2d_backward_input(gy.astype(np.float64), w.astype(np.float64), x.shape,
                                       *geo)
    k = w.shape[1] * w.shape[2] * w.shape[3]
    y_imp, gx_imp = _run(x, w, gy, geo, "implicit", threads)
    y_col, gx_col = _run(x, w, gy, geo, "im2col", threads)
    atol_y = tol(x.dtype, k) * 10 * max(1.0, np.abs(y_ref).max())
    np.testing.assert_allclose(y_imp, y_ref, rtol=0, atol=atol_y)
    np.testing.assert_allclose(y_imp, y_col, rtol=0, atol=atol_y)
    if gx_imp is not None:
        atol_x = tol(x.dtype, w.shape[0] * w.shape[2] * w.shape[3]) * 10 * max(
            1.0, np.abs(gx_ref).max())
        np.testing.assert_allclose(gx_imp, gx_ref, rtol=0, atol=atol_x)
        np.testing.assert_allclose(gx_imp, gx_col, rtol=0, atol=atol_x)


# (N, C, H, W, O, kh, kw, stride, padding, dilation, groups)
CASES = [
    (2, 3, 7, 9, 4, 3, 3, (1, 1), (1, 1), (1, 1), 1),
    (1, 4, 11, 5, 6, 2, 3, (2, 1), (0, 2), (1, 2), 2),
    (3, 6, 8, 8, 6, 3, 3, (1, 1), (3, 0), (2, 1), 3),       # dilation, groups, uneven padding
    (2, 2, 5, 5, 3, 1, 1, (1, 1), (0, 0), (1, 1), 1),       # pointwise
    (1, 1, 13, 13, 2, 5, 5, (1, 1), (2, 2), (1, 1), 1),
    (2, 4, 6, 7, 4, 3, 2, (2, 3), (1, 1), (1, 1), 2),       # strided: forward only implicit
    (1, 2, 3, 3, 2, 3, 3, (1, 1), (4, 4), (1, 1), 1),       # padding > kernel: a cropped adjoint
    (1, 3, 37, 41, 13, 3, 3, (1, 1), (1, 1), (1, 1), 1),    # several panels per row, odd edges
    (1, 16, 6, 6, 16, 3, 3, (1, 1), (1, 1), (1, 1), 1),     # C >= MR: full micro-kernel rows
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES)
def test_implicit_matches_im2col_and_numpy(ref, isa, dtype, case):
    rng = np.random.default_rng(0)
    n, c, h, w_, o, kh, kw, s, p, d, g = case
    x = rng.standard_normal((n, c, h, w_)).astype(dtype)
    w = rng.standard_normal((o, c // g, kh, kw)).astype(dtype)
    for threads in (1, 3):
        _check(ref, x, w, (s, p, d, g), threads, rng)


@given(n=st.integers(1, 3), cg=st.integers(1, 5), og=st.integers(1, 5), g=st.integers(1, 3),
       h=st.integers(1, 12), w=st.integers(1, 12), kh=st.integers(1, 4), kw=st.integers(1, 4),
       sh=st.integers(1, 3), sw=st.integers(1, 3), ph=st.integers(0, 4), pw=st.integers(0, 4),
       dh=st.integers(1, 3), dw=st.integers(1, 3), threads=st.integers(1, 3),
       f64=st.booleans(), isa_i=st.integers(0, 2))
def test_implicit_property(ref, n, cg, og, g, h, w, kh, kw, sh, sw, ph, pw, dh, dw, threads,
                           f64, isa_i):
    """Random geometry (any stride, padding, dilation, groups), dtype, thread count and ISA."""
    if h + 2 * ph < dh * (kh - 1) + 1 or w + 2 * pw < dw * (kw - 1) + 1:
        return                                  # no output: rejected by the geometry checks
    isas = _cpu.supported_isas()
    previous = _cpu.set_isa(isas[isa_i % len(isas)])
    try:
        dtype = np.float64 if f64 else np.float32
        rng = np.random.default_rng(n + 7 * h + 31 * w + 131 * kh)
        x = rng.standard_normal((n, cg * g, h, w)).astype(dtype)
        wt = rng.standard_normal((og * g, cg, kh, kw)).astype(dtype)
        _check(ref, x, wt, ((sh, sw), (ph, pw), (dh, dw), g), threads, rng)
    finally:
        _cpu.set_isa(previous)


def test_backend_noncontiguous_and_algo_switch(cy, ref):
    """Through the backend (which makes inputs C-contiguous), under each global algorithm."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 8, 9, 20))[:, :, :, ::2]
    w = np.asfortranarray(rng.standard_normal((16, 8, 3, 3)))
    geo = ((1, 1), (1, 1), (1, 1), 1)
    y_ref = ref.conv2d(x, w, *geo)
    gy = rng.standard_normal(y_ref.shape[:3] + (2 * y_ref.shape[3],))[..., ::2]
    previous = _cpu.set_conv_algo("implicit")
    try:
        for algo in ("implicit", "im2col", "auto"):
            assert _cpu.set_conv_algo(algo) in ("implicit", "im2col", "auto")
            assert _cpu.conv_algo() == algo
            np.testing.assert_allclose(cy.conv2d(x, w, *geo), y_ref, atol=1e-12)
            np.testing.assert_allclose(cy.conv2d_backward_input(gy, w, x.shape, *geo),
                                       ref.conv2d_backward_input(gy, w, x.shape, *geo),
                                       atol=1e-12)
    finally:
        _cpu.set_conv_algo(previous)


def test_algo_errors():
    x = np.ones((1, 2, 5, 5), np.float32)
    w = np.ones((3, 2, 3, 3), np.float32)
    y = np.empty((1, 3, 2, 2), np.float32)
    with pytest.raises(ValueError, match="set_conv_algo: unknown algorithm 'fast'"):
        _cpu.set_conv_algo("fast")
    with pytest.raises(ValueError, match="conv2d_forward: unknown algo 'fast'"):
        _cpu.conv2d_forward(x, w, y, 2, 2, 0, 0, 1, 1, 1, 1, "fast")
    with pytest.raises(ValueError, match="implicit algorithm computes a stride-1"):
        _cpu.conv2d_backward_input(y, w, np.empty_like(x), 2, 2, 0, 0, 1, 1, 1, 1, "implicit")
    gx = np.empty_like(x)                        # 'auto' falls back to im2col for stride 2
    _cpu.conv2d_backward_input(y, w, gx, 2, 2, 0, 0, 1, 1, 1, 1, "auto")
