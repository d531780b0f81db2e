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
from .functions import FORWARDED as _FORWARDED
from .functions import einsum, meshgrid
from .tensor import (Tensor, arange, default_generator, eye, full, manual_seed, ones, ones_like,
                     rand, randn, tensor, zeros, zeros_like)
from .tensor import (empty, empty_like, full_like, get_default_dtype, linspace, logspace,
                     rand_like, randint, randn_like, set_default_dtype)
from .errors import AxisError
from .returns import ValuesIndices
from .functions import FORWARDED_FUNCTIONS as _FORWARDED_FUNCTIONS

globals().update(_FORWARDED_FUNCTIONS)

from . import cuda  # noqa: E402,F401  (tl.cuda.is_available(); imports no CuPy)
from ._module_functions import (argmax, argmin, bool, device, double, exp, flatten,  # noqa: E402
                                float, float16, float32, float64, from_numpy, half, inference_mode,
                                int, int32, int64, log, log_softmax, long, max, mean, min, relu,
                                softmax, sum, uint8)

__version__ = "0.1.0"


def save(obj, path):
    """Save a state dict, or a nested dict of tensors/arrays (optimizer state too), to ``path``:
    safetensors for flat dicts, npz for nested ones; atomic, never pickle. See io.checkpoint."""
    from .io.checkpoint import save as _save   # io loads on first use (import stays fast)

    return _save(obj, path)


def load(path, **kwargs):
    """Load what ``save`` wrote (or any safetensors file: a dict of Tensors). See io.checkpoint."""
    from .io.checkpoint import load as _load

    return _load(path, **kwargs)


def trace(names=None, full_max=12):
    """``with tl.trace() as t: loss.backward()`` records a narrated backward trace: each node
    the walk visits, its rule, the gradient it got and what it sent (see tracing.Trace)."""
    from .tracing import Trace   # loads on first use (import stays fast)

    return Trace(names, full_max)


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
    "AxisError", "ValuesIndices", "einsum", "meshgrid", "empty", "empty_like", "full_like",
    "linspace", "logspace", "rand_like", "randn_like", "randint", "set_default_dtype",
    "get_default_dtype", "trace",
] + list(_FORWARDED)

# Submodules load on first use (PEP 562), so ``import tinygrad_lite`` stays fast and
# ``tl.nn.Linear`` works without ``import tinygrad_lite.nn``.
_LAZY_SUBMODULES = ("nn", "optim", "models", "layers", "data", "metrics", "io", "testing",
                    "callbacks", "returns", "einsum", "viz", "explain", "flops", "tracing")


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        import importlib

        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'tinygrad_lite' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_SUBMODULES))
