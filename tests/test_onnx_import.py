"""io.load_onnx: files written by PyTorch's own exporter (an MLP, a small CNN, an LSTM) import as
trainable modules that match PyTorch and train further; hostile ONNX files (external data outside
the file's folder, size bombs, truncations, bit flips, rewritten shapes and attributes) give
ModelFormatError and nothing else, from io.load_onnx and from runtime.py, without hanging or
allocating past the caps."""

import os
import signal
import tracemalloc

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import io, nn, optim, runtime
from tinygrad_lite.errors import ModelFormatError
from tinygrad_lite.layers import LSTM, Dense
from tinygrad_lite.models import Sequential

onnx = pytest.importorskip("onnx")


# ------------------------------------------------------------------ PyTorch-exported files ---

def _torch():
    return pytest.importorskip("torch", reason="torch writes the PyTorch-exported ONNX files")


def _torch_models(torch):
    class LSTMHead(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(4, 6, batch_first=True)
            self.fc = torch.nn.Linear(6, 3)

        def forward(self, x):
            out, _ = self.lstm(x)
            return self.fc(out[:, -1])

    tnn = torch.nn
    return {
        "mlp": (lambda: tnn.Sequential(tnn.Linear(5, 16), tnn.ReLU(), tnn.Linear(16, 8),
                                       tnn.Tanh(), tnn.Linear(8, 3)), (5,)),
        "cnn": (lambda: tnn.Sequential(tnn.Conv2d(1, 4, 3, padding=1), tnn.BatchNorm2d(4),
                                       tnn.ReLU(), tnn.MaxPool2d(2), tnn.Conv2d(4, 6, 3),
                                       tnn.ReLU(), tnn.AvgPool2d(2), tnn.Flatten(),
                                       tnn.Linear(6, 3)), (1, 10, 10)),
        "lstm": (LSTMHead, (7, 4)),
    }


def _export_torch(torch, m, shape, path):
    import warnings

    x = torch.randn(2, *shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (x,), str(path), dynamo=False, input_names=["input"],
                          output_names=["output"], opset_version=17,
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})


