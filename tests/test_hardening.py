"""Regression tests for the adversarial review (issue 10, findings 7-12): the CLI's output set,
broadcast errors, detect_anomaly, kernel arguments, thread safety and training inputs.

Each test reproduces one finding; it failed on the code before the fix.
"""

import errno
import json
import os
import threading
import warnings

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import backends, nn, optim
from tinygrad_lite.errors import AnomalyError, DTypeError, ShapeError
from tinygrad_lite.layers import Dense, Dropout
from tinygrad_lite.models import LossExplosionWarning, Sequential
from tinygrad_lite.nn import functional as F

CPU_BACKENDS = [n for n in backends.names() if backends.get(n).xp is np]


# ------------------------------------------------------------------ 7. the CLI's output set ---

def _train(out, *extra):
    from tinygrad_lite.cli import main

    return main(["train", "--epochs", "1", "--quiet", "--out", str(out), *extra])


def test_failed_train_leaves_no_partial_output_set(tmp_path, monkeypatch, capsys):
    """A full disk while writing report.json left model.safetensors and the plots behind."""
    from tinygrad_lite import io as tio

    real = tio.atomic_write_bytes

    def full(path, payload, op="save"):
        if str(path).endswith("report.json"):
            raise OSError(errno.ENOSPC, f"{op}: cannot write the file (No space left on "
                                        "device)", str(path))
        return real(path, payload, op)

    monkeypatch.setattr(tio, "atomic_write_bytes", full)
    out = tmp_path / "run"
    assert _train(out) == 2
    err = capsys.readouterr().err
    assert "No space left" in err and str(out / "report.json") in err and "partial" not in err
    assert not out.exists()
    assert os.listdir(tmp_path) == [], "the staging folder must be removed too"


def test_broken_mplbackend_still_writes_a_complete_run(tmp_path):
    """MPLBACKEND=broken aborted after the model and one plot, with no report.json."""
    import subprocess
    import sys

    pytest.importorskip("matplotlib")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "MPLBACKEND": "broken",
           "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "tinygrad_lite", "train", "--epochs", "1",
                        "--quiet", "--out", str(out)], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert "broken" in report["plots_skipped"]
    assert sorted(os.listdir(out)) == ["model.safetensors", "report.json"]
    assert set(report["files"]) == {"model", "report"}
    assert "plots skipped" in r.stderr


def test_run_into_an_existing_folder_replaces_report_last(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "report.json").write_text('{"old": true}')
    (out / "notes.txt").write_text("mine")
    assert _train(out, "--format", "npz") == 0
    assert "old" not in json.loads((out / "report.json").read_text())
    assert (out / "notes.txt").read_text() == "mine" and (out / "model.npz").exists()
    assert [n for n in os.listdir(tmp_path) if "partial" in n] == []


def test_loss_explosion_warns_in_fit_and_cli(tmp_path, capsys):
    """`train --lr 1e6 --optimizer sgd` exited 0 at 10% accuracy, loss 2.7e28, silently."""
    out = tmp_path / "run"
    assert _train(out, "--lr", "1e6", "--optimizer", "sgd") == 0
    err = capsys.readouterr().err
    assert "warning: fit: the training loss grew" in err and "try a smaller --lr" in err
    assert json.loads((out / "report.json").read_text())["warnings"]
    x = np.random.default_rng(0).random((64, 4)).astype(np.float32)
    y = (x.sum(1) > 2).astype(np.int64)
    m = Sequential([Dense(8, activation="relu", input_shape=(4,)), Dense(2, activation="softmax")])
    m.build()
    m.compile(optim.SGD(list(m.parameters()), lr=1.0), "sparse_categorical_crossentropy")
    with warnings.catch_warnings():
        warnings.simplefilter("error", LossExplosionWarning)
        m.fit(x, y, epochs=2, verbose=0, seed=0)      # a sane run: no warning


# ------------------------------------------------------------------ 8. broadcast errors ---

@pytest.mark.parametrize("name, fn", [
    ("add", lambda a, b: a + b), ("sub", lambda a, b: a - b), ("mul", lambda a, b: a * b),
    ("div", lambda a, b: a / b), ("pow", lambda a, b: a ** b),
    ("maximum", lambda a, b: a.maximum(b)), ("minimum", lambda a, b: a.minimum(b)),
    ("less", lambda a, b: a < b), ("equal", lambda a, b: a == b),
])
def test_broadcast_errors_are_shape_errors(name, fn):
    a, b = tl.randn(3, 4), tl.randn(5)
    with pytest.raises(ShapeError, match=rf"{name}: shapes do not broadcast, got \(3, 4\) and "
                                         r"\(5,\)"):
        fn(a, b)


