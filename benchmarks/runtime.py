"""The vendorable runtime (tinygrad_lite/runtime.py): its size, import time and one-row latency,
each next to the full library measured in the same run (not part of the tests).

* size: bytes and lines of the file;
* import time: a fresh interpreter per measurement (with .pyc caching, after a warm-up launch),
  ``import runtime`` (numpy already imported, so the file's own cost) and ``import numpy,
  runtime`` (what an app pays cold), against ``from tinygrad_lite.io import load_model`` measured
  the same way; the launches alternate so both see the same machine load; medians;
* one-row latency: the seed MLP (64 -> 128 relu -> 10 softmax) saved with a MinMaxScaler and
  label names; ``runtime.load(path).predict_labels(row)`` against the library's
  ``model.predict(scaler.transform(row))`` plus the label lookup, interleaved; medians. The
  outputs are compared before timing;
* the same MLP exported to ONNX (``io.export_onnx`` with the scaler and labels in the metadata):
  ``runtime.load("mlp.onnx").predict_labels(row)`` against onnxruntime (one thread) plus the
  same scaling and label lookup, interleaved; medians.

    python benchmarks/runtime.py [--rounds 15] [--reps 2000]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNTIME = os.path.join(ROOT, "tinygrad_lite", "runtime.py")


def _import_time(code, cwd, env):
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                         text=True, check=True)
    return float(out.stdout.strip())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--reps", type=int, default=2000)
    args = ap.parse_args()

    src = open(RUNTIME, "rb").read()
    print(f"runtime.py: {len(src)} bytes, {len(src.splitlines())} lines")

    app = tempfile.mkdtemp()
    shutil.copy(RUNTIME, os.path.join(app, "runtime.py"))
    # bytecode caching on for both (an app's imports are cached .pyc files after the first run)
    base = {k: v for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE")}
    env_app = dict(base, PYTHONPATH=app)
    env_lib = dict(base, PYTHONPATH=ROOT)
    t = "import time; {pre}; t = time.perf_counter(); {imp}; print(time.perf_counter() - t)"
    cases = {
        "runtime (numpy preloaded)": (t.format(pre="import numpy", imp="import runtime"),
                                      env_app),
        "numpy + runtime (cold)": (t.format(pre="pass", imp="import numpy, runtime"), env_app),
        "tinygrad_lite (numpy preloaded)": (
            t.format(pre="import numpy", imp="from tinygrad_lite.io import load_model"), env_lib),
        "numpy + tinygrad_lite (cold)": (
            t.format(pre="pass", imp="import numpy; from tinygrad_lite.io import load_model"),
            env_lib),
    }
    times = {k: [] for k in cases}
    for code, env in cases.values():     # warm-up launches write the .pyc caches
        _import_time(code, app, env)
    for _ in range(args.rounds):
        for k, (code, env) in cases.items():
            times[k].append(_import_time(code, app, env))
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    for k, v in med.items():
        print(f"import {k:34s} {v:8.1f} ms (median of {args.rounds})")
    print(f"import ratio tinygrad_lite / runtime (numpy preloaded): "
          f"{med['tinygrad_lite (numpy preloaded)'] / med['runtime (numpy preloaded)']:.1f}x")

    sys.path.insert(0, ROOT)
    sys.path.insert(0, app)
    import runtime

    import tinygrad_lite as tl
    from tinygrad_lite.data.preprocessing import MinMaxScaler
    from tinygrad_lite.layers import Dense
    from tinygrad_lite.models import Sequential

    tl.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((256, 64)) * 16
    model = Sequential([Dense(128, activation="relu", input_shape=(64,)),
                        Dense(10, activation="softmax")])
    model.build()
    scaler = MinMaxScaler().fit(x)
    names = [f"digit {i}" for i in range(10)]
    path = os.path.join(app, "mlp.safetensors")
    model.save(path, preprocessing=scaler, label_names=names)
    rt = runtime.load(path)
    row = x[:1]

    def lib():
        return np.asarray(names)[model.predict(scaler.transform(row)).argmax(1)]

    def vend():
        return rt.predict_labels(row)

    assert (lib() == vend()).all()
    np.testing.assert_allclose(rt.predict(x), model.predict(scaler.transform(x)), atol=1e-6)
    m = _latencies(args, {"runtime": vend, "tinygrad_lite": lib})
    print(f"latency ratio tinygrad_lite / runtime: {m['tinygrad_lite'] / m['runtime']:.2f}x")
    t0 = time.perf_counter()
    runtime.load(path)
    print(f"runtime.load of the saved MLP: {(time.perf_counter() - t0) * 1e3:.2f} ms (one call)")
    _onnx(args, runtime, model, scaler, names, x, app)


def _latencies(args, fns):
    """One-row latency of each candidate, interleaved round by round; prints and returns the
    medians in microseconds."""
    lat = {name: [] for name in fns}
    for _ in range(args.rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(args.reps):
                fn()
            lat[name].append((time.perf_counter() - t0) / args.reps)
    m = {k: statistics.median(v) * 1e6 for k, v in lat.items()}
    for k, v in m.items():
        print(f"one-row predict_labels, {k:14s} {v:8.1f} us (median of {args.rounds} x "
              f"{args.reps})")
    return m


def _onnx(args, runtime, model, scaler, names, x, app):
    """The same MLP exported to ONNX (preprocessing and labels in the metadata): runtime.py's
    own protobuf reader and NumPy ops against onnxruntime, one row, interleaved."""
    try:
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime is not installed: ONNX rows skipped")
        return
    from tinygrad_lite import io

    path = os.path.join(app, "mlp.onnx")
    io.export_onnx(model, path, preprocessing=scaler, label_names=names)
    t0 = time.perf_counter()
    rt = runtime.load(path)
    load_ms = (time.perf_counter() - t0) * 1e3
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    row = x[:1]

    def vend():
        return rt.predict_labels(row)

    def ortrun():
        p = sess.run(None, {"input": scaler.transform(row).astype(np.float32)})[0]
        return np.asarray(names)[p.argmax(1)]

    assert (vend() == ortrun()).all()
    np.testing.assert_allclose(rt.predict(x), model.predict(scaler.transform(x)), atol=1e-5)
    m = _latencies(args, {"runtime (onnx)": vend, "onnxruntime": ortrun})
    print(f"latency ratio onnxruntime / runtime (onnx): "
          f"{m['onnxruntime'] / m['runtime (onnx)']:.2f}x")
    print(f"runtime.load of the exported ONNX MLP: {load_ms:.2f} ms (one call)")


if __name__ == "__main__":
    main()
