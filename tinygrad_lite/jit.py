"""Captured training steps: ``step = jit(fn)`` records the array work of ``fn`` and replays it.

In the spirit of tinygrad's TinyJit and of CUDA graphs. ``fn`` takes arrays or Tensors, runs a
forward pass, ``backward()`` and an optimizer step, and returns the loss Tensor (or a tuple of
Tensors, or None)::

    @tinygrad_lite.jit
    def step(x, t):
        loss = -(model(x).log_softmax(axis=1) * t).sum() * (1 / 64)
        opt.zero_grad(); loss.backward(); opt.step()
        return loss

    for x, t in batches:
        loss = step(x, t)           # calls 1 and 2 record (eagerly), later calls replay

How it works. The first two calls with a given *key* (the shapes, dtypes and C-contiguity of
the array arguments, the values of the other arguments, the kernel backend, grad mode and the
training flags of the ``modules`` passed to ``jit``) run ``fn`` eagerly while a recorder notes every
array-level step at the seams of the engine: each ``Function.forward`` (with its Context), each
backward rule of the lean walk, each un-broadcast and gradient sum, each ``.grad`` accumulation
and each ``Optimizer.zero_grad`` / ``step`` (which includes the fused Cython Adam/SGD kernels).
An array is named by its *slot*: the arguments first, then every output in order. Arrays the
step did not compute (parameters, constants) are held by reference. The two recordings must
agree step by step (same functions, same slots, equal constants); then later calls replay the
list on the new arguments' arrays: the same forward and backward array code in the same order,
so the result is bitwise equal to eager, with no Tensor, Context, Node or topological sort per
op. A different key records again (a new batch size, ``backends.use``, ``model.eval()``).

What it cannot capture, because a replay could not honour it (``jit(fn)`` raises ``JitError``;
``jit(fn, fallback=True)``, which ``Sequential.fit`` uses by default, runs such a step eagerly
instead, for good, and says why in ``step.fallbacks``):

* reading a traced value in Python inside the step (``.item()``, ``.numpy()``, ``float()``,
  ``bool()``, ``.tolist()``, ``__setitem__``): data-dependent control flow or host values;
* two recordings that differ: Python control flow that depends on the data, or a constant
  computed outside the engine from the inputs (e.g. labels turned into an index with NumPy, a
  reshaped copy of an input, a dropout mask): pass such values in as arguments instead, e.g. a
  one-hot target instead of integer labels;
* assigning ``t.data = ...`` inside the step (BatchNorm updates its running statistics so);
* ``backward(create_graph=True)``, tensor hooks, and an optimizer ``closure``.

Replay on preallocated buffers (_replay.py). When the plan is made, the steps of the ops that
dominate a dense training step -- LinearReLU, 2-D MatMul, Add, the fused softmax cross-entropy
(forward and backward of each) and the bias-gradient sum -- are lowered to direct calls of the
same kernels, writing into buffers allocated once per plan (the Cython backend; the bias sum on
any CPU backend); the other steps are called again as recorded, allocating as in eager. A buffer
is written again only while nothing but the plan refers to it (its reference count is checked
before each write), so a loss, an output or a ``.grad`` that the caller keeps is never
overwritten: that call takes a fresh buffer instead. A gradient that only the step holds
becomes ``.grad`` without the copy eager makes.

Also documented limits: the replay binds the new arguments' arrays into the slots without a
copy; a step that writes into arrays by hand (``t.data[...] = ...``) is not
seen; if a parameter's array is replaced (``set_weights``, ``load_state_dict`` that assigns new
arrays), the next call records again; outputs of a replay are new Tensors without a graph.
Recording swaps a few engine functions for the duration of the recording; the swapped seams
note only the recording thread's work (other threads run through them untouched), and one step
records at a time: a step that wants to record while another thread records waits for it
(``fallback=True``: runs that call eagerly instead).
"""

import threading

