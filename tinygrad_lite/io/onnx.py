"""ONNX export and import (``pip install tinygrad_lite[onnx]`` for export; import needs nothing).

``export_onnx(model, path, input_shape=None)`` writes an opset-17 graph (IR version 8, which
onnxruntime >= 1.16 loads) with a dynamic batch axis named ``batch``; the input is ``input``
(float32, or int64 ids when the model starts with an Embedding), the output ``output`` (an
``nn.LSTM``/``nn.GRU`` exported alone also has ``h_n`` and ``c_n``). Every weight is an
initializer named after its state-dict key (``layers.0.kernel`` for a Keras-style model,
``0.weight`` for an ``nn.Sequential``), holding exactly that array; layout changes (a Linear
weight's transpose, the LSTM gate order) are nodes on it, and constants (epsilon, shapes,
gate permutations) are Constant nodes. The file is checked with
``onnx.checker.check_model(full_check=True)`` before it is written (atomically, like every save).

What exports (anything else raises ``TypeError`` naming the layer and listing these):

* Keras-style ``models.Sequential`` layers (``KERAS_SUPPORTED``): Dense -> MatMul + Add;
  Conv2D/Conv1D (channels_last: Transpose, Conv with explicit 'same'/'causal' pads,
  Transpose back); MaxPooling2D/AveragePooling2D ('same' averages count only real pixels,
  as TensorFlow); BatchNormalization (moving statistics, as the layer computes them);
  LayerNormalization -> LayerNormalization; Embedding -> Gather; SimpleRNN/LSTM/GRU -> ONNX
  RNN/LSTM/GRU (Keras' i,f,c,o gates gathered into ONNX's i,o,f,c; GRU's z,r,h order is
  ONNX's, reset_after is ``linear_before_reset=1``); Flatten, Reshape, Dropout (Identity),
  Activation and every activation in ``ACTIVATIONS``.
* ``nn`` modules (``NN_SUPPORTED``), NCHW as ONNX: Sequential, Residual (module(x) +
  shortcut(x): an Add), BasicBlock, Linear -> Gemm (MatMul for N-D input), Conv1d/Conv2d
  (zero padding), ConvTranspose1d/2d, MaxPool1d/2d, AvgPool1d/2d (ceil_mode: PyTorch's output size),
  AdaptiveAvgPool2d (global or even windows), Upsample (nearest) -> Resize,
  BatchNorm1d/2d (eval: running statistics) -> BatchNormalization, LayerNorm, GroupNorm
  (decomposed: GroupNormalization is opset 18), Flatten,
  Dropout/Identity, Embedding (padding_idx masked), the activations and Softmax/LogSoftmax,
  a TransformerEncoder(Layer) (its MultiheadAttention as self-attention without masks), and
  an ``nn.LSTM``/``nn.GRU``/``nn.RNN`` (stacked layers, bidirectional) as the whole model, one
  ONNX node per layer (PyTorch's i,f,g,o gates -> ONNX i,o,f,c; r,z,n -> z,r,h with
  ``linear_before_reset=1``).

``load_onnx(path)`` reads an ONNX file with the hardened reader of ``runtime.py`` (no external
data outside the file's folder, size caps, ``ModelFormatError`` on anything malformed) and
returns an ``OnnxModule``: an ``nn.Module`` that runs the graph with tinygrad_lite Tensor ops,
float initializers as trainable ``Parameter``s (state-dict keys are the initializer names), so
it predicts and fine-tunes. Shape arithmetic on constants (PyTorch's Shape/Gather/Concat
chains) runs in NumPy.

>>> io.export_onnx(model, "model.onnx")                               # doctest: +SKIP
>>> import onnxruntime as ort                                          # doctest: +SKIP
>>> ort.InferenceSession("model.onnx").run(None, {"input": x})[0]     # doctest: +SKIP
>>> m = io.load_onnx("torch_model.onnx"); m(x)                          # doctest: +SKIP
"""

import math
import os

import numpy as np

from . import files

OPSET = 17
IR_VERSION = 8
KERAS_SUPPORTED = ("InputLayer", "Dense", "Activation", "Dropout", "Flatten", "Reshape",
                   "BatchNormalization", "LayerNormalization", "Conv2D", "Conv1D",
                   "MaxPooling2D", "AveragePooling2D", "Embedding", "SimpleRNN", "LSTM", "GRU")
NN_SUPPORTED = ("Sequential", "Residual", "BasicBlock", "Linear", "Conv1d", "Conv2d",
                "ConvTranspose1d", "ConvTranspose2d",
                "MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "AdaptiveAvgPool2d",
                "BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm", "Flatten", "Dropout",
                "Identity",
                "Embedding", "ReLU", "LeakyReLU", "ELU", "GELU", "Sigmoid", "Tanh", "Softplus",
                "SiLU", "Softmax", "LogSoftmax", "Hardtanh", "ReLU6", "Hardsigmoid", "Upsample",
                "Hardswish", "Softsign", "LSTM", "GRU", "RNN", "TransformerEncoderLayer",
                "TransformerEncoder")
SUPPORTED = KERAS_SUPPORTED
ACTIVATIONS = (None, "linear", "relu", "sigmoid", "tanh", "softmax", "log_softmax", "elu",
               "softplus", "leaky_relu", "gelu", "swish", "silu")

__all__ = ["export_onnx", "load_onnx", "SUPPORTED", "KERAS_SUPPORTED",
           "NN_SUPPORTED", "ACTIVATIONS", "OPSET"]


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError("export_onnx: the onnx package is needed, got no onnx module; "
                          "pip install tinygrad_lite[onnx]") from None
    return onnx


def _unsupported(where, kind, keras):
    listed = list(KERAS_SUPPORTED) + ["nn modules: " + ", ".join(NN_SUPPORTED)] if keras \
        else list(NN_SUPPORTED)
    return TypeError(f"export_onnx: {where} ({kind}) has no ONNX export, got it in the model; "
                     f"supported layers: {listed}")


