"""Callbacks: EarlyStopping restores the best weights, ModelCheckpoint writes only improvements."""

import csv

import numpy as np
import pytest

from tinygrad_lite.callbacks import (
    CSVLogger,
    EarlyStopping,
    LambdaCallback,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
)
from tinygrad_lite.io import load_model
from tinygrad_lite.layers import Dense
from tinygrad_lite.models import Sequential


def setup(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((32, 4)).astype(np.float32)
    y = rng.integers(0, 3, 32)
    m = Sequential([Dense(8, activation="relu", input_shape=(4,)), Dense(3, activation="softmax")])
    m.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return m, x, y


def scripted(scores, snapshots):
    """A callback that puts a scripted 'score' into the logs and records the weights."""
    def on_epoch_end(epoch, logs):
        logs["score"] = scores[epoch]
        snapshots.append(m_holder[0].get_weights())
    m_holder = []
    cb = LambdaCallback(on_epoch_end=on_epoch_end)
    cb.set_model = lambda model: (m_holder.append(model), setattr(cb, "model", model))
    return cb


def test_early_stopping_restores_best_weights():
    m, x, y = setup()
    snaps = []
    scores = [5.0, 3.0, 1.0, 2.0, 4.0, 6.0, 7.0, 8.0]
    es = EarlyStopping(monitor="score", mode="min", patience=2, restore_best_weights=True)
    h = m.fit(x, y, epochs=8, verbose=0, callbacks=[scripted(scores, snaps), es])
    assert h.epoch == [0, 1, 2, 3, 4]            # stopped after 2 epochs without improvement
    assert es.best_epoch == 2 and es.stopped_epoch == 4
    for a, b in zip(m.get_weights(), snaps[2]):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(m.get_weights(), snaps[4]))


def test_early_stopping_without_restore_keeps_last_weights():
    m, x, y = setup()
    snaps = []
    es = EarlyStopping(monitor="score", patience=1)
    m.fit(x, y, epochs=5, verbose=0, callbacks=[scripted([1, 2, 3, 4, 5], snaps), es])
    for a, b in zip(m.get_weights(), snaps[-1]):
        np.testing.assert_array_equal(a, b)


def test_model_checkpoint_writes_only_improvements(tmp_path):
    m, x, y = setup()
    snaps = []
    path = str(tmp_path / "ckpt-{epoch:02d}.safetensors")
    ck = ModelCheckpoint(path, monitor="score", mode="min", save_best_only=True)
    m.fit(x, y, epochs=5, verbose=0, callbacks=[scripted([3, 2, 4, 1, 5], snaps), ck])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ckpt-01.safetensors", "ckpt-02.safetensors", "ckpt-04.safetensors"]
    best = load_model(tmp_path / "ckpt-04.safetensors")
    for a, b in zip(best.get_weights(), snaps[3]):
        np.testing.assert_array_equal(a, b)


def test_model_checkpoint_every_epoch_on_real_val_loss(tmp_path):
    m, x, y = setup()
    ck = ModelCheckpoint(str(tmp_path / "m-{epoch}-{val_loss:.3f}.npz"))
    m.fit(x, y, epochs=2, verbose=0, validation_split=0.25, callbacks=[ck])
    assert len(list(tmp_path.iterdir())) == 2 and len(ck.saved) == 2


def test_missing_monitor_warns():
    m, x, y = setup()
    with pytest.warns(RuntimeWarning, match="'val_loss' is not in the logs"):
        m.fit(x, y, epochs=1, verbose=0, callbacks=[EarlyStopping()])


def test_reduce_lr_on_plateau_and_scheduler():
    m, x, y = setup()
    lrs = []
    rec = LambdaCallback(on_epoch_end=lambda e, logs: lrs.append(
        m.optimizer.param_groups[0]["lr"]))
    flat = LambdaCallback(on_epoch_end=lambda e, logs: logs.__setitem__("score", 1.0))
    m.fit(x, y, epochs=5, verbose=0, callbacks=[
        flat, ReduceLROnPlateau(monitor="score", factor=0.5, patience=2), rec])
    assert lrs == pytest.approx([0.01, 0.01, 0.005, 0.005, 0.0025])
    seen = []
    m.fit(x, y, epochs=3, verbose=0, callbacks=[
        LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1)),
        LambdaCallback(on_epoch_begin=lambda e, logs: seen.append(
            m.optimizer.param_groups[0]["lr"]))])
    assert seen == pytest.approx([0.1, 0.05, 0.1 / 3])


def test_csv_logger(tmp_path):
    m, x, y = setup()
    f = tmp_path / "log.csv"
    h = m.fit(x, y, epochs=3, verbose=0, validation_split=0.25, callbacks=[CSVLogger(f)])
    rows = list(csv.DictReader(open(f)))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    assert float(rows[2]["val_loss"]) == pytest.approx(h.history["val_loss"][2])


def test_bad_callbacks():
    m, x, y = setup()
    with pytest.raises(TypeError, match="Callback instances"):
        m.fit(x, y, verbose=0, callbacks=[lambda: None])
    with pytest.raises(TypeError, match="unknown hooks"):
        LambdaCallback(on_epoch_finish=print)
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=-1)


def test_model_checkpoint_save_weights_only(tmp_path, capsys):
    from tinygrad_lite.errors import ModelFormatError
    from tinygrad_lite.io import read_file

    m, x, y = setup()
    snaps = []
    path = tmp_path / "w.safetensors"
    ck = ModelCheckpoint(str(path), monitor="score", mode="min", save_best_only=True,
                         save_weights_only=True, verbose=1)
    m.fit(x, y, epochs=3, verbose=0, callbacks=[scripted([2, 1, 3], snaps), ck])
    arrays, meta = read_file(path)
    assert "architecture" not in meta and "compile" not in meta
    assert sorted(arrays) == sorted("weights." + k for k in m.weights_dict())
    with pytest.raises(ModelFormatError, match="weights only"):
        load_model(path)
    fresh, _, _ = setup(seed=1)
    fresh.load_weights(path)
    for a, b in zip(fresh.get_weights(), snaps[1]):   # the best epoch (score 1)
        np.testing.assert_array_equal(a, b)
    err = capsys.readouterr().err
    assert "Epoch 2: score improved from 2.00000 to 1.00000, saving weights to" in err
    assert "Epoch 3: score did not improve from 1.00000" in err


def test_verbose_callbacks_write_lines_without_print(monkeypatch, capsys):
    import builtins

    def no_print(*a, **k):
        raise AssertionError("library code called print()")
    monkeypatch.setattr(builtins, "print", no_print)
    m, x, y = setup()
    flat = LambdaCallback(on_epoch_end=lambda e, logs: logs.__setitem__("score", 1.0))
    m.fit(x, y, epochs=4, verbose=0, callbacks=[
        flat, ReduceLROnPlateau(monitor="score", factor=0.5, patience=1, verbose=1),
        EarlyStopping(monitor="score", patience=2, verbose=1)])
    err = capsys.readouterr().err
    assert "Epoch 2: ReduceLROnPlateau reducing learning rate to 0.005." in err
    assert "Epoch 3: early stopping (best score=1.0000 at epoch 1)" in err
