"""The NumPy reference backend: the oracle every other backend is tested against.

Convolution is im2col + one matrix product per group: gather every kh x kw window of the padded
input into a column, so that the convolution becomes (O, C*kh*kw) @ (C*kh*kw, OH*OW). Both
backward passes are matrix products too, and col2im (the adjoint of im2col) scatters column
gradients back onto the image. Pooling uses the same window gathering.

Next: a Cython kernel (kernels/cpu/) that computes the same things faster.
"""

import numpy as np

from .base import Backend, conv_output_size


def _windows(x_padded, kernel, stride, dilation, out_hw):
    """Yield (i, j, view): view[n, c, p, q] = x_padded[n, c, p*sh + i*dh, q*sw + j*dw]."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_hw
    for i in range(kh):
        for j in range(kw):
            h0, w0 = i * dh, j * dw
            yield i, j, x_padded[:, :, h0:h0 + sh * (oh - 1) + 1:sh, w0:w0 + sw * (ow - 1) + 1:sw]


def _out_hw(x_shape, kernel, stride, padding, dilation=(1, 1)):
    return tuple(conv_output_size(x_shape[2 + a], kernel[a], stride[a], padding[a], dilation[a])
                 for a in range(2))


def _floats(op, *arrays):
    """The same dtype contract as the Cython kernels: float32/float64 (float16 refused alike)."""
    for a in arrays:
        if a.dtype not in (np.float32, np.float64):
            from ..errors import DTypeError

            raise DTypeError(f"{op}: the numpy backend takes float32 or float64, got {a.dtype}; "
                             "cast with .astype(np.float32)")


class NumpyBackend(Backend):
    name = "numpy"
    xp = np

    # ---- matmul -----------------------------------------------------------------------------
    def matmul(self, a, b, trans_a=False, trans_b=False, out=None, accumulate=False):
        a = a.T if trans_a else a
        b = b.T if trans_b else b
        if out is None:
            return a @ b
        if accumulate:
            out += a @ b
        else:
            self.xp.matmul(a, b, out=out)
        return out

    def batched_matmul(self, a, b):
        return self.xp.matmul(a, b)

    # ---- im2col / col2im ----------------------------------------------------------------------
    def im2col(self, x, kernel, stride, padding, dilation):
        xp = self.xp
        n, c = x.shape[:2]
        oh, ow = _out_hw(x.shape, kernel, stride, padding, dilation)
        (ph, pw) = padding
        xpad = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x
        cols = xp.empty((n, c, kernel[0], kernel[1], oh, ow), dtype=x.dtype)
        for i, j, view in _windows(xpad, kernel, stride, dilation, (oh, ow)):
            cols[:, :, i, j] = view
        return cols.reshape(n, c * kernel[0] * kernel[1], oh * ow)

    def col2im(self, cols, x_shape, kernel, stride, padding, dilation):
        xp = self.xp
        n, c, h, w = x_shape
        (ph, pw) = padding
        oh, ow = _out_hw(x_shape, kernel, stride, padding, dilation)
        cols = cols.reshape(n, c, kernel[0], kernel[1], oh, ow)
        xpad = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
        for i, j, view in _windows(xpad, kernel, stride, dilation, (oh, ow)):
            view += cols[:, :, i, j]          # views overlap across (i, j): += accumulates
        return xpad[:, :, ph:ph + h, pw:pw + w].copy()

    # ---- convolution --------------------------------------------------------------------------
    def conv2d(self, x, w, stride, padding, dilation, groups):
        _floats("conv2d", x, w)
        n = x.shape[0]
        o = w.shape[0]
        oh, ow = _out_hw(x.shape, w.shape[2:], stride, padding, dilation)
        cols = self.im2col(x, w.shape[2:], stride, padding, dilation)     # (N, C*kh*kw, L)
        cols = cols.reshape(n, groups, cols.shape[1] // groups, oh * ow)  # (N, G, K, L)
        wg = w.reshape(groups, o // groups, cols.shape[2])                # (G, Og, K)
        y = self.xp.matmul(wg, cols)                                      # (N, G, Og, L)
        return y.reshape(n, o, oh, ow)

    def conv2d_backward_input(self, gy, w, x_shape, stride, padding, dilation, groups):
        n, o = gy.shape[:2]
        k = w[0].size
        wg = w.reshape(groups, o // groups, k)                            # (G, Og, K)
        gyg = gy.reshape(n, groups, o // groups, gy.shape[2] * gy.shape[3])  # (N, G, Og, L)
        gcols = self.xp.matmul(wg.transpose(0, 2, 1), gyg)                # (N, G, K, L)
        return self.col2im(gcols.reshape(n, groups * k, gyg.shape[-1]), x_shape, w.shape[2:],
                           stride, padding, dilation)

    def conv2d_backward_weight(self, gy, x, w_shape, stride, padding, dilation, groups):
        n, o = gy.shape[:2]
        cols = self.im2col(x, w_shape[2:], stride, padding, dilation)
        cols = cols.reshape(n, groups, cols.shape[1] // groups, cols.shape[-1])  # (N, G, K, L)
        gyg = gy.reshape(n, groups, o // groups, cols.shape[-1])          # (N, G, Og, L)
        # gw[g] = sum_n gy[n, g] @ cols[n, g]^T: fold n into the contraction axis.
        nl = n * cols.shape[-1]
        gyt = gyg.transpose(1, 2, 0, 3).reshape(groups, o // groups, nl)  # (G, Og, N*L)
        colt = cols.transpose(1, 2, 0, 3).reshape(groups, cols.shape[2], nl)  # (G, K, N*L)
        gw = self.xp.matmul(gyt, colt.transpose(0, 2, 1))                 # (G, Og, K)
        return gw.reshape(w_shape)

    # ---- pooling ------------------------------------------------------------------------------
    def max_pool2d(self, x, kernel, stride, padding):
        _floats("max_pool2d", x)
        xp = self.xp
        n, c, h, w = x.shape
        (ph, pw) = padding
        oh, ow = _out_hw(x.shape, kernel, stride, padding)
        xpad = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-xp.inf)
        wins = xp.empty((kernel[0] * kernel[1], n, c, oh, ow), dtype=x.dtype)
        for i, j, view in _windows(xpad, kernel, stride, (1, 1), (oh, ow)):
            wins[i * kernel[1] + j] = view
        k = wins.argmax(axis=0)                                           # first max wins ties
        y = xp.take_along_axis(wins, k[None], axis=0)[0]
        ki, kj = k // kernel[1], k % kernel[1]
        rows = xp.arange(oh).reshape(-1, 1) * stride[0] + ki - ph
        cols = xp.arange(ow).reshape(1, -1) * stride[1] + kj - pw
        return y, (rows * w + cols).astype(xp.int64)

    def max_pool2d_backward(self, gy, idx, x_shape, kernel, stride, padding):
        xp = self.xp
        n, c, h, w = x_shape
        planes = xp.arange(n * c, dtype=xp.int64).reshape(n, c, 1, 1) * (h * w)
        flat = xp.bincount((planes + idx).ravel(), weights=gy.ravel(), minlength=n * c * h * w)
        return flat.astype(gy.dtype, copy=False).reshape(x_shape)

    def avg_pool2d(self, x, kernel, stride, padding):
        _floats("avg_pool2d", x)
        xp = self.xp
        (ph, pw) = padding
        oh, ow = _out_hw(x.shape, kernel, stride, padding)
        xpad = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x
        y = xp.zeros(x.shape[:2] + (oh, ow), dtype=x.dtype)
        for _, _, view in _windows(xpad, kernel, stride, (1, 1), (oh, ow)):
            y += view
        return y / (kernel[0] * kernel[1])

    def avg_pool2d_backward(self, gy, x_shape, kernel, stride, padding):
        xp = self.xp
        n, c, h, w = x_shape
        (ph, pw) = padding
        oh, ow = gy.shape[2:]
        gpad = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=gy.dtype)
        share = gy / (kernel[0] * kernel[1])
        for _, _, view in _windows(gpad, kernel, stride, (1, 1), (oh, ow)):
            view += share
        return gpad[:, :, ph:ph + h, pw:pw + w].copy()

    def describe(self):
        info = {"name": self.name, "numpy": np.__version__}
        try:
            from threadpoolctl import threadpool_info

            blas = [p for p in threadpool_info() if p.get("user_api") == "blas"]
            if blas:
                info["blas"] = f"{blas[0].get('internal_api')} {blas[0].get('version')} " \
                               f"({blas[0].get('num_threads')} threads)"
        except ImportError:
            pass
        return info
