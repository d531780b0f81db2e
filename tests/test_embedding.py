"""Embedding the package in an app: import, load_model and predict leave the app's state alone."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import threadpoolctl

    # The app owns its BLAS: it chose 2 threads (so a cap at 1 would show).
    threadpoolctl.threadpool_limits(limits=2, user_api="blas")

    def snap():
        return {p["filepath"]: p["num_threads"] for p in threadpoolctl.threadpool_info()}

    snaps = {"before": snap()}
    import tinygrad_lite as tl
    from tinygrad_lite import io, layers, models
    snaps["import"] = snap()
    m = models.Sequential([layers.Dense(8, activation="relu", input_shape=(4,)),
                           layers.Dense(3, activation="softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    path = sys.argv[1]
    io.save_model(m, path)
    snaps["save"] = snap()
    m2 = io.load_model(path)
    snaps["load_model"] = snap()
    m2.predict(np.ones((5, 4), dtype=np.float32))
    snaps["predict"] = snap()
    tl.Tensor(np.ones((64, 64), dtype=np.float32)) @ tl.Tensor(np.ones((64, 64), np.float32))
    snaps["matmul"] = snap()
    print(json.dumps(snaps))
""")


def test_import_load_predict_keep_the_apps_blas_threads(tmp_path):
    """The app's threadpoolctl info (every library it had loaded, with its thread count) is the
    same before and after import, save_model, load_model, predict and a matmul, in a fresh
    process. Libraries we load ourselves (our OpenMP runtime) may appear; none that was there
    changes."""
    pytest.importorskip("threadpoolctl")
    env = dict(os.environ)
    env.pop("TINYGRAD_LITE_LIMIT_BLAS", None)
    out = subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path / "m.safetensors")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    snaps = json.loads(out.stdout.strip().splitlines()[-1])
    before = snaps.pop("before")
    blas = [k for k, n in before.items() if n == 2]
    if not blas:
        pytest.skip("threadpoolctl found no BLAS library in this process")
    for stage, now in snaps.items():
        assert {k: now.get(k) for k in before} == before, f"{stage} changed the app's threads"


def test_limit_blas_threads_is_opt_in_and_restores():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from tinygrad_lite.backends import limit_blas_threads

    def blas():
        return [p["num_threads"] for p in threadpoolctl.threadpool_info()
                if p["user_api"] == "blas"]

    if not blas():
        pytest.skip("threadpoolctl found no BLAS library in this process")
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        with limit_blas_threads(1):
            assert blas() == [1] * len(blas())
        assert blas() == [2] * len(blas())
