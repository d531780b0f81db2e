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

from ..autograd import Function, register
from ..errors import DTypeError, ShapeError


def _t(data):
    from ..tensor import Tensor

    return Tensor._wrap(data, False)


# ------------------------------------------------------------------ softmax ---


@register("softmax")
class Softmax(Function):
    """y_i = e^(x_i - m) / sum_j e^(x_j - m)  (m = max x: same result, no overflow);
    dL/dx = y * (g - sum_j g_j y_j)."""

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
        return (g - y.exp() * g.sum(axis=ctx.axis, keepdims=True),)


# ------------------------------------------------------------------ matmul ---


@register("matmul")
class MatMul(Function):
    """C = A @ B (batched over leading axes);  dA = dC @ B^T, dB = A^T @ dC.

    Leading (batch) axes broadcast as in NumPy; the engine sums the gradient of a broadcast
    operand back to its shape. For 2-D operands ``ta``/``tb`` multiply by the transpose without
    forming it (C = op(A) op(B)), so ``x @ W.T`` and every backward product is one kernel call.
    """

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
            # With op(A) = A^T when ta: d op(A) = g op(B)^T and d op(B) = op(A)^T g; a
            # transposed operand takes the transpose of its gradient. Written out per case:
            ga = gb = None
            if na:
                ga = (MatMul.apply(b, g, ta=tb, tb=True) if ta else
                      MatMul.apply(g, b, tb=not tb))
            if nb:
                gb = (MatMul.apply(g, a, ta=True, tb=ta) if tb else
                      MatMul.apply(a, g, ta=not ta))
            return ga, gb
        ga = g @ b.swapaxes(-1, -2) if na else None
        gb = a.swapaxes(-1, -2) @ g if nb else None
        return ga, gb


# ------------------------------------------------------------------ convolution ---


@register("conv2d")
class Conv2d(Function):
    """y[n,o,p,q] = sum_{c,i,j} x_pad[n, c, p*s + i*d, q*s + j*d] * w[o,c,i,j]  (per group);
    dx = conv2d_backward_input(dy, w), dw = conv2d_backward_weight(dy, x)."""

    @staticmethod
    def forward(ctx, x, w, geom):
        ctx.geom = geom
        ctx.x_shape, ctx.w_shape = x.shape, w.shape
        ctx.save(x, w)
        return ctx.backend.conv2d(x, w, *geom)

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        nx, nw = ctx.needs_input_grad
        gx = Conv2dBackwardInput.apply(g, w, x_shape=ctx.x_shape, geom=ctx.geom) if nx else None
        gw = Conv2dBackwardWeight.apply(g, x, w_shape=ctx.w_shape, geom=ctx.geom) if nw else None
        return gx, gw


@register("conv2d_backward_input")
class Conv2dBackwardInput(Function):
    """gx = conv2d's adjoint in x applied to gy (the transposed convolution);
    for upstream U: d/dgy = conv2d(U, w), d/dw = conv2d_backward_weight(gy, U)."""

    @staticmethod
    def forward(ctx, gy, w, x_shape, geom):
        ctx.geom, ctx.w_shape = geom, w.shape
        ctx.save(gy, w)
        return ctx.backend.conv2d_backward_input(gy, w, tuple(x_shape), *geom)

    @staticmethod
    def backward(ctx, u):
        gy, w = ctx.saved_tensors
        ngy, nw = ctx.needs_input_grad
        dgy = Conv2d.apply(u, w, geom=ctx.geom) if ngy else None
        dw = Conv2dBackwardWeight.apply(gy, u, w_shape=ctx.w_shape, geom=ctx.geom) if nw else None
        return dgy, dw


