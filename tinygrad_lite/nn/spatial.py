"""1-D and 3-D convolution and pooling, pooling options, padding modes and resizing.

All of it is built on the 2-D primitives of the kernel backend (``ops/nn.py``), so every backend
(the NumPy reference, our Cython kernels, CUDA) runs it, and double backward comes with them:

* conv1d is conv2d on (N, C, 1, L) with a (O, C, 1, k) kernel; conv_transpose1d likewise;
* conv3d sums kd conv2d calls, one per kernel depth offset i, each on the depth slices
  x[:, :, o*s + i*d] folded into the batch:
  y[:, :, o] = sum_i conv2d(x[:, :, o*s + i*d], w[:, :, i]);
* max pooling without dilation is the backend's max_pool2d (1-D: on (N, C, 1, L); 3-D: over
  (H, W), then over D; ceil_mode: -inf padding on the right). With dilation or
  return_indices, the backend's ``max_pool_indices`` finds each window's argmax and x is
  gathered there (``PoolGather``). Either way the gradient goes to the argmax, the first one
  on ties, as PyTorch;
* average pooling is a window sum (the backend's avg_pool2d times the window size, applied per
  axis pair: a box sum is separable) divided by the number of counted cells, which handles
  count_include_pad=False and ceil_mode's clipped last window;
* pad modes reflect / replicate / circular are gathers with an index array per padded axis;
* interpolate (nearest, linear/bilinear/trilinear) is separable: per axis, a product with the
  (out, in) interpolation matrix (a gather plus a weighted sum on large axes).

Next: normalization.py.
"""

import math

import numpy as np

from ..backends import current_for
from ..errors import DTypeError, ShapeError
from ..ops import nn as N
from ..tensor import Tensor


def _tensor(x):
    return x if isinstance(x, Tensor) else Tensor(x)


def _tup(v, n, name, op):
    """An int (Python or NumPy) or ``n`` of them -> a tuple of ``n`` ints below 2**31; floats and
    bools are refused (one rule with the 2-D ops: ``ops.nn.pair``)."""
    if n == 2:
        return N.pair(v, name, op)
    if N._is_int(v):
        v = (int(v),) * n
    else:
        try:
            items = tuple(v)
        except TypeError:
            items = None
        if items is None or len(items) != n or not all(N._is_int(i) for i in items):
            raise ShapeError(f"{op}: {name} must be an int or {n} ints, got {v!r} "
                             f"({type(v).__name__})")
        v = tuple(int(i) for i in items)
    if max(abs(i) for i in v) > N.MAX_KERNEL_ARG:
        raise ShapeError(f"{op}: {name} must be below 2**31 (the kernels index with 32-bit "
                         f"ints), got {v}")
    return v


def _check_nd(op, x, nd, what="input"):
    if x.ndim != nd + 2:
        axes = ("L", "H, W", "D, H, W")[nd - 1]
        raise ShapeError(f"{op}: {what} must be {nd + 2}-D (N, C, {axes}), got shape {x.shape}")


