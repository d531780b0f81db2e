"""Where the compiled CPU kernels come from: ``tinygrad_lite._cpu``, unless it is not built or
``TINYGRAD_LITE_DISABLE_KERNELS=1`` hides it (CI runs the suite once that way, so the pure-NumPy
fallback is exercised on a machine that has the extension)."""

import os


def load_cpu_kernels():
    """``(module, None)`` when the extension can be used, else ``(None, the ImportError)``."""
    if os.environ.get("TINYGRAD_LITE_DISABLE_KERNELS") == "1":
        return None, ImportError("disabled by TINYGRAD_LITE_DISABLE_KERNELS=1")
    try:
        from .. import _cpu
    except ImportError as e:  # not built: the registry falls back to numpy and says why
        return None, e
    return _cpu, None
