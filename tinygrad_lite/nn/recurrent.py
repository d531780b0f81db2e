"""Recurrent layers: RNN, LSTM, GRU (PyTorch parameter names, shapes and gate order).

A recurrent layer applies the same cell at every time step t, carrying a hidden state h:

    RNN:   h_t = tanh(W_ih x_t + b_ih + W_hh h_(t-1) + b_hh)

    LSTM:  i, f, g, o = split(W_ih x_t + b_ih + W_hh h_(t-1) + b_hh)  (gate order i, f, g, o)
           i, f, o = sigmoid(i), sigmoid(f), sigmoid(o);  g = tanh(g)
           c_t = f * c_(t-1) + i * g;   h_t = o * tanh(c_t)

    GRU:   r, z, n-parts = gate order r, z, n
           r = sigmoid(W_ir x + b_ir + W_hr h + b_hr);  z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
           n = tanh(W_in x + b_in + r * (W_hn h + b_hn));  h_t = (1 - z) * n + z * h_(t-1)

The recurrence itself lives in one place, ``_recurrent_core.py`` (``nn.functional.rnn/lstm/gru``),
shared with the Keras-style layers: each layer and direction runs as one fused Function (one GEMM
for every step's input projection, then per step the recurrent GEMM and the gate nonlinearities;
hand-written backpropagation through time), and the Tensor-op formulation of the cells is kept
there as the reference (used for double backward).

Parameters of layer k: ``weight_ih_l{k}`` (G*H, in), ``weight_hh_l{k}`` (G*H, H),
``bias_ih_l{k}``, ``bias_hh_l{k}`` (G*H,), with G = 1 (RNN), 4 (LSTM), 3 (GRU) and a
``_reverse`` suffix for the backward direction. Default init (PyTorch): every parameter
~ U(-1/sqrt(H), 1/sqrt(H)).

Next: ../optim/.
"""

import math

from ..errors import ShapeError
from ..tensor import Tensor
from . import _recurrent_core as _core
from . import init
from .linear import _empty
from .module import Module


