"""Dense layers: Linear, Identity, Flatten, Dropout, Embedding.

Next: conv.py.
"""

import numpy as np

from ..tensor import Tensor, get_default_dtype
from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter


def _empty(shape, dtype):
    return Parameter(np.zeros(shape, dtype=np.dtype(dtype or get_default_dtype())))


class Identity(Module):
    """Returns its input; a placeholder (e.g. a shortcut that needs no projection)."""

    def forward(self, x):
        return x


class Linear(Module):
    """y = x W^T + b, with W of shape (out_features, in_features) and b of shape (out_features,).

    Default init (PyTorch): W and b ~ U(-1/sqrt(in_features), 1/sqrt(in_features)) (that is
    ``kaiming_uniform_(a=sqrt(5))`` for W).

    >>> layer = Linear(3, 2)
    >>> layer(Tensor(np.ones((4, 3), dtype=np.float32))).shape
    (4, 2)
    """

    def __init__(self, in_features, out_features, bias=True, dtype=None):
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.weight = _empty((self.out_features, self.in_features), dtype)
        self.bias = _empty((self.out_features,), dtype) if bias else None
        if not bias:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        init.default_uniform_(self.weight, self.in_features)
        if self.bias is not None:
            init.default_uniform_(self.bias, self.in_features)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


class Flatten(Module):
    """Flatten axes start_dim..end_dim into one (default: all but the batch axis)."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return x.flatten(self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Dropout(Module):
    """Inverted dropout while training (zero with probability p, scale survivors by 1/(1-p));
    the identity in eval mode. A regularizer: no unit can rely on one particular other unit."""

    def __init__(self, p=0.5, seed=None):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got p={p}")
        self.p = float(p)
        # seed=...: this layer's own generator (thread-independent); else the thread's default
        self._rng = None if seed is None else np.random.default_rng(seed)

    def forward(self, x):
        return F.dropout(x, self.p, self.training, generator=self._rng)

    def extra_repr(self):
        return f"p={self.p}"


class Embedding(Module):
    """A lookup table: row i of ``weight`` (num_embeddings, embedding_dim) for index i.

    Default init (PyTorch): N(0, 1); the ``padding_idx`` row starts at zero and gets no gradient
    (its output is masked to zero).
    """

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, dtype=None):
        super().__init__()
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(
                    f"Embedding: padding_idx must be in [-{num_embeddings}, "
                    f"{num_embeddings}), got {padding_idx}"
                )
            padding_idx %= num_embeddings
        self.padding_idx = padding_idx
        self.weight = _empty((self.num_embeddings, self.embedding_dim), dtype)
        self.reset_parameters()

    def reset_parameters(self):
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0

    def forward(self, indices):
        out = F.embedding(indices, self.weight)
        if self.padding_idx is not None:
            idx = indices.data if isinstance(indices, Tensor) else np.asarray(indices)
            keep = (idx != self.padding_idx)[..., None].astype(out.dtype)
            out = out * Tensor._wrap(out.xp.asarray(keep), False)
        return out

    def extra_repr(self):
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"