class _Graph:
    """Collects nodes and initializers; ``name()`` hands out unique intermediate names."""

    def __init__(self, onnx, weights):
        self.onnx, self.h, self.weights = onnx, onnx.helper, weights
        self.nodes, self.inits, self._n, self._done = [], [], 0, set()

    def name(self, hint):
        self._n += 1
        return f"{hint}_{self._n}"

    def init(self, key):
        """An initializer: the weight under its state-dict key."""
        if key not in self._done:
            a = np.ascontiguousarray(self.weights[key])
            self.inits.append(self.onnx.numpy_helper.from_array(a, key))
            self._done.add(key)
        return key

    def const(self, hint, array):
        """A Constant node (not an initializer: those are exactly the model's weights)."""
        out = self.name(hint)
        tensor = self.onnx.numpy_helper.from_array(np.asarray(array), out)
        self.nodes.append(self.h.make_node("Constant", [], [out], name=out, value=tensor))
        return out

    def f32(self, hint, value):
        return self.const(hint, np.array(value, np.float32))

    def ints(self, hint, values):
        return self.const(hint, np.array(values, np.int64))

    def op(self, op_type, inputs, hint, n_out=1, **attrs):
        outs = [self.name(hint) for _ in range(n_out)]
        self.nodes.append(self.h.make_node(op_type, inputs, outs, name=outs[0], **attrs))
        return outs[0] if n_out == 1 else outs


# --------------------------------------------------------------- activations ---

def _gelu(g, x, where, approximate="none"):
    half = g.op("Mul", [x, g.f32(f"{where}_half", 0.5)], f"{where}_halfx")
    if approximate == "tanh":
        cube = g.op("Mul", [g.op("Mul", [x, x], f"{where}_x2"), x], f"{where}_x3")
        inner = g.op("Add", [x, g.op("Mul", [cube, g.f32(f"{where}_c", 0.044715)],
                                     f"{where}_cx3")], f"{where}_inner")
        t = g.op("Tanh", [g.op("Mul", [inner, g.f32(f"{where}_k", math.sqrt(2 / math.pi))],
                               f"{where}_scaled")], f"{where}_tanh")
    else:
        t = g.op("Erf", [g.op("Mul", [x, g.f32(f"{where}_inv_sqrt2", 1 / math.sqrt(2))],
                              f"{where}_scaled")], f"{where}_erf")
    return g.op("Mul", [half, g.op("Add", [t, g.f32(f"{where}_one", 1.0)], f"{where}_1pt")],
                f"{where}_gelu")


def _activation(g, x, act, where):
    if act in (None, "linear"):
        return x
    simple = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softplus": "Softplus",
              "elu": "Elu"}
    if act in simple:
        return g.op(simple[act], [x], f"{where}_{act}")
    if act in ("softmax", "log_softmax"):
        return g.op("Softmax" if act == "softmax" else "LogSoftmax", [x], f"{where}_{act}",
                    axis=-1)
    if act == "leaky_relu":
        return g.op("LeakyRelu", [x], f"{where}_leaky_relu", alpha=0.2)
    if act in ("swish", "silu"):
        return g.op("Mul", [x, g.op("Sigmoid", [x], f"{where}_sigmoid")], f"{where}_{act}")
    if act == "gelu":
        return _gelu(g, x, where)
    raise TypeError(f"export_onnx: activation {act!r} at {where} has no ONNX mapping, got it; "
                    f"supported activations: {[a for a in ACTIVATIONS if a]}")


def _nn_activation(g, m, kind, x, where):
    """The nn activation modules; None when ``kind`` is not one."""
    if kind in ("ReLU", "Sigmoid", "Tanh", "Softsign"):
        return g.op({"ReLU": "Relu"}.get(kind, kind), [x], f"{where}_{kind.lower()}")
    if kind == "LeakyReLU":
        return g.op("LeakyRelu", [x], f"{where}_leaky_relu", alpha=float(m.negative_slope))
    if kind == "ELU":
        return g.op("Elu", [x], f"{where}_elu", alpha=float(m.alpha))
    if kind == "GELU":
        return _gelu(g, x, where, m.approximate)
    if kind == "SiLU":
        return g.op("Mul", [x, g.op("Sigmoid", [x], f"{where}_sigmoid")], f"{where}_silu")
    if kind == "Softplus":
        if m.beta == 1:
            return g.op("Softplus", [x], f"{where}_softplus")
        b = g.f32(f"{where}_beta", m.beta)
        sp = g.op("Softplus", [g.op("Mul", [x, b], f"{where}_bx")], f"{where}_softplus")
        return g.op("Div", [sp, b], f"{where}_softplus_b")
    if kind in ("Softmax", "LogSoftmax"):
        return g.op(kind, [x], f"{where}_{kind.lower()}",
                    axis=-1 if m.dim is None else int(m.dim))
    if kind in ("Hardtanh", "ReLU6"):
        lo, hi = (0.0, 6.0) if kind == "ReLU6" else (m.min_val, m.max_val)
        return g.op("Clip", [x, g.f32(f"{where}_min", lo), g.f32(f"{where}_max", hi)],
                    f"{where}_clip")
    if kind == "Hardsigmoid":
        return g.op("HardSigmoid", [x], f"{where}_hardsigmoid", alpha=1 / 6, beta=0.5)
    if kind == "Hardswish":
        return g.op("HardSwish", [x], f"{where}_hardswish")
    return None


# --------------------------------------------------------------- recurrent ---

def _gate_rows(order, H):
    """Row indices that gather ``order`` (gate blocks of H rows, by index) into ONNX order."""
    return np.concatenate([np.arange(b * H, (b + 1) * H) for b in order]).astype(np.int64)