class _RNNBase(Module):
    _gates = 1

    def __init__(
        self,
        input_size,
        hidden_size,
        num_layers=1,
        bias=True,
        batch_first=False,
        dropout=0.0,
        bidirectional=False,
        dtype=None,
    ):
        super().__init__()
        name = type(self).__name__
        if hidden_size < 1 or num_layers < 1:
            raise ValueError(
                f"{name}: hidden_size and num_layers must be >= 1, got "
                f"hidden_size={hidden_size}, num_layers={num_layers}"
            )
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"{name}: dropout must be in [0, 1], got {dropout}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional = bidirectional
        self.num_directions = 2 if bidirectional else 1
        gh = self._gates * hidden_size
        for layer in range(num_layers):
            n_in = input_size if layer == 0 else hidden_size * self.num_directions
            for sfx in self._suffixes(layer):
                setattr(self, f"weight_ih{sfx}", _empty((gh, n_in), dtype))
                setattr(self, f"weight_hh{sfx}", _empty((gh, hidden_size), dtype))
                if bias:
                    setattr(self, f"bias_ih{sfx}", _empty((gh,), dtype))
                    setattr(self, f"bias_hh{sfx}", _empty((gh,), dtype))
        self.reset_parameters()

    def _suffixes(self, layer):
        return [f"_l{layer}"] + ([f"_l{layer}_reverse"] if self.bidirectional else [])

    def reset_parameters(self):
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def _params(self, sfx):
        g = self._parameters
        return (
            g[f"weight_ih{sfx}"],
            g[f"weight_hh{sfx}"],
            g.get(f"bias_ih{sfx}"),
            g.get(f"bias_hh{sfx}"),
        )

    def forward(self, x, hx=None):
        """x: (T, B, input_size), or (B, T, input_size) with batch_first, or unbatched (T, F).
        Returns (output, h_n) -- (output, (h_n, c_n)) for LSTM -- with output (T, B, D*H) and
        h_n (num_layers*D, B, H). Runs ``nn.functional.{rnn,lstm,gru}`` (one fused Function per
        layer and direction)."""
        name = type(self).__name__
        x = x if isinstance(x, Tensor) else Tensor(x)
        unbatched = x.ndim == 2
        if x.ndim not in (2, 3) or x.shape[-1] != self.input_size:
            raise ShapeError(
                f"{name}: expected input (T, B, {self.input_size}) (batch_first: "
                f"(B, T, {self.input_size})), got shape {x.shape}"
            )
        if unbatched:
            x = x.unsqueeze(1)
        batch = x.shape[1] if unbatched or not self.batch_first else x.shape[0]
        states = self._initial_states(hx, batch, x, unbatched)
        weights = [self._params(sfx) for layer in range(self.num_layers)
                   for sfx in self._suffixes(layer)]
        out, finals = _core.recurrent(
            self._kind, x, states if len(states) > 1 else states[0], weights,
            num_layers=self.num_layers, bidirectional=self.bidirectional,
            batch_first=self.batch_first and not unbatched, dropout=self.dropout,
            training=self.training, **self._core_kwargs())
        if unbatched:
            out = out.squeeze(1)
            finals = (tuple(f.squeeze(1) for f in finals) if isinstance(finals, tuple)
                      else finals.squeeze(1))
        return out, finals

    def _core_kwargs(self):
        return {}

    def _initial_states(self, hx, batch, x, unbatched):
        n = self._n_states()
        shape = (self.num_layers * self.num_directions, batch, self.hidden_size)
        if hx is None:
            zero = Tensor._wrap(x.xp.zeros(shape, dtype=x.dtype), False)
            return (zero,) * n
        hx = (hx,) if isinstance(hx, Tensor) else tuple(hx)
        if len(hx) != n:
            raise ShapeError(
                f"{type(self).__name__}: expected {n} initial state tensor(s), got {len(hx)}"
            )
        hx = tuple(h.unsqueeze(1) if unbatched else h for h in hx)
        for h in hx:
            if tuple(h.shape) != shape:
                raise ShapeError(
                    f"{type(self).__name__}: initial state must have shape {shape}, got {h.shape}"
                )
        return hx

    def _n_states(self):
        return 1

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        if not self.bias:
            s += ", bias=False"
        return s


class RNN(_RNNBase):
    """Elman RNN, h_t = act(W_ih x_t + b_ih + W_hh h_(t-1) + b_hh), act = tanh or relu.

    >>> rnn = RNN(3, 5, batch_first=True)
    >>> out, h_n = rnn(Tensor(np.zeros((2, 7, 3), "f")))     # out (2, 7, 5), h_n (1, 2, 5)
    """

    def __init__(
        self,
        input_size,
        hidden_size,
        num_layers=1,
        nonlinearity="tanh",
        bias=True,
        batch_first=False,
        dropout=0.0,
        bidirectional=False,
        dtype=None,
    ):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, dtype
        )
        self.nonlinearity = nonlinearity

    _kind = "rnn"

    def _core_kwargs(self):
        return {"nonlinearity": self.nonlinearity}


class LSTM(_RNNBase):
    """Long short-term memory: the cell state c is changed only by gated addition, so gradients
    flow through many steps without vanishing. Returns (output, (h_n, c_n)).

    >>> lstm = LSTM(3, 5, num_layers=2)
    >>> out, (h_n, c_n) = lstm(Tensor(np.zeros((7, 2, 3), "f")))   # h_n, c_n: (2, 2, 5)
    """

    _gates = 4

    def _n_states(self):
        return 2

    _kind = "lstm"

    def _core_kwargs(self):
        return {"gates": "ifgo"}


class GRU(_RNNBase):
    """Gated recurrent unit (gate order r, z, n, as PyTorch); h_t = (1 - z) n + z h_(t-1)."""

    _gates = 3

    _kind = "gru"

    def _core_kwargs(self):
        return {"gates": "rzn"}
