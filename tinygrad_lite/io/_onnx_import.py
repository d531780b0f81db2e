"""``io.load_onnx``: an ONNX graph as a trainable ``nn.Module`` (see io/onnx.py).

The file is read by ``runtime.read_onnx`` (the hardened protobuf reader that the vendorable
runtime uses too), checked by ``runtime._onnx_plan`` (known ops, inputs defined before use, one
data input), and run node by node: with tinygrad_lite Tensor ops when an input is a Tensor (so
gradients flow to the Parameters), with the runtime's NumPy op when every input is a constant
(PyTorch's Shape -> Gather -> Concat chains, gate permutations, masks).
"""

import math

import numpy as np

from .. import runtime as _rt
from ..errors import ModelFormatError
from ..functions import cat
from ..nn import functional as F
from ..nn.module import Module
from ..nn.parameter import Parameter
from ..tensor import Tensor


def _t(v):
    return v if isinstance(v, Tensor) else Tensor(np.asarray(v))


def _arr(v):
    return v.data if isinstance(v, Tensor) else np.asarray(v)


def _opt(ins, i):
    return ins[i] if len(ins) > i and ins[i] is not None else None


def _pads(op, a, nd, shape):
    pads = [int(p) for p in a.get("pads", [0] * (2 * nd))]
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise ModelFormatError(f"{op}: auto_pad is not supported; export with explicit pads")
    if len(pads) != 2 * nd or min(pads, default=0) < 0:
        raise ValueError(f"{op}: pads {pads[:8]} must be 2 non-negative values per axis")
    _rt._cap_shape(op, list(shape[:2]) + [n + pads[i] + pads[i + nd]
                                          for i, n in enumerate(shape[2:])])
    return pads[:nd], pads[nd:]


def _conv(ins, a):
    from ..nn.spatial import conv1d
    x, w, b = _t(ins[0]), _t(ins[1]), _opt(ins, 2)
    nd = x.ndim - 2
    lo, hi = _pads("Conv", a, nd, tuple(x.shape))
    s = [int(v) for v in a.get("strides", [1] * nd)]
    d = [int(v) for v in a.get("dilations", [1] * nd)]
    if lo != hi:
        x = x.pad(((0, 0), (0, 0)) + tuple(zip(lo, hi)))
        lo = [0] * nd
    b = None if b is None else _t(b)
    g = int(a.get("group", 1))
    k = [int(v) for v in a.get("kernel_shape", w.shape[2:])]
    _rt._conv_out(tuple(x.shape), tuple(w.shape), k, s, d, list(lo) + list(lo))
    if nd == 1:
        return [conv1d(x, w, b, s[0], lo[0], d[0], g)]
    if nd == 2:
        return [F.conv2d(x, w, b, tuple(s), tuple(lo), tuple(d), g)]
    raise ModelFormatError(f"Conv: {nd}-D convolution is not supported (1-D and 2-D are)")


def _conv_transpose(ins, a):
    from ..nn.spatial import conv_transpose1d
    x, w, b = _t(ins[0]), _t(ins[1]), _opt(ins, 2)
    nd = x.ndim - 2
    if "output_shape" in a:
        raise ModelFormatError("ConvTranspose: output_shape is not supported; export with pads")
    lo, hi = _pads("ConvTranspose", a, nd, tuple(x.shape))
    if lo != hi:
        raise ModelFormatError("ConvTranspose: asymmetric pads are not supported")
    s = [int(v) for v in a.get("strides", [1] * nd)]
    d = [int(v) for v in a.get("dilations", [1] * nd)]
    op = [int(v) for v in a.get("output_padding", [0] * nd)]
    g = int(a.get("group", 1))
    _rt._cap_shape("ConvTranspose", [x.shape[0], w.shape[1] * g] + [
        (x.shape[2 + i] - 1) * s[i] + (w.shape[2 + i] - 1) * d[i] + 1 + op[i]
        for i in range(nd)])
    b = None if b is None else _t(b)
    if nd == 1:
        return [conv_transpose1d(x, w, b, s[0], lo[0], op[0], g, d[0])]
    if nd == 2:
        return [F.conv_transpose2d(x, w, b, tuple(s), tuple(lo), tuple(op), g, tuple(d))]
    raise ModelFormatError(f"ConvTranspose: {nd}-D is not supported (1-D and 2-D are)")


