"""Compiled inference: a chain of layers run as a flat list of kernel calls on preallocated buffers.

In eval mode under ``no_grad`` nothing is recorded for backward, so a forward pass needs none of
the Tensor machinery: no Tensor per intermediate result, no Context, no backend lookup per op.
``Sequential.predict`` (models.py) and ``nn.Sequential.__call__`` (nn/container.py) therefore
turn their layers, once per input shape and dtype, into a *plan*: a list of steps, each a small
object that reads its input array, calls one kernel (the Cython GEMM with a bias + ReLU epilogue
for Dense/Linear, conv2d and pooling kernels of the active backend, NumPy ufuncs for the
elementwise layers) and writes into a buffer allocated when the plan was made.

Weights are read **by reference on every call** (``layer._parameters[name].data``), never
copied into the plan, so whatever changes them is seen: an optimizer step (in place),
``set_weights`` (in place), ``load_state_dict`` (new arrays), an edit of ``p.data``, or a new
Parameter object. A step only re-checks a weight (dtype, shape, layout) when its array object
changed since the last call; if it no longer fits, the plan is dropped and that call runs eagerly.

Anything a plan cannot run (a layer type without a step, an integer input, a training-mode
sub-layer, a forward hook, a GPU array) falls back to the eager layers, which stay the reference:
tests compare the two bit for bit where the same kernels run.

Next: models.py, where ``Sequential.predict`` asks for a plan.
"""

import threading

import numpy as np

from . import backends as _backends
from .backends import threads as _threads
from .backends._ext import load_cpu_kernels

_cpu, _ = load_cpu_kernels()
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_MAX_PLANS = 8   # plans kept per model (one per input shape); the oldest goes first


class Stale(Exception):
    """A weight changed so that the plan no longer fits (shape, dtype or layout): run eagerly."""


class _Weight:
    """A reference to ``owner._parameters[name]`` (or ``_buffers``), read on every call."""

    __slots__ = ("store", "name", "last", "check")

    def __init__(self, store, name, check):
        self.store, self.name, self.check, self.last = store, name, check, None

    def get(self):
        t = self.store[self.name]
        a = None if t is None else t.data
        if a is not self.last:       # a new array object: check it once, then trust it
            self.check(a)
            self.last = a
        return a


def _want(shape, dtype, contiguous=True, fortran=False):
    def check(a):
        if (type(a) is not np.ndarray or a.shape != shape or a.dtype != dtype
                or (contiguous and not a.flags.c_contiguous)
                or (fortran and not a.flags.f_contiguous)):
            raise Stale
    return check


def _store(layer, name):
    """The dict that holds ``layer.<name>`` (parameters or buffers), or None."""
    for d in (layer._parameters, layer._buffers):
        if name in d:
            return d
    return None


# ------------------------------------------------------------------ steps ---
# Each step: build-time shape logic in __init__ (raises _Unsupported), run-time work in run(x).


class _Unsupported(Exception):
    pass


