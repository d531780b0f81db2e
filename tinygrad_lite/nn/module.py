"""Module: the base class of every layer and model (PyTorch semantics).

A Module owns three ordered dictionaries, filled automatically by attribute assignment:

* ``_parameters`` -- trainable ``Parameter`` tensors (``self.weight = Parameter(...)``);
* ``_buffers``    -- non-trainable state saved with the model (BatchNorm's running statistics),
  registered with ``register_buffer``;
* ``_modules``    -- sub-modules (``self.fc1 = Linear(...)``).

Everything else follows from walking that tree: ``parameters()`` for the optimizer,
``state_dict()`` with dotted keys (``"features.0.weight"``) for saving, ``train()``/``eval()``
for layers that behave differently while training (Dropout, BatchNorm).

Next: linear.py (the simplest layer), then losses.py.
"""

from collections import OrderedDict, namedtuple

import numpy as np

from ..errors import ShapeError, TinygradLiteError
from ..tensor import Tensor
from .parameter import Parameter

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


def _to_numpy(v):
    """A state-dict value (our Tensor, a NumPy array, a torch tensor, a CuPy array) as NumPy."""
    if isinstance(v, Tensor):
        return v.numpy()
    if hasattr(v, "detach") and hasattr(v, "cpu"):  # torch.Tensor, without importing torch
        return v.detach().cpu().numpy()
    if hasattr(v, "get") and type(v).__module__.split(".")[0] == "cupy":
        return v.get()
    return np.asarray(v)


def _state_copy(t):
    return np.array(t.numpy(), copy=True).view(StateArray)


class StateArray(np.ndarray):
    """A ``state_dict()`` value: a NumPy array (a copy, on the host) that also has ``.numpy()``,
    so PyTorch code's ``sd[k].numpy()`` works; ``Tensor(v)`` or ``tl.from_numpy(v)`` make it a
    Tensor."""

    def numpy(self):
        return self.view(np.ndarray)


