"""Activation modules: thin wrappers over the Tensor methods, for use inside Sequential.

Next: container.py.
"""

from .module import Module


class _Act(Module):
    def forward(self, x):
        return self.fn(x)


class ReLU(_Act):
    """max(x, 0); the gradient at x = 0 is taken as 0."""

    def fn(self, x):
        return x.relu()


class LeakyReLU(_Act):
    """x if x > 0 else negative_slope * x."""

    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def fn(self, x):
        return x.leaky_relu(self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class ELU(_Act):
    """x if x > 0 else alpha * (e^x - 1)."""

    def __init__(self, alpha=1.0):
        super().__init__()
        self.alpha = alpha

    def fn(self, x):
        return x.elu(self.alpha)

    def extra_repr(self):
        return f"alpha={self.alpha}"


class GELU(_Act):
    """x * Phi(x) (Phi: the standard normal CDF); ``approximate='tanh'`` for the tanh form."""

    def __init__(self, approximate="none"):
        super().__init__()
        self.approximate = approximate

    def fn(self, x):
        return x.gelu(self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class Sigmoid(_Act):
    """1 / (1 + e^-x)."""

    def fn(self, x):
        return x.sigmoid()


class Tanh(_Act):
    def fn(self, x):
        return x.tanh()


class Softplus(_Act):
    """log(1 + e^(beta x)) / beta, a smooth ReLU; linear (x) where beta x > threshold."""

    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def fn(self, x):
        from .functional import softplus

        return softplus(x, self.beta, self.threshold)

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"


class SiLU(_Act):
    """x * sigmoid(x) (swish)."""

    def fn(self, x):
        return x.silu()


class Mish(_Act):
    """x * tanh(softplus(x))."""

    def fn(self, x):
        return x.mish()


class SELU(_Act):
    """scale * elu(x, alpha) with PyTorch's constants."""

    def fn(self, x):
        return x.selu()


class CELU(_Act):
    """max(0, x) + min(0, alpha (e^(x/alpha) - 1))."""

    def __init__(self, alpha=1.0):
        super().__init__()
        self.alpha = alpha

    def fn(self, x):
        return x.celu(self.alpha)

    def extra_repr(self):
        return f"alpha={self.alpha}"


class Hardtanh(_Act):
    """clip(x, min_val, max_val)."""

    def __init__(self, min_val=-1.0, max_val=1.0):
        super().__init__()
        self.min_val, self.max_val = min_val, max_val

    def fn(self, x):
        return x.hardtanh(self.min_val, self.max_val)

    def extra_repr(self):
        return f"min_val={self.min_val}, max_val={self.max_val}"


class ReLU6(_Act):
    """min(max(x, 0), 6)."""

    def fn(self, x):
        return x.relu6()


class Hardsigmoid(_Act):
    """relu6(x + 3) / 6."""

    def fn(self, x):
        return x.hardsigmoid()


class Hardswish(_Act):
    """x * relu6(x + 3) / 6."""

    def fn(self, x):
        return x.hardswish()


class Softsign(_Act):
    """x / (1 + |x|)."""

    def fn(self, x):
        return x.softsign()


class LogSigmoid(_Act):
    """log sigmoid(x)."""

    def fn(self, x):
        return x.logsigmoid()


class GLU(_Act):
    """a * sigmoid(b) over the two halves of ``dim``."""

    def __init__(self, dim=-1):
        super().__init__()
        self.dim = dim

    def fn(self, x):
        return x.glu(dim=self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class Softmax(_Act):
    """e^x_i / sum_j e^x_j along ``dim`` (default the last axis)."""

    def __init__(self, dim=-1):
        super().__init__()
        self.dim = dim

    def fn(self, x):
        return x.softmax(axis=self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """x_i - logsumexp(x) along ``dim``; pair it with ``nll_loss``."""

    def fn(self, x):
        return x.log_softmax(axis=self.dim)


class Softmin(Softmax):
    """softmax(-x) along ``dim``."""

    def fn(self, x):
        return x.softmin(axis=self.dim)
