"""The kernel-backend contract: the few heavy primitives a fast backend must provide.

Everything else (elementwise math, reductions, movement) runs through the array module ``xp``
(numpy or cupy) in ``tinygrad_lite/ops``. A backend gets float32 or float64 arrays and returns new
arrays of the same dtype; it may normalize layout itself (``ascontiguousarray``) but must not change
dtypes. Geometry arguments are already-validated tuples of ints: ``stride=(sh, sw)``,
``padding=(ph, pw)``, ``dilation=(dh, dw)``, ``kernel=(kh, kw)``.

Layouts: images NCHW; conv weights (O, C // groups, kh, kw); im2col columns
(N, C*kh*kw, OH*OW) with the C*kh*kw axis ordered (c, i, j) like the weight's flattening.
Output size: OH = (H + 2*ph - dh*(kh-1) - 1) // sh + 1 (same for W).

Next: numpy_backend.py, the reference every other backend is checked against.
"""


class Backend:
    """Base class. ``name`` is what ``backends.use(name)`` takes; ``xp`` the array module."""

    name = "base"
    xp = None

    # ---- matmul -----------------------------------------------------------------------------
    def matmul(self, a, b, trans_a=False, trans_b=False, out=None, accumulate=False):
        """2-D only: C = op(a) @ op(b) with op = transpose when the flag is set.

        With ``out`` given the result is written there (``out += ...`` when ``accumulate``)
        and ``out`` is returned.
        """
        raise NotImplementedError

    def batched_matmul(self, a, b):
        """N-D matmul with NumPy's batch broadcasting (both operands at least 2-D).

        The default loops over the broadcast batch and calls ``matmul`` on each 2-D slice.
        """
        xp = self.xp
        batch = xp.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        a = xp.broadcast_to(a, batch + a.shape[-2:])
        b = xp.broadcast_to(b, batch + b.shape[-2:])
        out = xp.empty(batch + (a.shape[-2], b.shape[-1]), dtype=xp.result_type(a, b))
        for idx in _ndindex(batch):
            self.matmul(a[idx], b[idx], out=out[idx])
        return out

    # ---- convolution ------------------------------------------------------------------------
    def conv2d(self, x, w, stride, padding, dilation, groups):
        """y[n, o, p, q] = sum_{c,i,j} x_pad[n, g*C/G + c, p*sh + i*dh, q*sw + j*dw] * w[o,c,i,j]
        (g the group of output channel o). No bias: the op adds it."""
        raise NotImplementedError

    def conv2d_backward_input(self, gy, w, x_shape, stride, padding, dilation, groups):
        """The adjoint of conv2d in x: gx such that <conv2d(x, w), gy> = <x, gx> for all x."""
        raise NotImplementedError

    def conv2d_backward_weight(self, gy, x, w_shape, stride, padding, dilation, groups):
        """The adjoint of conv2d in w: gw such that <conv2d(x, w), gy> = <w, gw> for all w."""
        raise NotImplementedError

    def im2col(self, x, kernel, stride, padding, dilation):
        """(N, C, H, W) -> (N, C*kh*kw, OH*OW); padded positions read as 0."""
        raise NotImplementedError

    def col2im(self, cols, x_shape, kernel, stride, padding, dilation):
        """The adjoint of im2col: scatter-add columns back into an (N, C, H, W) image."""
        raise NotImplementedError

    # ---- pooling ----------------------------------------------------------------------------
    def max_pool2d(self, x, kernel, stride, padding):
        """Returns (y, idx). Padding reads as -inf. idx (int64, shape of y) holds the flat index
        h*W + w into the unpadded (H, W) plane of the winner; ties go to the first in row-major
        window order."""
        raise NotImplementedError

    def max_pool2d_backward(self, gy, idx, x_shape, kernel, stride, padding):
        """gx[n, c].flat[idx[n, c, p, q]] += gy[n, c, p, q]."""
        raise NotImplementedError

    def avg_pool2d(self, x, kernel, stride, padding):
        """Mean over each window; padded zeros count in the divisor (kh*kw), as PyTorch's default
        count_include_pad=True."""
        raise NotImplementedError

    def avg_pool2d_backward(self, gy, x_shape, kernel, stride, padding):
        """The adjoint of avg_pool2d: each gy spreads gy / (kh*kw) over its window."""
        raise NotImplementedError

    def max_pool_indices(self, x, kernel, stride, padding, dilation, extra):
        """N-d max pooling's argmax (any number of spatial axes, dilation, ceil_mode's extra
        right padding): int64 flat indices into each (n, c) block of x, see the module-level
        ``max_pool_indices``. The default is that xp reference; a backend may override it."""
        return max_pool_indices(self.xp, x, kernel, stride, padding, dilation, extra)

    def describe(self):
        """A dict of facts about this backend (versions, ISA, threads)."""
        return {"name": self.name}


def _ndindex(shape):
    import itertools

    return itertools.product(*(range(s) for s in shape))


def conv_output_size(size, k, s, p, d):
    """Output length of a convolution or pooling window along one axis."""
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def max_pool_indices(xp, x, kernel, stride, padding, dilation, extra):
    """Argmax positions of N-d max pooling (any number of spatial axes), by gathering windows.

    ``x`` is (N, C, *S); ``extra`` is the additional right padding that ``ceil_mode`` needs.
    Returns int64 (N, C, *O): the flat index into the unpadded spatial block S of each window's
    maximum (the first one in row-major window order on ties, as PyTorch). Padding reads -inf.
    The reference for every backend: it uses only ``xp`` (NumPy or CuPy).
    """
    import itertools

    nd = len(kernel)
    spatial = x.shape[2:]
    pads = ((0, 0), (0, 0)) + tuple((p, p + e) for p, e in zip(padding, extra))
    xpad = xp.pad(x, pads, constant_values=-xp.inf)
    out = tuple((xpad.shape[2 + a] - dilation[a] * (kernel[a] - 1) - 1) // stride[a] + 1
                for a in range(nd))
    offsets = list(itertools.product(*(range(k) for k in kernel)))
    wins = xp.empty((len(offsets),) + x.shape[:2] + out, dtype=x.dtype)
    for t, off in enumerate(offsets):
        sl = tuple(slice(o * d, o * d + s * (n - 1) + 1, s)
                   for o, d, s, n in zip(off, dilation, stride, out))
        wins[t] = xpad[(slice(None), slice(None)) + sl]
    best = wins.argmax(axis=0)                                        # (N, C, *O)
    flat = xp.zeros(best.shape, dtype=xp.int64)
    offs = xp.asarray(offsets, dtype=xp.int64)                        # (K, nd)
    for a in range(nd):
        shape = [1] * (2 + nd)
        shape[2 + a] = out[a]
        pos = xp.arange(out[a], dtype=xp.int64).reshape(shape) * stride[a] - padding[a]
        coord = pos + offs[:, a][best] * dilation[a]
        flat = flat * spatial[a] + coord
    return flat
