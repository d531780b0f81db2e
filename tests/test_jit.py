"""tinygrad_lite.jit: a replayed training step is bitwise equal to eager; it records again when
the key changes; what it cannot capture raises JitError."""

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import backends, nn
from tinygrad_lite.errors import JitError
from tinygrad_lite.layers import Dense
from tinygrad_lite.models import Sequential
from tinygrad_lite.nn import functional as F
from tinygrad_lite.optim import SGD, Adam

STEPS = 20


def _same(xs, ys):
    assert len(xs) == len(ys)
    for a, b in zip(xs, ys):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ seed MLP through fit ---

def _seed_mlp_fit(x, y, jit, batch_size=16, epochs=1, loss="sparse_categorical_crossentropy"):
    tl.manual_seed(0)
    model = Sequential([Dense(128, activation="relu", input_shape=(784,)),
                        Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    hist = model.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=True, seed=1,
                     verbose=0, jit=jit)
    return hist.history, [w.copy() for w in model.get_weights()]


def test_fit_jit_seed_mlp_is_bitwise_equal_to_eager(backend):
    rng = np.random.default_rng(0)
    x = rng.random((STEPS * 16, 784), dtype=np.float32)
    y = rng.integers(0, 10, STEPS * 16)
    h_eager, w_eager = _seed_mlp_fit(x, y, jit=False)
    h_jit, w_jit = _seed_mlp_fit(x, y, jit=True)
    assert h_jit == h_eager                  # loss and accuracy of all 20 steps, exactly
    _same(w_jit, w_eager)


def test_fit_keeps_its_captured_step_between_calls_while_it_stands(backend):
    rng = np.random.default_rng(3)
    x = rng.random((48, 784), dtype=np.float32)
    y = rng.integers(0, 10, 48)

    def run(jit):
        tl.manual_seed(0)
        m = Sequential([Dense(16, activation="relu", input_shape=(784,)),
                        Dense(10, activation="softmax")])
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        hists, steps = [], []

        def fit():
            hists.append(m.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0,
                               jit=jit).history["loss"])
            steps.append(m.__dict__.get("_jit_cache", (None, None, None))[2])

        fit()
        fit()                                     # the same step: replays from its first batch
        for p in m.parameters():                  # new arrays: the step records again
            p.data = p.data * 0.5
        fit()
        for p in m.layers[0].parameters():
            p.requires_grad = False
        fit()                                     # a frozen layer: a new step
        m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        fit()                                     # a new compile: a new step
        return hists, [w.copy() for w in m.get_weights()], steps

    h_eager, w_eager, _ = run(False)
    h_jit, w_jit, steps = run(True)
    assert h_jit == h_eager                       # every call, every loss, exactly
    _same(w_jit, w_eager)
    assert steps[0] is steps[1] is steps[2] and steps[3] is not steps[2]
    assert steps[4] is not steps[3]
    # call 1 records twice; call 2 replays all 3 batches; call 3 records twice (new arrays)
    assert steps[0].recordings == 4 and steps[0].replays == 1 + 3 + 1


def test_fit_jit_replays_and_records_per_batch_shape(monkeypatch):
    import importlib

    jit_module = importlib.import_module("tinygrad_lite.jit")   # the module, not the function
    made = []
    real = jit_module.JitFunction

    class Spy(real):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            made.append(self)

    monkeypatch.setattr(jit_module, "JitFunction", Spy)
    rng = np.random.default_rng(1)
    x = rng.random((90, 784), dtype=np.float32)      # batches of 16: 5 full and one of 10
    y = rng.integers(0, 10, 90)
    h_eager, w_eager = _seed_mlp_fit(x, y, jit=False, epochs=2)
    h_jit, w_jit = _seed_mlp_fit(x, y, jit=True, epochs=2)
    assert h_jit == h_eager
    _same(w_jit, w_eager)
    (step,) = made
    # two recordings for batch 16, two for batch 10 (one per epoch); the rest replayed
    assert step.recordings == 4 and step.replays == 12 - 4


# ------------------------------------------------------------------ nn models, direct jit ---

