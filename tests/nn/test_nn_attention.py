"""Attention against PyTorch (values and gradients, float64) and against a NumPy reference:
scaled_dot_product_attention, MultiheadAttention and TransformerEncoderLayer with PyTorch's
state-dict keys. PyTorch comparisons skip without torch."""

import numpy as np
import pytest
from nn_helpers import dbl, rng

import tinygrad_lite as tl
from tinygrad_lite import nn
from tinygrad_lite.errors import ShapeError
from tinygrad_lite.nn import functional as F
from tinygrad_lite.testing import gradcheck, gradgradcheck


def _np_sdpa(q, k, v, mask=None, causal=False):
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if causal:
        mask = np.tril(np.ones(s.shape[-2:], bool))
    if mask is not None and mask.dtype == bool:
        s = np.where(mask, s, -np.inf)
    elif mask is not None:
        s = s + mask
    m = np.max(s, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    e = np.exp(s - m)
    den = e.sum(-1, keepdims=True)
    w = np.divide(e, den, out=np.zeros_like(e), where=den > 0)
    return w @ v


MASKS = ["none", "causal", "bool", "float", "bool_dead_row"]


def _mask(kind, L, S):
    r = rng(5)
    if kind == "bool":
        m = r.random((L, S)) > 0.3
        m[:, 0] = True
        return m
    if kind == "float":
        return r.standard_normal((L, S))
    if kind == "bool_dead_row":
        m = r.random((L, S)) > 0.3
        m[0] = False
        return m
    return None


@pytest.mark.parametrize("kind", MASKS)
def test_sdpa_matches_numpy_reference(kind):
    q, k, v = (rng(i).standard_normal((2, 3, 4, 5)) for i in range(3))
    k, v = k[..., :3, :], v[..., :3, :]
    L, S = 4, 3
    m = _mask(kind, L, S)
    causal = kind == "causal"
    got = F.scaled_dot_product_attention(dbl(q), dbl(k), dbl(v), attn_mask=m, is_causal=causal)
    np.testing.assert_allclose(got.numpy(), _np_sdpa(q, k, v, m, causal), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", MASKS)
def test_sdpa_matches_torch_values_and_grads(torch, kind):
    q, k, v = (rng(i).standard_normal((2, 2, 4, 3)) for i in range(3))
    m = _mask(kind, 4, 4)
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    oq, ok, ov = dbl(q), dbl(k), dbl(v)
    tm = None if m is None else torch.tensor(m)
    ty = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=tm,
                                                          is_causal=kind == "causal")
    oy = F.scaled_dot_product_attention(oq, ok, ov, attn_mask=m, is_causal=kind == "causal")
    np.testing.assert_allclose(oy.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    w = rng(9).standard_normal(ty.shape)
    (ty * torch.tensor(w)).sum().backward()
    (oy * tl.Tensor(w)).sum().backward()
    for o, t in ((oq, tq), (ok, tk), (ov, tv)):
        np.testing.assert_allclose(o.grad.numpy(), t.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_sdpa_dropout_is_seeded_inverted_dropout():
    q = rng().standard_normal((1, 3, 4))
    a = F.scaled_dot_product_attention(dbl(q), dbl(q), dbl(q), dropout_p=0.5,
                                       generator=np.random.default_rng(3)).numpy()
    s = q @ q.swapaxes(-1, -2) / 2.0
    w = np.exp(s - s.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    keep = np.random.default_rng(3).random(w.shape) >= 0.5
    np.testing.assert_allclose(a, (w * keep / 0.5) @ q, rtol=1e-12)
    assert not np.allclose(a, _np_sdpa(q, q, q))


@pytest.mark.parametrize("kind", ["causal", "float"])
def test_sdpa_double_backward(kind):
    q, k, v = (dbl(rng(i).standard_normal((1, 3, 2))) for i in range(3))
    m = _mask(kind, 3, 3)
    f = lambda a, b, c: F.scaled_dot_product_attention(a, b, c, attn_mask=m,  # noqa: E731
                                                         is_causal=kind == "causal")
    gradcheck(f, [q, k, v], seed=1)
    gradgradcheck(f, [q, k, v], seed=2)


def test_sdpa_errors():
    q = tl.zeros(2, 3, 4)
    with pytest.raises(ShapeError, match="scaled_dot_product_attention"):
        F.scaled_dot_product_attention(q, tl.zeros(2, 3, 5), q)
    with pytest.raises(ValueError, match="not both"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=np.ones((3, 3), bool), is_causal=True)


def _compare_module(torch, tm, ours, inputs, kw_t, kw_o, idx=0):
    assert list(ours.state_dict()) == list(tm.state_dict())
    ours.load_state_dict(tm.state_dict())
    tx = [torch.tensor(a, requires_grad=True) for a in inputs]
    ox = [dbl(a) for a in inputs]
    to, oo = tm(*tx, **kw_t), ours(*ox, **kw_o)
    to = to if isinstance(to, tuple) else (to,)
    oo = oo if isinstance(oo, tuple) else (oo,)
    for a, b in zip(oo, to):
        if b is None:
            assert a is None
            continue
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-9, atol=1e-12)
    w = rng(7).standard_normal(to[idx].shape)
    (to[idx] * torch.tensor(w)).sum().backward()
    (oo[idx] * tl.Tensor(w)).sum().backward()
    for a, b in zip(ox, tx):
        if b.grad is not None:
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-8, atol=1e-11)
    for (k, p), (_, tp) in zip(ours.named_parameters(), tm.named_parameters()):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-8, atol=1e-11,
                                   err_msg=k)


MHA_CASES = [
    ("self_batch_first", dict(batch_first=True), "self", {}),
    ("cross_seq_first", dict(), "cross", {}),
    ("kpm_bool", dict(batch_first=True), "self", dict(kpm="bool")),
    ("attn_mask_bool", dict(batch_first=True), "self", dict(mask="bool")),
    ("attn_mask_float_3d", dict(batch_first=True), "cross", dict(mask="float3d")),
    ("per_head_weights", dict(batch_first=True, bias=False), "self", dict(avg=False)),
    ("no_weights", dict(batch_first=True), "self", dict(need=False)),
    ("unbatched", dict(), "unbatched", {}),
    ("kdim_vdim", dict(batch_first=True, kdim=4, vdim=3), "kdim", dict(kpm="bool")),
]


@pytest.mark.parametrize("name,ctor,kind,opts", MHA_CASES, ids=[c[0] for c in MHA_CASES])
def test_multihead_attention_matches_torch(torch, name, ctor, kind, opts):
    torch.manual_seed(0)
    E, H, N, L, S = 6, 2, 2, 4, 3
    tm = torch.nn.MultiheadAttention(E, H, **ctor).double()
    ours = nn.MultiheadAttention(E, H, **ctor).double()
    bf = ctor.get("batch_first", False)
    r = rng(1)
    if kind == "unbatched":
        q = r.standard_normal((L, E))
        inputs = [q, q.copy(), q.copy()]
        S = L
    elif kind == "self":
        q = r.standard_normal((N, L, E) if bf else (L, N, E))
        inputs = [q]
        S = L
    elif kind == "kdim":
        q = r.standard_normal((N, L, E))
        inputs = [q, r.standard_normal((N, S, 4)), r.standard_normal((N, S, 3))]
    else:
        q = r.standard_normal((N, L, E) if bf else (L, N, E))
        kv = r.standard_normal((N, S, E) if bf else (S, N, E))
        inputs = [q, kv, r.standard_normal(kv.shape)]
    kw = dict(need_weights=opts.get("need", True), average_attn_weights=opts.get("avg", True))
    if opts.get("kpm") == "bool":
        m = np.zeros((N, S), bool)
        m[0, -1] = m[1, 0] = True
        kw["key_padding_mask"] = m
    if opts.get("mask") == "bool":
        m = ~np.tril(np.ones((L, S), bool))
        kw["attn_mask"] = m
    if opts.get("mask") == "float3d":
        kw["attn_mask"] = r.standard_normal((N * H, L, S))
    kw_t = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
    if kind == "self":
        # the same tensor three times: exercises the fused in-projection path
        class Self(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, x, **k):
                return self.m(x, x, x, **k)

        class OurSelf(nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, x, **k):
                return self.m(x, x, x, **k)

        tm, ours = Self(tm), OurSelf(ours)
    _compare_module(torch, tm, ours, inputs, kw_t, kw)


def test_multihead_attention_keys_and_init(torch):
    ours = nn.MultiheadAttention(8, 4)
    theirs = torch.nn.MultiheadAttention(8, 4)
    sd = ours.state_dict()
    assert list(sd) == ["in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"]
    assert {k: v.shape for k, v in sd.items()} == \
        {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert not sd["in_proj_bias"].any() and not sd["out_proj.bias"].any()
    bound = np.sqrt(6 / (8 + 24))            # xavier_uniform on (3E, E)
    assert np.abs(sd["in_proj_weight"]).max() <= bound
    assert np.abs(sd["in_proj_weight"]).max() > 0.8 * bound


def test_multihead_attention_errors():
    with pytest.raises(ValueError, match="divisible"):
        nn.MultiheadAttention(6, 4)
    m = nn.MultiheadAttention(4, 2, batch_first=True)
    x = tl.zeros(2, 3, 4)
    with pytest.raises(ShapeError, match="key_padding_mask"):
        m(x, x, x, key_padding_mask=np.zeros((2, 4), bool))
    with pytest.raises(ShapeError, match="attn_mask"):
        m(x, x, x, attn_mask=np.zeros((3, 4), bool))


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("mask", [None, "causal", "kpm"])
def test_transformer_encoder_layer_matches_torch(torch, norm_first, activation, mask):
    torch.manual_seed(0)
    kw = dict(dim_feedforward=10, dropout=0.0, activation=activation, batch_first=True,
              norm_first=norm_first)
    tm = torch.nn.TransformerEncoderLayer(6, 2, **kw).double()
    ours = nn.TransformerEncoderLayer(6, 2, **kw).double()
    x = rng(3).standard_normal((2, 4, 6))
    kw_o = {}
    if mask == "causal":
        kw_o = dict(src_mask=~np.tril(np.ones((4, 4), bool)))
    elif mask == "kpm":
        m = np.zeros((2, 4), bool)
        m[1, 2:] = True
        kw_o = dict(src_key_padding_mask=m)
    kw_t = {k: torch.tensor(v) for k, v in kw_o.items()}
    _compare_module(torch, tm, ours, [x], kw_t, kw_o)


def test_transformer_encoder_layer_keys(torch):
    ours = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16)
    theirs = torch.nn.TransformerEncoderLayer(8, 2, dim_feedforward=16)
    assert {k: v.shape for k, v in ours.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert list(ours.state_dict()) == list(theirs.state_dict())


def test_transformer_encoder_layer_dropout_only_in_training():
    layer = nn.TransformerEncoderLayer(4, 2, dim_feedforward=8, dropout=0.5, batch_first=True)
    x = tl.Tensor(rng().standard_normal((2, 3, 4)).astype(np.float32))
    layer.eval()
    np.testing.assert_array_equal(layer(x).numpy(), layer(x).numpy())
    layer.train()
    assert not np.allclose(layer(x).numpy(), layer(x).numpy())


@pytest.mark.parametrize("final_norm", [False, True])
def test_transformer_encoder_stack_matches_torch(torch, final_norm):
    torch.manual_seed(0)
    kw = dict(dim_feedforward=8, dropout=0.0, batch_first=True, norm_first=True)
    tm = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(4, 2, **kw), 2,
                                     norm=torch.nn.LayerNorm(4) if final_norm else None,
                                     enable_nested_tensor=False).double()
    ours = nn.TransformerEncoder(nn.TransformerEncoderLayer(4, 2, **kw), 2,
                                 norm=nn.LayerNorm(4) if final_norm else None).double()
    assert ours.layers[0].linear1.weight is not ours.layers[1].linear1.weight
    x = rng(4).standard_normal((2, 3, 4))
    m = ~np.tril(np.ones((3, 3), bool))
    _compare_module(torch, tm, ours, [x], dict(mask=torch.tensor(m)), dict(mask=m))


@pytest.mark.filterwarnings("ignore:invalid value encountered")  # the NaN path, as torch
def test_fully_masked_rows_follow_torch(torch):
    """SDPA: a row with every key masked (bool or float -inf) gives zeros. MultiheadAttention:
    zeros on the need_weights=False path, NaN with need_weights=True -- PyTorch's two paths."""
    x = rng(6).standard_normal((2, 3, 4))
    fm = np.zeros((3, 3))
    fm[1] = -np.inf
    got = F.scaled_dot_product_attention(dbl(x), dbl(x), dbl(x), attn_mask=fm).numpy()
    want = torch.nn.functional.scaled_dot_product_attention(
        *(torch.tensor(x),) * 3, attn_mask=torch.tensor(fm)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert np.all(got[:, 1] == 0.0)
    torch.manual_seed(0)
    tm = torch.nn.MultiheadAttention(4, 2, batch_first=True).double()
    ours = nn.MultiheadAttention(4, 2, batch_first=True).double()
    ours.load_state_dict(tm.state_dict())
    kpm = np.zeros((2, 3), bool)
    kpm[1] = True
    for need in (False, True):
        a = ours(dbl(x), dbl(x), dbl(x), key_padding_mask=kpm, need_weights=need)[0].numpy()
        t = tm(*(torch.tensor(x),) * 3, key_padding_mask=torch.tensor(kpm),
               need_weights=need)[0].detach().numpy()
        np.testing.assert_allclose(a, t, rtol=1e-10, atol=1e-12)     # NaNs compare equal
        assert np.isnan(a[1]).all() == need