def _pool(is_max):
    def run(ins, a):
        from ..nn.spatial import avg_pool_nd, max_pool_nd
        x = _t(ins[0])
        nd = x.ndim - 2
        k = tuple(int(v) for v in a["kernel_shape"])
        s = tuple(int(v) for v in a.get("strides", [1] * nd))
        lo, hi = _pads("MaxPool" if is_max else "AveragePool", a, nd, tuple(x.shape))
        ceil = bool(a.get("ceil_mode", 0))
        if lo != hi:                   # explicit padding; the average counts what ONNX counts
            width = ((0, 0), (0, 0)) + tuple(zip(lo, hi))
            if is_max:
                x = x.pad(width, value=-np.inf)
            elif a.get("count_include_pad", 0):
                x = x.pad(width)
            else:
                ones = np.pad(np.ones((1, 1) + tuple(x.shape[2:]), x.dtype), width)
                num = avg_pool_nd(x.pad(width), nd, k, s, 0, ceil, True)
                return [num / avg_pool_nd(Tensor(ones), nd, k, s, 0, ceil, True)]
            lo = [0] * nd
        if is_max:
            d = tuple(int(v) for v in a.get("dilations", [1] * nd))
            return [max_pool_nd(x, nd, k, s, tuple(lo), d, ceil)]
        return [avg_pool_nd(x, nd, k, s, tuple(lo), ceil, bool(a.get("count_include_pad", 0)))]
    return run


def _gemm(ins, a):
    A, B = _t(ins[0]), _t(ins[1])
    A = A.T if a.get("transA", 0) else A
    B = B.T if a.get("transB", 0) else B
    _rt._cap_shape("Gemm", tuple(A.shape[:-1]) + tuple(B.shape[-1:]))
    y = A @ B
    if a.get("alpha", 1.0) != 1.0:
        y = y * float(a["alpha"])
    c = _opt(ins, 2)
    if c is not None:
        y = y + (_t(c) * float(a.get("beta", 1.0)) if a.get("beta", 1.0) != 1.0 else _t(c))
    return [y]


def _batchnorm(ins, a):
    from ..nn.normalization import batch_norm
    x, scale, bias, mean, var = (_t(v) for v in ins[:5])
    if x.ndim < 2 or any(v.size != x.shape[1] for v in (scale, bias, mean, var)):
        raise ValueError(f"BatchNormalization: parameters do not fit {x.shape[1:2]} channels")
    return [batch_norm(x, mean, var, scale, bias, training=False,
                       eps=float(a.get("epsilon", 1e-5)), axis=1)]


