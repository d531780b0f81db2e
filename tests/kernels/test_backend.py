"""The cython backend as a whole: bad input errors, ISA forcing by env var, threads, describe,
parity table, engine gradchecks (first and second order) with the backend active."""

import os
import subprocess
import sys

import numpy as np
import pytest

from tinygrad_lite import _cpu, backends
from tinygrad_lite.backends import cython_backend, threads
from tinygrad_lite.errors import DTypeError, ShapeError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_extension_present_when_required():
    if os.environ.get("TINYGRAD_LITE_REQUIRE_KERNELS") == "1":
        assert cython_backend.HAVE_CPU_KERNELS
    assert "cython" in backends.names()


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.float16, np.bool_])
def test_bad_dtype(cy, dtype):
    a = np.ones((3, 3), dtype)
    with pytest.raises(DTypeError, match="matmul: .*" + np.dtype(dtype).name):
        cy.matmul(a, a)
    with pytest.raises(DTypeError, match="conv2d"):
        cy.conv2d(np.ones((1, 1, 4, 4), dtype), np.ones((1, 1, 2, 2), dtype), (1, 1), (0, 0),
                  (1, 1), 1)
    with pytest.raises(DTypeError, match="max_pool2d"):
        cy.max_pool2d(np.ones((1, 1, 4, 4), dtype), (2, 2), (2, 2), (0, 0))


def test_bad_shapes(cy):
    f = np.ones
    with pytest.raises(ShapeError, match=r"matmul: inner dimensions differ.*\(4 != 5\)"):
        cy.matmul(f((3, 4)), f((5, 2)))
    with pytest.raises(ShapeError, match="2-D"):
        cy.matmul(f(3), f((3, 2)))
    with pytest.raises(ShapeError, match="out must have shape"):
        cy.matmul(f((3, 4)), f((4, 2)), out=f((2, 3)))
    x, w = f((1, 2, 5, 5)), f((3, 2, 3, 3))
    geo = dict(stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1)
    with pytest.raises(ShapeError, match="padding"):
        cy.conv2d(x, w, **{**geo, "padding": (-1, 0)})
    with pytest.raises(ShapeError, match="stride"):
        cy.conv2d(x, w, **{**geo, "stride": (0, 1)})
    with pytest.raises(ShapeError, match="kernel larger than the padded input"):
        cy.conv2d(f((1, 2, 2, 2)), w, **geo)
    with pytest.raises(ShapeError, match="channels"):
        cy.conv2d(f((1, 3, 5, 5)), w, **geo)
    with pytest.raises(ShapeError, match="channels"):
        cy.conv2d(x, f((3, 1, 3, 3)), **{**geo, "groups": 2})
    with pytest.raises(ShapeError, match="4-D"):
        cy.conv2d(f((2, 5, 5)), w, **geo)
    with pytest.raises(ShapeError, match="gy must have shape"):
        cy.conv2d_backward_input(f((1, 3, 2, 2)), w, x.shape, **geo)
    with pytest.raises(ShapeError, match="kernel larger"):
        cy.max_pool2d(f((1, 1, 2, 2)), (3, 3), (1, 1), (0, 0))
    with pytest.raises(ShapeError, match="padding must be smaller"):
        cy.avg_pool2d(f((1, 1, 4, 4)), (2, 2), (1, 1), (2, 2))
    with pytest.raises(ShapeError, match="stride"):
        cy.max_pool2d(f((1, 1, 4, 4)), (2, 2), (0, 2), (0, 0))
    with pytest.raises(ShapeError, match="cols must have shape"):
        cy.col2im(f((1, 4, 3)), (1, 1, 3, 3), (2, 2), (1, 1), (0, 0), (1, 1))


