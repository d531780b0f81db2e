"""What each op costs: forward and backward FLOPs, from shapes alone.

``count(fn, in_shapes, out_shape, attrs)`` returns ``(forward, backward)`` for one application of
Function ``fn``. A Function may carry its own ``flops(in_shapes, out_shape, attrs)`` static
method; otherwise the rule registered here under its op name is used. A test checks that every
registered op has one, so a new op cannot be silently uncounted.

Conventions (state them, then count exactly):

* a multiply-add is 2 FLOPs: matmul (m, k) @ (k, n) is 2 m n k, conv2d is 2 per weight tap;
* elementwise ops cost 1 FLOP per output element forward, and their backward 1 per element for
  each input (the multiply by the local derivative): ``exp`` forward n, backward n; ``mul``
  forward n, backward 2n;
* moving data (reshape, permute, indexing, padding, concatenation, casts) costs 0;
* backward counts assume every input needs a gradient (the usual training step).

Bytes saved for backward are not a formula: the profiler measures them from what each forward
really kept (``ctx.save`` and array attributes on the context), see ``saved_bytes``.

Next: viz.py, whose ``profile`` sums these per layer.
"""

from math import prod

RULES = {}


def rule(*names):
    """Register ``f(in_shapes, out_shape, attrs) -> (forward, backward)`` for op ``names``."""

    def deco(f):
        for n in names:
            RULES[n] = f
        return f

    return deco


def count(fn, in_shapes, out_shape, attrs=None):
    """``(forward FLOPs, backward FLOPs)`` of one application of Function ``fn``."""
    own = getattr(fn, "flops", None)
    f = own if own is not None else RULES.get(fn.op_name)
    if f is None:
        raise KeyError(f"flops: op {fn.op_name!r} has no FLOP rule; register one with "
                       "@tinygrad_lite.flops.rule(name) or give the Function a flops method")
    fwd, bwd = f([tuple(s) for s in in_shapes], tuple(out_shape), attrs or {})
    return int(fwd), int(bwd)


def saved_bytes(ctx, exclude=()):
    """Bytes of the arrays a forward kept for its backward (``ctx.save`` and array attributes),
    each array once; arrays whose id is in ``exclude`` (parameters) are not activations."""
    seen, total = set(), 0
    arrays = list(ctx._saved) + [v for v in getattr(ctx, "__dict__", {}).values()]
    for a in arrays:
        if hasattr(a, "nbytes") and hasattr(a, "shape") and id(a) not in seen \
                and id(a) not in exclude:
            seen.add(id(a))
            total += int(a.nbytes)
    return total


def _n(shape):
    return prod(shape)


# ------------------------------------------------------------------ elementwise ---

_UNARY = ("abs", "acos", "acosh", "asin", "asinh", "atan", "atanh", "cos", "cosh", "elu", "erf",
          "exp", "exp2", "expm1", "frac", "hardtanh", "leaky_relu", "log", "log10", "log1p",
          "log2", "neg", "relu", "rsqrt", "sigmoid", "sin", "sinh", "softplus", "sqrt", "tan",
          "tanh", "clip", "nan_to_num")
_BINARY = ("add", "sub", "mul", "div", "pow", "maximum", "minimum", "atan2", "copysign", "fmod",
           "remainder", "logaddexp")


@rule(*_UNARY)
def _unary(ins, out, attrs):
    return _n(out), _n(out)


@rule(*_BINARY)
def _binary(ins, out, attrs):
    return _n(out), 2 * _n(out)


@rule("lerp")
def _lerp(ins, out, attrs):
    return 3 * _n(out), 3 * _n(out)


@rule("where")
def _where(ins, out, attrs):
    return _n(out), 2 * _n(out)


@rule("ceil", "floor", "round", "trunc", "sign", "floor_divide")
def _piecewise_constant(ins, out, attrs):
    return _n(out), 0          # the gradient is zero: nothing to compute


# ------------------------------------------------------------------ data movement ---


@rule("reshape", "permute", "expand", "contiguous", "getitem", "index_add", "cat", "pad", "flip",
      "roll", "tril", "triu", "diagonal", "diagonal_backward", "gather", "scatter",
      "scatter_add", "scatter_reduce", "cast", "pool_gather", "max_unpool")
def _movement(ins, out, attrs):
    return 0, 0


# ------------------------------------------------------------------ reductions, scans ---


@rule("sum")
def _sum(ins, out, attrs):
    return _n(ins[0]), 0       # backward broadcasts: no arithmetic


@rule("max", "min")
def _max(ins, out, attrs):
    return _n(ins[0]), 2 * _n(ins[0])   # compare; backward: tie mask and multiply


@rule("prod")
def _prod(ins, out, attrs):
    return _n(ins[0]), 2 * _n(ins[0])


@rule("cumsum")
def _cumsum(ins, out, attrs):
    return _n(ins[0]), _n(ins[0])


