"""Keras-style LayerNormalization, Conv1D and MultiHeadAttention: weights load in Keras's layout
(``model.set_weights(keras_model.get_weights())`` order and shapes) and the outputs match NumPy
re-implementations of Keras 3's math. One extra test compares with Keras itself when it is
installed (it is not a dependency; skipped otherwise)."""

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import layers as L
from tinygrad_lite import models
from tinygrad_lite.errors import ShapeError
from tinygrad_lite.testing import gradcheck


def _rng(seed=0):
    return np.random.default_rng(seed)


def _load(layer, arrays):
    """Assign Keras-ordered arrays (``keras_layer.get_weights()``) to our layer, checking names."""
    named = layer.weight_tensors()
    assert [a.shape for a in arrays] == [t.shape for _, t in named]
    for (_, t), a in zip(named, arrays):
        t.data[...] = a


# ------------------------------------------------------------------ NumPy references ---

def np_layer_norm(x, gamma, beta, axes, eps=1e-3):
    mean = x.mean(axis=tuple(axes), keepdims=True)
    var = x.var(axis=tuple(axes), keepdims=True)
    shape = [1] * x.ndim
    for a in axes:
        shape[a] = x.shape[a]
    return (x - mean) / np.sqrt(var + eps) * gamma.reshape(shape) + beta.reshape(shape)


