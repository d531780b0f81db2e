"""Post-training int8 quantization (quantize.py, QuantizedDense/QuantizedConv2D) and the digits
table of the README: file size, peak memory and accuracy at 0/50/80/90% sparsity and with int8,
all measured here."""

import os
import tracemalloc
import zlib

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import io, quantize
from tinygrad_lite.data import StandardScaler, load_digits, train_test_split
from tinygrad_lite.layers import Conv2D, Dense, Flatten, MaxPooling2D, QuantizedConv2D
from tinygrad_lite.layers import QuantizedDense
from tinygrad_lite.models import Sequential
from tinygrad_lite import nn
from tinygrad_lite.nn import functional as F
from tinygrad_lite.nn.utils import prune

RNG = np.random.default_rng(0)


def test_per_channel_weights_round_to_the_nearest_step():
    w = RNG.standard_normal((7, 13)).astype(np.float32) * RNG.uniform(0.01, 5, (7, 1))
    w[3] = 0.0
    q, s = quantize.quantize_per_channel(w)
    assert q.dtype == np.int8 and s.dtype == np.float32 and s.shape == (7,)
    assert s[3] == 1.0 and not q[3].any()
    live = [i for i in range(7) if i != 3]
    assert (np.abs(q[live]).max(axis=1) == 127).all()          # the full range is used
    err = np.abs(w - q * s[:, None].astype(np.float64))
    assert (err <= s[:, None] / 2 + 1e-7).all()


def _float_ref_dense(layer, x):
    """The dequantized Dense in NumPy, from the stored int8 weights and scales."""
    sx = np.float32(layer.input_scale.numpy()[0])
    xq = np.clip(np.rint(x * np.float32(1 / float(sx))), -127, 127).astype(np.int64)
    acc = xq @ layer.kernel_q.numpy().astype(np.int64).T
    return acc.astype(np.float32) * (sx * layer.kernel_scale.numpy()) + layer.bias.numpy()


def _cnn():
    tl.manual_seed(0)
    m = Sequential([Conv2D(5, 3, strides=2, padding="same", activation="relu",
                           input_shape=(11, 11, 3)),
                    Conv2D(4, 2, dilation_rate=2), MaxPooling2D(2), Flatten(),
                    Dense(7, activation="softmax")])
    m.build((11, 11, 3))
    return m, RNG.standard_normal((23, 11, 11, 3)).astype(np.float32)


def test_quantized_layers_match_the_int_reference_and_the_float_model():
    m, x = _cnn()
    q = quantize.quantize_model(m, x)
    assert [type(layer).__name__ for layer in q.layers] == [
        "QuantizedConv2D", "QuantizedConv2D", "MaxPooling2D", "Flatten", "QuantizedDense"]
    # the last layer against a NumPy int64 reference of the same formula
    h = x
    for layer in q.layers[:-1]:
        h = layer(tl.Tensor(h)).numpy()
    last = q.layers[-1]
    logits = _float_ref_dense(last, h)
    e = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(last(tl.Tensor(h)).numpy(), e / e.sum(1, keepdims=True),
                               rtol=1e-6, atol=1e-7)
    # a conv layer against im2col done by hand in float64 from the dequantized weights
    conv = q.layers[1]
    h0 = q.layers[0](tl.Tensor(x)).numpy()                       # (N, 6, 6, 5)
    sx = float(conv.input_scale.numpy()[0])
    xq = np.clip(np.rint(h0 * np.float32(1 / sx)), -127, 127)
    wq = conv.kernel_q.numpy().reshape(4, 5, 2, 2).astype(np.float64)
    out = np.zeros((23, 4, 4, 4))
    for i in range(4):
        for j in range(4):
            patch = xq[:, i:i + 3:2, j:j + 3:2, :]               # dilation 2, kernel 2
            out[:, i, j, :] = np.einsum("nabc,fcab->nf", patch, wq)
    want = out * sx * conv.kernel_scale.numpy() + conv.bias.numpy()
    np.testing.assert_allclose(conv(tl.Tensor(h0)).numpy(), want, rtol=1e-5, atol=1e-5)
    # close to the float model
    p, pq = m.predict(x), q.predict(x)
    assert np.abs(p - pq).max() < 0.05 and (p.argmax(1) == pq.argmax(1)).mean() >= 0.9


def test_kernel_and_numpy_fallback_give_identical_outputs(monkeypatch):
    m, x = _cnn()
    q = quantize.quantize_model(m, x)
    with_default = q.predict(x)
    monkeypatch.setattr(quantize, "_KERNELS", [None])           # the NumPy path
    np.testing.assert_array_equal(q.predict(x), with_default)


