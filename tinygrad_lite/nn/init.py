"""Weight initialization (PyTorch's ``torch.nn.init`` names; Keras aliases ``glorot_*``/``he_*``).

Every function fills ``tensor.data`` in place, returns the tensor, and draws from the library's
generator (``tinygrad_lite.manual_seed``), so a seeded model is reproducible.

Why the scales. For y = W x with n inputs of variance 1 and weights of variance s^2, Var(y) =
n s^2. Keeping activations (and gradients) at a steady size through many layers needs s^2 ~ 1/n:

* Xavier/Glorot (tanh, sigmoid): Var(W) = gain^2 * 2 / (fan_in + fan_out), a compromise between
  the forward (fan_in) and the backward (fan_out) pass;
* Kaiming/He (ReLU): Var(W) = gain^2 / fan, with gain sqrt(2) because ReLU zeroes half the
  signal; ``mode='fan_in'`` keeps the forward pass steady, ``'fan_out'`` the backward pass;
* a uniform U(-b, b) has variance b^2/3, so b = sqrt(3) * std.

fan_in/fan_out of a weight (out, in, *kernel) are in*k and out*k, with k = the kernel size.

Next: losses.py.
"""

import math

import numpy as np

from ..tensor import default_generator


def _fill(tensor, values):
    tensor.data = tensor.xp.asarray(np.asarray(values).astype(tensor.dtype, copy=False))
    return tensor


def calculate_gain(nonlinearity, param=None):
    """The factor by which a nonlinearity shrinks the standard deviation, to undo in init:
    linear/sigmoid 1, tanh 5/3, relu sqrt 2, leaky_relu sqrt(2 / (1 + slope^2)), selu 3/4."""
    if nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose2d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity, got {nonlinearity!r}")


def calculate_fan_in_and_fan_out(tensor):
    """(fan_in, fan_out) of a weight (out, in, *kernel): (in * k, out * k)."""
    if tensor.ndim < 2:
        raise ValueError(
            f"init: fan in/out need a tensor with at least 2 dimensions, got shape {tensor.shape}"
        )
    k = int(np.prod(tensor.shape[2:])) if tensor.ndim > 2 else 1
    return tensor.shape[1] * k, tensor.shape[0] * k


_calculate_fan_in_and_fan_out = calculate_fan_in_and_fan_out


def zeros_(tensor):
    return _fill(tensor, np.zeros(tensor.shape))


def ones_(tensor):
    return _fill(tensor, np.ones(tensor.shape))


def constant_(tensor, val):
    return _fill(tensor, np.full(tensor.shape, val))


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    """Fill with U(a, b)."""
    rng = generator or default_generator()
    return _fill(tensor, rng.uniform(a, b, tensor.shape))


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    """Fill with N(mean, std^2)."""
    rng = generator or default_generator()
    return _fill(tensor, rng.normal(mean, std, tensor.shape))


def xavier_uniform_(tensor, gain=1.0, generator=None):
    """U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out))  (Glorot & Bengio, 2010)."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    """N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def _kaiming_std(tensor, a, mode, nonlinearity):
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """U(-b, b) with b = gain * sqrt(3 / fan)  (He et al., 2015). ``a`` is the leaky-ReLU slope;
    PyTorch's Linear/Conv default is a = sqrt(5), which gives b = 1/sqrt(fan_in)."""
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """N(0, std^2) with std = gain / sqrt(fan)."""
    return normal_(tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity), generator)


def orthogonal_(tensor, gain=1.0, generator=None):
    """A (semi-)orthogonal matrix (Saxe et al., 2013): QR of a Gaussian matrix, signs fixed so
    the distribution is uniform; the weight is viewed as (rows, everything else)."""
    if tensor.ndim < 2:
        raise ValueError(f"orthogonal_: needs at least 2 dimensions, got shape {tensor.shape}")
    rng = generator or default_generator()
    rows, cols = tensor.shape[0], int(np.prod(tensor.shape[1:]))
    flat = rng.standard_normal((rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _fill(tensor, gain * q.reshape(tensor.shape))


# Keras names.
glorot_uniform_, glorot_normal_ = xavier_uniform_, xavier_normal_


def he_uniform_(tensor, generator=None):
    """Keras' he_uniform: kaiming_uniform_ for ReLU, fan_in."""
    return kaiming_uniform_(tensor, 0.0, "fan_in", "relu", generator)


def he_normal_(tensor, generator=None):
    """kaiming_normal_ for ReLU, fan_in (Keras' he_normal draws a truncated normal; we don't)."""
    return kaiming_normal_(tensor, 0.0, "fan_in", "relu", generator)


def default_uniform_(tensor, fan_in, generator=None):
    """PyTorch's default for Linear, Conv and RNN weights and biases: U(-1/sqrt(n), 1/sqrt(n))."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return uniform_(tensor, -bound, bound, generator)


__all__ = [
    "calculate_fan_in_and_fan_out",
    "calculate_gain",
    "constant_",
    "default_uniform_",
    "glorot_normal_",
    "glorot_uniform_",
    "he_normal_",
    "he_uniform_",
    "kaiming_normal_",
    "kaiming_uniform_",
    "normal_",
    "ones_",
    "orthogonal_",
    "uniform_",
    "xavier_normal_",
    "xavier_uniform_",
    "zeros_",
]
