"""The direct few-tap conv2d (kernels/cpu/conv_small.h), the bias entry points and the 2x2 max
pool (kernels/cpu/pool_kernels.h) against the NumPy reference, per ISA, dtype and thread count."""

import numpy as np
import pytest

from tinygrad_lite import _cpu

from .conftest import tol

# (N, C, H, W, O, kh, kw, padding, dilation): stride 1, one group, C*kh*kw <= 32, O <= 8, so
# auto takes the direct kernel. Flat lengths below, at and above the vector blocks; 1s, primes.
SMALL = [
    (3, 1, 28, 28, 8, 3, 3, (1, 1), (1, 1)),     # the small CNN's first layer
    (2, 1, 1, 1, 1, 1, 1, (0, 0), (1, 1)),
    (5, 3, 7, 11, 5, 3, 3, (1, 2), (1, 1)),
    (2, 2, 13, 5, 7, 2, 3, (0, 1), (2, 1)),      # dilation, odd kernel
    (1, 1, 23, 29, 6, 5, 5, (2, 0), (1, 1)),     # 25 taps, 6 outputs (4 + 2 blocks)
    (4, 1, 17, 3, 3, 1, 3, (0, 1), (1, 2)),
    (2, 1, 40, 41, 8, 3, 3, (0, 0), (1, 1)),     # long rows: many full vector blocks
]


