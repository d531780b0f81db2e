"""The one recurrent core behind ``nn.RNN/LSTM/GRU`` and the Keras ``SimpleRNN/LSTM/GRU``.

``lstm``, ``gru`` and ``rnn`` (exported by ``nn.functional``) run a stack of layers, each in one
or two directions, over a time-major (T, B, F) or batch-first (B, T, F) sequence. The weight
layout and the gate order are parameters, so both APIs call the same code:

* ``layout="torch"``: ``w_ih`` (G*H, F), ``w_hh`` (G*H, H) -- the pre-activation is
  ``x W_ih^T + b_ih + h W_hh^T + b_hh``;
* ``layout="keras"``: ``w_ih`` (F, G*H) (``kernel``), ``w_hh`` (H, G*H) (``recurrent_kernel``)
  -- ``x W_ih + b_ih + h W_hh + b_hh``;
* ``gates``: the order of the gate blocks along G*H, by letter. LSTM: i (input), f (forget),
  g (cell candidate), o (output) -- PyTorch and Keras both use ``"ifgo"``. GRU: r (reset),
  z (update), n (candidate) -- PyTorch ``"rzn"``, Keras ``"zrn"``.

The cells (per time step t, ``a`` the pre-activation of a gate block):

    RNN:   h_t = act(a)                                     act = tanh or relu
    LSTM:  i, f, o = sigmoid(a_i, a_f, a_o);  g = tanh(a_g)
           c_t = f c_(t-1) + i g;             h_t = o tanh(c_t)
    GRU:   r = sigmoid(xr + hr);  z = sigmoid(xz + hz);  n = tanh(xn + r hn)
           h_t = (1 - z) n + z h_(t-1)          (x* = x W_ih + b_ih, h* = h W_hh + b_hh blocks)

Two implementations of one (layer, direction) pass:

* the **reference**: the cells written with Tensor ops, unrolled step by step (autograd walks
  back through every step). Exact to any order of differentiation, but about 15 small ops per
  step, each with its Python cost.
* the **fused Functions** ``LSTMSequence``, ``GRUSequence``, ``RNNSequence``: the whole sequence
  is one graph node. Forward: one GEMM for every step's input projection, then per step the
  recurrent GEMM and the gate nonlinearities in one pass, keeping what backward needs.
  Backward: hand-written backpropagation through time (per step one GEMM and one elementwise
  pass, backwards in time), then one GEMM each for dx, dW_ih and dW_hh. The step loops run in
  Cython on our GEMM (``kernels/cpu/rnn.pxi``) on the cython backend, else in NumPy (the
  functions ``_np_*_steps`` below, also the oracle the Cython kernels are tested against).

When a fused Function's backward runs with grad mode on -- that is ``create_graph=True``, a
double backward -- it rebuilds the reference graph from its saved inputs and differentiates
that, so higher-order gradients stay exact.

A fused LSTM returns one (T+1, B, H) array: h_1..h_T followed by the final cell state c_T, so a
single output carries both (slicing it is differentiable); GRU/RNN return (T, B, H).
"""

import numpy as np

from .. import autograd
from ..autograd import Function, register
from ..errors import ShapeError
from ..tensor import Tensor

_N_GATES = {"rnn": 1, "lstm": 4, "gru": 3}
_GATE_SETS = {"lstm": "fgio", "gru": "nrz"}


# ================================================================ NumPy step kernels ===
#
# Shared contract with kernels/cpu/rnn.pxi (same argument order; every array C-contiguous, one
# dtype). ``gates`` (T, B, G*H) holds the input projections on entry; the forward adds the
# recurrent GEMM and overwrites each block with its activation. ``offs`` are the column offsets
# of the gate blocks in canonical order (LSTM i, f, g, o; GRU r, z, n); ``keras`` picks the
# w_hh layout; ``reverse`` runs t = T-1 .. 0. Step t reads h_prev = h0 at the first step, else
# out[t -/+ 1].


def _sig(a):
    return 1.0 / (1.0 + np.exp(-a))


def _whh(w_hh, keras):
    """op(W_hh) with h_prev @ op(W_hh) = the recurrent projection (B, G*H)."""
    return w_hh if keras else w_hh.T


def _order(T, reverse):
    return range(T - 1, -1, -1) if reverse else range(T)