def _mlp_step(opt_cls=Adam, **opt_kw):
    tl.manual_seed(0)
    net = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = opt_cls(net.parameters(), **opt_kw)

    def step(x, t):
        loss = -(net(x).log_softmax(axis=1) * t).sum() * (1.0 / x.shape[0])
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    return net, step


def _cnn_step(opt_cls=Adam, **opt_kw):
    tl.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(4 * 6 * 6, 10))
    opt = opt_cls(net.parameters(), **opt_kw)

    def step(x, t):
        loss = -(net(x).log_softmax(axis=1) * t).sum() * (1.0 / x.shape[0])
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    return net, step


def _batches(shape, n=STEPS, batch=8, seed=0):
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal((batch,) + shape).astype(np.float32) for _ in range(n)]
    ts = [np.eye(10, dtype=np.float32)[rng.integers(0, 10, batch)] for _ in range(n)]
    return list(zip(xs, ts))


def _train(make, batches, jit, wrap=tl.Tensor):
    net, step = make()
    if jit:
        step = tl.jit(step, modules=[net])
    losses = [step(wrap(x), wrap(t)).numpy().copy() for x, t in batches]
    return losses, [p.data.copy() for p in net.parameters()], step


@pytest.mark.parametrize("make, shape", [(_mlp_step, (784,)), (_cnn_step, (1, 12, 12))],
                         ids=["mlp", "cnn"])
def test_jit_is_bitwise_equal_to_eager_over_20_steps(backend, make, shape):
    batches = _batches(shape)
    l_eager, w_eager, _ = _train(make, batches, jit=False)
    l_jit, w_jit, step = _train(make, batches, jit=True)
    _same(l_jit, l_eager)
    _same(w_jit, w_eager)
    assert step.recordings == 2 and step.replays == STEPS - 2


def test_jit_captures_fused_sgd_momentum(backend):
    def make():
        return _cnn_step(SGD, lr=0.05, momentum=0.9, nesterov=True)

    batches = _batches((1, 12, 12))
    l_eager, w_eager, _ = _train(make, batches, jit=False)
    l_jit, w_jit, step = _train(make, batches, jit=True, wrap=lambda a: a)   # plain arrays
    _same(l_jit, l_eager)
    _same(w_jit, w_eager)
    assert step.replays == STEPS - 2


def test_jit_records_again_when_the_batch_size_changes():
    small, large = _batches((784,), n=6, batch=4), _batches((784,), n=6, batch=8, seed=1)
    mixed = small[:3] + large + small[3:]
    l_eager, w_eager, _ = _train(_mlp_step, mixed, jit=False)
    l_jit, w_jit, step = _train(_mlp_step, mixed, jit=True)
    _same(l_jit, l_eager)
    _same(w_jit, w_eager)
    # batch 4: record, record, replay x4; batch 8: record, record, replay x4
    assert step.recordings == 4 and step.replays == 8


def test_jit_records_again_after_a_backend_switch_and_a_mode_change():
    if "cython" not in backends.names():
        pytest.skip("the cython backend is not built: only one backend to switch between")
    batches = _batches((784,), n=8)
    net, step = _mlp_step()
    jstep = tl.jit(step, modules=[net])
    for x, t in batches[:3]:
        jstep(tl.Tensor(x), tl.Tensor(t))
    assert (jstep.recordings, jstep.replays) == (2, 1)
    other = "numpy" if backends.current().name == "cython" else "cython"
    with backends.use(other):
        jstep(tl.Tensor(batches[3][0]), tl.Tensor(batches[3][1]))
    assert jstep.recordings == 3
    net.eval()
    jstep(tl.Tensor(batches[4][0]), tl.Tensor(batches[4][1]))
    assert jstep.recordings == 4


def test_jit_records_again_when_a_parameter_array_is_replaced():
    batches = _batches((784,), n=6)
    net, step = _mlp_step()
    jstep = tl.jit(step)
    for x, t in batches[:3]:
        jstep(x, t)
    assert jstep.replays == 1
    w = net[0].weight
    w.data = w.data.copy()                  # what a load that assigns new arrays does
    jstep(*batches[3])
    assert jstep.recordings == 3 and jstep.replays == 1


# ------------------------------------------------------------------ refused ---

