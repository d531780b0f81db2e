"""The GPU backends: ``cupy`` (our CUDA kernels, kernels/cuda/*.cu, through ``cupy.RawModule``)
and ``cublas`` (CuPy's library calls: ``cupy.matmul`` on cuBLAS, and cuDNN convolutions when
CuPy has cuDNN).

Both take and return CuPy arrays and keep the Cython backend's rules: float32/float64 only (else
``DTypeError``), mixed float32/float64 promoted to float64, inputs made C-contiguous first, new
arrays of the input dtype out. Launch geometry comes from ``cuda_launch`` (plain Python, tested
without a GPU); this module only turns a ``Launch`` into a kernel call. Anything our kernels do
not cover (padding over half a pooling window, empty tensors) runs the NumPy backend's code on
``xp = cupy``, which is also what ``cublas`` runs for pooling.

This module imports without CuPy (``import cupy`` happens when a backend is built), so the
backend registry can report why a GPU backend is unavailable.
"""

import numpy as np

from . import cuda_launch
from .numpy_backend import NumpyBackend
from ..errors import BackendUnavailableError, DTypeError, ShapeError

_FILE_OF = (("sgemm_", "sgemm.cu"), ("gemm_", "sgemm.cu"), ("conv2d_", "conv2d.cu"),
            ("im2col_", "conv2d.cu"), ("col2im_", "conv2d.cu"), ("max_pool2d", "pool.cu"),
            ("avg_pool2d", "pool.cu"))


def _import_cupy():
    try:
        import cupy
    except ImportError as e:
        raise BackendUnavailableError(f"CuPy is not installed ({e}); pip install "
                                      "tinygrad_lite[cuda]") from None
    return cupy


class _Modules:
    """One ``cupy.RawModule`` per .cu file, compiled on first use (NVRTC, once per process)."""

    def __init__(self, cupy):
        self.cupy = cupy
        self.modules = {}
        self.kernels = {}

    def kernel(self, name):
        k = self.kernels.get(name)
        if k is None:
            from .. import cuda

            fname = next(f for prefix, f in _FILE_OF if name.startswith(prefix))
            mod = self.modules.get(fname)
            if mod is None:
                src = cuda.kernel_source(fname)
                try:
                    mod = self.cupy.RawModule(code=src, options=("-std=c++17",))
                    mod.get_function(name)          # NVRTC compiles here
                except self.cupy.cuda.compiler.CompileException as e:
                    import shutil

                    if shutil.which("nvcc") is None:
                        raise
                    import warnings   # the compile checks use nvcc: it is the reference

                    warnings.warn(f"cupy backend: NVRTC could not compile {fname}, using nvcc "
                                  f"({str(e).splitlines()[0][:200]})", RuntimeWarning)
                    mod = self.cupy.RawModule(code=src, options=("-std=c++17",),
                                              backend="nvcc")
                self.modules[fname] = mod
            k = self.kernels[name] = mod.get_function(name)
        return k

    def launch(self, ln, *arrays):
        assert len(arrays) == ln.arrays, (ln.kernel, len(arrays), ln.arrays)
        scalars = tuple(np.int32(v) if t == "i" else np.int64(v)
                        for v, t in zip(ln.scalars, ln.types))
        self.kernel(ln.kernel)(ln.grid, ln.block, arrays + scalars)


class _GpuBase(NumpyBackend):
    """Shared checks; the NumPy backend's code, run on CuPy, is the fallback."""

    def __init__(self):
        self.xp = _import_cupy()

    def _promote(self, op, *arrays):
        """float32/float64 only (else DTypeError); mixed float32/float64 become float64."""
        dt = arrays[0].dtype
        for a in arrays:
            if a.dtype not in (np.float32, np.float64):
                raise DTypeError(f"{op}: the {self.name} backend takes float32 or float64, got "
                                 f"{a.dtype}; cast with .astype(np.float32)")
            if a.dtype != dt:
                dt = np.dtype(np.float64)
        return [a if a.dtype == dt else a.astype(dt) for a in arrays]

    def _floats(self, op, *arrays):
        """``_promote``, then C-contiguous (what every kernel assumes)."""
        return [self.xp.ascontiguousarray(a) for a in self._promote(op, *arrays)]

    def describe(self):
        xp = self.xp
        info = {"name": self.name, "cupy": xp.__version__}
        try:
            dev = xp.cuda.Device()
            props = xp.cuda.runtime.getDeviceProperties(dev.id)
            info["device"] = props["name"].decode() if isinstance(props["name"], bytes) \
                else str(props["name"])
            info["cuda_runtime"] = xp.cuda.runtime.runtimeGetVersion()
        except Exception as e:  # describe never fails
            info["device"] = f"unknown ({type(e).__name__})"
        return info


