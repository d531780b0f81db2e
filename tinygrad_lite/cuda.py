"""``tl.cuda.is_available()`` / ``tl.cuda.device_count()``, as ``torch.cuda``: True only when
CuPy is installed and sees a CUDA device. Importing this module does not import CuPy."""


def device_count():
    """Number of CUDA devices CuPy sees (0 without CuPy or a driver)."""
    import importlib.util

    if importlib.util.find_spec("cupy") is None:
        return 0
    try:
        import cupy

        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # CUDARuntimeError without a driver, a broken install
        return 0


def unavailable_reason():
    """Why device="cuda" cannot run here, naming what is missing -- CuPy, the CUDA driver or a
    device -- or None when it can. Imports CuPy only when it is installed."""
    import importlib.util

    if importlib.util.find_spec("cupy") is None:
        return "CuPy is not installed (pip install tinygrad_lite[cuda])"
    try:
        import cupy
    except Exception as e:   # installed but broken (e.g. CUDA libraries missing)
        return f"CuPy is installed but does not import ({type(e).__name__}: {e})"
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as e:   # CUDARuntimeError
        text = f"{type(e).__name__}: {e}"
        if "NoDevice" in text or "no CUDA-capable device" in text:
            return f"no CUDA device found ({text})"
        return f"no usable CUDA driver ({text}); install the NVIDIA driver"
    if count < 1:
        return "no CUDA device found (CuPy sees 0 devices)"
    return None


def require(what="device='cuda'"):
    """The ``cupy`` module, or ``BackendUnavailableError`` saying which piece is missing. Once
    CUDA was found usable the answer is remembered (this runs for every CUDA tensor made)."""
    global _cupy
    if _cupy is not None:
        return _cupy
    reason = unavailable_reason()
    if reason is not None:
        from .errors import BackendUnavailableError

        raise BackendUnavailableError(f"{what}: CUDA is not available: {reason}")
    import cupy

    _cupy = cupy
    return cupy


_cupy = None   # the cupy module, once require() found CUDA usable


def is_available():
    """True when a CUDA device can run our GPU backend (CuPy installed and a device present)."""
    return device_count() > 0


# ---- the CUDA kernel sources ------------------------------------------------------------------

KERNEL_FILES = ("sgemm.cu", "conv2d.cu", "pool.cu")


def kernel_dir():
    """The folder of our ``.cu`` sources: ``tinygrad_lite/kernels_cuda`` in an installed package
    (setup.py copies ``kernels/cuda`` there), else ``kernels/cuda`` of a source checkout."""
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    for path in (os.path.join(here, "kernels_cuda"),
                 os.path.join(os.path.dirname(here), "kernels", "cuda")):
        if os.path.isfile(os.path.join(path, KERNEL_FILES[0])):
            return path
    raise FileNotFoundError(f"tinygrad_lite: the CUDA kernel sources ({', '.join(KERNEL_FILES)}) "
                            f"are in neither {os.path.join(here, 'kernels_cuda')} nor the "
                            "checkout's kernels/cuda; reinstall the package")


def kernel_source(name):
    """The text of one of ``KERNEL_FILES``."""
    import os

    with open(os.path.join(kernel_dir(), name), encoding="utf-8") as f:
        return f.read()