import numpy as np

from . import autograd, backends
from .errors import JitError
from .tensor import Tensor

__all__ = ["jit", "JitFunction", "JitError"]

_ARRAY_TYPES = (np.ndarray, np.generic)
_get_ident = threading.get_ident
_RECORDING = threading.Lock()   # one recording at a time (the seams it swaps are global)
_ACCUMULATE = [None]            # the real Tensor._accumulate_grad (set by _install)
_BACKWARD_ARRAYS = [None]       # the real autograd._backward_arrays (set by _install)
_SUM_TO_SHAPE = [None]          # the real autograd.sum_to_shape (set by _install)


def _is_array(a):
    t = type(a)
    known = _KINDS.get(t)
    if known is None:
        known = _KINDS[t] = (issubclass(t, _ARRAY_TYPES) or
                             t.__module__.split(".")[0] == "cupy")
    return known


_KINDS = {}                     # type -> is it an array type (the recorder asks very often)


class _Slot:
    """A reference to the array in slot ``i`` (an argument or an output of an earlier step)."""

    __slots__ = ("i",)

    def __init__(self, i):
        self.i = i

    def __eq__(self, other):
        return isinstance(other, _Slot) and other.i == self.i

    def __repr__(self):
        return f"slot{self.i}"


class _Recorder:
    """One recording: the list of array steps of one eager call."""

    def __init__(self, arrays, strict=True):
        self.thread = _get_ident()                # only this thread's work is recorded
        self.strict = strict                      # False: note why, let the step run eagerly
        self.refused = None                       # the first reason this call cannot replay
        self.slots = list(arrays)                 # slot -> array (kept alive: ids stay unique)
        self.n_args = self.n_slots = len(arrays)
        self.owned = frozenset()                  # steps whose .grad needs no copy (owned_grads)
        self.ids = {id(a): i for i, a in enumerate(arrays)}
        self.steps = []                           # (f, args, kwargs, outs)
        self.modes = []                           # grad mode of each step as it ran
        self.params = {}                          # id -> (leaf Tensor, its array at recording)
        self.depth = 0

    # ---- naming arrays ----------------------------------------------------------------------
    def _ref(self, a):
        if _is_array(a):
            i = self.ids.get(id(a))
            return _Slot(i) if i is not None else a
        if isinstance(a, Tensor) and a._node is None and a._requires_grad:
            self.params[id(a)] = (a, a.data)
        return a

    def _out(self, r):
        if r is None:
            return None
        if isinstance(r, tuple):
            return tuple(self._out(x) for x in r)
        if _is_array(r):
            self.ids[id(r)] = len(self.slots)
            self.slots.append(r)
            self.n_slots = len(self.slots)
            return len(self.slots) - 1
        return None

    def is_traced(self, a):
        return id(a) in self.ids

    def mine(self):
        """True in the recording thread (other threads run through the seams unrecorded)."""
        return _get_ident() == self.thread

    def refuse(self, why):
        """What a replay could not honour: raise (strict), or note it and let the eager step
        go on (fallback: this call's result stays the eager one, later calls run eagerly)."""
        if self.strict:
            raise JitError(why)
        if self.refused is None:
            self.refused = why

    # ---- recording --------------------------------------------------------------------------
    def run(self, f, *args, **kwargs):
        """Run ``f`` and, at the top level, note it as one step (nested calls are part of it)."""
        if self.depth or _get_ident() != self.thread:
            return f(*args, **kwargs)
        spec = tuple(self._ref(a) for a in args)
        kw = {k: self._ref(v) for k, v in kwargs.items()}
        self.depth += 1
        try:
            r = f(*args, **kwargs)
        finally:
            self.depth -= 1
        self.steps.append((f, spec, kw, self._out(r)))
        self.modes.append(autograd.is_grad_enabled())
        return r

    def forward(self, cls, ctx, arrays, attrs, out):
        """The hook in ``Function.apply``: a forward that already ran."""
        if self.depth or _get_ident() != self.thread:
            return
        spec = (ctx,) + tuple(self._ref(a) for a in arrays)
        kw = {k: self._ref(v) for k, v in attrs.items()}
        self.steps.append((cls.forward, spec, kw, self._out(out)))
        self.modes.append(autograd.is_grad_enabled())

    # ---- checking two recordings against each other ---------------------------------------
    def mismatch(self, other):
        """Why two recordings of the same key differ, or None when they agree."""
        if len(self.steps) != len(other.steps):
            return (f"the two recordings ran a different number of array steps "
                    f"({len(self.steps)} and {len(other.steps)})")
        for n, (a, b) in enumerate(zip(self.steps, other.steps)):
            fa, fb = a[0], b[0]
            if fa != fb:
                return f"step {n} calls {_name(fa)} in one recording and {_name(fb)} in the other"
            if a[3] != b[3] or len(a[1]) != len(b[1]) or set(a[2]) != set(b[2]):
                return f"step {n} ({_name(fa)}) is wired differently in the two recordings"
            pairs = list(zip(a[1], b[1])) + [(a[2][k], b[2][k]) for k in a[2]]
            for x, y in pairs:
                why = _differ(x, y)
                if why:
                    return f"step {n} ({_name(fa)}): {why}"
        return None

    def plan(self, n_args, out_spec):
        return _Plan(self, n_args, out_spec)

    def owned_grads(self, out_spec, accumulate):
        """The ``.grad`` accumulations (step numbers) whose gradient a replay may hand over
        without the copy that eager makes (Tensor._accumulate_grad copies the first gradient
        because it may be shared or a read-only view): a fresh array of its own memory,
        writeable, made by this step's work, that no other step, Context, parameter or output
        refers to, so nothing else can see it. Computed while the arrays are still held."""
        uses, held, ctxs = {}, set(), []

        def note(v):
            if isinstance(v, _Slot):
                uses[v.i] = uses.get(v.i, 0) + 1
            elif isinstance(v, (tuple, list)):
                for x in v:
                    note(x)
            elif isinstance(v, autograd.Context):
                ctxs.append(v)
            elif isinstance(v, Tensor):
                held.add(id(v.data))
            elif _is_array(v):
                held.add(id(v))

        for _, args, kw, _ in self.steps:
            for v in args:
                note(v)
            for v in kw.values():
                note(v)
        for ctx in ctxs:                          # what forward passes keep for backward
            for v in list(vars(ctx).values()) + list(ctx._saved) + list(ctx.saved_tensors):
                for x in (v if isinstance(v, (tuple, list)) else (v,)):
                    if _is_array(x):
                        held.add(id(x))
        held.update(id(a) for _, a in self.params.values())
        outs, stack = set(), [out_spec]
        while stack:
            kind, v = stack.pop()
            if kind == "slot":
                outs.add(v)
            elif kind == "seq":
                stack.extend(v)
        count = {}
        for a in self.slots:
            count[id(a)] = count.get(id(a), 0) + 1
        owned = set()
        for n, (f, args, kw, _) in enumerate(self.steps):
            if f is not accumulate or len(args) < 2 or not isinstance(args[1], _Slot):
                continue
            j = args[1].i
            a = self.slots[j]
            if (j >= self.n_args and type(a) is np.ndarray and a.base is None
                    and a.flags.owndata and a.flags.writeable and uses.get(j) == 1
                    and count[id(a)] == 1 and id(a) not in held and j not in outs):
                owned.add(n)
        self.owned = frozenset(owned)