def np_conv1d(x, kernel, bias, strides=1, padding="valid", dilation=1):
    """Keras Conv1D on (N, steps, C) with kernel (k, C, F): TensorFlow's padding rules."""
    k = kernel.shape[0]
    steps = x.shape[1]
    if padding == "same":
        out = -(-steps // strides)
        total = max((out - 1) * strides + (k - 1) * dilation + 1 - steps, 0)
        lo, hi = total // 2, total - total // 2
    elif padding == "causal":
        lo, hi = dilation * (k - 1), 0
    else:
        lo = hi = 0
    xp = np.pad(x, ((0, 0), (lo, hi), (0, 0)))
    out = (xp.shape[1] - dilation * (k - 1) - 1) // strides + 1
    y = np.zeros((x.shape[0], out, kernel.shape[2]))
    for t in range(out):
        for j in range(k):
            y[:, t] += xp[:, t * strides + j * dilation] @ kernel[j]
    return y + bias


def np_mha(q, v, k, w, mask=None, causal=False):
    """Keras 3 MultiHeadAttention (einsum form) from its weights list, in Keras's order."""
    qk, qb, kk, kb, vk, vb, ok, ob = w
    Q = np.einsum("btd,dhk->bthk", q, qk) + qb
    K = np.einsum("bsd,dhk->bshk", k, kk) + kb
    V = np.einsum("bsd,dhv->bshv", v, vk) + vb
    Q = Q / np.sqrt(qk.shape[-1])
    s = np.einsum("bshk,bthk->bhts", K, Q)
    keep = np.ones(s.shape, bool)
    if mask is not None:
        keep &= mask[:, None]
    if causal:
        keep &= np.tril(np.ones(s.shape[-2:], bool))
    s = np.where(keep, s, -1e9)
    e = np.exp(s - s.max(-1, keepdims=True))
    a = np.where(keep, e / e.sum(-1, keepdims=True), 0.0)
    o = np.einsum("bhts,bshv->bthv", a, V)
    return np.einsum("bthv,hvo->bto", o, ok) + ob, a


# ------------------------------------------------------------------ tests ---

@pytest.mark.parametrize("axis,shape", [(-1, (2, 3, 4)), ([1, 2], (2, 3, 4)), (1, (3, 5))])
def test_layer_normalization_matches_reference(axis, shape):
    x = _rng().standard_normal(shape).astype(np.float32)
    layer = L.LayerNormalization(axis=axis)
    layer(tl.Tensor(x))
    axes = [a % len(shape) for a in (axis if isinstance(axis, list) else [axis])]
    wshape = tuple(shape[a] for a in axes)
    gamma, beta = _rng(1).standard_normal(wshape), _rng(2).standard_normal(wshape)
    _load(layer, [gamma.astype(np.float32), beta.astype(np.float32)])
    assert [n for n, _ in layer.weight_tensors()] == ["gamma", "beta"]
    np.testing.assert_allclose(layer(tl.Tensor(x)).numpy(),
                               np_layer_norm(x.astype(np.float64), gamma, beta, axes),
                               rtol=1e-5, atol=1e-5)


CONV_CASES = [
    dict(padding="valid"), dict(padding="same", strides=2), dict(padding="causal",
                                                                   dilation_rate=2),
    dict(padding="same", strides=3, kernel_size=4), dict(padding="valid", strides=2,
                                                         dilation_rate=2),
]


@pytest.mark.parametrize("kw", CONV_CASES, ids=[str(c) for c in CONV_CASES])
def test_conv1d_keras_layout_matches_reference(kw):
    kw = dict(kw)
    k = kw.pop("kernel_size", 3)
    x = _rng().standard_normal((2, 9, 3))
    layer = L.Conv1D(4, k, **kw)
    layer(tl.Tensor(x.astype(np.float32)))
    kernel, bias = _rng(1).standard_normal((k, 3, 4)), _rng(2).standard_normal(4)
    _load(layer, [kernel.astype(np.float32), bias.astype(np.float32)])
    got = layer(tl.Tensor(x.astype(np.float32))).numpy()
    want = np_conv1d(x, kernel, bias, kw.get("strides", 1), kw["padding"],
                     kw.get("dilation_rate", 1))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert layer.shape_plan((9, 3)) == ([("kernel", (k, 3, 4)), ("bias", (4,))], want.shape[1:])


def test_conv1d_channels_first_and_causality():
    x = _rng().standard_normal((1, 3, 8)).astype(np.float32)       # (N, C, steps)
    layer = L.Conv1D(2, 3, padding="causal", data_format="channels_first")
    y = layer(tl.Tensor(x)).numpy()
    x2 = x.copy()
    x2[..., 5:] += 10.0                        # change the future: earlier outputs stay
    y2 = layer(tl.Tensor(x2)).numpy()
    np.testing.assert_array_equal(y[..., :5], y2[..., :5])
    assert not np.allclose(y[..., 5:], y2[..., 5:])
    kernel, bias = layer.kernel.numpy(), layer.bias.numpy()
    want = np_conv1d(x.transpose(0, 2, 1).astype(np.float64), kernel, bias, padding="causal")
    np.testing.assert_allclose(y, want.transpose(0, 2, 1), rtol=1e-5, atol=1e-5)


MHA_CASES = [
    ("cross_mask", dict(num_heads=2, key_dim=3, value_dim=2, output_shape=7), "cross",
     dict(mask=True)),
    ("self_causal", dict(num_heads=3, key_dim=2), "self", dict(causal=True)),
    ("self_plain_nobias", dict(num_heads=2, key_dim=4, use_bias=False), "self", {}),
]


@pytest.mark.parametrize("cid,kw,kind,opts", MHA_CASES, ids=[c[0] for c in MHA_CASES])
def test_multi_head_attention_keras_layout_matches_reference(cid, kw, kind, opts):
    r = _rng()
    q = r.standard_normal((2, 4, 6))
    v = r.standard_normal((2, 5, 3)) if kind == "cross" else q
    mask = None
    if opts.get("mask"):
        mask = r.random((2, 4, 5)) > 0.3
        mask[0, 1] = False                      # a query with every key masked: zero weights
    layer = L.MultiHeadAttention(**kw)
    call = dict(attention_mask=mask, use_causal_mask=opts.get("causal", False))
    layer(tl.Tensor(q.astype(np.float32)), tl.Tensor(v.astype(np.float32)), **call)
    shapes = [t.shape for _, t in layer.weight_tensors()]
    names = [n for n, _ in layer.weight_tensors()]
    kinds = ["kernel", "bias"] if kw.get("use_bias", True) else ["kernel"]
    assert names == [f"{a}/{b}" for a in ("query", "key", "value", "attention_output")
                     for b in kinds]
    w = [r.standard_normal(s) * 0.5 for s in shapes]
    _load(layer, [a.astype(np.float32) for a in w])
    if not kw.get("use_bias", True):            # the reference takes zero biases then
        h, kd = kw["num_heads"], kw["key_dim"]
        z = [np.zeros((h, kd)), np.zeros((h, kd)), np.zeros((h, kd)), np.zeros(6)]
        w = [w[0], z[0], w[1], z[1], w[2], z[2], w[3], z[3]]
    out, scores = layer(tl.Tensor(q.astype(np.float32)), tl.Tensor(v.astype(np.float32)),
                        return_attention_scores=True, **call)
    want, want_a = np_mha(q, v, v, w, mask, opts.get("causal", False))
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(scores.numpy(), want_a, rtol=1e-4, atol=1e-5)
    if mask is not None:
        assert np.all(scores.numpy()[0, :, 1] == 0.0)


def test_keras_layers_gradients_float64():
    r = _rng()
    conv = L.Conv1D(2, 3, padding="causal", dilation_rate=2)
    x = tl.Tensor(r.standard_normal((2, 6, 3)), requires_grad=True)
    conv(x.float())      # build in float32 (float dtypes must match, as PyTorch), then double
    conv.double()
    gradcheck(lambda a, k: conv(a), [x, conv.kernel], seed=1)
    mha = L.MultiHeadAttention(2, 2)
    q = tl.Tensor(r.standard_normal((1, 3, 4)), requires_grad=True)
    mha(q.float(), q.float())
    mha.double()
    gradcheck(lambda a, k: mha(a, a, use_causal_mask=True), [q, mha.query_kernel], seed=2)
    ln = L.LayerNormalization()
    ln(q)
    ln.double()
    gradcheck(lambda a, g: ln(a), [q, ln.gamma], seed=3)


def test_sequential_save_load_round_trip(tmp_path):
    model = models.Sequential([L.Conv1D(4, 3, padding="same", activation="relu",
                                        input_shape=(8, 2)),
                               L.LayerNormalization(), L.Flatten(), L.Dense(3)])
    x = _rng().standard_normal((5, 8, 2)).astype(np.float32)
    y = model.predict(x)
    assert [w.shape for w in model.get_weights()] == [(3, 2, 4), (4,), (4,), (4,), (32, 3),
                                                       (3,)]
    model.save(tmp_path / "m.safetensors")
    back = models.load_model(tmp_path / "m.safetensors")
    np.testing.assert_allclose(back.predict(x), y, rtol=1e-6)
    assert back.layers[0].get_config() == model.layers[0].get_config()


def test_errors():
    with pytest.raises(ValueError, match="Conv1D: padding"):
        L.Conv1D(2, 3, padding="full")
    with pytest.raises(ShapeError, match="Conv1D: expected per-sample shape"):
        L.Conv1D(2, 3)(tl.zeros(2, 3))
    with pytest.raises(ValueError, match="attention_axes"):
        L.MultiHeadAttention(2, 3, attention_axes=(1,))
    with pytest.raises(ShapeError, match="LayerNormalization: axis"):
        L.LayerNormalization(axis=0)(tl.zeros(2, 3))


def test_matches_keras_itself_when_installed(monkeypatch):
    """Same weights, same outputs as Keras 3 (optional: Keras is not a dependency)."""
    monkeypatch.setenv("KERAS_BACKEND", "numpy")
    keras = pytest.importorskip("keras", reason="keras is not installed (optional peer)")
    r = _rng(3)
    q, v = r.standard_normal((2, 4, 6)).astype("f"), r.standard_normal((2, 5, 3)).astype("f")
    mask = r.random((2, 4, 5)) > 0.3
    km = keras.layers.MultiHeadAttention(num_heads=2, key_dim=3, output_shape=5)
    km(q, v)
    om = L.MultiHeadAttention(num_heads=2, key_dim=3, output_shape=5)
    om(tl.Tensor(q), tl.Tensor(v))
    w = [r.standard_normal(a.shape).astype("f") * 0.5 for a in km.get_weights()]
    km.set_weights(w)
    _load(om, w)
    np.testing.assert_allclose(om(tl.Tensor(q), tl.Tensor(v), attention_mask=mask).numpy(),
                               np.asarray(km(q, v, attention_mask=mask)), rtol=1e-4, atol=1e-5)
    kc = keras.layers.Conv1D(4, 3, strides=2, padding="same")
    kc(q)
    oc = L.Conv1D(4, 3, strides=2, padding="same")
    oc(tl.Tensor(q))
    _load(oc, kc.get_weights())
    np.testing.assert_allclose(oc(tl.Tensor(q)).numpy(), np.asarray(kc(q)), rtol=1e-5,
                               atol=1e-5)
    kl = keras.layers.LayerNormalization(axis=[1, 2])
    kl(q)
    ol = L.LayerNormalization(axis=[1, 2])
    ol(tl.Tensor(q))
    kl.set_weights([r.standard_normal((4, 6)).astype("f") for _ in range(2)])
    _load(ol, kl.get_weights())
    np.testing.assert_allclose(ol(tl.Tensor(q)).numpy(), np.asarray(kl(q)), rtol=1e-5,
                               atol=1e-5)