@pytest.mark.parametrize("case", ["mlp", "cnn", "lstm"])
def test_pytorch_exported_file_matches_pytorch_and_trains(tmp_path, case):
    torch = _torch()
    torch.manual_seed(0)
    build, shape = _torch_models(torch)[case]
    tm = build()
    if case == "cnn":                     # BatchNorm statistics away from 0/1, then eval
        with torch.no_grad():
            for _ in range(3):
                tm(torch.randn(8, *shape) * 2 + 1)
    tm.eval()
    path = tmp_path / f"{case}.onnx"
    _export_torch(torch, tm, shape, path)
    m = io.load_onnx(path)
    assert isinstance(m, nn.Module)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((9, *shape)).astype(np.float32)
    with torch.no_grad():
        want = tm(torch.from_numpy(x)).numpy()
    m.eval()
    np.testing.assert_allclose(m(x).data, want, rtol=0, atol=1e-5)
    np.testing.assert_allclose(m.predict(x, batch_size=4), want, rtol=0, atol=1e-5)
    # the parameters are PyTorch's, under the initializer names (``0.weight``, ``fc.bias``...)
    params = dict(m.named_parameters())
    torch_params = dict(tm.named_parameters())
    for k in params:
        if k in torch_params:
            np.testing.assert_array_equal(params[k].data, torch_params[k].detach().numpy())
    n_torch = sum(p.numel() for n_, p in tm.named_parameters() if not n_.startswith("1."))
    n_bn = sum(p.numel() for n_, p in tm.named_parameters() if n_.startswith("1."))
    # PyTorch's exporter folds the eval BatchNorm (module 1 of the CNN) into the conv
    assert sum(p.size for p in m.parameters()) == n_torch + (0 if case == "cnn" else n_bn)
    # fine-tuning: a few SGD steps on a fixed batch lower the loss
    y = rng.integers(0, 3, 9)
    opt = optim.SGD(m.parameters(), lr=0.05)
    losses = []
    for _ in range(5):
        loss = nn.functional.cross_entropy(m(tl.Tensor(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.data))
    assert losses[-1] < losses[0], losses
    assert all(p.grad is not None for p in m.parameters())
    # the vendorable runtime runs the same file
    np.testing.assert_allclose(runtime.load(path).predict(x), want, rtol=0, atol=1e-5)


def test_pytorch_gru_with_a_static_batch(tmp_path):
    """A file exported without dynamic axes: its constant initial state fixes the batch, and
    the load-time check runs at that batch size."""
    import warnings

    torch = _torch()
    torch.manual_seed(1)
    tm = torch.nn.GRU(4, 5, batch_first=True)
    x = torch.randn(3, 6, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(tm, (x,), str(tmp_path / "g.onnx"), dynamo=False,
                          input_names=["input"], opset_version=17)
    with torch.no_grad():
        want = [t.numpy() for t in tm(x)]
    got = io.load_onnx(tmp_path / "g.onnx").forward_all(x.numpy())
    vendored = runtime.load(tmp_path / "g.onnx").run(x.numpy())
    for g_, v_, w_ in zip(got, vendored, want):
        np.testing.assert_allclose(g_.data, w_, rtol=0, atol=1e-5)
        np.testing.assert_allclose(v_, w_, rtol=0, atol=1e-5)


def test_pytorch_split_pad_selu_resize_convtranspose_import(tmp_path):
    """Ops PyTorch's exporter writes for GLU/chunk (Split), padding modes (Pad reflect/edge,
    constant), SELU/Mish, nearest Upsample (Resize) and ConvTranspose2d, through load_onnx
    (gradients reach every weight) and runtime.py."""
    torch = _torch()
    torch.manual_seed(2)
    tnn = torch.nn
    cases = [(tnn.Sequential(tnn.Linear(4, 8), tnn.GLU(), tnn.Mish(), tnn.SELU()), (4,)),
             (tnn.Sequential(tnn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"),
                             tnn.ZeroPad2d((1, 2, 0, 1)), tnn.ReplicationPad2d(1),
                             tnn.Conv2d(2, 4, 3, padding=1, padding_mode="replicate"),
                             tnn.GLU(dim=1)), (1, 5, 4)),
             (tnn.Sequential(tnn.Conv2d(1, 2, 3, padding=1), tnn.Upsample(scale_factor=2),
                             tnn.Conv2d(2, 1, 1), tnn.Upsample(size=(11, 7))), (1, 4, 5)),
             (tnn.Sequential(tnn.ConvTranspose2d(2, 4, 3, stride=2, padding=1,
                                                 output_padding=1, groups=2), tnn.ReLU()),
              (2, 4, 5))]
    for i, (tm, shape) in enumerate(cases):
        path = tmp_path / f"t{i}.onnx"
        _export_torch(torch, tm.eval(), shape, path)
        x = np.random.default_rng(i).standard_normal((3, *shape)).astype(np.float32)
        with torch.no_grad():
            want = tm(torch.from_numpy(x)).numpy()
        m = io.load_onnx(path)
        y = m(tl.Tensor(x))
        np.testing.assert_allclose(y.data, want, rtol=0, atol=1e-5)
        np.testing.assert_allclose(runtime.load(path).predict(x), want, rtol=0, atol=1e-5)
        (y * tl.Tensor(np.random.default_rng(9).standard_normal(y.shape).astype(np.float32))) \
            .sum().backward()
        assert all(p.grad is not None and np.abs(p.grad.data).sum() > 0 for p in m.parameters())


def test_batchnorm_statistics_are_buffers_not_parameters(tmp_path):
    torch = _torch()
    build, shape = _torch_models(torch)["cnn"]
    tm = build().eval()
    _export_torch(torch, tm, shape, tmp_path / "c.onnx")
    m = io.load_onnx(tmp_path / "c.onnx")
    # PyTorch folds an eval BatchNorm into the conv; ours keeps any BatchNormalization node's
    # mean and variance as buffers: train a model that has one
    tl.manual_seed(0)
    ours = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU()).eval()
    io.export_onnx(ours, tmp_path / "b.onnx", input_shape=(3,))
    b = io.load_onnx(tmp_path / "b.onnx")
    assert set(dict(b.named_buffers())) == {"1.running_mean", "1.running_var"}
    assert set(dict(b.named_parameters())) == {"0.weight", "0.bias", "1.weight", "1.bias"}
    assert m.state_dict().keys() == {**dict(m.named_parameters()),
                                     **dict(m.named_buffers())}.keys()


def test_load_state_dict_round_trip(tmp_path):
    tl.manual_seed(1)
    ours = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    io.export_onnx(ours, tmp_path / "m.onnx", input_shape=(3,))
    m = io.load_onnx(tmp_path / "m.onnx")
    assert list(m.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    sd = {k: v * 2 for k, v in ours.state_dict().items()}
    m.load_state_dict(sd)
    ours.load_state_dict(sd)
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    np.testing.assert_allclose(m(x).data, ours(tl.Tensor(x)).data, rtol=0, atol=1e-6)


# ------------------------------------------------------------------------- hostile files ---

def _small_models():
    tl.manual_seed(2)
    cnn = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8, 3)).eval()
    rnn = Sequential([LSTM(3, input_shape=(4, 2)), Dense(2, activation="softmax")])
    rnn.build()
    return [(cnn, (1, 4, 4)), (rnn, None)]


