"""Winograd F(4x4, 3x3) conv2d (kernels/cpu/winograd.h, winograd.pxi) against the NumPy
reference (float64) and the im2col kernel: forward, backward-input and backward-weight, every
ISA, float32 and float64, odd shapes (1, primes, sizes that are no multiple of the 4x4 tile),
paddings 0..4 (above 2 the backward-input convolution crops), 1-3 threads, non-contiguous
inputs through the backend, a float64 gradcheck through autograd, and the algorithm switch
(errors where it does not apply, auto's fallback).

Tolerances. Winograd rounds differently from a direct sum: the transforms multiply by up to 8
(A^T) and 5 (B^T) and G holds 1/6 and 1/24, so its float32 error is about 10-20x that of a
direct sum (measured: 5e-6 of the largest output for 32 channels, against 3e-7 for im2col;
float64: 1e-14 against 1e-15). _tol allows 40 * eps * sqrt(k) of the largest value, k the
length of each sum: over 300 random shapes (1-64 channels, paddings 0-4), both dtypes and every
ISA the worst error measured was 0.25 x that in forward and backward-input and 0.08 x in
backward-weight; a wrong tile, transform entry or edge gives errors of order 1, far above it."""

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_lite import _cpu


def _tol(dtype, k, scale):
    eps = np.finfo(dtype).eps
    return 40 * eps * np.sqrt(max(k, 1)) * max(1.0, scale)


def _passes(x, w, gy, p, threads, algo):
    dt = x.dtype
    y = np.full(gy.shape, np.nan, dt)
    gx = np.full(x.shape, np.nan, dt)
    gw = np.full(w.shape, np.nan, dt)
    _cpu.conv2d_forward(x, w, y, 1, 1, p[0], p[1], 1, 1, 1, threads, algo)
    _cpu.conv2d_backward_input(gy, w, gx, 1, 1, p[0], p[1], 1, 1, 1, threads, algo)
    _cpu.conv2d_backward_weight(gy, x, gw, 1, 1, p[0], p[1], 1, 1, 1, threads, algo)
    return y, gx, gw


def _check(ref, x, w, p, threads, rng):
    geo = ((1, 1), p, (1, 1), 1)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    y_ref = ref.conv2d(x64, w64, *geo)
    gy = rng.standard_normal(y_ref.shape).astype(x.dtype)
    gx_ref = ref.conv2d_backward_input(gy.astype(np.float64), w64, x.shape, *geo)
    gw_ref = ref.conv2d_backward_weight(gy.astype(np.float64), x64, w.shape, *geo)
    got = _passes(x, w, gy, p, threads, "winograd")
    col = _passes(x, w, gy, p, threads, "im2col")
    n, c, h, wd = x.shape
    o, _, oh, ow = y_ref.shape
    sums = (c * 9, o * 9, n * oh * ow)              # the length of each output's sum
    for name, g, cl, r, k in zip(("forward", "backward-input", "backward-weight"), got, col,
                                 (y_ref, gx_ref, gw_ref), sums):
        atol = _tol(x.dtype, k, float(np.abs(r).max()))
        np.testing.assert_allclose(g, r, rtol=0, atol=atol, err_msg=f"{name} vs NumPy")
        np.testing.assert_allclose(g, cl, rtol=0, atol=atol, err_msg=f"{name} vs im2col")


# (N, C, H, W, O, padding)
CASES = [
    (2, 3, 7, 9, 4, (1, 1)),          # partial tiles in both directions
    (1, 1, 1, 1, 1, (1, 1)),          # one pixel: a single, mostly padded tile
    (3, 5, 13, 11, 7, (0, 0)),
    (2, 4, 6, 5, 3, (2, 0)),          # uneven padding
    (1, 2, 3, 3, 2, (4, 3)),          # padding > 2: the backward-input convolution crops
    (2, 17, 9, 10, 13, (1, 1)),       # C, O > MR: several micro-kernel panels, a short last one
    (1, 32, 12, 16, 64, (1, 1)),      # the layer-b channel counts
    (2, 3, 5, 30, 5, (1, 1)),         # 8 tiles a row: the contiguous AVX-512 path, cut edges
    (3, 2, 9, 13, 3, (2, 1)),         # 4 tiles a row, odd tile rows, groups over images
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES)
def test_winograd_matches_numpy_and_im2col(ref, isa, dtype, case):
    rng = np.random.default_rng(0)
    n, c, h, w_, o, p = case
    x = rng.standard_normal((n, c, h, w_)).astype(dtype)
    w = rng.standard_normal((o, c, 3, 3)).astype(dtype)
    for threads in (1, 3):
        _check(ref, x, w, p, threads, rng)


