"""Magnitude pruning (PyTorch's ``torch.nn.utils.prune``): zero the smallest weights and keep
them zero while training.

Pruning ``module.weight`` re-registers it the way PyTorch does:

* ``module.weight_orig`` -- the Parameter (the optimizer keeps updating all of it);
* ``module.weight_mask`` -- a buffer of 0s and 1s with the weight's shape and dtype;
* ``module.weight`` -- a plain attribute, ``weight_orig * weight_mask``, recomputed by a forward
  pre-hook before every call. The product is part of the graph, so a pruned entry gets a zero
  gradient and contributes nothing however the optimizer moves ``weight_orig``.

``state_dict()`` then holds ``weight_orig`` and ``weight_mask`` (PyTorch's keys). ``remove``
makes the pruning permanent: ``weight`` becomes a Parameter holding the masked values again.

Amounts: a float in [0, 1] is a fraction of the entries still unpruned, an int a count;
``round(amount * n)`` entries go (Python's round, as PyTorch). Pruning an already pruned weight
again removes that many of the *remaining* entries, so repeated ``l1_unstructured(m, "weight",
0.5)`` calls leave 50%, 25%, ... of the weights (PyTorch's ``PruningContainer``).

>>> from tinygrad_lite import nn                                            # doctest: +SKIP
>>> net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))    # doctest: +SKIP
>>> pairs = [(net[0], "weight"), (net[2], "weight")]                      # doctest: +SKIP
>>> prune.global_unstructured(pairs, amount=0.8)                           # doctest: +SKIP
>>> prune.sparsity(net)      # {'0.weight': 0.79..., '2.weight': 0.83...}    # doctest: +SKIP
>>> prune.remove(net[0], "weight"); prune.remove(net[2], "weight")          # doctest: +SKIP

Next: ../io/, where a pruned model's ``weight_orig``/``weight_mask`` are saved like any state.
"""

import numbers

import numpy as np

from ..tensor import Tensor
from .parameter import Parameter

__all__ = ["identity", "l1_unstructured", "random_unstructured", "global_unstructured",
           "custom_from_mask", "remove", "is_pruned", "sparsity", "global_sparsity",
           "L1Unstructured", "RandomUnstructured"]


# ------------------------------------------------------------------ masks ---

def _n_to_prune(op, amount, n):
    """The number of entries to prune out of ``n`` for a float fraction or an int count."""
    if isinstance(amount, bool) or not isinstance(amount, numbers.Real):
        raise TypeError(f"{op}: amount must be a float in [0, 1] or an int count, got "
                        f"{type(amount).__name__}")
    if isinstance(amount, numbers.Integral):
        if not 0 <= amount <= n:
            raise ValueError(f"{op}: amount must be a count in [0, {n}] (the entries still "
                             f"unpruned), got amount={amount}")
        return int(amount)
    if not 0.0 <= float(amount) <= 1.0:
        raise ValueError(f"{op}: amount as a fraction must be in [0, 1], got amount={amount}")
    return round(float(amount) * n)


class L1Unstructured:
    """Prune the entries with the smallest absolute value (``scores`` = the weights)."""

    name = "l1_unstructured"

    def __init__(self, amount):
        self.amount = amount

    def mask_of(self, scores, n_prune):
        """A 0/1 mask over the flat ``scores`` with ``n_prune`` zeros at the smallest |score|."""
        keep = np.ones(scores.size, dtype=bool)
        if n_prune:
            keep[np.argsort(np.abs(scores), kind="stable")[:n_prune]] = False
        return keep


class RandomUnstructured(L1Unstructured):
    """Prune ``amount`` entries chosen uniformly at random (the library's generator)."""

    name = "random_unstructured"

    def mask_of(self, scores, n_prune):
        from ..tensor import default_generator

        keep = np.ones(scores.size, dtype=bool)
        if n_prune:
            keep[default_generator().permutation(scores.size)[:n_prune]] = False
        return keep


def _host(a):
    return a if isinstance(a, np.ndarray) else a.get()


def _combine(method, scores, old_mask, op):
    """The new 0/1 mask: prune among the entries ``old_mask`` keeps (PruningContainer)."""
    alive = old_mask.reshape(-1) != 0
    live_scores = scores.reshape(-1)[alive]
    n_prune = _n_to_prune(op, method.amount, live_scores.size)
    new = np.zeros(scores.size, dtype=bool)
    new[np.flatnonzero(alive)] = method.mask_of(live_scores, n_prune)
    return new.reshape(scores.shape)


