"""The compiled inference path (tinygrad_lite/plan.py): equal to eager, sees new weights, one plan
per input shape, bypassed in train mode and grad mode, eager for what it cannot run."""

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import nn, plan
from tinygrad_lite.layers import Activation, Dense, Dropout, Flatten
from tinygrad_lite.models import Sequential
from tinygrad_lite.optim import SGD, Adam


def _mlp(seed=0, softmax=True):
    tl.manual_seed(seed)
    m = Sequential([Dense(32, activation="relu", input_shape=(13,)), Dropout(0.3),
                    Dense(7, activation="softmax" if softmax else None)])
    m.compile("adam", "sparse_categorical_crossentropy")
    return m


def _eager_keras(m, x):
    m.eval()
    with tl.no_grad():
        return m._forward(tl.Tensor(x)).numpy()


def _eager_nn(net, x):
    with tl.no_grad():
        return tl.nn.Module.__call__(net, tl.Tensor(x)).numpy()


def _plans(owner):
    return {k: v[1] for k, v in owner.__dict__.get("_plans", {}).items()}


@pytest.mark.parametrize("rows", [1, 5, 64])
def test_keras_predict_plan_is_bitwise_eager_without_softmax(backend, rows):
    m = _mlp(softmax=False)
    x = np.random.default_rng(rows).standard_normal((rows, 13))   # float64: predict casts it
    got = m.predict(x, batch_size=rows)
    (p,) = _plans(m).values()
    assert p is not None, "the MLP must run through a plan"
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, _eager_keras(m, x.astype(np.float32)))


def test_keras_predict_plan_softmax_matches_eager(backend):
    m = _mlp()
    x = np.random.default_rng(1).standard_normal((9, 13)).astype(np.float32)
    got = m.predict(x)
    want = _eager_keras(m, x)
    if backend.name == "numpy":  # the same NumPy formula: the same bits
        np.testing.assert_array_equal(got, want)
    else:                        # the Cython softmax_rows (expf): within a few ulp
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-7)
    np.testing.assert_allclose(got.sum(1), 1.0, rtol=1e-5)


def test_predict_sees_weight_changes():
    m = _mlp()
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 13)).astype(np.float32)
    y = rng.integers(0, 7, 4)
    first = m.predict(x)
    # set_weights (in place)
    m.set_weights([w * 0.5 for w in m.get_weights()])
    np.testing.assert_allclose(m.predict(x), _eager_keras(m, x), rtol=2e-6, atol=1e-7)
    assert not np.allclose(m.predict(x), first)
    # an optimizer step (fit: in place through the fused Adam kernel)
    before = m.predict(x)
    m.fit(x, y, epochs=1, batch_size=4, verbose=0)
    after = m.predict(x)
    assert not np.array_equal(before, after)
    np.testing.assert_allclose(after, _eager_keras(m, x), rtol=2e-6, atol=1e-7)
    # load_state_dict (new arrays)
    sd = {k: v * 2 for k, v in m.state_dict().items()}
    m.load_state_dict(sd)
    np.testing.assert_allclose(m.predict(x), _eager_keras(m, x), rtol=2e-6, atol=1e-7)
    # an in-place edit of p.data
    m.layers[0].bias.data[...] = 3.0
    np.testing.assert_allclose(m.predict(x), _eager_keras(m, x), rtol=2e-6, atol=1e-7)
    # a weight that no longer fits (another dtype): the plan is dropped, the call runs eagerly
    k = m.layers[2].kernel
    k.data = np.asfortranarray(k.data)          # same values, a layout the GEMM step refuses
    np.testing.assert_allclose(m.predict(x), _eager_keras(m, x), rtol=2e-6, atol=1e-7)


def test_shape_change_makes_a_new_plan():
    m = _mlp()
    rng = np.random.default_rng(3)
    m.predict(rng.standard_normal((3, 13)).astype(np.float32))
    m.predict(rng.standard_normal((3, 13)).astype(np.float32))
    assert len(_plans(m)) == 1
    m.predict(rng.standard_normal((5, 13)).astype(np.float32), batch_size=5)
    assert len(_plans(m)) == 2
    shapes = sorted(k[0] for k in _plans(m))
    assert shapes == [(3, 13), (5, 13)]