def _np_lstm_steps(gates, w_hh, keras, h0, c0, out, cs, tcs, offs, reverse):
    """out[:T] = h_t, out[T] = c of the last step; cs[t] = c_t, tcs[t] = tanh(c_t)."""
    T, _, _ = gates.shape
    H = h0.shape[1]
    oi, of, og, oo = offs
    w = _whh(w_hh, keras)
    h, c = h0, c0
    for t in _order(T, reverse):
        a = gates[t]
        a += h @ w
        i = a[:, oi:oi + H]
        f = a[:, of:of + H]
        g = a[:, og:og + H]
        o = a[:, oo:oo + H]
        i[...] = _sig(i)
        f[...] = _sig(f)
        g[...] = np.tanh(g)
        o[...] = _sig(o)
        c = cs[t]
        c[...] = f * (c0 if h is h0 else cs[t + 1 if reverse else t - 1]) + i * g
        tcs[t] = np.tanh(c)
        h = out[t]
        h[...] = o * tcs[t]
    out[T] = c


def _np_lstm_steps_backward(gout, gates, w_hh, keras, h0, c0, out, cs, tcs, offs, reverse,
                            da, dh0, dc0):
    """BPTT: da[t] = dL/d(pre-activations at t); dh0, dc0 = dL/d(h0, c0)."""
    T = gates.shape[0]
    H = h0.shape[1]
    oi, of, og, oo = offs
    w = _whh(w_hh, keras)
    dh = np.zeros_like(h0)
    dc = gout[T].copy()
    for k, t in enumerate(_order(T, not reverse)):
        dh += gout[t]
        a = gates[t]
        i, f, g, o = (a[:, s:s + H] for s in (oi, of, og, oo))
        tc = tcs[t]
        c_prev = c0 if k == T - 1 else cs[t + 1 if reverse else t - 1]
        dc += dh * o * (1.0 - tc * tc)
        d = da[t]
        d[:, oi:oi + H] = dc * g * i * (1.0 - i)
        d[:, of:of + H] = dc * c_prev * f * (1.0 - f)
        d[:, og:og + H] = dc * i * (1.0 - g * g)
        d[:, oo:oo + H] = dh * tc * o * (1.0 - o)
        dc *= f
        dh = d @ w.T
    dh0[...] = dh
    dc0[...] = dc


def _np_gru_steps(gates, w_hh, b_hh, keras, h0, out, hn, offs, reverse):
    """gates: x projections in, activated r, z, n out; hn[t] = the n block of h W_hh + b_hh."""
    T = gates.shape[0]
    H = h0.shape[1]
    orr, oz, on = offs
    w = _whh(w_hh, keras)
    h = h0
    for t in _order(T, reverse):
        a = gates[t]
        hp = h @ w
        if b_hh is not None:
            hp += b_hh
        r = a[:, orr:orr + H]
        z = a[:, oz:oz + H]
        n = a[:, on:on + H]
        r[...] = _sig(r + hp[:, orr:orr + H])
        z[...] = _sig(z + hp[:, oz:oz + H])
        hn[t] = hp[:, on:on + H]
        n[...] = np.tanh(n + r * hn[t])
        out[t] = (1.0 - z) * n + z * h
        h = out[t]


def _np_gru_steps_backward(gout, gates, w_hh, keras, h0, out, hn, offs, reverse, dxa, dha, dh0):
    """dxa[t] = dL/d(x projection), dha[t] = dL/d(h W_hh + b_hh) at step t."""
    T = gates.shape[0]
    H = h0.shape[1]
    orr, oz, on = offs
    w = _whh(w_hh, keras)
    dh = np.zeros_like(h0)
    for k, t in enumerate(_order(T, not reverse)):
        dh += gout[t]
        a = gates[t]
        r, z, n = a[:, orr:orr + H], a[:, oz:oz + H], a[:, on:on + H]
        h_prev = h0 if k == T - 1 else out[t + 1 if reverse else t - 1]
        dn = dh * (1.0 - z) * (1.0 - n * n)
        dr = dn * hn[t] * r * (1.0 - r)
        dz = dh * (h_prev - n) * z * (1.0 - z)
        dx, dhp = dxa[t], dha[t]
        dx[:, orr:orr + H] = dr
        dx[:, oz:oz + H] = dz
        dx[:, on:on + H] = dn
        dhp[:, orr:orr + H] = dr
        dhp[:, oz:oz + H] = dz
        dhp[:, on:on + H] = dn * r
        dh = dh * z + dhp @ w.T
    dh0[...] = dh