def test_jit_refuses_item_inside_the_step():
    net, _ = _mlp_step()

    @tl.jit
    def step(x):
        loss = net(x).sum()
        if loss.item() > 0:                 # data-dependent Python control flow
            loss = loss * 2
        loss.backward()
        return loss

    with pytest.raises(JitError, match="Tensor.item"):
        step(np.ones((2, 784), np.float32))


def test_jit_refuses_numpy_of_a_traced_value():
    net, _ = _mlp_step()

    @tl.jit
    def step(x):
        y = net(x)
        return tl.Tensor(y.numpy() * 2)

    with pytest.raises(JitError, match="Tensor.numpy"):
        step(np.ones((2, 784), np.float32))


def test_jit_refuses_constants_computed_from_the_inputs():
    """Integer labels computed with NumPy outside the engine (here ``labels + 0``) differ between
    the two recordings: the replay could not follow them, so the second call raises. (int64
    labels passed straight in are bound to the argument: see the next test.)"""
    net, _ = _mlp_step()
    opt = Adam(net.parameters())

    @tl.jit
    def step(x, labels):
        loss = F.cross_entropy(net(x), labels + 0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    rng = np.random.default_rng(0)
    x = rng.random((4, 784), dtype=np.float32)
    step(x, np.array([0, 1, 2, 3]))
    with pytest.raises(JitError, match="differs between the recordings"):
        step(x, np.array([3, 2, 1, 0]))


def test_int64_labels_passed_in_are_followed_by_the_replay():
    """cross_entropy's fused path binds int64 labels given as an argument: a replay with other
    labels gives exactly the eager losses and weights."""
    net, _ = _mlp_step()
    net_e, _ = _mlp_step()
    net_e.load_state_dict(net.state_dict())
    opt, opt_e = Adam(net.parameters()), Adam(net_e.parameters())

    def make(model, o):
        def step(x, labels):
            loss = F.cross_entropy(model(tl.Tensor(x)), labels)
            o.zero_grad()
            loss.backward()
            o.step()
            return loss
        return step

    jitted, eager = tl.jit(make(net, opt)), make(net_e, opt_e)
    rng = np.random.default_rng(0)
    for _ in range(6):
        x = rng.random((4, 784), dtype=np.float32)
        y = rng.integers(0, 10, 4)
        assert jitted(x, y).item() == eager(x, y).item()
    assert jitted.replays >= 3
    for a, b in zip(net.parameters(), net_e.parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_jit_refuses_data_dependent_python_branches():
    w = tl.Tensor(np.ones(3, np.float32), requires_grad=True)

    @tl.jit
    def step(x, flag):
        y = (w * x).sum() if flag else (w * x * x).sum()
        y.backward()
        return y

    x = np.ones(3, np.float32)
    step(x, True)       # hashable values are part of the key: each branch records on its own
    step(x, True)
    step(x, False)
    step(x, False)
    assert step.replays == 0 and step.recordings == 4
    state = {"n": 0}

    @tl.jit
    def step2(x):
        state["n"] += 1
        y = (w * x).sum() if state["n"] % 2 else (w * x).exp().sum()
        y.backward()
        return y

    step2(x)
    with pytest.raises(JitError, match="cannot capture"):
        step2(x)


def test_jit_refuses_create_graph_hooks_and_closures():
    w = tl.Tensor(np.ones(3, np.float32), requires_grad=True)
    x = np.ones(3, np.float32)

    @tl.jit
    def higher(x):
        (g,) = tl.grad((w * w * x).sum(), w, create_graph=True)
        return g

    with pytest.raises(JitError, match="create_graph"):
        higher(x)

    @tl.jit
    def hooked(x):
        y = w * x
        y._hooks = [lambda g: g * 2]
        y.sum().backward()

    with pytest.raises(JitError, match="hooks"):
        hooked(x)
    opt = SGD([w], lr=0.1)

    @tl.jit
    def closure_step(x):
        opt.step(lambda: (w * x).sum())

    with pytest.raises(JitError, match="closure"):
        closure_step(x)
    # the engine is left as it was after a refused recording
    (w * w).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), 2 * w.data)