def _same_pads(op, k, d, s):
    if any(si != 1 for si in s):
        raise ValueError(f"{op}: padding='same' needs stride 1, got stride={s}")
    tot = [di * (ki - 1) for ki, di in zip(k, d)]
    return tuple((t // 2, t - t // 2) for t in tot)


# ------------------------------------------------------------------ convolution ---


def conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D convolution over (N, C, L) with weight (O, C/groups, k), as ``torch.nn.functional``;
    padding an int, 'same' or 'valid'. Runs as conv2d on (N, C, 1, L)."""
    from .functional import conv2d

    x = _tensor(x)
    N.check_float("conv1d", x, weight)
    _check_nd("conv1d", x, 1)
    if weight.ndim != 3:
        raise ShapeError(f"conv1d: weight must be 3-D (O, C/groups, k), got shape {weight.shape}")
    (s,), (d,) = _tup(stride, 1, "stride", "conv1d"), _tup(dilation, 1, "dilation", "conv1d")
    p = padding if isinstance(padding, str) else (0, _tup(padding, 1, "padding", "conv1d")[0])
    y = conv2d(x.unsqueeze(2), weight.unsqueeze(2), None, (1, s), p, (1, d), groups).squeeze(2)
    return y if bias is None else y + bias.reshape(1, -1, 1)


def conv_transpose1d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """Transposed 1-D convolution, weight (C_in, O/groups, k) as PyTorch;
    L_out = (L - 1) s - 2p + d (k - 1) + output_padding + 1."""
    from .functional import conv_transpose2d

    x = _tensor(x)
    N.check_float("conv_transpose1d", x, weight)
    _check_nd("conv_transpose1d", x, 1)
    if weight.ndim != 3:
        raise ShapeError(f"conv_transpose1d: weight must be 3-D (C, O/groups, k), got shape "
                         f"{weight.shape}")
    op = "conv_transpose1d"
    (s,), (p,), (d,), (o,) = (_tup(stride, 1, "stride", op), _tup(padding, 1, "padding", op),
                              _tup(dilation, 1, "dilation", op),
                              _tup(output_padding, 1, "output_padding", op))
    y = conv_transpose2d(x.unsqueeze(2), weight.unsqueeze(2), None, (1, s), (0, p), (0, o),
                         groups, (1, d)).squeeze(2)
    return y if bias is None else y + bias.reshape(1, -1, 1)


def conv3d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """3-D convolution over (N, C, D, H, W) with weight (O, C/groups, kd, kh, kw); padding an int,
    a triple, 'same' or 'valid'. A sum over the kernel depth of conv2d calls (module docstring)."""
    from .functional import conv2d

    op = "conv3d"
    x = _tensor(x)
    N.check_float(op, x, weight)
    _check_nd(op, x, 3)
    if weight.ndim != 5:
        raise ShapeError(f"{op}: weight must be 5-D (O, C/groups, kd, kh, kw), got shape "
                         f"{weight.shape}")
    s, d = _tup(stride, 3, "stride", op), _tup(dilation, 3, "dilation", op)
    k = weight.shape[2:]
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(f"{op}: padding must be an int, a triple, 'same' or 'valid', got "
                             f"{padding!r}")
        pads = _same_pads(op, k, d, s) if padding == "same" else ((0, 0),) * 3
    else:
        pads = tuple((p, p) for p in _tup(padding, 3, "padding", op))
    if min(min(p) for p in pads) < 0 or min(s) < 1 or min(d) < 1:
        raise ShapeError(f"{op}: padding must be >= 0 and stride, dilation >= 1, got "
                         f"padding={padding}, stride={s}, dilation={d}")
    if x.shape[1] != weight.shape[1] * groups:
        raise ShapeError(f"{op}: input channels differ from weight, got x.shape={x.shape} and "
                         f"w.shape={weight.shape} (groups={groups})")
    if any(p != (0, 0) for p in pads):
        x = x.pad(((0, 0), (0, 0)) + pads)
    n, c, dp = x.shape[:3]
    od = (dp - d[0] * (k[0] - 1) - 1) // s[0] + 1
    if od < 1:
        raise ShapeError(f"{op}: kernel larger than the padded input, got input {x.shape[2:]}, "
                         f"kernel {k}, dilation {d}")
    xt = x.permute(0, 2, 1, 3, 4)                                    # (N, D, C, H, W)
    y = None
    for i in range(k[0]):
        xs = xt[:, i * d[0]:i * d[0] + s[0] * (od - 1) + 1:s[0]]      # (N, OD, C, H, W)
        yi = conv2d(xs.reshape(n * od, c, x.shape[3], x.shape[4]), weight[:, :, i], None,
                    s[1:], 0, d[1:], groups)
        y = yi if y is None else y + yi
    y = y.reshape((n, od) + y.shape[1:]).permute(0, 2, 1, 3, 4)
    return y if bias is None else y + bias.reshape(1, -1, 1, 1, 1)


# ------------------------------------------------------------------ pooling ---


def _pool_geometry(op, x, nd, kernel_size, stride, padding, dilation, ceil_mode):
    """-> (k, s, p, d, out, extra): extra is the right padding ceil_mode's last window needs."""
    k = _tup(kernel_size, nd, "kernel_size", op)
    no_stride = stride is None or (isinstance(stride, (list, tuple)) and len(stride) == 0)
    s = k if no_stride else _tup(stride, nd, "stride", op)
    p, d = _tup(padding, nd, "padding", op), _tup(dilation, nd, "dilation", op)
    if min(k) < 1 or min(s) < 1 or min(d) < 1:
        raise ShapeError(f"{op}: kernel_size and stride (and dilation) must be >= 1, got "
                         f"kernel_size={k}, stride={s}, dilation={d}")
    if min(p) < 0 or any(pi > ki // 2 for pi, ki in zip(p, k)):
        raise ShapeError(f"{op}: padding must be between 0 and half the kernel, got padding={p} "
                         f"for kernel_size={k}")
    out, extra = [], []
    for a in range(nd):
        size = x.shape[2 + a]
        span = size + 2 * p[a] - d[a] * (k[a] - 1) - 1
        o = (-(-span // s[a]) if ceil_mode else span // s[a]) + 1
        if ceil_mode and (o - 1) * s[a] >= size + p[a]:
            o -= 1                   # the last window must start inside the input or left pad
        if o < 1:
            raise ShapeError(f"{op}: kernel larger than the padded input, got input "
                             f"{x.shape[2:]}, kernel_size {k}, padding {p}, dilation {d}")
        out.append(o)
        extra.append(max(0, (o - 1) * s[a] + d[a] * (k[a] - 1) + 1 - (size + 2 * p[a])))
    return k, s, p, d, tuple(out), tuple(extra)


def _batched(op, x, nd):
    x = _tensor(x)
    N.check_float(op, x)
    if x.ndim == nd + 1:               # unbatched (C, *S), as PyTorch
        return x.unsqueeze(0), True
    _check_nd(op, x, nd)
    return x, False


def max_pool_nd(x, nd, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                return_indices=False, op=None):
    """Max pooling over the last ``nd`` axes (see max_pool1d/2d/3d)."""
    op = op or f"max_pool{nd}d"
    x, unbatched = _batched(op, x, nd)
    k, s, p, d, out, extra = _pool_geometry(op, x, nd, kernel_size, stride, padding, dilation,
                                            ceil_mode)
    idx = None
    if max(d) == 1 and not return_indices:
        if any(extra):              # ceil_mode: the last window reads -inf past the right pad
            x = x.pad(((0, 0), (0, 0)) + tuple((0, e) for e in extra), -np.inf)
        y = _max_pool_backend(x, k, s, p)
    else:
        idx = current_for(x.data).max_pool_indices(x.data, k, s, p, d, extra)
        n, c = x.shape[:2]
        y = N.PoolGather.apply(x.reshape(n, c, -1, 1), idx=idx.reshape(n, c, -1, 1))
        y = y.reshape((n, c) + out)
    if unbatched:
        y = y.squeeze(0)
        idx = None if idx is None else idx[0]
    if return_indices:
        return y, Tensor._wrap(idx, False)
    return y


def _max_pool_backend(x, k, s, p):
    """Max pooling on the backend's max_pool2d: 1-D as (N, C, 1, L); 3-D separably, first
    over (H, W) of every depth slice, then over D (a box max is a max of maxes; the first
    maximum in (d, h, w) order wins, as in one pass)."""
    nd = len(k)
    if nd == 1:
        return N.MaxPool2d.apply(x.unsqueeze(2), geom=((1,) + k, (1,) + s, (0,) + p)).squeeze(2)
    if nd == 2:
        return N.MaxPool2d.apply(x, geom=(k, s, p))
    n, c, dd, h, w = x.shape
    y = N.MaxPool2d.apply(x.reshape(n, c * dd, h, w), geom=(k[1:], s[1:], p[1:]))
    oh, ow = y.shape[2:]
    y = N.MaxPool2d.apply(y.reshape(n, c, dd, oh * ow), geom=((k[0], 1), (s[0], 1), (p[0], 0)))
    return y.reshape(n, c, y.shape[2], oh, ow)


def max_pool1d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """y[n, c, o] = max_j x_pad[n, c, o*s + j*d] (padding reads -inf); with
    ``return_indices`` also the flat position of each maximum (for max_unpool1d)."""
    return max_pool_nd(x, 1, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool3d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max over kd x kh x kw windows of (N, C, D, H, W); options as max_pool1d."""
    return max_pool_nd(x, 3, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def _window_sum(x, k, s):
    """sum of x over each window (no padding: x is padded already), via the backend's
    avg_pool2d on pairs of axes (a box sum is separable)."""
    nd = len(k)
    scale = float(np.prod(k))
    if nd == 1:
        y = N.AvgPool2d.apply(x.unsqueeze(2), geom=((1,) + k, (1,) + s, (0, 0))).squeeze(2)
    elif nd == 2:
        y = N.AvgPool2d.apply(x, geom=(k, s, (0, 0)))
    else:
        n, c, dd, h, w = x.shape
        y = N.AvgPool2d.apply(x.reshape(n, c * dd, h, w), geom=(k[1:], s[1:], (0, 0)))
        oh, ow = y.shape[2:]
        y = N.AvgPool2d.apply(y.reshape(n, c, dd, oh * ow), geom=((k[0], 1), (s[0], 1), (0, 0)))
        y = y.reshape(n, c, y.shape[2], oh, ow)
    return y * scale


def _counts(size, k, s, p, out, include_pad):
    """Cells of each window that count in the mean, along one axis (PyTorch's divisor)."""
    lo, hi = (-p, size + p) if include_pad else (0, size)
    start = np.arange(out) * s - p
    return np.minimum(start + k, hi) - np.maximum(start, lo)


def avg_pool_nd(x, nd, kernel_size, stride=None, padding=0, ceil_mode=False,
                count_include_pad=True, divisor_override=None, op=None):
    """Average pooling over the last ``nd`` axes (see avg_pool1d/2d/3d)."""
    op = op or f"avg_pool{nd}d"
    x, unbatched = _batched(op, x, nd)
    k, s, p, _, out, extra = _pool_geometry(op, x, nd, kernel_size, stride, padding, 1,
                                            ceil_mode)
    if nd <= 2 and not any(extra) and count_include_pad and divisor_override is None:
        x4 = x if nd == 2 else x.unsqueeze(2)
        geom = (k, s, p) if nd == 2 else ((1,) + k, (1,) + s, (0,) + p)
        y = N.AvgPool2d.apply(x4, geom=geom)
        y = y if nd == 2 else y.squeeze(2)
    else:
        pads = tuple((pa, pa + e) for pa, e in zip(p, extra))
        xpad = x.pad(((0, 0), (0, 0)) + pads) if any(map(any, pads)) else x
        total = _window_sum(xpad, k, s)
        if divisor_override is not None:
            if int(divisor_override) <= 0:
                raise ValueError(f"{op}: divisor_override must be > 0, got {divisor_override}")
            y = total / float(divisor_override)
        else:
            div = np.ones(out)
            for a in range(nd):
                shape = [1] * nd
                shape[a] = out[a]
                div = div * _counts(x.shape[2 + a], k[a], s[a], p[a], out[a],
                                    count_include_pad).reshape(shape)
            y = total * Tensor._wrap(x.xp.asarray(1.0 / div, dtype=x.dtype), False)
    return y.squeeze(0) if unbatched else y


def avg_pool1d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """y[n, c, o] = mean of the window (padded zeros count unless count_include_pad=False)."""
    return avg_pool_nd(x, 1, kernel_size, stride, padding, ceil_mode, count_include_pad)


def avg_pool3d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """Mean over kd x kh x kw windows of (N, C, D, H, W); options as avg_pool1d."""
    return avg_pool_nd(x, 3, kernel_size, stride, padding, ceil_mode, count_include_pad,
                       divisor_override)


def max_unpool_nd(x, indices, nd, kernel_size, stride=None, padding=0, output_size=None):
    """Put each pooled value back where its maximum was (zeros elsewhere); the partial inverse
    of max pooling with ``return_indices=True``. Default output size per axis:
    (L_in - 1) * stride - 2 * padding + kernel_size."""
    op = f"max_unpool{nd}d"
    x, unbatched = _batched(op, x, nd)
    idx = indices.data if isinstance(indices, Tensor) else np.asarray(indices)
    if unbatched:
        idx = idx[None]
    if idx.shape != x.shape or idx.dtype.kind not in "iu":
        raise ShapeError(f"{op}: indices must be integers shaped like the input, got "
                         f"{idx.shape} ({idx.dtype}) for input {x.shape}")
    k = _tup(kernel_size, nd, "kernel_size", op)
    s = k if stride is None else _tup(stride, nd, "stride", op)
    p = _tup(padding, nd, "padding", op)
    if output_size is None:
        out = tuple((x.shape[2 + a] - 1) * s[a] - 2 * p[a] + k[a] for a in range(nd))
    else:
        out = tuple(int(v) for v in tuple(output_size)[-nd:])
    size = int(np.prod(out))
    if idx.size and (idx.min() < 0 or idx.max() >= size):
        raise ShapeError(f"{op}: indices must be in [0, {size}) for output size {out}, got "
                         f"min {int(idx.min())}, max {int(idx.max())}")
    n, c = x.shape[:2]
    y = N.MaxUnpool.apply(x.reshape(n, c, -1, 1), idx=idx.reshape(n, c, -1, 1).astype(np.int64),
                          shape=(n, c, size, 1)).reshape((n, c) + out)
    return y.squeeze(0) if unbatched else y


def max_unpool2d(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    """The partial inverse of max_pool2d(..., return_indices=True) (PyTorch semantics)."""
    return max_unpool_nd(x, indices, 2, kernel_size, stride, padding, output_size)


def max_unpool1d(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    return max_unpool_nd(x, indices, 1, kernel_size, stride, padding, output_size)


def max_unpool3d(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    return max_unpool_nd(x, indices, 3, kernel_size, stride, padding, output_size)


# ------------------------------------------------------------------ padding ---


def _pad_index(size, lo, hi, mode, op):
    """Source index of every position of the padded axis."""
    i = np.arange(-lo, size + hi)
    if mode == "reflect":
        if lo >= size or hi >= size:
            raise ShapeError(f"{op}: reflect padding must be smaller than the axis, got padding "
                             f"({lo}, {hi}) for size {size}")
        period = 2 * (size - 1)
        i = np.abs(i) % period if period else np.zeros_like(i)
        return np.where(i >= size, period - i, i)
    if mode == "replicate":
        return np.clip(i, 0, size - 1)
    if lo > size or hi > size:
        raise ShapeError(f"{op}: circular padding must be at most the axis size, got padding "
                         f"({lo}, {hi}) for size {size}")
    return i % size


def pad(x, pad, mode="constant", value=0.0):
    """PyTorch's ``F.pad``: ``pad`` lists (left, right) pairs starting from the **last** axis,
    e.g. (1, 2) pads the last axis by 1 before and 2 after, (1, 1, 2, 0) also pads the axis
    before it by 2 on top. Pads may differ per side (asymmetric).

    Modes: 'constant' (``value``), 'reflect' (mirror without repeating the edge: ``dcb|abcd|cba``),
    'replicate' (repeat the edge: ``aaa|abcd|ddd``), 'circular' (wrap: ``bcd|abcd|abc``).
    A negative constant pad crops that side, as PyTorch.
    The non-constant modes are gathers, so the gradient sums back into the source cells.

    >>> pad(Tensor(np.arange(4.0).reshape(1, 1, 4)), (2, 1), mode="reflect").numpy()[0, 0]
    array([2., 1., 0., 1., 2., 3., 2.])
    """
    x = _tensor(x)
    op = "pad"
    pad = tuple(int(v) for v in pad)
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ShapeError(f"{op}: pad must hold (left, right) pairs for at most {x.ndim} axes, "
                         f"got {pad}")
    widths = [(0, 0)] * x.ndim
    for j in range(len(pad) // 2):
        widths[x.ndim - 1 - j] = (pad[2 * j], pad[2 * j + 1])
    if min(pad, default=0) < 0:
        if mode != "constant":
            raise ShapeError(f"{op}: negative padding needs mode='constant', got {pad} with "
                             f"mode={mode!r}")
        # a negative pad crops that side (PyTorch); crop first, then pad the rest
        crop = tuple(slice(max(-lo, 0), s - max(-hi, 0)) for (lo, hi), s in zip(widths, x.shape))
        if any(c.start >= c.stop for c in crop):
            raise ShapeError(f"{op}: negative padding removes a whole axis, got {pad} for shape "
                             f"{x.shape}")
        x = x[crop]
        widths = [(max(lo, 0), max(hi, 0)) for lo, hi in widths]
    if mode == "constant":
        return x.pad(tuple(widths), value) if any(map(any, widths)) else x
    if mode not in ("reflect", "replicate", "circular"):
        raise ValueError(f"{op}: mode must be 'constant', 'reflect', 'replicate' or 'circular', "
                         f"got {mode!r}")
    for ax, (lo, hi) in enumerate(widths):
        if lo or hi:
            idx = _pad_index(x.shape[ax], lo, hi, mode, op)
            x = x[(slice(None),) * ax + (idx,)]
    return x


# ------------------------------------------------------------------ resizing ---


def _linear_weights(size_in, size_out, scale, align_corners):
    """(i0, i1, t) so that out = in[i0] * (1 - t) + in[i1] * t along one axis (PyTorch)."""
    o = np.arange(size_out, dtype=np.float64)
    if align_corners:
        src = o * ((size_in - 1) / (size_out - 1)) if size_out > 1 else o * 0.0
    else:
        src = np.maximum((o + 0.5) * scale - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), size_in - 1)
    i1 = np.minimum(i0 + 1, size_in - 1)
    return i0, i1, src - i0


_MODES = {"nearest": None, "nearest-exact": None, "linear": 1, "bilinear": 2, "trilinear": 3}


def interpolate(x, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """Resize the spatial axes of (N, C, *S) input (PyTorch's ``F.interpolate``).

    Modes: 'nearest' (src = floor(dst * in / out)), 'nearest-exact' (src = floor((dst + 0.5) *
    in / out)), and 'linear' / 'bilinear' / 'trilinear' for 1 / 2 / 3 spatial axes. For the
    linear modes ``align_corners=True`` maps the corner pixels onto each other
    (src = dst * (in - 1) / (out - 1)); otherwise pixel centres are aligned
    (src = (dst + 0.5) * in / out - 0.5). With ``scale_factor`` the scale used is
    1 / scale_factor, as PyTorch's default (``recompute_scale_factor=True``: in / out).
    Linear in x: the gradient is the transposed weighting. ``antialias`` is not supported.
    """
    x = _tensor(x)
    op = "interpolate"
    if antialias:
        raise ValueError(f"{op}: antialias=True is not supported, got antialias={antialias}")
    if mode not in _MODES:
        raise ValueError(f"{op}: mode must be one of {sorted(_MODES)}, got {mode!r}")
    nd = x.ndim - 2
    if nd < 1 or nd > 3:
        raise ShapeError(f"{op}: input must be 3-D, 4-D or 5-D (N, C, *spatial), got {x.shape}")
    if _MODES[mode] is not None and _MODES[mode] != nd:
        raise ShapeError(f"{op}: mode {mode!r} needs {_MODES[mode] + 2}-D input, got {x.shape}")
    if align_corners is not None and _MODES[mode] is None:
        raise ValueError(f"{op}: align_corners only applies to the linear modes, got "
                         f"mode={mode!r}")
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{op}: give exactly one of size and scale_factor, got size={size}, "
                         f"scale_factor={scale_factor}")
    ins = x.shape[2:]
    if size is not None:
        outs = _tup(size, nd, "size", op)
        scales = [i / o for i, o in zip(ins, outs)]
    else:
        sf = (scale_factor,) * nd if np.isscalar(scale_factor) else tuple(scale_factor)
        if len(sf) != nd:
            raise ShapeError(f"{op}: scale_factor needs {nd} values, got {scale_factor}")
        outs = tuple(int(math.floor(i * f)) for i, f in zip(ins, sf))
        scales = ([i / o for i, o in zip(ins, outs)] if recompute_scale_factor else
                  [1.0 / f for f in sf])
    if min(outs) < 1:
        raise ShapeError(f"{op}: output size must be >= 1, got {outs}")
    for a in range(nd):
        ax = 2 + a
        if mode in ("nearest", "nearest-exact"):
            off = 0.5 if mode == "nearest-exact" else 0.0
            src = np.floor((np.arange(outs[a]) + off) * scales[a]).astype(np.int64)
            i0 = i1 = np.minimum(src, ins[a] - 1)
            t = np.zeros(outs[a])
        else:
            i0, i1, t = _linear_weights(ins[a], outs[a], scales[a], bool(align_corners))
        x = _resize_axis(x, ax, i0, i1, t)
    return x


_MATMUL_RESIZE_MAX = 1 << 18    # in * out entries: up to 512 x 512 the dense map is cheaper


def _resize_axis(x, ax, i0, i1, t):
    """out[..., o, ...] = x[..., i0[o], ...] * (1 - t[o]) + x[..., i1[o], ...] * t[o] on axis ax.

    Small axes: one GEMM with the dense (out, in) interpolation matrix M (its backward is
    g @ M, one more GEMM); large ones: two gathers (a dense M would cost in * out per row).
    """
    n_in, n_out = x.shape[ax], len(i0)
    if n_in * n_out <= _MATMUL_RESIZE_MAX:
        m = np.zeros((n_out, n_in))
        np.add.at(m, (np.arange(n_out), i0), 1.0 - t)
        np.add.at(m, (np.arange(n_out), i1), t)
        xt = x.swapaxes(ax, -1) if ax != x.ndim - 1 else x
        lead = xt.shape[:-1]
        mt = Tensor._wrap(x.xp.asarray(m, dtype=x.dtype), False)
        y = N.MatMul.apply(xt.reshape(-1, n_in), mt, tb=True).reshape(lead + (n_out,))
        return y.swapaxes(ax, -1) if ax != x.ndim - 1 else y
    lead = (slice(None),) * ax
    if np.array_equal(i0, i1):
        return x[lead + (i0,)]
    shape = [1] * x.ndim
    shape[ax] = n_out
    tt = Tensor._wrap(x.xp.asarray(t.reshape(shape), dtype=x.dtype), False)
    return x[lead + (i0,)] * (1.0 - tt) + x[lead + (i1,)] * tt


# ------------------------------------------------------------------ distances, norms ---


def _sumsq(x, axis, keepdims):
    return (x * x).sum(axis=axis, keepdims=keepdims)


def _norm(x, p, axis, keepdims):
    if p == 2:
        return _sumsq(x, axis, keepdims).sqrt()
    if p == 1:
        return x.abs().sum(axis=axis, keepdims=keepdims)
    if p == float("inf"):
        return x.abs().max(axis=axis, keepdims=keepdims)
    return (x.abs() ** p).sum(axis=axis, keepdims=keepdims) ** (1.0 / p)


def normalize(x, p=2.0, dim=1, eps=1e-12):
    """x / max(||x||_p, eps) along ``dim`` (PyTorch's ``F.normalize``)."""
    x = _tensor(x)
    if p == 2:         # sqrt(max(sum x^2, eps^2)): no 0 * inf gradient at an all-zero row
        return x / _sumsq(x, dim, True).clip(min=eps * eps).sqrt()
    return x / _norm(x, p, dim, True).clip(min=eps)


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """sum(x1 * x2) / (max(||x1||, eps) * max(||x2||, eps)) along ``dim`` (inputs broadcast),
    computed as PyTorch does: each input divided by its clamped norm, then the dot product."""
    x1, x2 = _tensor(x1), _tensor(x2)
    n1 = _sumsq(x1, dim, True).clip(min=eps * eps).sqrt()
    n2 = _sumsq(x2, dim, True).clip(min=eps * eps).sqrt()
    return ((x1 / n1) * (x2 / n2)).sum(axis=dim)


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """||x1 - x2 + eps||_p over the last axis (PyTorch's ``F.pairwise_distance``)."""
    d = _tensor(x1) - _tensor(x2) + eps
    return _norm(d, p, -1, keepdim)


def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    """Normalize each sample's channels in ``num_groups`` groups (mean and biased variance over
    the group's channels and all spatial positions), then scale and shift per channel."""
    x = _tensor(x)
    if x.ndim < 2 or x.shape[1] % num_groups:
        raise ShapeError(f"group_norm: channels must divide into num_groups, got input shape "
                         f"{x.shape} and num_groups={num_groups}")
    if x.dtype.kind != "f":
        raise DTypeError(f"group_norm: expected a floating-point tensor, got {x.dtype}")
    n = x.shape[0]
    g = x.reshape(n, num_groups, -1)
    mean = g.mean(axis=-1, keepdims=True)
    var = g.var(axis=-1, keepdims=True, correction=0)
    y = ((g - mean) / (var + eps).sqrt()).reshape(x.shape)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y