def _loaders():
    return [("io.load_onnx", io.load_onnx, ModelFormatError),
            ("runtime.load", runtime.load, runtime.ModelFormatError)]


def _with_external(proto, location):
    t = proto.graph.initializer[0]
    t.ClearField("raw_data")
    t.ClearField("float_data")
    t.data_location = onnx.TensorProto.EXTERNAL
    e = t.external_data.add()
    e.key, e.value = "location", location
    return proto.SerializeToString()


def test_external_data_must_stay_in_the_models_folder(tmp_path):
    cnn, shape = _small_models()[0]
    good = tmp_path / "m.onnx"
    io.export_onnx(cnn, good, input_shape=shape)
    x = np.random.default_rng(3).standard_normal((2, *shape)).astype(np.float32)
    want = cnn(tl.Tensor(x)).data
    # a legitimate external-data file beside the model loads
    proto = onnx.load(good)
    sub = tmp_path / "ext"
    sub.mkdir()
    onnx.save_model(proto, sub / "m.onnx", save_as_external_data=True,
                    all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    assert (sub / "weights.bin").exists()
    for _, load, _ in _loaders():
        got = load(sub / "m.onnx")
        out = got.predict(x) if hasattr(got, "predict") else got(x).data
        np.testing.assert_allclose(out, want, rtol=0, atol=1e-5)
    # paths that leave the folder are refused before anything is read
    (tmp_path / "secret.bin").write_bytes(b"\0" * 4096)
    os.symlink(tmp_path / "secret.bin", sub / "link.bin")
    for loc in ("../../etc/passwd", "/etc/passwd", "../secret.bin", "link.bin",
                "a/../../secret.bin"):
        bad = sub / "bad.onnx"
        bad.write_bytes(_with_external(onnx.load(good), loc))
        for name, load, err in _loaders():
            with pytest.raises(err, match="outside the model's folder|relative path inside"):
                load(bad)
    # a missing external file, and a FIFO (reading it would block forever)
    os.mkfifo(sub / "fifo.bin")
    for loc in ("missing.bin", "fifo.bin"):
        bad.write_bytes(_with_external(onnx.load(good), loc))
        for _, load, err in _loaders():
            with pytest.raises(err, match="cannot read external data"):
                load(bad)


def test_field_budget_refuses_a_file_of_millions_of_tiny_fields(tmp_path, monkeypatch):
    monkeypatch.setattr(runtime, "ONNX_MAX_FIELDS", 1000)
    path = tmp_path / "many.onnx"
    path.write_bytes(b"\x08\x01" * 4000)           # 4000 x (field 1, varint 1)
    for _, load, err in _loaders():
        with pytest.raises(err, match="over 1000 protobuf fields"):
            load(path)
    t = onnx.TensorProto()                          # one packed list of 5000 dims
    t.name, t.data_type = "w", onnx.TensorProto.FLOAT
    t.dims.extend([1] * 5000)
    _graph_file(path, [onnx.helper.make_node("Relu", ["input"], ["output"])], [t])
    for _, load, err in _loaders():
        with pytest.raises(err, match="over 1000 protobuf fields"):
            load(path)


def _graph_file(path, nodes, inits=(), in_dims=("batch", 3)):
    h = onnx.helper
    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info("input", 1, list(in_dims))],
                         [h.make_tensor_value_info("output", 1, None)], initializer=list(inits))
    proto = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)], ir_version=8)
    path.write_bytes(proto.SerializeToString())
    return path


def _raw_tensor(name, dims, raw):
    """A TensorProto whose dims and raw_data need not agree (onnx.helper checks that)."""
    t = onnx.TensorProto()
    t.name, t.data_type, t.raw_data = name, onnx.TensorProto.FLOAT, raw
    t.dims.extend(dims)
    return t


