"""The Tensor: an array, an optional gradient, and the op that made it.

A Tensor wraps a NumPy (or CuPy) array in ``.data``. If ``requires_grad`` is set, ops applied to
it record a graph (see autograd.py) and ``backward()`` fills ``.grad`` of every leaf that asked
for one. Methods are thin: each calls a registered Function from ``ops/`` or composes a few.

Dtypes: float32 by default for Python floats and lists (``set_default_dtype`` changes it); NumPy
arrays keep their dtype (float64 stays float64, as ``torch.from_numpy``). Python scalars in
arithmetic are weak, as PyTorch: they take the tensor's dtype when their kind fits (an int tensor
plus 0.5, int / int and exp of an int give the default float dtype). A float tensor with an int
tensor gives the float's dtype; mixed float32/float64 operands follow NumPy (float64).

Next: ops/elementwise.py, the simplest Functions.
"""

import threading

import numpy as np

from . import autograd
from .errors import DeviceError, DTypeError, ShapeError

_DEFAULT_FLOAT = np.float32
_new = object.__new__


class _Generator:
    """The library's random generator, reseeded by ``manual_seed``."""

    rng = np.random.default_rng()


def manual_seed(seed):
    """Seed every random draw of the library (factories, init, dropout, shuffling)."""
    _Generator.rng = np.random.default_rng(seed)
    return _Generator.rng


class _ThreadRng(threading.local):
    rng = None   # set by using_generator for this thread


_thread_rng = _ThreadRng()


def default_generator():
    """The generator of this thread's random draws: the one a running ``fit(seed=...)`` owns
    (see ``using_generator``), else the process-wide one ``manual_seed`` reseeds."""
    return _thread_rng.rng or _Generator.rng


class using_generator:
    """``with using_generator(rng):`` draws in this thread come from ``rng`` (None: no change),
    so two seeded trainings in two threads draw exactly what they would draw one after the
    other."""

    def __init__(self, rng):
        self.rng = rng

    def __enter__(self):
        self.prev = _thread_rng.rng
        if self.rng is not None:
            _thread_rng.rng = self.rng
        return self.rng

    def __exit__(self, *exc):
        _thread_rng.rng = self.prev
        return False


def _xp_of(a):
    return np if isinstance(a, (np.ndarray, np.generic)) else _cupy_module_of(a)


def _cupy_module_of(a):
    mod = type(a).__module__.split(".")[0]
    if mod == "cupy":
        import cupy

        return cupy
    return np


# True once this process has made a CUDA tensor. Until then no device check runs anywhere (the
# CPU path pays one global read per op at most); see autograd's device-mismatch check.
CUDA_SEEN = False


def _note_cuda():
    global CUDA_SEEN
    CUDA_SEEN = True
    autograd._cuda_seen = True


def _to_array(data, dtype, device):
    if device is None:   # keep the data where it is
        device = "cuda" if type(data).__module__.split(".")[0] == "cupy" else "cpu"
    if device not in ("cpu", "cuda") and not str(device).startswith("cuda"):
        raise DeviceError(f"Tensor: unknown device, got {device!r}; use 'cpu' or 'cuda'")
    if str(device).startswith("cuda"):
        from .cuda import require

        cupy = require("Tensor(device='cuda')")
        _note_cuda()
        if dtype is None and not hasattr(data, "dtype"):   # lists and floats: default float
            data = np.asarray(data)
            if data.dtype == np.float64:
                data = data.astype(_DEFAULT_FLOAT)
        arr = cupy.asarray(data, dtype=dtype)
    elif isinstance(data, np.ndarray):
        arr = data if dtype is None else data.astype(dtype, copy=False)
    else:
        if type(data).__module__.split(".")[0] == "cupy":
            arr = data.get()
        else:
            arr = np.asarray(data)
        if dtype is not None:
            arr = arr.astype(dtype, copy=False)
        elif arr.dtype == np.float64 and not isinstance(data, np.generic):
            arr = arr.astype(_DEFAULT_FLOAT)
    if dtype is None and arr.dtype.kind not in "fiub":
        raise DTypeError(f"Tensor: unsupported dtype, got {arr.dtype}; use a float, int or "
                         "bool array")
    return arr