class Module:
    """Base class for layers and models: subclass it, assign layers in ``__init__``, write
    ``forward``.

    Examples
    --------
    >>> class MLP(Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc1 = Linear(2, 8)
    ...         self.fc2 = Linear(8, 1)
    ...     def forward(self, x):
    ...         return self.fc2(self.fc1(x).relu())
    >>> [name for name, _ in MLP().named_parameters()]
    ['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias']
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_hooks", [])
        object.__setattr__(self, "training", True)

    # ---- registration -------------------------------------------------------------------
    def _dicts(self, name):
        try:
            return object.__getattribute__(self, name)
        except AttributeError:
            raise AttributeError(
                f"{type(self).__name__}: Module.__init__() was not called; call "
                "super().__init__() first in your __init__"
            ) from None

    def __setattr__(self, name, value):
        params, bufs, mods = (
            self._dicts("_parameters"),
            self._dicts("_buffers"),
            self._dicts("_modules"),
        )
        if isinstance(value, Parameter):
            self._forget(name)
            params[name] = value
        elif isinstance(value, Module):
            self._forget(name)
            mods[name] = value
        elif name in params:
            if value is not None:
                raise TypeError(
                    f"{type(self).__name__}: cannot assign {type(value).__name__} "
                    f"to parameter {name!r}; wrap it in nn.Parameter or use None"
                )
            params[name] = None
        elif name in bufs:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(
                    f"{type(self).__name__}: buffer {name!r} must be a Tensor or "
                    f"None, got {type(value).__name__}"
                )
            bufs[name] = value
        elif name in mods:
            if value is not None:
                raise TypeError(
                    f"{type(self).__name__}: cannot assign {type(value).__name__} "
                    f"to sub-module {name!r}"
                )
            mods[name] = None
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name):
        for d in (self._parameters, self._buffers, self._modules):
            d.pop(name, None)
        self.__dict__.pop(name, None)

    def __getattr__(self, name):  # only called when normal lookup fails
        for d in ("_parameters", "_buffers", "_modules"):
            store = self.__dict__.get(d)
            if store is not None and name in store:
                return store[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for d in (self._parameters, self._buffers, self._modules):
            if name in d:
                del d[name]
                return
        object.__delattr__(self, name)

    def register_parameter(self, name, param):
        """Add a Parameter (or None, a declared but absent one such as ``bias=False``)."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"register_parameter: expected a Parameter or None, got {type(param).__name__}"
            )
        self._forget(name)
        self._parameters[name] = param

    def register_buffer(self, name, tensor, persistent=True):
        """Add non-trainable state (a Tensor or None) that ``state_dict`` saves unless
        ``persistent=False``, and that ``to()`` moves and casts with the parameters."""
        if tensor is not None and not isinstance(tensor, Tensor):
            tensor = Tensor(np.asarray(tensor))
        self._forget(name)
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)

    def add_module(self, name, module):
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: expected a Module, got {type(module).__name__}")
        self._forget(name)
        self._modules[name] = module

    register_module = add_module

    # ---- traversal ----------------------------------------------------------------------
    def named_modules(self, prefix="", memo=None):
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(f"{prefix}.{name}" if prefix else name, memo)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        for name, m in self._modules.items():
            if m is not None:
                yield name, m

    def children(self):
        for _, m in self.named_children():
            yield m

    def _named(self, attr, prefix, recurse):
        seen = set()
        mods = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mprefix, m in mods:
            for name, t in getattr(m, attr).items():
                if t is None or id(t) in seen:
                    continue
                seen.add(id(t))
                yield (f"{mprefix}.{name}" if mprefix else name), t

    def named_parameters(self, prefix="", recurse=True):
        """(dotted name, Parameter) pairs; a parameter shared by two layers appears once."""
        return self._named("_parameters", prefix, recurse)

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix="", recurse=True):
        return self._named("_buffers", prefix, recurse)

    def buffers(self, recurse=True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def num_parameters(self, trainable_only=False):
        """Total number of scalar parameters (``trainable_only``: those with requires_grad)."""
        return sum(p.size for p in self.parameters() if p.requires_grad or not trainable_only)

    def apply(self, fn):
        """Call ``fn(module)`` on every sub-module (children first) and on self, e.g. to
        re-initialize weights; returns self."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # ---- modes and gradients -----------------------------------------------------------
    def train(self, mode=True):
        """Training mode (Dropout drops, BatchNorm uses batch statistics); returns self."""
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        """Evaluation mode, ``train(False)``: Dropout is the identity, BatchNorm uses its running
        statistics. It does not turn off gradients: use ``no_grad()`` for that."""
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        """Freeze (False) or unfreeze every parameter, e.g. for fine-tuning; returns self."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        """Clear ``.grad`` of every parameter (None, or zeros with ``set_to_none=False``)."""
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.data[...] = 0

    # ---- device and dtype -------------------------------------------------------------
    def to(self, target):
        """Move (``"cpu"``/``"cuda"``) or cast (a float dtype) every parameter and floating
        buffer in place: the Parameter objects stay the same, so an optimizer built before
        keeps working. Integer buffers (``num_batches_tracked``) keep their dtype."""
        if isinstance(target, str) and target.split(":")[0] in ("cpu", "cuda"):
            convert = _device_converter(target)
            cast = False
        else:
            dtype = np.dtype(target)
            if dtype.kind != "f":
                raise TypeError(
                    f"Module.to: only floating dtypes can be applied to a module, got {dtype}"
                )

            def convert(a):
                return a.astype(dtype, copy=False)

            cast = True
        for t in list(self.parameters()) + list(self.buffers()):
            if cast and t.dtype.kind != "f":
                continue
            t.data = convert(t.data)
            if t.grad is not None:
                t.grad.data = convert(t.grad.data)
        return self

    def double(self):
        """Cast floating parameters and buffers to float64 (for gradient checks)."""
        return self.to(np.float64)

    def float(self):
        return self.to(np.float32)

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    # ---- state dict --------------------------------------------------------------------
    def state_dict(self, prefix=""):
        """Parameters and persistent buffers as ``{dotted name: NumPy array}`` (copies, on the
        host), with PyTorch's key names, so weights move to and from PyTorch with a plain dict.
        The values are arrays, not Tensors (a deliberate difference from PyTorch); each is a
        ``StateArray`` whose ``.numpy()`` works as on a Tensor. ``tl.save(sd, path)`` stores it.

        >>> Linear(3, 2).state_dict().keys()
        odict_keys(['weight', 'bias'])
        """
        out = OrderedDict()
        for mprefix, m in self.named_modules(prefix.rstrip(".")):
            for name, p in m._parameters.items():
                if p is not None:
                    out[f"{mprefix}.{name}" if mprefix else name] = _state_copy(p)
            for name, b in m._buffers.items():
                if b is not None and name not in m._non_persistent:
                    out[f"{mprefix}.{name}" if mprefix else name] = _state_copy(b)
        return out

    def _state_slots(self):
        slots = OrderedDict()
        for mprefix, m in self.named_modules():
            for d in (m._parameters, m._buffers):
                for name, t in d.items():
                    if t is not None and (d is m._parameters or name not in m._non_persistent):
                        slots[f"{mprefix}.{name}" if mprefix else name] = t
        return slots

    def load_state_dict(self, state_dict, strict=True):
        """Copy values from ``state_dict`` (arrays, our Tensors or torch tensors) into the
        parameters and buffers, in place, keeping each one's dtype and device.

        A shape mismatch always raises; with ``strict=True`` (default) missing and unexpected
        keys raise too, all of them named in one message. Returns
        ``IncompatibleKeys(missing_keys, unexpected_keys)``.
        """
        slots = self._state_slots()
        missing = [k for k in slots if k not in state_dict]
        unexpected = [k for k in state_dict if k not in slots]
        values, mismatched = {}, []
        for k, t in slots.items():
            if k in state_dict:
                v = _to_numpy(state_dict[k])
                if tuple(v.shape) != tuple(t.shape):
                    mismatched.append(f"{k}: checkpoint {tuple(v.shape)} vs model {t.shape}")
                values[k] = v
        problems = []
        if mismatched:
            problems.append("shape mismatch for " + "; ".join(mismatched))
        if strict and missing:
            problems.append(f"missing keys {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys {unexpected}")
        if problems:
            msg = (
                f"{type(self).__name__}.load_state_dict: the state dict does not fit the model, "
                f"got {', '.join(problems)}; check the architecture, or pass strict=False to "
                "skip missing/unexpected keys"
            )
            raise ShapeError(msg) if mismatched else StateDictKeyError(msg)
        for k, v in values.items():
            t = slots[k]
            # a copy in C order (as PyTorch copies into the parameter's own layout): a
            # transposed source would otherwise slow every later kernel call
            t.data = t.xp.ascontiguousarray(t.xp.asarray(v).astype(t.dtype, copy=True))
        return IncompatibleKeys(missing, unexpected)

    # ---- calling -----------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(
            f"{type(self).__name__}: subclasses of Module must define forward()"
        )

    def register_forward_hook(self, hook):
        """``hook(module, inputs, output)`` runs after every forward; returns a handle with
        ``remove()``."""
        self._forward_hooks.append(hook)
        hooks = self._forward_hooks

        class _Handle:
            def remove(self):
                if hook in hooks:
                    hooks.remove(hook)

        return _Handle()

    def register_forward_pre_hook(self, hook):
        """``hook(module, inputs)`` runs before every forward; a non-None return replaces the
        inputs (a tuple, or one value). Returns a handle with ``remove()`` (used by prune.py)."""
        if "_forward_pre_hooks" not in self.__dict__:
            object.__setattr__(self, "_forward_pre_hooks", [])
        hooks = self._forward_pre_hooks
        hooks.append(hook)

        class _Handle:
            def remove(self):
                if hook in hooks:
                    hooks.remove(hook)

        return _Handle()

    def _hooked(self):
        """True when forward hooks or forward pre-hooks are registered (fast paths that skip
        ``__call__``, such as the predict plan and fused Linear+ReLU, must then step aside)."""
        return bool(self._forward_hooks) or bool(self.__dict__.get("_forward_pre_hooks"))

    def __call__(self, *args, **kwargs):
        for hook in list(self.__dict__.get("_forward_pre_hooks", ())):
            new = hook(self, args)
            if new is not None:
                args = new if isinstance(new, tuple) else (new,)
        out = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks):
            hook(self, args, out)
        return out

    # ---- printing ----------------------------------------------------------------------
    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = []
        for name, m in self._modules.items():
            body = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n" + "\n".join(lines) + "\n)"

    def summary(self, input_shape, dtype=np.float32, batch_size=2):
        """A Keras-like table of every leaf layer: name, type, output shape and parameter count.

        ``input_shape`` excludes the batch axis; the model runs once on zeros of shape
        ``(batch_size, *input_shape)`` in eval mode without gradients (its mode is restored).
        Returns the table as a string (see summary.py).

        >>> print(Sequential(Linear(4, 8), ReLU(), Linear(8, 1)).summary((4,)))  # doctest: +SKIP
        """
        from .summary import summarize

        return summarize(self, input_shape, dtype, batch_size)


class StateDictKeyError(TinygradLiteError, KeyError):
    """Missing or unexpected keys in ``load_state_dict(strict=True)``."""

    def __str__(self):  # KeyError would quote the whole message
        return self.args[0]


def _device_converter(device):
    if device.startswith("cuda"):
        from ..cuda import require
        from ..tensor import _note_cuda

        cupy = require("Module.to('cuda')")
        _note_cuda()
        return cupy.asarray

    def to_host(a):
        return a if isinstance(a, np.ndarray) else a.get()

    return to_host
