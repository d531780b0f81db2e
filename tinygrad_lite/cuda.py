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


def is_available():
    """True when a CUDA device can run our GPU backend (CuPy installed and a device present)."""
    return device_count() > 0