def _name(f):
    return getattr(f, "__qualname__", repr(f))


def _differ(x, y):
    if isinstance(x, _Slot) or isinstance(y, _Slot):
        return None if x == y else "an argument comes from different steps"
    if isinstance(x, autograd.Context):
        return None if isinstance(y, autograd.Context) else "a context became something else"
    if _is_array(x) or _is_array(y):
        if not (_is_array(x) and _is_array(y)):
            return "an array argument became something else"
        if x is y:
            return None
        xa, ya = np.asarray(x), np.asarray(y)
        if xa.dtype != ya.dtype or xa.shape != ya.shape or not np.array_equal(
                xa, ya, equal_nan=xa.dtype.kind in "fc"):
            return ("a constant array differs between the recordings (computed outside the "
                    "engine from the inputs, or random); pass it in as an argument")
        return None
    if isinstance(x, (tuple, list)) and isinstance(y, (tuple, list)):
        if len(x) != len(y):
            return "a tuple argument changed length"
        for u, v in zip(x, y):
            why = _differ(u, v)
            if why:
                return why
        return None
    if isinstance(x, Tensor) or isinstance(y, Tensor):
        return None if x is y else "a different Tensor object in each recording (a new leaf?)"
    try:
        same = x == y
        same = bool(same)
    except Exception:
        same = x is y
    return None if same else f"an argument differs between the recordings ({x!r} and {y!r})"


