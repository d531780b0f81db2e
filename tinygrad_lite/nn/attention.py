"""Attention: scaled dot-product attention, MultiheadAttention, TransformerEncoderLayer.

Everything here is composed from registered ops (matmul, softmax, where, dropout, linear,
layer norm), so gradients -- and double backward -- come from those ops' own rules.

    attention(Q, K, V) = softmax(Q K^T * scale + M) V,   scale = 1 / sqrt(d_k)

M is the mask: 0 where a query may look at a key and -inf where it may not (a float mask is
added as it is). The -inf entries become exact zeros after the softmax, so a masked key gets no
weight and no gradient.

Weights and state-dict keys are PyTorch's (``in_proj_weight`` (3E, E) holds W_q, W_k, W_v
stacked; ``out_proj.weight``/``out_proj.bias``), so a model moves between the two with a plain
dict of arrays.

Next: normalization.py.
"""

import math

import numpy as np

from ..errors import DTypeError, ShapeError
from ..tensor import Tensor
from . import functional as F
from . import init
from .linear import Dropout, Linear, _empty
from .module import Module
from .normalization import LayerNorm


def _as_tensor(m):
    return m if isinstance(m, Tensor) else Tensor(np.asarray(m))


def _bool_mask(m):
    return m.dtype == np.bool_


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0,
                                 is_causal=False, scale=None, generator=None):
    """softmax(Q K^T * scale + M) V over the last two axes (PyTorch's function and semantics).

    Parameters
    ----------
    query : (..., L, E);  key : (..., S, E);  value : (..., S, Ev)
    attn_mask : bool (True = may attend) or float (added to the scores), broadcastable to
        (..., L, S)
    dropout_p : dropout on the attention weights (always applied when > 0, as PyTorch; pass 0
        when evaluating)
    is_causal : query i sees keys j <= i (a lower-triangular mask); excludes ``attn_mask``
    scale : defaults to 1 / sqrt(E)

    A query row whose keys are all masked (bool False or float -inf) gets zero weights, not
    NaN, as PyTorch.

    >>> q = Tensor(np.ones((2, 3, 4), "f"))
    >>> scaled_dot_product_attention(q, q, q, is_causal=True).shape
    (2, 3, 4)
    """
    q, k, v = (x if isinstance(x, Tensor) else Tensor(x) for x in (query, key, value))
    op = "scaled_dot_product_attention"
    if q.ndim < 2 or k.ndim < 2 or v.ndim < 2:
        raise ShapeError(f"{op}: query, key and value need at least 2 dims (..., L, E), got "
                         f"{q.shape}, {k.shape}, {v.shape}")
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ShapeError(f"{op}: query/key feature sizes or key/value lengths differ, got "
                         f"query {q.shape}, key {k.shape}, value {v.shape}")
    if is_causal and attn_mask is not None:
        raise ValueError(f"{op}: pass either attn_mask or is_causal=True, not both")
    L, S = q.shape[-2], k.shape[-2]
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    s = (q * scale) @ k.swapaxes(-1, -2)          # scale the smaller (L, E) operand
    if is_causal:
        attn_mask = np.tril(np.ones((L, S), dtype=bool))
    if attn_mask is not None:
        m = _as_tensor(attn_mask)
        if _bool_mask(m):
            s = m.where(s, -np.inf)
        elif m.dtype.kind == "f":
            s = s + m.astype(s.dtype)
        else:
            raise DTypeError(f"{op}: attn_mask must be bool or float, got dtype {m.dtype}")
    w = _safe_softmax(s) if attn_mask is not None else s.softmax(-1)
    if dropout_p > 0.0:
        w = F.dropout(w, dropout_p, training=True, generator=generator)
    return w @ v