def _np_rnn_steps(gates, w_hh, keras, h0, out, relu, reverse):
    T = gates.shape[0]
    w = _whh(w_hh, keras)
    h = h0
    for t in _order(T, reverse):
        a = gates[t] + h @ w
        out[t] = np.maximum(a, 0) if relu else np.tanh(a)
        h = out[t]


def _np_rnn_steps_backward(gout, w_hh, keras, h0, out, relu, reverse, da, dh0):
    T = out.shape[0]
    w = _whh(w_hh, keras)
    dh = np.zeros_like(h0)
    for t in _order(T, not reverse):
        dh += gout[t]
        h = out[t]
        da[t] = dh * (h > 0) if relu else dh * (1.0 - h * h)
        dh = da[t] @ w.T
    dh0[...] = dh


# ================================================================ step-kernel dispatch ===


def _kernels(ctx, x):
    """The Cython step kernels when the cython backend runs on CPU arrays, else None."""
    if ctx.backend.name != "cython" or type(x) is not np.ndarray:
        return None
    from ..backends.cython_backend import _cpu

    return _cpu if hasattr(_cpu, "lstm_steps") else None


def _threads():
    from ..backends import threads

    return threads._num_threads


# ================================================================ fused Functions ===


def _project(ctx, x, w_ih, keras, G, biases):
    """gates (T, B, G*H) = x op(W_ih) + sum(biases): every step's input projection, one GEMM."""
    T, B, F = x.shape
    x2 = x.reshape(T * B, F)
    gates = ctx.backend.matmul(x2, w_ih, False, not keras)
    if biases:
        gates += biases[0] if len(biases) == 1 else biases[0] + biases[1]   # one pass
    return gates.reshape(T, B, G)


def _weight_grads(ctx, x, da, w_ih, keras):
    """dx, dW_ih from da (T, B, G*H) = dL/d(x projection): two GEMMs over all steps (dx only
    when x needs a gradient: a first layer's data does not)."""
    T, B, F = x.shape
    G = da.shape[2]
    d2 = da.reshape(T * B, G)
    x2 = x.reshape(T * B, F)
    mm = ctx.backend.matmul
    needs = getattr(ctx, "needs_input_grad", None)
    dx = mm(d2, w_ih, False, keras).reshape(T, B, F) if needs is None or needs[0] else None
    dw = mm(x2, d2, True, False) if keras else mm(d2, x2, True, False)
    return dx, dw


def _hh_weight_grad(ctx, dha, out, h0, keras, reverse):
    """dW_hh = sum_t op(dha[t], h_prev(t)): h_prev is h0 at the first step, else a contiguous
    run of ``out`` -- two GEMMs (the second accumulates)."""
    T, B, G = dha.shape
    H = h0.shape[1]
    mm = ctx.backend.matmul
    if reverse:
        first, rest, prevs = dha[T - 1], dha[:T - 1], out[1:T]
    else:
        first, rest, prevs = dha[0], dha[1:], out[:T - 1]
    if keras:
        dw = mm(h0, first, True, False)
        if T > 1:
            mm(prevs.reshape(-1, H), rest.reshape(-1, G), True, False, out=dw, accumulate=True)
    else:
        dw = mm(first, h0, True, False)
        if T > 1:
            mm(rest.reshape(-1, G), prevs.reshape(-1, H), True, False, out=dw, accumulate=True)
    return dw


def _c(a):
    return a if a.flags.c_contiguous else a.copy(order="C")     # numpy or cupy


def _gate_offsets(kind, gates, H):
    return tuple(gates.index(ch) * H for ch in ("ifgo" if kind == "lstm" else "rzn"))


def _double_backward(ctx, grad_output, kind):
    """create_graph=True: differentiate the reference formulation of the same pass instead."""
    inputs = ctx.saved_tensors
    with autograd.enable_grad():
        ref = _reference_pass(kind, *inputs, **ctx.attrs)
    return _vjp_within(ref, grad_output, inputs)


