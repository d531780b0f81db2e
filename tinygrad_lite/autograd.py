"""Reverse-mode automatic differentiation: Functions, the graph they leave, and the walk back.

How it works, in one paragraph. Every differentiable op is a ``Function`` with a ``forward`` that
computes on raw arrays and a ``backward`` that, given dL/d(output), returns dL/d(input) for each
input. ``Function.apply`` runs ``forward`` and, when any input needs a gradient, records a ``Node``
on the output: which Function ran, its ``Context`` (what forward saved) and the input Tensors.
``backward()`` orders the recorded nodes topologically (iteratively, so a 100,000-op chain does
not overflow the stack), then walks them from the output back to the leaves, calling each
``backward`` and summing the gradients of tensors used more than once (chain rule + sum rule).

Backward rules are written with Tensor operations, not raw arrays. With ``create_graph=True``
(the plain graph walk) grad mode stays on, the backward pass records its own graph, and the
gradients it returns can be differentiated again (Hessian-vector products, gradient penalties).
With ``create_graph=False`` (the lean walk, the default) nothing needs recording: gradients stay
raw arrays, and a Function marked ``array_backward`` runs its very same rule text on arrays
(the rules use only what Tensors and arrays share: ``*``, ``-``, ``.reshape``, ``call``...);
other rules run on Tensors in no-grad mode, where Tensor operations are just array math.
A loss whose graph is a chain (each op with at most one recorded input) is walked in chain
order with no sort at all (``_walk_chain``), and a rule marked ``fresh_grads`` hands a leaf its
new array as ``.grad`` without a copy.

Next: tensor.py (the Tensor class and its methods), then ops/.
"""

import threading
from contextlib import ContextDecorator

import numpy as np

from .errors import GraphError, ShapeError

# ------------------------------------------------------------------ grad mode ---

class _GradMode(threading.local):
    enabled = True    # the default of every thread (a class attribute: a fast read when unset)


_state = _GradMode()