def test_jit_rejects_unhashable_arguments_and_bad_returns():
    @tl.jit
    def step(x):
        return 1.0

    with pytest.raises(JitError, match="hashable"):
        step([1.0, 2.0])
    with pytest.raises(JitError, match="must return"):
        step(np.ones(2, np.float32))


@pytest.mark.parametrize("layer", ["dropout", "batchnorm"])
def test_fit_jit_refuses_dropout_and_batchnorm_running_statistics(layer):
    from tinygrad_lite.layers import BatchNormalization, Dropout

    rng = np.random.default_rng(0)
    x = rng.random((64, 20), dtype=np.float32)
    y = rng.integers(0, 3, 64)
    tl.manual_seed(0)
    mid = Dropout(0.5) if layer == "dropout" else BatchNormalization()
    model = Sequential([Dense(16, activation="relu", input_shape=(20,)), mid,
                        Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(JitError, match="differs between the recordings|assigning"):
        model.fit(x, y, epochs=1, batch_size=16, verbose=0, jit=True)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)      # the engine is intact afterwards


def test_jit_keys_on_arguments_that_are_the_same_array():
    w = tl.Tensor(np.ones(3, np.float32), requires_grad=True)

    @tl.jit
    def step(x, z):
        y = (w * x * z).sum()
        y.backward()
        return y

    a, b = np.arange(3, dtype=np.float32), np.full(3, 2, np.float32)
    for _ in range(3):
        step(a, a)                           # recorded with both arguments one array
    w.grad = None
    got = step(a, b)                         # two arrays: must not replay the aliased plan
    assert got.item() == float((a * b).sum())
    np.testing.assert_array_equal(w.grad.numpy(), a * b)


# ------------------------------------------------------------------ fit's default: jit="auto" ---

def _fit_case(kind, jit, epochs=2, **extra):
    """A small Keras-style model trained 20 steps (2 epochs of 10 batches of 8, shuffled)."""
    from tinygrad_lite.layers import (BatchNormalization, Conv2D, Dropout, Flatten, L1L2,
                                      MaxPooling2D)

    rng = np.random.default_rng(7)
    n = 80
    cnn = kind == "cnn"
    x = (rng.random((n, 8, 8, 1)) if cnn else rng.random((n, 12))).astype(np.float32)
    labels = rng.integers(0, 3, n)
    tl.manual_seed(3)
    inp = (8, 8, 1) if cnn else (12,)
    head, loss, y = Dense(3, activation="softmax"), "sparse_categorical_crossentropy", labels
    first = Dense(16, activation="relu", input_shape=inp)
    mid = []
    if kind == "cnn":
        first = Conv2D(4, 3, activation="relu", input_shape=inp)
        mid = [MaxPooling2D(2), Flatten()]
    elif kind == "categorical":
        loss, y = "categorical_crossentropy", np.eye(3, dtype=np.float32)[labels]
    elif kind == "binary":
        head, loss, y = Dense(1, activation="sigmoid"), "binary_crossentropy", labels % 2
    elif kind == "mse":
        head, loss, y = Dense(1), "mse", rng.random(n).astype(np.float32)
    elif kind == "l2":
        first = Dense(16, activation="relu", input_shape=inp, kernel_regularizer=L1L2(l2=1e-2))
    elif kind == "dropout":
        mid = [Dropout(0.3)]
    elif kind == "batchnorm":
        mid = [BatchNormalization()]
    elif kind == "custom_loss":
        loss = lambda yt, yp: ((yp - yt) * (yp - yt)).mean(axis=-1)   # noqa: E731
        head, y = Dense(1), rng.random((n, 1)).astype(np.float32)
    model = Sequential([first, *mid, head])
    model.compile(optimizer="adam", loss=loss,
                  metrics=["accuracy"] if loss.__class__ is str and "entropy" in loss else [])
    sw = rng.random(n).astype(np.float32) if kind == "sample_weight" else None
    hist = model.fit(x, y, epochs=epochs, batch_size=8, seed=5, verbose=0, sample_weight=sw,
                     validation_data=(x[:16], y[:16]), jit=jit, **extra)
    return hist, [w.copy() for w in model.get_weights()]


@pytest.mark.parametrize("kind", ["sparse", "cnn", "categorical", "binary", "mse", "l2",
                                  "sample_weight"])
def test_fit_default_captures_and_is_bitwise_equal_to_eager(backend, kind):
    h_eager, w_eager = _fit_case(kind, jit=False)
    h_auto, w_auto = _fit_case(kind, jit="auto")
    assert h_eager.params["jit"] == "eager: jit=False"
    assert h_auto.params["jit"] == "captured"
    assert h_auto.history == h_eager.history          # every loss, metric and val_ value
    _same(w_auto, w_eager)


def test_fit_default_is_auto_and_replays(monkeypatch):
    import importlib

    jit_module = importlib.import_module("tinygrad_lite.jit")
    made = []

    class Spy(jit_module.JitFunction):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            made.append(self)

    monkeypatch.setattr(jit_module, "JitFunction", Spy)
    rng = np.random.default_rng(0)
    x = rng.random((64, 784), dtype=np.float32)
    y = rng.integers(0, 10, 64)
    tl.manual_seed(0)
    model = Sequential([Dense(32, activation="relu", input_shape=(784,)),
                        Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    h = model.fit(x, y, epochs=2, batch_size=16, verbose=0)       # no jit= argument
    (step,) = made
    assert step.fallback and step.recordings == 2 and step.replays == 6
    assert h.params["jit"] == "captured"
    with pytest.raises(ValueError, match="jit must be 'auto', True or False"):
        model.fit(x, y, epochs=1, verbose=0, jit="yes")


@pytest.mark.parametrize("kind, why", [
    ("dropout", "differs between the recordings"),
    ("batchnorm", "assigning a Tensor's .data"),
    ("custom_loss", "a custom loss function"),
])
def test_fit_default_falls_back_to_eager_for_what_it_cannot_capture(kind, why):
    h_eager, w_eager = _fit_case(kind, jit=False)
    h_auto, w_auto = _fit_case(kind, jit="auto")
    assert h_auto.params["jit"].startswith("eager: ") and why in h_auto.params["jit"]
    assert h_auto.history == h_eager.history
    _same(w_auto, w_eager)


def test_fit_default_runs_a_user_defined_layer_eagerly():
    from tinygrad_lite.layers import Layer

    class Twice(Layer):
        def forward(self, x):
            return x * 2

    model = Sequential([Dense(4, input_shape=(3,)), Twice(), Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    h = model.fit(np.ones((8, 3), np.float32), np.ones(8, np.float32), verbose=0)
    assert h.params["jit"] == "eager: a layer defined outside tinygrad_lite (Twice)"


def test_fit_default_stops_on_a_non_finite_loss_before_its_update():
    """The optimizer update runs after fit has checked the loss, as in eager: a batch whose loss
    overflows leaves the weights of the batch before (here: a replayed batch)."""
    from tinygrad_lite.models import NonFiniteLossError

    rng = np.random.default_rng(0)
    x = rng.random((48, 12), dtype=np.float32)
    x[40:] = 3e38                     # the 6th batch (replayed) overflows
    y = rng.integers(0, 3, 48)
    got = []
    for jit in (False, "auto"):
        tl.manual_seed(2)
        model = Sequential([Dense(16, activation="relu", input_shape=(12,)), Dense(3)])
        model.compile(optimizer="adam", loss="mse")
        with np.errstate(over="ignore", invalid="ignore"), \
                pytest.raises(NonFiniteLossError, match="batch 6"):
            model.fit(x, np.eye(3, dtype=np.float32)[y], batch_size=8, shuffle=False,
                      verbose=0, jit=jit)
        got.append(model.get_weights())
    _same(got[1], got[0])
    assert all(np.isfinite(w).all() for w in got[1])


def test_jit_fallback_runs_uncapturable_steps_eagerly():
    w = tl.Tensor(np.ones(3, np.float32), requires_grad=True)
    w_e = tl.Tensor(np.ones(3, np.float32), requires_grad=True)

    def make(v):
        def step(x):
            loss = (v * x).sum()
            if loss.item() > 4:             # data-dependent Python control flow
                loss = loss * 2
            v.grad = None
            loss.backward()
            v.data -= 0.1 * v.grad.data
            return loss
        return step

    jitted, eager = tl.jit(make(w), fallback=True), make(w_e)
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.random(3, dtype=np.float32) * 4
        assert jitted(x).item() == eager(x).item()
    np.testing.assert_array_equal(w.data, w_e.data)
    assert jitted.replays == 0 and jitted.recordings == 1
    (why,) = jitted.fallbacks.values()
    assert "Tensor.item" in why


def test_jit_records_only_its_own_thread():
    """Another thread running eager steps while a step records is neither recorded nor
    refused; both give what they give alone."""
    import threading

    net, step = _mlp_step()
    other, other_step = _mlp_step()
    other.load_state_dict(net.state_dict())
    ref, ref_step = _mlp_step()
    ref.load_state_dict(net.state_dict())
    batches = [(tl.Tensor(x), tl.Tensor(t)) for x, t in _batches((784,), n=6)]
    jstep = tl.jit(step, modules=[net])
    stop, errors, losses = threading.Event(), [], []

    def worker():
        try:
            while not stop.is_set():
                losses.append(other_step(*batches[0]).item())
        except Exception as e:   # pragma: no cover - the assertion below reports it
            errors.append(e)

    t = threading.Thread(target=worker)
    t.start()
    try:
        got = [jstep(*b).item() for b in batches]
    finally:
        stop.set()
        t.join()
    assert not errors and losses
    want = [ref_step(*b).item() for b in batches]
    assert got == want and jstep.replays == 4


def test_replay_hands_owned_gradients_over_without_a_copy():
    """A replay makes .grad of the gradient a kernel just made (no copy); a gradient that two
    parameters share (Add hands the same array to both) is still copied, so each .grad is its
    own array, as in eager."""
    import importlib

    J = importlib.import_module("tinygrad_lite.jit")   # the module, not the function
    net, step = _mlp_step()
    jstep = tl.jit(step, modules=[net])
    for x, t in _batches((784,), n=3):
        jstep(tl.Tensor(x), tl.Tensor(t))
    (plan,) = jstep._plans.values()
    assert sum(f is J._hand_over for f, *_ in plan.steps) == 4      # 2 weights, 2 biases
    w1 = tl.Tensor(np.ones(3, np.float32), requires_grad=True)
    w2 = tl.Tensor(np.ones(3, np.float32), requires_grad=True)

    opt = SGD([w1, w2], lr=0.1)         # only its zero_grad is used

    @tl.jit
    def shared(x):
        opt.zero_grad()                       # recorded (plain Python is not replayed)
        loss = ((w1 + w2) * x).sum()        # Add hands one fresh array to both
        loss.backward()
        return loss

    for _ in range(3):
        shared(np.ones(3, np.float32))
    assert shared.replays == 1
    assert w1.grad.data is not w2.grad.data
    w1.grad.data[...] = 5                     # an in-place edit (clipping) of one .grad
    np.testing.assert_array_equal(w2.grad.data, np.ones(3, np.float32))


def test_replay_runs_each_step_in_its_recorded_grad_mode(backend):
    """The walk runs backward rules in no-grad mode, and a rule may branch on it (the fused
    recurrent backward takes its differentiable reference path under grad mode): a replay
    called with grad mode on runs them as recorded, so fit (jit) equals eager."""
    from tinygrad_lite.layers import LSTM

    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 6, 2)).astype(np.float32)
    y = x[:, :, 0].sum(axis=1, keepdims=True).astype(np.float32)
    got = []
    for jit in (False, "auto"):
        tl.manual_seed(0)
        model = Sequential([LSTM(8, input_shape=(6, 2)), Dense(1)])
        model.compile(optimizer="adam", loss="mse")
        h = model.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=False, jit=jit)
        got.append((h.history, model.get_weights(), h.params["jit"]))
    assert got[1][2] == "captured"
    assert got[1][0] == got[0][0]
    _same(got[1][1], got[0][1])


# ------------------------------------------------------------------ replay on buffers ---

def _lowered_mlp(tb, dtype=np.float32, x_grad=False, opt_cls=Adam):
    """The seed MLP's ops in the layouts the replay lowers: nn.Linear (W stored (out, in),
    tb=True) or a Keras-style Dense (W (in, out)); optionally the input needs a gradient too
    (the ReLU layer's gx product), and the step's loss is the fused cross-entropy."""
    from tinygrad_lite.ops.nn import LinearReLU, MatMul

    rng = np.random.default_rng(3)
    shapes = [(16, 12), (16,), (5, 16), (5,)] if tb else [(12, 16), (16,), (16, 5), (5,)]
    ps = [tl.Tensor((rng.standard_normal(s) * 0.3).astype(dtype), requires_grad=True)
          for s in shapes + [(12,)]]
    w1, b1, w2, b2, scale = ps
    if not x_grad:
        ps = ps[:4]
    opt = opt_cls(ps, lr=1e-2)

    def step(x, labels):
        if x_grad:
            x = x * scale                # the layer's input needs a gradient: LinearReLU's gx
        h = LinearReLU.apply(x, w1, b1, tb=tb)
        z = MatMul.apply(h, w2, tb=tb) + b2       # nn.Linear's x W^T with the flag
        loss = F.cross_entropy(z, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss, z

    return ps, step


@pytest.mark.parametrize("tb, dtype, x_grad", [(True, np.float32, False),
                                               (False, np.float64, True)],
                         ids=["linear-f32", "dense-f64-xgrad"])
def test_lowered_replay_is_bitwise_equal_to_eager(backend, tb, dtype, x_grad):
    rng = np.random.default_rng(4)
    xs = [rng.standard_normal((7, 12)).astype(dtype) for _ in range(STEPS)]
    ls = [rng.integers(0, 5, 7) for _ in range(STEPS)]
    got = []
    for jit in (False, True):
        ps, step = _lowered_mlp(tb, dtype, x_grad)
        if jit:
            step = tl.jit(step)
        outs = [tuple(o.numpy().copy() for o in step(tl.Tensor(x), lab))
                for x, lab in zip(xs, ls)]
        got.append((outs, [p.data.copy() for p in ps], step))
    (o_e, w_e, _), (o_j, w_j, jstep) = got
    for a, b in zip(o_j, o_e):
        _same(a, b)
    _same(w_j, w_e)
    assert jstep.replays == STEPS - 2
    (plan,) = jstep._plans.values()
    # LinearReLU, MatMul, Add and the cross-entropy: forward and backward (Cython backend),
    # and the un-broadcasting sums of b2 (and of the scale) on any CPU backend
    assert plan.lowered == (8 if backend.name == "cython" else 0) + (2 if x_grad else 1)


def _replay_ready(net_step, x, t, calls=3):
    step = tl.jit(net_step)
    for _ in range(calls):
        out = step(x, t)
    del out
    (plan,) = step._plans.values()
    return step, plan


def test_replay_reuses_its_buffers_and_allocates_no_large_array():
    """After the warm-up (two recordings, one replay) a replay writes into the buffers of the
    plan: the same array objects call after call, and no array as large as the first layer's
    weight gradient (784 x 128 float32, 401 kB) is allocated any more."""
    import tracemalloc
    import weakref

    if backends.current().name != "cython":
        pytest.skip("the replay lowers kernel calls of the cython backend only")
    net, step_fn = _mlp_step()
    x, t = (tl.Tensor(a) for a in _batches((784,), n=1, batch=64)[0])
    step, plan = _replay_ready(step_fn, x, t)
    assert plan.lowered > 0
    before = [weakref.ref(b.a) for b in plan.buffers]   # (a strong reference would itself
    biggest = max(b.a.nbytes for b in plan.buffers)     # make the replay take a new buffer)
    assert biggest == 784 * 128 * 4
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for _ in range(5):
            step(x, t)              # the loss is dropped at once
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert all(b.a is r() for b, r in zip(plan.buffers, before))
    assert peak < biggest // 2, f"a replay allocated {peak} bytes at its peak"


def test_replay_never_overwrites_what_the_caller_kept():
    """A loss Tensor and the .grad arrays kept from one call keep their values through the
    next calls: a buffer something else still refers to is replaced, not written."""
    if backends.current().name != "cython":
        pytest.skip("the replay lowers kernel calls of the cython backend only")
    ps, step_fn = _lowered_mlp(tb=True)
    step = tl.jit(step_fn)
    rng = np.random.default_rng(5)
    batches = [(rng.standard_normal((7, 12)).astype(np.float32), rng.integers(0, 5, 7))
               for _ in range(6)]
    kept = []
    for x, lab in batches:
        loss, z = step(tl.Tensor(x), lab)
        grads = [p.grad for p in ps]
        kept.append((loss, z, grads, loss.numpy().copy(), z.numpy().copy(),
                     [g.numpy().copy() for g in grads]))
    assert step.replays == 4
    for loss, z, grads, loss0, z0, grads0 in kept:
        _same([loss.numpy(), z.numpy()], [loss0, z0])
        _same([g.numpy() for g in grads], grads0)
    # and each call handed out arrays of its own
    assert len({id(k[1].data) for k in kept}) == len(kept)
    assert len({id(k[2][0].data) for k in kept}) == len(kept)


def test_two_threads_replaying_one_plan_get_their_own_results():
    """Buffers in use hold a reference, so a second thread replaying the same plan at the same
    time takes new buffers instead of writing into the first thread's."""
    import threading

    from tinygrad_lite.ops.nn import LinearReLU, MatMul

    rng = np.random.default_rng(6)
    w1, b1 = (tl.Tensor(rng.standard_normal(s).astype(np.float32)) for s in [(96, 128), (128,)])
    w2 = tl.Tensor(rng.standard_normal((128, 32)).astype(np.float32))

    def fwd(x):
        return MatMul.apply(LinearReLU.apply(x, w1, b1), w2)

    step = tl.jit(fwd)
    xs = [rng.standard_normal((64, 96)).astype(np.float32) for _ in range(40)]
    want = [fwd(tl.Tensor(x)).numpy() for x in xs]
    step(xs[0]), step(xs[1])                 # recorded: the rest replays
    errors = []

    def worker(order):
        for _ in range(5):
            for i in order:
                got = step(xs[i]).numpy()
                if not np.array_equal(got, want[i]):
                    errors.append(i)

    threads = [threading.Thread(target=worker, args=(o,))
               for o in (range(40), range(39, -1, -1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and step.replays == 400


@pytest.mark.parametrize("shuffle", [False, True])
def test_fit_batch_hooks_and_logs_with_and_without_a_reader(shuffle):
    """fit calls the batch hooks and builds per-batch logs only when a callback overrides a
    hook (or a bar shows them); either way the epoch numbers are the same, and a hook sees one
    call per batch with the running mean loss. Without shuffling the batches are slices."""
    from tinygrad_lite.callbacks import Callback, LambdaCallback

    rng = np.random.default_rng(8)
    x = rng.random((40, 12), dtype=np.float32)
    y = rng.integers(0, 3, 40)

    class Spy(Callback):
        def __init__(self):
            super().__init__()
            self.begin, self.end = [], []

        def on_train_batch_begin(self, batch, logs=None):
            self.begin.append((batch, logs["size"]))

        def on_train_batch_end(self, batch, logs=None):
            self.end.append((batch, logs["loss"], logs["accuracy"]))

    def run(callbacks, jit):
        tl.manual_seed(1)
        model = Sequential([Dense(8, activation="relu", input_shape=(12,)),
                            Dense(3, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        h = model.fit(x, y, epochs=2, batch_size=16, shuffle=shuffle, seed=2, verbose=0,
                      callbacks=callbacks, jit=jit)
        return h.history, model.get_weights()

    spy, ends = Spy(), []
    lam = LambdaCallback(on_train_batch_end=lambda b, logs: ends.append(logs["loss"]))
    h0, w0 = run([], jit=False)
    h1, w1 = run([spy, lam], jit="auto")
    h2, w2 = run([], jit="auto")
    assert h0 == h1 == h2
    _same(w1, w0)
    _same(w2, w0)
    assert spy.begin == [(0, 16), (1, 16), (2, 8)] * 2
    assert [b for b, *_ in spy.end] == [0, 1, 2] * 2
    assert [loss for _, loss, _ in spy.end] == ends
    assert [spy.end[2][1], spy.end[5][1]] == h0["loss"]       # the epoch means, as logged
    assert [spy.end[2][2], spy.end[5][2]] == h0["accuracy"]