def _vjp_within(out, g, inputs):
    """Gradients of ``out`` (upstream ``g``) w.r.t. ``inputs``, walking only the graph between
    them (never above the inputs: their own producers and hooks are the outer walk's job).
    Runs with the current grad mode, so with it on the results are differentiable again."""
    stop = {id(t): t for t in inputs}
    order, seen, stack = [], set(), [(out, False)]
    while stack:
        t, done = stack.pop()
        if done:
            order.append(t)
            continue
        if id(t) in seen:
            continue
        seen.add(id(t))
        stack.append((t, True))
        if id(t) not in stop and t._node is not None:
            stack.extend((p, False) for p in t._node.parents
                         if p.requires_grad and id(p) not in seen)
    grads = {id(out): g}
    for t in reversed(order):
        if id(t) in stop or t._node is None:
            continue
        gt = grads.pop(id(t), None)
        if gt is None:
            continue
        node = t._node
        node.ctx.saved_tensors = [autograd._as_graph_tensor(a, node.parents, t)
                                  for a in node.ctx._saved]     # as autograd's graph walk does
        in_grads = node.fn.backward(node.ctx, gt)
        if not isinstance(in_grads, tuple):
            in_grads = (in_grads,)
        for p, gp in zip(node.parents, in_grads):
            if gp is None or not p.requires_grad:
                continue
            if not isinstance(gp, Tensor):
                gp = Tensor._wrap(gp, False)
            if gp.shape != p.shape:
                gp = autograd.sum_to_shape(gp, p.shape)
            grads[id(p)] = gp if id(p) not in grads else grads[id(p)] + gp
    result, done = [], set()
    for t in inputs:       # an input given twice (h0 is c0) gets its gradient once
        result.append(None if id(t) in done else grads.get(id(t)))
        done.add(id(t))
    return tuple(result)


@register("lstm_sequence")
class LSTMSequence(Function):
    """One LSTM layer in one direction over a whole (T, B, F) sequence, as one graph node.

    Inputs: x (T, B, F), h0, c0 (B, H), w_ih, w_hh (``layout``), then b_ih and b_hh (G*H,) when
    ``n_bias`` is 2 (1: only b_ih). Output (T+1, B, H): out[:T] = h_t, out[T] = c_T (the final
    cell state; for ``reverse`` the step run last is t = 0).

    Forward:  a_t = x_t op(W_ih) + b_ih + b_hh + h_(t-1) op(W_hh);  i, f, o = sigmoid, g = tanh
              c_t = f c_(t-1) + i g;   h_t = o tanh(c_t)
    Backward (t from the last step run back to the first; dh, dc carried):
              dh += dY_t;   dc += dh o (1 - tanh^2 c_t)
              da_i = dc g i(1-i);  da_f = dc c_(t-1) f(1-f);  da_g = dc i (1-g^2)
              da_o = dh tanh(c_t) o(1-o);   dc <- dc f;   dh <- da op(W_hh)^T
              dx = da op(W_ih)^T, dW_ih = sum x_t^T da_t, dW_hh = sum h_(t-1)^T da_t (layout-
              transposed), db_ih = db_hh = sum da, dh0 = dh, dc0 = dc.
    With grad mode on in backward (create_graph) it differentiates the reference instead.
    """

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, *biases, layout="torch", gates="ifgo",
                reverse=False):
        keras = layout == "keras"
        T, B, _ = x.shape
        H = h0.shape[1]
        ctx.save(x, h0, c0, w_ih, w_hh, *biases)     # the inputs, for a double backward
        x, h0, c0, w_hh = _c(x), _c(h0), _c(c0), _c(w_hh)
        offs = _gate_offsets("lstm", gates, H)
        g = _project(ctx, x, w_ih, keras, 4 * H, biases)
        xp = ctx.xp
        out = xp.empty((T + 1, B, H), dtype=x.dtype)
        cs = xp.empty((T, B, H), dtype=x.dtype)
        tcs = xp.empty((T, B, H), dtype=x.dtype)
        k = _kernels(ctx, x)
        if k is not None:
            k.lstm_steps(g, w_hh, keras, h0, c0, out, cs, tcs, offs, reverse, _threads())
        else:
            _np_lstm_steps(g, w_hh, keras, h0, c0, out, cs, tcs, offs, reverse)
        ctx.arrays = (x, h0, c0, w_ih, w_hh, g, out, cs, tcs)
        ctx.attrs = dict(layout=layout, gates=gates, reverse=reverse)
        ctx.n_bias = len(biases)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        if autograd.is_grad_enabled():
            return _double_backward(ctx, grad_output, "lstm")
        x, h0, c0, w_ih, w_hh, g, out, cs, tcs = ctx.arrays
        keras = ctx.attrs["layout"] == "keras"
        reverse = ctx.attrs["reverse"]
        gout = _c(grad_output.data)
        H = h0.shape[1]
        offs = _gate_offsets("lstm", ctx.attrs["gates"], H)
        xp = ctx.xp
        da = xp.empty_like(g)
        dh0, dc0 = xp.empty_like(h0), xp.empty_like(c0)
        k = _kernels(ctx, x)
        if k is not None:
            k.lstm_steps_backward(gout, g, w_hh, keras, h0, c0, out, cs, tcs, offs, reverse,
                                  da, dh0, dc0, _threads())
        else:
            _np_lstm_steps_backward(gout, g, w_hh, keras, h0, c0, out, cs, tcs, offs, reverse,
                                    da, dh0, dc0)
        dx, dw_ih = _weight_grads(ctx, x, da, w_ih, keras)
        dw_hh = _hh_weight_grad(ctx, da, out, h0, keras, reverse)
        db = (da.sum(axis=(0, 1)),) * ctx.n_bias
        return (dx, dh0, dc0, dw_ih, dw_hh) + db


