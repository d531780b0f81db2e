"""im2col/col2im, conv2d (forward and both adjoints) and pooling against the NumPy reference."""

import numpy as np
import pytest

from .conftest import tol

# (N, C, H, W, O, kh, kw, stride, padding, dilation, groups)
CONVS = [
    (2, 3, 7, 9, 4, 3, 3, (1, 1), (1, 1), (1, 1), 1),
    (3, 4, 13, 11, 6, 3, 2, (2, 1), (0, 1), (1, 1), 2),
    (1, 6, 8, 8, 6, 1, 1, (1, 1), (0, 0), (1, 1), 3),          # pointwise fast path, groups
    (5, 2, 10, 12, 4, 5, 3, (2, 2), (2, 1), (2, 1), 1),         # dilation
    (4, 8, 6, 6, 8, 1, 1, (2, 2), (0, 0), (1, 1), 8),           # depthwise, strided 1x1
    (1, 1, 1, 1, 1, 1, 1, (1, 1), (0, 0), (1, 1), 1),
    (3, 4, 9, 9, 8, 2, 2, (3, 3), (1, 1), (1, 1), 4),
    (2, 3, 37, 13, 5, 3, 3, (1, 2), (1, 0), (1, 1), 1),
]


def _data(rng, case, dtype):
    n, c, h, w, o, kh, kw, s, p, d, g = case
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((o, c // g, kh, kw)).astype(dtype)
    return x, wt, (s, p, d, g)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CONVS)
def test_conv2d_matches_numpy(cy, ref, threads, dtype, case):
    rng = np.random.default_rng(0)
    x, w, geo = _data(rng, case, dtype)
    k = w.shape[1] * w.shape[2] * w.shape[3]
    y = ref.conv2d(x, w, *geo)
    np.testing.assert_allclose(cy.conv2d(x, w, *geo), y, atol=tol(dtype, k) * 10)
    gy = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_allclose(cy.conv2d_backward_input(gy, w, x.shape, *geo),
                               ref.conv2d_backward_input(gy, w, x.shape, *geo),
                               atol=tol(dtype, w.shape[0]) * 10)
    np.testing.assert_allclose(cy.conv2d_backward_weight(gy, x, w.shape, *geo),
                               ref.conv2d_backward_weight(gy, x, w.shape, *geo),
                               atol=tol(dtype, y.size) * 10)


def test_conv2d_every_isa(cy, ref, isa):
    """Forward and both backward passes (their GEMMs run with transposed strides) per ISA."""
    rng = np.random.default_rng(1)
    for case in CONVS[:4] + CONVS[6:]:
        x, w, geo = _data(rng, case, np.float32)
        y = ref.conv2d(x, w, *geo)
        np.testing.assert_allclose(cy.conv2d(x, w, *geo), y, atol=1e-4)
        gy = rng.standard_normal(y.shape).astype(np.float32)
        np.testing.assert_allclose(cy.conv2d_backward_input(gy, w, x.shape, *geo),
                                   ref.conv2d_backward_input(gy, w, x.shape, *geo), atol=1e-4)
        np.testing.assert_allclose(cy.conv2d_backward_weight(gy, x, w.shape, *geo),
                                   ref.conv2d_backward_weight(gy, x, w.shape, *geo),
                                   atol=tol(np.float32, y.size) * 10)


def test_conv2d_noncontiguous_readonly(cy, ref):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4, 9, 10))[:, :, :, ::2]
    w = rng.standard_normal((5, 4, 3, 3))
    w.flags.writeable = False
    geo = ((1, 1), (1, 1), (1, 1), 1)
    np.testing.assert_allclose(cy.conv2d(x, w, *geo), ref.conv2d(x, w, *geo), atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CONVS)
def test_im2col_col2im(cy, ref, threads, dtype, case):
    rng = np.random.default_rng(3)
    x, w, (s, p, d, _) = _data(rng, case, dtype)
    kernel = w.shape[2:]
    cols = cy.im2col(x, kernel, s, p, d)
    np.testing.assert_array_equal(cols, ref.im2col(x, kernel, s, p, d))
    g = rng.standard_normal(cols.shape).astype(dtype)
    back = cy.col2im(g, x.shape, kernel, s, p, d)
    np.testing.assert_allclose(back, ref.col2im(g, x.shape, kernel, s, p, d),
                               atol=tol(dtype, 9) * 10)
    # the adjoint identity <im2col(x), g> = <x, col2im(g)>
    lhs = float(np.vdot(cols.astype(np.float64), g.astype(np.float64)))
    rhs = float(np.vdot(x.astype(np.float64), back.astype(np.float64)))
    assert abs(lhs - rhs) <= tol(dtype, cols.size) * (1 + abs(lhs))


POOLS = [((2, 3, 7, 9), (2, 2), (2, 2), (0, 0)), ((1, 2, 13, 13), (3, 3), (2, 2), (1, 1)),
         ((2, 1, 5, 8), (3, 2), (1, 3), (1, 0)), ((1, 1, 1, 1), (1, 1), (1, 1), (0, 0)),
         ((3, 2, 37, 2), (4, 1), (3, 1), (2, 0))]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,kernel,stride,padding", POOLS)
def test_pooling_matches_numpy(cy, ref, threads, dtype, shape, kernel, stride, padding):
    rng = np.random.default_rng(4)
    x = rng.standard_normal(shape).astype(dtype)
    geo = (kernel, stride, padding)
    y, idx = cy.max_pool2d(x, *geo)
    yr, idxr = ref.max_pool2d(x, *geo)
    np.testing.assert_array_equal(y, yr)
    np.testing.assert_array_equal(idx, idxr)
    assert idx.dtype == np.int64
    gy = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_allclose(cy.max_pool2d_backward(gy, idx, x.shape, *geo),
                               ref.max_pool2d_backward(gy, idxr, x.shape, *geo),
                               atol=tol(dtype, 16))
    np.testing.assert_allclose(cy.avg_pool2d(x, *geo), ref.avg_pool2d(x, *geo),
                               atol=tol(dtype, 16))
    np.testing.assert_allclose(cy.avg_pool2d_backward(gy, x.shape, *geo),
                               ref.avg_pool2d_backward(gy, x.shape, *geo), atol=tol(dtype, 16))


def test_max_pool_ties_and_nan(cy, ref):
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 1, 2] = np.nan
    y, idx = cy.max_pool2d(x, (2, 2), (2, 2), (0, 0))
    yr, idxr = ref.max_pool2d(x, (2, 2), (2, 2), (0, 0))
    np.testing.assert_array_equal(idx, idxr)          # ties: first in window order; NaN wins
    np.testing.assert_array_equal(y, yr)