def test_broadcast_error_in_where_and_reflected_ops():
    with pytest.raises(ShapeError, match=r"where: .*\(3, 4\).*\(5,\)"):
        (tl.randn(3, 4) > 0).where(tl.randn(3, 4), tl.randn(5))
    with pytest.raises(ShapeError, match=r"add: .*\(5,\) and \(3, 4\)"):
        tl.randn(3, 4).__radd__(tl.randn(5))


# ------------------------------------------------------------------ 9. detect_anomaly ---

def test_detect_anomaly_names_the_forward_op_and_where_it_was_made():
    """A hand-written loop fed a NaN silently put NaN into the weights."""
    w = tl.Tensor(np.ones(3), requires_grad=True)
    x = tl.Tensor([1.0, np.nan, 2.0])
    with tl.detect_anomaly():
        with pytest.raises(AnomalyError, match=r"op 'mul' .*NaN or Inf.*input\(s\) \[1\]") as e:
            (w * x).sum()
    assert __file__ in str(e.value)
    assert "in test_detect_anomaly_names_the_forward_op_and_where_it_was_made" in str(e.value)
    assert not tl.is_anomaly_enabled()
    (w * x).sum().backward()       # off again: NaN flows silently, as before
    assert np.isnan(w.grad.data[1])


def test_detect_anomaly_in_backward():
    w = tl.Tensor(np.array([0.0, 4.0]), requires_grad=True)
    with tl.detect_anomaly(), np.errstate(divide="ignore"):
        y = w.sqrt().sum()         # finite forward; d sqrt(0) = inf
        with pytest.raises(AnomalyError, match="backward of op 'sqrt' returned NaN or Inf") as e:
            y.backward()
    assert __file__ in str(e.value) and "in test_detect_anomaly_in_backward" in str(e.value)


# ------------------------------------------------------------------ 10. kernel arguments ---

@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_numpy_integer_kernel_args(name):
    x = tl.randn(1, 2, 6, 6)
    with backends.use(name):
        conv = nn.Conv2d(2, 3, 3, stride=np.int64(2), padding=np.int64(1))
        y = conv(x)
        ref = F.conv2d(x, conv.weight, conv.bias, stride=2, padding=1)
        np.testing.assert_array_equal(y.data, ref.data)
        p = F.max_pool2d(x, np.int32(2), stride=np.int64(2), padding=np.int16(1))
        assert p.shape == (1, 2, 4, 4)


@pytest.mark.parametrize("name", CPU_BACKENDS)
@pytest.mark.parametrize("kw, match", [
    (dict(stride=1.0), "stride must be an int or a pair of ints, got 1.0"),
    (dict(padding=(1, 1.5)), "padding must be an int or a pair"),
    (dict(stride=True), "stride must be an int"),
    (dict(stride=2**31), r"stride must be below 2\*\*31"),
    (dict(padding=2**31), r"padding must be below 2\*\*31"),
    (dict(padding=2**31 - 1), r"padded input .* reaches 2\*\*31"),
    (dict(dilation=2**30), r"dilated kernel reaches 2\*\*31"),
])
def test_bad_kernel_args_one_clear_error_on_every_backend(name, kw, match):
    x, w = tl.randn(1, 2, 6, 6), tl.randn(3, 2, 3, 3)
    with backends.use(name), pytest.raises(ShapeError, match=match):
        F.conv2d(x, w, **kw)
    if "dilation" not in kw and "padded" not in match:   # pool padding is capped at k // 2
        with backends.use(name), pytest.raises(ShapeError, match=match):
            F.max_pool2d(x, 3, **kw)


def test_conv_layer_rejects_float_stride():
    with pytest.raises(ShapeError, match="stride must be an int"):
        nn.Conv2d(2, 3, 3, stride=1.0)


def test_set_num_threads_has_a_documented_cap():
    from tinygrad_lite.backends.threads import MAX_THREADS, ThreadCountError

    before = tl.get_num_threads()
    with pytest.raises(ThreadCountError, match=f"at most {MAX_THREADS}"):
        tl.set_num_threads(100000)
    assert tl.get_num_threads() == before
    tl.set_num_threads(MAX_THREADS)
    tl.set_num_threads(before)


@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_float16_conv_and_pool_refused_on_every_backend(name):
    x = tl.Tensor(np.ones((1, 1, 4, 4), np.float16))
    w = tl.Tensor(np.ones((1, 1, 2, 2), np.float16))
    with backends.use(name):
        for fn in (lambda: F.conv2d(x, w), lambda: F.max_pool2d(x, 2),
                   lambda: F.avg_pool2d(x, 2)):
            with pytest.raises(DTypeError, match="floating-point tensor, got dtype float16"):
                fn()
        b = backends.current()
        with pytest.raises(DTypeError, match="float16"):
            b.conv2d(x.data, w.data, (1, 1), (0, 0), (1, 1), 1)
        with pytest.raises(DTypeError, match="float16"):
            b.max_pool2d(x.data, (2, 2), (2, 2), (0, 0))