def _recurrent_node(g, where, kind, x_tnf, dirs, H, perm, attrs):
    """An ONNX LSTM/GRU/RNN node over (T, N, F) input, one or two directions. ``dirs`` holds
    per direction (W (G*H, F), R (G*H, H), b_ih, b_hh (G*H,) or None): graph names in PyTorch
    layout whose gate blocks ``perm`` reorders (None: as is). Returns the node's raw outputs
    (Y (T, D, N, H), Y_h (D, N, H)[, Y_c])."""
    G = len(perm) if perm is not None else {"LSTM": 4, "GRU": 3, "RNN": 1}[kind]
    zero = g.ints(f"{where}_axis0", [0])

    def ready(name, hint):
        if name is None:
            return g.f32(f"{hint}_zero_bias", np.zeros(G * H, np.float32))
        if perm is not None:
            name = g.op("Gather", [name, g.ints(f"{hint}_gates", _gate_rows(perm, H))],
                        f"{hint}_onnx_order", axis=0)
        return name

    def stacked(parts, hint):          # (D, ...) from one array per direction
        parts = [g.op("Unsqueeze", [p, zero], f"{hint}_{d}") for d, p in enumerate(parts)]
        return parts[0] if len(parts) == 1 else g.op("Concat", parts, hint, axis=0)

    ins = [x_tnf, stacked([ready(d[0], f"{where}_W{i}") for i, d in enumerate(dirs)],
                          f"{where}_W"),
           stacked([ready(d[1], f"{where}_R{i}") for i, d in enumerate(dirs)], f"{where}_R")]
    if any(d[2] is not None or d[3] is not None for d in dirs):
        ins.append(stacked([g.op("Concat", [ready(d[2], f"{where}_Wb{i}"),
                                            ready(d[3], f"{where}_Rb{i}")],
                                 f"{where}_B{i}", axis=0) for i, d in enumerate(dirs)],
                           f"{where}_B"))
    if len(dirs) == 2:
        attrs = dict(attrs, direction="bidirectional")
        if "activations" in attrs:
            attrs["activations"] = attrs["activations"] * 2
    return g.op(kind, ins, f"{where}_{kind.lower()}", n_out=3 if kind == "LSTM" else 2,
                hidden_size=H, **attrs)


def _recurrent(g, where, kind, x_tnf, W, R, Wb, Rb, H, perm, attrs):
    """One direction: (Y (T, N, H), Y_h (N, H), Y_c (N, H) or None)."""
    outs = _recurrent_node(g, where, kind, x_tnf, [(W, R, Wb, Rb)], H, perm, attrs)
    zero = g.ints(f"{where}_squeeze0", [0])
    y = g.op("Squeeze", [outs[0], g.ints(f"{where}_axis1", [1])], f"{where}_Y")
    hn = g.op("Squeeze", [outs[1], zero], f"{where}_Y_h")
    cn = g.op("Squeeze", [outs[2], zero], f"{where}_Y_c") if kind == "LSTM" else None
    return y, hn, cn


# ------------------------------------------------------------- Keras layers ---

def _nchw(g, x, where, nd):
    return g.op("Transpose", [x], f"{where}_to_nchw", perm=[0, nd + 1] + list(range(1, nd + 1)))


def _nhwc(g, x, where, nd):
    return g.op("Transpose", [x], f"{where}_to_nhwc", perm=[0] + list(range(2, nd + 2)) + [1])


def _layers_module():
    """``tinygrad_lite.layers``, already loaded by whoever built the Keras-style model: ``io``
    never imports ``layers`` or ``models`` itself (no import cycle; see tests/test_io_h5.py)."""
    import sys

    return sys.modules["tinygrad_lite.layers"]