def _layernorm(ins, a):
    x = _t(ins[0])
    axis = int(a.get("axis", -1)) % x.ndim
    if any(np.broadcast_shapes(tuple(x.shape), tuple(_t(v).shape)) != tuple(x.shape)
           for v in ins[1:3] if v is not None):
        raise ValueError(f"LayerNormalization: scale/bias do not fit the input {x.shape}")
    axes = tuple(range(axis, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True, correction=0)
    y = (x - mean) / (var + float(a.get("epsilon", 1e-5))).sqrt() * _t(ins[1])
    b = _opt(ins, 2)
    return [y if b is None else y + _t(b)]


def _squeeze_shape(shape, axes):
    axes = {a % len(shape) for a in axes} if axes is not None else \
        {i for i, d in enumerate(shape) if d == 1}
    return [d for i, d in enumerate(shape) if i not in axes]


def _unsqueeze_shape(shape, axes):
    out = list(shape)
    n = len(shape) + len(axes)
    for ax in sorted(a % n for a in axes):
        out.insert(ax, 1)
    return out


def _reshape(ins, a):
    x = _t(ins[0])
    shape = [int(v) for v in _arr(ins[1]).reshape(-1)]
    if not a.get("allowzero", 0):
        shape = [x.shape[i] if v == 0 else v for i, v in enumerate(shape)]
    return [x.reshape(tuple(shape))]


def _gather(ins, a):
    x, idx = _t(ins[0]), _rt._gather_index(tuple(_t(ins[0]).shape), _arr(ins[1]), a)
    axis = int(a.get("axis", 0)) % x.ndim
    n = x.shape[axis]
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise IndexError(f"Gather: indices out of range for axis of size {n}")
    idx = np.where(idx < 0, idx + n, idx)
    if axis == 0 and idx.ndim >= 1 and x.ndim == 2:
        return [F.embedding(idx, x)]
    key = (slice(None),) * axis + ((int(idx),) if idx.ndim == 0 else (idx,))
    return [x[key]]


def _slice(ins, a):
    x = _t(ins[0])
    starts, ends = (_arr(v).reshape(-1) for v in ins[1:3])
    axes = _arr(ins[3]).reshape(-1) if _opt(ins, 3) is not None else range(len(starts))
    steps = _arr(ins[4]).reshape(-1) if _opt(ins, 4) is not None else [1] * len(starts)
    key = [slice(None)] * x.ndim
    big = 2**62
    for st, en, ax, sp in zip(starts, ends, axes, steps):
        key[int(ax)] = slice(int(np.clip(st, -big, big)), int(np.clip(en, -big, big)), int(sp))
    return [x[tuple(key)]]


def _recurrent_node(kind, ins, a, G, perm, **kw):
    """An ONNX LSTM/GRU/RNN node (forward, reverse or bidirectional; either layout) through
    nn.functional's recurrent core: the ONNX gate blocks gathered into ``perm`` order (a
    differentiable gather, so the gradient reaches the file's W, R and B)."""
    from ..nn._recurrent_core import recurrent

    _, _, H, D, layout = _rt._np_rnn_weights(
        kind.upper(), [None if v is None else _arr(v) for v in ins], a)        # the checks
    x, W, R, B = _t(ins[0]), _t(ins[1]), _t(ins[2]), _opt(ins, 3)
    if layout:
        x = x.swapaxes(0, 1)
    rows = np.concatenate([np.arange(b * H, (b + 1) * H) for b in perm])
    weights = []
    for d in range(D):
        b_ih = b_hh = None
        if B is not None:
            Bd = _t(B)[d]
            b_ih, b_hh = Bd[:G * H][rows], Bd[G * H:][rows]
        weights.append((W[d][rows], R[d][rows], b_ih, b_hh))
    states = []
    for j in range(2 if kind == "lstm" else 1):
        s = _opt(ins, 5 + j)
        s = _t(np.zeros((D, x.shape[1], H), x.dtype) if s is None else s)
        states.append(s.swapaxes(0, 1) if layout else s)
    reverse = _rt._text(a.get("direction", "forward")) == "reverse"
    if reverse:
        x = x.flip(0)
    y, finals = recurrent(kind, x, tuple(states) if len(states) == 2 else states[0], weights,
                          bidirectional=D == 2, **kw)
    if reverse:
        y = y.flip(0)
    T, N = y.shape[:2]
    y = y.reshape(T, N, D, H).permute(0, 2, 1, 3)                          # (T, D, N, H)
    finals = list(finals) if isinstance(finals, tuple) else [finals]
    if layout:
        return [y.permute(2, 0, 1, 3)] + [f.swapaxes(0, 1) for f in finals]
    return [y] + finals


def _lstm(ins, a):
    if _opt(ins, 7) is not None:
        raise ModelFormatError("LSTM: peepholes are not supported")
    return _recurrent_node("lstm", ins, a, 4, [0, 2, 3, 1], gates="ifgo")   # iofc -> ifgo


def _gru(ins, a):
    if not a.get("linear_before_reset", 0):
        raise ModelFormatError("GRU: only linear_before_reset=1 (PyTorch/Keras) is supported")
    return _recurrent_node("gru", ins, a, 3, [1, 0, 2], gates="rzn")        # zrh -> rzn


def _rnn(ins, a):
    relu = [_rt._text(v) for v in a.get("activations", [])][:1] == ["Relu"]
    return _recurrent_node("rnn", ins, a, 1, [0], nonlinearity="relu" if relu else "tanh")


def _unary(fn):
    return lambda ins, a: [fn(_t(ins[0]), a)]


def _binary(fn, matmul=False):
    def run(ins, a):
        p, q = _t(ins[0]), _t(ins[1])
        shape = np.broadcast_shapes(p.shape, q.shape) if not matmul else \
            tuple(p.shape[:-1]) + tuple(q.shape[-1:])
        _rt._cap_shape("ONNX op", shape)         # a hostile file cannot broadcast a bomb
        return [fn(p, q)]
    return run


def _cast(ins, a):
    to = np.dtype(_rt._ONNX_DTYPES[int(a["to"])])
    x = _t(ins[0])
    if to.kind == "f":
        return [x if x.dtype == to else x.astype(to)]
    return [x.data.astype(to)]        # ids and masks: constants, no gradient


def _softplus(x, a):
    return F.softplus(x)


def _selu(x, a):
    al = float(a.get("alpha", 1.67326319217681884765625))
    ga = float(a.get("gamma", 1.05070102214813232421875))
    return (x.relu() + (x.clip(None, 0.0).exp() - 1.0) * al) * ga


def _split(ins, a):
    x = _t(ins[0])
    axis, sizes = _rt._split_sizes(tuple(x.shape), ins, a)
    out, start = [], 0
    for n in sizes:
        out.append(x[(slice(None),) * axis + (slice(start, start + n),)])
        start += n
    return out


def _resize(ins, a):
    x = _t(ins[0])
    for axis, idx in enumerate(_rt._resize_index(tuple(x.shape), ins, a)):
        if idx is not None:
            x = x.index_select(axis, idx)
    return [x]


def _pad(ins, a):
    from ..nn.spatial import pad

    x = _t(ins[0])
    widths, mode, value = _rt._pad_widths(tuple(x.shape), ins, a)
    if mode == "constant":
        return [x.pad(tuple(widths), value=value)]
    lead = next((i for i, w in enumerate(widths) if w != (0, 0)), x.ndim)
    flat = tuple(v for lo_hi in reversed(widths[lead:]) for v in lo_hi)
    return [pad(x, flat, mode="reflect" if mode == "reflect" else "replicate")]


TENSOR_OPS = {
    "Identity": lambda ins, a: [ins[0]], "Dropout": lambda ins, a: [ins[0]],
    "Add": _binary(lambda p, q: p + q), "Sub": _binary(lambda p, q: p - q),
    "Mul": _binary(lambda p, q: p * q), "Div": _binary(lambda p, q: p / q),
    "Pow": _binary(lambda p, q: p ** q), "MatMul": _binary(lambda p, q: p @ q, True),
    "Gemm": _gemm,
    "Relu": _unary(lambda x, a: x.relu()), "Sigmoid": _unary(lambda x, a: x.sigmoid()),
    "Tanh": _unary(lambda x, a: x.tanh()), "Softplus": _unary(_softplus),
    "Softsign": _unary(lambda x, a: x.softsign()), "Exp": _unary(lambda x, a: x.exp()),
    "Log": _unary(lambda x, a: x.log()), "Sqrt": _unary(lambda x, a: x.sqrt()),
    "Neg": _unary(lambda x, a: -x), "Abs": _unary(lambda x, a: x.abs()),
    "Erf": _unary(lambda x, a: x.erf()), "Reciprocal": _unary(lambda x, a: x.reciprocal()),
    "Elu": _unary(lambda x, a: x.elu(float(a.get("alpha", 1.0)))),
    "LeakyRelu": _unary(lambda x, a: x.leaky_relu(float(a.get("alpha", 0.01)))),
    "HardSigmoid": _unary(lambda x, a: (x * float(a.get("alpha", 0.2))
                                        + float(a.get("beta", 0.5))).clip(0.0, 1.0)),
    "HardSwish": _unary(lambda x, a: x.hardswish()),
    "Clip": lambda ins, a: [_t(ins[0]).clip(
        None if _opt(ins, 1) is None else float(_arr(ins[1])),
        None if _opt(ins, 2) is None else float(_arr(ins[2])))],
    "Softmax": _unary(lambda x, a: x.softmax(axis=int(a.get("axis", -1)))),
    "LogSoftmax": _unary(lambda x, a: x.log_softmax(axis=int(a.get("axis", -1)))),
    "Conv": _conv, "ConvTranspose": _conv_transpose, "MaxPool": _pool(True),
    "AveragePool": _pool(False),
    "GlobalAveragePool": _unary(lambda x, a: x.mean(axis=tuple(range(2, x.ndim)),
                                                    keepdims=True)),
    "BatchNormalization": _batchnorm, "LayerNormalization": _layernorm,
    "Flatten": _unary(lambda x, a: x.reshape(
        (math.prod(x.shape[:int(a.get("axis", 1)) % x.ndim]), -1))),
    "Reshape": _reshape,
    "Transpose": _unary(lambda x, a: x.permute(*(a.get("perm") or range(x.ndim)[::-1]))),
    "Squeeze": lambda ins, a: [_t(ins[0]).reshape(tuple(_squeeze_shape(
        _t(ins[0]).shape, _rt._axes_arg(ins, a))))],
    "Unsqueeze": lambda ins, a: [_t(ins[0]).reshape(tuple(_unsqueeze_shape(
        _t(ins[0]).shape, _rt._axes_arg(ins, a))))],
    "Concat": lambda ins, a: [cat([_t(v) for v in ins], axis=int(a["axis"]))],
    "Gather": _gather, "Slice": _slice, "Cast": _cast, "Split": _split, "Pad": _pad,
    "Resize": _resize,
    "Selu": _unary(_selu),
    "Shape": lambda ins, a: [np.array(_t(ins[0]).shape[a.get("start", 0):a.get("end")],
                                      np.int64)],
    "ReduceMean": lambda ins, a: [_t(ins[0]).mean(
        axis=None if _rt._axes_arg(ins, a) is None else tuple(_rt._axes_arg(ins, a)),
        keepdims=bool(a.get("keepdims", 1)))],
    "LSTM": _lstm, "GRU": _gru, "RNN": _rnn,
}
SUPPORTED_OPS = tuple(sorted(set(TENSOR_OPS) | set(_rt.ONNX_OPS)))


class OnnxModule(Module):
    """An ONNX graph as an nn.Module: float initializers are Parameters (BatchNormalization
    statistics are buffers), named as in the file, so ``state_dict`` keys are the initializer
    names; ``forward(x)`` returns the first graph output (``forward_all`` returns them all),
    ``predict(X)`` a NumPy array. The graph is the inference graph in train mode too:
    Dropout nodes are the identity and BatchNormalization uses the stored statistics, so
    fine-tuning trains the weights around frozen normalization statistics."""

    def __init__(self, model, path="<memory>"):
        super().__init__()
        nodes, inits, (name, elem, dims), outs = _rt._onnx_plan(model, path, SUPPORTED_OPS)
        object.__setattr__(self, "_graph", (nodes, name, outs))
        object.__setattr__(self, "_consts", {})
        self.input_dtype = np.dtype(_rt._ONNX_DTYPES[elem])
        self.input_shape = tuple(dims[1:]) if dims else ()
        stats = {n["inputs"][i] for n in nodes if n["op"] == "BatchNormalization"
                 for i in (3, 4) if len(n["inputs"]) > i}
        for key, arr in inits.items():
            if arr.dtype.kind == "f" and key not in stats:
                self.register_parameter(key, Parameter(np.array(arr)))
            elif arr.dtype.kind == "f":
                self.register_buffer(key, Tensor(np.array(arr)))
            else:
                self._consts[key] = arr
        batch = dims[0] if dims and type(dims[0]) is int and dims[0] >= 1 else 1   # static
        try:
            if self.input_shape and all(type(d) is int and d >= 1 for d in self.input_shape) \
                    and batch * math.prod(self.input_shape) <= 2**20:
                from ..autograd import no_grad

                with no_grad(), np.errstate(all="ignore"):
                    self.forward_all(np.zeros((batch,) + self.input_shape, self.input_dtype))
        except ModelFormatError as e:
            raise ModelFormatError(f"load_onnx: {e}, got file {path!r}") from None
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, ArithmeticError,
                RuntimeError, MemoryError, RecursionError) as e:
            raise ModelFormatError(f"load_onnx: the graph and its weights do not fit together "
                                   f"({type(e).__name__}: {str(e)[:100]}), got file "
                                   f"{path!r}") from None

    def forward_all(self, x):
        nodes, name, outs = self._graph
        env = dict(self._consts)
        env.update(self._parameters)
        env.update(self._buffers)
        if isinstance(x, Tensor) or self.input_dtype.kind == "f":
            x = x if isinstance(x, Tensor) else Tensor(np.asarray(x, self.input_dtype))
        else:
            x = np.asarray(x.data if isinstance(x, Tensor) else x).astype(self.input_dtype)
        env[name] = x
        env[""] = None
        for n in nodes:
            ins = [env[i] for i in n["inputs"]]
            if any(isinstance(v, Tensor) for v in ins):
                fn = TENSOR_OPS.get(n["op"])
                if fn is None:
                    raise ModelFormatError(f"ONNX op {n['op']} runs on constants only here, "
                                           "got a tensor input")
            else:
                fn = _rt.ONNX_OPS[n["op"]]
            for o, v in zip(n["outputs"], fn(ins, n["attrs"])):
                env[o] = v
        return [env[o] for o in outs]

    def forward(self, x):
        return self.forward_all(x)[0]

    def predict(self, X, batch_size=256):
        """The first output for ``X`` as a NumPy array, without building a graph."""
        from ..autograd import no_grad

        X = np.asarray(X)
        if self.input_shape and X.ndim == len(self.input_shape):
            X = X[None]
        with no_grad():
            return np.concatenate([np.asarray(self.forward(X[s:s + batch_size]).data)
                                   for s in range(0, len(X), batch_size)], axis=0)


def load_onnx(path, max_bytes=None):
    """An ``OnnxModule`` for the ONNX file at ``path``; ``ModelFormatError`` (naming the file)
    for a malformed, hostile or unsupported file."""
    try:
        model = _rt.read_onnx(path, _rt.MAX_FILE_BYTES if max_bytes is None else max_bytes)
    except _rt.ModelFormatError as e:
        raise ModelFormatError(str(e).replace("runtime.load:", "load_onnx:")) from None
    try:
        return OnnxModule(model, path)
    except _rt.ModelFormatError as e:
        raise ModelFormatError(str(e).replace("runtime.load:", "load_onnx:")) from None