# ------------------------------------------------------------------ 11. thread safety ---

def test_backend_choice_is_per_thread():
    """`with backends.use("numpy")` in one thread switched every thread."""
    if "cython" not in backends.names():
        pytest.skip("the cython backend is not built: " + backends.available()["cython"][1])
    default = backends.current().name
    other = "numpy" if default != "numpy" else "cython"
    inside, outside = [], []
    entered, done = threading.Event(), threading.Event()

    def worker():
        with backends.use(other):
            entered.set()
            for _ in range(200):
                inside.append(backends.current_for(np.zeros(1)).name)
            done.wait(10)

    t = threading.Thread(target=worker)
    t.start()
    entered.wait(10)
    for _ in range(200):
        outside.append(backends.current_for(np.zeros(1)).name)
    done.set()
    t.join()
    assert set(inside) == {other} and set(outside) == {default}
    assert backends.current().name == default


def test_set_default_is_process_wide():
    default = backends.get_default()
    other = "numpy" if default != "numpy" else "cython"
    if other not in backends.names():
        pytest.skip(f"only one CPU backend is available: {backends.names()}")
    seen = []

    def probe():
        seen.append(backends.current().name)
        with backends.use(default):
            seen.append(backends.current().name)
        seen.append(backends.current().name)

    try:
        backends.set_default(other)
        t = threading.Thread(target=probe)
        t.start()
        t.join()
    finally:
        backends.set_default(default)
    assert seen == [other, default, other]
    assert backends.get_default() == default


def _dropout_model():
    return Sequential([Dense(16, activation="relu", input_shape=(6,)), Dropout(0.5),
                       Dense(3, activation="softmax")])


def _fit_weights(model, init, seed, out, i):
    rng = np.random.default_rng(100 + i)
    x = rng.random((64, 6)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    model.set_weights(init)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=3, batch_size=8, verbose=0, seed=seed)
    out[i] = model.get_weights()


def test_seeded_trainings_in_threads_equal_the_same_in_sequence():
    """0 of 5 Dropout models trained in two threads equalled the same two trained in sequence.
    (Built in the main thread from one initial state: construction draws from the global
    generator; fit's draws -- Dropout masks, shuffling -- come from fit's own.)"""
    models = [_dropout_model() for _ in range(2)]
    inits = [m.get_weights() for m in models]
    seq, par = {}, {}
    for i in range(2):
        _fit_weights(models[i], inits[i], 10 + i, seq, i)
    for _ in range(3):
        ts = [threading.Thread(target=_fit_weights, args=(models[i], inits[i], 10 + i, par, i))
              for i in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        for i in range(2):
            for a, b in zip(seq[i], par[i]):
                np.testing.assert_array_equal(a, b)


def test_dropout_layers_with_their_own_seed():
    x = tl.Tensor(np.ones((4, 10), np.float32))
    a, b = nn.Dropout(0.5, seed=3), nn.Dropout(0.5, seed=3)
    tl.manual_seed(0)
    ya = a(x)
    tl.manual_seed(1)           # the global generator does not matter
    np.testing.assert_array_equal(ya.data, b(x).data)


# ------------------------------------------------------------------ 12. training inputs ---

def _compiled():
    m = Sequential([Dense(3, activation="softmax", input_shape=(4,))])
    m.compile("sgd", "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).random((10, 4)).astype(np.float32)
    return m, x, np.arange(10) % 3


def test_negative_training_sample_weight_rejected():
    m, x, y = _compiled()
    for sw in (-np.ones(10), np.r_[np.ones(9), -1e-3]):
        with pytest.raises(ValueError, match="sample_weight must be 1-D, finite and >= 0"):
            m.fit(x, y, sample_weight=sw, verbose=0)
    with pytest.raises(ValueError, match="val_sample_weight"):   # as validation already was
        m.fit(x, y, validation_data=(x, y, -np.ones(10)), verbose=0)


@pytest.mark.parametrize("initial_epoch, epochs", [(-2, 2), (3, 2), (2, 2), (1.0, 2)])
def test_initial_epoch_outside_range_rejected(initial_epoch, epochs):
    m, x, y = _compiled()
    with pytest.raises(ValueError, match=r"initial_epoch must be an int in \[0, epochs\)"):
        m.fit(x, y, epochs=epochs, initial_epoch=initial_epoch, verbose=0)


def test_initial_epoch_resumes():
    m, x, y = _compiled()
    h = m.fit(x, y, epochs=3, initial_epoch=1, verbose=0)
    assert h.epoch == [1, 2]