@register("gru_sequence")
class GRUSequence(Function):
    """One GRU layer in one direction over a whole (T, B, F) sequence, as one graph node.

    Inputs: x (T, B, F), h0 (B, H), w_ih, w_hh (``layout``), then b_ih, b_hh (``n_bias`` of
    them; 1: only b_ih). Output (T, B, H) = h_t.

    Forward:  xa = x_t op(W_ih) + b_ih,  ha = h_(t-1) op(W_hh) + b_hh  (blocks r, z, n)
              r = sigmoid(xa_r + ha_r), z = sigmoid(xa_z + ha_z), n = tanh(xa_n + r ha_n)
              h_t = (1 - z) n + z h_(t-1)
    Backward: dh += dY_t;  dn = dh (1-z)(1-n^2);  dr = dn ha_n r(1-r);
              dz = dh (h_(t-1) - n) z(1-z);  dxa = (dr, dz, dn);  dha = (dr, dz, dn r);
              dh <- dh z + dha op(W_hh)^T;  dW_ih, dx from dxa, dW_hh from dha (one GEMM each),
              db_ih = sum dxa, db_hh = sum dha, dh0 = dh.
    With grad mode on in backward (create_graph) it differentiates the reference instead.
    """

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, *biases, layout="torch", gates="rzn", reverse=False):
        keras = layout == "keras"
        T, B, _ = x.shape
        H = h0.shape[1]
        ctx.save(x, h0, w_ih, w_hh, *biases)
        x, h0, w_hh = _c(x), _c(h0), _c(w_hh)
        offs = _gate_offsets("gru", gates, H)
        g = _project(ctx, x, w_ih, keras, 3 * H, biases[:1])
        b_hh = _c(biases[1]) if len(biases) > 1 else None
        xp = ctx.xp
        out = xp.empty((T, B, H), dtype=x.dtype)
        hn = xp.empty((T, B, H), dtype=x.dtype)
        k = _kernels(ctx, x)
        if k is not None:
            k.gru_steps(g, w_hh, b_hh, keras, h0, out, hn, offs, reverse, _threads())
        else:
            _np_gru_steps(g, w_hh, b_hh, keras, h0, out, hn, offs, reverse)
        ctx.arrays = (x, h0, w_ih, w_hh, g, out, hn)
        ctx.attrs = dict(layout=layout, gates=gates, reverse=reverse)
        ctx.n_bias = len(biases)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        if autograd.is_grad_enabled():
            return _double_backward(ctx, grad_output, "gru")
        x, h0, w_ih, w_hh, g, out, hn = ctx.arrays
        keras = ctx.attrs["layout"] == "keras"
        reverse = ctx.attrs["reverse"]
        gout = _c(grad_output.data)
        offs = _gate_offsets("gru", ctx.attrs["gates"], h0.shape[1])
        xp = ctx.xp
        dxa, dha, dh0 = xp.empty_like(g), xp.empty_like(g), xp.empty_like(h0)
        k = _kernels(ctx, x)
        if k is not None:
            k.gru_steps_backward(gout, g, w_hh, keras, h0, out, hn, offs, reverse, dxa, dha,
                                 dh0, _threads())
        else:
            _np_gru_steps_backward(gout, g, w_hh, keras, h0, out, hn, offs, reverse, dxa, dha,
                                   dh0)
        dx, dw_ih = _weight_grads(ctx, x, dxa, w_ih, keras)
        dw_hh = _hh_weight_grad(ctx, dha, out, h0, keras, reverse)
        db = (dxa.sum(axis=(0, 1)), dha.sum(axis=(0, 1)))[:ctx.n_bias]
        return (dx, dh0, dw_ih, dw_hh) + db