# --------------------------------------------------------------- the hook ---

class _MaskHook:
    """The forward pre-hook: ``module.<name> = module.<name>_orig * module.<name>_mask``."""

    def __init__(self, name):
        self.name = name
        self.handle = None

    def apply(self, module):
        orig = getattr(module, self.name + "_orig")
        mask = getattr(module, self.name + "_mask")
        object.__setattr__(module, self.name, orig * mask)

    def __call__(self, module, inputs):
        self.apply(module)


def _hooks(module):
    return module.__dict__.setdefault("_prune_hooks", {})


def _check_param(op, module, name):
    from .module import Module

    if not isinstance(module, Module):
        raise TypeError(f"{op}: expected an nn.Module, got {type(module).__name__}")
    if hasattr(module, "weight_tensors") and hasattr(module, "get_config"):
        # a Keras-style layer: Sequential's fused-loss path reads Dense.kernel outside __call__,
        # where the forward pre-hook would not refresh the masked weight
        raise TypeError(f"{op}: Keras-style layers (tinygrad_lite.layers) are not supported yet, "
                        f"got {type(module).__name__}; prune nn modules (nn.Linear, nn.Conv2d)")
    if name in _hooks(module):
        return getattr(module, name + "_orig")
    p = module._parameters.get(name)
    if p is None:
        have = [k for k, v in module._parameters.items() if v is not None]
        raise ValueError(f"{op}: {type(module).__name__} has no parameter {name!r}, got "
                         f"parameters {have}")
    return p


def _set_mask(module, name, keep):
    """Install (or update) ``name_orig``/``name_mask`` and the hook; keep is a bool array."""
    hooks = _hooks(module)
    if name in hooks:
        mask = module._buffers[name + "_mask"]
        mask.data = mask.xp.asarray(keep.astype(mask.dtype))
    else:
        p = module._parameters[name]
        del module._parameters[name]
        module.register_parameter(name + "_orig", p)
        xp = p.xp
        module.register_buffer(name + "_mask", Tensor(xp.asarray(keep.astype(p.dtype))))
        hook = _MaskHook(name)
        hook.handle = module.register_forward_pre_hook(hook)
        hooks[name] = hook
    hooks[name].apply(module)
    return module


def _prune(op, method, module, name, importance_scores):
    p = _check_param(op, module, name)
    scores = _host(p.data if importance_scores is None else _array(importance_scores))
    if scores.shape != tuple(p.shape):
        raise ValueError(f"{op}: importance_scores must have the parameter's shape "
                         f"{tuple(p.shape)}, got {scores.shape}")
    old = _host(module._buffers[name + "_mask"].data) if name in _hooks(module) else \
        np.ones(scores.shape)
    return _set_mask(module, name, _combine(method, scores, old, op))


def _array(a):
    return a.data if isinstance(a, Tensor) else np.asarray(a)


# ---------------------------------------------------------------- the API ---

def identity(module, name):
    """Install an all-ones mask (PyTorch's ``prune.identity``): same API, nothing pruned."""
    p = _check_param("identity", module, name)
    old = _host(module._buffers[name + "_mask"].data) if name in _hooks(module) else \
        np.ones(tuple(p.shape))
    return _set_mask(module, name, old != 0)


def l1_unstructured(module, name, amount, importance_scores=None):
    """Prune ``amount`` of ``module.<name>``'s entries with the smallest magnitude.

    Parameters
    ----------
    module : nn.Module
    name : the parameter's name, e.g. ``"weight"``
    amount : float in [0, 1] (fraction of the unpruned entries) or int (a count)
    importance_scores : array of the parameter's shape ranked instead of the weights
    """
    return _prune("l1_unstructured", L1Unstructured(amount), module, name, importance_scores)


def random_unstructured(module, name, amount):
    """Prune ``amount`` of ``module.<name>``'s unpruned entries, chosen at random."""
    return _prune("random_unstructured", RandomUnstructured(amount), module, name, None)


def custom_from_mask(module, name, mask):
    """Prune where ``mask`` (an array of the parameter's shape) is 0, on top of any mask."""
    p = _check_param("custom_from_mask", module, name)
    mask = _host(_array(mask))
    if mask.shape != tuple(p.shape):
        raise ValueError(f"custom_from_mask: mask must have the parameter's shape "
                         f"{tuple(p.shape)}, got {mask.shape}")
    old = _host(module._buffers[name + "_mask"].data) if name in _hooks(module) else 1
    return _set_mask(module, name, (mask != 0) & (np.asarray(old) != 0))