@pytest.mark.parametrize("name", ["numpy", "cython"])
def test_empty_batch(cy, name):
    b = backends.get(name)
    x, w = np.ones((0, 2, 5, 5)), np.ones((3, 2, 3, 3))
    geo = ((1, 1), (0, 0), (1, 1), 1)
    assert b.conv2d(x, w, *geo).shape == (0, 3, 3, 3)
    assert b.conv2d_backward_input(np.ones((0, 3, 3, 3)), w, x.shape, *geo).shape == x.shape
    gw = b.conv2d_backward_weight(np.ones((0, 3, 3, 3)), x, w.shape, *geo)
    assert gw.shape == w.shape and not gw.any()
    y, idx = b.max_pool2d(x, (2, 2), (2, 2), (0, 0))
    assert y.shape == idx.shape == (0, 2, 2, 2)


def test_threads_setting():
    old = threads.get_num_threads()
    try:
        threads.set_num_threads(1)
        assert threads.get_num_threads() == 1
        for bad in (0, -1, 1.5, "2", True):
            with pytest.raises(ValueError, match="set_num_threads"):
                threads.set_num_threads(bad)
    finally:
        threads.set_num_threads(old)


def test_set_isa_refuses_unknown():
    with pytest.raises(ValueError, match="set_isa"):
        _cpu.set_isa("sse9")
    assert _cpu.isa() in _cpu.supported_isas()


def test_describe(cy):
    d = cy.describe()
    assert d["name"] == "cython" and d["isa"] in _cpu.supported_isas()
    assert isinstance(d["openmp"], bool) and d["threads"] >= 1


def test_blas_limited_while_active(monkeypatch):
    """Opted in (TINYGRAD_LITE_LIMIT_BLAS=1), use('cython') holds OpenBLAS at one thread;
    leaving it gives the threads back. The default leaves OpenBLAS alone (tests/test_embedding)."""
    pytest.importorskip("threadpoolctl")
    monkeypatch.setenv("TINYGRAD_LITE_LIMIT_BLAS", "1")
    if not _blas_threads():
        pytest.skip("no BLAS library found by threadpoolctl")
    with backends.use("numpy"):
        free = _blas_threads()
        with backends.use("cython"):
            assert _blas_threads() == [1] * len(free)
            assert backends.get("cython").describe()["blas_limited"]
        assert _blas_threads() == free


_SCRIPT = """
import numpy as np
from tinygrad_lite import _cpu
from tinygrad_lite.backends.cython_backend import CythonBackend
a = np.random.default_rng(0).standard_normal((37, 41)).astype(np.float32)
err = np.abs(CythonBackend().matmul(a, a.T) - a.astype(np.float64) @ a.T).max()
print(_cpu.isa(), err < 1e-3)
"""


@pytest.mark.parametrize("name", _cpu.supported_isas())
def test_env_var_forces_isa(name):
    env = dict(os.environ, TINYGRAD_LITE_CPU_ISA=name)
    out = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [name, "True"]


