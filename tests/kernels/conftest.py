"""Fixtures for the CPU-kernel tests: skip everything (with the reason) when the extension is
missing, unless CI demands it (TINYGRAD_LITE_REQUIRE_KERNELS=1), and run each test on every ISA
variant this CPU supports."""

import os

import numpy as np
import pytest

from tinygrad_lite.backends import cython_backend

REQUIRED = os.environ.get("TINYGRAD_LITE_REQUIRE_KERNELS") == "1"

if not cython_backend.HAVE_CPU_KERNELS and not REQUIRED:
    pytest.skip(f"Cython kernels not built: {cython_backend._IMPORT_ERROR}",
                allow_module_level=True)

if cython_backend.HAVE_CPU_KERNELS:
    from tinygrad_lite import _cpu

    ISAS = _cpu.supported_isas()
else:
    ISAS = []


@pytest.fixture(params=ISAS)
def isa(request):
    """Force one ISA variant for the test, then restore the automatic choice."""
    previous = _cpu.set_isa(request.param)
    yield request.param
    _cpu.set_isa(previous)


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    from tinygrad_lite.backends import threads as th

    old = th.get_num_threads()
    th.set_num_threads(request.param)
    yield request.param
    th.set_num_threads(old)


@pytest.fixture(scope="session")
def ref():
    from tinygrad_lite.backends.numpy_backend import NumpyBackend

    return NumpyBackend()


@pytest.fixture(scope="session")
def cy():
    return cython_backend.CythonBackend()


def tol(dtype, k=1):
    """Tolerance for a sum of k products in dtype (grows like sqrt(k))."""
    eps = 2e-6 if np.dtype(dtype) == np.float32 else 1e-13
    return eps * max(1.0, np.sqrt(k)) * 10
