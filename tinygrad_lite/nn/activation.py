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
        if self.beta == 1.0:
            return x.softplus()
        return (x * self.beta).softplus() * (1.0 / self.beta)

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"


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
