"""The optimizer base class: parameter groups, per-parameter state, checkpoints.

An optimizer owns a list of *parameter groups*. Each group is a dict holding ``'params'`` (a list of
parameters) and its own hyper-parameters (``'lr'``, ``'momentum'``, ...); keys a group leaves out
are filled from the optimizer's ``defaults``. ``step()`` walks every group and every parameter that
has a gradient, and calls the subclass's ``_update(param, grad, state, group)``, which changes
``param.data`` **in place** (the array keeps its dtype and device).

The engine contract is small on purpose, so any list of parameters works (a data-parallel wrapper
only has to average ``p.grad.data`` before ``step()``):

* ``p.data`` -- the NumPy (or CuPy) array of values, updated in place;
* ``p.grad`` -- ``None`` (the parameter is skipped) or a Tensor whose ``.data`` is the gradient.

Per-parameter state (momentum buffers, running averages, the step count) lives in
``optimizer.state[p]``. ``state_dict()`` turns it into plain data keyed by the parameter's index in
the order of the groups -- the PyTorch layout -- so a checkpoint does not depend on object ids.

Next: sgd.py, the seed's plain gradient descent and its momentum variants.
"""

import copy
import math
import sys
from collections.abc import MutableMapping

import numpy as np

from tinygrad_lite import _malloc
from tinygrad_lite.errors import ShapeError

__all__ = ["Optimizer", "array_module"]


def array_module(a):
    """The array module (``numpy`` or ``cupy``) that owns array ``a``.

    Looked up from the array's type, so CuPy is never imported here unless the array is a CuPy one.

    >>> array_module(np.zeros(2)) is np
    True
    """
    root = type(a).__module__.split(".")[0]
    if root == "numpy":
        return np
    mod = sys.modules.get(root)
    return mod if mod is not None and hasattr(mod, "zeros_like") else np


def _to_numpy(a):
    """A NumPy copy of ``a`` (CuPy arrays are copied to the host)."""
    if hasattr(a, "get") and not isinstance(a, np.ndarray):
        return a.get()
    return np.array(a, copy=True)


class _ParamState(MutableMapping):
    """``state[p] -> dict`` keyed by parameter identity (Tensors may define an elementwise ``==``).

    Like PyTorch's ``defaultdict(dict)``: reading a missing parameter gives (and stores) ``{}``.
    """

    def __init__(self):
        self._d = {}  # id(p) -> (p, state dict); keeping p alive keeps its id unique

    def __getitem__(self, p):
        if id(p) not in self._d:
            self._d[id(p)] = (p, {})
        return self._d[id(p)][1]

    def __setitem__(self, p, value):
        self._d[id(p)] = (p, value)

    def __delitem__(self, p):
        del self._d[id(p)]

    def __contains__(self, p):
        return id(p) in self._d

    def __iter__(self):
        return (p for p, _ in self._d.values())

    def __len__(self):
        return len(self._d)

    def __repr__(self):
        return f"_ParamState({len(self)} parameters)"


