"""Reverse-mode automatic differentiation: Functions, the graph they leave, and the walk back.

How it works, in one paragraph. Every differentiable op is a ``Function`` with a ``forward`` that
computes on raw arrays and a ``backward`` that, given dL/d(output), returns dL/d(input) for each
input. ``Function.apply`` runs ``forward`` and, when any input needs a gradient, records a ``Node``
on the output: which Function ran, its ``Context`` (what forward saved) and the input Tensors.
``backward()`` orders the recorded nodes topologically (iteratively, so a 100,000-op chain does
not overflow the stack), then walks them from the output back to the leaves, calling each
``backward`` and summing the gradients of tensors used more than once (chain rule + sum rule).

Backward rules are written with Tensor operations, not raw arrays. With ``create_graph=False`` the
walk runs in no-grad mode, so those Tensor operations are just array math. With
``create_graph=True`` grad mode stays on, the backward pass records its own graph, and the
gradients it returns can be differentiated again (Hessian-vector products, gradient penalties).

Next: tensor.py (the Tensor class and its methods), then ops/.
"""

import threading
from contextlib import ContextDecorator

import numpy as np

from .errors import GraphError, ShapeError

# ------------------------------------------------------------------ grad mode ---

_state = threading.local()


def is_grad_enabled():
    """True when operations are recorded for backward (the default)."""
    return getattr(_state, "enabled", True)


class set_grad_enabled(ContextDecorator):
    """Context manager / decorator that turns graph recording on or off."""

    def __init__(self, mode):
        self.mode = bool(mode)

    def __enter__(self):
        self.prev = is_grad_enabled()
        _state.enabled = self.mode

    def __exit__(self, *exc):
        _state.enabled = self.prev
        return False


class no_grad(set_grad_enabled):
    """Disable graph recording: ``with no_grad(): ...`` or ``@no_grad()``.

    >>> with no_grad():
    ...     y = x * 2          # y.requires_grad is False
    """

    def __init__(self):
        super().__init__(False)


class enable_grad(set_grad_enabled):
    """Re-enable graph recording inside a ``no_grad`` block."""

    def __init__(self):
        super().__init__(True)


# ------------------------------------------------------------------ registry ---

REGISTRY = {}


def register(name):
    """Class decorator: record a Function under ``name`` so tests can find every op."""

    def deco(cls):
        if name in REGISTRY:
            raise RuntimeError(f"register: op name {name!r} is used twice")
        cls.op_name = name
        REGISTRY[name] = cls
        return cls

    return deco


# ------------------------------------------------------------------ functions ---


class Context:
    """What a forward pass leaves for its backward pass.

    ``ctx.save(*arrays)`` keeps arrays; in backward, ``ctx.saved_tensors`` gives them back as
    Tensors. An array that *is* one of the inputs or the output comes back as that very Tensor,
    still attached to the graph, so a backward rule that uses it stays differentiable.
    Anything else (masks, indices, shapes) goes on ``ctx`` as plain attributes.
    """

    __slots__ = ("xp", "backend", "needs_input_grad", "_saved", "saved_tensors", "__dict__")

    def __init__(self, xp, backend):
        self.xp = xp
        self.backend = backend
        self._saved = ()
        self.saved_tensors = ()

    def save(self, *arrays):
        self._saved = arrays


class Node:
    """One recorded application of a Function: the edge list of the graph."""

    __slots__ = ("fn", "ctx", "parents", "freed")

    def __init__(self, fn, ctx, parents):
        self.fn = fn
        self.ctx = ctx
        self.parents = parents
        self.freed = False


class Function:
    """Base class of every differentiable op.

    Subclasses define ``forward(ctx, *arrays, **attrs) -> array`` and
    ``backward(ctx, grad_output) -> tuple`` with one entry (a Tensor or None) per positional input.
    Keyword arguments are non-differentiable attributes (axes, strides, ...).
    """

    op_name = None
    differentiable = True

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad_output):
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **attrs):
        Tensor = _Tensor or _bind()
        tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in inputs]
        arrays = [t.data for t in tensors]
        backend = _current_for(arrays[0])
        ctx = Context(backend.xp, backend)
        out_data = cls.forward(ctx, *arrays, **attrs)
        if _anomaly:
            _anomaly_forward(cls, ctx, arrays, out_data)
        flags = [t._requires_grad for t in tensors]
        needs = True in flags and cls.differentiable and getattr(_state, "enabled", True)
        out = Tensor._wrap(out_data, needs)
        if needs:
            ctx.needs_input_grad = flags
            if ctx._saved:
                ctx.saved_tensors = [_as_graph_tensor(a, tensors, out) for a in ctx._saved]
                ctx._saved = ()
            out._node = Node(cls, ctx, tensors)
        return out


_Tensor = None
_current_for = None


def _bind():
    """Late-bind Tensor and the backend lookup (they import this module)."""
    global _Tensor, _current_for
    from .backends import current_for
    from .tensor import Tensor

    _Tensor, _current_for = Tensor, current_for
    return Tensor


def _as_graph_tensor(a, inputs, out):
    if a is out.data:
        return out
    for t in inputs:
        if a is t.data:
            return t
    return _Tensor._wrap(a, False)


# ------------------------------------------------------------------ anomaly mode ---

_anomaly = 0   # > 0 inside anomaly.detect_anomaly(): one global read per op when it is off


def _anomaly_forward(cls, ctx, arrays, out):
    from .anomaly import check_forward

    check_forward(cls, ctx, arrays, out)


def _anomaly_backward(node, g):
    from .anomaly import checked_backward

    return checked_backward(node, g)


# ------------------------------------------------------------------ backward ---


