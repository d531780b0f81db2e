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
