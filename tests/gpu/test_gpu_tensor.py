"""device="cuda" end to end on a real GPU: tensors, autograd, modules, optimizers, fit, model
files and the CLI, each checked against the same computation on the CPU."""

import subprocess
import sys

import numpy as np
import pytest

import tinygrad_lite as tl

from ._gpu import pytestmark, rng  # noqa: F401  (pytestmark: skip without a GPU)


def test_tensor_moves_copies_and_refuses_implicit_conversion():
    import cupy

    a = rng(1).standard_normal((3, 4)).astype(np.float32)
    g = tl.Tensor(a, device="cuda")
    assert isinstance(g.data, cupy.ndarray) and g.device == "cuda" and g.cuda() is g
    with pytest.raises(TypeError):
        np.asarray(g)
    host = g.numpy()
    np.testing.assert_array_equal(host, a)
    host[0, 0] = 123.0
    assert g.numpy()[0, 0] == a[0, 0]
    c = g.cpu()
    assert c.device == "cpu" and isinstance(c.data, np.ndarray)
    np.testing.assert_array_equal(c.to("cuda").numpy(), a)
    with pytest.raises(tl.DeviceError, match="cpu.*cuda|cuda.*cpu"):
        g + tl.Tensor(a)


def test_autograd_on_the_gpu_matches_the_cpu():
    r = rng(2)
    x = r.standard_normal((5, 3, 9, 9))
    w = r.standard_normal((4, 3, 3, 3))
    lin = r.standard_normal((4 * 4 * 4, 7))
    up = r.standard_normal((5, 7))

    def run(device):
        tx = tl.Tensor(x, device=device, requires_grad=True)
        tw = tl.Tensor(w, device=device, requires_grad=True)
        tlin = tl.Tensor(lin, device=device, requires_grad=True)
        h = tl.nn.functional.conv2d(tx, tw, padding=1).relu()
        h = tl.nn.functional.max_pool2d(h, 2).reshape(5, -1) @ tlin
        loss = (h.tanh() * tl.Tensor(up, device=device)).sum()
        loss.backward()
        return [t.grad.numpy() for t in (tx, tw, tlin)] + [loss.numpy()]

    for g, c in zip(run("cuda"), run("cpu")):
        np.testing.assert_allclose(g, c, rtol=1e-9, atol=1e-9)


def test_module_optimizer_fit_predict_and_model_files_on_the_gpu(tmp_path):
    from tinygrad_lite.io import load_model, save_model
    from tinygrad_lite.layers import Dense
    from tinygrad_lite.models import Sequential

    r = rng(3)
    X = r.standard_normal((300, 20)).astype(np.float32)
    y = (X[:, :3].sum(axis=1) > 0).astype(np.int64)

    def train(device):
        tl.manual_seed(0)
        m = Sequential([Dense(16, activation="relu", input_shape=(20,)),
                        Dense(2, activation="softmax")])
        m.build()
        m.to(device)
        opt = tl.optim.Adam(list(m.parameters()), lr=1e-2)
        m.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        h = m.fit(X, y, epochs=2, batch_size=32, seed=0, verbose=0)
        return m, opt, h.history["loss"]

    gm, gopt, gloss = train("cuda")
    cm, _, closs = train("cpu")
    assert {p.device for p in gm.parameters()} == {"cuda"}
    states = [v for s in gopt.state.values() for v in s.values() if hasattr(v, "shape")]
    assert states and all(type(v).__module__.startswith("cupy") for v in states)
    np.testing.assert_allclose(gloss, closs, rtol=1e-4)
    gp, cp_ = gm.predict(X), cm.predict(X)
    assert isinstance(gp, np.ndarray)
    np.testing.assert_allclose(gp, cp_, rtol=1e-4, atol=1e-6)
    assert abs(gm.evaluate(X, y, verbose=0)[0] - cm.evaluate(X, y, verbose=0)[0]) < 1e-4
    path = tmp_path / "gpu.safetensors"
    save_model(gm, str(path))
    back = load_model(str(path))                                   # loads on the CPU
    assert {p.device for p in back.parameters()} == {"cpu"}
    np.testing.assert_allclose(back.predict(X), gp, rtol=1e-5, atol=1e-6)
    back.to("cuda")                                                # and back to the GPU
    np.testing.assert_allclose(back.predict(X), gp, rtol=1e-5, atol=1e-6)


def test_cli_trains_on_the_gpu(tmp_path):
    out = subprocess.run([sys.executable, "-m", "tinygrad_lite", "train", "--device", "cuda",
                          "--epochs", "1", "--quiet", "--out", str(tmp_path / "run")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "validation: loss=" in out.stdout