@rule("cumprod", "logcumsumexp")
def _cumprod(ins, out, attrs):
    return _n(ins[0]), 3 * _n(ins[0])


@rule("all_reduce_sum")
def _all_reduce(ins, out, attrs):
    return _n(out), _n(out)    # counted per rank: one add per element (the backward reduces too)


# ------------------------------------------------------------------ softmax family ---


@rule("softmax", "log_softmax")
def _softmax(ins, out, attrs):
    n = _n(ins[0])
    return 5 * n, 4 * n        # max, subtract, exp, sum, divide/log; backward 4 passes


@rule("softmax_cross_entropy")
def _xent(ins, out, attrs):
    n, c = ins[0]
    return 6 * n * c, n * c    # log-softmax (5 NC) and the kept gradient (NC); backward: scale


# ------------------------------------------------------------------ matmul, conv ---


def matmul_flops(a_shape, b_shape, out_shape, ta=False, tb=False):
    """2 * (output elements) * (contracted length k)."""
    if len(a_shape) == 1:
        k = a_shape[0]
    else:
        k = a_shape[-2] if ta else a_shape[-1]
    return 2 * max(_n(out_shape), 1) * k


@rule("matmul")
def _matmul(ins, out, attrs):
    f = matmul_flops(ins[0], ins[1], out, attrs.get("ta", False), attrs.get("tb", False))
    return f, 2 * f            # dA and dB: one product of the same size each


@rule("linear_relu")
def _linear_relu(ins, out, attrs):
    n, fin = ins[0]
    f = 2 * _n(out) * fin
    return f + 2 * _n(out), 2 * f + 2 * _n(out)   # + bias, relu; backward: mask, bias sum


def conv2d_flops(w_shape, out_shape):
    """2 * (output elements) * (C/groups * kh * kw), the taps each output sums."""
    return 2 * _n(out_shape) * _n(w_shape[1:])


@rule("conv2d")
def _conv2d(ins, out, attrs):
    f = conv2d_flops(ins[1], out)
    if len(ins) > 2:           # with its bias: one add per output, as a separate add counts
        return f + _n(out), 2 * f + 2 * _n(out)
    return f, 2 * f            # dx (transposed conv) and dw: the same size each


@rule("conv2d_backward_input")
def _conv_bi(ins, out, attrs):
    f = conv2d_flops(ins[1], ins[0])    # gy has the conv's output shape
    return f, 2 * f


@rule("conv2d_backward_weight")
def _conv_bw(ins, out, attrs):
    f = conv2d_flops(tuple(attrs.get("w_shape", out)), ins[0])
    return f, 2 * f


# ------------------------------------------------------------------ pooling ---


def _window(attrs):
    k = attrs["geom"][0]
    return _n(k) if isinstance(k, (tuple, list)) else k * k


@rule("max_pool2d")
def _max_pool(ins, out, attrs):
    return _n(out) * _window(attrs), _n(out)      # compares; backward: one add per output


@rule("avg_pool2d")
def _avg_pool(ins, out, attrs):
    return _n(out) * _window(attrs), _n(out) * _window(attrs)


@rule("max_pool2d_backward")
def _max_pool_b(ins, out, attrs):
    return _n(ins[0]), 0


@rule("avg_pool2d_backward")
def _avg_pool_b(ins, out, attrs):
    return _n(ins[0]) * _window(attrs), _n(ins[0]) * _window(attrs)


# ------------------------------------------------------------------ recurrent ---

# Pointwise FLOPs per hidden unit per step (gate activations, cell and state updates):
# LSTM: 4 activations + c = f c + i g (3) + tanh c (1) + h = o tanh c (1) = 9.
# GRU: 2 sigmoids + n = tanh(xa_n + r ha_n) (3) + h = (1 - z) n + z h (4) = 9.
# RNN: the activation (1).
_POINTWISE = {"lstm_sequence": 9, "gru_sequence": 9, "rnn_sequence": 1}
_GATES = {"lstm_sequence": 4, "gru_sequence": 3, "rnn_sequence": 1}


def recurrent_flops(kind, T, B, F, H, n_bias):
    """Closed form of one fused recurrent layer over (T, B, F) with hidden size H:
    forward  2 T B F G H (input GEMM) + 2 T B H G H (recurrent GEMMs) + n_bias T B G H (biases)
             + p T B H (pointwise; p from _POINTWISE);
    backward twice each GEMM (the input and the weight gradients) + 2 p T B H (pointwise
             derivatives) + n_bias T B G H (bias sums)."""
    G, p = _GATES[kind], _POINTWISE[kind]
    gemm = 2 * T * B * F * G * H + 2 * T * B * H * G * H
    fwd = gemm + n_bias * T * B * G * H + p * T * B * H
    bwd = 2 * gemm + 2 * p * T * B * H + n_bias * T * B * G * H
    return fwd, bwd


