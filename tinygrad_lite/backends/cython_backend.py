"""The Cython backend: our own CPU kernels (``tinygrad_lite._cpu``, built from ``kernels/cpu``).

Each method checks and normalizes in Python -- dtype float32/float64 (else ``DTypeError``),
shapes and geometry (else ``ShapeError``), C-contiguous layout -- and then calls a kernel that
trusts its inputs and runs with the GIL released. An F-contiguous matrix (a transposed view) is
passed as its C-contiguous transpose with the transpose flag flipped, so it is never copied.

OpenBLAS's thread count belongs to the application, so this backend leaves it alone by default
(BLAS is not on its hot path: matmul and conv run in our own kernels). To keep the two thread
pools apart anyway, opt in: ``with backends.limit_blas_threads(1): ...`` around a training loop,
or ``TINYGRAD_LITE_LIMIT_BLAS=1``, which makes ``activate()`` hold OpenBLAS at one thread while
this backend is the active one and ``deactivate()`` give the threads back.

Next: kernels/cpu/gemm_kernels.h, the micro-kernel every GEMM here ends in.
"""

import operator
import os
import warnings

import numpy as np

from ..errors import BackendUnavailableError, DTypeError, ShapeError
from . import threads as _threads
from .base import Backend, conv_output_size

from ._ext import load_cpu_kernels

_cpu, _IMPORT_ERROR = load_cpu_kernels()
HAVE_CPU_KERNELS = _cpu is not None

_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)
_FLOATS = (_F32, _F64)


# The float32/float64 specializations of the GEMM, looked up by dtype: calling one directly
# skips Cython's fused-type dispatch (about 0.5 us a call).
_GEMM = {}
if HAVE_CPU_KERNELS:
    _GEMM = {_F32: _cpu.gemm.__signatures__["float"], _F64: _cpu.gemm.__signatures__["double"]}
    # Small GEMMs (m*n*k <= 64**3): straight to the direct kernels, or None (kernels/cpu/small.pxi)
    _MATMUL_SMALL = _cpu.matmul_small
    _GEMM_BIAS_ACT = {_F32: _cpu.gemm_bias_act.__signatures__["float"],
                      _F64: _cpu.gemm_bias_act.__signatures__["double"]}
    _SOFTMAX_XENT = {_F32: _cpu.softmax_xent.__signatures__["float"],
                     _F64: _cpu.softmax_xent.__signatures__["double"]}



# ------------------------------------------------------------------ OpenBLAS thread limit ---

_blas_limiter = None      # None: not limited; False: could not limit; else a limiter
_warned_no_threadpoolctl = False


def _limit_opted_in():
    return os.environ.get("TINYGRAD_LITE_LIMIT_BLAS", "").strip() not in ("", "0")


def limit_blas_threads():
    """Hold OpenBLAS at one thread (idempotent). Called when the backend becomes active, and
    only when the app opted in with ``TINYGRAD_LITE_LIMIT_BLAS=1``."""
    global _blas_limiter, _warned_no_threadpoolctl
    if _blas_limiter is None and _limit_opted_in():
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _blas_limiter = False
            if not _warned_no_threadpoolctl:
                _warned_no_threadpoolctl = True
                warnings.warn("cython backend: threadpoolctl is not installed, so OpenBLAS keeps "
                              "all its threads and competes with ours; "
                              "pip install tinygrad_lite[threads]",
                              RuntimeWarning, stacklevel=3)
            return
        try:
            _blas_limiter = ThreadpoolController().limit(limits=1, user_api="blas")
        except Exception:  # no BLAS found: nothing to limit
            _blas_limiter = False


def restore_blas_threads():
    """Give OpenBLAS its original thread count back (when another backend takes over)."""
    global _blas_limiter
    if _blas_limiter:
        _blas_limiter.restore_original_limits()
    _blas_limiter = None


# ------------------------------------------------------------------------------ checks ------

def _float(op, *arrays):
    """Arrays as one float dtype (NumPy promotion for mixed float32/float64)."""
    dt = arrays[0].dtype
    for a in arrays:
        if a.dtype not in _FLOATS:
            raise DTypeError(f"{op}: the cython backend takes float32 or float64, got {a.dtype}; "
                             "cast with .astype(np.float32)")
        if a.dtype != dt:
            dt = np.dtype(np.float64)
    return [a if a.dtype == dt else a.astype(dt) for a in arrays]


def _c(a):
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


