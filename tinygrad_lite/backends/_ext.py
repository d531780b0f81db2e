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


DISABLED_REASON = "disabled by TINYGRAD_LITE_DISABLE_KERNELS=1"


def disabled_by_env():
    return os.environ.get("TINYGRAD_LITE_DISABLE_KERNELS") == "1"


def build_hint(package_dir=None):
    """How to get the kernels built, for the way this copy of the package was installed: a
    source checkout (editable install) builds in place; an installed copy is reinstalled."""
    from pathlib import Path

    pkg = Path(package_dir) if package_dir is not None else Path(__file__).resolve().parents[1]
    root = pkg.parent
    if (root / "setup.py").is_file() and (root / "kernels" / "cpu").is_dir():
        return (f"build them in the checkout with `python setup.py build_ext --inplace` (in "
                f"{root}; needs a C compiler and Cython>=3)")
    return ("install a C compiler (gcc or clang), then reinstall: `pip install --force-reinstall "
            "--no-cache-dir tinygrad_lite`")