@pytest.mark.parametrize("ext", ["safetensors", "npz", "h5"])
def test_quantized_model_round_trips(tmp_path, ext):
    if ext == "h5":
        pytest.importorskip("h5py", reason="the [h5] extra (h5py) is not installed")
    m, x = _cnn()
    q = quantize.quantize_model(m, x)
    q.save(tmp_path / f"q.{ext}", label_names=list("abcdefg"))
    back = io.load_model(tmp_path / f"q.{ext}")
    np.testing.assert_array_equal(back.predict(x), q.predict(x))
    assert back.label_names == list("abcdefg")
    assert back.layers[0].kernel_q.numpy().dtype == np.int8
    assert isinstance(back.layers[-1], QuantizedDense)
    assert isinstance(back.layers[0], QuantizedConv2D)


# ------------------------------------------------------------------ the digits table ---

def _digits_model():
    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X.astype(np.float32), y, test_size=0.25,
                                          random_state=0, stratify=y)
    pre = StandardScaler().fit(Xtr)
    Xtr, Xte = pre.transform(Xtr).astype(np.float32), pre.transform(Xte).astype(np.float32)
    tl.manual_seed(0)
    m = Sequential([Dense(128, activation="relu", input_shape=(64,)),
                    Dense(64, activation="relu"), Dense(10, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy")
    m.fit(Xtr, ytr, epochs=12, batch_size=64, verbose=0)
    return m, Xtr, ytr, Xte, yte


def _measure(model, path, Xte, yte):
    """file bytes, zlib-compressed file bytes, bytes with ``sparse=True``, peak traced bytes of
    load + predict, accuracy (of the sparse file's model, checked equal to the plain one's)."""
    model.save(path)
    sparse_path = str(path).replace(".safetensors", ".sparse.safetensors")
    model.save(sparse_path, sparse=True)
    accs = []
    for p in (path, sparse_path):
        tracemalloc.start()
        loaded = io.load_model(p)
        accs.append(float((loaded.predict(Xte).argmax(1) == yte).mean()))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert accs[0] == accs[1]
    blob = open(path, "rb").read()
    return len(blob), len(zlib.compress(blob, 6)), os.path.getsize(sparse_path), peak, accs[0]


def test_digits_pruning_and_int8_table(tmp_path):
    m, Xtr, ytr, Xte, yte = _digits_model()
    rows = {"dense": _measure(m, tmp_path / "dense.safetensors", Xte, yte)}
    state = m.weights_dict()
    for amount in (0.5, 0.8, 0.9):
        # nn.utils.prune works on nn modules: the trained weights go into nn.Linear layers
        # (weight = kernel.T), are pruned globally, fine-tuned with the masks in the forward,
        # made permanent, and come back into the Keras-style model to be saved
        net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(),
                            nn.Linear(64, 10))
        lin = [net[0], net[2], net[4]]
        for i, layer in enumerate(lin):
            layer.weight.data[...] = state[f"layers.{i}.kernel"].T
            layer.bias.data[...] = state[f"layers.{i}.bias"]
        pairs = [(layer, "weight") for layer in lin]
        prune.global_unstructured(pairs, amount=amount)
        opt = tl.optim.Adam(net.parameters(), lr=1e-3)
        gen = np.random.default_rng(1)
        for _ in range(3):
            order = gen.permutation(len(Xtr))
            for s in range(0, len(order), 64):
                b = order[s:s + 64]
                opt.zero_grad()
                F.cross_entropy(net(tl.Tensor(Xtr[b])), tl.Tensor(ytr[b])).backward()
                opt.step()
        for layer, name in pairs:
            prune.remove(layer, name)
        p = Sequential.from_config(m.get_config())
        p.set_weights_dict({k: v for i, layer in enumerate(lin) for k, v in (
            (f"layers.{i}.kernel", layer.weight.numpy().T), (f"layers.{i}.bias",
                                                              layer.bias.numpy()))})
        kernels = [layer.kernel.numpy() for layer in p.layers]
        zeros = sum(int((k == 0).sum()) for k in kernels) / sum(k.size for k in kernels)
        assert abs(zeros - amount) < 0.01, (amount, zeros)
        rows[f"{int(amount * 100)}% pruned"] = _measure(p, tmp_path / f"p{amount}.safetensors",
                                                        Xte, yte)
    q = quantize.quantize_model(m, Xtr[:300])
    rows["int8"] = _measure(q, tmp_path / "int8.safetensors", Xte, yte)
    print("\n| model | file (bytes) | zlib of it | `sparse=True` file | peak load+predict (KiB) "
          "| accuracy |")
    print("|---|---|---|---|---|---|")
    for name, (size, zsize, ssize, peak, acc) in rows.items():
        print(f"| {name} | {size} | {zsize} | {ssize} | {peak / 1024:.0f} | {100 * acc:.2f}% |")
    base = rows["dense"][4]
    assert base > 0.95
    assert abs(rows["50% pruned"][4] - base) <= 0.01
    assert abs(rows["int8"][4] - base) <= 0.01
    assert rows["int8"][0] < 0.35 * rows["dense"][0]             # int8 kernels: ~1/4 the bytes
    assert rows["90% pruned"][2] < 0.3 * rows["dense"][0]         # bitmask + non-zero values
    assert rows["50% pruned"][2] < 0.8 * rows["dense"][0]