def is_grad_enabled():
    """True when operations are recorded for backward (the default)."""
    return _state.enabled


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

    ``ctx.save(*arrays)`` keeps arrays; in backward, ``ctx.saved_tensors`` gives them back: as
    Tensors on the graph walk (an array that *is* one of the inputs or the output comes back as
    that very Tensor, still attached to the graph, so a backward rule that uses it stays
    differentiable) and as the raw arrays on the lean walk of an ``array_backward`` Function.
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

    ``array_backward = True`` (opt-in) promises that ``backward`` is written in the vocabulary
    that Tensors and arrays share (``*``, ``/``, ``-``, ``.reshape``, ``.sum(axis, keepdims)``,
    ``call(OtherFunction, ...)``, ``const_like``), so the lean walk may run it on raw arrays.

    ``fresh_grads = True`` (opt-in) promises that on the lean walk every array ``backward``
    returns is new, made by the rule's own arithmetic (``g * b``): not ``g`` itself, not a saved
    or input array, not a view of one, and not returned twice. The lean walk may then make it a
    leaf's ``.grad`` as it is, without the copy it otherwise makes (tests/test_ops.py checks the
    promise of every op that makes it).
    """

    op_name = None
    differentiable = True
    array_backward = False
    fresh_grads = False

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad_output):
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **attrs):
        # The algorithm: wrap the inputs as Tensors, run forward on their arrays, and when any
        # input needs a gradient (and grad mode is on) hang a Node on the output. Written for
        # speed, as it runs once per op: no imports, no __init__ calls (object.__new__ and slot
        # stores), the CPU backend read from one global, needs_input_grad only with a Node.
        Tensor = _Tensor or _bind()
        arrays, needs = [], False
        for t in inputs:
            if not isinstance(t, Tensor):     # an array or a number among them: wrap them all
                inputs = tuple(t if isinstance(t, Tensor) else Tensor(t) for t in inputs)
                arrays = [t.data for t in inputs]
                needs = any(t._requires_grad for t in inputs)
                break
            arrays.append(t.data)
            if t._requires_grad:
                needs = True
        if _cuda_seen:            # only once a CUDA tensor exists: one global read until then
            _check_devices(cls, arrays)
        a0 = arrays[0]
        backend = _cpu_fixed if type(a0) is np.ndarray else None
        if backend is None:       # a thread chose its own backend (backends.use), or not numpy
            backend = _current_for(a0)
        ctx = _new(Context)
        ctx.xp, ctx.backend, ctx._saved, ctx.saved_tensors = backend.xp, backend, (), ()
        out_data = cls.forward(ctx, *arrays, **attrs)
        if _tape is not None:     # jit.py is recording this step
            _tape.forward(cls, ctx, arrays, attrs, out_data)
        if _anomaly:              # detect_anomaly() is on (anomaly.py)
            _anomaly_forward(cls, ctx, arrays, out_data)
        out = _new(Tensor)
        out.data, out.grad, out._retains_grad, out._hooks = out_data, None, False, None
        if needs and cls.differentiable and _state.enabled:
            ctx.needs_input_grad = [t._requires_grad for t in inputs]
            node = out._node = _new(Node)
            node.fn, node.ctx, node.parents, node.freed = cls, ctx, inputs, False
            out._requires_grad = True
        else:
            out._node, out._requires_grad = None, False
        return out


def _check_devices(cls, arrays):
    """``DeviceError`` naming both devices when one op gets CPU and CUDA arrays."""
    devices = ["cpu" if isinstance(a, (np.ndarray, np.generic)) else "cuda" for a in arrays]
    if len(set(devices)) > 1:
        from .errors import DeviceError

        where = ", ".join(f"input {i} on {d}" for i, d in enumerate(devices))
        raise DeviceError(f"{cls.op_name}: expected all inputs on one device, got cpu and cuda "
                          f"({where}); move them with .to('cuda') or .cpu()")


_new = object.__new__
_cuda_seen = False   # set by tensor._note_cuda when the first CUDA tensor is made
_Tensor = None
_current_for = None
_cpu_fixed = None   # the CPU backend of every thread, kept by backends (None while a thread uses
                    # its own, or before the first lookup): then apply asks backends.current_for
_tape = None   # a jit.py recorder while it records a training step; None otherwise
# While it records, jit.py also wraps the lean walk's array steps, which are module functions
# for that reason: _backward_arrays, sum_to_shape, _add and Tensor._accumulate_grad.


def _bind():
    """Late-bind Tensor and the backend lookup (they import this module)."""
    global _Tensor, _current_for
    from . import backends
    from .tensor import Tensor

    _Tensor, _current_for = Tensor, backends.current_for
    return Tensor


def _as_graph_tensor(a, inputs, out):
    if a is out.data:
        return out
    for t in inputs:
        if a is t.data:
            return t
    return _Tensor._wrap(a, False)


# The shared vocabulary of backward rules: each works on Tensors (recorded, differentiable) and
# on raw arrays (the lean walk), so one rule text serves both walks.

def call(fn, *args, **attrs):
    """Apply Function ``fn``: ``fn.apply`` on Tensors; on raw arrays just its forward."""
    if isinstance(args[0], _Tensor or _bind()):
        return fn.apply(*args, **attrs)
    a0 = args[0]
    backend = _cpu_fixed if type(a0) is np.ndarray else None
    if backend is None:
        backend = _current_for(a0)
    ctx = _new(Context)
    ctx.xp, ctx.backend = backend.xp, backend
    return fn.forward(ctx, *args, **attrs)


def const_like(a, g):
    """Array ``a`` (a mask, a share) in g's dtype, as a constant of g's kind (Tensor or array)."""
    a = a.astype(g.dtype, copy=False)
    return _Tensor._wrap(a, False) if isinstance(g, _Tensor) else a


# ------------------------------------------------------------------ anomaly mode ---

_anomaly = 0   # > 0 inside anomaly.detect_anomaly(): one global read per op when it is off


def _anomaly_forward(cls, ctx, arrays, out):
    from .anomaly import check_forward

    check_forward(cls, ctx, arrays, out)


def _anomaly_backward(node, g, run):
    from .anomaly import checked_backward

    return checked_backward(node, g, run)


# ------------------------------------------------------------------ trace mode ---

_tracer = None   # a tracing.Trace inside ``with trace():``: one global read per node when off


# ------------------------------------------------------------------ backward ---


def _topo_order(roots, pending=None):
    """Non-leaf tensors reachable from ``roots``, outputs first (a reverse post-order DFS, kept
    iterative so a 100,000-op chain does not overflow the stack). Leaves need no order; when a
    dict ``pending`` is given, it receives, per leaf id, how many recorded inputs use it, so the
    walk can hand a leaf its gradient right after its last consumer."""
    order, seen = [], set()
    stack = []
    push, pop, mark = stack.append, stack.pop, seen.add
    for t in roots:
        if t._node is not None:
            push((t, False))
    while stack:
        t, done = pop()
        if done:
            order.append(t)
            continue
        k = id(t)
        if k in seen:
            continue
        mark(k)
        push((t, True))
        for p in t._node.parents:
            if p._node is not None:
                if id(p) not in seen:
                    push((p, False))
            elif pending is not None:   # a leaf: count its consumers (see run_backward)
                pending[id(p)] = pending.get(id(p), 0) + 1
    order.reverse()
    return order


def sum_to_shape(g, shape):
    """Undo broadcasting: sum the gradient ``g`` (a Tensor or an array) down to ``shape``.

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
        return call(Sum, g, axis=tuple(range(lead)), keepdims=False)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, s in enumerate(shape) if s == 1 and g.shape[i + lead] != 1
    )
    if axes:
        g = call(Sum, g, axis=axes, keepdims=True)
    return g.reshape(shape)


