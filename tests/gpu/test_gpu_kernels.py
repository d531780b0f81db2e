"""Every CUDA kernel (backend ``cupy``) and CuPy's library path (``cublas``) against NumPy
float64, on fresh random inputs, with every output buffer NaN-poisoned first. Odd sizes (1,
primes, not multiples of the tiles), all transposes, groups, strides, dilation, padding."""

import numpy as np
import pytest

from tinygrad_lite import backends
from tinygrad_lite.backends.numpy_backend import NumpyBackend

from ._gpu import Poisoned, pytestmark, rng  # noqa: F401  (pytestmark: skip without a GPU)

REF = NumpyBackend()
TOL = {np.float32: 2e-5, np.float64: 1e-12}   # max |err| / max |ref|


@pytest.fixture(params=["cupy", "cublas"])
def gpu(request, monkeypatch):
    b = backends.get(request.param)
    monkeypatch.setattr(b, "xp", Poisoned(b.xp))
    return b


def _close(got, want, dtype, what):
    assert type(got).__module__.startswith("cupy"), f"{what}: result left the device"
    g = got.get().astype(np.float64)
    assert g.shape == want.shape, (what, g.shape, want.shape)
    assert not np.isnan(g).any(), f"{what}: output elements never written (NaN poison left)"
    scale = max(float(np.abs(want).max()), 1e-30)
    err = float(np.abs(g - want).max()) / scale
    assert err <= TOL[dtype], f"{what}: max relative error {err:.3g} > {TOL[dtype]}"


def _data(shape, dtype, salt):
    return rng(salt).standard_normal(shape).astype(dtype)


MM = [(1, 1, 1), (7, 13, 5), (31, 1, 17), (128, 128, 128), (129, 257, 65), (300, 17, 1000),
      (2, 515, 9)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,n,k", MM)
def test_matmul_every_transpose(gpu, m, n, k, dtype):
    xp = gpu.xp
    for ta in (False, True):
        for tb in (False, True):
            a = _data((k, m) if ta else (m, k), dtype, 1)
            b = _data((n, k) if tb else (k, n), dtype, 2)
            want = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
            got = gpu.matmul(xp.asarray(a), xp.asarray(b), ta, tb)
            _close(got, want, dtype, f"{gpu.name} matmul {m}x{n}x{k} ta={ta} tb={tb}")
            out = xp.asarray(_data((m, n), dtype, 3))
            base = out.get().astype(np.float64)
            gpu.matmul(xp.asarray(a), xp.asarray(b), ta, tb, out=out, accumulate=True)
            _close(out, base + want, dtype, f"{gpu.name} matmul accumulate")


def test_matmul_views_and_the_tiled_baseline(gpu):
    """Non-contiguous operands (a slice, a transposed view) and the 16x16 baseline kernel."""
    xp = gpu.xp
    a = _data((40, 70), np.float32, 4)
    b = _data((33, 50), np.float32, 5)
    da, db = xp.asarray(a)[:, 3:36], xp.asarray(b).T            # (40, 33) strided, (50, 33) F
    got = gpu.matmul(da, db, False, True)
    _close(got, a[:, 3:36].astype(np.float64) @ b.astype(np.float64), np.float32, "views")
    if gpu.name == "cupy":
        from tinygrad_lite.backends import cuda_launch

        a2, b2 = _data((37, 29), np.float32, 6), _data((29, 41), np.float32, 7)
        ln = cuda_launch.gemm(37, 41, 29, 4, kernel="tiled16")
        c = xp.empty((37, 41), np.float32)
        gpu.mods.launch(ln, xp.asarray(a2), xp.asarray(b2), c)
        _close(c, a2.astype(np.float64) @ b2, np.float32, "gemm_tiled16_f32")


@pytest.mark.parametrize("shapes", [((3, 5, 7), (7, 4)), ((2, 1, 5, 7), (3, 7, 4)),
                                    ((1, 9, 3), (6, 3, 130))])
def test_batched_matmul(gpu, shapes):
    a, b = _data(shapes[0], np.float32, 8), _data(shapes[1], np.float32, 9)
    got = gpu.batched_matmul(gpu.xp.asarray(a), gpu.xp.asarray(b))
    _close(got, np.matmul(a.astype(np.float64), b.astype(np.float64)), np.float32, "batched")


# (x_shape, w_shape, stride, padding, dilation, groups)
CONV = [((1, 1, 1, 1), (1, 1, 1, 1), (1, 1), (0, 0), (1, 1), 1),
        ((2, 3, 7, 5), (4, 3, 3, 3), (1, 1), (1, 1), (1, 1), 1),
        ((3, 4, 11, 13), (6, 2, 3, 2), (2, 1), (1, 0), (1, 2), 2),
        ((2, 6, 9, 9), (6, 1, 3, 3), (2, 2), (1, 1), (2, 2), 6),
        ((5, 3, 17, 17), (67, 3, 5, 5), (3, 3), (2, 2), (1, 1), 1),
        ((8, 32, 28, 28), (64, 32, 3, 3), (1, 1), (1, 1), (1, 1), 1)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CONV, ids=[str(c[0]) + str(c[1]) for c in CONV])
def test_conv2d_forward_and_both_backward_passes(gpu, case, dtype):
    x_shape, w_shape, *geo = case
    xp = gpu.xp
    x, w = _data(x_shape, dtype, 10), _data(w_shape, dtype, 11)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    y = REF.conv2d(x64, w64, *geo)
    gy = _data(y.shape, dtype, 12)
    _close(gpu.conv2d(xp.asarray(x), xp.asarray(w), *geo), y, dtype, f"{gpu.name} conv2d")
    _close(gpu.conv2d_backward_input(xp.asarray(gy), xp.asarray(w), x_shape, *geo),
           REF.conv2d_backward_input(gy.astype(np.float64), w64, x_shape, *geo), dtype,
           f"{gpu.name} conv2d_backward_input")
    _close(gpu.conv2d_backward_weight(xp.asarray(gy), xp.asarray(x), w_shape, *geo),
           REF.conv2d_backward_weight(gy.astype(np.float64), x64, w_shape, *geo), dtype,
           f"{gpu.name} conv2d_backward_weight")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", [((2, 3, 7, 5), (3, 2), (2, 1), (1, 0), (1, 2)),
                                  ((1, 1, 1, 1), (1, 1), (1, 1), (0, 0), (1, 1)),
                                  ((3, 5, 13, 11), (3, 3), (1, 1), (1, 1), (1, 1))])