def test_env_var_unknown_isa_warns():
    env = dict(os.environ, TINYGRAD_LITE_CPU_ISA="avx9000")
    out = subprocess.run([sys.executable, "-W", "always", "-c",
                          "from tinygrad_lite import _cpu; print(_cpu.isa())"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "TINYGRAD_LITE_CPU_ISA" in out.stderr
    assert out.stdout.strip() == _cpu.supported_isas()[0]


@pytest.mark.parametrize("op,shapes,kw", [
    ("matmul", ((13, 37), (37, 5)), {}),
    ("conv2d", ((2, 4, 9, 9), (6, 2, 3, 3)), {"groups": 2, "padding": 1, "stride": 2}),
    ("max_pool2d", ((2, 3, 9, 9),), {"kernel": 3, "stride": 2, "padding": 1}),
    ("avg_pool2d", ((2, 3, 9, 9),), {"kernel": 2}),
    ("im2col", ((2, 3, 6, 7),), {"kernel": 3, "dilation": 2}),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_check_parity(op, shapes, kw, dtype):
    table = backends.check_parity(op, shapes, dtype=dtype, **kw)
    assert table and table.ok, str(table)
    assert {r["backend"] for r in table} == {"cython"}
    assert "max_abs" in str(table)


def test_check_parity_catches_a_wrong_backend(monkeypatch):
    cy = backends.get("cython")
    monkeypatch.setattr(cy, "conv2d_backward_weight",
                        lambda gy, x, ws, *a: np.zeros(ws, gy.dtype))
    table = backends.check_parity("conv2d", ((1, 2, 5, 5), (3, 2, 3, 3)))
    assert not table.ok and [r["output"] for r in table if not r["ok"]] == ["grad_w"]


def test_engine_gradcheck_with_cython_backend():
    from tinygrad_lite import Tensor
    from tinygrad_lite.nn import functional as F
    from tinygrad_lite.testing import gradcheck, gradgradcheck

    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((2, 4, 5, 6)), requires_grad=True)
    w = Tensor(rng.standard_normal((6, 2, 3, 2)), requires_grad=True)
    with backends.use("cython"):
        conv = lambda x, w: F.conv2d(x, w, stride=(2, 1), padding=1, groups=2)  # noqa: E731
        assert gradcheck(conv, [x, w])
        assert gradgradcheck(conv, [x, w])
        mp = lambda x: F.max_pool2d(x, 2, stride=2)  # noqa: E731
        avg = lambda x: F.avg_pool2d(x, 3, stride=2, padding=1)  # noqa: E731
        assert gradcheck(mp, [x]) and gradgradcheck(mp, [x])
        assert gradcheck(avg, [x]) and gradgradcheck(avg, [x])
        a = Tensor(rng.standard_normal((3, 4)), requires_grad=True)
        b = Tensor(rng.standard_normal((4, 5)), requires_grad=True)
        assert gradcheck(lambda a, b: a @ b, [a, b]) and gradgradcheck(lambda a, b: a @ b, [a, b])


# ---- review 2: shape validation, aliasing, ISA switching, BLAS limit, error types -------------

def test_pool_and_col2im_backward_shapes_are_checked(cy):
    """A gy/idx that does not fit x_shape under the pool geometry is a ShapeError, not a crash."""
    f = np.ones
    geo = ((2, 2), (2, 2), (0, 0))
    idx = np.zeros((1, 1, 2, 2), np.int64)
    for x_shape in [(2, 1, 4, 4), (1, 2, 4, 4), (1, 1, 8, 8), (64, 64, 8, 8)]:
        with pytest.raises(ShapeError, match=r"max_pool2d_backward: .*\(1, 1, 2, 2\)"):
            cy.max_pool2d_backward(f((1, 1, 2, 2)), idx, x_shape, *geo)
        with pytest.raises(ShapeError, match="avg_pool2d_backward"):
            cy.avg_pool2d_backward(f((1, 1, 2, 2)), x_shape, *geo)
    with pytest.raises(ShapeError, match="max_pool2d_backward"):
        cy.max_pool2d_backward(f((1, 1, 2, 2)), np.zeros((1, 1, 2, 1), np.int64), (1, 1, 4, 4),
                               *geo)
    with pytest.raises(DTypeError, match="max_pool2d_backward: idx .*float64"):
        cy.max_pool2d_backward(f((1, 1, 2, 2)), np.zeros((1, 1, 2, 2)), (1, 1, 4, 4), *geo)
    with pytest.raises(ShapeError, match="col2im: cols must have shape"):
        cy.col2im(f((2, 4, 4)), (1, 1, 3, 3), (2, 2), (1, 1), (0, 0), (1, 1))
    conv = ((1, 1), (0, 0), (1, 1), 1)
    with pytest.raises(ShapeError, match="conv2d_backward_weight: gy must have shape"):
        cy.conv2d_backward_weight(f((2, 3, 3, 3)), f((1, 2, 5, 5)), (3, 2, 3, 3), *conv)
    with pytest.raises(ShapeError, match="conv2d_backward_weight: w_shape"):
        cy.conv2d_backward_weight(f((1, 3, 3, 3)), f((1, 2, 5, 5)), (3, 2, 3), *conv)
    with pytest.raises(ShapeError, match="conv2d_backward_input: x_shape"):
        cy.conv2d_backward_input(f((1, 3, 3, 3)), f((3, 2, 3, 3)), (1, 2, 5), *conv)


def test_kernel_entry_points_check_shapes():
    """The _cpu def wrappers check shapes in O(1) and raise ValueError (never read out of
    bounds)."""
    f32 = np.float32
    z = np.zeros
    with pytest.raises(ValueError, match="gemm: shapes do not fit"):
        _cpu.gemm(z((3, 4), f32), z((2, 5), f32), False, False, z((3, 5), f32), False, 1)
    with pytest.raises(ValueError, match="gemm: shapes do not fit"):
        _cpu.gemm(z((3, 4), f32), z((4, 5), f32), False, False, z((3, 6), f32), False, 1)
    with pytest.raises(ValueError, match="gemm_naive: shapes do not fit"):
        _cpu.gemm_naive(z((3, 4), f32), z((4, 5), f32), True, False, z((3, 5), f32), False)
    a = z((4, 4), f32)
    with pytest.raises(ValueError, match="gemm: out overlaps an input"):
        _cpu.gemm(a, z((4, 4), f32), False, False, a, False, 1)
    with pytest.raises(ValueError, match="col2im: cols must have shape"):
        _cpu.col2im(z((1, 4, 3), f32), z((1, 1, 3, 3), f32), 2, 2, 1, 1, 0, 0, 1, 1, 1)
    with pytest.raises(ValueError, match="im2col: cols must have shape"):
        _cpu.im2col(z((1, 1, 3, 3), f32), z((1, 4, 3), f32), 2, 2, 1, 1, 0, 0, 1, 1, 1)
    with pytest.raises(ValueError, match="stride"):
        _cpu.im2col(z((1, 1, 3, 3), f32), z((1, 4, 4), f32), 2, 2, 0, 1, 0, 0, 1, 1, 1)
    x, w = z((1, 2, 5, 5), f32), z((3, 2, 3, 3), f32)
    with pytest.raises(ValueError, match="conv2d_forward: output size"):
        _cpu.conv2d_forward(x, w, z((1, 3, 4, 3), f32), 1, 1, 0, 0, 1, 1, 1, 1)
    with pytest.raises(ValueError, match="conv2d_forward: shapes do not fit"):
        _cpu.conv2d_forward(x, z((3, 1, 3, 3), f32), z((1, 3, 3, 3), f32), 1, 1, 0, 0, 1, 1, 1, 1)
    with pytest.raises(ValueError, match="conv2d_backward_input: shapes do not fit"):
        _cpu.conv2d_backward_input(z((2, 3, 3, 3), f32), w, x, 1, 1, 0, 0, 1, 1, 1, 1)
    with pytest.raises(ValueError, match="conv2d_backward_weight: output size"):
        _cpu.conv2d_backward_weight(z((1, 3, 2, 2), f32), x, w, 1, 1, 0, 0, 1, 1, 1, 1)
    gy, idx = z((1, 1, 2, 2), f32), z((1, 1, 2, 2), np.int64)
    with pytest.raises(ValueError, match="max_pool2d_backward: shapes do not fit"):
        _cpu.max_pool2d_backward(gy, idx, z((2, 1, 4, 4), f32), 1)
    with pytest.raises(ValueError, match="max_pool2d_forward"):
        _cpu.max_pool2d_forward(z((1, 1, 4, 4), f32), gy, z((1, 1, 3, 2), np.int64), 2, 2, 2, 2,
                                0, 0, 1)
    with pytest.raises(ValueError, match="avg_pool2d_forward: output size"):
        _cpu.avg_pool2d_forward(z((1, 1, 8, 8), f32), gy, 2, 2, 2, 2, 0, 0, 1)
    with pytest.raises(ValueError, match="avg_pool2d_backward"):
        _cpu.avg_pool2d_backward(gy, z((2, 1, 4, 4), f32), 2, 2, 2, 2, 0, 0, 1)


@pytest.mark.parametrize("n", [7, 200])
def test_matmul_out_aliasing_an_input(cy, n):
    """out= may be a or b (or overlap them): the result must still be a @ b."""
    rng = np.random.default_rng(5)
    for trans in (False, True):
        a = rng.standard_normal((n, n)).astype(np.float32)
        b = rng.standard_normal((n, n)).astype(np.float32)
        want = (a.T if trans else a).astype(np.float64) @ b
        res = cy.matmul(a, b, trans_a=trans, out=a)
        assert res is a
        np.testing.assert_allclose(a, want, atol=1e-3 * np.sqrt(n))
        a = rng.standard_normal((n, n)).astype(np.float32)
        want = a.astype(np.float64) @ b + b
        cy.matmul(a, b, out=b, accumulate=True)
        np.testing.assert_allclose(b, want, atol=1e-3 * np.sqrt(n))
    big = rng.standard_normal((n + 1, n)).astype(np.float32)
    a, out = big[:n], big[1:]                       # out overlaps a, shifted by one row
    want = a.astype(np.float64) @ b
    cy.matmul(a, b, out=out)
    np.testing.assert_allclose(out, want, atol=1e-3 * np.sqrt(n))


def test_set_isa_from_another_thread_during_gemm():
    """Every GEMM call snapshots the kernel table once: flipping the ISA from another thread
    never mixes MR/NR of two kernels inside a running call (this used to crash)."""
    import threading

    rng = np.random.default_rng(6)
    isas = _cpu.supported_isas()
    previous = _cpu.isa()
    stop = threading.Event()

    def flip():
        while not stop.is_set():
            for name in isas:
                _cpu.set_isa(name)

    t = threading.Thread(target=flip)
    t.start()
    bad = []
    try:
        for i in range(60):
            a = rng.standard_normal((301, 517)).astype(np.float32)
            b = rng.standard_normal((517, 203)).astype(np.float32)
            out = np.empty((301, 203), np.float32)
            _cpu.gemm(a, b, False, False, out, False, 2)
            x = rng.standard_normal((4, 3, 20, 20)).astype(np.float32)
            w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
            y = np.empty((4, 5, 18, 18), np.float32)
            _cpu.conv2d_forward(x, w, y, 1, 1, 0, 0, 1, 1, 1, 1 + i % 2)
            if np.abs(out - a.astype(np.float64) @ b).max() > 1e-2:
                bad.append(i)
    finally:
        stop.set()
        t.join()
        _cpu.set_isa(previous)
    assert not bad


def _blas_threads():
    from threadpoolctl import threadpool_info

    return [p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"]


def test_cython_calls_leave_numpy_blas_alone():
    """Calling the cython kernels while numpy is the active backend must not limit OpenBLAS."""
    pytest.importorskip("threadpoolctl")
    if not _blas_threads():
        pytest.skip("no BLAS library found by threadpoolctl")
    with backends.use("numpy"):
        before = _blas_threads()
        cy = backends.get("cython")
        cy.matmul(np.ones((3, 4)), np.ones((4, 5)))
        cy.conv2d(np.ones((1, 1, 4, 4)), np.ones((1, 1, 2, 2)), (1, 1), (0, 0), (1, 1), 1)
        backends.check_parity("matmul", ((3, 4), (4, 5)))
        assert _blas_threads() == before


def test_error_types_follow_the_house_style(cy):
    with pytest.raises(DTypeError, match="matmul: out .*float64.*float32"):
        cy.matmul(np.ones((3, 4)), np.ones((4, 2)), out=np.ones((3, 2), np.float32))
    with pytest.raises(ShapeError, match="max_pool2d: kernel must be a pair of ints"):
        cy.max_pool2d(np.ones((1, 1, 4, 4)), 2, (2, 2), (0, 0))
    with pytest.raises(ShapeError, match="conv2d: stride must be a pair of ints"):
        cy.conv2d(np.ones((1, 1, 4, 4)), np.ones((1, 1, 2, 2)), 1, (0, 0), (1, 1), 1)
    with pytest.raises(ShapeError, match="avg_pool2d: padding must be a pair"):
        cy.avg_pool2d(np.ones((1, 1, 4, 4)), (2, 2), (2, 2), (0.5, 0))
    y, _ = cy.max_pool2d(np.ones((1, 1, 4, 4)), (np.int64(2), 2), (2, np.int32(2)), (0, 0))
    assert y.shape == (1, 1, 2, 2)