class Optimizer:
    """Base class of all optimizers (PyTorch semantics).

    Parameters
    ----------
    params : iterable
        Parameters, or dicts defining parameter groups (``{'params': [...], 'lr': 0.1}``).
    defaults : dict
        Default hyper-parameters, used for every key a group does not set.

    Subclasses set ``defaults``, validate them in ``_check(group)``, and implement
    ``_update(p, grad, state, group)``.
    """

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.state = _ParamState()
        self.param_groups = []
        if _is_param(params) or isinstance(params, dict):
            raise TypeError(
                f"{type(self).__name__}: params must be an iterable of parameters or of dicts, "
                f"got a single {type(params).__name__}; wrap it in a list"
            )
        if isinstance(params, (set, frozenset)):
            raise TypeError(
                f"{type(self).__name__}: parameters must be an ordered collection, got a set; "
                "use a list so the order (and the state_dict indices) stay the same between runs"
            )
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)
        _malloc.tune()   # a process that trains keeps its step arrays' pages (_malloc.py)

    # ---- parameter groups -----------------------------------------------------------------
    def add_param_group(self, param_group):
        """Add a group of parameters with its own hyper-parameters (e.g. a new layer to fine-tune).

        >>> from tinygrad_lite.optim import SGD              # doctest: +SKIP
        >>> opt = SGD(model.body.parameters(), lr=0.1)       # doctest: +SKIP
        >>> opt.add_param_group({"params": model.head.parameters(), "lr": 0.01})  # doctest: +SKIP
        """
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(
                f"{name}: a param group must be a dict, got {type(param_group).__name__}"
            )
        if "params" not in param_group:
            raise ValueError(
                f"{name}: a param group needs a 'params' key, got keys {sorted(param_group)}"
            )
        group = dict(param_group)
        params = group["params"]
        if _is_param(params):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(
                f"{name}: parameters must be an ordered collection, got a set; "
                "use a list so the order (and the state_dict indices) stay the same between runs"
            )
        params = list(params)
        for p in params:
            if not _is_param(p):
                raise TypeError(
                    f"{name}: can only optimize objects with a .data array and a .grad, "
                    f"got {type(p).__name__}"
                )
        group["params"] = params
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in params}) != len(params) or any(id(p) in seen for p in params):
            raise ValueError(f"{name}: some parameters appear more than once in the param groups")
        self._check(group)
        self.param_groups.append(group)

    def _check(self, group):
        """Validate one group's hyper-parameters (subclasses extend this)."""
        self._check_lr(group)

    # ---- the update -----------------------------------------------------------------------
    def zero_grad(self, set_to_none=True):
        """Clear every parameter's gradient: ``p.grad = None`` (default) or zero it in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.data[...] = 0

    def step(self, closure=None):
        """Apply one update to every parameter that has a gradient.

        ``closure`` (optional) re-evaluates the model and returns the loss; it is called first and
        its value returned (PyTorch semantics; optimizers here need one gradient per step).
        """
        loss = None
        if closure is not None:
            loss = closure()
        for group in self.param_groups:
            maximize = group.get("maximize", False)
            wd = group.get("weight_decay", 0)
            coupled = wd and not group.get("decoupled_weight_decay", False)
            items = []
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                grad = g.data if hasattr(g, "data") else g
                if grad.shape != p.data.shape:
                    raise ShapeError(
                        f"{type(self).__name__}.step: gradient shape differs from the parameter's, "
                        f"got grad {tuple(grad.shape)} and param {tuple(p.data.shape)}"
                    )
                if maximize:
                    grad = -grad
                if coupled:
                    grad = grad + wd * p.data      # L2 penalty wd/2 |theta|^2 in the gradient
                items.append((p, grad))
            self._update_group(items, group)
        return loss

    def _update(self, p, grad, state, group):
        """Update ``p.data`` in place. ``grad`` already has ``maximize`` and the coupled (L2)
        ``weight_decay`` applied by ``step``; ``state`` is this parameter's dict."""
        raise NotImplementedError

    def _update_group(self, items, group):
        """Update every ``(param, grad)`` pair of one group: ``_update`` on each. SGD and Adam
        override it to hand the whole group to one fused kernel call (optim/_fused.py)."""
        for p, grad in items:
            self._update(p, grad, self.state[p], group)

    # ---- checkpoints ----------------------------------------------------------------------
    def state_dict(self):
        """The state as plain data: ``{'state': {index: {...}}, 'param_groups': [...]}``.

        Parameters are numbered 0, 1, ... in group order; arrays are NumPy copies; each group
        lists its hyper-parameters and the indices of its parameters.
        """
        index = {}
        groups = []
        for g in self.param_groups:
            packed = {k: copy.deepcopy(v) for k, v in g.items() if k != "params"}
            packed["params"] = []
            for p in g["params"]:
                index.setdefault(id(p), len(index))
                packed["params"].append(index[id(p)])
            groups.append(packed)
        state = {}
        for p in self.state:
            if id(p) in index and self.state[p]:
                packed = {
                    k: _to_numpy(v) if _is_array(v) else copy.deepcopy(v)
                    for k, v in self.state[p].items() if not k.startswith("_")  # scratch
                }
                if packed:
                    state[index[id(p)]] = packed
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore a ``state_dict()``: hyper-parameters per group and per-parameter state.

        The optimizer must have been built over the same parameters in the same group layout;
        arrays are copied onto each parameter's device and dtype.
        """
        name = type(self).__name__
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{name}.load_state_dict: the number of param groups differs, "
                f"got {len(saved_groups)} saved and {len(self.param_groups)} here"
            )
        for i, (sg, g) in enumerate(zip(saved_groups, self.param_groups)):
            if len(sg["params"]) != len(g["params"]):
                raise ValueError(
                    f"{name}.load_state_dict: param group {i} has a different size, "
                    f"got {len(sg['params'])} saved parameters and {len(g['params'])} here"
                )
        saved_state = state_dict["state"]
        new_state = _ParamState()
        for sg, g in zip(saved_groups, self.param_groups):
            for idx, p in zip(sg["params"], g["params"]):
                st = saved_state.get(idx, saved_state.get(str(idx)))
                if st is None:
                    continue
                new_state[p] = {k: self._restore(p, k, v) for k, v in st.items()}
        for sg, g in zip(saved_groups, self.param_groups):
            for k, v in sg.items():
                if k != "params":
                    g[k] = copy.deepcopy(v)
        self.state = new_state

    def _restore(self, p, key, value):
        if not _is_array(value) or np.ndim(value) == 0 and key == "step":
            return value.item() if _is_array(value) else copy.deepcopy(value)
        if tuple(value.shape) != tuple(p.data.shape):
            raise ShapeError(
                f"{type(self).__name__}.load_state_dict: state '{key}' does not fit its parameter, "
                f"got {tuple(value.shape)} and parameter shape {tuple(p.data.shape)}"
            )
        xp = array_module(p.data)
        return xp.array(_to_numpy(value), dtype=p.data.dtype)

    # ---- validation helpers ---------------------------------------------------------------
    def _bad(self, key, value, rule):
        return ValueError(f"{type(self).__name__}: invalid {key}, got {key}={value!r}; {rule}")

    def _check_lr(self, group):
        lr = group["lr"]
        if not _is_real(lr) or not (math.isfinite(lr) and lr > 0):
            raise self._bad("lr", lr, "the learning rate must be a finite number > 0")

    def _check_nonneg(self, group, *keys):
        for key in keys:
            v = group[key]
            if not _is_real(v) or not (v >= 0 and math.isfinite(v)):
                raise self._bad(key, v, f"{key} must be a finite number >= 0")

    def _check_unit(self, key, v):
        if not _is_real(v) or not 0.0 <= v < 1.0:
            raise self._bad(key, v, f"{key} must lie in [0, 1)")

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(g):
                if k != "params":
                    lines.append(f"    {k}: {g[k]}")
        return "\n".join(lines) + "\n)"


def _is_array(v):
    return hasattr(v, "shape") and hasattr(v, "dtype")


def _is_param(p):
    return hasattr(p, "data") and hasattr(p, "grad") and _is_array(getattr(p, "data", None))


def _is_real(v):
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