class _Plan:
    """A checked recording, ready to replay on new argument arrays: a list of closures, the
    lowered ones (_replay.py: direct kernel calls on preallocated buffers) and generic ones (the
    recorded function called again on this call's arrays)."""

    def __init__(self, rec, n_args, out_spec):
        from . import _replay

        self.n_args = n_args
        self.out_spec = out_spec
        self.params = list(rec.params.values())
        steps = []
        for n, (f, args, kw, outs) in enumerate(rec.steps):
            steps.append((_hand_over if n in rec.owned else f, args, kw, outs))
        self.steps = steps                 # (f, args, kw, outs) as recorded, for inspection
        lowered, self.n_slots, self.buffers = _replay.lower(
            steps, rec.slots, _Slot, rec.n_slots, _BACKWARD_ARRAYS[0], _SUM_TO_SHAPE[0])
        self.lowered = len(lowered)
        self.ops = []
        ctxs = {}
        for n, (f, args, kw, outs) in enumerate(steps):
            for a in args:
                if isinstance(a, autograd.Context):
                    ctxs[id(a)] = a
            if n in lowered:
                self.ops.append((lowered[n], None))     # runs in any grad mode
            else:
                # the grad mode the step ran in (the walk runs backward rules in no-grad mode,
                # and a rule may branch on it: a fused recurrent backward takes its
                # differentiable reference path when grad mode is on)
                self.ops.append((_generic(f, args, kw, outs), rec.modes[n]))
        self.ctxs = list(ctxs.values())

    def valid(self):
        """False when a parameter's array was replaced since recording (e.g. set_weights)."""
        for t, a in self.params:
            if t.data is not a:
                return False
        return True

    def replay(self, arrays):
        s = [None] * self.n_slots
        s[:self.n_args] = arrays
        state = autograd._state
        prev = cur = getattr(state, "enabled", True)
        try:
            for run, mode in self.ops:
                if mode is not None and mode is not cur:   # a generic step: its grad mode
                    state.enabled = cur = mode
                run(s)
        finally:
            state.enabled = prev
            for ctx in self.ctxs:          # the step is over: what forward saved is not needed
                ctx._saved = ctx.saved_tensors = ()
        return _unflatten(self.out_spec, s)


def _generic(f, args, kw, outs):
    """A recorded step as a closure: ``f`` called again, its slot arguments taken from this
    call's arrays (and let go afterwards, so a buffer they name can be reused)."""
    args = list(args)
    kw = dict(kw)
    refs = [(i, a.i) for i, a in enumerate(args) if isinstance(a, _Slot)]
    krefs = [(k, v.i) for k, v in kw.items() if isinstance(v, _Slot)]

    def run(s):
        for i, j in refs:
            args[i] = s[j]
        for k, j in krefs:
            kw[k] = s[j]
        r = f(*args, **kw)
        for i, _ in refs:
            args[i] = None
        for k, _ in krefs:
            kw[k] = None
        if outs is None:
            return
        if type(outs) is int:
            s[outs] = r
        else:
            _store(s, outs, r)

    return run