def test_size_caps_refuse_bombs_without_allocating(tmp_path):
    h = onnx.helper
    # an initializer that claims 2**40 elements (its data is 12 bytes)
    t = _raw_tensor("w", [2**20, 2**20], np.zeros(3, np.float32).tobytes())
    a = _graph_file(tmp_path / "a.onnx", [h.make_node("Add", ["input", "w"], ["output"])], [t])
    # a raw_data length that does not match the shape
    t2 = _raw_tensor("w", [3], np.zeros(2, np.float32).tobytes())
    b = _graph_file(tmp_path / "b.onnx", [h.make_node("Add", ["input", "w"], ["output"])], [t2])
    # a graph that computes a huge shape: ConstantOfShape([2**16, 2**16]) and a broadcast bomb
    shape = h.make_tensor("s", 7, [2], [2**16, 2**16])
    c = _graph_file(tmp_path / "c.onnx", [
        h.make_node("Constant", [], ["shape"], value=shape),
        h.make_node("ConstantOfShape", ["shape"], ["big"]),
        h.make_node("Add", ["input", "big"], ["output"])])
    col = h.make_tensor("col", 1, [2**14, 1], np.zeros(2**14, np.float32).tobytes(), raw=True)
    row = h.make_tensor("row", 1, [1, 2**14], np.zeros(2**14, np.float32).tobytes(), raw=True)
    d = _graph_file(tmp_path / "d.onnx", [h.make_node("Add", ["col", "row"], ["big"]),
                                          h.make_node("Mul", ["input", "big"], ["output"])],
                    [col, row], in_dims=("batch", 1))
    # a Gather whose output is indices x rows, and a 1x1 conv to 128 channels of a 1024^2 image
    data = h.make_tensor("data", 1, [1, 2**14], np.zeros(2**14, np.float32).tobytes(), raw=True)
    ids = h.make_tensor("ids", 7, [2**14], np.zeros(2**14, np.int64).tobytes(), raw=True)
    e = _graph_file(tmp_path / "e.onnx", [h.make_node("Gather", ["data", "ids"], ["big"]),
                                          h.make_node("Mul", ["input", "big"], ["output"])],
                    [data, ids], in_dims=("batch", 1))
    w = h.make_tensor("w", 1, [128, 1, 1, 1], np.ones(128, np.float32).tobytes(), raw=True)
    f = _graph_file(tmp_path / "f.onnx", [h.make_node("Conv", ["input", "w"], ["output"])], [w],
                    in_dims=("batch", 1, 1024, 1024))
    # padding of 2**15 on each side of a 4x4 image (a 2**32-cell buffer)
    k = h.make_tensor("k", 1, [1, 1, 1, 1], np.ones(1, np.float32).tobytes(), raw=True)
    p = _graph_file(tmp_path / "p.onnx", [h.make_node("Conv", ["input", "k"], ["output"],
                                                      pads=[2**15] * 4)], [k],
                    in_dims=("batch", 1, 4, 4))
    tracemalloc.start()
    try:
        for path, msg in ((a, "over the cap"), (b, "raw_data has 8 bytes"),
                          (c, "over the cap"), (d, "over the cap"), (e, "Gather: .* over the cap"),
                          (f, "Conv: .* over the cap"), (p, "over the cap")):
            for _, load, err in _loaders():
                with pytest.raises(err, match=msg):
                    load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 48 * 2**20, peak          # the 4 MiB test image; nothing near the bombs


def test_recurrent_steps_are_capped(tmp_path, monkeypatch):
    rnn = _small_models()[1][0]                 # a Keras LSTM over 4 steps
    io.export_onnx(rnn, tmp_path / "l.onnx")
    monkeypatch.setattr(runtime, "ONNX_MAX_STEPS", 3)
    for _, load, err in _loaders():
        with pytest.raises(err, match="LSTM: 4 steps .* over the caps"):
            load(tmp_path / "l.onnx")


def test_unsupported_and_malformed_graphs(tmp_path):
    h = onnx.helper
    e = _graph_file(tmp_path / "e.onnx", [h.make_node("Einsum", ["input", "input"], ["output"],
                                                      equation="ij,ij->ij")])
    f = _graph_file(tmp_path / "f.onnx", [h.make_node("Relu", ["nowhere"], ["output"])])
    g = tmp_path / "g.onnx"
    g.write_bytes(b"")
    for _, load, err in _loaders():
        with pytest.raises(err, match=r"ONNX ops \['Einsum'\] are not supported; supported"):
            load(e)
        with pytest.raises(err, match="reads 'nowhere' before any node writes it"):
            load(f)
        with pytest.raises(err, match="not an ONNX model"):
            load(g)
    proto = onnx.load(e)
    proto.opset_import[0].version = 9
    e.write_bytes(proto.SerializeToString())
    for _, load, err in _loaders():
        with pytest.raises(err, match="opset 9 is outside"):
            load(e)


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang("a load took over 20 s")