class Tensor:
    """An n-dimensional array that can record the ops applied to it.

    Parameters
    ----------
    data : array-like, scalar or Tensor
    requires_grad : bool, record ops for ``backward()`` (float dtypes only)
    dtype : NumPy dtype; default float32 for Python floats, the array's own for arrays
    device : "cpu" or "cuda" (CuPy); default: where ``data`` already is

    Examples
    --------
    >>> x = Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad.numpy()           # d(sum x^2)/dx = 2x
    array([[2., 4.],
           [6., 8.]], dtype=float32)
    """

    __slots__ = ("data", "grad", "_requires_grad", "_node", "_retains_grad", "_hooks",
                 "__weakref__")
    __array_ufunc__ = None  # ndarray * Tensor -> Tensor.__rmul__, not an object array
    __array_priority__ = 1000

    def __init__(self, data, requires_grad=False, dtype=None, device=None):
        if isinstance(data, Tensor):
            data = data.data
        self.data = _to_array(data, dtype, device)
        self.grad = None
        self._node = None
        self._retains_grad = False
        self._hooks = None
        self._requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _wrap(cls, data, requires_grad):
        """A Tensor around ``data`` as it is: no checks, no copy (for arrays the library made)."""
        t = _new(cls)
        t.data, t.grad, t._node, t._retains_grad, t._hooks = data, None, None, False, None
        t._requires_grad = requires_grad
        return t

    # ---- attributes ---------------------------------------------------------------------
    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value):
        self.requires_grad_(value)

    def requires_grad_(self, requires_grad=True):
        if requires_grad and self.data.dtype.kind != "f":
            raise DTypeError(f"requires_grad: only floating-point tensors can require "
                             f"gradients, got dtype {self.data.dtype}; convert with .float()")
        if not requires_grad and self._node is not None:
            raise autograd.GraphError("requires_grad_: cannot turn off gradients of a non-leaf "
                                      "tensor; use .detach()")
        self._requires_grad = bool(requires_grad)
        return self

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def size(self):
        return self.data.size

    def numel(self):
        return self.data.size

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    @property
    def xp(self):
        return _xp_of(self.data)

    @property
    def device(self):
        return "cpu" if self.xp is np else "cuda"

    @property
    def is_leaf(self):
        return self._node is None

    @property
    def grad_fn(self):
        """The recorded op that made this tensor, as a ``graph.GradFn`` (None for a leaf)."""
        if self._node is None:
            return None
        from .graph import GradFn

        return GradFn(self._node)

    @property
    def T(self):
        return self.permute(tuple(range(self.ndim - 1, -1, -1)))

    def numpy(self):
        """The data as a NumPy array (copied to the host for CUDA tensors)."""
        return self.data if self.xp is np else self.data.get()

    def item(self):
        if self.size != 1:
            raise ShapeError(f"item: only one-element tensors convert to a Python scalar, got "
                             f"shape {self.shape}")
        return self.data.reshape(()).item()

    def tolist(self):
        return self.numpy().tolist()

    def detach(self):
        """A new leaf sharing the data, cut from the graph."""
        return Tensor._wrap(self.data, False)

    def retain_grad(self):
        """Keep ``.grad`` for this non-leaf tensor during backward."""
        self._retains_grad = True
        return self

    def register_hook(self, hook):
        """Call ``hook(grad)`` when this tensor's gradient is complete during backward; a
        non-None return value replaces the gradient (for ``.grad`` and for everything upstream).
        Returns a handle whose ``remove()`` takes the hook off.

        >>> x = Tensor([1.0, 2.0], requires_grad=True)
        >>> h = x.register_hook(lambda g: g * 2)
        >>> (x * 3).sum().backward()
        >>> x.grad
        Tensor([6., 6.])
        """
        if not self.requires_grad:
            raise autograd.GraphError("register_hook: cannot register a hook on a tensor that "
                                      "does not require grad; create it with requires_grad=True")
        if not callable(hook):
            raise TypeError(f"register_hook: hook must be callable, got {type(hook).__name__}")
        from .graph import RemovableHandle

        if self._hooks is None:
            self._hooks = []
        self._hooks.append(hook)
        return RemovableHandle(self, hook)

    def __array__(self, dtype=None, copy=None):
        if self.xp is not np:   # as CuPy's own arrays: no silent device-to-host copy
            raise TypeError("Implicit conversion of a CUDA tensor to a NumPy array is not "
                            "allowed; copy it explicitly with .numpy() (or .cpu())")
        a = self.numpy()
        if dtype is not None:
            a = a.astype(dtype, copy=False)
        return a.copy() if copy else a

    def __repr__(self):
        body = np.array2string(self.numpy(), separator=", ", prefix="Tensor(")
        extra = ""
        if self.dtype != _DEFAULT_FLOAT and self.dtype.kind == "f" or self.dtype.kind != "f":
            extra += f", dtype={self.dtype}"
        if self.device != "cpu":
            extra += f", device='{self.device}'"
        if self._node is not None:
            extra += f", grad_fn=<{self._node.fn.op_name}>"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"Tensor({body}{extra})"

    def __hash__(self):
        return id(self)

    def __bool__(self):
        if self.size != 1:
            raise ValueError(f"bool: the truth value of a tensor with {self.size} elements is "
                             "ambiguous; use .any() or .all()")
        return bool(self.data)

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self.dtype.kind not in "iu":
            raise TypeError("only integer tensors can be used as an index")
        return int(self.item())

    # ---- backward -----------------------------------------------------------------------
    def backward(self, gradient=None, retain_graph=False, create_graph=False, trace=False):
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires grad.

        ``gradient`` is the upstream dL/d(self); it may be omitted for a scalar. The graph is
        freed afterwards unless ``retain_graph``; ``create_graph`` records the backward pass
        itself for higher-order derivatives. ``trace=True`` records a narrated trace of the walk
        and returns it (a ``tracing.Trace``: print it, or ``.markdown()``, ``.to_dot()``); a
        dict name -> Tensor or a Module in place of True names the leaves.
        """
        if trace is not False and trace is not None:
            from .tracing import Trace

            with Trace(names=None if trace is True else trace) as t:
                self.backward(gradient, retain_graph, create_graph)
            return t
        g = autograd._default_grad(self, gradient, "backward", cached=not create_graph)
        autograd.run_backward((self,), (g,), retain_graph or create_graph, create_graph)

    def _accumulate_grad(self, g, create_graph):
        # The first gradient is copied: backward rules may hand the same array to several
        # inputs (add) or a read-only broadcast view, and optimizers/clipping edit .grad in place.
        # ``g`` is a Tensor on the graph walk (create_graph) and a raw array on the lean walk.
        if create_graph:
            self.grad = g if self.grad is None else self.grad + g
            return
        if type(g) is not np.ndarray and isinstance(g, Tensor):
            g = g.data
        if self.grad is None:
            self.grad = Tensor._wrap(g.copy(order="K") if type(g) is np.ndarray else
                                     _xp_of(g).array(g, copy=True), False)
        else:
            self.grad.data = self.grad.data + g

    def _take_grad(self, g):
        """``_accumulate_grad`` for a gradient array that nothing else holds (a fresh result
        of the lean walk or of a replayed step): the first one becomes ``.grad`` as it is,
        without the copy; later ones are added."""
        if self.grad is None:
            self.grad = Tensor._wrap(g, False)
        else:
            self._accumulate_grad(g, False)

    def zero_(self):
        self.data[...] = 0
        return self

    # ---- conversion ---------------------------------------------------------------------
    def astype(self, dtype):
        from .ops.elementwise import Cast

        dtype = np.dtype(dtype)
        if dtype == self.dtype:
            return self
        if dtype.kind != "f":   # an integer/bool result carries no gradient (as PyTorch)
            return Tensor._wrap(self.data.astype(dtype), False)
        return Cast.apply(self, dtype=dtype)

    def float(self):
        return self.astype(np.float32)

    def double(self):
        return self.astype(np.float64)

    def long(self):
        return self.astype(np.int64)

    def to(self, target=None, dtype=None, device=None):
        """``to("cpu"|"cuda")`` moves the data (as a new leaf); ``to(dtype)`` casts;
        ``to(device=..., dtype=...)`` does both; ``to(other_tensor)`` takes its dtype."""
        if isinstance(target, Tensor):
            target = target.dtype
        if dtype is not None or device is not None:
            out = self if target is None else self.to(target)
            out = out if device is None else out.to(str(device))
            return out if dtype is None else out.astype(dtype)
        if target is None:
            return self
        if isinstance(target, str):
            if target == self.device or (target.startswith("cuda") and self.device == "cuda"):
                return self
            t = Tensor(self.numpy() if target == "cpu" else self.data, device=target)
            t.requires_grad_(self.requires_grad)
            return t
        return self.astype(target)

    def cpu(self):
        """This tensor on the CPU (itself when already there; else a copy, as a new leaf)."""
        return self.to("cpu")

    def cuda(self):
        """This tensor on the GPU (itself when already there; else a copy, as a new leaf)."""
        return self.to("cuda")

    def clone(self):
        return self * 1


from . import _tensor_methods  # noqa: E402,F401  (attaches the op methods to Tensor)


# ------------------------------------------------------------------ factories ---


def _factory(array, dtype, requires_grad, device):
    return Tensor(array, dtype=dtype or _DEFAULT_FLOAT, requires_grad=requires_grad,
                  device=device)


def _shape(shape):
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape


def zeros(*shape, dtype=None, requires_grad=False, device="cpu"):
    return _factory(np.zeros(_shape(shape)), dtype, requires_grad, device)


def ones(*shape, dtype=None, requires_grad=False, device="cpu"):
    return _factory(np.ones(_shape(shape)), dtype, requires_grad, device)


def full(shape, fill_value, dtype=None, requires_grad=False, device="cpu"):
    return _factory(np.full(shape, fill_value), dtype, requires_grad, device)


def zeros_like(t, dtype=None, requires_grad=False):
    return Tensor(t.xp.zeros_like(t.data, dtype=dtype), requires_grad=requires_grad)


def ones_like(t, dtype=None, requires_grad=False):
    return Tensor(t.xp.ones_like(t.data, dtype=dtype), requires_grad=requires_grad)


def arange(start, stop=None, step=1, dtype=None, requires_grad=False, device="cpu"):
    a = np.arange(start, stop, step) if stop is not None else np.arange(start)
    if dtype is None and a.dtype.kind == "f":
        dtype = _DEFAULT_FLOAT
    return Tensor(a, dtype=dtype, requires_grad=requires_grad, device=device)


def eye(n, m=None, dtype=None, requires_grad=False, device="cpu"):
    return _factory(np.eye(n, m), dtype, requires_grad, device)


def randn(*shape, dtype=None, requires_grad=False, device="cpu", generator=None):
    rng = generator or _Generator.rng
    return _factory(rng.standard_normal(_shape(shape)), dtype, requires_grad, device)


def rand(*shape, dtype=None, requires_grad=False, device="cpu", generator=None):
    rng = generator or _Generator.rng
    return _factory(rng.random(_shape(shape)), dtype, requires_grad, device)


def tensor(data, requires_grad=False, dtype=None, device=None):
    return Tensor(data, requires_grad=requires_grad, dtype=dtype, device=device)


# ------------------------------------------------------------------ default dtype, creation ---


def set_default_dtype(dtype):
    """The float dtype of Python floats, lists and factories (float32 or float64)."""
    global _DEFAULT_FLOAT
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise DTypeError(f"set_default_dtype: must be float32 or float64, got {dt}")
    _DEFAULT_FLOAT = dt.type


def get_default_dtype():
    return np.dtype(_DEFAULT_FLOAT)


def linspace(start, end, steps, dtype=None, requires_grad=False, device="cpu"):
    """``steps`` evenly spaced values from start to end, both included."""
    return _factory(np.linspace(start, end, int(steps)), dtype, requires_grad, device)


def logspace(start, end, steps, base=10.0, dtype=None, requires_grad=False, device="cpu"):
    """base ** linspace(start, end, steps)."""
    return _factory(np.logspace(start, end, int(steps), base=base), dtype, requires_grad, device)


def empty(*shape, dtype=None, requires_grad=False, device="cpu"):
    """An uninitialised tensor (zero-filled here: never reads stale memory)."""
    return _factory(np.zeros(_shape(shape)), dtype, requires_grad, device)


def full_like(t, fill_value, dtype=None, requires_grad=False):
    return Tensor(t.xp.full_like(t.data, fill_value, dtype=dtype), requires_grad=requires_grad)


def empty_like(t, dtype=None, requires_grad=False):
    return zeros_like(t, dtype=dtype, requires_grad=requires_grad)


def _float_like(t, dtype):
    dt = dtype or (t.dtype if t.dtype.kind == "f" else _DEFAULT_FLOAT)
    return np.dtype(dt)


def rand_like(t, dtype=None, requires_grad=False, generator=None):
    rng = generator or _Generator.rng
    return Tensor(rng.random(t.shape), dtype=_float_like(t, dtype), requires_grad=requires_grad,
                  device=t.device)


def randn_like(t, dtype=None, requires_grad=False, generator=None):
    rng = generator or _Generator.rng
    return Tensor(rng.standard_normal(t.shape), dtype=_float_like(t, dtype),
                  requires_grad=requires_grad, device=t.device)


def randint(low, high=None, size=(), dtype=np.int64, device="cpu", generator=None):
    """Integers uniform in [low, high) (``randint(high, size)`` draws from [0, high))."""
    if high is None:
        low, high = 0, low
    if high <= low:
        raise ValueError(f"randint: high must be > low, got low={low}, high={high}")
    rng = generator or _Generator.rng
    size = (size,) if isinstance(size, int) else tuple(size)
    return Tensor(rng.integers(low, high, size=size), dtype=dtype, device=device)