def _recurrent(kind):
    def f(ins, out, attrs):
        T, B, F = ins[0]
        H = ins[1][1]
        n_fixed = 5 if kind == "lstm_sequence" else 4
        return recurrent_flops(kind, T, B, F, H, len(ins) - n_fixed)

    return f


for _k in _GATES:
    RULES[_k] = _recurrent(_k)


def missing():
    """Registered ops with no FLOP rule (a test keeps this empty)."""
    from .autograd import REGISTRY

    return sorted(n for n, fn in REGISTRY.items()
                  if getattr(fn, "flops", None) is None and n not in RULES)



# ------------------------------------------------------------------ recording ---


class OpRecord:
    """One forward op seen by a Recorder: ``op``, ``fn``, ``module`` (the innermost module
    running, '' outside any), ``in_shapes``, ``out_shape``, ``fwd``/``bwd`` FLOPs,
    ``saved`` (bytes kept for backward, parameters excluded), ``time`` (forward seconds) and
    ``bwd_time`` (seconds of its backward node, filled by ``Recorder.backward_timer``)."""

    __slots__ = ("op", "fn", "module", "in_shapes", "out_shape", "fwd", "bwd", "saved", "time",
                 "bwd_time", "node")

    def __repr__(self):
        return f"<OpRecord {self.op} {self.module!r} fwd={self.fwd} bwd={self.bwd}>"


class Recorder:
    """``with Recorder(model) as rec: loss = f(model(x))`` records every op applied: its
    FLOPs, the bytes it saved for backward, its forward time and (with ``model``) the module
    that ran it. ``rec.node_module`` maps graph nodes to module names (viz.to_dot draws module
    clusters with it).

    How: ``Function.apply`` is wrapped while the block runs (and restored after), so ops cost
    nothing extra outside it; module names come from forward pre-hooks and hooks.
    """

    def __init__(self, model=None):
        self.model = model
        self.ops = []
        self.node_module = {}          # id(Node) -> module name
        self.module_types = {}
        self._stack = []
        self._handles = []
        self._params = set()
        self._by_node = {}

    @property
    def forward_flops(self):
        return sum(r.fwd for r in self.ops)

    @property
    def backward_flops(self):
        return sum(r.bwd for r in self.ops)

    def __enter__(self):
        from time import perf_counter

        from .autograd import Function

        self._orig = Function.__dict__["apply"]
        orig, rec = self._orig.__func__, self

        def apply(cls, *inputs, **attrs):
            t0 = perf_counter()
            out = orig(cls, *inputs, **attrs)
            rec._op(cls, inputs, attrs, out, perf_counter() - t0)
            return out

        Function.apply = classmethod(apply)
        if self.model is not None:
            self._params = {id(p.data) for p in self.model.parameters()}
            for name, m in self.model.named_modules():
                self.module_types[name] = type(m).__name__
                self._handles.append(m.register_forward_pre_hook(
                    lambda mod, inp, name=name: self._stack.append(name)))
                self._handles.append(m.register_forward_hook(
                    lambda mod, inp, out: self._stack.pop()))
        return self

    def __exit__(self, *exc):
        from .autograd import Function

        Function.apply = self._orig
        for h in self._handles:
            h.remove()
        self._handles = []
        return False

    def _op(self, cls, inputs, attrs, out, dt):
        r = OpRecord()
        r.op, r.fn = cls.op_name, cls
        r.module = self._stack[-1] if self._stack else ""
        r.in_shapes = [tuple(getattr(t, "shape", ())) for t in inputs]
        r.out_shape = tuple(out.shape)
        r.fwd, r.bwd = count(cls, r.in_shapes, r.out_shape, attrs)
        node = out._node
        if node is None:
            r.bwd, r.saved = 0, 0       # nothing recorded: no backward will run
        else:
            r.saved = saved_bytes(node.ctx, self._params)
            self.node_module[id(node)] = r.module
            self._by_node[id(node)] = r
        r.node = node                   # keeps the node alive so its id stays unique
        r.time, r.bwd_time = dt, 0.0
        self.ops.append(r)

    def backward_timer(self):
        """A tracer for ``autograd._tracer`` that adds each node's backward time to its
        OpRecord (the wall time between consecutive node visits of the walk)."""
        return _BackwardTimer(self._by_node)


class _BackwardTimer:
    def __init__(self, by_node):
        from time import perf_counter

        self.by_node, self.clock, self.last = by_node, perf_counter, None

    def __enter__(self):
        from . import autograd

        self._prev, autograd._tracer = autograd._tracer, self
        return self

    def __exit__(self, *exc):
        from . import autograd

        autograd._tracer = self._prev
        return False

    def begin(self, outputs, grad_outputs):
        self.last = self.clock()

    def visit(self, t, node, g, in_grads):
        now = self.clock()
        r = self.by_node.get(id(node))
        if r is not None:
            r.bwd_time += now - self.last
        self.last = now
