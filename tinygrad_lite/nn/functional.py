"""Functional forms of the neural-network ops (PyTorch's ``torch.nn.functional``).

Each validates its arguments, names the op and the shapes when they are wrong, and then applies
the registered Functions of ``ops/``.
"""

import numpy as np

from ..errors import LabelError, ShapeError
from ..ops import nn as N
from ..tensor import Tensor, default_generator


def _tensor(x):
    return x if isinstance(x, Tensor) else Tensor(x)


# ------------------------------------------------------------------ activations ---


def relu(x):
    return _tensor(x).relu()


def leaky_relu(x, negative_slope=0.01):
    return _tensor(x).leaky_relu(negative_slope)


def elu(x, alpha=1.0):
    return _tensor(x).elu(alpha)


def gelu(x, approximate="none"):
    return _tensor(x).gelu(approximate)


def sigmoid(x):
    return _tensor(x).sigmoid()


def tanh(x):
    return _tensor(x).tanh()


def softplus(x, beta=1.0, threshold=20.0):
    """log(1 + e^(beta x)) / beta; x itself where beta x > threshold (PyTorch)."""
    x = _tensor(x)
    if beta == 1.0 and threshold >= 20.0:
        return x.softplus()
    bx = x * beta
    return (bx > threshold).where(x, bx.softplus() * (1.0 / beta))


def silu(x):
    """x * sigmoid(x) (swish)."""
    return _tensor(x).silu()


def mish(x):
    """x * tanh(softplus(x))."""
    return _tensor(x).mish()


def selu(x):
    """scale * elu(x, alpha), alpha = 1.6732632..., scale = 1.0507009... (self-normalizing)."""
    return _tensor(x).selu()


def celu(x, alpha=1.0):
    """max(0, x) + min(0, alpha (e^(x/alpha) - 1))."""
    return _tensor(x).celu(alpha)


def relu6(x):
    """min(max(x, 0), 6)."""
    return _tensor(x).relu6()


def hardtanh(x, min_val=-1.0, max_val=1.0):
    """clip(x, min_val, max_val)."""
    return _tensor(x).hardtanh(min_val, max_val)


def hardsigmoid(x):
    """relu6(x + 3) / 6."""
    return _tensor(x).hardsigmoid()


def hardswish(x):
    """x * relu6(x + 3) / 6."""
    return _tensor(x).hardswish()


def softsign(x):
    """x / (1 + |x|)."""
    return _tensor(x).softsign()


def logsigmoid(x):
    """log(sigmoid(x)) = -softplus(-x), stable for large |x|."""
    return _tensor(x).logsigmoid()


def softmin(x, axis=-1, dim=None):
    """softmax(-x) along ``dim``."""
    return _tensor(x).softmin(axis=dim if dim is not None else axis)


def glu(x, dim=-1):
    """a * sigmoid(b), (a, b) the two halves of x along ``dim``."""
    return _tensor(x).glu(dim=dim)


def softmax(x, axis=-1, dim=None):
    return _tensor(x).softmax(axis=dim if dim is not None else axis)


def log_softmax(x, axis=-1, dim=None):
    return _tensor(x).log_softmax(axis=dim if dim is not None else axis)


# ------------------------------------------------------------------ dense ---


def linear(x, weight, bias=None):
    """y = x W^T + b with W of shape (out_features, in_features), as PyTorch."""
    x = _tensor(x)
    if x.shape[-1] != weight.shape[-1]:
        raise ShapeError(
            f"linear: input features differ from the weight, got x.shape={x.shape} "
            f"and weight.shape={weight.shape} ({x.shape[-1]} != {weight.shape[-1]})"
        )
    N.check_same_float("linear", x, weight)
    if x.ndim == 2 and weight.ndim == 2:
        y = N.MatMul.apply(x, weight, tb=True)      # x W^T without forming W^T
    else:
        y = x @ weight.T
    return y if bias is None else y + bias


def linear_relu(x, weight, bias, keras_layout=False):
    """relu(x W^T + b) (or relu(x W + b) with ``keras_layout``: W of shape (in, out)) as one
    fused Function (the GEMM with a bias + ReLU epilogue); the same values as
    ``linear(x, weight, bias).relu()``, which runs instead for anything but 2-D x and one float
    dtype."""
    x = _tensor(x)
    if (x.ndim == 2 and weight.ndim == 2 and bias is not None and x.dtype == weight.dtype
            == bias.dtype and x.dtype.kind == "f"
            and x.shape[-1] == weight.shape[0 if keras_layout else 1]):
        return N.LinearReLU.apply(x, weight, bias, tb=not keras_layout)
    if keras_layout:
        y = x @ weight
        return (y if bias is None else y + bias).relu()
    return linear(x, weight, bias).relu()