def _aligned16(*arrays):
    """True when every array's data starts on a 16-byte boundary (float4 loads allowed)."""
    for a in arrays:
        ptr = a.data.ptr if hasattr(a.data, "ptr") else a.ctypes.data   # CuPy, or NumPy
        if ptr % 16:
            return False
    return True


def _mm_operand(a, trans):
    """A C-contiguous 2-D operand and its transpose flag: a transposed view of a C-contiguous
    array (F-contiguous) is used as is with the flag flipped, anything else is copied."""
    if a.flags.c_contiguous:
        return a, trans
    if a.flags.f_contiguous:
        return a.T, not trans
    return a.copy(order="C"), trans


class CupyBackend(_GpuBase):
    """Our kernels: sgemm (128 x 128 register-tiled, float4 loads, double-buffered), dgemm
    (16 x 16 tiled), implicit-GEMM conv2d and both backward passes, gather col2im, pooling."""

    name = "cupy"

    def __init__(self):
        super().__init__()
        self.mods = _Modules(self.xp)

    # ---- matmul ---------------------------------------------------------------------------
    def matmul(self, a, b, trans_a=False, trans_b=False, out=None, accumulate=False):
        xp = self.xp
        if a.ndim != 2 or b.ndim != 2:
            raise ShapeError(f"matmul: the {self.name} backend's matmul takes 2-D operands, got "
                             f"shapes {a.shape} and {b.shape}")
        a, b = self._promote("matmul", a, b)
        a, trans_a = _mm_operand(a, trans_a)
        b, trans_b = _mm_operand(b, trans_b)
        m, k = (a.shape[1], a.shape[0]) if trans_a else a.shape
        k2, n = (b.shape[1], b.shape[0]) if trans_b else b.shape
        if k != k2:
            raise ShapeError(f"matmul: inner dimensions differ, got op(a) {(m, k)} and op(b) "
                             f"{(k2, n)}")
        target = out
        if out is not None:
            if out.shape != (m, n) or out.dtype != a.dtype:
                raise ShapeError(f"matmul: out must be {(m, n)} {a.dtype}, got {out.shape} "
                                 f"{out.dtype}")
            if not out.flags.c_contiguous:
                target = xp.ascontiguousarray(out) if accumulate else xp.empty((m, n), a.dtype)
        else:
            target = xp.empty((m, n), a.dtype)
            accumulate = False
        if m and n:
            if k == 0:
                if not accumulate:
                    target.fill(0)
            else:
                aligned = _aligned16(a, b)
                ln = cuda_launch.gemm(m, n, k, a.itemsize, trans_a=trans_a, trans_b=trans_b,
                                      lda=a.shape[1], ldb=b.shape[1], aligned=aligned,
                                      accumulate=accumulate)
                self.mods.launch(ln, a, b, target)
        if out is not None and target is not out:
            out[...] = target
            return out
        return target

    def batched_matmul(self, a, b):
        xp = self.xp
        a, b = self._floats("matmul", a, b)
        batch = xp.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        m, k = a.shape[-2:]
        n = b.shape[-1]
        if b.shape[-2] != k:
            raise ShapeError(f"matmul: inner dimensions differ, got {a.shape} and {b.shape}")
        nb = int(np.prod(batch, dtype=np.int64))
        out = xp.empty(batch + (m, n), a.dtype)
        if nb == 0 or m == 0 or n == 0:
            return out
        if k == 0:
            out.fill(0)
            return out

        def flat(x, rows, cols):   # (batch, rows, cols) contiguous, or one broadcast matrix
            if x.ndim == 2 or all(s == 1 for s in x.shape[:-2]):
                return xp.ascontiguousarray(x.reshape(rows, cols)), 1, 0
            x = xp.ascontiguousarray(xp.broadcast_to(x, batch + (rows, cols)))
            return x.reshape(nb, rows, cols), nb, rows * cols

        fa, a_mod, a_stride = flat(a, m, k)
        fb, b_mod, b_stride = flat(b, k, n)
        try:
            ln = cuda_launch.gemm(m, n, k, a.itemsize, batch=nb, a_mod=a_mod, a_stride=a_stride,
                                  b_mod=b_mod, b_stride=b_stride, c_stride=m * n,
                                  aligned=_aligned16(fa, fb))
        except ValueError:   # over 65535 matrices or 2**31 elements: CuPy's batched GEMM
            return xp.matmul(a, b)
        self.mods.launch(ln, fa, fb, out)
        return out

    # ---- convolution ------------------------------------------------------------------------
    def conv2d(self, x, w, stride, padding, dilation, groups):
        x, w = self._floats("conv2d", x, w)
        if x.shape[0] == 0:
            return super().conv2d(x, w, stride, padding, dilation, groups)
        geom = cuda_launch.conv_geometry(x.shape, w.shape, stride, padding, dilation, groups)
        y = self.xp.empty((geom[0], geom[4], geom[14], geom[15]), x.dtype)
        self.mods.launch(cuda_launch.conv_forward(geom, x.itemsize), x, w, y)
        return y

    def conv2d_backward_input(self, gy, w, x_shape, stride, padding, dilation, groups):
        gy, w = self._floats("conv2d_backward_input", gy, w)
        if x_shape[0] == 0:
            return self.xp.zeros(x_shape, gy.dtype)
        geom = cuda_launch.conv_geometry(x_shape, w.shape, stride, padding, dilation, groups)
        n, c, _, _, _, _, kh, kw, *_, oh, ow = geom
        cols = self.xp.empty((n, c * kh * kw, oh * ow), gy.dtype)
        self.mods.launch(cuda_launch.conv_dcols(geom, gy.itemsize), w, gy, cols)
        gx = self.xp.empty(tuple(x_shape), gy.dtype)
        self.mods.launch(cuda_launch.col2im(geom, gy.itemsize), cols, gx)
        return gx

    def conv2d_backward_weight(self, gy, x, w_shape, stride, padding, dilation, groups):
        gy, x = self._floats("conv2d_backward_weight", gy, x)
        if x.shape[0] == 0:
            return self.xp.zeros(w_shape, gy.dtype)
        geom = cuda_launch.conv_geometry(x.shape, w_shape, stride, padding, dilation, groups)
        ln = cuda_launch.conv_wgrad(geom, x.itemsize)
        splits = ln.scalars[-2]
        o, kd = w_shape[0], int(np.prod(w_shape[1:]))
        part = self.xp.empty((splits, o, kd), x.dtype)
        self.mods.launch(ln, gy, x, part)
        gw = part[0] if splits == 1 else part.sum(axis=0)
        return gw.reshape(w_shape)

    def im2col(self, x, kernel, stride, padding, dilation):
        (x,) = self._floats("im2col", x)
        n, c = x.shape[:2]
        if n == 0 or c == 0:
            return super().im2col(x, kernel, stride, padding, dilation)
        geom = cuda_launch.conv_geometry(x.shape, (c, c) + tuple(kernel), stride, padding,
                                         dilation, 1)
        cols = self.xp.empty((n, c * kernel[0] * kernel[1], geom[14] * geom[15]), x.dtype)
        self.mods.launch(cuda_launch.im2col(geom, x.itemsize), x, cols)
        return cols

    def col2im(self, cols, x_shape, kernel, stride, padding, dilation):
        (cols,) = self._floats("col2im", cols)
        n, c = x_shape[:2]
        if n == 0 or c == 0:
            return super().col2im(cols, x_shape, kernel, stride, padding, dilation)
        geom = cuda_launch.conv_geometry(x_shape, (c, c) + tuple(kernel), stride, padding,
                                         dilation, 1)
        gx = self.xp.empty(tuple(x_shape), cols.dtype)
        self.mods.launch(cuda_launch.col2im(geom, cols.itemsize), cols, gx)
        return gx

    # ---- pooling ----------------------------------------------------------------------------
    def _pool_geom(self, x_shape, kernel, stride, padding):
        """The kernels' geometry, or None where they do not apply (empty tensors, padding over
        half the window): the xp reference runs those."""
        if min(x_shape) == 0 or padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
            return None
        return cuda_launch.pool_geometry(x_shape, kernel, stride, padding)

    def max_pool2d(self, x, kernel, stride, padding):
        (x,) = self._floats("max_pool2d", x)
        geom = self._pool_geom(x.shape, kernel, stride, padding)
        if geom is None:
            return super().max_pool2d(x, kernel, stride, padding)
        shape = x.shape[:2] + tuple(geom[-2:])
        y = self.xp.empty(shape, x.dtype)
        idx = self.xp.empty(shape, self.xp.int64)
        self.mods.launch(cuda_launch.pool("max_pool2d_fwd", geom, x.itemsize), x, y, idx)
        return y, idx

    def max_pool2d_backward(self, gy, idx, x_shape, kernel, stride, padding):
        (gy,) = self._floats("max_pool2d_backward", gy)
        geom = self._pool_geom(tuple(x_shape), kernel, stride, padding)
        if geom is None:
            return super().max_pool2d_backward(gy, idx, x_shape, kernel, stride, padding)
        idx = self.xp.ascontiguousarray(idx, dtype=self.xp.int64)
        gx = self.xp.empty(tuple(x_shape), gy.dtype)
        self.mods.launch(cuda_launch.pool("max_pool2d_bwd", geom, gy.itemsize), gy, idx, gx)
        return gx

    def avg_pool2d(self, x, kernel, stride, padding):
        (x,) = self._floats("avg_pool2d", x)
        geom = self._pool_geom(x.shape, kernel, stride, padding)
        if geom is None:
            return super().avg_pool2d(x, kernel, stride, padding)
        y = self.xp.empty(x.shape[:2] + tuple(geom[-2:]), x.dtype)
        self.mods.launch(cuda_launch.pool("avg_pool2d_fwd", geom, x.itemsize), x, y)
        return y

    def avg_pool2d_backward(self, gy, x_shape, kernel, stride, padding):
        (gy,) = self._floats("avg_pool2d_backward", gy)
        geom = self._pool_geom(tuple(x_shape), kernel, stride, padding)
        if geom is None:
            return super().avg_pool2d_backward(gy, x_shape, kernel, stride, padding)
        gx = self.xp.empty(tuple(x_shape), gy.dtype)
        self.mods.launch(cuda_launch.pool("avg_pool2d_bwd", geom, gy.itemsize), gy, gx)
        return gx