def test_predict_batches_with_a_partial_last_batch():
    m = _mlp()
    x = np.random.default_rng(4).standard_normal((70, 13)).astype(np.float32)
    got = m.predict(x, batch_size=32)
    assert got.shape == (70, 7)
    np.testing.assert_allclose(got, _eager_keras(m, x), rtol=2e-6, atol=1e-7)
    assert {k[0] for k in _plans(m)} == {(32, 13), (6, 13)}


def test_predict_returns_fresh_arrays():
    m = _mlp()
    x = np.ones((2, 13), np.float32)
    a = m.predict(x)
    b = m.predict(x * 2)
    assert not np.shares_memory(a, b)
    assert not np.array_equal(a, b)


def _net(seed=0):
    tl.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.5), nn.Linear(4 * 3 * 3, 11),
                         nn.ReLU(), nn.Linear(11, 5), nn.Softmax(dim=1))


def test_nn_sequential_plan_equals_eager(backend):
    net = _net()
    net.train()
    x = tl.Tensor(np.random.default_rng(5).standard_normal((6, 2, 7, 7)).astype(np.float32))
    net(x)                                      # a train step moves the BatchNorm statistics
    net.eval()
    with tl.no_grad():
        got = net(x)
    assert isinstance(got, tl.Tensor) and not got.requires_grad
    assert next(iter(_plans(net).values())) is not None
    np.testing.assert_allclose(got.numpy(), _eager_nn(net, x.numpy()), rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nn_linear_relu_chain_is_bitwise_eager(backend, dtype):
    tl.manual_seed(0)
    net = nn.Sequential(nn.Linear(17, 31), nn.ReLU(), nn.Linear(31, 3)).eval().to(dtype)
    for rows in (1, 2, 37):
        x = np.random.default_rng(rows).standard_normal((rows, 17)).astype(dtype)
        with tl.no_grad():
            got = net(tl.Tensor(x)).numpy()
        np.testing.assert_array_equal(got, _eager_nn(net, x))
    assert len(_plans(net)) == 3


def test_nn_plan_sees_optimizer_step_and_state_dict():
    tl.manual_seed(1)
    net = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 2))
    x = tl.Tensor(np.random.default_rng(6).standard_normal((4, 5)).astype(np.float32))
    net.eval()
    with tl.no_grad():
        before = net(x).numpy()
    for opt in (SGD(net.parameters(), lr=0.1), Adam(net.parameters(), lr=0.1)):
        net.train()
        opt.zero_grad()
        net(x).sum().backward()
        opt.step()
        net.eval()
        with tl.no_grad():
            after = net(x).numpy()
        assert not np.array_equal(before, after)
        np.testing.assert_array_equal(after, _eager_nn(net, x.numpy()))
        before = after
    net.load_state_dict({k: np.zeros_like(v) for k, v in net.state_dict().items()})
    with tl.no_grad():
        np.testing.assert_array_equal(net(x).numpy(), np.zeros((4, 2), np.float32))
    net[0].weight = nn.Parameter(np.ones((8, 5), np.float32))   # a new Parameter object
    net[0].bias = nn.Parameter(np.ones(8, np.float32))
    with tl.no_grad():
        np.testing.assert_array_equal(net(x).numpy(), _eager_nn(net, x.numpy()))


def test_train_mode_and_grad_mode_bypass_the_plan():
    tl.manual_seed(2)
    net = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 2))
    x = tl.Tensor(np.ones((3, 5), np.float32))
    y = net(x)                                  # train mode, grad on: eager, with a graph
    assert y.requires_grad and not _plans(net)
    net.eval()
    y = net(x)                                  # grad mode on: eager, differentiable
    assert y.requires_grad and not _plans(net)
    y.sum().backward()
    assert net[0].weight.grad is not None
    net.train()
    with tl.no_grad():
        net(x)                                  # train mode under no_grad: eager (dropout on)
    assert not _plans(net)
    net.eval()
    net[2].train()                              # one sub-layer in train mode: eager
    with tl.no_grad():
        net(x)
    assert not _plans(net)


def test_hooks_and_unsupported_layers_run_eagerly():
    tl.manual_seed(3)
    net = nn.Sequential(nn.Linear(4, 4), nn.GELU(), nn.Linear(4, 2)).eval()
    x = tl.Tensor(np.ones((2, 4), np.float32))
    with tl.no_grad():
        got = net(x)
    assert list(_plans(net).values()) == [None]     # GELU has no step: remembered as eager
    np.testing.assert_array_equal(got.numpy(), _eager_nn(net, x.numpy()))
    seen = []
    net2 = nn.Sequential(nn.Linear(4, 2)).eval()
    net2[0].register_forward_hook(lambda mod, inp, out: seen.append(out.shape))
    with tl.no_grad():
        net2(x)
    assert seen == [(2, 2)] and not _plans(net2)