def _keras_layer(g, layer, where, x, xs, ys):
    """Nodes for one Keras-style layer. ``xs``/``ys``: the per-sample shapes in and out."""
    _same_pads = _layers_module()._same_pads

    kind = type(layer).__name__
    if kind == "InputLayer":
        return x
    if kind == "Dropout":
        return g.op("Identity", [x], f"{where}_dropout")
    if kind == "Flatten":
        return g.op("Flatten", [x], f"{where}_flatten", axis=1)
    if kind == "Reshape":
        shape = g.ints(f"{where}_shape", (0,) + tuple(layer.target_shape))
        return g.op("Reshape", [x, shape], f"{where}_reshape")
    if kind == "Activation":
        return _activation(g, x, layer.activation, where)
    if kind == "Dense":
        y = g.op("MatMul", [x, g.init(f"{where}.kernel")], f"{where}_matmul")
        if layer.use_bias:
            y = g.op("Add", [y, g.init(f"{where}.bias")], f"{where}_bias")
        return _activation(g, y, layer.activation, where)
    if kind == "BatchNormalization":
        eps = g.f32(f"{where}_epsilon", layer.epsilon)
        y = g.op("Sub", [x, g.init(f"{where}.moving_mean")], f"{where}_center")
        std = g.op("Sqrt", [g.op("Add", [g.init(f"{where}.moving_variance"), eps],
                                 f"{where}_var_eps")], f"{where}_std")
        y = g.op("Div", [y, std], f"{where}_normalized")
        if layer.scale:
            y = g.op("Mul", [y, g.init(f"{where}.gamma")], f"{where}_scaled")
        if layer.center:
            y = g.op("Add", [y, g.init(f"{where}.beta")], f"{where}_shifted")
        return y
    if kind == "LayerNormalization":
        axes, shape = layer._axes(xs)
        rank = len(xs) + 1
        if axes != list(range(axes[0], rank)):
            raise TypeError(f"export_onnx: {where} (LayerNormalization) normalizes axes {axes}; "
                            "ONNX LayerNormalization needs the trailing axes")
        scale = g.init(f"{where}.gamma") if layer.scale else \
            g.f32(f"{where}_ones", np.ones(shape, np.float32))
        ins = [x, scale] + ([g.init(f"{where}.beta")] if layer.center else [])
        return g.op("LayerNormalization", ins, f"{where}_layernorm", axis=axes[0],
                    epsilon=layer.epsilon)
    if kind in ("Conv2D", "MaxPooling2D", "AveragePooling2D"):
        last = layer.data_format == "channels_last"
        h, w = (xs[0], xs[1]) if last else (xs[1], xs[2])
        y = _nchw(g, x, where, 2) if last else x
        if kind == "Conv2D":
            k, s, d = layer.kernel_size, layer.strides, layer.dilation_rate
        else:
            k, s, d = layer.pool_size, layer.strides, (1, 1)
        if layer.padding == "same":
            (t, b), (lf, rt) = _same_pads(h, k[0], s[0], d[0]), _same_pads(w, k[1], s[1], d[1])
        else:
            t = b = lf = rt = 0
        pads = [t, lf, b, rt]
        if kind == "Conv2D":
            ins = [y, g.init(f"{where}.kernel")] + ([g.init(f"{where}.bias")]
                                                    if layer.use_bias else [])
            y = g.op("Conv", ins, f"{where}_conv", kernel_shape=list(k), strides=list(s),
                     dilations=list(d), pads=pads)
            y = _activation(g, y, layer.activation, where)
        elif kind == "MaxPooling2D":
            y = g.op("MaxPool", [y], f"{where}_maxpool", kernel_shape=list(k), strides=list(s),
                     pads=pads)
        else:
            y = g.op("AveragePool", [y], f"{where}_avgpool", kernel_shape=list(k),
                     strides=list(s), pads=pads, count_include_pad=0)
        return _nhwc(g, y, where, 2) if last else y
    if kind == "Conv1D":
        last = layer.data_format == "channels_last"
        steps = xs[0] if last else xs[1]
        lo, hi = layer._pads(steps)
        y = _nchw(g, x, where, 1) if last else x
        kern = g.op("Transpose", [g.init(f"{where}.kernel")], f"{where}_kernel_oik",
                    perm=[2, 1, 0])
        ins = [y, kern] + ([g.init(f"{where}.bias")] if layer.use_bias else [])
        y = g.op("Conv", ins, f"{where}_conv", kernel_shape=[layer.kernel_size],
                 strides=[layer.strides], dilations=[layer.dilation_rate], pads=[lo, hi])
        y = _activation(g, y, layer.activation, where)
        return _nhwc(g, y, where, 1) if last else y
    if kind == "Embedding":
        return g.op("Gather", [g.init(f"{where}.embeddings"), x], f"{where}_embedding", axis=0)
    if kind in ("SimpleRNN", "LSTM", "GRU"):
        onnx_kind = {"SimpleRNN": "RNN", "LSTM": "LSTM", "GRU": "GRU"}[kind]
        acts = {"RNN": ("tanh", "relu")}.get(onnx_kind, ("tanh",))
        if layer.activation not in acts:
            raise TypeError(f"export_onnx: {where} ({kind}) with activation "
                            f"{layer.activation!r} has no ONNX export; use {acts}")
        H = layer.units
        W = g.op("Transpose", [g.init(f"{where}.kernel")], f"{where}_kernelT", perm=[1, 0])
        R = g.op("Transpose", [g.init(f"{where}.recurrent_kernel")], f"{where}_recT",
                 perm=[1, 0])
        Wb = Rb = None
        if layer.use_bias:
            if kind == "GRU":
                bias = g.init(f"{where}.bias")
                Wb = g.op("Gather", [bias, g.ints(f"{where}_row0", 0)], f"{where}_bias_x", axis=0)
                Rb = g.op("Gather", [bias, g.ints(f"{where}_row1", 1)], f"{where}_bias_h", axis=0)
            else:
                Wb = g.init(f"{where}.bias")
        attrs = {"linear_before_reset": 1} if kind == "GRU" else {}
        if onnx_kind == "RNN":
            attrs["activations"] = ["Relu" if layer.activation == "relu" else "Tanh"]
        perm = [0, 3, 1, 2] if kind == "LSTM" else None       # Keras i,f,c,o -> ONNX i,o,f,c
        xt = g.op("Transpose", [x], f"{where}_time_major", perm=[1, 0, 2])
        y, hn, _ = _recurrent(g, where, onnx_kind, xt, W, R, Wb, Rb, H, perm, attrs)
        if layer.return_sequences:
            return g.op("Transpose", [y], f"{where}_batch_major", perm=[1, 0, 2])
        return hn
    if kind in ("Layer",):
        return x
    raise _unsupported(where, kind, True)


# ---------------------------------------------------------------- nn modules ---

def _ints(v, n):
    return [int(v)] * n if isinstance(v, (int, np.integer)) else [int(a) for a in v]