@register("rnn_sequence")
class RNNSequence(Function):
    """One Elman RNN layer in one direction over a whole (T, B, F) sequence, as one graph node.

    Inputs: x (T, B, F), h0 (B, H), w_ih, w_hh (``layout``), then 0-2 biases. Output (T, B, H).
    Forward:  h_t = act(x_t op(W_ih) + b_ih + b_hh + h_(t-1) op(W_hh)), act = tanh or relu.
    Backward: dh += dY_t;  da_t = dh act'(.) (tanh: 1 - h_t^2, relu: [h_t > 0]);
              dh <- da_t op(W_hh)^T;  dx, dW_ih, dW_hh one GEMM each;  db = sum da;  dh0 = dh.
    With grad mode on in backward (create_graph) it differentiates the reference instead.
    """

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, *biases, layout="torch", nonlinearity="tanh",
                reverse=False):
        keras = layout == "keras"
        T, B, _ = x.shape
        H = h0.shape[1]
        ctx.save(x, h0, w_ih, w_hh, *biases)
        x, h0, w_hh = _c(x), _c(h0), _c(w_hh)
        g = _project(ctx, x, w_ih, keras, H, biases)
        out = ctx.xp.empty((T, B, H), dtype=x.dtype)
        relu = nonlinearity == "relu"
        k = _kernels(ctx, x)
        if k is not None:
            k.rnn_steps(g, w_hh, keras, h0, out, relu, reverse, _threads())
        else:
            _np_rnn_steps(g, w_hh, keras, h0, out, relu, reverse)
        ctx.arrays = (x, h0, w_ih, w_hh, out)
        ctx.attrs = dict(layout=layout, nonlinearity=nonlinearity, reverse=reverse)
        ctx.n_bias = len(biases)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        if autograd.is_grad_enabled():
            return _double_backward(ctx, grad_output, "rnn")
        x, h0, w_ih, w_hh, out = ctx.arrays
        keras = ctx.attrs["layout"] == "keras"
        reverse = ctx.attrs["reverse"]
        relu = ctx.attrs["nonlinearity"] == "relu"
        gout = _c(grad_output.data)
        da, dh0 = ctx.xp.empty_like(out), ctx.xp.empty_like(h0)
        k = _kernels(ctx, x)
        if k is not None:
            k.rnn_steps_backward(gout, w_hh, keras, h0, out, relu, reverse, da, dh0, _threads())
        else:
            _np_rnn_steps_backward(gout, w_hh, keras, h0, out, relu, reverse, da, dh0)
        dx, dw_ih = _weight_grads(ctx, x, da, w_ih, keras)
        dw_hh = _hh_weight_grad(ctx, da, out, h0, keras, reverse)
        db = (da.sum(axis=(0, 1)),) * ctx.n_bias
        return (dx, dh0, dw_ih, dw_hh) + db


_FUSED = {"lstm": LSTMSequence, "gru": GRUSequence, "rnn": RNNSequence}


# ================================================================ reference formulation ===


def _mm(a, w, keras):
    return a @ w if keras else a @ w.T