class _Dense:
    """y = act(x @ op(W) + b): one ``gemm_bias_act`` call (Cython), or matmul + NumPy epilogue."""

    def __init__(self, shape, dtype, layer, wname, bname, trans_b, act, fast):
        if len(shape) != 2:
            raise _Unsupported
        store = _store(layer, wname)
        if store is None or store[wname] is None:
            raise _Unsupported
        w = store[wname].data
        if type(w) is not np.ndarray or w.dtype != dtype or w.ndim != 2:
            raise _Unsupported
        n, k = w.shape if trans_b else w.shape[::-1]
        if k != shape[1]:
            raise _Unsupported
        # A Fortran-ordered weight (e.g. a transposed array loaded by load_state_dict) is read
        # as its C-ordered transpose with the transpose flag flipped, as the cython backend does.
        self.flip = not w.flags.c_contiguous and w.flags.f_contiguous
        self.w = _Weight(store, wname, _want(w.shape, dtype, not self.flip, self.flip))
        bstore = _store(layer, bname) if bname else None
        self.b = None
        if bstore is not None and bstore[bname] is not None:
            self.b = _Weight(bstore, bname, _want((n,), dtype))
            self.b.get()
        self.w.get()                       # raises Stale now if a weight does not fit
        self.trans_b, self.act = trans_b, act
        self.out_shape = (shape[0], n)
        self.buf = np.empty(self.out_shape, dtype)
        self.fast = fast and _cpu is not None

    def run(self, x):
        w = self.w.get()
        b = None if self.b is None else self.b.get()
        out = self.buf
        if self.fast:
            if self.flip:
                _cpu.gemm_bias_act(x, w.T, False, not self.trans_b, b, out, self.act,
                                   _threads._num_threads)
            else:
                _cpu.gemm_bias_act(x, w, False, self.trans_b, b, out, self.act,
                                   _threads._num_threads)
            return out
        np.matmul(x, w.T if self.trans_b else w, out=out)   # the numpy backend's matmul
        if b is not None:
            np.add(out, b, out=out)
        if self.act == 1:
            np.maximum(out, 0, out=out)
        return out


class _Unary:
    """An elementwise activation into the step's buffer (same formula as the eager op)."""

    def __init__(self, shape, dtype, kind, fast):
        self.kind, self.out_shape = kind, shape
        self.buf = np.empty(shape, dtype)
        self.fast = fast and _cpu is not None and len(shape) == 2

    def run(self, x):
        out, kind = self.buf, self.kind
        if kind == "relu":
            np.maximum(x, 0, out=out)
        elif kind == "tanh":
            np.tanh(x, out=out)
        elif kind == "sigmoid":                      # ops/elementwise.py Sigmoid.forward
            e = np.exp(-np.abs(x))
            np.copyto(out, np.where(x >= 0, 1 / (1 + e), e / (1 + e)))
        elif kind == "softmax":                      # ops/nn.py Softmax.forward, last axis
            if self.fast:
                np.copyto(out, x)
                _cpu.softmax_rows(out)
            else:
                np.subtract(x, x.max(axis=-1, keepdims=True), out=out)
                np.exp(out, out=out)
                out /= out.sum(axis=-1, keepdims=True)
        elif kind == "log_softmax":                  # ops/nn.py LogSoftmax.forward
            s = x - x.max(axis=-1, keepdims=True)
            np.subtract(s, np.log(np.exp(s).sum(axis=-1, keepdims=True)), out=out)
        return out


class _InPlaceSoftmax:
    """Softmax over the last axis of the previous step's own buffer (no copy)."""

    def __init__(self, shape, dtype, kind, fast):
        self.out_shape = shape
        self.fast = fast and _cpu is not None and len(shape) == 2

    def run(self, x):
        if self.fast:
            _cpu.softmax_rows(x)
            return x
        x -= x.max(axis=-1, keepdims=True)
        np.exp(x, out=x)
        x /= x.sum(axis=-1, keepdims=True)
        return x


class _Reshape:
    def __init__(self, shape, out_shape):
        self.out_shape = tuple(out_shape)

    def run(self, x):
        return x.reshape(self.out_shape)


class _Conv:
    """conv2d of the active backend (NCHW), plus the bias (as ``F.conv2d``)."""

    def __init__(self, shape, dtype, layer):
        from .ops import nn as N

        pad = layer.padding
        if isinstance(pad, str) or len(shape) != 4:
            raise _Unsupported
        w = layer._parameters["weight"].data
        if type(w) is not np.ndarray or w.dtype != dtype:
            raise _Unsupported
        self.geom, _ = N.conv_geometry("conv2d", shape, w.shape, layer.stride, pad,
                                       layer.dilation, layer.groups)
        self.w = _Weight(layer._parameters, "weight", _want(w.shape, dtype, contiguous=False))
        self.b = None
        if layer._parameters.get("bias") is not None:
            self.b = _Weight(layer._parameters, "bias", _want((w.shape[0],), dtype, False))
        self.backend = _backends.current()
        y = self.backend.conv2d(np.zeros(shape, dtype), w, *self.geom)
        self.out_shape = y.shape

    def run(self, x):
        y = self.backend.conv2d(x, self.w.get(), *self.geom)
        if self.b is not None:
            y += self.b.get().reshape(1, -1, 1, 1)
        return y


