"""The fused recurrent Functions (nn/_recurrent_core.py, kernels/cpu/rnn.pxi).

* every variant (RNN tanh/relu, LSTM, GRU; PyTorch and Keras layouts and gate orders;
  multi-layer, bidirectional, batch_first, given initial states, no biases): the fused path
  against the Tensor-op reference formulation -- values and the gradients of every input;
* nn.RNN/LSTM/GRU against PyTorch: values, h_n/c_n, gradients of every weight, of x and of
  h0/c0;
* float64 gradchecks of the fused Functions on Hypothesis-chosen small shapes;
* double backward goes down the reference fallback (and equals the all-reference result);
* the Cython step kernels against the NumPy ones (odd sizes, every ISA, both dtypes);
* the Keras layers on the core (relu / other activations included);
* argument errors.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from nn_helpers import SMALL

import tinygrad_lite as tl
from tinygrad_lite import autograd, backends, layers, nn
from tinygrad_lite.errors import DTypeError, ShapeError
from tinygrad_lite.nn import _recurrent_core as C
from tinygrad_lite.nn import functional as F
from tinygrad_lite.testing import gradcheck

KINDS = {"rnn": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}
GATES = {("lstm", "torch"): "ifgo", ("lstm", "keras"): "ifgo", ("gru", "torch"): "rzn",
         ("gru", "keras"): "zrn"}


def _make(kind, layout, layers_, bidir, n_in, H, bias, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    G = KINDS[kind] * H
    D = 2 if bidir else 1
    ws = []
    for layer in range(layers_):
        fin = n_in if layer == 0 else H * D
        for _ in range(D):
            shp = [(fin, G), (H, G)] if layout == "keras" else [(G, fin), (G, H)]
            w = [tl.Tensor((rng.standard_normal(s) * 0.5).astype(dtype), requires_grad=True)
                 for s in shp]
            for on in bias:
                w.append(tl.Tensor((rng.standard_normal(G) * 0.3).astype(dtype),
                                   requires_grad=True) if on else None)
            ws.append(tuple(w))
    return ws


def _run(kind, layout, layers_, bidir, batch_first, with_state, bias, fused, seed=0,
         dtype=np.float64, T=4, B=3, n_in=2, H=3):
    """Forward + backward of a random weighted loss; returns every value and gradient."""
    rng = np.random.default_rng(seed + 100)
    ws = _make(kind, layout, layers_, bidir, n_in, H, bias, seed, dtype)
    D = 2 if bidir else 1
    x = tl.Tensor(rng.standard_normal((B, T, n_in) if batch_first else (T, B, n_in))
                  .astype(dtype), requires_grad=True)
    n_states = 2 if kind == "lstm" else 1
    states = [tl.Tensor(rng.standard_normal((layers_ * D, B, H)).astype(dtype),
                        requires_grad=True) for _ in range(n_states)]
    hx = None if not with_state else (tuple(states) if kind == "lstm" else states[0])
    extra = {"nonlinearity": "relu"} if kind == "rnn_relu" else {}
    if kind in ("lstm", "gru"):
        extra["gates"] = GATES[kind, layout]
    base = "rnn" if kind.startswith("rnn") else kind
    out, st_ = C.recurrent(base, x, hx, ws,
                           num_layers=layers_, bidirectional=bidir, batch_first=batch_first,
                           layout=layout, fused=fused, **extra)
    finals = st_ if isinstance(st_, tuple) else (st_,)
    loss = (out * tl.Tensor(rng.standard_normal(out.shape).astype(dtype))).sum()
    for f in finals:
        loss = loss + (f * tl.Tensor(rng.standard_normal(f.shape).astype(dtype))).sum()
    loss.backward()
    leaves = [t for w in ws for t in w if t is not None] + [x] + (states if with_state else [])
    return [out.numpy()] + [f.numpy() for f in finals] + [t.grad.numpy() for t in leaves]


VARIANTS = [  # (layers, bidirectional, batch_first, with_state, biases (b_ih, b_hh))
    (1, False, False, False, (True, True)),
    (2, True, True, True, (True, True)),
    (2, False, False, True, (True, False)),
    (1, True, False, True, (False, False)),
    (1, False, True, False, (False, True)),
]


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("layout", ["torch", "keras"])
@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "L{}{}{}{}b{}{}".format(
    v[0], "-bi" if v[1] else "", "-bf" if v[2] else "", "-h0" if v[3] else "", *map(int, v[4])))
def test_fused_matches_reference(kind, layout, variant, backend):
    got = _run(kind, layout, *variant, fused=True)
    want = _run(kind, layout, *variant, fused=False)
    assert len(got) == len(want)
    for k, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-11, err_msg=f"entry {k}")


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_relu"])
def test_fused_float32_matches_reference(kind, backend):
    got = _run(kind, "torch", 2, True, False, True, (True, True), fused=True,
               dtype=np.float32, T=7, B=5, H=13)
    want = _run(kind, "torch", 2, True, False, True, (True, True), fused=False,
                dtype=np.float32, T=7, B=5, H=13)
    truth = _run(kind, "torch", 2, True, False, True, (True, True), fused=False,
                 dtype=np.float64, T=7, B=5, H=13)
    # Both float32 paths round differently (BLAS order vs our GEMM); a ReLU recurrence amplifies
    # that along the sequence. So judge the fused path against the float64 truth: it must be as
    # accurate as the float32 reference formulation, within a small factor.
    for k, (g, w, t) in enumerate(zip(got, want, truth)):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, w, rtol=2e-3, atol=2e-5, err_msg=f"entry {k}")
        err_fused, err_ref = np.abs(g - t).max(), np.abs(w - t).max()
        scale = np.abs(t).max()
        assert err_fused <= 4 * err_ref + 1e-6 * scale, (k, err_fused, err_ref, scale)


def test_fused_path_is_one_node_per_layer_and_direction():
    m = nn.LSTM(2, 3, num_layers=2, bidirectional=True).double()
    out, _ = m(tl.Tensor(np.ones((5, 1, 2))))
    seen, stack = set(), [out]
    names = []
    while stack:
        t = stack.pop()
        if id(t) in seen or t._node is None:
            continue
        seen.add(id(t))
        names.append(t._node.fn.op_name)
        stack.extend(t._node.parents)
    assert names.count("lstm_sequence") == 4
    assert "sigmoid" not in names and "tanh" not in names


# ------------------------------------------------------------------ against PyTorch ---

TORCH_VARIANTS = [  # kwargs of the module
    dict(num_layers=1),
    dict(num_layers=2, bidirectional=True),
    dict(num_layers=2, batch_first=True),
    dict(num_layers=1, bidirectional=True, batch_first=True),
    dict(num_layers=1, bias=False),
]


@pytest.mark.parametrize("kind", ["rnn", "rnn_relu", "lstm", "gru"])
@pytest.mark.parametrize("kw", TORCH_VARIANTS, ids=lambda kw: "-".join(f"{k}{v}" for k, v in
                                                                       kw.items()))
def test_against_pytorch(kind, kw, torch, backend):
    T, B, n_in, H = 5, 3, 4, 6
    cls = {"rnn": nn.RNN, "rnn_relu": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[kind]
    tcls = {"rnn": torch.nn.RNN, "rnn_relu": torch.nn.RNN, "lstm": torch.nn.LSTM,
            "gru": torch.nn.GRU}[kind]
    extra = {"nonlinearity": "relu"} if kind == "rnn_relu" else {}
    tl.manual_seed(1)
    m = cls(n_in, H, **kw, **extra).double()
    tm = tcls(n_in, H, **kw, **extra).double()
    tm.load_state_dict({k: torch.tensor(v) for k, v in m.state_dict().items()})
    rng = np.random.default_rng(5)
    D = 2 if kw.get("bidirectional") else 1
    L = kw.get("num_layers", 1)
    x0 = rng.standard_normal((B, T, n_in) if kw.get("batch_first") else (T, B, n_in))
    s0 = [rng.standard_normal((L * D, B, H)) for _ in range(2 if kind == "lstm" else 1)]
    x = tl.Tensor(x0, requires_grad=True)
    states = [tl.Tensor(s, requires_grad=True) for s in s0]
    tx = torch.tensor(x0, requires_grad=True)
    tstates = [torch.tensor(s, requires_grad=True) for s in s0]
    hx = tuple(states) if kind == "lstm" else states[0]
    thx = tuple(tstates) if kind == "lstm" else tstates[0]
    out, fin = m(x, hx)
    tout, tfin = tm(tx, thx)
    fin = fin if isinstance(fin, tuple) else (fin,)
    tfin = tfin if isinstance(tfin, tuple) else (tfin,)
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    for a, b in zip(fin, tfin):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-10, atol=1e-12)
    ws = [rng.standard_normal(out.shape)] + [rng.standard_normal(f.shape) for f in fin]
    loss = sum(((o * tl.Tensor(w)).sum() for o, w in zip([out, *fin], ws)), tl.Tensor(0.0))
    tloss = sum((o * torch.tensor(w)).sum() for o, w in zip([tout, *tfin], ws))
    loss.backward()
    tloss.backward()
    tparams = dict(tm.named_parameters())
    for name, p in m.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tparams[name].grad.numpy(), rtol=1e-9,
                                   atol=1e-11, err_msg=name)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-9, atol=1e-11)
    for s, ts in zip(states, tstates):
        np.testing.assert_allclose(s.grad.numpy(), ts.grad.numpy(), rtol=1e-9, atol=1e-11)


# ------------------------------------------------------------------ gradchecks ---

@SMALL
@given(kind=st.sampled_from(["rnn", "lstm", "gru"]), T=st.integers(1, 4), B=st.integers(1, 2),
       n_in=st.integers(1, 3), H=st.integers(1, 3), layout=st.sampled_from(["torch", "keras"]),
       reverse=st.booleans(), n_bias=st.integers(0, 2), perm=st.randoms(use_true_random=False),
       seed=st.integers(0, 2 ** 16))
def test_fused_function_gradcheck(kind, T, B, n_in, H, layout, reverse, n_bias, perm, seed):
    rng = np.random.default_rng(seed)
    G = KINDS[kind] * H
    shapes = [(T, B, n_in), (B, H)] + ([(B, H)] if kind == "lstm" else [])
    shapes += [(n_in, G), (H, G)] if layout == "keras" else [(G, n_in), (G, H)]
    shapes += [(G,)] * n_bias
    ins = [tl.Tensor(rng.uniform(-1, 1, s), requires_grad=True) for s in shapes]
    kw = dict(layout=layout, reverse=reverse)
    if kind != "rnn":
        letters = list("ifgo" if kind == "lstm" else "rzn")
        perm.shuffle(letters)
        kw["gates"] = "".join(letters)
    fn = C._FUSED[kind]
    for name in ("numpy", "cython") if "cython" in backends.names() else ("numpy",):
        with backends.use(name):
            gradcheck(lambda *ts: fn.apply(*ts, **kw), ins, seed=seed, op=f"{kind} {name}")


# ------------------------------------------------------------------ double backward ---

def _count_reference(monkeypatch):
    calls = []
    real = C._reference_pass

    def counting(*a, **k):
        calls.append(a[0])
        return real(*a, **k)

    monkeypatch.setattr(C, "_reference_pass", counting)
    return calls


def test_double_backward_through_lstm_uses_the_reference(monkeypatch, backend):
    rng = np.random.default_rng(0)
    tl.manual_seed(0)
    m = nn.LSTM(2, 3, num_layers=2, bidirectional=True).double()
    x0 = rng.standard_normal((4, 2, 2))
    v = rng.standard_normal((4, 2, 2))

    def hvp(fused):
        x = tl.Tensor(x0, requires_grad=True)
        weights = [m._params(s) for layer in range(2) for s in m._suffixes(layer)]
        out, (h, c) = C.recurrent("lstm", x, None, weights, num_layers=2, bidirectional=True,
                                  fused=fused)
        loss = (out ** 2).sum() + (h * c).sum()
        (gx,) = autograd.grad(loss, x, create_graph=True)
        (gv,) = autograd.grad((gx * tl.Tensor(v)).sum(), x)
        return gx.numpy(), gv.numpy()

    calls = _count_reference(monkeypatch)
    x = tl.Tensor(x0, requires_grad=True)
    out, _ = m(x)
    out.sum().backward()                       # first order: the fused backward only
    assert calls == []
    gx, gv = hvp(True)
    assert calls.count("lstm") == 4            # one fallback per layer and direction
    gx_ref, gv_ref = hvp(False)
    np.testing.assert_allclose(gx, gx_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gv, gv_ref, rtol=1e-9, atol=1e-11)
    assert np.abs(gv).max() > 1e-3             # a real second derivative, not zeros


def test_double_backward_does_not_walk_above_the_layer():
    """The fallback differentiates only the recurrent pass: the producer of x runs its backward
    once per outer walk, not again inside the fallback."""
    calls = []

    @autograd.register("test_counting_identity_rnn")
    class Ident(autograd.Function):
        @staticmethod
        def forward(ctx, a):
            return a.copy()

        @staticmethod
        def backward(ctx, g):
            calls.append(1)
            return g

    try:
        rng = np.random.default_rng(1)
        m = nn.GRU(2, 3).double()
        x = tl.Tensor(rng.standard_normal((3, 2, 2)), requires_grad=True)
        out, _ = m(Ident.apply(x))
        (gx,) = autograd.grad((out ** 2).sum(), x, create_graph=True)
        assert len(calls) == 1
        assert gx.requires_grad
    finally:
        del autograd.REGISTRY["test_counting_identity_rnn"]


# ------------------------------------------------------------------ Cython vs NumPy ---

def _kernel_cases():
    for kind in ("lstm", "gru", "rnn"):
        for T, B, H, keras, reverse in [(1, 1, 1, False, False), (5, 3, 7, True, True),
                                        (2, 7, 13, False, True), (3, 2, 5, True, False),
                                        (2, 33, 67, False, False)]:    # W_hh packed once
            yield kind, T, B, H, keras, reverse
    yield "lstm", 2, 40, 100, True, True                             # threaded step GEMM


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind,T,B,H,keras,reverse", list(_kernel_cases()))
def test_cython_step_kernels_match_numpy(kind, T, B, H, keras, reverse, dtype):
    if "cython" not in backends.names():
        pytest.skip("the Cython extension is not built (or TINYGRAD_LITE_DISABLE_KERNELS=1)")
    from tinygrad_lite.backends.cython_backend import _cpu

    rng = np.random.default_rng(T * 100 + H)
    n = {"lstm": 4, "gru": 3, "rnn": 1}[kind]
    G = n * H
    offs = tuple(int(o) * H for o in rng.permutation(n))

    def a(*s, scale=1.0):
        return (rng.standard_normal(s) * scale).astype(dtype)

    gates0 = a(T, B, G, scale=2.0)
    w = a(H, G, scale=0.6) if keras else a(G, H, scale=0.6)
    h0, c0 = a(B, H), a(B, H)
    b_hh = a(G) if reverse else None        # GRU: with and without the recurrent bias
    tol = dict(rtol=1e-4, atol=5e-5) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-12)
    prev = _cpu.isa()
    try:
        for isa in _cpu.supported_isas():
            _cpu.set_isa(isa)
            res = {}
            for impl in ("numpy", "cython"):
                g = gates0.copy()
                if kind == "lstm":
                    out, cs, tcs = (np.empty((m, B, H), dtype) for m in (T + 1, T, T))
                    args = (g, w, keras, h0, c0, out, cs, tcs, offs, reverse)
                    gout = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
                    da, dh0, dc0 = np.empty_like(g), np.empty_like(h0), np.empty_like(c0)
                    bargs = (gout, g, w, keras, h0, c0, out, cs, tcs, offs, reverse, da, dh0,
                             dc0)
                    fw, bw = ((C._np_lstm_steps, C._np_lstm_steps_backward) if impl == "numpy"
                              else (_cpu.lstm_steps, _cpu.lstm_steps_backward))
                    keep = (g, out, cs, tcs, da, dh0, dc0)
                elif kind == "gru":
                    out, hn = np.empty((T, B, H), dtype), np.empty((T, B, H), dtype)
                    args = (g, w, b_hh, keras, h0, out, hn, offs, reverse)
                    gout = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
                    dxa, dha, dh0 = np.empty_like(g), np.empty_like(g), np.empty_like(h0)
                    bargs = (gout, g, w, keras, h0, out, hn, offs, reverse, dxa, dha, dh0)
                    fw, bw = ((C._np_gru_steps, C._np_gru_steps_backward) if impl == "numpy"
                              else (_cpu.gru_steps, _cpu.gru_steps_backward))
                    keep = (g, out, hn, dxa, dha, dh0)
                else:
                    relu = not keras
                    out = np.empty((T, B, H), dtype)
                    args = (g, w, keras, h0, out, relu, reverse)
                    gout = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
                    da, dh0 = np.empty_like(g), np.empty_like(h0)
                    bargs = (gout, w, keras, h0, out, relu, reverse, da, dh0)
                    fw, bw = ((C._np_rnn_steps, C._np_rnn_steps_backward) if impl == "numpy"
                              else (_cpu.rnn_steps, _cpu.rnn_steps_backward))
                    keep = (out, da, dh0)
                threads = () if impl == "numpy" else (2,)   # used when the step GEMM is big
                fw(*args, *threads)
                bw(*bargs, *threads)
                res[impl] = [k.copy() for k in keep]
            for k, (x, y) in enumerate(zip(res["cython"], res["numpy"])):
                np.testing.assert_allclose(x, y, err_msg=f"{kind} {isa} array {k}", **tol)
    finally:
        _cpu.set_isa(prev)


def test_cython_step_kernels_check_shapes():
    if "cython" not in backends.names():
        pytest.skip("the Cython extension is not built (or TINYGRAD_LITE_DISABLE_KERNELS=1)")
    from tinygrad_lite.backends.cython_backend import _cpu

    f = np.float32
    g = np.zeros((2, 3, 8), f)
    h0 = np.zeros((3, 2), f)
    out, cs = np.zeros((3, 3, 2), f), np.zeros((2, 3, 2), f)
    with pytest.raises(ValueError, match="w_hh must have shape"):
        _cpu.lstm_steps(g, np.zeros((8, 3), f), False, h0, h0, out, cs, cs.copy(),
                        (0, 2, 4, 6), False)
    with pytest.raises(ValueError, match="offs must be"):
        _cpu.lstm_steps(g, np.zeros((8, 2), f), False, h0, h0, out, cs, cs.copy(),
                        (0, 2, 2, 6), False)
    with pytest.raises(ValueError, match="out must have shape"):
        _cpu.lstm_steps(g, np.zeros((8, 2), f), False, h0, h0, cs, cs, cs.copy(),
                        (0, 2, 4, 6), False)


# ------------------------------------------------------------------ Keras layers ---

@pytest.mark.parametrize("cls,activation", [(layers.SimpleRNN, "tanh"), (layers.SimpleRNN, "relu"),
                                            (layers.SimpleRNN, "sigmoid"), (layers.LSTM, "tanh"),
                                            (layers.LSTM, "relu"), (layers.GRU, "tanh"),
                                            (layers.GRU, "relu")])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_keras_layers_match_the_oracle(cls, activation, return_sequences, monkeypatch, backend):
    kind = {layers.SimpleRNN: "rnn", layers.LSTM: "lstm", layers.GRU: "gru"}[cls]
    calls = _count_reference(monkeypatch)
    tl.manual_seed(3)
    layer = cls(5, activation=activation, return_sequences=return_sequences)
    layer.build((4, 3))
    rng = np.random.default_rng(2)
    for _, w in layer.weight_tensors():
        w.data[...] = rng.uniform(-0.5, 0.5, w.shape).astype(w.dtype)
    x0 = rng.standard_normal((2, 4, 3)).astype(np.float32)
    y = layer(tl.Tensor(x0))
    fused = activation == "tanh" or (kind == "rnn" and activation == "relu")
    assert (calls == []) == fused
    # oracle: Keras layout, time-major
    k, u = layer.kernel.numpy(), layer.recurrent_kernel.numpy()
    b = layer.bias.numpy()
    biases = (b[0], b[1]) if kind == "gru" else (b,)
    if fused:
        import reference as ref

        seq = ref.recurrent_sequence(kind, x0.swapaxes(0, 1).astype(np.float64),
                                     np.zeros((2, 5)), np.zeros((2, 5)), k, u, biases,
                                     layout="keras", gates={"rnn": None, "lstm": "ifgo",
                                                            "gru": "zrn"}[kind],
                                     nonlinearity=activation)[:4]
    else:
        seq = np.stack([t.numpy() for t in _keras_manual(layer, x0, activation)])
    want = seq.swapaxes(0, 1) if return_sequences else seq[-1]
    np.testing.assert_allclose(y.numpy(), want, rtol=2e-5, atol=2e-6)


def _keras_manual(layer, x0, activation):
    """The cells written out with Tensor ops (Keras equations), for non-tanh activations."""
    act = layers.get_activation(activation)
    k, u, b = layer.kernel, layer.recurrent_kernel, layer.bias
    n, units = x0.shape[0], layer.units
    h = tl.Tensor(np.zeros((n, units), np.float32))
    c = h
    out = []
    for t in range(x0.shape[1]):
        xt = tl.Tensor(x0[:, t])
        if isinstance(layer, layers.SimpleRNN):
            h = act(xt @ k + h @ u + b)
        elif isinstance(layer, layers.LSTM):
            i, f, g, o = (xt @ k + h @ u + b).split(units, axis=1)
            c = f.sigmoid() * c + i.sigmoid() * act(g)
            h = o.sigmoid() * act(c)
        else:
            xz, xr, xh = (xt @ k + b[0]).split(units, axis=1)
            hz, hr, hh = (h @ u + b[1]).split(units, axis=1)
            z, r = (xz + hz).sigmoid(), (xr + hr).sigmoid()
            h = z * h + (1 - z) * act(xh + r * hh)
        out.append(h)
    return out


@pytest.mark.parametrize("cls", [layers.LSTM, layers.GRU, layers.SimpleRNN])
def test_keras_fit_fused_equals_reference(cls, monkeypatch):
    """Sequential.fit through the fused path ends at the weights the reference path reaches."""
    from tinygrad_lite.models import Sequential

    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 6, 2)).astype(np.float32)
    y = x[:, :, 0].sum(axis=1, keepdims=True).astype(np.float32)

    def train():
        tl.manual_seed(0)
        model = Sequential([cls(8, input_shape=(6, 2)), layers.Dense(1)])
        model.compile(optimizer="adam", loss="mse")
        hist = model.fit(x, y, epochs=3, batch_size=8, verbose=0, shuffle=False)
        return hist.history["loss"], model.get_weights()

    calls = _count_reference(monkeypatch)
    loss_f, w_f = train()
    assert calls == []
    monkeypatch.setattr(C, "FUSED_ACTIVATIONS", {"rnn": (), "lstm": (), "gru": ()})
    loss_r, w_r = train()
    assert len(calls) > 0
    np.testing.assert_allclose(loss_f, loss_r, rtol=1e-4)
    assert loss_f[-1] < loss_f[0]
    for a, b in zip(w_f, w_r):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


# ------------------------------------------------------------------ errors ---

def test_functional_argument_errors():
    x = tl.Tensor(np.zeros((3, 2, 4)))
    w = (np.zeros((12, 4)), np.zeros((12, 3)), None, None)
    out, (h, c) = F.lstm(x, None, [(np.zeros((12, 4)), np.zeros((12, 3)), None, None)])
    assert out.shape == (3, 2, 3) and h.shape == c.shape == (1, 2, 3)
    with pytest.raises(ShapeError, match="weights of layer/direction 0"):
        F.gru(x, None, [w])
    with pytest.raises(ShapeError, match="expected 2 weight tuples"):
        F.lstm(x, None, [w], bidirectional=True)
    with pytest.raises(ValueError, match="gates must order"):
        F.lstm(x, None, [w], gates="ifgx")
    with pytest.raises(ValueError, match="layout must be"):
        F.lstm(x, None, [w], layout="tf")
    with pytest.raises(ShapeError, match="initial state must have shape"):
        F.rnn(x, tl.Tensor(np.zeros((1, 2, 5))), [(np.zeros((3, 4)), np.zeros((3, 3)), None,
                                                   None)])
    with pytest.raises(ShapeError, match="3-D input"):
        F.rnn(tl.Tensor(np.zeros((3, 4))), None, [w])


def test_mixed_dtypes_are_refused(monkeypatch):
    # issue 15: one float dtype per op, as matmul/linear/conv (PyTorch refuses too)
    calls = _count_reference(monkeypatch)
    rng = np.random.default_rng(0)
    w = [(rng.standard_normal((8, 3)).astype(np.float32),
          rng.standard_normal((8, 2)).astype(np.float32), None, None)]
    x = rng.standard_normal((4, 2, 3))
    out, h = F.gru(tl.Tensor(x.astype(np.float32)), None, [(w[0][0][:6], w[0][1][:6], None, None)])
    assert calls == [] and out.dtype == np.float32
    zeros = tl.Tensor(np.zeros((1, 2, 2)))
    with pytest.raises(DTypeError, match=r"lstm.*float32.*float64"):
        F.lstm(tl.Tensor(x), (zeros, zeros), w)                          # float64 x
    assert calls == []