class CublasBackend(_GpuBase):
    """CuPy's library calls: ``cupy.matmul`` (cuBLAS; full fp32 unless the app set CUPY_TF32)
    and, when CuPy has cuDNN (``cupy.cudnn``: CuPy 13 and older; the cupy-cuda13x 14.2 wheel has
    none), cuDNN convolutions with tensor cores off. Pooling and, without cuDNN, convolution run
    the NumPy backend's im2col code on CuPy (its matmul is cuBLAS)."""

    name = "cublas"

    def __init__(self):
        super().__init__()
        try:
            import cupy.cudnn as cudnn   # absent or failing without libcudnn

            self.cudnn = cudnn
        except Exception:
            self.cudnn = None

    def matmul(self, a, b, trans_a=False, trans_b=False, out=None, accumulate=False):
        a, b = self._floats("matmul", a, b)
        return super().matmul(a, b, trans_a, trans_b, out, accumulate)

    def batched_matmul(self, a, b):
        a, b = self._floats("matmul", a, b)
        return self.xp.matmul(a, b)

    def _cudnn_ok(self, x_shape):
        return self.cudnn is not None and x_shape[0] > 0

    def conv2d(self, x, w, stride, padding, dilation, groups):
        x, w = self._floats("conv2d", x, w)
        if not self._cudnn_ok(x.shape):
            return super().conv2d(x, w, stride, padding, dilation, groups)
        geom = cuda_launch.conv_geometry(x.shape, w.shape, stride, padding, dilation, groups)
        y = self.xp.empty((geom[0], geom[4], geom[14], geom[15]), x.dtype)
        self.cudnn.convolution_forward(x, w, None, y, tuple(padding), tuple(stride),
                                       tuple(dilation), groups, auto_tune=False,
                                       tensor_core="never")
        return y

    def conv2d_backward_input(self, gy, w, x_shape, stride, padding, dilation, groups):
        gy, w = self._floats("conv2d_backward_input", gy, w)
        if not self._cudnn_ok(x_shape):
            return super().conv2d_backward_input(gy, w, x_shape, stride, padding, dilation,
                                                 groups)
        gx = self.xp.empty(tuple(x_shape), gy.dtype)
        self.cudnn.convolution_backward_data(w, gy, None, gx, tuple(padding), tuple(stride),
                                             tuple(dilation), groups, deterministic=True,
                                             auto_tune=False, tensor_core="never")
        return gx

    def conv2d_backward_weight(self, gy, x, w_shape, stride, padding, dilation, groups):
        gy, x = self._floats("conv2d_backward_weight", gy, x)
        if not self._cudnn_ok(x.shape):
            return super().conv2d_backward_weight(gy, x, w_shape, stride, padding, dilation,
                                                  groups)
        gw = self.xp.empty(tuple(w_shape), gy.dtype)
        self.cudnn.convolution_backward_filter(x, gy, gw, tuple(padding), tuple(stride),
                                               tuple(dilation), groups, deterministic=True,
                                               auto_tune=False, tensor_core="never")
        return gw

    def describe(self):
        info = super().describe()
        info["cudnn"] = self.cudnn is not None
        return info