def _pair(op, name, v, minimum):
    try:
        v = tuple(operator.index(t) for t in v)
    except TypeError:  # not a sequence, or not of ints (an int, a float, None)
        raise ShapeError(f"{op}: {name} must be a pair of ints >= {minimum}, got {v!r}; pass "
                         f"({v!r}, {v!r}) for a square window") from None
    if len(v) != 2 or v[0] < minimum or v[1] < minimum:
        raise ShapeError(f"{op}: {name} must be two ints >= {minimum}, got {v}")
    return v


def _shape4(op, name, shape):
    shape = tuple(operator.index(s) for s in shape)
    if len(shape) != 4 or min(shape) < 0:
        raise ShapeError(f"{op}: {name} must have 4 entries >= 0 (N, C, H, W), got {shape}")
    return shape


def _ndim(op, name, a, n):
    if a.ndim != n:
        raise ShapeError(f"{op}: {name} must be {n}-D, got shape {a.shape}")


def _geometry(op, x_shape, kernel, stride, padding, dilation):
    kernel = _pair(op, "kernel", kernel, 1)
    stride = _pair(op, "stride", stride, 1)
    padding = _pair(op, "padding", padding, 0)
    dilation = _pair(op, "dilation", dilation, 1)
    out = tuple(conv_output_size(x_shape[2 + a], kernel[a], stride[a], padding[a], dilation[a])
                for a in range(2))
    if out[0] < 1 or out[1] < 1:
        raise ShapeError(f"{op}: kernel larger than the padded input, got input {x_shape[2:]}, "
                         f"kernel {kernel}, padding {padding}, dilation {dilation}; "
                         "pad more or use a smaller kernel")
    return kernel, stride, padding, dilation, out


def _conv_shapes(op, x_shape, w_shape, groups):
    if isinstance(groups, bool) or int(groups) != groups or groups < 1:
        raise ShapeError(f"{op}: groups must be a positive int, got {groups!r}")
    groups = int(groups)
    if w_shape[0] % groups or x_shape[1] != w_shape[1] * groups:
        raise ShapeError(f"{op}: channels do not fit the weight, got x.shape={tuple(x_shape)}, "
                         f"w.shape={tuple(w_shape)}, groups={groups} (need C == w.shape[1]*groups "
                         "and O % groups == 0)")
    return groups


def _pool_geometry(op, x_shape, kernel, stride, padding):
    if len(x_shape) != 4:
        raise ShapeError(f"{op}: x must be 4-D (N, C, H, W), got shape {tuple(x_shape)}")
    kernel, stride, padding, _, out = _geometry(op, x_shape, kernel, stride, padding, (1, 1))
    if padding[0] >= kernel[0] or padding[1] >= kernel[1]:
        raise ShapeError(f"{op}: padding must be smaller than the kernel, got padding {padding} "
                         f"and kernel {kernel}")
    return kernel, stride, padding, out


# ----------------------------------------------------------------------------- backend -----


def _conv_call(op, x_shape, w_shape, stride, padding, dilation, groups, gy=None):
    """Validate one convolution; returns the kernel's flat geometry arguments
    (sh, sw, ph, pw, dh, dw, groups) and the output (OH, OW). With ``gy`` (a backward pass),
    also checks it has the forward output's shape."""
    groups = _conv_shapes(op, x_shape, w_shape, groups)
    _, stride, padding, dilation, out = _geometry(op, x_shape, w_shape[2:], stride, padding,
                                                  dilation)
    if gy is not None:
        want = (x_shape[0], w_shape[0]) + tuple(out)
        if gy.shape != want:
            raise ShapeError(f"{op}: gy must have shape {want}, got {gy.shape}")
    return (*stride, *padding, *dilation, groups), out



def _bwd_weight_args(gy, x, w_shape, stride, padding, dilation, groups):
    """The checked arguments of a conv2d weight-gradient call: (gy, x, w_shape, geometry)."""
    op = "conv2d_backward_weight"
    gy, x = _float(op, gy, x)
    _ndim(op, "gy", gy, 4)
    _ndim(op, "x", x, 4)
    w_shape = _shape4(op, "w_shape", w_shape)
    geom, _ = _conv_call(op, x.shape, w_shape, stride, padding, dilation, groups, gy)
    return gy, x, w_shape, geom

