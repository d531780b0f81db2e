"""tinygrad_lite/runtime.py: the one-file NumPy runtime loads saved models and predicts like the
library, in a process where tinygrad_lite cannot be imported.

Dense/activation/BatchNorm models: bitwise equal to ``model.predict`` on the NumPy backend (the
same NumPy calls in the same order) and within 1e-6 of the default Cython backend, whose GEMM sums
in another order (measured differences: one float32 ulp, ~6e-8). Convolutions: within 1e-6 of
both (einsum here, im2col + GEMM there)."""

import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import backends
from tinygrad_lite.data.preprocessing import MinMaxScaler, Pipeline, SimpleImputer, StandardScaler
from tinygrad_lite.layers import (
    Activation,
    AveragePooling2D,
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    MaxPooling2D,
    Reshape,
)
from tinygrad_lite.models import Sequential

def _predict_both(m, x):
    """(NumPy-backend outputs, default-backend outputs) of ``m.predict(x)``."""
    with backends.use("numpy"):
        ref = m.predict(x)
    return ref, m.predict(x)


def _check(got, m, x, bitwise=True):
    ref, default = _predict_both(m, x)
    assert got.dtype == np.float32 and got.shape == ref.shape
    if bitwise:
        np.testing.assert_array_equal(got, ref)
    else:
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)
    np.testing.assert_allclose(got, default, rtol=0, atol=1e-6)
    return ref


RUNTIME = os.path.join(os.path.dirname(tl.__file__), "runtime.py")