def _hand_over(t, g, create_graph):
    """Tensor._accumulate_grad for a gradient that only this step holds (owned_grads): the
    first one becomes ``.grad`` as it is, without the copy (the same values, one pass less)."""
    if not create_graph and g.base is None and g.flags.writeable:
        t._take_grad(g)
    else:
        t._accumulate_grad(g, create_graph)


def _store(s, outs, r):
    for o, x in zip(outs, r):
        if o is None:
            continue
        if type(o) is int:
            s[o] = x
        else:
            _store(s, o, x)


def _unflatten(spec, s):
    kind, v = spec
    if kind == "none":
        return None
    if kind == "slot":
        return Tensor._wrap(s[v], False)
    if kind == "const":
        return Tensor._wrap(v, False)
    return type(v)(_unflatten(x, s) for x in v) if kind == "seq" else None


def jit(fn=None, *, modules=(), fallback=False):
    """Capture a training step and replay it: ``step = jit(fn)`` or ``@jit(modules=[model])``.

    See the module docstring for what is recorded, when it records again and what it refuses.

    Parameters
    ----------
    fn : callable taking arrays / Tensors (and hashable Python values), running forward,
        backward and an optimizer step, returning a Tensor, a tuple/list of Tensors, or None
    modules : Modules (``nn.Module``, ``models.Sequential``) whose training flags are part of
        the key, so ``model.eval()`` / ``train()`` records again
    fallback : False (default): raise ``JitError`` for what it cannot capture (module
        docstring). True: run such a step eagerly instead (the call that found out keeps its
        eager result; later calls with that key run ``fn`` eagerly) and note why in
        ``step.fallbacks`` (key -> reason)

    ``step.replays`` counts the calls that replayed; ``step.recordings`` the calls that recorded.
    """
    if fn is None:
        return lambda f: JitFunction(f, modules=modules, fallback=fallback)
    return JitFunction(fn, modules=modules, fallback=fallback)