def _mutants(blob, proto, rng, n):
    """Truncations, bit flips, and protos with rewritten dims / attributes / versions."""
    out = []
    for _ in range(n // 4):
        out.append(blob[:int(rng.integers(0, len(blob)))])
    for _ in range(n // 2):
        data = bytearray(blob)
        for pos in rng.integers(0, len(data), rng.integers(1, 4)):
            data[pos] ^= 1 << int(rng.integers(0, 8))
        out.append(bytes(data))
    big = [0, 1, 2, 3, 7, -1, 2**31, 2**40, -(2**62)]
    for _ in range(n - len(out)):
        p = type(proto)()
        p.CopyFrom(proto)
        kind = rng.integers(0, 4)
        if kind == 0 and len(p.graph.initializer):
            t = p.graph.initializer[int(rng.integers(0, len(p.graph.initializer)))]
            dims = list(t.dims) or [1]
            dims[int(rng.integers(0, len(dims)))] = int(rng.choice(big))
            del t.dims[:]
            t.dims.extend(dims)
        elif kind == 1:
            attrs = [a for n_ in p.graph.node for a in n_.attribute if a.ints or a.type == 2]
            if attrs:
                a = attrs[int(rng.integers(0, len(attrs)))]
                if a.ints:
                    a.ints[int(rng.integers(0, len(a.ints)))] = int(rng.choice(big))
                else:
                    a.i = int(rng.choice(big))
        elif kind == 2:
            d = p.graph.input[0].type.tensor_type.shape.dim
            d[int(rng.integers(1, len(d)))].dim_value = int(rng.choice(big[:6]))
        else:
            p.ir_version = int(rng.choice([0, 3, 8, 99]))
            p.opset_import[0].version = int(rng.choice([1, 13, 17, 30]))
        out.append(p.SerializeToString())
    return out


def test_fuzzed_files_raise_only_model_format_error(tmp_path):
    rng = np.random.default_rng(4)
    outcomes = {"loaded": 0, "refused": 0}
    old = signal.signal(signal.SIGALRM, _alarm)
    tracemalloc.start()
    try:
        for i, (m, shape) in enumerate(_small_models()):
            path = tmp_path / f"m{i}.onnx"
            io.export_onnx(m, path, input_shape=shape)
            blob = path.read_bytes()
            for j, data in enumerate(_mutants(blob, onnx.load(path), rng, 80)):
                bad = tmp_path / f"f{i}_{j}.onnx"
                bad.write_bytes(data)
                for name, load, err in _loaders():
                    signal.alarm(20)
                    try:
                        load(bad)
                        outcomes["loaded"] += 1
                    except err:
                        outcomes["refused"] += 1
                    finally:
                        signal.alarm(0)
                bad.unlink()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        signal.signal(signal.SIGALRM, old)
    assert outcomes["refused"] > 50 and outcomes["loaded"] > 10, outcomes
    assert peak < 64 * 2**20, peak


# ------------------------------------------------------------ the protobuf reader's oracle ---

def test_tensor_decoding_matches_onnx_numpy_helper(tmp_path):
    """runtime.py's own protobuf reader against the onnx package: every dtype, raw and typed
    storage, empty and scalar shapes, negative int64s; values and shapes equal exactly."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    dtypes = {1: np.float32, 11: np.float64, 7: np.int64, 6: np.int32, 3: np.int8,
              2: np.uint8, 9: np.bool_, 10: np.float16}

    @settings(deadline=None)
    @given(st.sampled_from(sorted(dtypes)), st.lists(st.integers(0, 4), max_size=3),
           st.booleans(), st.integers(0, 2**32 - 1))
    def check(code, dims, raw, seed):
        rng = np.random.default_rng(seed)
        n = int(np.prod(dims))
        dt = np.dtype(dtypes[code])
        if dt.kind == "f":
            vals = (rng.standard_normal(n) * 1e3).astype(dt)
        elif dt.kind == "b":
            vals = rng.integers(0, 2, n).astype(dt)
        else:
            info = np.iinfo(dt)
            vals = rng.integers(info.min, info.max, n, dtype=np.int64, endpoint=True).astype(dt)
        t = onnx.numpy_helper.from_array(vals.reshape(dims), "t") if raw else \
            onnx.helper.make_tensor("t", code, dims, vals.tolist() if code != 10 else vals)
        path = _graph_file(tmp_path / "t.onnx",
                           [onnx.helper.make_node("Identity", ["input"], ["output"])], [t])
        got = runtime.read_onnx(path)["graph"]["inits"]["t"]
        want = onnx.numpy_helper.to_array(onnx.load(path).graph.initializer[0])
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)

    check()


def _recurrent_file(path, kind, direction, layout, weights, states, dims):
    h = onnx.helper
    names = ["h0", "c0"][:len(states)]
    inits = [onnx.numpy_helper.from_array(a, n) for n, a in zip(("W", "R", "B"), weights)]
    inits += [onnx.numpy_helper.from_array(a, n) for n, a in zip(names, states)]
    attrs = {"hidden_size": weights[1].shape[2], "direction": direction, "layout": layout}
    if kind == "GRU":
        attrs["linear_before_reset"] = 1
    outs = ["output", "h_n", "c_n"][:1 + len(states)]
    node = h.make_node(kind, ["input", "W", "R", "B", "", *names], outs, **attrs)
    graph = h.make_graph([node], "g", [h.make_tensor_value_info("input", 1, dims)],
                         [h.make_tensor_value_info(o, 1, None) for o in outs],
                         initializer=inits)
    proto = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)], ir_version=8)
    path.write_bytes(proto.SerializeToString())
    return path


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_recurrent_directions_layouts_and_states_match_onnxruntime(tmp_path, kind):
    """Hand-built ONNX recurrent nodes (forward, reverse, bidirectional, with initial states):
    runtime.py and load_onnx agree with onnxruntime on every output; the batch-major layout 1
    (which onnxruntime does not run) gives the same values transposed."""
    ort = pytest.importorskip("onnxruntime")
    G, H, F, T, N = {"LSTM": 4, "GRU": 3, "RNN": 1}[kind], 3, 2, 5, 4
    rng = np.random.default_rng(11)
    n_states = 2 if kind == "LSTM" else 1
    for direction in ("forward", "reverse", "bidirectional"):
        D = 2 if direction == "bidirectional" else 1
        weights = [rng.standard_normal(s).astype(np.float32) * 0.5
                   for s in ((D, G * H, F), (D, G * H, H), (D, 2 * G * H))]
        states = [rng.standard_normal((D, N, H)).astype(np.float32) for _ in range(n_states)]
        x = rng.standard_normal((T, N, F)).astype(np.float32)
        p0 = _recurrent_file(tmp_path / f"{direction}0.onnx", kind, direction, 0, weights,
                             states, [T, N, F])
        want = ort.InferenceSession(str(p0), providers=["CPUExecutionProvider"]) \
            .run(None, {"input": x})
        p1 = _recurrent_file(tmp_path / f"{direction}1.onnx", kind, direction, 1, weights,
                             [s.swapaxes(0, 1) for s in states], [N, T, F])
        for path, xin, back in ((p0, x, lambda i, v: v),
                                (p1, x.swapaxes(0, 1),
                                 lambda i, v: v.transpose(1, 2, 0, 3) if i == 0
                                 else v.swapaxes(0, 1))):
            for got in (runtime.load(path).run(xin),
                        [v.data for v in io.load_onnx(path).forward_all(xin)]):
                assert len(got) == 1 + n_states
                for i, (g_, w_) in enumerate(zip(got, want)):
                    np.testing.assert_allclose(back(i, g_), w_, rtol=0, atol=1e-5)


def test_pytorch_stacked_bidirectional_recurrent_import(tmp_path):
    torch = _torch()
    torch.manual_seed(3)
    x = torch.randn(3, 6, 4)
    for tm in (torch.nn.LSTM(4, 5, num_layers=2, bidirectional=True, batch_first=True),
               torch.nn.GRU(4, 5, bidirectional=True)):
        import warnings

        path = tmp_path / f"{type(tm).__name__}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(tm, (x,), str(path), dynamo=False, input_names=["input"],
                              opset_version=17, dynamic_axes={"input": {0: "a", 1: "b"}})
        with torch.no_grad():
            out, st = tm(x)
        want = [out] + (list(st) if isinstance(st, tuple) else [st])
        for got in ([v.data for v in io.load_onnx(path).forward_all(x.numpy())],
                    runtime.load(path).run(x.numpy())):
            for g_, w_ in zip(got, want):
                np.testing.assert_allclose(g_, w_.numpy(), rtol=0, atol=1e-5)