def _backward_arrays(fn, ctx, g):
    """The lean walk's call of one backward rule: arrays in, arrays (or None) out. A rule that
    is not ``array_backward`` runs on Tensors here (in no-grad mode) and is unwrapped."""
    if fn.array_backward:
        ctx.saved_tensors = ctx._saved
        out = fn.backward(ctx, g)
        return out if isinstance(out, tuple) else (out,)
    ctx.saved_tensors = [_Tensor._wrap(a, False) for a in ctx._saved]
    out = fn.backward(ctx, _Tensor._wrap(g, False))
    if not isinstance(out, tuple):
        out = (out,)
    return tuple(o.data if isinstance(o, _Tensor) else o for o in out)


def _backward_graph(fn, ctx, g):
    """The graph walk's call of one backward rule: Tensors in, a tuple of Tensors out."""
    out = fn.backward(ctx, g)
    return out if isinstance(out, tuple) else (out,)


def _add(a, b):
    return a + b


def _run_hooks(t, g, lean):
    """Tensor.register_hook: each hook sees the complete gradient (as a Tensor); a non-None
    return value (a Tensor or an array) replaces it."""
    for h in list(t._hooks):
        r = h(_Tensor._wrap(g, False) if lean else g)
        if r is not None:
            if lean:
                g = r.data if isinstance(r, _Tensor) else np.asarray(r)
            else:
                g = r if isinstance(r, _Tensor) else _Tensor._wrap(g.xp.asarray(r), False)
    return g


def _finish_leaf(t, g, lean, wanted, captured, create_graph):
    """A leaf's gradient is complete: run its hooks, then accumulate it (or capture it)."""
    if t._hooks:
        g = _run_hooks(t, g, lean)
    if wanted is None:
        t._accumulate_grad(g, create_graph)
    elif id(t) in wanted:
        captured[id(t)] = g


def _freed_error(node):
    return GraphError(
        f"backward: trying to backward through the graph a second time (op "
        f"{node.fn.op_name!r}); its saved values were freed by the first backward. "
        "Pass retain_graph=True to the first backward to keep them")