def _topo_order(roots):
    """Nodes reachable from ``roots`` (Tensors), outputs first. Iterative DFS, no recursion."""
    order, seen = [], set()
    stack = [(t, False) for t in roots]
    while stack:
        t, done = stack.pop()
        if done:
            order.append(t)
            continue
        if id(t) in seen:
            continue
        seen.add(id(t))
        stack.append((t, True))
        node = t._node
        if node is not None:
            for p in node.parents:
                if p.requires_grad and id(p) not in seen:
                    stack.append((p, False))
    order.reverse()
    return order


def sum_to_shape(g, shape):
    """Undo broadcasting: sum the gradient ``g`` (a Tensor) down to ``shape``.

    If y = broadcast(x), every element of x fed several elements of y, so dL/dx is the sum of
    their gradients (the sum rule). Leading axes that broadcasting added are summed away; axes
    where x had size 1 are summed with keepdims.
    """
    shape = tuple(shape)
    if g.shape == shape:
        return g
    from .ops.reduce import Sum

    lead = g.ndim - len(shape)
    if g.shape[lead:] == shape:      # only leading axes were added (a bias): one sum, no reshape
        return Sum.apply(g, axis=tuple(range(lead)), keepdims=False)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, s in enumerate(shape) if s == 1 and g.shape[i + lead] != 1
    )
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


def run_backward(outputs, grad_outputs, retain_graph=False, create_graph=False, inputs=None):
    """The reverse walk shared by ``Tensor.backward`` and ``grad``.

    ``inputs=None`` accumulates into ``.grad`` of leaves; otherwise returns the gradients of
    ``inputs`` (and touches no ``.grad``).
    """
    from .tensor import Tensor

    grads = {}
    for t, g in zip(outputs, grad_outputs):
        if not t.requires_grad:
            raise GraphError(
                "backward: the tensor does not require grad and has no grad_fn; "
                "create its inputs with requires_grad=True"
            )
        grads[id(t)] = g if id(t) not in grads else grads[id(t)] + g
    wanted = None if inputs is None else {id(t) for t in inputs}
    captured = {}
    with set_grad_enabled(create_graph):
        for t in _topo_order(outputs):
            g = grads.pop(id(t), None)
            if g is None:
                continue
            if wanted is not None and id(t) in wanted:
                captured[id(t)] = g if id(t) not in captured else captured[id(t)] + g
            node = t._node
            if node is None:
                if wanted is None:
                    t._accumulate_grad(g, create_graph)
                continue
            if wanted is None and t._retains_grad:
                t._accumulate_grad(g, create_graph)
            if node.freed:
                raise GraphError(
                    f"backward: trying to backward through the graph a second time (op "
                    f"{node.fn.op_name!r}); its saved values were freed by the first backward. "
                    "Pass retain_graph=True to the first backward to keep them"
                )
            in_grads = (_anomaly_backward(node, g) if _anomaly else
                        node.fn.backward(node.ctx, g))
            if not isinstance(in_grads, tuple):
                in_grads = (in_grads,)
            for p, gp in zip(node.parents, in_grads):
                if gp is None or not p.requires_grad:
                    continue
                if not isinstance(gp, Tensor):
                    gp = Tensor._wrap(gp, False)
                if gp.shape != p.shape:
                    gp = sum_to_shape(gp, p.shape)
                k = id(p)
                grads[k] = gp if k not in grads else grads[k] + gp
            if not retain_graph:
                node.freed = True
                node.ctx.saved_tensors = ()
    if inputs is None:
        return None
    return captured


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False):
    """Gradients of ``outputs`` with respect to ``inputs``, returned (not stored in ``.grad``).

    Parameters
    ----------
    outputs, inputs : Tensor or sequence of Tensors
    grad_outputs : upstream gradients, one per output (default: ones for scalar outputs)
    create_graph : record the backward pass so the result can be differentiated again

    Examples
    --------
    >>> x = Tensor([1.0, 2.0], requires_grad=True)
    >>> (g,) = grad((x ** 3).sum(), x, create_graph=True)   # 3 x^2
    >>> (h,) = grad(g.sum(), x)                             # 6 x
    """
    from .tensor import Tensor

    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    single = isinstance(inputs, Tensor)
    inputs = [inputs] if single else list(inputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs]
    gos = [_default_grad(o, g, "grad") for o, g in zip(outputs, grad_outputs)]
    for t in inputs:
        if not t.requires_grad:
            raise GraphError("grad: one of the inputs does not require grad; "
                             "create it with requires_grad=True")
    retain = create_graph if retain_graph is None else retain_graph
    captured = run_backward(outputs, gos, retain, create_graph, inputs=inputs)
    result = []
    for t in inputs:
        g = captured.get(id(t))
        if g is None and not allow_unused:
            raise GraphError("grad: one of the inputs was not used to compute the outputs; "
                             "pass allow_unused=True to get None for it")
        result.append(g)
    return tuple(result)


def _default_grad(t, g, op):
    from .tensor import Tensor

    if g is None:
        if t.size != 1:
            raise GraphError(
                f"{op}: grad can be implicitly created only for scalar outputs, got shape "
                f"{t.shape}; pass a gradient of that shape, e.g. y.backward(ones_like(y))"
            )
        return Tensor._wrap(t.xp.ones(t.shape, dtype=t.dtype), False)
    if not isinstance(g, Tensor):
        g = Tensor(np.asarray(g) if t.xp is np else g, dtype=t.dtype)
    if g.shape != t.shape:
        raise ShapeError(f"{op}: gradient shape must match the output, got {g.shape} for an "
                         f"output of shape {t.shape}")
    return g
