"""Neural-network ops: softmax, matmul, convolution and pooling.

The heavy ones (matmul, conv2d, pooling) call the active kernel backend (``ctx.backend``) for
their arrays, so the same Function runs on the NumPy reference, our Cython kernels or CUDA.

Double backward. A convolution's backward passes are convolutions too, so they are Functions of
their own: ``Conv2dBackwardInput`` (the adjoint of conv2d in x, also known as the transposed
convolution) and ``Conv2dBackwardWeight``. Each is bilinear, and its backward is written with
the other two: for gx = conv_bwd_input(gy, w) and an upstream U shaped like x,
<gx, U> = <gy, conv2d(U, w)>, so d/dgy = conv2d(U, w) and d/dw = conv_bwd_weight(gy, U).
Pooling backward passes are linear maps of the gradient, and their adjoints are the forward-like
gathers, so the pairs close the same way.

Next: backends/numpy_backend.py, the reference arrays behind these ops.
"""

import numpy as np

from ..autograd import Function, call, const_like, register
from ..errors import DTypeError, ShapeError
from .elementwise import Exp


def _t(data):
    from ..tensor import Tensor

    return Tensor._wrap(data, False)


# ------------------------------------------------------------------ softmax ---


@register("softmax")
class Softmax(Function):
    """y_i = e^(x_i - m) / sum_j e^(x_j - m)  (m = max x: same result, no overflow);
    dL/dx = y * (g - sum_j g_j y_j)."""

    array_backward = True

    @staticmethod
    def forward(ctx, x, axis=-1):
        xp = ctx.xp
        e = xp.exp(x - x.max(axis=axis, keepdims=True))
        y = e / e.sum(axis=axis, keepdims=True)
        ctx.axis = axis
        ctx.save(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return (y * (g - (g * y).sum(axis=ctx.axis, keepdims=True)),)


@register("log_softmax")
class LogSoftmax(Function):
    """y_i = x_i - logsumexp(x)  (computed as x_i - m - log sum_j e^(x_j - m));
    dL/dx = g - softmax(x) * sum_j g_j, with softmax(x) = e^y."""

    array_backward = True

    @staticmethod
    def forward(ctx, x, axis=-1):
        xp = ctx.xp
        s = x - x.max(axis=axis, keepdims=True)
        y = s - xp.log(xp.exp(s).sum(axis=axis, keepdims=True))
        ctx.axis = axis
        ctx.save(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return (g - call(Exp, y) * g.sum(axis=ctx.axis, keepdims=True),)


# ------------------------------------------------------------------ matmul ---


@register("matmul")
class MatMul(Function):
    """C = A @ B (batched over leading axes);  dA = dC @ B^T, dB = A^T @ dC.

    Leading (batch) axes broadcast as in NumPy; the engine sums the gradient of a broadcast
    operand back to its shape. For 2-D operands ``ta``/``tb`` multiply by the transpose without
    forming it (C = op(A) op(B)), so ``x @ W.T`` and every backward product is one kernel call.
    """

    array_backward = True

    @staticmethod
    def forward(ctx, a, b, ta=False, tb=False):
        ctx.save(a, b)
        ctx.ta, ctx.tb = ta, tb
        if a.ndim == 2 and b.ndim == 2:
            if a.dtype == b.dtype and a.dtype.kind == "f" and a.dtype.itemsize >= 4:
                return ctx.backend.matmul(a, b, trans_a=ta, trans_b=tb)
            return ctx.xp.matmul(a.T if ta else a, b.T if tb else b)
        if a.dtype != b.dtype or a.dtype.kind != "f" or a.dtype.itemsize < 4:
            return ctx.xp.matmul(a, b)   # promotion and integer matmul stay in xp
        return ctx.backend.batched_matmul(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        ta, tb = ctx.ta, ctx.tb
        if a.ndim == 2 and b.ndim == 2:
            # C = op(A) op(B), op(X) = X^T when its flag is set; each gradient is one kernel
            # call, with the transposes as flags. Per case:
            if not ta and not tb:   # C = A B:      dA = g B^T,      dB = A^T g
                ga, gb = lambda: _mm(g, b, tb=True), lambda: _mm(a, g, ta=True)
            elif not ta:            # C = A B^T:    dA = g B,        dB = g^T A
                ga, gb = lambda: _mm(g, b), lambda: _mm(g, a, ta=True)
            elif not tb:            # C = A^T B:    dA = B g^T,      dB = A g
                ga, gb = lambda: _mm(b, g, tb=True), lambda: _mm(a, g)
            else:                   # C = A^T B^T:  dA = B^T g^T,    dB = g^T A^T
                ga, gb = lambda: _mm(b, g, ta=True, tb=True), lambda: _mm(g, a, ta=True, tb=True)
            return (ga() if na else None), (gb() if nb else None)
        ga = call(MatMul, g, b.swapaxes(-1, -2)) if na else None   # batched: dA = g B^T
        gb = call(MatMul, a.swapaxes(-1, -2), g) if nb else None   # dB = A^T g
        return ga, gb


def _mm(x, y, ta=False, tb=False):
    return call(MatMul, x, y, ta=ta, tb=tb)


# ------------------------------------------------------------------ convolution ---


@register("conv2d")
class Conv2d(Function):
    """y[n,o,p,q] = b[o] + sum_{c,i,j} x_pad[n, c, p*s + i*d, q*s + j*d] * w[o,c,i,j]  (per
    group; the bias b is optional: ``Conv2d.apply(x, w, b, geom=...)``);
    dx = conv2d_backward_input(dy, w), dw = conv2d_backward_weight(dy, x), db = sum of dy over
    n, p, q.

    With a bias the Cython backend adds it in the kernel's epilogue (``conv2d_bias``) and sums
    its gradient in the pass that computes dw (``conv2d_backward_weight_bias``), instead of a
    separate broadcast add and reduction over the whole output; the values are those of
    ``conv2d(x, w) + b`` (to rounding for db)."""

    array_backward = True

    @staticmethod
    def forward(ctx, x, w, b=None, geom=None):
        ctx.geom = geom
        ctx.x_shape, ctx.w_shape = x.shape, w.shape
        ctx.save(x, w)
        if b is None:
            return ctx.backend.conv2d(x, w, *geom)
        fused = getattr(ctx.backend, "conv2d_bias", None)
        if fused is not None:
            return fused(x, w, b, *geom)
        y = ctx.backend.conv2d(x, w, *geom)
        y += b.reshape(1, -1, 1, 1)
        return y

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        nx, nw, *nb = ctx.needs_input_grad          # nb: [needs db] when applied with a bias
        gx = call(Conv2dBackwardInput, g, w, x_shape=ctx.x_shape, geom=ctx.geom) if nx else None
        fused = getattr(ctx.backend, "conv2d_backward_weight_bias", None)
        if nb and nb[0] and nw and fused is not None and isinstance(g, np.ndarray):
            return (gx, *fused(g, x, ctx.w_shape, *ctx.geom))   # lean walk: dw, db in one pass
        gw = call(Conv2dBackwardWeight, g, x, w_shape=ctx.w_shape, geom=ctx.geom) if nw else None
        if not nb:
            return gx, gw
        return gx, gw, (g.sum(axis=(0, 2, 3)) if nb[0] else None)


@register("conv2d_backward_input")
class Conv2dBackwardInput(Function):
    """gx = conv2d's adjoint in x applied to gy (the transposed convolution);
    for upstream U: d/dgy = conv2d(U, w), d/dw = conv2d_backward_weight(gy, U)."""

    array_backward = True

    @staticmethod
    def forward(ctx, gy, w, x_shape, geom):
        ctx.geom, ctx.w_shape = geom, w.shape
        ctx.save(gy, w)
        return ctx.backend.conv2d_backward_input(gy, w, tuple(x_shape), *geom)

    @staticmethod
    def backward(ctx, u):
        gy, w = ctx.saved_tensors
        ngy, nw = ctx.needs_input_grad
        dgy = call(Conv2d, u, w, geom=ctx.geom) if ngy else None
        dw = call(Conv2dBackwardWeight, gy, u, w_shape=ctx.w_shape, geom=ctx.geom) if nw else None
        return dgy, dw


@register("conv2d_backward_weight")
class Conv2dBackwardWeight(Function):
    """gw = conv2d's adjoint in w: gw[o,c,i,j] = sum_{n,p,q} gy[n,o,p,q] x_pad[n,c,p*s+i*d,q*s+j*d];
    for upstream V: d/dgy = conv2d(x, V), d/dx = conv2d_backward_input(gy, V)."""

    array_backward = True

    @staticmethod
    def forward(ctx, gy, x, w_shape, geom):
        ctx.geom, ctx.x_shape = geom, x.shape
        ctx.save(gy, x)
        return ctx.backend.conv2d_backward_weight(gy, x, tuple(w_shape), *geom)

    @staticmethod
    def backward(ctx, v):
        gy, x = ctx.saved_tensors
        ngy, nx = ctx.needs_input_grad
        dgy = call(Conv2d, x, v, geom=ctx.geom) if ngy else None
        dx = call(Conv2dBackwardInput, gy, v, x_shape=ctx.x_shape, geom=ctx.geom) if nx else None
        return dgy, dx


# ------------------------------------------------------------------ pooling ---


@register("max_pool2d")
class MaxPool2d(Function):
    """y[n,c,p,q] = max over the window of x (padding reads -inf);
    dx = dy routed to the argmax of each window (the first one on ties)."""

    array_backward = True

    @staticmethod
    def forward(ctx, x, geom):
        y, idx = ctx.backend.max_pool2d(x, *geom)
        ctx.idx, ctx.geom, ctx.x_shape = idx, geom, x.shape
        return y

    @staticmethod
    def backward(ctx, g):
        return (call(MaxPool2dBackward, g, idx=ctx.idx, x_shape=ctx.x_shape, geom=ctx.geom),)


@register("max_pool2d_backward")
class MaxPool2dBackward(Function):
    """gx = scatter-add of gy into the argmax positions (linear in gy);
    its adjoint is the gather du[n,c,p,q] = u[n,c].flat[idx[n,c,p,q]]."""

    array_backward = True

    @staticmethod
    def forward(ctx, gy, idx, x_shape, geom):
        ctx.idx = idx
        return ctx.backend.max_pool2d_backward(gy, idx, tuple(x_shape), *geom)

    @staticmethod
    def backward(ctx, u):
        return (call(PoolGather, u, idx=ctx.idx),)


@register("pool_gather")
class PoolGather(Function):
    """y[n,c,p,q] = u[n,c].flat[idx[n,c,p,q]];  its adjoint scatters back: du = scatter(dy)."""

    array_backward = True

    @staticmethod
    def forward(ctx, u, idx):
        ctx.idx, ctx.u_shape = idx, u.shape
        n, c = u.shape[:2]
        flat = u.reshape(n, c, -1)
        return ctx.xp.take_along_axis(flat, idx.reshape(n, c, -1), axis=2).reshape(idx.shape)

    @staticmethod
    def backward(ctx, g):
        from .movement import IndexAdd

        n, c = ctx.u_shape[:2]
        xp = ctx.xp
        nn_, cc = xp.meshgrid(xp.arange(n), xp.arange(c), indexing="ij")
        index = (nn_[..., None, None], cc[..., None, None], ctx.idx // ctx.u_shape[3],
                 ctx.idx % ctx.u_shape[3])
        return (call(IndexAdd, g, index=index, shape=ctx.u_shape),)


@register("avg_pool2d")
class AvgPool2d(Function):
    """y[n,c,p,q] = mean of x over the window (padded zeros count, kh*kw divisor);
    dx = each dy spread evenly, dy / (kh*kw), over its window."""

    array_backward = True

    @staticmethod
    def forward(ctx, x, geom):
        ctx.geom, ctx.x_shape = geom, x.shape
        return ctx.backend.avg_pool2d(x, *geom)

    @staticmethod
    def backward(ctx, g):
        return (call(AvgPool2dBackward, g, x_shape=ctx.x_shape, geom=ctx.geom),)


@register("avg_pool2d_backward")
class AvgPool2dBackward(Function):
    """gx = the adjoint of avg_pool2d applied to gy (linear); its own adjoint is avg_pool2d."""

    array_backward = True

    @staticmethod
    def forward(ctx, gy, x_shape, geom):
        ctx.geom = geom
        return ctx.backend.avg_pool2d_backward(gy, tuple(x_shape), *geom)

    @staticmethod
    def backward(ctx, u):
        return (call(AvgPool2d, u, geom=ctx.geom),)


# ------------------------------------------------------------------ validation ---


MAX_KERNEL_ARG = 2**31 - 1   # kernel sizes, strides, paddings, dilations: C ints in the kernels


def _is_int(i):
    return isinstance(i, (int, np.integer)) and not isinstance(i, (bool, np.bool_))


def pair(v, name, op):
    """An int (Python or NumPy) or a pair of them -> (int, int), each below 2**31; a float, a
    bool or anything else is refused with a ShapeError (on every backend alike)."""
    if _is_int(v):
        v = (int(v), int(v))
    else:
        try:
            items = tuple(v)
        except TypeError:
            items = None
        if items is None or len(items) != 2 or not all(_is_int(i) for i in items):
            raise ShapeError(f"{op}: {name} must be an int or a pair of ints, got {v!r} "
                             f"({type(v).__name__}); e.g. {name}=2 or {name}=(2, 1)")
        v = (int(items[0]), int(items[1]))
    if max(abs(v[0]), abs(v[1])) > MAX_KERNEL_ARG:
        raise ShapeError(f"{op}: {name} must be below 2**31 (the kernels index with 32-bit "
                         f"ints), got {v}")
    return v


def check_float(op, *tensors):
    """float32/float64 only. float16 is refused on every backend alike (the Cython kernels do
    not take it, and the NumPy reference would accumulate in float16): cast with .float()."""
    for t in tensors:
        if t.dtype.kind != "f" or t.dtype.itemsize < 4:
            raise DTypeError(f"{op}: expected a floating-point tensor, got dtype {t.dtype}; "
                             "convert with .float() (float32 or float64; float16 is refused)")


def _check_extent(op, x_shape, kernel, padding, dilation):
    """The padded input and the dilated window must stay below 2**31 (32-bit kernel indices)."""
    for a in range(2):
        if x_shape[2 + a] + 2 * padding[a] > MAX_KERNEL_ARG or \
                dilation[a] * (kernel[a] - 1) + 1 > MAX_KERNEL_ARG:
            raise ShapeError(f"{op}: the padded input or the dilated kernel reaches 2**31, got "
                             f"input {tuple(x_shape[2:])}, kernel {tuple(kernel)}, padding "
                             f"{tuple(padding)}, dilation {tuple(dilation)}")


def conv_geometry(op, x_shape, w_shape, stride, padding, dilation, groups):
    """Validate a conv2d call; returns ((stride, padding, dilation, groups), out_hw)."""
    from ..backends.base import conv_output_size

    if len(x_shape) != 4:
        raise ShapeError(f"{op}: input must be 4-D (N, C, H, W), got shape {x_shape}")
    if len(w_shape) != 4:
        raise ShapeError(f"{op}: weight must be 4-D (O, C/groups, kh, kw), got shape {w_shape}")
    stride, padding, dilation = (pair(stride, "stride", op), pair(padding, "padding", op),
                                 pair(dilation, "dilation", op))
    if min(stride) < 1 or min(dilation) < 1:
        raise ShapeError(f"{op}: stride and dilation must be >= 1, got stride={stride}, "
                         f"dilation={dilation}")
    if min(padding) < 0:
        raise ShapeError(f"{op}: padding must be >= 0, got padding={padding}")
    if not isinstance(groups, int) or groups < 1 or x_shape[1] % groups or w_shape[0] % groups:
        raise ShapeError(f"{op}: groups must divide both in and out channels, got groups={groups}, "
                         f"in_channels={x_shape[1]}, out_channels={w_shape[0]}")
    _check_extent(op, x_shape, w_shape[2:], padding, dilation)
    if x_shape[1] != w_shape[1] * groups:
        raise ShapeError(f"{op}: input channels differ from weight, got x.shape={x_shape} and "
                         f"w.shape={w_shape} ({x_shape[1]} != {w_shape[1]} * groups={groups})")
    out = tuple(conv_output_size(x_shape[2 + a], w_shape[2 + a], stride[a], padding[a],
                                 dilation[a]) for a in range(2))
    if min(out) < 1:
        raise ShapeError(f"{op}: kernel larger than the padded input, got input {x_shape[2:]}, "
                         f"kernel {w_shape[2:]}, padding {padding}, dilation {dilation}; "
                         "use a smaller kernel or more padding")
    return (stride, padding, dilation, groups), out


def pool_geometry(op, x_shape, kernel_size, stride, padding):
    from ..backends.base import conv_output_size

    if len(x_shape) != 4:
        raise ShapeError(f"{op}: input must be 4-D (N, C, H, W), got shape {x_shape}")
    k = pair(kernel_size, "kernel_size", op)
    s = k if stride is None else pair(stride, "stride", op)
    p = pair(padding, "padding", op)
    if min(k) < 1 or min(s) < 1:
        raise ShapeError(f"{op}: kernel_size and stride must be >= 1, got kernel_size={k}, "
                         f"stride={s}")
    if min(p) < 0 or p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ShapeError(f"{op}: padding must be between 0 and half the kernel, got padding={p} "
                         f"for kernel_size={k}")
    _check_extent(op, x_shape, k, p, (1, 1))
    out = tuple(conv_output_size(x_shape[2 + a], k[a], s[a], p[a], 1) for a in range(2))
    if min(out) < 1:
        raise ShapeError(f"{op}: kernel larger than the padded input, got input {x_shape[2:]}, "
                         f"kernel_size {k}, padding {p}")
    return (k, s, p)




def check_same_float(op, a, b):
    """matmul/linear/conv take one float dtype (as PyTorch): a float64 batch into a float32
    layer would otherwise give float64 outputs and a float64 gradient on a float32 weight."""
    if a.dtype != b.dtype and (a.dtype.kind == "f" or b.dtype.kind == "f"):
        raise DTypeError(f"{op}: both operands must have the same dtype, got {a.dtype} and "
                         f"{b.dtype}; convert one with .float() (float32) or .double() (float64)")


# ------------------------------------------------------------------ softmax cross-entropy ---


def _bad_labels(labels, c):
    from ..errors import LabelError

    bad = labels[(labels < 0) | (labels >= c)]
    raise LabelError(f"softmax_cross_entropy: class labels must be in [0, {c}), got "
                     f"{sorted(set(bad.tolist()))[:5]}")


@register("softmax_cross_entropy")
class SoftmaxCrossEntropy(Function):
    """Mean cross-entropy of logits z (N, C) and integer labels y (N,), forward and backward in
    one pass:  L = (1/N) sum_i [logsumexp(z_i) - z_i,y_i];
    dL/dz_ij = g (softmax(z_i)_j - [j == y_i]) / N.

    The forward already computes softmax(z) for the log-sum-exp, so it keeps the gradient
    (softmax - onehot) / N; backward is one multiply by g. On the Cython backend both come from
    one kernel call (``_cpu.softmax_xent``). Under ``create_graph`` the backward recomputes
    softmax(z) with Tensor ops, so the gradient is differentiable again. The caller
    (``nn.functional.cross_entropy``) checks the labels lie in [0, C).
    """

    @staticmethod
    def forward(ctx, z, labels):
        xp, n = ctx.xp, z.shape[0]
        kernel = getattr(ctx.backend, "softmax_xent", None)
        if (kernel is not None and z.ndim == 2 and z.flags.c_contiguous
                and z.dtype.kind == "f" and z.dtype.itemsize >= 4):
            dz = xp.empty_like(z)
            loss = kernel(z, labels, dz)
            if loss < 0:
                _bad_labels(labels, z.shape[1])
        else:
            if n and (labels.min() < 0 or labels.max() >= z.shape[1]):
                _bad_labels(labels, z.shape[1])
            s = z - z.max(axis=1, keepdims=True)
            lse = xp.log(xp.exp(s).sum(axis=1, keepdims=True))
            rows = xp.arange(n)
            loss = (lse[:, 0] - s[rows, labels]).sum() / max(n, 1)
            dz = xp.exp(s - lse)
            dz[rows, labels] -= 1
            dz *= 1.0 / max(n, 1)
        ctx.save(z)
        ctx.dz, ctx.labels = dz, labels
        return xp.asarray(loss, dtype=z.dtype)

    array_backward = True      # the lean walk hands g as an array (see autograd)

    @staticmethod
    def backward(ctx, g):
        from ..autograd import is_grad_enabled
        from ..tensor import Tensor

        if not (isinstance(g, Tensor) and is_grad_enabled()):   # usual case: gradient is ready
            return (g * const_like(ctx.dz, g), None)
        (z,) = ctx.saved_tensors                 # create_graph: a differentiable formula
        n, c = z.shape
        onehot = ctx.xp.zeros((n, c), dtype=z.dtype)
        onehot[ctx.xp.arange(n), ctx.labels] = 1
        return ((z.softmax(axis=1) - _t(onehot)) * (g * (1.0 / max(n, 1))), None)


# ------------------------------------------------------------------ linear + ReLU ---


@register("linear_relu")
class LinearReLU(Function):
    """y = max(x op(W) + b, 0) for 2-D x, with op(W) = W^T when ``tb`` (nn.Linear's (out, in)
    layout) else W (Keras' (in, out) kernel);  with m = [y > 0] and gm = g * m:
    dx = gm op(W)^T,  dW = x^T gm (or gm^T x when ``tb``),  db = sum over rows of gm.

    One kernel call forward on the Cython backend: the GEMM with a bias + ReLU epilogue
    (``_cpu.gemm_bias_act``); elsewhere matmul, add and maximum. Either way the values are bit
    for bit those of ``relu(linear(x, W, b))``. The backward is written with MatMul, so the
    gradient is differentiable again (the mask is a constant, as in ReLU).
    """

    @staticmethod
    def forward(ctx, x, w, b, tb=False):
        ctx.save(x, w)
        ctx.tb = tb
        fused = getattr(ctx.backend, "gemm_bias_act", None)
        y = fused(x, w, tb, b, relu=True) if fused is not None else None
        if y is None:
            y = ctx.backend.matmul(x, w, trans_b=tb) + b
            ctx.xp.maximum(y, 0, out=y)
        ctx.pos = y > 0
        return y

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        nx, nw, nb = ctx.needs_input_grad
        gm = g * _t(ctx.pos.astype(g.dtype))
        tb = ctx.tb
        gx = (MatMul.apply(gm, w) if tb else MatMul.apply(gm, w, tb=True)) if nx else None
        gw = None
        if nw:
            gw = MatMul.apply(gm, x, ta=True) if tb else MatMul.apply(x, gm, ta=True)
        gb = gm.sum(axis=0) if nb else None
        return gx, gw, gb
# ------------------------------------------------------------------ unpooling ---


@register("max_unpool")
class MaxUnpool(Function):
    """y = zeros(shape) with y[n, c].flat[idx[n, c, k]] = x[n, c, k] (the partial inverse of max
    pooling: each value goes back to where its maximum came from; a repeated index keeps the
    last write, as PyTorch);  dx = the gather dy[n, c].flat[idx] (PyTorch's rule, also on
    repeats). Works on (N, C, K, 1) views of any pooled tensor; its backward is a PoolGather."""

    @staticmethod
    def forward(ctx, x, idx, shape):
        ctx.idx = idx
        n, c = x.shape[:2]
        out = ctx.xp.zeros((n, c, int(shape[2]) * int(shape[3])), dtype=x.dtype)
        rows = ctx.xp.arange(n).reshape(n, 1, 1)
        chans = ctx.xp.arange(c).reshape(1, c, 1)
        out[rows, chans, idx.reshape(n, c, -1)] = x.reshape(n, c, -1)
        return out.reshape(tuple(shape))

    @staticmethod
    def backward(ctx, g):
        return (PoolGather.apply(g, idx=ctx.idx),)
