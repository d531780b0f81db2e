"""io.export_onnx: opset 17, dynamic batch, initializers named after the state-dict keys, a full
checker pass, and onnxruntime's outputs within 1e-5 of ours, for Keras-style models and nn modules
(the seed MLP, CNNs, LSTM/GRU/SimpleRNN, residual blocks, Embedding, LayerNorm); the exported file
also round-trips through io.load_onnx and runtime.py within 1e-5."""

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import io, nn, runtime
from tinygrad_lite.layers import (
    GRU,
    LSTM,
    Activation,
    AveragePooling2D,
    BatchNormalization,
    Conv1D,
    Conv2D,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    InputLayer,
    LayerNormalization,
    MaxPooling2D,
    Reshape,
    SimpleRNN,
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


def _ours(m, x):
    """Our eval-mode outputs (a list: an nn.LSTM/GRU gives output, h_n[, c_n])."""
    if hasattr(m, "predict"):
        return [m.predict(x)]
    m.eval()
    with tl.no_grad():
        y = m(tl.Tensor(x) if x.dtype.kind == "f" else x)
    if isinstance(y, tuple):
        y = [y[0]] + (list(y[1]) if isinstance(y[1], tuple) else [y[1]])
    return [np.asarray(v.data) for v in (y if isinstance(y, list) else [y])]


def _check_all_paths(path, m, x, state):
    """The file passes the full checker, holds exactly our weights under their state-dict keys,
    and onnxruntime, io.load_onnx and runtime.py all match our outputs within 1e-5 at two
    batch sizes (the batch axis is dynamic)."""
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [17]
    assert proto.ir_version == io.onnx.IR_VERSION
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    assert set(inits) <= set(state) and bool(inits) == bool(state)
    for k, v in inits.items():
        np.testing.assert_array_equal(v, state[k])
    sess = _session(path)
    imported = io.load_onnx(path)
    vendored = runtime.load(path)
    batch_axis = 1 if type(m).__name__ in ("LSTM", "GRU", "RNN") and not m.batch_first else 0
    for n in (1, x.shape[batch_axis]):
        xb = x[:n] if batch_axis == 0 else x[:, :n]
        want = _ours(m, xb)
        got = sess.run(None, {"input": xb})
        assert len(got) == len(want)
        for g_, w_ in zip(got, want):
            np.testing.assert_allclose(g_, w_, rtol=0, atol=1e-5)
        for g_, w_ in zip(imported.forward_all(xb), want):
            np.testing.assert_allclose(g_.data, w_, rtol=0, atol=1e-5)
        for g_, w_ in zip(vendored.run(xb), want):
            np.testing.assert_allclose(g_, w_, rtol=0, atol=1e-5)


def _fit_keras(m, x, y, loss="mse"):
    m.compile("adam", loss)
    m.fit(x, y, epochs=2, batch_size=8, verbose=0)
    return m


def _keras_cases():
    rng = np.random.default_rng(4)
    img = rng.standard_normal((12, 9, 9, 2)).astype(np.float32)
    seq = rng.standard_normal((12, 6, 3)).astype(np.float32)
    ids = rng.integers(0, 11, (12, 7))
    return {
        "cnn": (lambda: [Conv2D(4, 3, padding="same", activation="relu", input_shape=(9, 9, 2)),
                         BatchNormalization(), MaxPooling2D(padding="same"),
                         Conv2D(3, 2, strides=(2, 2), dilation_rate=1, activation="tanh"),
                         AveragePooling2D(padding="same"), Flatten(), Dropout(0.2),
                         Dense(3, activation="softmax")], img, rng.integers(0, 3, 12),
                "sparse_categorical_crossentropy"),
        "cnn_channels_first": (lambda: [Conv2D(3, 3, data_format="channels_first",
                                               input_shape=(2, 9, 9)),
                                        MaxPooling2D(data_format="channels_first"), Flatten(),
                                        Dense(2)], img.transpose(0, 3, 1, 2), rng.random((12, 2)),
                               "mse"),
        "lstm": (lambda: [LSTM(5, return_sequences=True, input_shape=(6, 3)), LSTM(4),
                          Dense(2)], seq, rng.random((12, 2)), "mse"),
        "gru_rnn": (lambda: [GRU(5, return_sequences=True, input_shape=(6, 3)),
                             SimpleRNN(4, activation="relu"), Dense(2)], seq,
                    rng.random((12, 2)), "mse"),
        "embedding_conv1d_layernorm": (lambda: [Embedding(11, 4, input_shape=(7,)),
                                                Conv1D(3, 3, padding="causal", activation="elu"),
                                                Conv1D(2, 2, strides=2, padding="same"),
                                                LayerNormalization(), Flatten(), Dense(2)],
                                       ids, rng.random((12, 2)), "mse"),
    }


@pytest.mark.parametrize("case", sorted(_keras_cases()))
def test_keras_layers_parity(tmp_path, case):
    tl.manual_seed(5)
    layers, x, y, loss = _keras_cases()[case]
    m = _fit_keras(Sequential(layers()), x, y, loss)        # weights and BN statistics move
    path = io.export_onnx(m, tmp_path / f"{case}.onnx")
    _check_all_paths(path, m, x, m.weights_dict())


def _warm_bn(m, x, steps=3):
    """Move BatchNorm running statistics away from 0/1 (train-mode forwards)."""
    m.train()
    with tl.no_grad():
        for i in range(steps):
            m(tl.Tensor(x * (1 + i)))
    m.eval()
    return m


def _nn_cases():
    rng = np.random.default_rng(6)
    img = rng.standard_normal((6, 2, 8, 8)).astype(np.float32)
    return {
        "residual_cnn": (lambda: nn.Sequential(
            nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
            nn.BasicBlock(4, 4), nn.BasicBlock(4, 8, stride=2),
            nn.Residual(nn.Sequential(nn.Conv2d(8, 8, 3, padding="same"), nn.GELU())),
            nn.Residual(nn.Identity(), shortcut=nn.Conv2d(8, 8, 1)),
            nn.MaxPool2d(2, ceil_mode=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Dropout(), nn.Linear(8, 5), nn.LayerNorm(5), nn.Softmax(dim=-1)), img),
        "conv1d_pools": (lambda: nn.Sequential(
            nn.Conv1d(3, 6, 3, padding=1, groups=3), nn.AvgPool1d(3, stride=2, padding=1),
            nn.ELU(0.5), nn.BatchNorm1d(6), nn.MaxPool1d(2), nn.Flatten(), nn.Linear(12, 4),
            nn.Hardswish(), nn.LeakyReLU(0.1), nn.LogSoftmax(dim=1)),
            rng.standard_normal((6, 3, 8)).astype(np.float32)),
        "groupnorm": (lambda: nn.Sequential(nn.Conv2d(2, 6, 3), nn.GroupNorm(3, 6), nn.ReLU(),
                                            nn.Flatten(1, 2), nn.GroupNorm(2, 36, affine=False),
                                            nn.Conv1d(36, 2, 2)), img),
        "cnn_avgpool": (lambda: nn.Sequential(
            nn.Conv2d(2, 3, 3, stride=2, dilation=1, bias=False),
            nn.AvgPool2d(2, padding=1, count_include_pad=False), nn.Tanh(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2), nn.Sigmoid()), img),
        "conv_transpose": (lambda: nn.Sequential(
            nn.ConvTranspose2d(2, 4, 3, stride=2, padding=1, output_padding=1, groups=2),
            nn.ReLU(), nn.ConvTranspose2d(4, 1, (2, 3), dilation=2, bias=False), nn.Flatten(1, 2),
            nn.ConvTranspose1d(18, 3, 3, stride=2, padding=1)), img),
        "upsample_nearest": (lambda: nn.Sequential(
            nn.Conv2d(2, 2, 3, padding=1), nn.Upsample(scale_factor=2), nn.Conv2d(2, 1, 1),
            nn.Upsample(size=(19, 13))), img),
        "mlp_activations": (lambda: nn.Sequential(
            nn.Linear(5, 8), nn.BatchNorm1d(8), nn.SiLU(), nn.Linear(8, 8), nn.Softplus(beta=2),
            nn.Linear(8, 8), nn.Hardtanh(-0.5, 0.5), nn.Linear(8, 8), nn.ReLU6(),
            nn.Linear(8, 8), nn.Hardsigmoid(), nn.Linear(8, 6), nn.GELU("tanh"),
            nn.Linear(6, 3), nn.Softsign()),
            rng.standard_normal((6, 5)).astype(np.float32) * 3),
        "embedding": (lambda: nn.Sequential(nn.Embedding(10, 4, padding_idx=0), nn.Linear(4, 3),
                                            nn.Tanh(), nn.Flatten(), nn.Linear(18, 2)),
                      rng.integers(0, 10, (6, 6))),
        "transformer_post_norm_relu": (lambda: nn.Sequential(
            nn.Linear(3, 8), nn.TransformerEncoder(nn.TransformerEncoderLayer(
                8, 2, 16, batch_first=True), 2, norm=nn.LayerNorm(8)), nn.Linear(8, 2)),
            rng.standard_normal((4, 5, 3)).astype(np.float32)),
        "transformer_pre_norm_gelu_time_major": (lambda: nn.Sequential(
            nn.TransformerEncoderLayer(6, 3, 12, activation="gelu", norm_first=True),
            nn.Linear(6, 2)), rng.standard_normal((5, 4, 6)).astype(np.float32)),
        "lstm": (lambda: nn.LSTM(3, 5, batch_first=True),
                 rng.standard_normal((4, 6, 3)).astype(np.float32)),
        "gru_time_major": (lambda: nn.GRU(3, 5), rng.standard_normal((6, 4, 3)).astype(np.float32)),
        "rnn_relu": (lambda: nn.RNN(3, 4, nonlinearity="relu", batch_first=True),
                     rng.standard_normal((4, 6, 3)).astype(np.float32)),
        "lstm_stacked_bidirectional": (lambda: nn.LSTM(3, 4, num_layers=2, bidirectional=True,
                                                       batch_first=True),
                                       rng.standard_normal((4, 6, 3)).astype(np.float32)),
        "gru_stacked_no_bias": (lambda: nn.GRU(3, 4, num_layers=3, bias=False),
                                rng.standard_normal((6, 4, 3)).astype(np.float32)),
    }


@pytest.mark.parametrize("case", sorted(_nn_cases()))
def test_nn_modules_parity(tmp_path, case):
    tl.manual_seed(7)
    build, x = _nn_cases()[case]
    m = build()
    if x.dtype.kind == "f" and type(m).__name__ not in ("LSTM", "GRU", "RNN"):
        _warm_bn(m, x)
    m.eval()
    time_major = type(m).__name__ in ("LSTM", "GRU", "RNN") and not m.batch_first
    shape = (x.shape[0], x.shape[2]) if time_major else x.shape[1:]
    path = io.export_onnx(m, tmp_path / f"{case}.onnx", input_shape=shape)
    _check_all_paths(path, m, x, m.state_dict())


def test_training_flags_are_restored_and_gate_order_is_mapped(tmp_path):
    tl.manual_seed(8)
    m = nn.LSTM(2, 3)
    m.train()
    path = io.export_onnx(m, tmp_path / "l.onnx", input_shape=(4, 2))
    assert m.training
    proto = onnx.load(path)
    lstm = [n for n in proto.graph.node if n.op_type == "LSTM"]
    assert len(lstm) == 1 and onnx.helper.get_attribute_value(lstm[0].attribute[0]) == 3
    # the Gather feeding W reorders PyTorch's (i, f, g, o) blocks into ONNX's (i, o, f, c)
    consts = {n.output[0]: onnx.numpy_helper.to_array(n.attribute[0].t)
              for n in proto.graph.node if n.op_type == "Constant"}
    perms = [consts[n.input[1]] for n in proto.graph.node
             if n.op_type == "Gather" and n.input[0] == "weight_ih_l0"]
    assert len(perms) == 1
    np.testing.assert_array_equal(perms[0].reshape(4, 3)[:, 0], [0, 9, 3, 6])


def test_unsupported_layer_names_it_and_lists_the_supported(tmp_path):
    m = nn.Sequential(nn.Linear(4, 4), nn.Mish())
    with pytest.raises(TypeError, match=r"1 \(Mish\).*supported layers: \['Sequential'"):
        io.export_onnx(m, tmp_path / "c.onnx", input_shape=(4,))
    assert not (tmp_path / "c.onnx").exists()
    k = Sequential([Dense(3, input_shape=(4,)), nn.Mish()])
    with pytest.raises(TypeError, match=r"layer 1 \(Mish\).*supported layers: \['InputLayer'"):
        io.export_onnx(k, tmp_path / "k.onnx")
    r = Sequential([SimpleRNN(3, activation="sigmoid", input_shape=(4, 2))])
    r.build()
    with pytest.raises(TypeError, match="SimpleRNN.*activation 'sigmoid'"):
        io.export_onnx(r, tmp_path / "r.onnx")
    with pytest.raises(TypeError, match=r"model \(MultiheadAttention\)"):
        io.export_onnx(nn.MultiheadAttention(4, 2), tmp_path / "a.onnx", input_shape=(3, 4))
    with pytest.raises(TypeError, match=r"float64 weights \('0.weight'\); convert"):
        io.export_onnx(nn.Sequential(nn.Linear(2, 2, dtype=np.float64)), tmp_path / "d.onnx",
                       input_shape=(2,))
    with pytest.raises(ValueError, match="needs input_shape"):
        io.export_onnx(nn.Linear(2, 2), tmp_path / "n.onnx")
    with pytest.raises(ValueError, match="not built"):
        io.export_onnx(Sequential([Dense(2)]), tmp_path / "u.onnx")
    assert not list(tmp_path.iterdir())


def test_cli_export_carries_labels_and_preprocessing_to_the_runtime(tmp_path, capsys):
    from tinygrad_lite.cli import main
    from tinygrad_lite.data.preprocessing import StandardScaler

    tl.manual_seed(3)
    rng = np.random.default_rng(3)
    raw = rng.standard_normal((20, 8, 8, 1)) * 5 + 2
    scaler = StandardScaler().fit(raw.reshape(20, -1))
    m = Sequential([Conv2D(2, 3, input_shape=(8, 8, 1)), MaxPooling2D(), Flatten(),
                    Dense(3, activation="softmax")])
    m.build()
    m.save(tmp_path / "m.safetensors", preprocessing=scaler, label_names=["a", "b", "c"])
    assert main(["export", str(tmp_path / "m.safetensors"), "--format", "onnx"]) == 0
    assert "wrote" in capsys.readouterr().out
    x = scaler.transform(raw.reshape(20, -1)).reshape(raw.shape).astype(np.float32)
    got = _session(tmp_path / "m.onnx").run(None, {"input": x})[0]
    np.testing.assert_allclose(got, m.predict(x), rtol=0, atol=1e-5)
    vendored = runtime.load(tmp_path / "m.onnx")         # raw features in, labels out
    np.testing.assert_allclose(vendored.predict(raw), m.predict(x), rtol=0, atol=1e-5)
    np.testing.assert_array_equal(vendored.predict_labels(raw),
                                  np.array(["a", "b", "c"])[m.predict(x).argmax(1)])
    r = Sequential([SimpleRNN(3, activation="sigmoid", input_shape=(4, 2))])
    r.build()
    r.save(tmp_path / "r.safetensors")
    assert main(["export", str(tmp_path / "r.safetensors"), "--out",
                 str(tmp_path / "r.onnx")]) == 2
    err = capsys.readouterr().err
    assert "SimpleRNN" in err and "sigmoid" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("n", [8, 9])
def test_ceil_mode_pooling_matches_pytorch_sizes(tmp_path, n):
    """ONNX's ceil_mode output size lacks PyTorch's rule that drops a last window starting in the
    right padding; the export uses ceil_mode=0 and end padding where they differ."""
    x = np.random.default_rng(n).standard_normal((3, 2, n, n)).astype(np.float32)
    for i, m in enumerate([nn.AvgPool2d(3, 3, 1, ceil_mode=True),
                           nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
                           nn.MaxPool2d(3, 3, 1, ceil_mode=True),
                           nn.MaxPool2d(2, 3, 1, dilation=2, ceil_mode=True),
                           nn.AvgPool2d(4, 3, 2, ceil_mode=True, count_include_pad=False)]):
        path = io.export_onnx(m, tmp_path / f"p{i}.onnx", input_shape=x.shape[1:])
        _check_all_paths(path, m, x, {})
