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


def test_blas_limited_while_active(cy):
    pytest.importorskip("threadpoolctl")
    from threadpoolctl import threadpool_info

    cy.activate()
    blas = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    if blas:
        assert all(p["num_threads"] == 1 for p in blas)


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