def _safe_softmax(s):
    """Softmax over the last axis; a row whose scores are all -inf (every key masked) gives
    zeros instead of NaN, as PyTorch's scaled_dot_product_attention."""
    dead = s.xp.isneginf(s.data).all(axis=-1, keepdims=True)
    if not dead.any():
        return s.softmax(-1)
    # replace the all -inf rows by zeros before the softmax, and zero their weights after it
    dead = Tensor._wrap(s.xp.broadcast_to(dead, s.shape), False)
    return dead.where(0.0, dead.where(0.0, s).softmax(-1))


def _additive(mask, dtype, op, name):
    """A PyTorch MHA-style mask as an additive float array: bool True = blocked -> -inf."""
    m = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
    if m.dtype == np.bool_:
        return np.where(m, -np.inf, 0.0).astype(dtype)
    if m.dtype.kind != "f":
        raise DTypeError(f"{op}: {name} must be bool or float, got dtype {m.dtype}")
    return m.astype(dtype)


class MultiheadAttention(Module):
    """Multi-head attention (PyTorch's ``nn.MultiheadAttention``).

    heads_h = attention(Q W_q,h, K W_k,h, V W_v,h), out = concat_h(heads_h) W_o^T + b_o.

    Parameters: ``in_proj_weight`` (3E, E) = [W_q; W_k; W_v], ``in_proj_bias`` (3E,),
    ``out_proj.weight`` (E, E), ``out_proj.bias`` (E,) -- PyTorch's keys and layouts; init as
    PyTorch (xavier_uniform in-projection, zero biases). With ``kdim``/``vdim`` other than
    ``embed_dim`` the projections are separate, as PyTorch: ``q_proj_weight`` (E, E),
    ``k_proj_weight`` (E, kdim), ``v_proj_weight`` (E, vdim). ``add_bias_kv`` and
    ``add_zero_attn`` are not supported.

    forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False) -> (output, weights or None). Inputs are
    (L, N, E), or (N, L, E) with ``batch_first=True``, or unbatched (L, E). Masks follow PyTorch:
    bool True means *blocked*; a float mask is added to the scores. ``key_padding_mask`` is
    (N, S); ``attn_mask`` is (L, S) or (N * num_heads, L, S).

    >>> mha = MultiheadAttention(8, 2, batch_first=True)
    >>> x = Tensor(np.ones((3, 5, 8), "f"))
    >>> out, w = mha(x, x, x)
    >>> out.shape, w.shape
    ((3, 5, 8), (3, 5, 5))
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False,
                 add_zero_attn=False, kdim=None, vdim=None, batch_first=False, dtype=None):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim must be divisible by num_heads, got "
                             f"embed_dim={embed_dim}, num_heads={num_heads}")
        if add_bias_kv or add_zero_attn:
            raise ValueError("MultiheadAttention: add_bias_kv and add_zero_attn are not "
                             f"supported, got add_bias_kv={add_bias_kv}, "
                             f"add_zero_attn={add_zero_attn}")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.kdim = embed_dim if kdim is None else kdim
        self.vdim = embed_dim if vdim is None else vdim
        self.head_dim = embed_dim // num_heads
        self.dropout, self.batch_first = float(dropout), batch_first
        self._same = self.kdim == embed_dim and self.vdim == embed_dim
        if self._same:
            self.in_proj_weight = _empty((3 * embed_dim, embed_dim), dtype)
            init.xavier_uniform_(self.in_proj_weight)
        else:               # PyTorch's separate projections when key/value widths differ
            self.q_proj_weight = _empty((embed_dim, embed_dim), dtype)
            self.k_proj_weight = _empty((embed_dim, self.kdim), dtype)
            self.v_proj_weight = _empty((embed_dim, self.vdim), dtype)
            for w in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                init.xavier_uniform_(w)
        if bias:
            self.in_proj_bias = _empty((3 * embed_dim,), dtype)
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, dtype=dtype)
        if bias:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True,
                attn_mask=None, average_attn_weights=True, is_causal=False):
        op = "MultiheadAttention"
        q, k, v = (x if isinstance(x, Tensor) else Tensor(x) for x in (query, key, value))
        unbatched = q.ndim == 2
        if unbatched:
            q, k, v = q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1)
            if key_padding_mask is not None:
                key_padding_mask = np.asarray(_as_tensor(key_padding_mask).data)[None]
        elif self.batch_first:
            q, k, v = (t.swapaxes(0, 1) for t in (q, k, v))
        if q.ndim != 3 or k.ndim != 3 or v.ndim != 3 or q.shape[-1] != self.embed_dim or \
                k.shape[:2] != v.shape[:2] or k.shape[-1] != self.kdim or \
                v.shape[-1] != self.vdim or q.shape[1] != k.shape[1]:
            raise ShapeError(f"{op}: expected query (L, N, {self.embed_dim}), key (S, N, "
                             f"{self.kdim}) and value (S, N, {self.vdim}) (batch_first: N "
                             f"first), got {tuple(query.shape)}, {tuple(key.shape)}, "
                             f"{tuple(value.shape)}")
        L, N, E = q.shape
        S, H, D = k.shape[0], self.num_heads, self.head_dim
        b = self.in_proj_bias
        bq, bk, bv = (None, None, None) if b is None else (b[:E], b[E:2 * E], b[2 * E:])
        if not self._same:
            qp, kp, vp = (F.linear(q, self.q_proj_weight, bq), F.linear(k, self.k_proj_weight, bk),
                          F.linear(v, self.v_proj_weight, bv))
        elif query is key and key is value:      # self-attention: one projection GEMM
            qkv = F.linear(q, self.in_proj_weight, b)
            qp, kp, vp = qkv[..., :E], qkv[..., E:2 * E], qkv[..., 2 * E:]
        else:
            w = self.in_proj_weight
            qp, kp, vp = (F.linear(q, w[:E], bq), F.linear(k, w[E:2 * E], bk),
                          F.linear(v, w[2 * E:], bv))

        def heads(t, n):           # (n, N, E) -> (N, H, n, D)
            return t.reshape(n, N, H, D).permute(1, 2, 0, 3)

        qh, kh, vh = heads(qp, L), heads(kp, S), heads(vp, S)
        mask = self._mask(attn_mask, key_padding_mask, is_causal, L, S, N, qh.dtype)
        s = (qh * (1.0 / math.sqrt(D))) @ kh.swapaxes(-1, -2)          # (N, H, L, S)
        if mask is not None:
            s = s + Tensor(mask)
        # PyTorch: the need_weights path is a plain softmax (NaN where every key is masked),
        # the fast path is scaled_dot_product_attention (zeros there)
        attn = s.softmax(-1) if need_weights or mask is None else _safe_softmax(s)
        if self.training and self.dropout > 0.0:
            attn = F.dropout(attn, self.dropout, training=True)
        o = (attn @ vh).permute(2, 0, 1, 3).reshape(L, N, E)            # (L, N, E)
        out = self.out_proj(o)
        if unbatched:
            out = out.squeeze(1)
        elif self.batch_first:
            out = out.swapaxes(0, 1)
        if not need_weights:
            return out, None
        weights = attn.mean(axis=1) if average_attn_weights else attn
        return out, (weights.squeeze(0) if unbatched else weights)

    def _mask(self, attn_mask, key_padding_mask, is_causal, L, S, N, dtype):
        op = "MultiheadAttention"
        mask = None
        if attn_mask is None and is_causal:
            attn_mask = ~np.tril(np.ones((L, S), dtype=bool))
        if attn_mask is not None:
            m = _additive(attn_mask, dtype, op, "attn_mask")
            if m.shape == (L, S):
                mask = m[None, None]
            elif m.shape == (N * self.num_heads, L, S):
                mask = m.reshape(N, self.num_heads, L, S)
            else:
                raise ShapeError(f"{op}: attn_mask must be (L, S) = {(L, S)} or "
                                 f"(N * num_heads, L, S) = {(N * self.num_heads, L, S)}, "
                                 f"got {m.shape}")
        if key_padding_mask is not None:
            kpm = _additive(key_padding_mask, dtype, op, "key_padding_mask")
            if kpm.shape != (N, S):
                raise ShapeError(f"{op}: key_padding_mask must be (N, S) = {(N, S)}, got "
                                 f"{kpm.shape}")
            kpm = kpm[:, None, None, :]
            mask = kpm if mask is None else mask + kpm
        return mask

    def extra_repr(self):
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, "
                f"dropout={self.dropout}, batch_first={self.batch_first}")


_ACTS = {"relu": lambda x: x.relu(), "gelu": lambda x: x.gelu()}


class TransformerEncoderLayer(Module):
    """One Transformer encoder block (PyTorch's ``nn.TransformerEncoderLayer``).

    Post-norm (default): x = norm1(x + sa(x)); x = norm2(x + ff(x)).
    Pre-norm (``norm_first=True``): x = x + sa(norm1(x)); x = x + ff(norm2(x)).
    sa = dropout1(self_attn(x, x, x)), ff = dropout2(linear2(dropout(act(linear1(x))))).

    State-dict keys as PyTorch: ``self_attn.in_proj_weight``, ``self_attn.in_proj_bias``,
    ``self_attn.out_proj.{weight,bias}``, ``linear1.*``, ``linear2.*``, ``norm1.*``, ``norm2.*``.

    >>> layer = TransformerEncoderLayer(8, 2, dim_feedforward=16, batch_first=True)
    >>> layer(Tensor(np.ones((2, 5, 8), "f"))).shape
    (2, 5, 8)
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu",
                 layer_norm_eps=1e-5, batch_first=False, norm_first=False, bias=True,
                 dtype=None):
        super().__init__()
        if isinstance(activation, str):
            if activation not in _ACTS:
                raise ValueError(f"TransformerEncoderLayer: activation must be 'relu', 'gelu' or "
                                 f"a callable, got {activation!r}")
            self._act = _ACTS[activation]
        else:
            self._act = activation
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                            batch_first=batch_first, dtype=dtype)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        x = src if isinstance(src, Tensor) else Tensor(src)
        if self.norm_first:
            x = x + self._sa(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            return x + self._ff(self.norm2(x))
        x = self.norm1(x + self._sa(x, src_mask, src_key_padding_mask, is_causal))
        return self.norm2(x + self._ff(x))

    def _sa(self, x, mask, kpm, is_causal):
        y = self.self_attn(x, x, x, attn_mask=mask, key_padding_mask=kpm, need_weights=False,
                           is_causal=is_causal and mask is None)[0]
        return self.dropout1(y)

    def _ff(self, x):
        return self.dropout2(self.linear2(self.dropout(self._act(self.linear1(x)))))


class TransformerEncoder(Module):
    """A stack of ``num_layers`` copies of ``encoder_layer`` (independent weights, copied from
    it as PyTorch does), then an optional final ``norm``. Keys ``layers.<i>.…`` and ``norm.…``
    as PyTorch's ``nn.TransformerEncoder``.

    >>> enc = TransformerEncoder(TransformerEncoderLayer(8, 2, 16, batch_first=True), 2)
    >>> enc(Tensor(np.ones((2, 5, 8), "f"))).shape
    (2, 5, 8)
    """

    def __init__(self, encoder_layer, num_layers, norm=None, enable_nested_tensor=True,
                 mask_check=True):
        import copy

        from .container import ModuleList

        super().__init__()
        self.layers = ModuleList([copy.deepcopy(encoder_layer) for _ in range(num_layers)])
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        x = src
        for layer in self.layers:
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask,
                      is_causal=bool(is_causal))
        return x if self.norm is None else self.norm(x)