def run_backward(outputs, grad_outputs, retain_graph=False, create_graph=False, inputs=None):
    """The reverse walk shared by ``Tensor.backward`` and ``grad``.

    ``inputs=None`` accumulates into ``.grad`` of leaves; otherwise returns the gradients of
    ``inputs`` (and touches no ``.grad``).

    Two walks, one loop. The graph walk (``create_graph=True``) keeps every gradient as a
    Tensor and records what it does, so the result can be differentiated again. The lean walk
    (the default) keeps raw arrays: ``array_backward`` rules run on arrays with no Tensor, Context
    or Node made, other rules run on Tensors in no-grad mode. Both compute the same arrays.
    """
    if not create_graph and inputs is None and len(outputs) == 1 and not _anomaly \
            and _tracer is None:
        return _lean_walk(outputs[0], grad_outputs[0], retain_graph)
    Tensor = _Tensor or _bind()
    lean = not create_graph
    grads, leaves = {}, {}      # id -> gradient so far; id -> leaf tensor that receives one
    for t, g in zip(outputs, grad_outputs):
        if not t._requires_grad:
            raise GraphError(
                "backward: the tensor does not require grad and has no grad_fn; "
                "create its inputs with requires_grad=True"
            )
        if lean and isinstance(g, Tensor):
            g = g.data
        k = id(t)
        grads[k] = g if k not in grads else _add(grads[k], g)
        if t._node is None:
            leaves[k] = t
    wanted = None if inputs is None else {id(t) for t in inputs}
    captured = {}
    if _tracer is not None:                   # tracing.trace() is on: it names the graph now
        _tracer.begin(outputs, grad_outputs)
    prev = _state.enabled
    _state.enabled = create_graph
    try:
        pending = {}                          # leaf id -> consumers not yet walked
        for t in _topo_order(outputs, pending):
            g = grads.pop(id(t), None)
            if g is None:
                continue
            node = t._node
            if node.freed:
                raise _freed_error(node)
            if t._hooks:                      # the gradient of t is complete here
                g = _run_hooks(t, g, lean)
            if wanted is not None:
                if id(t) in wanted:
                    captured[id(t)] = g
            elif t._retains_grad:
                t._accumulate_grad(g, create_graph)
            if lean:
                in_grads = (_backward_arrays(node.fn, node.ctx, g) if not _anomaly else
                            _anomaly_backward(node, g, _backward_arrays))
            else:
                node.ctx.saved_tensors = [_as_graph_tensor(a, node.parents, t)
                                          for a in node.ctx._saved]
                in_grads = (_backward_graph(node.fn, node.ctx, g) if not _anomaly else
                            _anomaly_backward(node, g, _backward_graph))
            for p, gp in zip(node.parents, in_grads):
                if gp is None or not p._requires_grad:
                    continue
                if not lean and not isinstance(gp, Tensor):
                    gp = Tensor._wrap(gp, False)
                if gp.shape != p.data.shape:
                    gp = sum_to_shape(gp, p.data.shape)
                k = id(p)
                grads[k] = gp if k not in grads else _add(grads[k], gp)
                if p._node is None:
                    leaves[k] = p
            if _tracer is not None:           # record what this node got and sent
                _tracer.visit(t, node, g, in_grads)
            if not retain_graph:
                node.freed = True
                node.ctx._saved = ()
            node.ctx.saved_tensors = ()
            for p in node.parents:            # a leaf whose last consumer this was is complete:
                if p._node is None:           # hand it its gradient now (hooks, DDP buckets)
                    k = id(p)
                    left = pending[k] = pending[k] - 1
                    if not left and k in leaves:
                        _finish_leaf(leaves.pop(k), grads.pop(k), lean, wanted, captured,
                                     create_graph)
        for k, t in leaves.items():           # leaves whose consumers were skipped (no grad)
            _finish_leaf(t, grads.pop(k), lean, wanted, captured, create_graph)
    finally:
        _state.enabled = prev
    if inputs is None:
        return None
    if lean:
        captured = {k: Tensor._wrap(g, False) for k, g in captured.items()}
    return captured


