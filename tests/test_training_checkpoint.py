"""io.save_checkpoint / load_checkpoint: a resumed run is bitwise the uninterrupted one."""

import os

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import io, nn, optim
from tinygrad_lite.callbacks import LearningRateScheduler, ModelCheckpoint
from tinygrad_lite.errors import ModelFormatError
from tinygrad_lite.layers import BatchNormalization, Dense, Dropout
from tinygrad_lite.models import Sequential


def _data():
    rng = np.random.default_rng(42)
    x = rng.standard_normal((60, 5)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1).astype(np.int64)
    return x, y


def _keras(seed):
    tl.manual_seed(seed)
    m = Sequential([Dense(16, activation="relu", input_shape=(5,)), BatchNormalization(),
                    Dropout(0.3), Dense(3, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def _schedule():   # a Keras-style scheduler: the learning rate halves every 2 epochs
    return LearningRateScheduler(lambda epoch, lr: 0.01 * 0.5 ** (epoch // 2))


def test_keras_fit_resumed_from_model_checkpoint_is_bitwise_equal(tmp_path):
    x, y = _data()
    full = _keras(0)
    full.fit(x, y, epochs=5, batch_size=8, verbose=0, callbacks=[_schedule()])

    first = _keras(0)
    ck = ModelCheckpoint(str(tmp_path / "m-{epoch}.safetensors"), monitor="loss",
                         include_optimizer=True)
    first.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[_schedule(), ck])
    assert [e for e, _ in ck.train_states] == [0, 1]
    state_path = ck.train_state_path(tmp_path / "m-2.safetensors")
    assert os.path.exists(state_path) and ck.train_states[-1][1] == state_path
    assert not np.array_equal(first.get_weights()[0], full.get_weights()[0])   # not done yet

    tl.manual_seed(999)                               # a new process: other weights, other rng
    tl.default_generator().random(7)
    resumed = _keras(123)
    ckpt = io.load_checkpoint(state_path, resumed)
    assert ckpt["epoch"] == 2
    resumed.fit(x, y, epochs=5, batch_size=8, verbose=0, callbacks=[_schedule()],
                initial_epoch=ckpt["epoch"])
    assert len(resumed.history.history["loss"]) == 3
    for (k, a), b in zip(full.weights_dict().items(), resumed.weights_dict().values()):
        assert a.tobytes() == b.tobytes(), k          # bitwise, BatchNorm statistics included


def _torch_style_net():
    return nn.Sequential(nn.Linear(5, 12), nn.ReLU(), nn.Dropout(0.25), nn.Linear(12, 3))


def _train(net, opt, sched, x, y, epochs, start=0):
    rng = tl.default_generator()
    for _ in range(start, epochs):
        net.train()
        order = rng.permutation(len(x))
        for i in range(0, len(x), 10):
            idx = order[i:i + 10]
            opt.zero_grad()
            nn.functional.cross_entropy(net(tl.Tensor(x[idx])), tl.Tensor(y[idx])).backward()
            opt.step()
        sched.step()


def _objects(seed):
    tl.manual_seed(seed)
    net = _torch_style_net()
    opt = optim.Adam(net.parameters(), lr=0.02)
    return net, opt, optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)


def test_module_loop_with_adam_and_steplr_resumes_bitwise(tmp_path):
    x, y = _data()
    net, opt, sched = _objects(0)
    _train(net, opt, sched, x, y, 5)

    net1, opt1, sched1 = _objects(0)
    _train(net1, opt1, sched1, x, y, 3)
    path = io.save_checkpoint(tmp_path / "c.npz", net1, opt1, sched1, epoch=3,
                              extra={"note": "three epochs"})

    net2, opt2, sched2 = _objects(7)
    tl.default_generator().random(11)
    ckpt = io.load_checkpoint(path, net2, opt2, sched2)
    assert ckpt == {"epoch": 3, "extra": {"note": "three epochs"}}
    assert opt2.param_groups[0]["lr"] == opt1.param_groups[0]["lr"] == 0.01
    assert sched2.last_epoch == 3
    _train(net2, opt2, sched2, x, y, 5, start=ckpt["epoch"])
    for (k, a), b in zip(net.state_dict().items(), net2.state_dict().values()):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes(), k


def test_resume_without_the_rng_state_differs(tmp_path):
    """The bitwise test above is not vacuous: dropout and shuffling depend on the restored rng."""
    x, y = _data()
    net, opt, sched = _objects(0)
    _train(net, opt, sched, x, y, 4)
    net1, opt1, sched1 = _objects(0)
    _train(net1, opt1, sched1, x, y, 2)
    path = io.save_checkpoint(tmp_path / "c.npz", net1, opt1, sched1, epoch=2, rng=False)
    net2, opt2, sched2 = _objects(5)
    io.load_checkpoint(path, net2, opt2, sched2, rng=False)
    _train(net2, opt2, sched2, x, y, 4, start=2)
    a = np.asarray(net.state_dict()["0.weight"])
    b = np.asarray(net2.state_dict()["0.weight"])
    assert not np.array_equal(a, b)


def test_explicit_generator_round_trips(tmp_path):
    net, opt, _ = _objects(0)
    g = np.random.default_rng(3)
    g.random(5)
    path = io.save_checkpoint(tmp_path / "g.npz", net, opt, rng=[g])
    want = g.random(4)
    g2 = np.random.default_rng(100)
    io.load_checkpoint(path, net, opt, rng=[g2])
    np.testing.assert_array_equal(g2.random(4), want)


def test_wrong_model_raises_and_changes_nothing(tmp_path):
    net, opt, sched = _objects(0)
    path = io.save_checkpoint(tmp_path / "c.npz", net, opt, sched, epoch=1)
    tl.manual_seed(1)
    other = nn.Sequential(nn.Linear(5, 12), nn.ReLU(), nn.Dropout(0.25), nn.Linear(12, 4))
    before = [np.asarray(v).copy() for v in other.state_dict().values()]
    with pytest.raises(ModelFormatError, match="shape"):
        io.load_checkpoint(path, other)
    for a, b in zip(before, other.state_dict().values()):
        np.testing.assert_array_equal(a, np.asarray(b))
    with pytest.raises(ModelFormatError, match="holds a Adam state, the optimizer is a SGD"):
        io.load_checkpoint(path, net, optim.SGD(net.parameters(), lr=0.1))


def test_not_a_training_checkpoint_and_bad_arguments(tmp_path):
    net, opt, _ = _objects(0)
    tl.save({"model": net.state_dict()}, tmp_path / "plain.npz")
    with pytest.raises(ModelFormatError, match="not a training checkpoint"):
        io.load_checkpoint(tmp_path / "plain.npz", net)
    with pytest.raises(ValueError, match=r"\.npz file"):
        io.save_checkpoint(tmp_path / "c.safetensors", net, opt)
    with pytest.raises(ValueError, match="epoch must be"):
        io.save_checkpoint(tmp_path / "c.npz", net, opt, epoch=-1)
    with pytest.raises(ValueError, match="include_optimizer"):
        ModelCheckpoint("m.safetensors", save_weights_only=True, include_optimizer=True)
    blob = (tmp_path / "c.npz")
    io.save_checkpoint(blob, net, opt)
    data = bytearray(blob.read_bytes())
    blob.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(ModelFormatError):
        io.load_checkpoint(blob, net, opt)


def _plateau_callbacks(scores):
    """A scripted monitor (first), then the stateful callbacks whose counters cross the resume
    point: ReduceLROnPlateau (wait, best, cooldown) and EarlyStopping (wait, best)."""
    from tinygrad_lite.callbacks import EarlyStopping, LambdaCallback, ReduceLROnPlateau

    script = LambdaCallback(on_epoch_end=lambda e, logs: logs.__setitem__("score", scores[e]))
    return [script, ReduceLROnPlateau(monitor="score", factor=0.5, patience=2, cooldown=1),
            EarlyStopping(monitor="score", patience=4)]


@pytest.mark.parametrize("checkpoint_first", [True, False])
def test_resume_restores_callback_state_bitwise(tmp_path, checkpoint_first):
    """ReduceLROnPlateau's counters and EarlyStopping's patience cross the resume point; the
    ModelCheckpoint's training state is written after every callback's on_epoch_end (so the
    learning rate a later ReduceLROnPlateau sets that epoch is in it, whatever the order)."""
    x, y = _data()
    scores = [5.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 3.0]
    full = _keras(0)
    hist = full.fit(x, y, epochs=8, batch_size=8, verbose=0, callbacks=_plateau_callbacks(scores))
    lr_full = full.optimizer.param_groups[0]["lr"]

    first = _keras(0)
    ck = ModelCheckpoint(str(tmp_path / "m-{epoch}.safetensors"), monitor="score",
                         include_optimizer=True)
    cbs = _plateau_callbacks(scores)
    first.fit(x, y, epochs=4, batch_size=8, verbose=0,
              callbacks=[ck] + cbs if checkpoint_first else cbs + [ck])
    assert cbs[1].wait or cbs[1].cooldown_counter          # mid-plateau at the cut

    tl.manual_seed(7)
    resumed = _keras(5)
    cbs2 = _plateau_callbacks(scores)
    ckpt = io.load_checkpoint(ck.train_state_path(tmp_path / "m-4.safetensors"), resumed,
                              callbacks=cbs2)
    h2 = resumed.fit(x, y, epochs=8, batch_size=8, verbose=0, callbacks=cbs2,
                     initial_epoch=ckpt["epoch"])
    assert resumed.optimizer.param_groups[0]["lr"] == lr_full
    assert len(hist.history["loss"]) == 4 + len(h2.history["loss"])   # same early stop epoch
    for (k, a), b in zip(full.weights_dict().items(), resumed.weights_dict().values()):
        assert a.tobytes() == b.tobytes(), k


def test_callback_state_mismatch_is_refused(tmp_path):
    from tinygrad_lite.callbacks import ReduceLROnPlateau

    x, y = _data()
    m = _keras(0)
    ck = ModelCheckpoint(str(tmp_path / "m.safetensors"), monitor="loss", include_optimizer=True)
    m.fit(x, y, epochs=1, batch_size=8, verbose=0,
          callbacks=[ck, ReduceLROnPlateau(monitor="loss")])
    with pytest.raises(ModelFormatError, match="callback"):
        io.load_checkpoint(ck.train_state_path(tmp_path / "m.safetensors"), _keras(0),
                           callbacks=[ReduceLROnPlateau(monitor="loss"),
                                      ReduceLROnPlateau(monitor="loss")])
