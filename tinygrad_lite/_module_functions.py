"""Module-level names a PyTorch script calls: ``tl.max(x, 1)``, ``tl.flatten``, ``tl.from_numpy``,
``tl.device``, ``tl.inference_mode`` and the dtype objects. Each is a one-liner over a Tensor
method, so the rules (``dim`` vs ``axis``, see ``Tensor.max``) are the methods' rules.
"""

import builtins

import numpy as np

from .autograd import no_grad
from .tensor import Tensor


def _t(x):
    return x if isinstance(x, Tensor) else Tensor(x)


def from_numpy(array):
    """A Tensor sharing memory with ``array`` (its dtype kept), as ``torch.from_numpy``."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    return Tensor(array)


def flatten(input, start_dim=0, end_dim=-1):
    return _t(input).flatten(start_dim, end_dim)


def max(input, *args, **kwargs):
    """``tl.max(x)``: the maximum; ``tl.max(x, 1)``: ``(values, indices)``; ``tl.max(x, axis=1)``:
    values; ``tl.max(a, b)``: elementwise (see ``Tensor.max``)."""
    return _t(input).max(*args, **kwargs)


def min(input, *args, **kwargs):
    """As ``max``, for the minimum."""
    return _t(input).min(*args, **kwargs)


def argmax(input, *args, **kwargs):
    return _t(input).argmax(*args, **kwargs)


def argmin(input, *args, **kwargs):
    return _t(input).argmin(*args, **kwargs)


def sum(input, *args, **kwargs):
    return _t(input).sum(*args, **kwargs)


def mean(input, *args, **kwargs):
    return _t(input).mean(*args, **kwargs)


def exp(input):
    return _t(input).exp()


def log(input):
    return _t(input).log()


def relu(input):
    return _t(input).relu()


def softmax(input, dim=None, axis=-1):
    return _t(input).softmax(axis=axis, dim=dim)


def log_softmax(input, dim=None, axis=-1):
    return _t(input).log_softmax(axis=axis, dim=dim)


class inference_mode(no_grad):
    """``with tl.inference_mode(): ...``: no graph is recorded (our ``no_grad``; PyTorch's extra
    version-counter savings do not apply to a NumPy engine). ``inference_mode(False)`` records."""

    def __init__(self, mode=True):
        super().__init__()
        self.mode = not mode


class device(str):
    """``tl.device("cpu")`` / ``tl.device("cuda")``: a device name that is also a ``str``, so it
    goes anywhere a device string does (``Tensor(..., device=d)``, ``t.to(d)``)."""

    def __new__(cls, type_="cpu", index=None):
        name = str(type_)
        if index is not None:
            name = f"{name}:{builtins.int(index)}"
        if name.split(":")[0] not in ("cpu", "cuda"):
            from .errors import DeviceError

            raise DeviceError(f"device: unknown device type, got {name!r}; use 'cpu' or 'cuda'")
        return super().__new__(cls, name)

    @property
    def type(self):
        return self.split(":")[0]

    @property
    def index(self):
        return builtins.int(self.split(":")[1]) if ":" in self else None

    def __repr__(self):
        return f"device(type={self.type!r}" + ("" if self.index is None else
                                               f", index={self.index}") + ")"


# dtype objects: real NumPy dtypes, so ``dtype=tl.float32`` and ``t.to(tl.long)`` work and
# ``t.dtype == tl.float32`` compares as expected.
float32 = float = np.dtype(np.float32)
float64 = double = np.dtype(np.float64)
float16 = half = np.dtype(np.float16)
int64 = long = np.dtype(np.int64)
int32 = int = np.dtype(np.int32)
uint8 = np.dtype(np.uint8)
bool = np.dtype(np.bool_)
