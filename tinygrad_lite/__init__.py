"""tinygrad_lite: a small NumPy reverse-mode autograd engine.

>>> import tinygrad_lite as tl
>>> x = tl.Tensor([1.0, 2.0, 3.0], requires_grad=True)
>>> (x * x).sum().backward()
>>> x.grad
Tensor([2., 4., 6.])

Reading order: autograd.py -> tensor.py -> ops/ -> backends/numpy_backend.py -> kernels/cpu ->
nn/ -> optim/ -> models.py.
"""

from . import backends, ops  # noqa: F401  (ops: registers every op)
from .autograd import enable_grad, grad, is_grad_enabled, no_grad, set_grad_enabled
from .anomaly import detect_anomaly, is_anomaly_enabled
from .errors import (AnomalyError, BackendUnavailableError, DeviceError, DTypeError, GraphError,
                     JitError, LabelError, ModelFormatError, ShapeError, TinygradLiteError)
from .jit import jit
from .functions import (broadcast_to, cat, concatenate, matmul, maximum, minimum, split, stack,
                        where)
from .tensor import (Tensor, arange, default_generator, eye, full, manual_seed, ones, ones_like,
                     rand, randn, tensor, zeros, zeros_like)

from . import cuda  # noqa: E402,F401  (tl.cuda.is_available(); imports no CuPy)
from .io.checkpoint import load, save  # noqa: E402  (state dicts and checkpoints, no pickle)
from ._module_functions import (argmax, argmin, bool, device, double, exp, flatten,  # noqa: E402
                                float, float16, float32, float64, from_numpy, half, inference_mode,
                                int, int32, int64, log, log_softmax, long, max, mean, min, relu,
                                softmax, sum, uint8)

__version__ = "0.1.0"


def set_num_threads(n):
    """Threads used by our CPU kernels (the Cython backend)."""
    from .backends import threads

    threads.set_num_threads(n)


def get_num_threads():
    from .backends import threads

    return threads.get_num_threads()


__all__ = [
    "Tensor", "tensor", "zeros", "ones", "full", "arange", "eye", "randn", "rand", "zeros_like",
    "ones_like", "manual_seed", "default_generator", "no_grad", "enable_grad", "set_grad_enabled",
    "is_grad_enabled", "grad", "cat", "concatenate", "stack", "where", "maximum", "minimum",
    "matmul", "broadcast_to", "split", "set_num_threads", "get_num_threads",
    "TinygradLiteError", "ShapeError", "DTypeError", "DeviceError", "ModelFormatError",
    "BackendUnavailableError", "GraphError", "LabelError", "jit", "JitError",
    "save", "load", "from_numpy", "device", "cuda", "flatten", "max", "min", "argmax", "argmin",
    "sum", "mean",
    "exp", "log", "softmax", "log_softmax", "relu", "inference_mode", "float32", "float64",
    "float16", "half", "int64", "long", "int32", "int", "uint8", "float", "double", "bool",
    "detect_anomaly", "is_anomaly_enabled", "AnomalyError",
]


_LAZY = ("nn", "optim", "data", "io", "models", "layers", "metrics", "callbacks", "testing")


def __getattr__(name):
    """``tl.nn``, ``tl.optim``, ``tl.data``... imported on first use (as ``torch.nn`` is there after
    ``import torch``), so ``import tinygrad_lite`` itself stays fast."""
    if name in _LAZY:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
