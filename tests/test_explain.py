"""explain.py: saliency, integrated gradients (the completeness check) and SmoothGrad on an
nn Module and a Keras-style Sequential; the CLI commands `trace` and `explain`."""

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import explain, nn
from tinygrad_lite.cli import main


def _models():
    tl.manual_seed(0)
    torch_style = nn.Sequential(nn.Linear(8, 6), nn.Tanh(), nn.Linear(6, 3))
    from tinygrad_lite.layers import Dense
    from tinygrad_lite.models import Sequential

    keras_style = Sequential([Dense(6, activation="relu", input_shape=(8,)),
                              Dense(3, activation="softmax")])
    return torch_style, keras_style


X = np.random.default_rng(1).random((3, 8)).astype("f")


@pytest.mark.parametrize("which", [0, 1])
def test_integrated_gradients_completeness(which):
    model = _models()[which]
    attr, check = explain.integrated_gradients(model, X, steps=64, return_check=True)
    assert attr.shape == X.shape
    np.testing.assert_allclose(check["total"], attr.sum(-1))
    assert np.all(np.abs(check["delta"]) > 1e-3)            # a real difference to explain
    np.testing.assert_allclose(check["total"], check["delta"], rtol=2e-2, atol=1e-4)
    # the quadrature converges: 4 steps leave a bigger gap than 64 on the smooth model
    if which == 0:
        _, coarse = explain.integrated_gradients(model, X, steps=2, return_check=True)
        assert np.abs(coarse["gap"]).max() > np.abs(check["gap"]).max()


def test_saliency_is_the_gradient_of_the_target_score():
    model, _ = _models()
    s = explain.saliency(model, X, target=1)
    eps = 1e-2
    for j in (0, 5):
        xp, xm = X.copy(), X.copy()
        xp[:, j] += eps
        xm[:, j] -= eps
        fd = (explain.scores(model, xp, 1)[0] - explain.scores(model, xm, 1)[0]) / (2 * eps)
        np.testing.assert_allclose(s[:, j], np.abs(fd), rtol=2e-2, atol=1e-4)
    assert all(p.grad is None for p in model.parameters())  # tl.grad: no .grad touched
    with pytest.raises(ValueError, match="target must lie in"):
        explain.saliency(model, X, target=3)


def test_smoothgrad_averages_noisy_gradients():
    model, keras = _models()
    g0 = explain.smoothgrad(model, X, samples=1, sigma=0.0, absolute=False)
    np.testing.assert_allclose(g0, explain.gradients(model, X)[0], rtol=1e-6)
    g = explain.smoothgrad(keras, X, samples=8)
    assert g.shape == X.shape and np.all(g >= 0)
    assert not np.allclose(g, explain.saliency(keras, X))


def test_cli_trace_prints_both_examples(capsys):
    assert main(["trace"]) == 0
    out = capsys.readouterr().out
    assert "One-neuron logistic regression" in out and "2-layer MLP" in out
    assert "gradients summed: from step 6 (log) + from step 9 (sub)" not in out  # table form
    assert "sum:   dL/dh = from step 6 (log) + from step 9 (sub)" in out
    assert "SGD step, theta <- theta - 0.1 * grad" in out and "leaf 0.weight (4, 3)" in out


def test_cli_trace_formats(tmp_path, capsys):
    assert main(["trace", "--example", "logistic", "--format", "markdown"]) == 0
    assert "| # | node | rule |" in capsys.readouterr().out
    out = tmp_path / "t.dot"
    assert main(["trace", "--example", "mlp", "--format", "dot", "--out", str(out)]) == 0
    assert out.read_text().startswith('digraph "trace"')


def test_cli_explain_writes_the_picture(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    run = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--out", str(run), "--quiet"]) == 0
    png = tmp_path / "why.png"
    assert main(["explain", str(run / "model.safetensors"), "--index", "7", "--steps", "16",
                 "--out", str(png)]) == 0
    out = capsys.readouterr().out
    assert "explain: sample 7: label 7" in out and "completeness" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["explain", str(run / "model.safetensors"), "--index", "-1"]) == 2
    assert "--index must lie in [0, 1797)" in capsys.readouterr().err