@register("conv2d_backward_weight")
class Conv2dBackwardWeight(Function):
    """gw = conv2d's adjoint in w: gw[o,c,i,j] = sum_{n,p,q} gy[n,o,p,q] x_pad[n,c,p*s+i*d,q*s+j*d];
    for upstream V: d/dgy = conv2d(x, V), d/dx = conv2d_backward_input(gy, V)."""

    @staticmethod
    def forward(ctx, gy, x, w_shape, geom):
        ctx.geom, ctx.x_shape = geom, x.shape
        ctx.save(gy, x)
        return ctx.backend.conv2d_backward_weight(gy, x, tuple(w_shape), *geom)

    @staticmethod
    def backward(ctx, v):
        gy, x = ctx.saved_tensors
        ngy, nx = ctx.needs_input_grad
        dgy = Conv2d.apply(x, v, geom=ctx.geom) if ngy else None
        dx = Conv2dBackwardInput.apply(gy, v, x_shape=ctx.x_shape, geom=ctx.geom) if nx else None
        return dgy, dx


# ------------------------------------------------------------------ pooling ---


@register("max_pool2d")
class MaxPool2d(Function):
    """y[n,c,p,q] = max over the window of x (padding reads -inf);
    dx = dy routed to the argmax of each window (the first one on ties)."""

    @staticmethod
    def forward(ctx, x, geom):
        y, idx = ctx.backend.max_pool2d(x, *geom)
        ctx.idx, ctx.geom, ctx.x_shape = idx, geom, x.shape
        return y

    @staticmethod
    def backward(ctx, g):
        return (MaxPool2dBackward.apply(g, idx=ctx.idx, x_shape=ctx.x_shape, geom=ctx.geom),)


@register("max_pool2d_backward")
class MaxPool2dBackward(Function):
    """gx = scatter-add of gy into the argmax positions (linear in gy);
    its adjoint is the gather du[n,c,p,q] = u[n,c].flat[idx[n,c,p,q]]."""

    @staticmethod
    def forward(ctx, gy, idx, x_shape, geom):
        ctx.idx = idx
        return ctx.backend.max_pool2d_backward(gy, idx, tuple(x_shape), *geom)

    @staticmethod
    def backward(ctx, u):
        return (PoolGather.apply(u, idx=ctx.idx),)


@register("pool_gather")
class PoolGather(Function):
    """y[n,c,p,q] = u[n,c].flat[idx[n,c,p,q]];  its adjoint scatters back: du = scatter(dy)."""

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
        return (IndexAdd.apply(g, index=index, shape=ctx.u_shape),)


@register("avg_pool2d")
class AvgPool2d(Function):
    """y[n,c,p,q] = mean of x over the window (padded zeros count, kh*kw divisor);
    dx = each dy spread evenly, dy / (kh*kw), over its window."""

    @staticmethod
    def forward(ctx, x, geom):
        ctx.geom, ctx.x_shape = geom, x.shape
        return ctx.backend.avg_pool2d(x, *geom)

    @staticmethod
    def backward(ctx, g):
        return (AvgPool2dBackward.apply(g, x_shape=ctx.x_shape, geom=ctx.geom),)


@register("avg_pool2d_backward")
class AvgPool2dBackward(Function):
    """gx = the adjoint of avg_pool2d applied to gy (linear); its own adjoint is avg_pool2d."""

    @staticmethod
    def forward(ctx, gy, x_shape, geom):
        ctx.geom = geom
        return ctx.backend.avg_pool2d_backward(gy, tuple(x_shape), *geom)

    @staticmethod
    def backward(ctx, u):
        return (AvgPool2d.apply(u, geom=ctx.geom),)


# ------------------------------------------------------------------ validation ---


def pair(v, name, op):
    if isinstance(v, int):
        return (v, v)
    v = tuple(v)
    if len(v) != 2 or not all(isinstance(i, int) for i in v):
        raise ShapeError(f"{op}: {name} must be an int or a pair of ints, got {v!r}")
    return v


def check_float(op, *tensors):
    for t in tensors:
        if t.dtype.kind != "f":
            raise DTypeError(f"{op}: expected a floating-point tensor, got dtype {t.dtype}; "
                             "convert with .float()")


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
    out = tuple(conv_output_size(x_shape[2 + a], k[a], s[a], p[a], 1) for a in range(2))
    if min(out) < 1:
        raise ShapeError(f"{op}: kernel larger than the padded input, got input {x_shape[2:]}, "
                         f"kernel_size {k}, padding {p}")
    return (k, s, p)




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