def global_unstructured(parameters, pruning_method=L1Unstructured, importance_scores=None,
                        **kwargs):
    """Prune across several parameters at once: the ``amount`` smallest entries of them all.

    Parameters
    ----------
    parameters : iterable of ``(module, name)`` pairs
    pruning_method : ``L1Unstructured`` (default) or ``RandomUnstructured``
    importance_scores : ``{(module, name): array}`` ranked instead of those weights
    amount : float in [0, 1] or int, counted over all the parameters' unpruned entries

    An already pruned parameter is ranked by its masked values (``module.<name>``) and keeps
    its pruned entries pruned, as in PyTorch.
    """
    op = "global_unstructured"
    parameters = list(parameters)
    if not parameters:
        raise ValueError(f"{op}: parameters must hold (module, name) pairs, got none")
    if "amount" not in kwargs:
        raise TypeError(f"{op}: amount= is needed, got keyword arguments {sorted(kwargs)}")
    if not (isinstance(pruning_method, type) and issubclass(pruning_method, L1Unstructured)):
        raise TypeError(f"{op}: pruning_method must be L1Unstructured or RandomUnstructured, "
                        f"got {pruning_method!r}")
    importance_scores = importance_scores or {}
    scores, masks, shapes = [], [], []
    for module, name in parameters:
        p = _check_param(op, module, name)
        pruned = name in _hooks(module)
        if (module, name) in importance_scores:
            s = _host(_array(importance_scores[(module, name)]))
        else:
            s = _host((getattr(module, name) if pruned else p).data)
        if s.shape != tuple(p.shape):
            raise ValueError(f"{op}: importance scores for {type(module).__name__}.{name} must "
                             f"have shape {tuple(p.shape)}, got {s.shape}")
        scores.append(s.reshape(-1))
        masks.append(_host(module._buffers[name + "_mask"].data).reshape(-1) if pruned
                     else np.ones(s.size))
        shapes.append(s.shape)
    keep = _combine(pruning_method(**kwargs), np.concatenate(scores), np.concatenate(masks), op)
    start = 0
    for (module, name), shape in zip(parameters, shapes):
        n = int(np.prod(shape))
        _set_mask(module, name, keep[start:start + n].reshape(shape))
        start += n


def is_pruned(module):
    """True if ``module`` or any of its sub-modules has a pruning mask."""
    return any(m.__dict__.get("_prune_hooks") for m in module.modules())


def remove(module, name):
    """Make the pruning permanent: ``module.<name>`` becomes a Parameter holding
    ``<name>_orig * <name>_mask``; the mask, the original and the hook are gone."""
    hooks = _hooks(module)
    if name not in hooks:
        raise ValueError(f"remove: parameter {name!r} of {type(module).__name__} is not pruned, "
                         f"got pruned parameters {sorted(hooks)}")
    hook = hooks.pop(name)
    orig = module._parameters[name + "_orig"]
    mask = module._buffers[name + "_mask"]
    hook.handle.remove()
    del module._parameters[name + "_orig"]
    del module._buffers[name + "_mask"]
    module.__dict__.pop(name, None)
    module.register_parameter(name, Parameter(Tensor(orig.data * mask.data),
                                              requires_grad=orig.requires_grad))
    return module


def sparsity(module):
    """``{"<module path>.<name>": fraction of zero entries}`` for every pruned parameter, with
    the entries counted from the effective (masked) weight."""
    out = {}
    for prefix, m in module.named_modules():
        for name in m.__dict__.get("_prune_hooks", {}):
            w = _host((m._parameters[name + "_orig"].data * m._buffers[name + "_mask"].data))
            out[f"{prefix}.{name}" if prefix else name] = float(np.mean(w == 0))
    return out


def global_sparsity(module):
    """The fraction of zero entries over all pruned parameters of ``module`` together."""
    zeros = total = 0
    for _, m in module.named_modules():
        for name in m.__dict__.get("_prune_hooks", {}):
            w = _host((m._parameters[name + "_orig"].data * m._buffers[name + "_mask"].data))
            zeros += int(np.count_nonzero(w == 0))
            total += w.size
    return zeros / total if total else 0.0