class JitFunction:
    """What ``jit(fn)`` returns: call it like ``fn``.

    ``fixed_tree=True`` (``Sequential.fit`` passes it) promises that no sub-module of
    ``modules`` is added or removed while this object lives, so the modules whose training
    flags make the key are listed once instead of walked on every call. Two threads may replay
    one plan at once: a buffer in use holds a reference, so the other thread takes a new one.
    """

    def __init__(self, fn, *, modules=(), fallback=False, fixed_tree=False):
        if not callable(fn):
            raise TypeError(f"jit: needs a callable step function, got {type(fn).__name__}")
        self.fn = fn
        self.modules = list(modules)
        # fixed_tree (Sequential.fit): no sub-module is added or removed while this step lives,
        # so the list of modules whose flags make the key is walked once, not per call
        self._tree = None
        if fixed_tree:
            self._tree = [m for mod in self.modules
                          for m in (mod.modules() if hasattr(mod, "modules") else [mod])]
        self.fallback = bool(fallback)
        self.fallbacks = {}                 # key -> why it runs eagerly (fallback=True only)
        self._plans = {}
        self._first = {}
        self.replays = 0
        self.recordings = 0
        self.__doc__ = getattr(fn, "__doc__", None)
        self.__wrapped__ = fn

    def _key(self, args):
        arrays, key, first = [], [], {}
        for a in args:
            data = a.data if isinstance(a, Tensor) else a
            if _is_array(data):
                # shape, dtype, layout (the kernels a replay calls depend on it), and which
                # earlier argument it is when the same array comes twice
                key.append((type(data).__name__, data.shape, data.dtype.str,
                            getattr(data, "flags", None) is None or data.flags.c_contiguous,
                            first.setdefault(id(data), len(arrays))))
                arrays.append(data)
            else:
                try:
                    hash(a)
                except TypeError:
                    raise JitError(f"jit: arguments must be arrays, Tensors or hashable values, "
                                   f"got {type(a).__name__}; convert lists with np.asarray") \
                        from None
                key.append(("value", a))
        tree = self._tree
        if tree is None:
            tree = [m for mod in self.modules
                    for m in (mod.modules() if hasattr(mod, "modules") else [mod])]
        modes = tuple([m.training for m in tree])
        key += [backends.current().name, autograd.is_grad_enabled(), modes]
        return tuple(key), arrays

    def __call__(self, *args):
        key, arrays = self._key(args)
        plan = self._plans.get(key)
        if plan is not None:
            if plan.valid():
                self.replays += 1
                return plan.replay(arrays)
            del self._plans[key]
        if key in self.fallbacks:           # found uncapturable before: eager, as fn itself
            return self.fn(*args)
        tape = autograd._tape
        if tape is not None and tape.mine():
            if self.fallback:               # part of the step being recorded: run it so
                return self.fn(*args)
            raise JitError("jit: a jitted step cannot call another jitted step while recording")
        if not _RECORDING.acquire(blocking=not self.fallback):
            return self.fn(*args)           # another thread records: this call runs eagerly
        try:
            rec = _Recorder(arrays, strict=not self.fallback)
            out = self._record(rec, args)
        finally:
            _RECORDING.release()
        self.recordings += 1
        try:
            if rec.refused is not None:
                raise JitError(rec.refused)
            out_spec = _out_spec(out, rec)
        except JitError as e:
            if not self.fallback:
                raise
            return self._give_up(key, str(e), out)
        first = self._first.pop(key, None)
        if first is None:
            rec.slots = rec.ids = None      # the arrays of this call are not needed any more
            self._first[key] = (rec, out_spec)
            return out
        rec.owned_grads(out_spec, _ACCUMULATE[0])   # (the plan comes from this recording)
        why = first[0].mismatch(rec) or (None if first[1] == out_spec else
                                         "the step returns different things in the two calls")
        if why:
            why = f"jit: cannot capture {_name(self.fn)}: {why}"
            if self.fallback:
                return self._give_up(key, why, out)
            raise JitError(why)
        self._plans[key] = rec.plan(len(arrays), out_spec)   # reads the arrays' layouts
        rec.slots = rec.ids = None
        return out

    def _give_up(self, key, why, out):
        """fallback=True: this key runs eagerly from now on; ``out`` (an eager result) stands."""
        self._first.pop(key, None)
        self.fallbacks[key] = why
        return out

    def _record(self, rec, args):
        saved = _install(rec)
        try:
            return self.fn(*args)
        finally:
            _uninstall(saved)


def _out_spec(out, rec):
    if out is None:
        return ("none", None)
    if isinstance(out, Tensor):
        i = rec.ids.get(id(out.data))
        return ("slot", i) if i is not None else ("const", out.data)
    if isinstance(out, (tuple, list)):
        return ("seq", type(out)(_out_spec(o, rec) for o in out))
    raise JitError(f"jit: the step must return a Tensor, a tuple/list of Tensors or None, got "
                   f"{type(out).__name__}; return the loss Tensor and call .item() outside")


# ---------------------------------------------------------------- the seams while recording ---

_READS = ("numpy", "item", "tolist", "__bool__", "__array__", "__setitem__", "__index__")


