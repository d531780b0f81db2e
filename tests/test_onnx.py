"""io.export_onnx: opset 17, dynamic batch, initializers named after the weights_dict keys, a
full checker pass, and onnxruntime's outputs within 1e-5 of model.predict."""

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import io
from tinygrad_lite.layers import (
    Activation,
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    InputLayer,
    Reshape,
)
from tinygrad_lite.models import Sequential

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _trained(layers, x, y):
    m = Sequential(layers)
    m.compile("adam", "sparse_categorical_crossentropy")
    m.fit(x, y, epochs=2, batch_size=16, verbose=0)     # BatchNorm moving stats move
    return m


def test_seed_mlp_parity_names_and_dynamic_batch(tmp_path):
    tl.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((64, 64)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    m = _trained([Dense(128, activation="relu", input_shape=(64,)), Dropout(0.3),
                  Dense(10, activation="softmax")], x, y)
    path = io.export_onnx(m, tmp_path / "mlp.onnx")
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [17]
    assert {i.name for i in proto.graph.initializer} == set(m.weights_dict())
    for init in proto.graph.initializer:
        np.testing.assert_array_equal(onnx.numpy_helper.to_array(init), m.weights_dict()[init.name])
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [64]
    sess = _session(path)
    for n in (1, 7, 64):                                   # the batch axis is dynamic
        got = sess.run(None, {"input": x[:n]})[0]
        np.testing.assert_allclose(got, m.predict(x[:n]), rtol=0, atol=1e-5)


@pytest.mark.parametrize("act", ["relu", "sigmoid", "tanh", "elu", "softplus", "leaky_relu",
                                 "gelu", "swish", "log_softmax", "linear"])
def test_activations_and_batchnorm(tmp_path, act):
    tl.manual_seed(1)
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((48, 6)) * 2).astype(np.float32)
    y = rng.integers(0, 3, 48)
    m = _trained([InputLayer(shape=(6,)), Dense(16, activation=act), BatchNormalization(),
                  Activation(act), Dense(8, use_bias=False), BatchNormalization(center=False),
                  Dense(3, activation="softmax")], x, y)
    path = io.export_onnx(m, tmp_path / "m.onnx")
    onnx.checker.check_model(onnx.load(path), full_check=True)
    got = _session(path).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, m.predict(x), rtol=0, atol=1e-5)


def test_reshape_flatten_and_input_shape_argument(tmp_path):
    tl.manual_seed(2)
    m = Sequential([Reshape((4, 3, 2)), Flatten(), Dense(5, activation="tanh")])
    path = io.export_onnx(m, tmp_path / "r.onnx", input_shape=(24,))
    x = np.random.default_rng(2).random((9, 24)).astype(np.float32)
    got = _session(path).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, m.predict(x), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="differs from the model's"):
        io.export_onnx(m, tmp_path / "r2.onnx", input_shape=(25,))


def test_unsupported_layer_names_it_and_lists_the_supported(tmp_path):
    m = Sequential([Conv2D(2, 3, input_shape=(5, 5, 1)), Flatten(), Dense(2)])
    m.build()
    with pytest.raises(TypeError, match=r"layer 0 \(Conv2D\).*supported layers: \['InputLayer'"):
        io.export_onnx(m, tmp_path / "c.onnx")
    assert not (tmp_path / "c.onnx").exists()
    with pytest.raises(ValueError, match="not built"):
        io.export_onnx(Sequential([Dense(2)]), tmp_path / "u.onnx")


def test_cli_export(tmp_path, capsys):
    from tinygrad_lite.cli import main

    tl.manual_seed(3)
    m = Sequential([Dense(8, activation="relu", input_shape=(5,)), Dense(2, activation="softmax")])
    m.build()
    m.save(tmp_path / "m.safetensors")
    assert main(["export", str(tmp_path / "m.safetensors"), "--format", "onnx"]) == 0
    assert "wrote" in capsys.readouterr().out
    x = np.random.default_rng(3).random((4, 5)).astype(np.float32)
    got = _session(tmp_path / "m.onnx").run(None, {"input": x})[0]
    np.testing.assert_allclose(got, m.predict(x), rtol=0, atol=1e-5)
    cnn = Sequential([Conv2D(2, 3, input_shape=(5, 5, 1)), Flatten(), Dense(2)])
    cnn.build()
    cnn.save(tmp_path / "c.safetensors")
    assert main(["export", str(tmp_path / "c.safetensors"), "--out",
                 str(tmp_path / "c.onnx")]) == 2
    err = capsys.readouterr().err
    assert "Conv2D" in err and "supported layers" in err and len(err.strip().splitlines()) == 1
