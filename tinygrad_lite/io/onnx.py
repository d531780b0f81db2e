"""ONNX export of Keras-style ``Sequential`` models (``pip install tinygrad_lite[onnx]``).

``export_onnx(model, path, input_shape=None)`` writes an opset-17 graph (IR version 8, which
onnxruntime >= 1.16 loads) with a dynamic batch axis named ``batch``; the input is ``input``
(float32, the model's per-sample shape), the output ``output``. Every weight is an initializer
named after its ``model.weights_dict()`` key (``layers.0.kernel``), so the file maps back onto
the state dict; constants (epsilon, shapes) are Constant nodes, not initializers. The file is
checked with ``onnx.checker.check_model(full_check=True)`` before it is written (atomically, like
every save).

Layers and their ONNX ops:

* Dense -> MatMul (+ Add for the bias), then the activation;
* Activation -> Relu, Sigmoid, Tanh, Softmax/LogSoftmax (axis -1), Elu, Softplus, LeakyRelu
  (alpha 0.2, Keras' default), Gelu as ``x/2 (1 + Erf(x / sqrt 2))`` (Gelu is opset 20),
  swish/silu as ``x Sigmoid(x)``;
* BatchNormalization (inference) -> ``(x - moving_mean) / Sqrt(moving_variance + eps) * gamma +
  beta`` over the last axis, as the layer computes it;
* Dropout -> Identity; Flatten -> Flatten(axis=1) (channels_last order, as ours); Reshape ->
  Reshape with a ``0`` for the batch; InputLayer -> nothing.

Anything else raises ``TypeError`` naming the layer and listing the supported ones.

>>> io.export_onnx(model, "model.onnx")                               # doctest: +SKIP
>>> import onnxruntime as ort                                          # doctest: +SKIP
>>> ort.InferenceSession("model.onnx").run(None, {"input": x})[0]     # doctest: +SKIP
"""

import math
import os

import numpy as np

from . import files

OPSET = 17
IR_VERSION = 8
SUPPORTED = ("InputLayer", "Dense", "Activation", "Dropout", "Flatten", "Reshape",
             "BatchNormalization")
ACTIVATIONS = (None, "linear", "relu", "sigmoid", "tanh", "softmax", "log_softmax", "elu",
               "softplus", "leaky_relu", "gelu", "swish", "silu")

__all__ = ["export_onnx", "SUPPORTED", "ACTIVATIONS", "OPSET"]


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError("export_onnx: the onnx package is needed, got no onnx module; "
                          "pip install tinygrad_lite[onnx]") from None
    return onnx


