"""The kernel-backend seam: which implementation runs matmul, conv and pooling.

The choice is per thread, like grad mode: ``use("cython")`` switches the calling thread (for the
rest of its life, or for a ``with`` block), and never another thread. Threads that made no choice
follow the process default: ``set_default(name)``, else ``TINYGRAD_LITE_BACKEND`` at start-up,
else ``cython`` when the extension is built, else ``numpy`` (with a one-line warning on first use
that says how to build it). CuPy arrays always run on the ``cupy`` backend (or ``cublas`` when
chosen with ``use``).
"""

import os
import threading
import warnings

from ..errors import BackendUnavailableError
from .base import Backend, conv_output_size  # noqa: F401
from .threads import limit_blas_threads  # noqa: F401

_lock = threading.RLock()
_loaded = {}      # name -> Backend instance
_missing = {}     # name -> reason it is not available
_active = None    # name of the process-default CPU backend
_gpu_active = None
class _ThreadChoice(threading.local):
    """This thread's own choice (None: the process default). Class-level defaults: reading an
    unset attribute of a plain threading.local raises internally, 4x slower on the hot path."""

    cpu = None
    gpu = None


_tls = _ThreadChoice()
_cpu_overrides = 0   # threads whose `use` chose a CPU backend of their own


def _publish():
    """Hand autograd the CPU backend of every thread (None while some thread uses its own), so
    each op reads one global instead of asking ``current()``."""
    from .. import autograd

    autograd._cpu_fixed = _loaded[_active] if _active is not None and not _cpu_overrides else None


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


_gpu_probed = False


def _load_gpu():
    """Probe CUDA and build the GPU backends, once, on first need (a GPU backend asked for by
    name, a CuPy array met, or the list of backends): CPU work never imports CuPy."""
    global _gpu_probed
    _load_all()
    if _gpu_probed:
        return
    with _lock:
        if _gpu_probed:
            return
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
        _gpu_probed = True


def _gpu_unavailable_reason():
    from ..cuda import unavailable_reason

    return unavailable_reason()


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
    if name not in _loaded and not _gpu_probed:
        _load_gpu()
    if name not in _loaded:
        reason = _missing.get(name, f"unknown backend; known: {sorted(_loaded) + sorted(_missing)}")
        raise BackendUnavailableError(f"backends.get: backend {name!r} is not available, got "
                                      f"reason: {reason}")
    return _loaded[name]


def current():
    """The CPU backend in use in this thread."""
    name = _tls.cpu
    if name is not None:
        return _loaded[name]
    return _loaded[_default()]


def _default():
    global _active
    if _active is None:
        _load_all()
        with _lock:
            if _active is None:
                name = _default_name()
                _switch(None, _loaded[name])
                _active = name
                _publish()
    return _active


def _switch(old, new):
    """Hand the cores from one CPU backend to another. With TINYGRAD_LITE_LIMIT_BLAS=1 the Cython
    backend holds OpenBLAS at one thread while it is active and gives them back after; by default
    it leaves OpenBLAS (the application's) alone. BLAS threads are per process, so with two
    threads on two backends the last switch wins (a speed matter only)."""
    if old is new:
        return
    if old is not None and hasattr(old, "deactivate"):
        old.deactivate()
    if new is not None and hasattr(new, "activate"):
        new.activate()


def current_for(array):
    """The backend that computes on ``array``: the GPU one for CuPy arrays, else ``current()``."""
    if type(array).__module__.split(".")[0] == "cupy":
        name = _tls.gpu or _gpu_active
        if name is None:
            name = get("cupy").name
        return get(name)
    name = _tls.cpu or _active
    return _loaded[name] if name is not None else current()


def get_default():
    """The name of the process-default CPU backend (what threads without ``use`` run on)."""
    return _default()


def set_default(name):
    """Set the process-wide backend, used by every thread that has not called ``use``."""
    global _active, _gpu_active
    backend = get(name)
    if backend.xp.__name__ == "numpy":
        old = _loaded[_default()]
        _active = name
        _switch(old, backend)
        _publish()
    else:
        _gpu_active = name
    return backend


class use:
    """Select a backend for the calling thread: ``backends.use("numpy")`` or
    ``with backends.use("cython"): ...`` (restored on exit). Other threads are not affected;
    ``set_default`` changes the process default."""

    def __init__(self, name):
        global _cpu_overrides
        backend = get(name)
        before = current()
        self._cpu = backend.xp.__name__ == "numpy"
        slot = "cpu" if self._cpu else "gpu"
        self._prev = getattr(_tls, slot)
        setattr(_tls, slot, name)
        if self._cpu:
            if self._prev is None:
                with _lock:
                    _cpu_overrides += 1
                    _publish()
            _switch(before, backend)
        self.backend = backend

    def __enter__(self):
        return self.backend

    def __exit__(self, *exc):
        global _cpu_overrides
        if self._cpu:
            _tls.cpu = self._prev
            if self._prev is None:
                with _lock:
                    _cpu_overrides -= 1
                    _publish()
            _switch(self.backend, current())
        else:
            _tls.gpu = self._prev
        return False


def available():
    """``{name: (True, description) | (False, reason)}`` for every known backend."""
    _load_gpu()
    out = {name: (True, b.describe()) for name, b in _loaded.items()}
    out.update({name: (False, reason) for name, reason in _missing.items()})
    return out


def names():
    """Names of the available backends, reference first."""
    _load_gpu()
    return list(_loaded)


def describe():
    """A dict describing the active backend and every other one."""
    return {"active": current().name, "backends": available()}


def check_parity(*args, **kwargs):
    """Run one primitive on every available backend against numpy; see ``parity.check_parity``."""
    from .parity import check_parity as _check

    return _check(*args, **kwargs)
