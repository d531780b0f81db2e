"""The main job: `python -m tinygrad_lite train` as a subprocess, its outputs, evaluate, predict."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "tinygrad_lite", *args], capture_output=True,
                          text=True, env=env, timeout=300, cwd=cwd)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    r = run("train", "--epochs", "3", "--out", str(out), "--seed", "0")
    assert r.returncode == 0, r.stderr[-2000:]
    return out, r


def test_train_outputs_exist_and_parse(run_dir):
    out, r = run_dir
    assert "validation: loss=" in r.stdout and "macro avg" in r.stdout
    assert "Epoch 3/3" in r.stderr                      # the progress bar
    report = json.loads((out / "report.json").read_text())
    assert report["epochs_run"] == 3 and report["n_train"] + report["n_val"] == 1797
    assert len(report["history"]["val_accuracy"]) == 3
    assert 0.5 < report["validation"]["accuracy"] <= 1.0
    assert np.array(report["confusion_matrix"]).sum() == report["n_val"]
    for png in ("confusion_matrix.png", "curves.png"):
        data = (out / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
        import matplotlib.image

        assert matplotlib.image.imread(out / png).ndim == 3
    from tinygrad_lite.io import load_model

    m = load_model(out / "model.safetensors")
    assert m.preprocessing is not None and m.label_names == [str(i) for i in range(10)]


def test_evaluate_and_predict(run_dir, tmp_path):
    out, _ = run_dir
    report = json.loads((out / "report.json").read_text())
    r = run("evaluate", str(out / "model.safetensors"), "--json", str(tmp_path / "e.json"))
    assert r.returncode == 0, r.stderr
    ev = json.loads((tmp_path / "e.json").read_text())
    assert ev["accuracy"] == pytest.approx(report["validation"]["accuracy"])
    from tinygrad_lite.data import load_digits

    X, y = load_digits(return_X_y=True)
    np.save(tmp_path / "x.npy", X[:20])
    r = run("predict", str(out / "model.safetensors"), str(tmp_path / "x.npy"))
    assert r.returncode == 0, r.stderr
    rows = r.stdout.strip().splitlines()
    assert rows[0] == "index,label,probability" and len(rows) == 21
    pred = np.array([int(line.split(",")[1]) for line in rows[1:]])
    assert (pred == y[:20]).mean() >= 0.7


@pytest.mark.parametrize("args, msg", [
    (["train", "--epochs", "0"], "--epochs must be >= 1"),
    (["train", "--dataset", "mnist"], "--data-dir"),
    (["evaluate", "nope.safetensors"], "error"),
    (["predict", "m.pb", "x.npy"], "ONNX"),
])
def test_errors_are_one_line(args, msg, tmp_path):
    r = run(*args, cwd=tmp_path)
    assert r.returncode == 2
    assert msg in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "runs").exists(), "a failed run must not leave an output folder"


def test_cnn_and_npz_format_in_process(tmp_path, capsys):
    from tinygrad_lite.cli import main

    assert main(["train", "--model", "cnn", "--epochs", "1", "--quiet", "--format", "npz",
                 "--out", str(tmp_path)]) == 0
    assert (tmp_path / "model.npz").exists()
    assert "validation: loss=" in capsys.readouterr().out


def test_out_on_existing_file_and_os_errors_are_one_line(tmp_path):
    f = tmp_path / "taken.npy"
    f.write_bytes(b"x")
    r = run("train", "--epochs", "1", "--quiet", "--out", str(f))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--out must be a folder" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    from tinygrad_lite.cli import main

    blocked = tmp_path / "file"
    blocked.write_bytes(b"x")
    # an OSError from deeper down (a folder under a file) is one line too, status 2
    assert main(["train", "--epochs", "1", "--quiet", "--out", str(blocked / "sub")]) == 2


def _write_idx(path, arr):
    import struct

    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    path.write_bytes(struct.pack(">BBBB", 0, 0, 0x08, arr.ndim)
                     + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes())


def test_evaluate_rebuilds_the_held_out_rows_after_clean(tmp_path, capsys):
    """clean() drops duplicate rows before training splits; evaluate must split the same rows."""
    from tinygrad_lite.cli import main

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (150, 6, 6))
    labels = rng.integers(0, 3, 150)
    images[100:130], labels[100:130] = images[:30], labels[:30]      # 30 exact duplicates
    _write_idx(tmp_path / "train-images-idx3-ubyte", images)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", labels)
    out = tmp_path / "run"
    assert main(["train", "--dataset", "mnist", "--data-dir", str(tmp_path), "--epochs", "2",
                 "--quiet", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["clean"]["n_rows_out"] < 150                     # clean() dropped rows
    assert main(["evaluate", str(out / "model.safetensors"), "--data-dir", str(tmp_path),
                 "--json", str(tmp_path / "e.json")]) == 0
    ev = json.loads((tmp_path / "e.json").read_text())
    assert ev["samples"] == report["n_val"]
    assert ev["accuracy"] == pytest.approx(report["validation"]["accuracy"])
    assert ev["loss"] == pytest.approx(report["validation"]["loss"], rel=1e-6)
    # the data changed since training: refused instead of evaluating other rows
    _write_idx(tmp_path / "train-images-idx3-ubyte", 255 - images)
    capsys.readouterr()
    assert main(["evaluate", str(out / "model.safetensors"), "--data-dir", str(tmp_path)]) == 2
    assert "held-out rows" in capsys.readouterr().err


def test_evaluate_json_confusion_matrix_has_every_class(run_dir, tmp_path):
    out, _ = run_dir
    from tinygrad_lite.data import load_digits

    X, y = load_digits(return_X_y=True)
    keep = y < 3                                  # only classes 0, 1, 2 present
    np.savez(tmp_path / "d.npz", X=X[keep][:60], y=y[keep][:60])
    r = run("evaluate", str(out / "model.safetensors"), "--data", str(tmp_path / "d.npz"),
            "--json", str(tmp_path / "e.json"))
    assert r.returncode == 0, r.stderr
    cm = np.array(json.loads((tmp_path / "e.json").read_text())["confusion_matrix"])
    assert cm.shape == (10, 10) and cm.sum() == 60


def test_bench_runs_the_training_suite_and_checks_it(tmp_path):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "tinygrad_lite", "bench", "training", "--only", "tiny",
           "--repeats", "1", "--json", str(out)]
    # from outside the checkout: the suites ship in tinygrad_lite/bench/, not benchmarks/
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "tiny (a*b).sum() fwd+bwd" in r.stdout
    res = json.loads(out.read_text())["results"][0]
    assert res["times"]["tinygrad_lite"] > 0


def test_bench_rejects_an_unknown_suite():
    r = run("bench", "nope")
    assert r.returncode == 2 and "invalid choice: 'nope'" in r.stderr
