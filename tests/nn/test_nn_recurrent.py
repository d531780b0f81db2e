"""RNN, LSTM, GRU: forward against NumPy cells written here (PyTorch gate order), gradchecks
through time, shapes for batch_first / multi-layer / bidirectional, initial states."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from nn_helpers import SMALL, dbl, rng

import tinygrad_lite as tl
from tinygrad_lite import nn
from tinygrad_lite.errors import ShapeError
from tinygrad_lite.testing import gradcheck


def sig(x):
    return 1 / (1 + np.exp(-x))


def np_cell(kind, x, h, c, w_ih, w_hh, b_ih, b_hh):
    gi, gh = x @ w_ih.T + b_ih, h @ w_hh.T + b_hh
    H = h.shape[1]
    if kind == "rnn":
        return np.tanh(gi + gh), None
    if kind == "lstm":
        g = gi + gh
        i, f, gg, o = (
            sig(g[:, :H]),
            sig(g[:, H : 2 * H]),
            np.tanh(g[:, 2 * H : 3 * H]),
            sig(g[:, 3 * H :]),
        )
        c = f * c + i * gg
        return o * np.tanh(c), c
    r = sig(gi[:, :H] + gh[:, :H])
    z = sig(gi[:, H : 2 * H] + gh[:, H : 2 * H])
    n = np.tanh(gi[:, 2 * H :] + r * gh[:, 2 * H :])
    return (1 - z) * n + z * h, None


def np_rnn(kind, m, x):
    """x: (T, B, F); unidirectional, all layers. Returns output, h_n, c_n."""
    sd = m.state_dict()
    hs, cs = [], []
    for layer in range(m.num_layers):
        p = [sd[f"{n}_l{layer}"] for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        h = np.zeros((x.shape[1], m.hidden_size))
        c = np.zeros_like(h)
        out = []
        for t in range(x.shape[0]):
            h, c = np_cell(kind, x[t], h, c, *p)
            out.append(h)
        x = np.stack(out)
        hs.append(h)
        cs.append(c)
    return x, np.stack(hs), (np.stack(cs) if kind == "lstm" else None)


CLASSES = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


@SMALL
@given(
    kind=st.sampled_from(["rnn", "lstm", "gru"]),
    T=st.integers(1, 3),
    B=st.integers(1, 2),
    F=st.integers(1, 2),
    H=st.integers(1, 2),
    layers=st.integers(1, 2),
)
def test_forward_matches_numpy_and_gradcheck(kind, T, B, F, H, layers):
    tl.manual_seed(T * 7 + H)
    m = CLASSES[kind](F, H, num_layers=layers).double()
    x = dbl(rng(T).standard_normal((T, B, F)))
    out, state = m(x)
    ref_out, ref_h, ref_c = np_rnn(kind, m, x.numpy())
    np.testing.assert_allclose(out.numpy(), ref_out, rtol=1e-10, atol=1e-12)
    h = state[0] if kind == "lstm" else state
    np.testing.assert_allclose(h.numpy(), ref_h, rtol=1e-10, atol=1e-12)
    if kind == "lstm":
        np.testing.assert_allclose(state[1].numpy(), ref_c, rtol=1e-10, atol=1e-12)

    def fn(x, *ps):
        o, s = m(x)
        hn = s[1] if kind == "lstm" else s  # c_n checks the cell path of the LSTM
        return o.sum() * 0.5 + (hn * hn).sum()

    gradcheck(fn, [x] + list(m.parameters()), op=kind)


def test_parameter_names_and_shapes_follow_pytorch():
    lstm = nn.LSTM(3, 4, num_layers=2)
    assert [(k, v.shape) for k, v in lstm.state_dict().items()] == [
        ("weight_ih_l0", (16, 3)),
        ("weight_hh_l0", (16, 4)),
        ("bias_ih_l0", (16,)),
        ("bias_hh_l0", (16,)),
        ("weight_ih_l1", (16, 4)),
        ("weight_hh_l1", (16, 4)),
        ("bias_ih_l1", (16,)),
        ("bias_hh_l1", (16,)),
    ]
    gru = nn.GRU(2, 3, bidirectional=True, bias=False)
    assert list(gru.state_dict()) == [
        "weight_ih_l0",
        "weight_hh_l0",
        "weight_ih_l0_reverse",
        "weight_hh_l0_reverse",
    ]
    tl.manual_seed(0)
    bound = 1 / np.sqrt(4)
    assert all(np.abs(p.numpy()).max() <= bound for p in nn.LSTM(3, 4).parameters())


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_batch_first_bidirectional_and_initial_state(kind):
    tl.manual_seed(1)
    m = CLASSES[kind](2, 3, num_layers=2, batch_first=True, bidirectional=True).double()
    x = dbl(rng().standard_normal((4, 5, 2)), False)
    out, state = m(x)
    assert out.shape == (4, 5, 6)
    h = state[0] if kind == "lstm" else state
    assert h.shape == (4, 4, 3)
    # batch_first is only a transpose
    m.batch_first = False
    out_tm, _ = m(x.swapaxes(0, 1))
    np.testing.assert_allclose(out_tm.swapaxes(0, 1).numpy(), out.numpy(), rtol=1e-12)
    # the reverse direction of the last step equals running the reversed sequence forward
    m1 = CLASSES[kind](2, 3, bidirectional=True).double()
    xs = x.swapaxes(0, 1)
    o, _ = m1(xs)
    fwd = CLASSES[kind](2, 3).double()
    sd = {k.replace("_reverse", ""): v for k, v in m1.state_dict().items() if "reverse" in k}
    fwd.load_state_dict(sd)
    o_rev, _ = fwd(xs[::-1])
    np.testing.assert_allclose(o.numpy()[:, :, 3:], o_rev.numpy()[::-1], rtol=1e-10)
    # a given initial state is used (and checked)
    m2 = CLASSES[kind](2, 3).double()
    h0 = dbl(rng(1).standard_normal((1, 4, 3)), False)
    hx = (h0, h0 * 0.5) if kind == "lstm" else h0
    o_a, _ = m2(xs, hx)
    o_b, _ = m2(xs)
    assert not np.allclose(o_a.numpy(), o_b.numpy())
    with pytest.raises(ShapeError, match="initial state"):
        m2(xs, (h0[:, :2],) * 2 if kind == "lstm" else h0[:, :2])


def test_unbatched_input_and_bad_input():
    tl.manual_seed(2)
    gru = nn.GRU(2, 3).double()
    x = dbl(rng().standard_normal((4, 2)), False)
    o, h = gru(x)
    assert o.shape == (4, 3) and h.shape == (1, 3)
    ob, _ = gru(x.unsqueeze(1))
    np.testing.assert_allclose(ob.numpy()[:, 0], o.numpy())
    with pytest.raises(ShapeError, match="input"):
        gru(dbl(np.zeros((4, 1, 5)), False))


def test_rnn_relu_and_dropout_between_layers():
    tl.manual_seed(3)
    m = nn.RNN(2, 3, nonlinearity="relu", num_layers=2, dropout=0.5)
    x = tl.randn(5, 2, 2)
    a, _ = m(x)
    b, _ = m(x)
    assert np.all(a.numpy() >= 0)
    assert not np.allclose(a.numpy(), b.numpy())  # dropout is random while training
    m.eval()
    np.testing.assert_array_equal(m(x)[0].numpy(), m(x)[0].numpy())
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNN(2, 3, nonlinearity="sigmoid")