def _install(rec):
    from .optim.optimizer import Optimizer

    saved = {
        "tape": autograd._tape,
        "backward_arrays": autograd._backward_arrays,
        "sum_to_shape": autograd.sum_to_shape,
        "add": autograd._add,
        "run_hooks": autograd._run_hooks,
        "run_backward": autograd.run_backward,
        "accumulate": Tensor._accumulate_grad,
        "step": Optimizer.step,
        "zero_grad": Optimizer.zero_grad,
        "reads": {n: Tensor.__dict__[n] for n in _READS if n in Tensor.__dict__},
    }
    orig = saved
    _ACCUMULATE[0] = saved["accumulate"]
    _BACKWARD_ARRAYS[0] = saved["backward_arrays"]
    _SUM_TO_SHAPE[0] = saved["sum_to_shape"]

    def run_backward(outputs, grad_outputs, retain_graph=False, create_graph=False,
                     inputs=None):
        if create_graph and rec.mine():
            rec.refuse("jit: backward(create_graph=True) inside a jitted step is not "
                       "captured; run higher-order gradients eagerly")
        return orig["run_backward"](outputs, grad_outputs, retain_graph, create_graph, inputs)

    def run_hooks(t, g, lean):
        if rec.mine():
            rec.refuse("jit: tensor hooks run Python on gradients and are not captured; "
                       "remove the hook or run the step eagerly")
        return orig["run_hooks"](t, g, lean)

    def step(self, closure=None):
        if closure is not None:
            if rec.mine():
                rec.refuse("jit: Optimizer.step(closure) is not captured; call the model in "
                           "the step and step() without a closure")
            return orig["step"](self, closure)
        return rec.run(orig["step"], self)

    def zero_grad(self, set_to_none=True):
        return rec.run(orig["zero_grad"], self, set_to_none)

    member = saved["data"] = Tensor.__dict__["data"]

    def get_data(self):
        return member.__get__(self, Tensor)

    def set_data(self, value):
        if rec.depth == 0 and rec.mine():
            try:
                member.__get__(self, Tensor)
            except AttributeError:           # a new Tensor getting its array: fine
                member.__set__(self, value)
                return
            rec.refuse("jit: assigning a Tensor's .data inside the step is not captured "
                       "(e.g. BatchNorm's running statistics in training mode); run such a "
                       "step eagerly")
        member.__set__(self, value)

    autograd._tape = rec
    Tensor.data = property(get_data, set_data)
    autograd._backward_arrays = lambda fn, ctx, g: rec.run(orig["backward_arrays"], fn, ctx, g)
    autograd.sum_to_shape = lambda g, shape: rec.run(orig["sum_to_shape"], g, shape)
    autograd._add = lambda a, b: rec.run(orig["add"], a, b)
    autograd._run_hooks = run_hooks
    autograd.run_backward = run_backward
    Tensor._accumulate_grad = lambda self, g, cg: rec.run(orig["accumulate"], self, g, cg)
    Optimizer.step = step
    Optimizer.zero_grad = zero_grad
    for name, f in saved["reads"].items():
        setattr(Tensor, name, _refusing(rec, name, f))
    return saved


def _refusing(rec, name, f):
    def method(self, *args, **kwargs):
        if rec.depth == 0 and rec.mine() and rec.is_traced(self.data):
            rec.refuse(f"jit: Tensor.{name} on a value computed inside the step reads it "
                       "in Python, which a replay cannot do; return the Tensor from the step "
                       "and read it outside (e.g. loss.item() after step(...))")
        return f(self, *args, **kwargs)

    return method


def _uninstall(saved):
    from .optim.optimizer import Optimizer

    Tensor.data = saved["data"]
    autograd._tape = saved["tape"]
    autograd._backward_arrays = saved["backward_arrays"]
    autograd.sum_to_shape = saved["sum_to_shape"]
    autograd._add = saved["add"]
    autograd._run_hooks = saved["run_hooks"]
    autograd.run_backward = saved["run_backward"]
    Tensor._accumulate_grad = saved["accumulate"]
    Optimizer.step = saved["step"]
    Optimizer.zero_grad = saved["zero_grad"]
    for name, f in saved["reads"].items():
        setattr(Tensor, name, f)