def dropout(x, p=0.5, training=True, generator=None):
    """Inverted dropout: zero each element with probability p and scale the rest by 1/(1-p), so
    the expected value is unchanged and evaluation needs no rescaling. Identity when not
    training."""
    x = _tensor(x)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got p={p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    rng = generator or default_generator()
    keep = rng.random(x.shape) >= p
    mask = keep.astype(x.dtype) * (1.0 / (1.0 - p))
    return x * Tensor._wrap(x.xp.asarray(mask), False)


def one_hot(labels, num_classes=-1, dtype=np.float32):
    """Rows of the identity picked by integer labels; no gradient."""
    lab = np.asarray(labels.numpy() if isinstance(labels, Tensor) else labels)
    if lab.dtype.kind not in "iu":
        if lab.size and not np.all(np.mod(lab, 1) == 0):
            raise LabelError(f"one_hot: labels must be integers, got dtype {lab.dtype}")
        lab = lab.astype(np.int64)
    n = int(lab.max()) + 1 if num_classes == -1 and lab.size else num_classes
    if lab.size and (lab.min() < 0 or lab.max() >= n):
        bad = lab[(lab < 0) | (lab >= n)]
        raise LabelError(f"one_hot: labels must be in [0, {n}), got {bad[:5].tolist()}")
    return Tensor(np.eye(n, dtype=dtype)[lab])


def embedding(indices, weight):
    """Rows of ``weight`` picked by integer ``indices``; repeated indices accumulate gradient."""
    idx = indices.data if isinstance(indices, Tensor) else np.asarray(indices)
    if idx.dtype.kind not in "iu":
        raise ShapeError(f"embedding: indices must be integers, got dtype {idx.dtype}")
    if idx.size and (idx.min() < 0 or idx.max() >= weight.shape[0]):
        raise ShapeError(
            f"embedding: indices must be in [0, {weight.shape[0]}), got min "
            f"{int(idx.min())}, max {int(idx.max())}"
        )
    return weight[idx]


# ------------------------------------------------------------------ convolution ---


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution over NCHW input with weight (out, in/groups, kh, kw) (cross-correlation,
    as every framework). ``padding='same'`` keeps H and W (stride 1); when the effective kernel
    d(k-1)+1 is even the extra row/column goes at the bottom/right, as PyTorch and Keras."""
    x = _tensor(x)
    N.check_float("conv2d", x, weight)
    N.check_same_float("conv2d", x, weight)
    if isinstance(padding, str):
        padding, extra = _same_padding(padding, weight.shape, dilation, stride)
        if any(extra):
            x = x.pad(
                (
                    (0, 0),
                    (0, 0),
                    (padding[0], padding[0] + extra[0]),
                    (padding[1], padding[1] + extra[1]),
                )
            )
            padding = 0
    geom, _ = N.conv_geometry("conv2d", x.shape, weight.shape, stride, padding, dilation, groups)
    if (bias is not None and getattr(bias, "dtype", None) == weight.dtype
            and tuple(getattr(bias, "shape", ())) == (weight.shape[0],)):
        return N.Conv2d.apply(x, weight, bias, geom=geom)   # the bias in the kernel's epilogue
    y = N.Conv2d.apply(x, weight, geom=geom)
    return y if bias is None else y + bias.reshape(1, -1, 1, 1)


def _same_padding(padding, w_shape, dilation, stride):
    """('same'|'valid') -> (symmetric padding, extra bottom/right padding)."""
    if padding == "valid":
        return 0, (0, 0)
    if padding != "same":
        raise ValueError(
            f"conv2d: padding must be an int, a pair, 'same' or 'valid', got {padding!r}"
        )
    d = N.pair(dilation, "dilation", "conv2d")
    if N.pair(stride, "stride", "conv2d") != (1, 1):
        raise ValueError(f"conv2d: padding='same' needs stride 1, got stride={stride}")
    total = [d[a] * (w_shape[2 + a] - 1) for a in range(2)]
    return (total[0] // 2, total[1] // 2), (total[0] % 2, total[1] % 2)


def conv_transpose2d(
    x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1
):
    """The transposed convolution (the adjoint of conv2d in its input): weight is
    (in, out/groups, kh, kw) as PyTorch; H_out = (H-1)s - 2p + d(k-1) + output_padding + 1."""
    x = _tensor(x)
    N.check_float("conv_transpose2d", x, weight)
    s, p, d = (
        N.pair(stride, "stride", "conv_transpose2d"),
        N.pair(padding, "padding", "conv_transpose2d"),
        N.pair(dilation, "dilation", "conv_transpose2d"),
    )
    op = N.pair(output_padding, "output_padding", "conv_transpose2d")
    if x.ndim != 4 or weight.ndim != 4 or x.shape[1] != weight.shape[0]:
        raise ShapeError(
            f"conv_transpose2d: expected x (N, C, H, W) and weight (C, O/groups, kh, "
            f"kw) with matching C, got x.shape={x.shape}, weight.shape={weight.shape}"
        )
    if any(op[a] >= s[a] for a in range(2)) or min(op) < 0:
        # PyTorch also allows output_padding < dilation at stride 1; we don't (the extra row
        # would have no input to come from).
        raise ShapeError(
            f"conv_transpose2d: output_padding must be in [0, stride), got "
            f"output_padding={op}, stride={s}"
        )
    out_hw = tuple(
        (x.shape[2 + a] - 1) * s[a] - 2 * p[a] + d[a] * (weight.shape[2 + a] - 1) + op[a] + 1
        for a in range(2)
    )
    if min(out_hw) < 1:
        raise ShapeError(f"conv_transpose2d: output would be empty, got {out_hw}")
    out_shape = (x.shape[0], weight.shape[1] * groups) + out_hw
    geom, _ = N.conv_geometry("conv_transpose2d", out_shape, weight.shape, s, p, d, groups)
    y = N.Conv2dBackwardInput.apply(x, weight, x_shape=out_shape, geom=geom)
    return y if bias is None else y + bias.reshape(1, -1, 1, 1)


# ------------------------------------------------------------------ pooling ---


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max over each window (padding reads -inf). The default options run the backend's
    max_pool2d; ``dilation``, ``ceil_mode`` and ``return_indices`` (flat h * W + w positions,
    for max_unpool2d) take the general path of spatial.py."""
    from .spatial import max_pool_nd

    return max_pool_nd(x, 2, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """Mean over each window; padded zeros count in the divisor unless
    ``count_include_pad=False`` (PyTorch's options, see spatial.avg_pool_nd)."""
    from .spatial import avg_pool_nd

    return avg_pool_nd(x, 2, kernel_size, stride, padding, ceil_mode, count_include_pad,
                       divisor_override)


def adaptive_avg_pool2d(x, output_size):
    """Average pooling to a fixed output size; exact when H, W divide by it (global pooling is
    output_size=1, a mean over H and W)."""
    x = _tensor(x)
    oh, ow = N.pair(output_size, "output_size", "adaptive_avg_pool2d")
    if (oh, ow) == (1, 1):
        return x.mean(axis=(2, 3), keepdims=True)
    if x.shape[2] % oh or x.shape[3] % ow:
        raise ShapeError(
            f"adaptive_avg_pool2d: input H, W must be divisible by the output size, "
            f"got {x.shape[2:]} and {(oh, ow)}"
        )
    k = (x.shape[2] // oh, x.shape[3] // ow)
    return avg_pool2d(x, k, k)


# ------------------------------------------------------------------ losses ---
# Defined in losses.py (with the math); re-exported so ``F.cross_entropy`` works as in PyTorch.

from .losses import (  # noqa: F401,E402
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    binary_crossentropy,
    categorical_crossentropy,
    cross_entropy,
    half_mse,
    huber_loss,
    l1_loss,
    l1_penalty,
    l2_penalty,
    mae,
    mean_absolute_error,
    mean_squared_error,
    mse_loss,
    nll_loss,
    smooth_l1_loss,
    sparse_categorical_crossentropy,
)


# ------------------------------------------------------------------ recurrent ---
# One core for nn.RNN/LSTM/GRU and the Keras SimpleRNN/LSTM/GRU (weight layout and gate order are
# parameters); each layer and direction is one fused Function. See _recurrent_core.py.
from ._recurrent_core import gru, lstm, recurrent, rnn  # noqa: E402,F401
# ------------------------------------------------------------------ attention ---
# Defined in attention.py (composed of registered ops); re-exported as in torch.nn.functional.

from .attention import scaled_dot_product_attention  # noqa: F401,E402

# ------------------------------------------------------------------ 1-D / 3-D, pads, resizing ---
# Defined in spatial.py (built on the 2-D backend primitives); re-exported as in PyTorch.

from .spatial import (  # noqa: F401,E402
    avg_pool1d,
    avg_pool3d,
    conv1d,
    conv3d,
    conv_transpose1d,
    cosine_similarity,
    group_norm,
    interpolate,
    max_pool1d,
    max_pool3d,
    max_unpool1d,
    max_unpool2d,
    max_unpool3d,
    normalize,
    pad,
    pairwise_distance,
)