def test_editing_the_chain_rebuilds_the_plan():
    tl.manual_seed(4)
    net = nn.Sequential(nn.Linear(4, 3)).eval()
    x = tl.Tensor(np.ones((2, 4), np.float32))
    with tl.no_grad():
        net(x)
        net.append(nn.ReLU())
        net.append(nn.Linear(3, 6))
        got = net(x)
    assert got.shape == (2, 6)
    np.testing.assert_array_equal(got.numpy(), _eager_nn(net, x.numpy()))


def test_keras_activation_and_flatten_layers_plan():
    tl.manual_seed(5)
    m = Sequential([Flatten(input_shape=(3, 4)), Dense(6, activation="tanh"),
                    Activation("sigmoid"), Dense(3), Activation("softmax")])
    m.compile("sgd", "sparse_categorical_crossentropy")
    x = np.random.default_rng(7).standard_normal((5, 3, 4)).astype(np.float32)
    got = m.predict(x)
    assert next(iter(_plans(m).values())) is not None
    np.testing.assert_allclose(got, _eager_keras(m, x), rtol=2e-6, atol=1e-7)


def test_integer_input_and_other_dtypes_fall_back():
    tl.manual_seed(6)
    net = nn.Sequential(nn.Linear(3, 2)).eval()
    assert plan.run(net, tuple(net), np.ones((2, 3), np.int64)) is None
    assert plan.run(net, tuple(net), np.ones((2, 3), np.float64)) is None  # dtype != weights


def test_fortran_ordered_weights_from_load_state_dict(backend):
    """load_state_dict copies transposed arrays into C order (as PyTorch copies into the
    parameter's layout); Fortran-ordered weights set by hand are read by the plan with the
    transpose flag flipped (as the backend does) and stay bitwise eager."""
    tl.manual_seed(7)
    net = nn.Sequential(nn.Linear(9, 6), nn.ReLU(), nn.Linear(6, 3)).eval()
    rng = np.random.default_rng(8)
    w0 = rng.standard_normal((9, 6)).astype(np.float32).T
    w2 = rng.standard_normal((6, 3)).astype(np.float32).T
    net.load_state_dict({"0.weight": w0, "0.bias": np.zeros(6, np.float32),
                         "2.weight": w2, "2.bias": np.zeros(3, np.float32)})
    assert net[0].weight.data.flags.c_contiguous
    np.testing.assert_array_equal(net[0].weight.data, w0)
    net[0].weight.data, net[2].weight.data = w0, w2          # Fortran order, set directly
    assert net[0].weight.data.flags.f_contiguous and not net[0].weight.data.flags.c_contiguous
    x = rng.standard_normal((4, 9)).astype(np.float32)
    with tl.no_grad():
        got = net(tl.Tensor(x)).numpy()
    assert next(iter(_plans(net).values())) is not None
    np.testing.assert_array_equal(got, _eager_nn(net, x))


def test_a_weight_that_stops_fitting_runs_eagerly_and_is_remembered():
    tl.manual_seed(9)
    net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2)).eval()
    x = tl.Tensor(np.ones((3, 4), np.float32))
    with tl.no_grad():
        net(x)
        assert next(iter(_plans(net).values())) is not None
        net[2].weight.data = np.ones((4, 6), np.float32)[::2, :]   # strided: no GEMM layout
        got = net(x)          # Stale: this call runs eagerly
        np.testing.assert_array_equal(got.numpy(), _eager_nn(net, x.numpy()))
        net(x)                # rebuilt once; the weight still does not fit: remembered as eager
        assert list(_plans(net).values()) == [None]
        np.testing.assert_array_equal(net(x).numpy(), _eager_nn(net, x.numpy()))


def test_concurrent_predicts_from_threads_agree():
    """The plan's buffers are used by one call at a time; other threads run eagerly."""
    import threading

    m = _mlp()
    rng = np.random.default_rng(10)
    xs = [rng.standard_normal((64, 13)).astype(np.float32) for _ in range(8)]
    want = [m.predict(x, batch_size=64) for x in xs]
    got = [None] * len(xs)

    def work(i):
        for _ in range(20):
            got[i] = m.predict(xs[i], batch_size=64)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=2e-6, atol=1e-7)