def _lean_walk(root, g, retain_graph):
    """The fast path of ``run_backward`` for its most common call, ``loss.backward()``: one
    output, the lean walk, ``.grad`` of the leaves, no anomaly mode, no trace. The same steps in
    the same order as the loop above (so the same arrays), with the branches that cannot apply
    left out, in one of two walks: ``_walk_chain`` when the graph is a chain (most small losses:
    no sort, no dicts per tensor), else ``_walk_graph``. While jit records (``_tape``), always
    the graph walk, which calls the module functions jit wraps."""
    Tensor = _Tensor or _bind()
    if not root._requires_grad:
        raise GraphError("backward: the tensor does not require grad and has no grad_fn; "
                         "create its inputs with requires_grad=True")
    if isinstance(g, Tensor):
        g = g.data
    if root._node is None:
        _finish_leaf(root, g, True, None, None, False)
        return None
    chain = _chain(root) if _tape is None else None
    if chain is not None:
        return _walk_chain(chain, g, retain_graph)
    prev = _state.enabled
    _state.enabled = False
    try:
        _walk_graph(root, g, retain_graph)
    finally:
        _state.enabled = prev
    return None


def _chain(root):
    """The recorded tensors below ``root`` when they form a chain, else None.

    A chain: every op has at most one non-leaf input (it may be used more than once, as in
    ``y * y``), and no leaf has a hook. Then each non-leaf is used by the op just above it and
    by no other, so the chain itself is a topological order: no sort, no per-tensor gradient
    dict. And with no leaf hook to watch the moment a leaf's gradient is complete, every leaf
    can be handed its gradient at the end. Small losses (``(a*b).sum()``, an MLP with a fused
    loss) are chains; anything else takes ``_walk_graph``."""
    chain = []
    t = root
    while t is not None:
        chain.append(t)
        below = None
        for p in t._node.parents:
            if p._node is not None:
                if below is not None and below is not p:
                    return None               # two different non-leaf inputs: a graph
                below = p
            elif p._hooks:
                return None
        t = below
    return chain


def _walk_chain(chain, g, retain_graph):
    """The lean walk down a chain (see ``_chain``): ``g`` passes from each op to the one below;
    leaf gradients are summed per leaf in walk order (as ``_walk_graph`` sums them) and handed
    over at the end. Only hooks and rules written on Tensors run in no-grad mode: array rules
    record nothing in any mode, so most chains skip the thread-local mode switch."""
    leaf_grads = {}          # id -> (leaf, its gradient so far, whether that array is fresh)
    for t in chain:
        node = t._node
        if node.freed:
            raise _freed_error(node)
        if t._hooks:
            g = _without_grad(_run_hooks, t, g, True)
        if t._retains_grad:
            t._accumulate_grad(g, False)
        ctx, fn = node.ctx, node.fn
        if fn.array_backward:                  # _backward_arrays, inlined
            ctx.saved_tensors = ctx._saved
            in_grads = fn.backward(ctx, g)
            if type(in_grads) is not tuple:
                in_grads = (in_grads,)
        else:
            in_grads = _without_grad(_backward_arrays, fn, ctx, g)
        g = None                               # the gradient of the op below, summed here
        fresh_grads = fn.fresh_grads
        for p, gp in zip(node.parents, in_grads):
            if gp is not None and p._requires_grad:
                fresh = fresh_grads
                if gp.shape != p.data.shape:
                    gp = sum_to_shape(gp, p.data.shape)   # a new sum (or a view of one)
                    fresh = True
                if p._node is not None:
                    g = gp if g is None else _add(g, gp)
                else:
                    k = id(p)
                    seen = leaf_grads.get(k)
                    leaf_grads[k] = ((p, gp, fresh) if seen is None else
                                     (p, _add(seen[1], gp), True))
        if not retain_graph:
            node.freed = True
            ctx._saved = ()
        ctx.saved_tensors = ()
        if g is None:                          # nothing flows further down
            break
    for p, gp, fresh in leaf_grads.values():
        if fresh and type(gp) is np.ndarray:   # nothing else holds it: no copy needed
            p._take_grad(gp)
        else:
            p._accumulate_grad(gp, False)