def _reference_pass(kind, x, *rest, layout="torch", gates=None, reverse=False,
                    nonlinearity="tanh", act=None):
    """The same pass as the fused Function (same inputs, same packed output), with Tensor ops.
    ``act`` (a Tensor -> Tensor callable) overrides the tanh/relu of RNN and the two tanh of
    LSTM/GRU (Keras' ``activation``); the fused Functions only run tanh (and relu for RNN)."""
    from ..functions import stack

    keras = layout == "keras"
    if kind == "lstm":
        h0, c0, w_ih, w_hh, *biases = rest
    else:
        h0, w_ih, w_hh, *biases = rest
        c0 = None
    H = h0.shape[1]
    T = x.shape[0]
    xa = _mm(x, w_ih, keras)
    b_hh = None
    if kind == "gru":
        if biases:
            xa = xa + biases[0]
        if len(biases) > 1:
            b_hh = biases[1]
    else:
        for b in biases:
            xa = xa + b
    if act is None:
        act = (lambda v: v.relu()) if nonlinearity == "relu" else (lambda v: v.tanh())
    if kind != "rnn":
        offs = _gate_offsets(kind, gates, H)

        def blk(a, j):
            return a[:, offs[j]:offs[j] + H]

    h, c = h0, c0
    outs = [None] * T
    for t in _order(T, reverse):
        if kind == "rnn":
            h = act(xa[t] + _mm(h, w_hh, keras))
        elif kind == "lstm":
            a = xa[t] + _mm(h, w_hh, keras)
            i, f, g, o = blk(a, 0).sigmoid(), blk(a, 1).sigmoid(), act(blk(a, 2)), blk(a, 3)
            c = f * c + i * g
            h = o.sigmoid() * act(c)
        else:
            hp = _mm(h, w_hh, keras)
            if b_hh is not None:
                hp = hp + b_hh
            r = (blk(xa[t], 0) + blk(hp, 0)).sigmoid()
            z = (blk(xa[t], 1) + blk(hp, 1)).sigmoid()
            n = act(blk(xa[t], 2) + r * blk(hp, 2))
            h = (1 - z) * n + z * h
        outs[t] = h
    if kind == "lstm":
        outs.append(c)
    return stack(outs, axis=0)


# ================================================================ the functional API ===

FUSED_ACTIVATIONS = {"rnn": ("tanh", "relu"), "lstm": ("tanh",), "gru": ("tanh",)}


def _tensor(v):
    return v if v is None or isinstance(v, Tensor) else Tensor(v)


def recurrent(kind, x, hx, weights, *, num_layers=1, bidirectional=False, batch_first=False,
              dropout=0.0, training=False, layout="torch", gates=None, nonlinearity="tanh",
              act=None, fused=True):
    """Run ``num_layers`` stacked recurrent layers (see the module docstring).

    x: (T, B, F), or (B, T, F) with ``batch_first``. ``hx``: None (zeros) or the initial states
    (L*D, B, H) -- one Tensor for RNN/GRU, a pair (h0, c0) for LSTM. ``weights``: one
    (w_ih, w_hh, b_ih, b_hh) per layer and direction (layer-major, forward direction first);
    either bias may be None. ``act`` (a callable) replaces the tanh (relu) nonlinearity and
    forces the reference formulation; so does ``fused=False``.
    Returns (output, h_n) -- (output, (h_n, c_n)) for LSTM -- output (T, B, D*H) (batch-first
    when ``batch_first``), h_n (L*D, B, H).
    """
    from ..functions import cat
    from . import functional as F

    name = f"nn.functional.{kind}"
    if kind not in _N_GATES:
        raise ValueError(f"recurrent: kind must be one of {sorted(_N_GATES)}, got {kind!r}")
    if layout not in ("torch", "keras"):
        raise ValueError(f"{name}: layout must be 'torch' or 'keras', got {layout!r}")
    if kind == "rnn":
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"{name}: nonlinearity must be 'tanh' or 'relu', got "
                             f"{nonlinearity!r}")
    else:
        gates = gates or ("ifgo" if kind == "lstm" else "rzn")
        if sorted(gates) != sorted(_GATE_SETS[kind]):
            raise ValueError(f"{name}: gates must order the letters {_GATE_SETS[kind]!r}, got "
                             f"{gates!r}")
    x = _tensor(x)
    if x.ndim != 3:
        raise ShapeError(f"{name}: expected a 3-D input (T, B, F) (batch_first: (B, T, F)), "
                         f"got shape {x.shape}")
    D = 2 if bidirectional else 1
    if len(weights) != num_layers * D:
        raise ShapeError(f"{name}: expected {num_layers * D} weight tuples (num_layers * "
                         f"directions), got {len(weights)}")
    if batch_first:
        x = x.swapaxes(0, 1)
    T, B, _ = x.shape
    if T < 1:
        raise ShapeError(f"{name}: the sequence must have at least one step, got shape "
                         f"{x.shape}")
    w_hh0 = weights[0][1]
    G = _N_GATES[kind]
    H = (w_hh0.shape[0] if layout == "keras" else w_hh0.shape[1])
    n_states = 2 if kind == "lstm" else 1
    states = _initial_states(name, hx, n_states, (num_layers * D, B, H), x)
    dts = {t.dtype for w in weights for t in w if t is not None} | {x.dtype}
    dts |= {s.dtype for s in states}
    if len({d for d in dts if d.kind == "f"}) > 1:   # as matmul/linear/conv (and PyTorch)
        from ..errors import DTypeError

        raise DTypeError(f"{name}: input, states and weights must have the same float dtype, "
                         f"got {sorted(str(d) for d in dts)}; convert with .float() (float32) "
                         "or .double() (float64)")
    use_fused = (fused and act is None and len(dts) == 1
                 and x.dtype in (np.dtype(np.float32), np.dtype(np.float64)))
    finals = [[] for _ in range(n_states)]
    for layer in range(num_layers):
        outs = []
        for d in range(D):
            k = layer * D + d
            w_ih, w_hh, b_ih, b_hh = (_tensor(w) for w in weights[k])
            _check_weights(name, k, layout, G, H, x.shape[2], w_ih, w_hh, b_ih, b_hh)
            init = [s[k] for s in states]
            biases = [b for b in (b_ih, b_hh) if b is not None]
            if kind == "gru" and b_ih is None and b_hh is not None:
                biases = [Tensor._wrap(x.xp.zeros(G * H, dtype=x.dtype), False), b_hh]
            attrs = dict(layout=layout, reverse=d == 1)
            if kind == "rnn":
                attrs["nonlinearity"] = nonlinearity
            else:
                attrs["gates"] = gates
            if use_fused:
                seq = _FUSED[kind].apply(x, *init, w_ih, w_hh, *biases, **attrs)
            else:
                seq = _reference_pass(kind, x, *init, w_ih, w_hh, *biases, act=act, **attrs)
            last = 0 if d == 1 else T - 1                 # the step run last
            finals[0].append(seq[last:last + 1])          # (1, B, H) slices: cat, no stack
            if kind == "lstm":
                finals[1].append(seq[T:T + 1])
                seq = seq[:T]
            outs.append(seq)
        x = outs[0] if D == 1 else cat(outs, axis=2)
        if dropout and training and layer < num_layers - 1:
            x = F.dropout(x, dropout, True)
    out = x.swapaxes(0, 1) if batch_first else x
    finals = [f[0] if len(f) == 1 else cat(f, axis=0) for f in finals]
    return out, (tuple(finals) if kind == "lstm" else finals[0])


