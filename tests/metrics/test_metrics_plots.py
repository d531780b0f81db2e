"""Plots write valid, non-empty PNGs; a missing matplotlib names the install line."""

import builtins
import struct

import numpy as np
import pytest

from tinygrad_lite import metrics as M

pytest.importorskip("matplotlib")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, "not a PNG file"
    assert data[12:16] == b"IHDR"
    w, h = struct.unpack(">II", data[16:24])
    assert len(data) > 1000
    return w, h


def _not_blank(path):
    from matplotlib import image
    img = image.imread(path)
    assert img.std() > 0.01, "image is a single colour"


def test_confusion_matrix_png(tmp_path):
    cm = M.confusion_matrix([0, 1, 2, 2, 1], [0, 2, 2, 2, 1])
    out = M.plot_confusion_matrix(cm, ["a", "b", "c"], tmp_path / "sub" / "cm.png")
    w, h = _png_size(out)
    assert w > 100 and h > 100
    _not_blank(out)
    norm = M.confusion_matrix([0, 1, 1], [0, 1, 0], normalize="true")
    _png_size(M.plot_confusion_matrix(norm, None, tmp_path / "cmn.png"))
    with pytest.raises(ValueError, match="square"):
        M.plot_confusion_matrix(np.zeros((2, 3)), None, tmp_path / "x.png")
    with pytest.raises(ValueError, match="labels"):
        M.plot_confusion_matrix(cm, ["a"], tmp_path / "x.png")


def test_history_png(tmp_path):
    hist = {"loss": [1.0, 0.6, 0.4], "val_loss": [1.1, 0.8, 0.7],
            "accuracy": [0.5, 0.7, 0.8], "val_accuracy": [0.45, 0.6, 0.7], "lr": [1e-3] * 3}
    out = M.plot_history(hist, tmp_path / "curves.png")
    _png_size(out)
    _not_blank(out)

    class History:
        def __init__(self):
            self.history = {"loss": [1.0, 0.5]}
    _png_size(M.plot_history(History(), tmp_path / "c2.png"))
    with pytest.raises(ValueError, match="per-epoch"):
        M.plot_history({}, tmp_path / "c3.png")


@pytest.mark.parametrize("shape", [(6, 64), (6, 8, 8), (6, 1, 8, 8), (6, 8, 8, 3)])
def test_misclassified_png(tmp_path, shape):
    rng = np.random.default_rng(0)
    images = rng.random(shape)
    y_true = np.array([0, 1, 2, 3, 4, 5])
    y_pred = np.array([0, 2, 2, 1, 4, 0])
    out = M.plot_misclassified(images, y_true, y_pred, tmp_path / "wrong.png")
    _png_size(out)
    _not_blank(out)


def test_misclassified_none_wrong_and_errors(tmp_path):
    _png_size(M.plot_misclassified(np.zeros((2, 4, 4)), [1, 2], [1, 2], tmp_path / "ok.png"))
    with pytest.raises(ValueError, match="different lengths"):
        M.plot_misclassified(np.zeros((2, 4, 4)), [1, 2, 3], [1, 2], tmp_path / "x.png")
    with pytest.raises(ValueError, match="square"):
        M.plot_misclassified(np.zeros((2, 5)), [1, 2], [2, 1], tmp_path / "x.png")


def test_missing_matplotlib_names_the_extra(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *a, **kw):
        if name.startswith("matplotlib"):
            raise ImportError("no matplotlib")
        return real_import(name, *a, **kw)
    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=r"pip install tinygrad_lite\[plot\]"):
        M.plot_history({"loss": [1.0]}, tmp_path / "c.png")


def test_import_is_light():
    import subprocess
    import sys
    code = ("import sys, tinygrad_lite.metrics, tinygrad_lite.data; "
            "print(any(m.split('.')[0] in ('matplotlib', 'sklearn') for m in sys.modules))")
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=root)
    assert out.stdout.strip() == "False"