class CythonBackend(Backend):
    """Our CPU kernels: packed AVX-512/AVX2 GEMM, im2col conv, direct pooling, OpenMP threads."""

    name = "cython"
    xp = np

    def __init__(self):
        if not HAVE_CPU_KERNELS:
            from ._ext import DISABLED_REASON, build_hint, disabled_by_env

            if disabled_by_env():
                raise BackendUnavailableError(f"cython backend: {DISABLED_REASON} (the extension "
                                              "may be built); unset it to use the kernels")
            raise BackendUnavailableError(
                f"cython backend: extension tinygrad_lite._cpu not built, got "
                f"{type(_IMPORT_ERROR).__name__}: {_IMPORT_ERROR}; {build_hint()}")

    def activate(self):
        limit_blas_threads()

    def deactivate(self):
        restore_blas_threads()

    # ---- fused softmax cross-entropy (ops/nn.py SoftmaxCrossEntropy) ---------------------
    def softmax_xent(self, z, labels, dz):
        """Mean loss of C-contiguous float32/float64 logits z (N, C) for int labels (checked
        by the caller), writing dz = (softmax - onehot) / N into dz (z's dtype and shape)."""
        labels = np.ascontiguousarray(labels, dtype=np.int64)
        return _SOFTMAX_XENT[z.dtype](z, labels, dz)

    # ---- GEMM with a bias + ReLU epilogue (ops/nn.py LinearReLU, plan.py) ------------------
    def gemm_bias_act(self, x, w, trans_b, bias, relu=True):
        """act(x @ op(w) + bias) in one kernel call, or None (the caller falls back) unless x,
        w, bias are C-contiguous 2-D/2-D/1-D arrays of one float dtype that fit."""
        dt = x.dtype
        if not (dt is w.dtype is bias.dtype and (dt is _F32 or dt is _F64) and x.ndim == 2
                and w.ndim == 2 and bias.ndim == 1 and x.flags.c_contiguous
                and w.flags.c_contiguous and bias.flags.c_contiguous):
            return None
        n, k = w.shape if trans_b else w.shape[::-1]
        if k != x.shape[1] or bias.shape[0] != n:
            return None
        out = np.empty((x.shape[0], n), dtype=dt)
        _GEMM_BIAS_ACT[dt](x, w, False, trans_b, bias, out, 1 if relu else 0,
                           _threads._num_threads)
        return out

    # ---- matmul -----------------------------------------------------------------------------
    def matmul(self, a, b, trans_a=False, trans_b=False, out=None, accumulate=False):
        # Small GEMMs: the direct kernels take any strides and allocate nothing but the result;
        # None means "not one of those" (a larger or unsupported case), handled below.
        if out is None:
            y = _MATMUL_SMALL(a, b, trans_a, trans_b)
            if y is not None:
                return y
        # Fast path (the common case, and what tiny MLP layers pay for): one float dtype, 2-D,
        # C-contiguous, no out=. Same checks as below, in the cheapest order.
        dt = a.dtype
        if (out is None and dt is b.dtype and (dt is _F32 or dt is _F64) and a.ndim == 2
                and b.ndim == 2 and a.flags.c_contiguous and b.flags.c_contiguous):
            m, k = a.shape
            k2, n = b.shape
            if trans_a:
                m, k = k, m
            if trans_b:
                k2, n = n, k2
            if k == k2:
                out = np.empty((m, n), dtype=dt)
                _GEMM[dt](a, b, trans_a, trans_b, out, False, _threads._num_threads)
                return out
        if a.dtype is not b.dtype or a.dtype not in _FLOATS:
            a, b = _float("matmul", a, b)
        if a.ndim != 2 or b.ndim != 2:
            raise ShapeError(f"matmul: the cython kernel takes 2-D operands, got a.shape={a.shape} "
                             f"and b.shape={b.shape}")
        # Fold transposed views into the flags instead of copying them.
        fa, fb = a.flags, b.flags
        if not fa.c_contiguous:
            if fa.f_contiguous:
                a, trans_a = a.T, not trans_a
            else:
                a = np.ascontiguousarray(a)
        if not fb.c_contiguous:
            if fb.f_contiguous:
                b, trans_b = b.T, not trans_b
            else:
                b = np.ascontiguousarray(b)
        m, k = a.shape[::-1] if trans_a else a.shape
        k2, n = b.shape[::-1] if trans_b else b.shape
        if k != k2:
            raise ShapeError(f"matmul: inner dimensions differ, got op(a).shape={(m, k)} and "
                             f"op(b).shape={(k2, n)} ({k} != {k2})")
        if out is None:
            out = np.empty((m, n), dtype=a.dtype)
            _GEMM[a.dtype](a, b, trans_a, trans_b, out, False, _threads._num_threads)
            return out
        if out.shape != (m, n):
            raise ShapeError(f"matmul: out must have shape {(m, n)}, got {out.shape}")
        if out.dtype != a.dtype:
            raise DTypeError(f"matmul: out must have the result dtype {a.dtype}, got {out.dtype}")
        if not out.flags.writeable:
            raise ValueError("matmul: out is read-only, got a non-writeable array")
        # An out that shares memory with an input would be read after the first K block wrote
        # to it: compute into a temporary instead (np.matmul does the same).
        if out.flags.c_contiguous and not (np.shares_memory(out, a) or np.shares_memory(out, b)):
            _GEMM[a.dtype](a, b, trans_a, trans_b, out, accumulate, _threads._num_threads)
            return out
        tmp = np.empty((m, n), dtype=a.dtype)
        _GEMM[a.dtype](a, b, trans_a, trans_b, tmp, False, _threads._num_threads)
        if accumulate:
            out += tmp
        else:
            out[...] = tmp
        return out

    def batched_matmul(self, a, b):
        if b.ndim == 2 and a.ndim > 2:        # (..., m, k) @ (k, n): one GEMM over all rows
            y = self.matmul(a.reshape(-1, a.shape[-1]), b)
            return y.reshape(a.shape[:-1] + (b.shape[-1],))
        return super().batched_matmul(a, b)

    # ---- im2col / col2im ----------------------------------------------------------------------
    def im2col(self, x, kernel, stride, padding, dilation):
        (x,) = _float("im2col", x)
        _ndim("im2col", "x", x, 4)
        kernel, stride, padding, dilation, (oh, ow) = _geometry("im2col", x.shape, kernel, stride,
                                                                padding, dilation)
        n, c = x.shape[:2]
        cols = np.empty((n, c * kernel[0] * kernel[1], oh * ow), dtype=x.dtype)
        _cpu.im2col(_c(x), cols, *kernel, *stride, *padding, *dilation,
                    _threads._num_threads)
        return cols

    def col2im(self, cols, x_shape, kernel, stride, padding, dilation):
        (cols,) = _float("col2im", cols)
        x_shape = tuple(int(s) for s in x_shape)
        if len(x_shape) != 4:
            raise ShapeError(f"col2im: x_shape must have 4 entries (N, C, H, W), got {x_shape}")
        kernel, stride, padding, dilation, (oh, ow) = _geometry("col2im", x_shape, kernel, stride,
                                                                padding, dilation)
        n, c = x_shape[:2]
        want = (n, c * kernel[0] * kernel[1], oh * ow)
        if cols.shape != want:
            raise ShapeError(f"col2im: cols must have shape {want} for x_shape {x_shape}, got "
                             f"{cols.shape}")
        x = np.empty(x_shape, dtype=cols.dtype)
        _cpu.col2im(_c(cols), x, *kernel, *stride, *padding, *dilation, _threads._num_threads)
        return x

    # ---- convolution --------------------------------------------------------------------------
    def conv2d(self, x, w, stride, padding, dilation, groups):
        x, w = _float("conv2d", x, w)
        _ndim("conv2d", "x", x, 4)
        _ndim("conv2d", "w", w, 4)
        geom, (oh, ow) = _conv_call("conv2d", x.shape, w.shape, stride, padding, dilation, groups)
        y = np.empty((x.shape[0], w.shape[0], oh, ow), dtype=x.dtype)
        _cpu.conv2d_forward(_c(x), _c(w), y, *geom, _threads._num_threads)
        return y

    def conv2d_bias(self, x, w, b, stride, padding, dilation, groups):
        """conv2d(x, w) + b[None, :, None, None], the bias added in the kernel's epilogue."""
        x, w, b = _float("conv2d", x, w, b)
        _ndim("conv2d", "x", x, 4)
        _ndim("conv2d", "w", w, 4)
        _ndim("conv2d", "b", b, 1)
        geom, (oh, ow) = _conv_call("conv2d", x.shape, w.shape, stride, padding, dilation, groups)
        y = np.empty((x.shape[0], w.shape[0], oh, ow), dtype=x.dtype)
        _cpu.conv2d_forward_bias(_c(x), _c(w), _c(b), y, *geom, _threads._num_threads)
        return y

    def conv2d_backward_weight_bias(self, gy, x, w_shape, stride, padding, dilation, groups):
        """(conv2d_backward_weight(gy, x), gy summed over n, h, w): one pass over gy."""
        gy, x, w_shape, geom = _bwd_weight_args(gy, x, w_shape, stride, padding, dilation,
                                                groups)
        gw = np.empty(w_shape, dtype=gy.dtype)
        gb = np.empty(w_shape[0], dtype=gy.dtype)
        _cpu.conv2d_backward_weight_bias(_c(gy), _c(x), gw, gb, *geom, _threads._num_threads)
        return gw, gb

    def conv2d_backward_input(self, gy, w, x_shape, stride, padding, dilation, groups):
        op = "conv2d_backward_input"
        gy, w = _float(op, gy, w)
        _ndim(op, "gy", gy, 4)
        _ndim(op, "w", w, 4)
        x_shape = _shape4(op, "x_shape", x_shape)
        geom, _ = _conv_call(op, x_shape, w.shape, stride, padding, dilation, groups, gy)
        gx = np.empty(x_shape, dtype=gy.dtype)
        _cpu.conv2d_backward_input(_c(gy), _c(w), gx, *geom, _threads._num_threads)
        return gx

    def conv2d_backward_weight(self, gy, x, w_shape, stride, padding, dilation, groups):
        gy, x, w_shape, geom = _bwd_weight_args(gy, x, w_shape, stride, padding, dilation,
                                                groups)
        gw = np.empty(w_shape, dtype=gy.dtype)
        _cpu.conv2d_backward_weight(_c(gy), _c(x), gw, *geom, _threads._num_threads)
        return gw

    # ---- pooling ------------------------------------------------------------------------------
    def max_pool2d(self, x, kernel, stride, padding):
        (x,) = _float("max_pool2d", x)
        kernel, stride, padding, (oh, ow) = _pool_geometry("max_pool2d", x.shape, kernel, stride,
                                                           padding)
        y = np.empty(x.shape[:2] + (oh, ow), dtype=x.dtype)
        idx = np.empty(x.shape[:2] + (oh, ow), dtype=np.int64)
        _cpu.max_pool2d_forward(_c(x), y, idx, *kernel, *stride, *padding, _threads._num_threads)
        return y, idx

    def max_pool2d_backward(self, gy, idx, x_shape, kernel, stride, padding):
        (gy,) = _float("max_pool2d_backward", gy)
        x_shape = tuple(int(s) for s in x_shape)
        _, _, _, out = _pool_geometry("max_pool2d_backward", x_shape, kernel, stride, padding)
        want = x_shape[:2] + out
        if gy.shape != want or idx.shape != want:
            raise ShapeError(f"max_pool2d_backward: gy and idx must have shape {want} for x_shape "
                             f"{x_shape}, got gy {gy.shape} and idx {idx.shape}")
        if idx.dtype.kind not in "iu":
            raise DTypeError(f"max_pool2d_backward: idx must be an integer array (from "
                             f"max_pool2d), got {idx.dtype}")
        gx = np.empty(x_shape, dtype=gy.dtype)
        _cpu.max_pool2d_backward(_c(gy), _c(idx.astype(np.int64, copy=False)), gx,
                                 _threads._num_threads)
        return gx

    def avg_pool2d(self, x, kernel, stride, padding):
        (x,) = _float("avg_pool2d", x)
        kernel, stride, padding, (oh, ow) = _pool_geometry("avg_pool2d", x.shape, kernel, stride,
                                                           padding)
        y = np.empty(x.shape[:2] + (oh, ow), dtype=x.dtype)
        _cpu.avg_pool2d_forward(_c(x), y, *kernel, *stride, *padding, _threads._num_threads)
        return y

    def avg_pool2d_backward(self, gy, x_shape, kernel, stride, padding):
        (gy,) = _float("avg_pool2d_backward", gy)
        x_shape = tuple(int(s) for s in x_shape)
        kernel, stride, padding, out = _pool_geometry("avg_pool2d_backward", x_shape, kernel,
                                                      stride, padding)
        if gy.shape != x_shape[:2] + out:
            raise ShapeError(f"avg_pool2d_backward: gy must have shape {x_shape[:2] + out}, got "
                             f"{gy.shape}")
        gx = np.empty(x_shape, dtype=gy.dtype)
        _cpu.avg_pool2d_backward(_c(gy), gx, *kernel, *stride, *padding, _threads._num_threads)
        return gx

    def describe(self):
        try:
            from threadpoolctl import threadpool_info

            blas = [p for p in threadpool_info() if p.get("user_api") == "blas"]
        except ImportError:
            blas = []
        return {
            "name": self.name,
            "isa": _cpu.isa(),
            "isa_supported": _cpu.supported_isas(),
            "openmp": _cpu.openmp(),
            "threads": _threads.get_num_threads(),
            "blas_threads": blas[0].get("num_threads") if blas else None,
            "blas_limited": bool(_blas_limiter),
        }