def _without_grad(f, *args):
    """``f(*args)`` in no-grad mode (this thread's), restored after."""
    prev = _state.enabled
    _state.enabled = False
    try:
        return f(*args)
    finally:
        _state.enabled = prev


def _walk_graph(root, g, retain_graph):
    """The lean walk over any graph: a topological order first, then per tensor the same steps
    as ``run_backward``'s loop, a leaf handed its gradient right after its last consumer."""
    pending = {}
    order = _topo_order((root,), pending)
    grads, leaves = {id(root): g}, {}
    for t in order:
        g = grads.pop(id(t), None)
        if g is None:
            continue
        node = t._node
        if node.freed:
            raise _freed_error(node)
        if t._hooks:
            g = _run_hooks(t, g, True)
        if t._retains_grad:
            t._accumulate_grad(g, False)
        ctx, fn = node.ctx, node.fn
        if fn.array_backward and _tape is None:   # _backward_arrays, inlined (jit records
            ctx.saved_tensors = ctx._saved        # through that function instead)
            in_grads = fn.backward(ctx, g)
            if type(in_grads) is not tuple:
                in_grads = (in_grads,)
        else:
            in_grads = _backward_arrays(fn, ctx, g)
        for p, gp in zip(node.parents, in_grads):
            if gp is not None and p._requires_grad:
                if gp.shape != p.data.shape:
                    gp = sum_to_shape(gp, p.data.shape)
                k = id(p)
                grads[k] = gp if k not in grads else _add(grads[k], gp)
                if p._node is None:
                    leaves[k] = p
        if not retain_graph:
            node.freed = True
            ctx._saved = ()
        ctx.saved_tensors = ()
        for p in node.parents:
            if p._node is None:
                k = id(p)
                left = pending[k] = pending[k] - 1
                if not left and k in leaves:
                    _finish_leaf(leaves.pop(k), grads.pop(k), True, None, None, False)
    for k, t in leaves.items():
        _finish_leaf(t, grads.pop(k), True, None, None, False)


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


_SEEDS = {}   # NumPy scalar type or (dtype, shape) -> a read-only 1, the seed of a scalar output


def _default_grad(t, g, op, cached=False):
    """The upstream gradient to start from: ``g`` checked, or 1 for a scalar output. With
    ``cached`` (a lean backward) the 1 is a shared read-only array instead of a new one."""
    Tensor = _Tensor or _bind()
    if g is None:
        a = t.data
        if cached:                # a loss is mostly a NumPy scalar (a full sum): its type says all
            key = type(a) if type(a) is not np.ndarray else (a.dtype, a.shape)
            one = _SEEDS.get(key)
            if one is not None:
                return one
        if a.size != 1:
            raise GraphError(
                f"{op}: grad can be implicitly created only for scalar outputs, got shape "
                f"{t.shape}; pass a gradient of that shape, e.g. y.backward(ones_like(y))"
            )
        if cached and isinstance(a, (np.ndarray, np.generic)):
            one = _SEEDS[key] = np.ones(a.shape, dtype=a.dtype)
            one.flags.writeable = False
            return one                        # the lean walk takes a raw array
        return Tensor._wrap(t.xp.ones(t.shape, dtype=t.dtype), False)
    if not isinstance(g, Tensor):
        g = Tensor(np.asarray(g) if t.xp is np else g, dtype=t.dtype)
    if g.shape != t.shape:
        raise ShapeError(f"{op}: gradient shape must match the output, got {g.shape} for an "
                         f"output of shape {t.shape}")
    return g