def _initial_states(name, hx, n, shape, x):
    if hx is None:
        zero = Tensor._wrap(x.xp.zeros(shape, dtype=x.dtype), False)
        return (zero,) * n
    hx = (hx,) if isinstance(hx, Tensor) or n == 1 and not isinstance(hx, (tuple, list)) \
        else tuple(hx)
    if len(hx) != n:
        raise ShapeError(f"{name}: expected {n} initial state tensor(s), got {len(hx)}")
    hx = tuple(_tensor(h) for h in hx)
    for h in hx:
        if tuple(h.shape) != shape:
            raise ShapeError(f"{name}: initial state must have shape {shape}, got {h.shape}")
    return hx


def _check_weights(name, k, layout, G, H, F, w_ih, w_hh, b_ih, b_hh):
    want_ih, want_hh = ((F, G * H), (H, G * H)) if layout == "keras" else ((G * H, F), (G * H, H))
    if tuple(w_ih.shape) != want_ih or tuple(w_hh.shape) != want_hh:
        raise ShapeError(f"{name}: weights of layer/direction {k} must be w_ih {want_ih} and "
                         f"w_hh {want_hh} (layout {layout!r}), got {w_ih.shape} and "
                         f"{w_hh.shape}")
    for b in (b_ih, b_hh):
        if b is not None and tuple(b.shape) != (G * H,):
            raise ShapeError(f"{name}: biases of layer/direction {k} must have shape "
                             f"{(G * H,)}, got {b.shape}")


def lstm(x, hx, weights, **kw):
    """Stacked LSTM; see ``recurrent``. Returns (output, (h_n, c_n))."""
    return recurrent("lstm", x, hx, weights, **kw)


def gru(x, hx, weights, **kw):
    """Stacked GRU; see ``recurrent``. Returns (output, h_n)."""
    return recurrent("gru", x, hx, weights, **kw)


def rnn(x, hx, weights, **kw):
    """Stacked Elman RNN (``nonlinearity`` tanh or relu); see ``recurrent``."""
    return recurrent("rnn", x, hx, weights, **kw)