def test_im2col_and_col2im(gpu, case, dtype):
    x_shape, *geo = case
    x = _data(x_shape, dtype, 13)
    cols = REF.im2col(x.astype(np.float64), *geo)
    _close(gpu.im2col(gpu.xp.asarray(x), *geo), cols, dtype, f"{gpu.name} im2col")
    g = _data(cols.shape, dtype, 14)
    _close(gpu.col2im(gpu.xp.asarray(g), x_shape, *geo),
           REF.col2im(g.astype(np.float64), x_shape, *geo), dtype, f"{gpu.name} col2im")


POOL = [((2, 3, 8, 8), (2, 2), (2, 2), (0, 0)), ((1, 1, 1, 1), (1, 1), (1, 1), (0, 0)),
        ((3, 2, 13, 11), (3, 3), (2, 2), (1, 1)), ((2, 5, 7, 9), (3, 2), (1, 2), (1, 1)),
        ((4, 16, 31, 29), (5, 5), (3, 3), (2, 2))]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", POOL, ids=[str(c) for c in POOL])
def test_pooling_forward_and_backward(gpu, case, dtype):
    x_shape, *geo = case
    xp = gpu.xp
    x = _data(x_shape, dtype, 15)
    y, idx = REF.max_pool2d(x.astype(np.float64), *geo)
    gy = _data(y.shape, dtype, 16)
    gy_, idx_ = gy.astype(np.float64), idx
    got_y, got_idx = gpu.max_pool2d(xp.asarray(x), *geo)
    _close(got_y, y, dtype, f"{gpu.name} max_pool2d")
    np.testing.assert_array_equal(got_idx.get(), idx_)             # the argmax, exactly
    _close(gpu.max_pool2d_backward(xp.asarray(gy), got_idx, x_shape, *geo),
           REF.max_pool2d_backward(gy_, idx_, x_shape, *geo), dtype, "max_pool2d_backward")
    _close(gpu.avg_pool2d(xp.asarray(x), *geo), REF.avg_pool2d(x.astype(np.float64), *geo),
           dtype, f"{gpu.name} avg_pool2d")
    _close(gpu.avg_pool2d_backward(xp.asarray(gy), x_shape, *geo),
           REF.avg_pool2d_backward(gy_, x_shape, *geo), dtype, "avg_pool2d_backward")


def test_max_pool_ties_and_nan_follow_numpy():
    """Ties go to the first window position; a NaN wins (NumPy's argmax)."""
    b = backends.get("cupy")
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 1, 1] = np.nan
    y, idx = b.max_pool2d(b.xp.asarray(x), (2, 2), (2, 2), (0, 0))
    ry, ridx = REF.max_pool2d(x, (2, 2), (2, 2), (0, 0))
    np.testing.assert_array_equal(idx.get(), ridx)
    np.testing.assert_array_equal(np.isnan(y.get()), np.isnan(ry))


@pytest.mark.parametrize("op,shapes,kw", [
    ("matmul", ((37, 19), (19, 23)), {}),
    ("conv2d", ((2, 4, 9, 7), (6, 2, 3, 3)), dict(stride=2, padding=1, groups=2)),
    ("max_pool2d", ((2, 3, 9, 9),), dict(kernel=3, stride=2, padding=1)),
    ("avg_pool2d", ((2, 3, 9, 9),), dict(kernel=3, stride=2, padding=1)),
    ("im2col", ((2, 3, 9, 9),), dict(kernel=3, stride=2, padding=1)),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_check_parity_covers_both_gpu_backends(op, shapes, kw, dtype):
    table = backends.check_parity(op, shapes, dtype=dtype, backends=["cupy", "cublas"], **kw)
    assert {r["backend"] for r in table} == {"cupy", "cublas"}
    assert table.ok, str(table)