def _nn_module(g, m, where, x, xs):
    """Nodes for an nn module on graph value ``x`` whose sample value is the Tensor ``xs``;
    returns (name, sample output)."""
    kind = type(m).__name__
    key = (where + ".") if where else ""
    label = where or "model"
    if kind == "Sequential":
        for name, child in m._modules.items():
            x, xs = _nn_module(g, child, key + name, x, xs)
        return x, xs
    if kind == "Residual":
        y, ys = _nn_module(g, m.module, key + "module", x, xs)
        if "shortcut" in m._modules:
            s, _ = _nn_module(g, m.shortcut, key + "shortcut", x, xs)
        else:
            s = x
        return g.op("Add", [y, s], f"{label}_residual"), m(xs)
    if kind == "BasicBlock":
        out, os_ = _nn_module(g, m.conv1, key + "conv1", x, xs)
        out, os_ = _nn_module(g, m.bn1, key + "bn1", out, os_)
        out = g.op("Relu", [out], f"{label}_relu1")
        out, os_ = _nn_module(g, m.conv2, key + "conv2", out, os_.relu())
        out, os_ = _nn_module(g, m.bn2, key + "bn2", out, os_)
        idn = _nn_module(g, m.downsample, key + "downsample", x, xs)[0] \
            if "downsample" in m._modules else x
        return g.op("Relu", [g.op("Add", [out, idn], f"{label}_residual")],
                    f"{label}_relu2"), m(xs)
    if kind == "TransformerEncoder":
        for i, layer in enumerate(m.layers):
            x, xs = _nn_module(g, layer, f"{key}layers.{i}", x, xs)
        if m.norm is not None:
            x, xs = _nn_module(g, m.norm, key + "norm", x, xs)
        return x, xs
    if kind == "TransformerEncoderLayer":
        return _encoder_layer(g, m, key, label, x, xs), m(xs)
    if kind not in NN_SUPPORTED or kind in ("LSTM", "GRU", "RNN", "MultiheadAttention"):
        raise _unsupported(label, kind, False)
    ys = m(xs)
    y = _nn_activation(g, m, kind, x, label)
    if y is not None:
        return y, ys
    if kind in ("Dropout", "Identity"):
        return g.op("Identity", [x], f"{label}_identity"), ys
    if kind == "Flatten":
        if m.start_dim == 1 and m.end_dim in (-1, xs.ndim - 1):
            return g.op("Flatten", [x], f"{label}_flatten", axis=1), ys
        if m.start_dim == 0:
            raise _unsupported(label, "Flatten(start_dim=0)", False)
        shape = g.ints(f"{label}_shape", (0,) + tuple(ys.shape[1:]))
        return g.op("Reshape", [x, shape], f"{label}_reshape"), ys
    if kind == "Linear":
        if xs.ndim == 2:
            ins = [x, g.init(key + "weight")] + ([g.init(key + "bias")]
                                                 if m.bias is not None else [])
            return g.op("Gemm", ins, f"{label}_gemm", transB=1), ys
        wt = g.op("Transpose", [g.init(key + "weight")], f"{label}_weightT", perm=[1, 0])
        y = g.op("MatMul", [x, wt], f"{label}_matmul")
        if m.bias is not None:
            y = g.op("Add", [y, g.init(key + "bias")], f"{label}_bias")
        return y, ys
    if kind in ("Conv1d", "Conv2d"):
        nd = 1 if kind == "Conv1d" else 2
        if m.padding_mode != "zeros":
            raise _unsupported(label, f"{kind}(padding_mode={m.padding_mode!r})", False)
        k, d = list(m.kernel_size), list(m.dilation)
        if m.padding == "same":
            lo = [di * (ki - 1) // 2 for ki, di in zip(k, d)]
            pads = lo + [di * (ki - 1) - a for ki, di, a in zip(k, d, lo)]
        else:
            pads = list(m.padding) * 2
        ins = [x, g.init(key + "weight")] + ([g.init(key + "bias")] if m.bias is not None
                                             else [])
        return g.op("Conv", ins, f"{label}_conv", kernel_shape=k, strides=list(m.stride),
                    dilations=d, pads=pads, group=int(m.groups)), ys
    if kind in ("ConvTranspose1d", "ConvTranspose2d"):
        p = list(m.padding)
        ins = [x, g.init(key + "weight")] + ([g.init(key + "bias")] if m.bias is not None
                                             else [])
        return g.op("ConvTranspose", ins, f"{label}_convtranspose",
                    kernel_shape=list(m.kernel_size), strides=list(m.stride),
                    dilations=list(m.dilation), pads=p + p, group=int(m.groups),
                    output_padding=list(m.output_padding)), ys
    if kind in ("MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d"):
        nd = int(kind[-2])
        if getattr(m, "return_indices", False) or getattr(m, "divisor_override", None):
            raise _unsupported(label, f"{kind}(return_indices/divisor_override)", False)
        k = _ints(m.kernel_size, nd)
        s = _ints(m.stride or m.kernel_size, nd)
        p = _ints(m.padding, nd)
        dil = _ints(getattr(m, "dilation", 1), nd)
        # ceil_mode: ONNX's ceil output size lacks PyTorch's rule (a last window that starts
        # in the right padding is dropped); where the two differ, ceil_mode=0 has PyTorch's size
        # in the dimensions that drop a window, extra end padding gives it in the others
        out = [ys.shape[2 + i] for i in range(nd)]
        span = [(k[i] - 1) * dil[i] + 1 for i in range(nd)]
        size = [xs.shape[2 + i] + 2 * p[i] for i in range(nd)]
        onnx_ceil = [-(-(size[i] - span[i]) // s[i]) + 1 for i in range(nd)]
        hi, ceil = list(p), int(bool(m.ceil_mode))
        if ceil and out != onnx_ceil:
            ceil = 0
            for i in range(nd):
                extra = (out[i] - 1) * s[i] + span[i] - size[i]
                if extra > 0:
                    hi[i] += extra
            if kind.startswith("Avg") and m.count_include_pad and hi != p or \
                    any(h >= kk for h, kk in zip(hi, k)):
                raise _unsupported(label, f"{kind}(ceil_mode=True) on input {tuple(xs.shape)} "
                                          "(its output size has no ONNX pads)", False)
        attrs = dict(kernel_shape=k, strides=s, pads=p + hi, ceil_mode=ceil)
        if kind.startswith("Max"):
            return g.op("MaxPool", [x], f"{label}_maxpool", dilations=dil, **attrs), ys
        return g.op("AveragePool", [x], f"{label}_avgpool",
                    count_include_pad=int(bool(m.count_include_pad)), **attrs), ys
    if kind == "Upsample":
        if m.mode != "nearest":
            raise _unsupported(label, f"Upsample(mode={m.mode!r})", False)
        attrs = dict(mode="nearest", coordinate_transformation_mode="asymmetric",
                     nearest_mode="floor")
        if all(o % i == 0 for o, i in zip(ys.shape[2:], xs.shape[2:])):   # integer scales
            scales = [1.0, 1.0] + [o / i for o, i in zip(ys.shape[2:], xs.shape[2:])]
            return g.op("Resize", [x, "", g.f32(f"{label}_scales", scales)], f"{label}_resize",
                        **attrs), ys
        nc = g.op("Slice", [g.op("Shape", [x], f"{label}_shape"), g.ints(f"{label}_0", [0]),
                            g.ints(f"{label}_2", [2])], f"{label}_nc")        # dynamic batch
        sizes = g.op("Concat", [nc, g.ints(f"{label}_size", ys.shape[2:])], f"{label}_sizes",
                     axis=0)
        return g.op("Resize", [x, "", "", sizes], f"{label}_resize", **attrs), ys
    if kind == "AdaptiveAvgPool2d":
        oh, ow = _ints(m.output_size, 2)
        if (oh, ow) == (1, 1):
            return g.op("GlobalAveragePool", [x], f"{label}_gap"), ys
        k = [xs.shape[2] // oh, xs.shape[3] // ow]
        return g.op("AveragePool", [x], f"{label}_avgpool", kernel_shape=k, strides=k), ys
    if kind in ("BatchNorm1d", "BatchNorm2d"):
        if not m.track_running_stats:
            raise _unsupported(label, f"{kind}(track_running_stats=False)", False)
        C = m.num_features
        scale = g.init(key + "weight") if m.weight is not None else \
            g.f32(f"{label}_ones", np.ones(C, np.float32))
        bias = g.init(key + "bias") if m.bias is not None else \
            g.f32(f"{label}_zeros", np.zeros(C, np.float32))
        return g.op("BatchNormalization", [x, scale, bias, g.init(key + "running_mean"),
                                           g.init(key + "running_var")], f"{label}_batchnorm",
                    epsilon=float(m.eps)), ys
    if kind == "GroupNorm":            # ONNX's GroupNormalization is opset 18: decomposed
        G, nd = m.num_groups, xs.ndim - 2
        grouped = g.op("Reshape", [x, g.ints(f"{label}_groups", [0, G, -1])], f"{label}_grouped")
        mean = g.op("ReduceMean", [grouped], f"{label}_mean", axes=[2], keepdims=1)
        d = g.op("Sub", [grouped, mean], f"{label}_centered")
        var = g.op("ReduceMean", [g.op("Mul", [d, d], f"{label}_sq")], f"{label}_var",
                   axes=[2], keepdims=1)
        std = g.op("Sqrt", [g.op("Add", [var, g.f32(f"{label}_eps", m.eps)], f"{label}_ve")],
                   f"{label}_std")
        y = g.op("Reshape", [g.op("Div", [d, std], f"{label}_normalized"),
                             g.op("Shape", [x], f"{label}_shape")], f"{label}_ungrouped")
        if m.weight is not None:
            axes = g.ints(f"{label}_axes", list(range(1, nd + 1)))
            y = g.op("Mul", [y, g.op("Unsqueeze", [g.init(key + "weight"), axes],
                                     f"{label}_w")], f"{label}_scaled")
            y = g.op("Add", [y, g.op("Unsqueeze", [g.init(key + "bias"), axes],
                                     f"{label}_b")], f"{label}_shifted")
        return y, ys
    if kind == "LayerNorm":
        shape = m.normalized_shape
        scale = g.init(key + "weight") if m.weight is not None else \
            g.f32(f"{label}_ones", np.ones(shape, np.float32))
        ins = [x, scale] + ([g.init(key + "bias")] if m.bias is not None else [])
        return g.op("LayerNormalization", ins, f"{label}_layernorm", axis=-len(shape),
                    epsilon=float(m.eps)), ys
    if kind == "Embedding":
        y = g.op("Gather", [g.init(key + "weight"), x], f"{label}_embedding", axis=0)
        if m.padding_idx is not None:
            keep = g.op("Not", [g.op("Equal", [x, g.ints(f"{label}_pad", m.padding_idx)],
                                     f"{label}_is_pad")], f"{label}_keep")
            keep = g.op("Unsqueeze", [g.op("Cast", [keep], f"{label}_mask", to=1),
                                      g.ints(f"{label}_last", [-1])], f"{label}_mask")
            y = g.op("Mul", [y, keep], f"{label}_masked")
        return y, ys
    raise _unsupported(label, kind, False)


def _self_attention(g, m, key, label, x):
    """``m(x, x, x)[0]`` of a MultiheadAttention (no masks) on batch-first (N, L, E) ``x``:
    one projection GEMM, heads by Reshape/Transpose, softmax(q k^T / sqrt(D)) v, out_proj."""
    E, H, D = m.embed_dim, m.num_heads, m.head_dim
    if not m._same or getattr(m, "bias_k", None) is not None:
        raise _unsupported(label, "MultiheadAttention(kdim/vdim/add_bias_kv)", False)
    wt = g.op("Transpose", [g.init(key + "in_proj_weight")], f"{label}_in_projT", perm=[1, 0])
    qkv = g.op("MatMul", [x, wt], f"{label}_qkv")
    if m.in_proj_bias is not None:
        qkv = g.op("Add", [qkv, g.init(key + "in_proj_bias")], f"{label}_qkv_bias")
    axis = g.ints(f"{label}_last_axis", [-1])
    heads_shape = g.ints(f"{label}_heads_shape", [0, 0, H, D])

    def part(i, hint):
        t = g.op("Slice", [qkv, g.ints(f"{hint}_start", [i * E]),
                           g.ints(f"{hint}_end", [(i + 1) * E]), axis], hint)
        t = g.op("Reshape", [t, heads_shape], f"{hint}_heads")
        return g.op("Transpose", [t], f"{hint}_nhld", perm=[0, 2, 1, 3])     # (N, H, L, D)

    q, k, v = (part(i, f"{label}_{n}") for i, n in enumerate("qkv"))
    q = g.op("Mul", [q, g.f32(f"{label}_scale", 1 / math.sqrt(D))], f"{label}_q_scaled")
    kt = g.op("Transpose", [k], f"{label}_kT", perm=[0, 1, 3, 2])
    attn = g.op("Softmax", [g.op("MatMul", [q, kt], f"{label}_scores")], f"{label}_attn",
                axis=-1)
    o = g.op("Transpose", [g.op("MatMul", [attn, v], f"{label}_context")], f"{label}_nlhd",
             perm=[0, 2, 1, 3])
    o = g.op("Reshape", [o, g.ints(f"{label}_merge_shape", [0, 0, E])], f"{label}_merged")
    wo = g.op("Transpose", [g.init(key + "out_proj.weight")], f"{label}_out_projT",
              perm=[1, 0])
    y = g.op("MatMul", [o, wo], f"{label}_out_proj")
    if m.out_proj.bias is not None:
        y = g.op("Add", [y, g.init(key + "out_proj.bias")], f"{label}_out_bias")
    return y


def _encoder_layer(g, m, key, label, x, xs):
    """A TransformerEncoderLayer (self-attention without masks; relu or gelu; post- or
    pre-norm), in eval mode (dropout is the identity)."""
    from ..nn.attention import _ACTS

    act = next((n for n, f in _ACTS.items() if f is m._act), None)
    if act is None:
        raise _unsupported(label, "TransformerEncoderLayer(activation=<callable>)", False)
    sa = m.self_attn
    if not sa.batch_first:
        x = g.op("Transpose", [x], f"{label}_batch_major", perm=[1, 0, 2])
        xs = xs.swapaxes(0, 1)

    def norm(name, t):
        return _nn_module(g, getattr(m, name), key + name, t, xs)[0]

    def sa_block(t):
        return _self_attention(g, sa, key + "self_attn.", f"{label}_self_attn", t)

    def ff_block(t):
        h = _nn_module(g, m.linear1, key + "linear1", t, xs[..., :1].expand(
            *xs.shape[:-1], m.linear1.in_features))[0]
        h = g.op("Relu", [h], f"{label}_relu") if act == "relu" else _gelu(g, h, label)
        return _nn_module(g, m.linear2, key + "linear2", h, xs[..., :1].expand(
            *xs.shape[:-1], m.linear2.in_features))[0]

    if m.norm_first:
        x = g.op("Add", [x, sa_block(norm("norm1", x))], f"{label}_res1")
        x = g.op("Add", [x, ff_block(norm("norm2", x))], f"{label}_res2")
    else:
        x = norm("norm1", g.op("Add", [x, sa_block(x)], f"{label}_res1"))
        x = norm("norm2", g.op("Add", [x, ff_block(x)], f"{label}_res2"))
    if not sa.batch_first:
        x = g.op("Transpose", [x], f"{label}_time_major", perm=[1, 0, 2])
    return x


def _nn_recurrent(g, m, x):
    """A whole nn.LSTM/GRU/RNN (stacked layers, one or two directions): outputs (output,
    h_n[, c_n]) as the module returns them, one ONNX node per layer."""
    kind = type(m).__name__
    H = m.hidden_size
    perm = {"LSTM": [0, 3, 1, 2], "GRU": [1, 0, 2]}.get(kind)   # i,f,g,o / r,z,n -> ONNX order
    attrs = {"linear_before_reset": 1} if kind == "GRU" else {}
    if kind == "RNN":
        attrs["activations"] = ["Relu" if m.nonlinearity == "relu" else "Tanh"]
    y = g.op("Transpose", [x], "time_major", perm=[1, 0, 2]) if m.batch_first else x
    finals = [[], []]
    for layer in range(m.num_layers):
        dirs = [tuple(g.init(f"{n}{sfx}") if m.bias or n.startswith("weight") else None
                      for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
                for sfx in m._suffixes(layer)]
        outs = _recurrent_node(g, f"rnn_l{layer}", kind, y, dirs, H, perm, attrs)
        # (T, D, N, H) -> (T, N, D*H): the next layer's input, the module's output
        y = g.op("Reshape", [g.op("Transpose", [outs[0]], f"rnn_l{layer}_tndh",
                                  perm=[0, 2, 1, 3]), g.ints(f"rnn_l{layer}_shape", [0, 0, -1])],
                 f"rnn_l{layer}_out")
        for j, o in enumerate(outs[1:]):
            finals[j].append(o)
    if m.batch_first:
        y = g.op("Transpose", [y], "batch_major", perm=[1, 0, 2])
    outs = [y]
    for name, parts in zip(("h_n", "c_n"), finals):
        if parts:
            outs.append(parts[0] if len(parts) == 1 else g.op("Concat", parts, name, axis=0))
    return outs


def _sample(shape, dtype):
    from ..tensor import Tensor

    return Tensor(np.zeros((2,) + tuple(shape), dtype))


def _first_leaf(m):
    while type(m).__name__ in ("Sequential",) and len(m._modules):
        m = next(iter(m._modules.values()))
    return m


def _preprocessing_json(preprocessing):
    """A fitted scaler/Pipeline as JSON for the file's metadata (arrays as typed lists)."""
    import json

    from ..data.preprocessing import split_state

    state = preprocessing.state_dict() if hasattr(preprocessing, "state_dict") else preprocessing
    meta, arrays = split_state(state, "preprocessing.")
    packed = {k: {"dtype": np.asarray(a).dtype.str, "shape": list(np.shape(a)),
                  "data": np.asarray(a).ravel().tolist()} for k, a in arrays.items()}
    return json.dumps({"state": meta, "arrays": packed})


def export_onnx(model, path, input_shape=None, label_names=None, preprocessing=None):
    """Write ``model`` (a built ``models.Sequential`` or an ``nn`` module of the supported
    layers) to ``path`` as an ONNX graph.

    Parameters
    ----------
    model : models.Sequential of ``KERAS_SUPPORTED`` layers, or an nn.Module of
        ``NN_SUPPORTED`` ones
    path : str or PathLike (``*.onnx``)
    input_shape : per-sample input shape (no batch axis); default the Keras model's own;
        required for an nn module
    label_names : optional class names, stored in the file's metadata
        (``tinygrad_lite.label_names``) for ``runtime.py``'s ``predict_labels``
    preprocessing : optional fitted scaler/Pipeline (``data.preprocessing``), stored in the
        metadata (``tinygrad_lite.preprocessing``, JSON) for ``runtime.py``'s ``predict``; it is
        not part of the graph, so onnxruntime users apply it themselves

    Returns the path. The batch axis is dynamic (``batch``).
    """
    from ..autograd import no_grad

    onnx = _onnx()
    keras = hasattr(model, "weights_dict") and hasattr(model, "layers")
    if not keras and not hasattr(model, "state_dict"):
        raise TypeError(f"export_onnx: expected a models.Sequential or an nn.Module, got "
                        f"{type(model).__name__}")
    if keras:
        Layer = _layers_module().Layer
        for i, layer in enumerate(model.layers):     # before building anything
            kind = type(layer).__name__
            ok = kind in KERAS_SUPPORTED if isinstance(layer, Layer) else kind in NN_SUPPORTED
            if not ok:
                raise _unsupported(f"layer {i}", kind, True)
        own = model._input_shape
        if input_shape is not None:
            input_shape = tuple(int(d) for d in input_shape)
            if own is not None and input_shape != tuple(own):
                raise ValueError(f"export_onnx: input_shape {input_shape} differs from the "
                                 f"model's {tuple(own)}; pass the shape the model was built "
                                 "for, or None")
            if own is None:
                model.build(input_shape)
        elif own is None:
            raise ValueError("export_onnx: the model is not built, got no input_shape; pass "
                             "input_shape=(n_features,) or fit the model first")
        shape = tuple(model._input_shape)
        weights = {k: np.asarray(v) for k, v in model.weights_dict().items()}
        first = next((m for m in model.layers if type(m).__name__ != "InputLayer"), None)
    else:
        if input_shape is None:
            raise ValueError(f"export_onnx: an nn module ({type(model).__name__}) needs "
                             "input_shape, the per-sample shape without the batch axis; got None")
        shape = tuple(int(d) for d in input_shape)
        weights = {k: np.asarray(v) for k, v in model.state_dict().items()}
        first = _first_leaf(model)
    wide = next((k for k, v in weights.items() if v.dtype.kind == "f" and v.dtype != np.float32),
                None)
    if wide is not None:
        raise TypeError(f"export_onnx: the graph is float32, got {weights[wide].dtype} weights "
                        f"({wide!r}); convert the model first, e.g. model.to(np.float32)")
    ids = type(first).__name__ == "Embedding"
    dtype = np.int64 if ids else np.float32
    g = _Graph(onnx, weights)
    outputs = ["output"]
    in_dims = ["batch", *shape]
    training = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with no_grad():
            xs = _sample(shape, dtype)
            if type(model).__name__ in ("LSTM", "GRU", "RNN") and not model.batch_first:
                xs = xs.swapaxes(0, 1)
            if keras:
                x = "input"
                for i, layer in enumerate(model.layers):
                    ys = layer(xs)
                    if isinstance(layer, Layer):
                        x = _keras_layer(g, layer, f"layers.{i}", x, tuple(xs.shape[1:]),
                                         tuple(ys.shape[1:]))
                    else:
                        x, ys = _nn_module(g, layer, f"layers.{i}", x, xs)
                    xs = ys
                finals = [x]
                out_shapes = [["batch", *xs.shape[1:]]]
            elif type(model).__name__ in ("LSTM", "GRU", "RNN"):
                if len(shape) != 2:
                    raise ValueError(f"export_onnx: {type(model).__name__} needs input_shape "
                                     f"(timesteps, features), got {shape}")
                finals = _nn_recurrent(g, model, "input")
                outputs = ["output", "h_n", "c_n"][:len(finals)]
                T, H = shape[0], model.hidden_size
                LD = model.num_layers * (2 if model.bidirectional else 1)
                DH = H * (2 if model.bidirectional else 1)
                seq = ["batch", T, DH] if model.batch_first else [T, "batch", DH]
                out_shapes = [seq] + [[LD, "batch", H]] * (len(finals) - 1)
                in_dims = ["batch", *shape] if model.batch_first else [T, "batch", shape[1]]
            else:
                x, ys = _nn_module(g, model, "", "input", xs)
                finals, out_shapes = [x], [["batch", *ys.shape[1:]]]
    finally:
        for m, flag in training:
            m.training = flag
    for f, o in zip(finals, outputs):
        g.nodes.append(onnx.helper.make_node("Identity", [f], [o], name=o))
    f32 = onnx.TensorProto.FLOAT
    vi = onnx.helper.make_tensor_value_info
    outs = [vi(o, f32, [d if isinstance(d, str) else int(d) for d in s])
            for o, s in zip(outputs, out_shapes)]
    graph = onnx.helper.make_graph(
        g.nodes, getattr(model, "name", None) or f"tinygrad_lite_{type(model).__name__}",
        [vi("input", onnx.TensorProto.INT64 if ids else f32, in_dims)], outs,
        initializer=g.inits)
    proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)],
                                   producer_name="tinygrad_lite", ir_version=IR_VERSION)
    props = {}
    if label_names is not None:
        import json

        props["tinygrad_lite.label_names"] = json.dumps([str(s) for s in label_names])
    if preprocessing is not None:
        props["tinygrad_lite.preprocessing"] = _preprocessing_json(preprocessing)
    if props:
        onnx.helper.set_model_props(proto, props)
    onnx.checker.check_model(proto, full_check=True)
    files.atomic_write_bytes(path, proto.SerializeToString())
    return os.fspath(path)


def load_onnx(path, max_bytes=None):
    """An ``OnnxModule`` (a trainable ``nn.Module``) for the ONNX file at ``path``;
    ``ModelFormatError`` naming the file for a malformed, hostile or unsupported one. The
    reader and the module live in ``_onnx_import`` (loaded on first use)."""
    from ._onnx_import import load_onnx as _load

    return _load(path, max_bytes)


def __getattr__(name):          # io.onnx.OnnxModule without importing nn at io import time
    if name == "OnnxModule":
        from ._onnx_import import OnnxModule

        return OnnxModule
    raise AttributeError(name)
