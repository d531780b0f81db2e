"""The kernel-backend seam: which implementation runs matmul, conv and pooling.

``use("cython")`` switches globally, or for a ``with`` block; ``TINYGRAD_LITE_BACKEND`` picks the
start-up choice. The default is ``cython`` when the extension is built, else ``numpy`` (with a
one-line warning on first use that says how to build it). CuPy arrays always run on the ``cupy``
backend (or ``cublas`` when chosen with ``use``).
"""

import os
import threading
import warnings

from ..errors import BackendUnavailableError
from .base import Backend, conv_output_size  # noqa: F401
from .threads import limit_blas_threads  # noqa: F401

_lock = threading.Lock()
_loaded = {}      # name -> Backend instance
_missing = {}     # name -> reason it is not available
_active = None    # name of the CPU backend in use
_gpu_active = None


def _load_all():
    if _loaded or _missing:
        return
    with _lock:
        if _loaded or _missing:
            return
        from .numpy_backend import NumpyBackend

        _loaded["numpy"] = NumpyBackend()
        try:
            from .cython_backend import CythonBackend

            _loaded["cython"] = CythonBackend()
        except BackendUnavailableError as e:  # not built or disabled: the message says why
            _missing["cython"] = str(e)
        except Exception as e:  # a broken build
            from ._ext import build_hint

            _missing["cython"] = f"extension unusable ({type(e).__name__}: {e}); {build_hint()}"
        gpu_reason = _gpu_unavailable_reason()
        for name, cls_name in (("cupy", "CupyBackend"), ("cublas", "CublasBackend")):
            if gpu_reason:
                _missing[name] = gpu_reason
                continue
            try:
                from . import cupy_backend

                _loaded[name] = getattr(cupy_backend, cls_name)()
            except Exception as e:
                _missing[name] = f"{type(e).__name__}: {e}"


def _gpu_unavailable_reason():
    import importlib.util

    if importlib.util.find_spec("cupy") is None:
        return "CuPy is not installed (pip install tinygrad_lite[cuda])"
    if importlib.util.find_spec(__name__ + ".cupy_backend") is None:
        return "the CUDA kernels are not part of this build yet"
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "CuPy found no CUDA device"
    except Exception as e:  # CUDARuntimeError without a driver
        return f"no usable CUDA device ({type(e).__name__}: {e})"
    return None


def _default_name():
    env = os.environ.get("TINYGRAD_LITE_BACKEND")
    if env:
        if env not in _loaded:
            raise BackendUnavailableError(
                f"TINYGRAD_LITE_BACKEND: backend {env!r} is not available, got reason: "
                f"{_missing.get(env, 'unknown backend name')}; available: {sorted(_loaded)}")
        return env
    if "cython" in _loaded:
        return "cython"
    from ._ext import disabled_by_env

    if not disabled_by_env():          # asked for with the env var: nothing to warn about
        warnings.warn(not_built_message(), RuntimeWarning, stacklevel=3)
    return "numpy"


def not_built_message(package_dir=None):
    """The one-line warning of a process whose kernels are missing, with the fix for how this
    copy was installed."""
    from ._ext import build_hint

    return ("tinygrad_lite: Cython kernels not built in this install, using the numpy backend "
            f"(slower matmul, conv and pooling); {build_hint(package_dir)}")


def get(name):
    """The backend object called ``name`` (raises ``BackendUnavailableError`` with the reason)."""
    _load_all()
    if name not in _loaded:
        reason = _missing.get(name, f"unknown backend; known: {sorted(_loaded) + sorted(_missing)}")
        raise BackendUnavailableError(f"backends.get: backend {name!r} is not available, got "
                                      f"reason: {reason}")
    return _loaded[name]


def current():
    """The CPU backend in use."""
    global _active
    if _active is None:
        _load_all()
        _active = _default_name()
        _switch(None, _loaded[_active])
    return _loaded[_active]


def _switch(old, new):
    """Hand the cores from one CPU backend to another. With TINYGRAD_LITE_LIMIT_BLAS=1 the Cython
    backend holds OpenBLAS at one thread while it is active and gives them back after; by default
    it leaves OpenBLAS (the application's) alone."""
    if old is new:
        return
    if old is not None and hasattr(old, "deactivate"):
        old.deactivate()
    if new is not None and hasattr(new, "activate"):
        new.activate()


def current_for(array):
    """The backend that computes on ``array``: the GPU one for CuPy arrays, else ``current()``."""
    if type(array).__module__.split(".")[0] == "cupy":
        global _gpu_active
        if _gpu_active is None:
            _gpu_active = get("cupy").name
        return get(_gpu_active)
    return _loaded[_active] if _active is not None else current()


class use:
    """Select a backend: ``backends.use("numpy")`` or ``with backends.use("cython"): ...``."""

    def __init__(self, name):
        global _active, _gpu_active
        backend = get(name)
        current()
        self._prev = (_active, _gpu_active)
        if backend.xp.__name__ == "numpy":
            _switch(_loaded[_active], backend)
            _active = name
        else:
            _gpu_active = name
        self.backend = backend

    def __enter__(self):
        return self.backend

    def __exit__(self, *exc):
        global _active, _gpu_active
        if self.backend.xp.__name__ == "numpy":
            _switch(self.backend, _loaded[self._prev[0]])
        _active, _gpu_active = self._prev
        return False


def available():
    """``{name: (True, description) | (False, reason)}`` for every known backend."""
    _load_all()
    out = {name: (True, b.describe()) for name, b in _loaded.items()}
    out.update({name: (False, reason) for name, reason in _missing.items()})
    return out


def names():
    """Names of the available backends, reference first."""
    _load_all()
    return list(_loaded)


def describe():
    """A dict describing the active backend and every other one."""
    return {"active": current().name, "backends": available()}


def check_parity(*args, **kwargs):
    """Run one primitive on every available backend against numpy; see ``parity.check_parity``."""
    from .parity import check_parity as _check

    return _check(*args, **kwargs)