def _runtime():
    spec = importlib.util.spec_from_file_location("_tl_runtime_under_test", RUNTIME)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _mlp(acts=("relu", "tanh", "elu")):
    tl.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((80, 6)) * 3 + 1
    y = rng.integers(0, 3, 80)
    m = Sequential([Dense(12, activation=acts[0], input_shape=(6,)), BatchNormalization(),
                    Dropout(0.2), Dense(10, activation=acts[1]), Activation(acts[2]),
                    Dense(3, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy")
    scaler = MinMaxScaler().fit(x)
    m.fit(scaler.transform(x), y, epochs=2, batch_size=16, verbose=0)   # moving stats != 0/1
    return m, scaler, x


def test_only_numpy_and_stdlib_are_imported():
    import ast

    src = open(RUNTIME).read()
    imports = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):
            imports |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imports.add("." if node.level else node.module.split(".")[0])
    assert imports <= {"json", "math", "os", "struct", "zipfile", "numpy", "sys", "hashlib"}, \
        imports
    assert "import pickle" not in src and "allow_pickle=True" not in src


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_subprocess_without_tinygrad_lite_predicts_bitwise(tmp_path, suffix):
    m, scaler, x = _mlp()
    names = ["cat", "dog", "emu"]
    m.save(tmp_path / f"model{suffix}", preprocessing=scaler, label_names=names)
    np.save(tmp_path / "x.npy", x)
    app = tmp_path / "app"
    app.mkdir()
    shutil.copy(RUNTIME, app / "runtime.py")
    script = textwrap.dedent(f"""
        import sys

        class Block:                       # tinygrad_lite is installed in this venv: refuse it
            def find_spec(self, name, path=None, target=None):
                if name == "tinygrad_lite" or name.startswith("tinygrad_lite."):
                    raise ImportError("blocked: " + name)

        sys.meta_path.insert(0, Block())
        try:
            import tinygrad_lite  # noqa
            sys.exit("tinygrad_lite was importable")
        except ImportError:
            pass
        import numpy as np
        import runtime
        model = runtime.load({str(tmp_path / f"model{suffix}")!r})
        x = np.load({str(tmp_path / "x.npy")!r})
        np.save("p.npy", model.predict(x))
        np.save("labels.npy", model.predict_labels(x).astype("U8"))
        assert not [k for k in sys.modules if k.startswith("tinygrad_lite")]
        print("ok", runtime.__file__)
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(app)          # the project is not on the path
    r = subprocess.run([sys.executable, "-c", script], cwd=app, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ok " + str(app / "runtime.py"))
    want = _check(np.load(app / "p.npy"), m, scaler.transform(x))
    np.testing.assert_array_equal(np.load(app / "labels.npy"),
                                  np.asarray(names)[want.argmax(1)])


@pytest.mark.parametrize("acts", [("sigmoid", "softplus", "leaky_relu"),
                                  ("swish", "linear", "relu")])
def test_more_activations_bitwise(tmp_path, acts):
    m, scaler, x = _mlp(acts)
    m.save(tmp_path / "m.safetensors", preprocessing=scaler)
    got = _runtime().load(tmp_path / "m.safetensors").predict(x)
    _check(got, m, scaler.transform(x))


def test_gelu_within_1e6(tmp_path):   # erf: math.erf here, the library's own series there
    m, scaler, x = _mlp(("gelu", "gelu", "gelu"))
    m.save(tmp_path / "m.safetensors", preprocessing=scaler)
    got = _runtime().load(tmp_path / "m.safetensors").predict(x)
    _check(got, m, scaler.transform(x), bitwise=False)


def test_pipeline_preprocessing_and_single_row(tmp_path):
    m, _, x = _mlp()
    x = x.copy()
    x[3, 2] = np.nan
    pipe = Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]).fit(x)
    m.save(tmp_path / "m.npz", preprocessing=pipe)
    rt = _runtime().load(tmp_path / "m.npz")
    _check(rt.predict(x), m, pipe.transform(x))
    _check(rt.predict(x[3]), m, pipe.transform(x[3:4]))      # one row without a batch axis


def test_cnn_within_1e6(tmp_path):
    tl.manual_seed(1)
    rng = np.random.default_rng(1)
    x = rng.random((20, 64))
    m = Sequential([Reshape((8, 8, 1), input_shape=(64,)),
                    Conv2D(4, 3, padding="same", activation="relu"),
                    MaxPooling2D(2), Conv2D(5, (2, 3), strides=(1, 2), dilation_rate=1),
                    AveragePooling2D(2, strides=1, padding="same"), Flatten(),
                    Dense(4, activation="softmax")])
    m.build()
    m.save(tmp_path / "cnn.safetensors", label_names=list("abcd"))
    rt = _runtime().load(tmp_path / "cnn.safetensors")
    want = _check(rt.predict(x), m, x, bitwise=False)
    np.testing.assert_array_equal(rt.predict_labels(x), np.asarray(list("abcd"))[want.argmax(1)])


def test_bad_and_unsupported_files(tmp_path):
    rt = _runtime()
    m, scaler, x = _mlp()
    path = tmp_path / "m.safetensors"
    m.save(path)
    blob = path.read_bytes()
    for cut in (4, 100, len(blob) // 2, len(blob) - 1):
        (tmp_path / "t.safetensors").write_bytes(blob[:cut])
        with pytest.raises(rt.ModelFormatError, match="t.safetensors"):
            rt.load(tmp_path / "t.safetensors")
    (tmp_path / "t.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(rt.ModelFormatError, match="npz"):
        rt.load(tmp_path / "t.npz")
    m.save_weights(tmp_path / "w.safetensors")
    with pytest.raises(rt.ModelFormatError, match="without a Sequential architecture"):
        rt.load(tmp_path / "w.safetensors")
    emb = Sequential([Embedding(10, 4, input_shape=(3,)), Flatten(), Dense(2)])
    emb.build()
    emb.save(tmp_path / "e.safetensors")
    with pytest.raises(rt.ModelFormatError, match=r"Embedding.*supported: \["):
        rt.load(tmp_path / "e.safetensors")
    with pytest.raises(rt.ModelFormatError, match="unknown model file type"):
        rt.load(tmp_path / "m.pt")


def test_fuzzed_files_raise_only_model_format_error(tmp_path):
    """Bit flips and rewritten header bytes: the runtime loads the file (a flipped weight is still
    a model) or raises ModelFormatError, nothing else."""
    rt = _runtime()
    m, scaler, x = _mlp()
    for suffix in (".safetensors", ".npz"):
        path = tmp_path / f"m{suffix}"
        m.save(path, preprocessing=scaler, label_names=["a", "b", "c"])
        blob = path.read_bytes()
        rng = np.random.default_rng(0)
        outcomes = {"loaded": 0, "refused": 0}
        for i in range(150):
            data = bytearray(blob)
            # most flips land in the first 2 KB: the header / zip directory entries
            hi = 2048 if i % 3 else len(data)
            for pos in rng.integers(0, min(hi, len(data)), rng.integers(1, 4)):
                data[pos] ^= 1 << int(rng.integers(0, 8))
            bad = tmp_path / f"f{suffix}"
            bad.write_bytes(bytes(data))
            try:
                model = rt.load(bad)
                model.predict(x[:2])
                outcomes["loaded"] += 1
            except rt.ModelFormatError:
                outcomes["refused"] += 1
        assert outcomes["refused"] > 0, outcomes


def test_subprocess_without_tinygrad_lite_runs_exported_onnx(tmp_path):
    """runtime.py loads an exported ONNX file (its own protobuf reader, NumPy ops) in a process
    where tinygrad_lite cannot be imported, with the preprocessing and label names the export
    stored in the file's metadata; outputs within 1e-5 of the library's."""
    pytest.importorskip("onnx")
    from tinygrad_lite import io, nn

    m, scaler, x = _mlp()
    names = ["cat", "dog", "emu"]
    io.export_onnx(m, tmp_path / "mlp.onnx", preprocessing=scaler, label_names=names)
    tl.manual_seed(1)
    res = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(),
                        nn.Residual(nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.Tanh())),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(12, 2)).eval()
    io.export_onnx(res, tmp_path / "res.onnx", input_shape=(1, 4, 4))
    img = np.random.default_rng(2).standard_normal((5, 1, 4, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "img.npy", img)
    app = tmp_path / "app"
    app.mkdir()
    shutil.copy(RUNTIME, app / "runtime.py")
    script = textwrap.dedent(f"""
        import sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "tinygrad_lite" or name.startswith("tinygrad_lite."):
                    raise ImportError("blocked: " + name)

        sys.meta_path.insert(0, Block())
        import numpy as np
        import runtime
        model = runtime.load({str(tmp_path / "mlp.onnx")!r})
        x = np.load({str(tmp_path / "x.npy")!r})
        np.save("p.npy", model.predict(x))
        np.save("labels.npy", model.predict_labels(x).astype("U8"))
        res = runtime.load({str(tmp_path / "res.onnx")!r})
        np.save("r.npy", res.predict(np.load({str(tmp_path / "img.npy")!r})))
        assert not [k for k in sys.modules if k.startswith(("tinygrad_lite", "onnx"))]
        print("ok")
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(app)
    r = subprocess.run([sys.executable, "-c", script], cwd=app, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    want = m.predict(scaler.transform(x))
    np.testing.assert_allclose(np.load(app / "p.npy"), want, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(np.load(app / "labels.npy"), np.asarray(names)[want.argmax(1)])
    with tl.no_grad():
        np.testing.assert_allclose(np.load(app / "r.npy"), res(tl.Tensor(img)).data, rtol=0,
                                   atol=1e-5)