def _data(rng, case, dtype):
    n, c, h, w, o, kh, kw, p, d = case
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((o, c, kh, kw)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    return x, wt, b, ((1, 1), p, d, 1)


@pytest.mark.parametrize("case", SMALL)
def test_small_cases_take_the_direct_kernel(case):
    n, c, h, w, o, kh, kw, p, d = case
    assert _cpu.conv_small_fits(c, o, kh, kw, 1, 1, 1)


def test_small_fits_bounds():
    assert not _cpu.conv_small_fits(1, 8, 3, 3, 2, 2, 1)      # strided
    assert not _cpu.conv_small_fits(2, 8, 3, 3, 1, 1, 2)      # grouped
    assert not _cpu.conv_small_fits(1, 9, 3, 3, 1, 1, 1)      # too many outputs
    assert not _cpu.conv_small_fits(4, 8, 3, 3, 1, 1, 1)      # 36 taps
    assert _cpu.conv_small_fits(2, 8, 4, 4, 1, 1, 1)          # 32 taps


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", SMALL)
def test_direct_conv_matches_numpy(cy, ref, threads, dtype, case):
    rng = np.random.default_rng(0)
    x, w, b, geo = _data(rng, case, dtype)
    k = w[0].size
    y = ref.conv2d(x, w, *geo)
    atol = tol(dtype, k) * 10
    np.testing.assert_allclose(cy.conv2d(x, w, *geo), y, atol=atol)
    np.testing.assert_allclose(cy.conv2d_bias(x, w, b, *geo), y + b[None, :, None, None],
                               atol=atol)
    gy = rng.standard_normal(y.shape).astype(dtype)
    gw_ref = ref.conv2d_backward_weight(gy, x, w.shape, *geo)
    atol = tol(dtype, y.size) * 10
    np.testing.assert_allclose(cy.conv2d_backward_weight(gy, x, w.shape, *geo), gw_ref,
                               atol=atol)
    gw, gb = cy.conv2d_backward_weight_bias(gy, x, w.shape, *geo)
    np.testing.assert_allclose(gw, gw_ref, atol=atol)
    np.testing.assert_allclose(gb, gy.sum(axis=(0, 2, 3)), atol=atol)
    assert gw.dtype == gb.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_direct_conv_every_isa(cy, ref, isa, dtype):
    rng = np.random.default_rng(1)
    for case in SMALL:
        x, w, b, geo = _data(rng, case, dtype)
        y = ref.conv2d(x, w, *geo) + b[None, :, None, None]
        np.testing.assert_allclose(cy.conv2d_bias(x, w, b, *geo), y, atol=tol(dtype, 25) * 10)
        gy = rng.standard_normal(y.shape).astype(dtype)
        gw, gb = cy.conv2d_backward_weight_bias(gy, x, w.shape, *geo)
        np.testing.assert_allclose(gw, ref.conv2d_backward_weight(gy, x, w.shape, *geo),
                                   atol=tol(dtype, y.size) * 10)
        np.testing.assert_allclose(gb, gy.sum(axis=(0, 2, 3)), atol=tol(dtype, y.size) * 10)


def test_direct_conv_equals_the_forced_gemm_paths(cy):
    """auto (direct) against im2col and implicit on the same data: same values to rounding,
    and the bias entry point is the plain forward plus the bias, bit for bit."""
    rng = np.random.default_rng(2)
    x, w, b, geo = _data(rng, SMALL[0], np.float32)
    flat = (1, 1, 1, 1, 1, 1, 1)
    y = np.empty((x.shape[0], w.shape[0], 28, 28), np.float32)
    _cpu.conv2d_forward(x, w, y, *flat, 1)
    for algo in ("im2col", "implicit"):
        other = np.empty_like(y)
        _cpu.conv2d_forward(x, w, other, *flat, 1, algo)
        np.testing.assert_allclose(y, other, atol=1e-5)
    yb = np.empty_like(y)
    _cpu.conv2d_forward_bias(x, w, b, yb, *flat, 1)
    np.testing.assert_array_equal(yb, y + b[None, :, None, None])


def test_bias_entry_points_on_the_gemm_path(cy, ref):
    """A layer the direct kernel does not take (stride 2, 16 outputs): the bias is added and
    summed after the GEMM path."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 3, 9, 8))
    w = rng.standard_normal((16, 3, 3, 3))
    b = rng.standard_normal(16)
    geo = ((2, 2), (1, 1), (1, 1), 1)
    assert not _cpu.conv_small_fits(3, 16, 3, 3, 2, 2, 1)
    y = ref.conv2d(x, w, *geo)
    np.testing.assert_allclose(cy.conv2d_bias(x, w, b, *geo), y + b[None, :, None, None],
                               atol=1e-12)
    gy = rng.standard_normal(y.shape)
    gw, gb = cy.conv2d_backward_weight_bias(gy, x, w.shape, *geo)
    np.testing.assert_allclose(gw, ref.conv2d_backward_weight(gy, x, w.shape, *geo), atol=1e-11)
    np.testing.assert_allclose(gb, gy.sum(axis=(0, 2, 3)), atol=1e-12)


def test_direct_conv_noncontiguous_inputs(cy, ref):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 1, 13, 22))[:, :, :, ::2]            # strided view
    w = np.asfortranarray(rng.standard_normal((8, 1, 3, 3)))
    b = rng.standard_normal(16)[::2]
    geo = ((1, 1), (1, 1), (1, 1), 1)
    y = ref.conv2d(np.ascontiguousarray(x), np.ascontiguousarray(w), *geo)
    np.testing.assert_allclose(cy.conv2d_bias(x, w, b, *geo), y + b[None, :, None, None],
                               atol=1e-12)
    gy = rng.standard_normal((3, 16, 13, 11))[:, ::2]
    gw, gb = cy.conv2d_backward_weight_bias(gy, x, w.shape, *geo)
    np.testing.assert_allclose(gw, ref.conv2d_backward_weight(np.ascontiguousarray(gy),
                                                              np.ascontiguousarray(x), w.shape,
                                                              *geo), atol=1e-11)
    np.testing.assert_allclose(gb, gy.sum(axis=(0, 2, 3)), atol=1e-12)


def test_bias_entry_points_refuse_a_wrong_bias():
    x = np.ones((1, 1, 5, 5), np.float32)
    w = np.ones((4, 1, 3, 3), np.float32)
    y = np.empty((1, 4, 5, 5), np.float32)
    with pytest.raises(ValueError, match=r"conv2d_forward_bias: b must have 4 values .*got 3"):
        _cpu.conv2d_forward_bias(x, w, np.ones(3, np.float32), y, 1, 1, 1, 1, 1, 1, 1, 1)
    with pytest.raises(ValueError, match=r"conv2d_backward_weight_bias: gb must have 4 values"):
        _cpu.conv2d_backward_weight_bias(y, x, np.empty_like(w), np.empty(5, np.float32), 1, 1,
                                         1, 1, 1, 1, 1, 1)
    with pytest.raises(ValueError, match="conv2d_forward_bias: unknown algo 'fast'"):
        _cpu.conv2d_forward_bias(x, w, np.ones(4, np.float32), y, 1, 1, 1, 1, 1, 1, 1, 1, "fast")


# ------------------------------------------------------------------ 2x2 max pool ---

POOL_SHAPES = [(2, 3, 28, 28), (1, 2, 5, 7), (3, 1, 37, 35), (1, 1, 2, 2), (2, 2, 4, 33),
               (1, 1, 3, 17)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", POOL_SHAPES)
def test_max_pool_2x2_matches_numpy(cy, ref, isa, dtype, shape):
    """Random values with planted ties (every value of a window equal, or two equal maxima)
    and NaNs (one, or two in a window: the first wins); the winners' indices must match."""
    rng = np.random.default_rng(5)
    x = rng.integers(-3, 4, shape).astype(dtype)        # small integers: many ties
    x.flat[rng.choice(x.size, max(1, x.size // 17), replace=False)] = np.nan
    geo = ((2, 2), (2, 2), (0, 0))
    y, idx = cy.max_pool2d(x, *geo)
    yr, idxr = ref.max_pool2d(x, *geo)
    np.testing.assert_array_equal(idx, idxr)
    np.testing.assert_array_equal(y, yr)
    gy = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_array_equal(cy.max_pool2d_backward(gy, idx, x.shape, *geo),
                                  ref.max_pool2d_backward(gy, idxr, x.shape, *geo))


def test_max_pool_2x2_noncontiguous_and_threads(cy, ref, threads):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((4, 3, 20, 34))[:, :, :, ::2]
    geo = ((2, 2), (2, 2), (0, 0))
    y, idx = cy.max_pool2d(x, *geo)
    yr, idxr = ref.max_pool2d(np.ascontiguousarray(x), *geo)
    np.testing.assert_array_equal(y, yr)
    np.testing.assert_array_equal(idx, idxr)