class _Pool:
    def __init__(self, shape, dtype, layer, kind):
        from .ops import nn as N

        if len(shape) != 4:
            raise _Unsupported
        self.geom = N.pool_geometry(kind, shape, layer.kernel_size, layer.stride, layer.padding)
        self.backend, self.kind = _backends.current(), kind
        self.out_shape = self.run(np.zeros(shape, dtype)).shape

    def run(self, x):
        if self.kind == "max_pool2d":
            return self.backend.max_pool2d(x, *self.geom)[0]
        return self.backend.avg_pool2d(x, *self.geom)


class _BatchNormEval:
    """y = (x - running_mean) / sqrt(running_var + eps) * weight + bias (normalization.py)."""

    def __init__(self, shape, dtype, layer):
        if not layer.track_running_stats or len(shape) not in layer._ndims \
                or shape[1] != layer.num_features:
            raise _Unsupported
        c = layer.num_features
        self.bshape = tuple(-1 if i == 1 else 1 for i in range(len(shape)))
        chk = _want((c,), dtype, contiguous=False)
        for name in ("running_mean", "running_var"):
            a = layer._buffers[name].data
            if type(a) is not np.ndarray or a.dtype != dtype:
                raise _Unsupported
        self.rm = _Weight(layer._buffers, "running_mean", chk)
        self.rv = _Weight(layer._buffers, "running_var", chk)
        self.w = _Weight(layer._parameters, "weight", chk) if layer.affine else None
        self.b = _Weight(layer._parameters, "bias", chk) if layer.affine else None
        self.eps, self.out_shape = layer.eps, shape

    def run(self, x):
        s = self.bshape
        y = (x - self.rm.get().reshape(s)) / np.sqrt(self.rv.get().reshape(s) + self.eps)
        if self.w is not None:
            y = y * self.w.get().reshape(s)
            y = y + self.b.get().reshape(s)
        return y


_KERAS_ACTS = {None: None, "linear": None, "relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh",
               "softmax": "softmax", "log_softmax": "log_softmax"}