class _Graph:
    """Collects nodes and initializers; ``name()`` hands out unique intermediate names."""

    def __init__(self, onnx, weights):
        self.onnx, self.h, self.weights = onnx, onnx.helper, weights
        self.nodes, self.inits, self._n = [], [], 0

    def name(self, hint):
        self._n += 1
        return f"{hint}_{self._n}"

    def init(self, key):
        """An initializer: the weight under its state-dict key."""
        a = np.ascontiguousarray(self.weights[key])
        self.inits.append(self.onnx.numpy_helper.from_array(a, key))
        return key

    def const(self, hint, array):
        """A Constant node (not an initializer: those are exactly the model's weights)."""
        out = self.name(hint)
        tensor = self.onnx.numpy_helper.from_array(np.asarray(array), out)
        self.nodes.append(self.h.make_node("Constant", [], [out], name=out, value=tensor))
        return out

    def op(self, op_type, inputs, hint, **attrs):
        out = self.name(hint)
        self.nodes.append(self.h.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


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
        c = g.const(f"{where}_inv_sqrt2", np.array(1 / math.sqrt(2), np.float32))
        half = g.const(f"{where}_half", np.array(0.5, np.float32))
        one = g.const(f"{where}_one", np.array(1.0, np.float32))
        erf = g.op("Erf", [g.op("Mul", [x, c], f"{where}_scaled")], f"{where}_erf")
        halfx = g.op("Mul", [x, half], f"{where}_halfx")
        return g.op("Mul", [halfx, g.op("Add", [erf, one], f"{where}_1perf")], f"{where}_gelu")
    raise TypeError(f"export_onnx: activation {act!r} at {where} has no ONNX mapping, got it; "
                    f"supported activations: {[a for a in ACTIVATIONS if a]}")


def _layer(g, layer, i, x):
    kind = type(layer).__name__
    where = f"layers.{i}"
    if kind == "InputLayer":
        return x
    if kind == "Dropout":
        return g.op("Identity", [x], f"{where}_dropout")
    if kind == "Flatten":
        return g.op("Flatten", [x], f"{where}_flatten", axis=1)
    if kind == "Reshape":
        shape = g.const(f"{where}_shape", np.array((0,) + layer.target_shape, np.int64))
        return g.op("Reshape", [x, shape], f"{where}_reshape")
    if kind == "Activation":
        return _activation(g, x, layer.activation, where)
    if kind == "Dense":
        y = g.op("MatMul", [x, g.init(f"{where}.kernel")], f"{where}_matmul")
        if layer.use_bias:
            y = g.op("Add", [y, g.init(f"{where}.bias")], f"{where}_bias")
        return _activation(g, y, layer.activation, where)
    if kind == "BatchNormalization":
        eps = g.const(f"{where}_epsilon", np.array(layer.epsilon, np.float32))
        y = g.op("Sub", [x, g.init(f"{where}.moving_mean")], f"{where}_center")
        std = g.op("Sqrt", [g.op("Add", [g.init(f"{where}.moving_variance"), eps],
                                 f"{where}_var_eps")], f"{where}_std")
        y = g.op("Div", [y, std], f"{where}_normalized")
        if layer.scale:
            y = g.op("Mul", [y, g.init(f"{where}.gamma")], f"{where}_scaled")
        if layer.center:
            y = g.op("Add", [y, g.init(f"{where}.beta")], f"{where}_shifted")
        return y
    raise TypeError(f"export_onnx: layer {i} ({kind}) has no ONNX export yet, got it in the "
                    f"model; supported layers: {list(SUPPORTED)}")


def export_onnx(model, path, input_shape=None):
    """Write ``model`` (a built ``models.Sequential``) to ``path`` as an ONNX graph.

    Parameters
    ----------
    model : models.Sequential of the layers in ``SUPPORTED``
    path : str or PathLike (``*.onnx``)
    input_shape : per-sample input shape (no batch axis); default the model's own

    Returns the path. The batch axis is dynamic (``batch``).
    """
    onnx = _onnx()
    if not hasattr(model, "weights_dict") or not hasattr(model, "layers"):
        raise TypeError(f"export_onnx: expected a models.Sequential, got "
                        f"{type(model).__name__}; nn.Module export is not supported yet")
    for i, layer in enumerate(model.layers):     # before building anything
        if type(layer).__name__ not in SUPPORTED:
            raise TypeError(f"export_onnx: layer {i} ({type(layer).__name__}) has no ONNX "
                            f"export yet, got it in the model; supported layers: "
                            f"{list(SUPPORTED)}")
    own = model._input_shape
    if input_shape is not None:
        input_shape = tuple(int(d) for d in input_shape)
        if own is not None and input_shape != tuple(own):
            raise ValueError(f"export_onnx: input_shape {input_shape} differs from the model's "
                             f"{tuple(own)}; pass the shape the model was built for, or None")
        if own is None:
            model.build(input_shape)
    elif own is None:
        raise ValueError("export_onnx: the model is not built, got no input_shape; pass "
                         "input_shape=(n_features,) or fit the model first")
    shape = tuple(model._input_shape)
    weights = {k: np.asarray(v) for k, v in model.weights_dict().items()}
    g = _Graph(onnx, weights)
    x = "input"
    for i, layer in enumerate(model.layers):
        x = _layer(g, layer, i, x)
    g.nodes.append(onnx.helper.make_node("Identity", [x], ["output"], name="output"))
    out_shape = ["batch"] + [int(d) for d in model.output_shape[1:]]
    f32 = onnx.TensorProto.FLOAT
    graph = onnx.helper.make_graph(
        g.nodes, model.name or "tinygrad_lite_sequential",
        [onnx.helper.make_tensor_value_info("input", f32, ["batch", *shape])],
        [onnx.helper.make_tensor_value_info("output", f32, out_shape)], initializer=g.inits)
    proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)],
                                   producer_name="tinygrad_lite", ir_version=IR_VERSION)
    onnx.checker.check_model(proto, full_check=True)
    files.atomic_write_bytes(path, proto.SerializeToString())
    return os.fspath(path)