@given(n=st.integers(1, 3), c=st.sampled_from([1, 2, 3, 5, 7, 13, 17]),
       o=st.sampled_from([1, 2, 3, 5, 7, 13, 17]), h=st.integers(1, 14), w=st.integers(1, 14),
       ph=st.integers(0, 4), pw=st.integers(0, 4), threads=st.integers(1, 3),
       f64=st.booleans(), isa_i=st.integers(0, 2))
def test_winograd_property(ref, n, c, o, h, w, ph, pw, threads, f64, isa_i):
    """Random shape, padding, dtype, thread count and ISA; all three passes."""
    if h + 2 * ph < 3 or w + 2 * pw < 3:
        return                                  # no output: rejected by the geometry checks
    isas = _cpu.supported_isas()
    previous = _cpu.set_isa(isas[isa_i % len(isas)])
    try:
        dtype = np.float64 if f64 else np.float32
        rng = np.random.default_rng(n + 7 * h + 31 * w + 131 * c + 17 * o)
        x = rng.standard_normal((n, c, h, w)).astype(dtype)
        wt = rng.standard_normal((o, c, 3, 3)).astype(dtype)
        _check(ref, x, wt, (ph, pw), threads, rng)
    finally:
        _cpu.set_isa(previous)


def test_winograd_adjoint_identities():
    """float64: <conv(x), gy> = <x, backward_input(gy)> = <w, backward_weight(gy, x)> -- the
    three passes are one bilinear map and its two adjoints, to rounding."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 6, 10, 7))
    w = rng.standard_normal((5, 6, 3, 3))
    gy = rng.standard_normal((2, 5, 10, 7))
    y, gx, gw = _passes(x, w, gy, (1, 1), 2, "winograd")
    a, b, c = (y * gy).sum(), (x * gx).sum(), (w * gw).sum()
    assert abs(a - b) < 1e-10 * abs(a) and abs(a - c) < 1e-10 * abs(a)


def test_backend_noncontiguous_and_gradcheck(cy, ref):
    """Through the backend (which makes inputs C-contiguous) with winograd as the global
    choice, and a float64 gradcheck of F.conv2d whose three passes then run winograd."""
    from tinygrad_lite import Tensor, backends
    from tinygrad_lite.nn import functional as F
    from tinygrad_lite.testing.gradcheck import gradcheck

    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 8, 9, 22))[:, :, :, ::2]
    w = np.asfortranarray(rng.standard_normal((16, 8, 3, 3)))
    geo = ((1, 1), (1, 1), (1, 1), 1)
    y_ref = ref.conv2d(x, w, *geo)
    gy = rng.standard_normal(y_ref.shape[:3] + (2 * y_ref.shape[3],))[..., ::2]
    previous = _cpu.set_conv_algo("winograd")
    try:
        assert _cpu.conv_algo() == "winograd"
        np.testing.assert_allclose(cy.conv2d(x, w, *geo), y_ref, atol=1e-12)
        np.testing.assert_allclose(cy.conv2d_backward_input(gy, w, x.shape, *geo),
                                   ref.conv2d_backward_input(gy, w, x.shape, *geo), atol=1e-12)
        np.testing.assert_allclose(cy.conv2d_backward_weight(gy, x, w.shape, *geo),
                                   ref.conv2d_backward_weight(gy, x, w.shape, *geo), atol=1e-11)
        with backends.use("cython"):
            xt = Tensor(rng.standard_normal((2, 3, 6, 5)), requires_grad=True)
            wt = Tensor(rng.standard_normal((4, 3, 3, 3)), requires_grad=True)
            assert gradcheck(lambda a, b: F.conv2d(a, b, padding=1), [xt, wt], op="conv2d")
    finally:
        _cpu.set_conv_algo(previous)


@pytest.mark.parametrize("geo, why", [
    (dict(k=3, s=2, d=1, g=1), "needs stride 1, got (2, 2)"),
    (dict(k=3, s=1, d=2, g=1), "needs dilation 1, got (2, 2)"),
    (dict(k=3, s=1, d=1, g=2), "needs groups=1, got 2"),
    (dict(k=5, s=1, d=1, g=1), "needs a 3x3 kernel, got 5x5"),
])
def test_winograd_refused_where_it_does_not_apply(ref, geo, why):
    """Forced per call: a clear ValueError for each pass. As the global choice, and under
    'auto': the layer runs on another algorithm, with the reference's result."""
    k, s, d, g = geo["k"], geo["s"], geo["d"], geo["g"]
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 11, 11))
    w = rng.standard_normal((4, 4 // g, k, k))
    oh = (11 + 2 - d * (k - 1) - 1) // s + 1
    gy = rng.standard_normal((2, 4, oh, oh))
    args = (s, s, 1, 1, d, d, g, 1)
    calls = {
        "conv2d_forward": lambda a: _cpu.conv2d_forward(x, w, np.empty_like(gy), *args, a),
        "conv2d_backward_input":
            lambda a: _cpu.conv2d_backward_input(gy, w, np.empty_like(x), *args, a),
        "conv2d_backward_weight":
            lambda a: _cpu.conv2d_backward_weight(gy, x, np.empty_like(w), *args, a),
    }
    for op, call in calls.items():
        with pytest.raises(ValueError, match=re.escape(f"{op}: the winograd algorithm {why}")):
            call("winograd")
    geom = ((s, s), (1, 1), (d, d), g)
    previous = _cpu.set_conv_algo("winograd")
    try:
        for algo in (None, "auto"):
            y = np.empty_like(gy)
            gw = np.empty_like(w)
            _cpu.conv2d_forward(x, w, y, *args, algo)
            _cpu.conv2d_backward_weight(gy, x, gw, *args, algo)
            np.testing.assert_allclose(y, ref.conv2d(x, w, *geom), atol=1e-11)
            np.testing.assert_allclose(gw, ref.conv2d_backward_weight(gy, x, w.shape, *geom),
                                       atol=1e-10)
    finally:
        _cpu.set_conv_algo(previous)


def test_auto_choice():
    """On AVX-512, auto runs winograd (bitwise the forced result) where _wino_pays measured it
    faster -- e.g. the layer-b channels, 8 channels -- and keeps the implicit/im2col choice for
    3 input channels (layer c of the benchmark), fewer than 8 outputs, and many filters on
    8x8 images."""
    if "avx512" not in _cpu.supported_isas():
        pytest.skip("auto takes winograd on AVX-512 only (the only ISA it was measured on)")
    previous = _cpu.set_isa("avx512")
    try:
        rng = np.random.default_rng(4)
        for c, o, hw, want in ((32, 64, 12, True), (8, 8, 12, True), (3, 32, 12, False),
                               (16, 4, 12, False), (128, 128, 8, False), (64, 128, 8, True)):
            x = rng.standard_normal((2, c, hw, hw)).astype(np.float32)
            w = rng.standard_normal((o, c, 3, 3)).astype(np.float32)
            outs = {}
            for algo in ("auto", "winograd", "implicit", "im2col"):
                outs[algo] = np.empty((2, o, hw, hw), np.float32)
                _cpu.conv2d_forward(x, w, outs[algo], 1, 1, 1, 1, 1, 1, 1, 1, algo)
            assert np.array_equal(outs["auto"], outs["winograd"]) == want, (c, o, hw)
            if not want:
                assert (np.array_equal(outs["auto"], outs["implicit"])
                        or np.array_equal(outs["auto"], outs["im2col"]))
    finally:
        _cpu.set_isa(previous)