def _steps_for(layers, shape, dtype, fast):
    """The steps of a chain of layers for input ``shape``; raises _Unsupported."""
    from . import layers as K
    from .nn import activation as A
    from .nn import conv as C
    from .nn import linear as NL
    from .nn import normalization as BN
    from .nn import pooling as P

    steps, i = [], 0
    layers = list(layers)
    while i < len(layers):
        layer = layers[i]
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        if type(layer) is NL.Linear:
            relu = type(nxt) is A.ReLU
            step = _Dense(shape, dtype, layer, "weight", "bias", True, int(relu), fast)
            i += relu
        elif type(layer) is K.Dense:
            if not layer.built or layer.activation not in _KERAS_ACTS:
                raise _Unsupported
            act = _KERAS_ACTS[layer.activation]
            step = _Dense(shape, dtype, layer, "kernel", "bias", False, int(act == "relu"), fast)
            if act not in (None, "relu"):
                steps.append(step)
                shape = step.out_shape
                cls = _InPlaceSoftmax if act == "softmax" else _Unary
                step = cls(shape, dtype, act, fast)
        elif type(layer) is K.Activation and layer.activation in _KERAS_ACTS:
            act = _KERAS_ACTS[layer.activation]
            step = None if act is None else _Unary(shape, dtype, act, fast)
        elif type(layer) in (A.ReLU, A.Sigmoid, A.Tanh):
            step = _Unary(shape, dtype, type(layer).__name__.lower(), fast)
        elif type(layer) in (A.Softmax, A.LogSoftmax):
            if layer.dim not in (-1, len(shape) - 1):
                raise _Unsupported
            step = _Unary(shape, dtype, "softmax" if type(layer) is A.Softmax else "log_softmax",
                          fast)
        elif type(layer) in (NL.Dropout, NL.Identity, K.Dropout, K.InputLayer):
            step = None                              # the identity in eval mode
        elif type(layer) is NL.Flatten and (layer.start_dim, layer.end_dim) == (1, -1):
            step = _Reshape(shape, (shape[0], int(np.prod(shape[1:]))))
        elif type(layer) is K.Flatten:
            step = _Reshape(shape, (shape[0], int(np.prod(shape[1:]))))
        elif type(layer) is C.Conv2d:
            step = _Conv(shape, dtype, layer)
        elif type(layer) in (P.MaxPool2d, P.AvgPool2d):
            step = _Pool(shape, dtype, layer,
                         "max_pool2d" if type(layer) is P.MaxPool2d else "avg_pool2d")
        elif type(layer) in (BN.BatchNorm1d, BN.BatchNorm2d):
            step = _BatchNormEval(shape, dtype, layer)
        else:
            raise _Unsupported
        if step is not None:
            steps.append(step)
            shape = step.out_shape
        i += 1
    return steps


class Plan:
    """The steps for one input shape and dtype; ``run(x)`` returns a fresh output array.

    The buffers belong to the plan, so one call at a time may use it (``lock``); a call that
    finds it busy (another thread is inside, the kernels release the GIL) runs eagerly."""

    __slots__ = ("steps", "layers", "buffers", "lock")

    def __init__(self, layers, shape, dtype):
        fast = _backends.current().name == "cython"
        self.layers = tuple(layers)
        self.steps = tuple(s.run for s in _steps_for(self.layers, shape, dtype, fast))
        self.buffers = {id(getattr(s.__self__, "buf", None)) for s in self.steps}
        self.lock = threading.Lock()

    def run(self, x):
        for step in self.steps:
            x = step(x)
        if id(x) in self.buffers or x.base is not None:   # never hand out a plan buffer
            x = x.copy()
        return x


def run(owner, layers, x):
    """Run ``layers`` on array ``x`` through the owner's plan cache; None: run eagerly instead.

    ``owner`` keeps the cache (``owner._plans``), keyed by input shape, dtype and backend; a plan
    built for other layers (the chain was edited) is rebuilt.
    """
    if type(x) is not np.ndarray or x.dtype not in _FLOATS:
        return None
    backend = _backends.current().name
    if backend not in ("cython", "numpy"):
        return None
    for layer in layers:                      # every layer must be in eval mode, without hooks
        if layer.training or layer._hooked():
            return None
    plans = owner.__dict__.get("_plans")
    if plans is None:
        plans = owner.__dict__["_plans"] = {}
    key = (x.shape, x.dtype, backend)
    layers = tuple(layers)
    entry = plans.get(key)
    if entry is None or entry[0] != layers:    # new shape, or the chain was edited
        try:
            plan = Plan(layers, x.shape, x.dtype)
        except (_Unsupported, Stale):
            plan = None                        # remembered: this shape runs eagerly
        if len(plans) >= _MAX_PLANS:
            plans.pop(next(iter(plans)))
        plans[key] = entry = (layers, plan)
    plan = entry[1]
    if plan is None:
        return None
    if not x.flags.c_contiguous:
        x = np.ascontiguousarray(x)
    if not plan.lock.acquire(blocking=False):
        return None                            # another thread is running this plan
    try:
        return plan.run(x)
    except Stale:
        plans.pop(key, None)                   # a weight no longer fits: rebuild next time
        return None
    finally:
        plan.lock.release()
