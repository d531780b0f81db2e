# quant.pxi -- int8 GEMM with int32 accumulation for post-training quantization (included by
# _cpu.pyx):
#
#   qgemm_s8s8s32   out[i, j] = sum_k int32(A[i, k]) * int32(W[j, k])     (A (m, k), W (n, k))
#   qlinear_f32     the whole int8 layer on float32 rows in one call: quantize each row
#                   (q = clamp(rint(x * inv_sx), -127, 127)), qgemm, then the dequantizing
#                   epilogue out[i, j] = act(float(acc[i, j]) * scale[j] + bias[j])
#
# W is stored one output channel per row (Dense: kernel transposed; Conv: filters x C*kh*kw), so
# both operands are read along k with unit stride and each output is one dot product. The row
# loops live in quant_kernels.h: a generic C loop and AVX2 / AVX-512BW variants (int8 widened to
# int16, madd_epi16 into int32 lanes), picked from the GEMM's ISA (set_isa forces one). Products of
# two int8 values fit in 15 bits; the Python caller (tinygrad_lite/quantize.py) keeps k <= 133,152
# so the int32 sum of k of them cannot overflow, and checks dtypes and C order. The integer
# result is exact, so it equals the NumPy reference ``A.astype(int32) @ W.T.astype(int32)`` bit
# for bit; scales (dequantization) are applied by the caller in floating point.

from libc.stdint cimport int8_t, int32_t
from libc.stdlib cimport free, malloc

cdef extern from "quant_kernels.h" nogil:
    void tgl_qrows(int isa, const int8_t* A, const int8_t* W, int32_t* out, ptrdiff_t r0,
                   ptrdiff_t r1, ptrdiff_t n, ptrdiff_t k)
    void tgl_qrows_generic(const int8_t* A, const int8_t* W, int32_t* out, ptrdiff_t r0,
                           ptrdiff_t r1, ptrdiff_t n, ptrdiff_t k)


def qgemm_s8s8s32(const int8_t[:, ::1] A, const int8_t[:, ::1] W, int32_t[:, ::1] out,
                  int threads=1):
    """out = A @ W.T with int8 inputs and int32 accumulation (exact).

    A (m, k) int8 C-contiguous, W (n, k) int8 C-contiguous, out (m, n) int32 C-contiguous. Rows
    of ``out`` are split over ``threads`` OpenMP threads. Overflow-free for k <= 133,152 (the
    caller checks).
    """
    cdef Py_ssize_t m = A.shape[0], k = A.shape[1], n = W.shape[0]
    cdef Py_ssize_t chunk, t, nchunks
    cdef int isa_code = _K.isa          # copied with the GIL held (see set_isa)
    cdef const int8_t* pa
    cdef const int8_t* pw
    cdef int32_t* po
    if W.shape[1] != k or out.shape[0] != m or out.shape[1] != n:
        raise ValueError(f"qgemm_s8s8s32: shapes do not fit, got A {(A.shape[0], A.shape[1])}, "
                         f"W {(W.shape[0], W.shape[1])}, out {(out.shape[0], out.shape[1])}; "
                         "need A (m, k), W (n, k), out (m, n)")
    if k > 133152:
        raise ValueError(f"qgemm_s8s8s32: k = {k} could overflow the int32 sum, need k <= 133152")
    if m == 0 or n == 0:
        return
    if k == 0:
        memset(&out[0, 0], 0, m * n * sizeof(int32_t))
        return
    pa, pw, po = &A[0, 0], &W[0, 0], &out[0, 0]
    if threads < 1:
        threads = 1
    nchunks = threads if m >= threads else m
    if nchunks <= 1 or m * n * k < 2097152:     # under ~2M products a thread team costs more
        with nogil:
            tgl_qrows(isa_code, pa, pw, po, 0, m, n, k)
        return
    chunk = (m + nchunks - 1) // nchunks
    for t in prange(nchunks, nogil=True, num_threads=nchunks, schedule="static"):
        tgl_qrows(isa_code, pa, pw, po, t * chunk, min(m, (t + 1) * chunk), n, k)


def qgemm_s8s8s32_naive(const int8_t[:, ::1] A, const int8_t[:, ::1] W, int32_t[:, ::1] out):
    """The plain C loop of quant_kernels.h (no SIMD, one thread): the readable version."""
    if W.shape[1] != A.shape[1] or out.shape[0] != A.shape[0] or out.shape[1] != W.shape[0]:
        raise ValueError("qgemm_s8s8s32_naive: shapes do not fit, need A (m, k), W (n, k), "
                         "out (m, n)")
    if A.shape[0] and W.shape[0] and A.shape[1]:
        with nogil:
            tgl_qrows_generic(&A[0, 0], &W[0, 0], &out[0, 0], 0, A.shape[0], W.shape[0],
                              A.shape[1])
    elif A.shape[0] and W.shape[0]:
        out[:, :] = 0


# ------------------------------------------------------------------ fused int8 layer ---

cdef enum:
    _QBLOCK = 64          # rows quantized, multiplied and dequantized per step (fits in L1/L2)


cdef void _qlinear_rows(const float* X, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t k, float inv,
                        const int8_t* W, Py_ssize_t n, const float* scale, const float* bias,
                        float* out, int act, int isa, int8_t* xq, int32_t* acc) noexcept nogil:
    """Rows r0..r1, in blocks of _QBLOCK rows:

        xq[i, t]  = int8(clamp(rint(X[i, t] * inv), -127, 127))    (NaN -> 127, as fmin/fmax;
                                                                     clamped before rounding,
                                                                     the same integer)
        acc       = xq @ W.T                                         (int32, exact)
        out[i, j] = act(float(acc[i, j]) * scale[j] + bias[j])       (float32; act 1 = ReLU)

    Every step is the float32 operation NumPy's fallback in quantize.py performs, in the same
    order, so the outputs are bitwise equal. ``xq`` holds _QBLOCK * k bytes, ``acc``
    _QBLOCK * n int32 values (one pair per thread)."""
    cdef Py_ssize_t b0 = r0, b1, i, t, j
    cdef float v
    cdef const float* x
    cdef int8_t* q
    cdef float* o
    cdef int32_t* a
    while b0 < r1:
        b1 = b0 + _QBLOCK if b0 + _QBLOCK < r1 else r1
        for i in range(b0, b1):
            x = X + i * k
            q = xq + (i - b0) * k
            for t in range(k):
                # clamp first (NaN -> 127, as NumPy's fmin(NaN, 127)), then round half to even
                # with the 1.5 * 2^23 trick (exact for |v| <= 127): the same integer as
                # clamp(rint(v)), without a libm call per value
                v = x[t] * inv
                if not v <= <float>127.0:
                    v = <float>127.0
                elif v < <float>-127.0:
                    v = <float>-127.0
                v = (v + <float>12582912.0) - <float>12582912.0
                q[t] = <int8_t>v
        tgl_qrows(isa, xq, W, acc, 0, b1 - b0, n, k)
        for i in range(b0, b1):
            a = acc + (i - b0) * n
            o = out + i * n
            for j in range(n):
                v = <float>a[j] * scale[j]
                if bias != NULL:
                    v = v + bias[j]
                if act == 1:
                    v = v if (v > 0 or v != v) else <float>0
                o[j] = v
        b0 = b1


def qlinear_f32(const float[:, ::1] X, float inv, const int8_t[:, ::1] W,
                const float[::1] scale, const float[::1] bias, float[:, ::1] out, int act=0,
                int threads=1):
    """out = act(dequant(quant(X) @ W.T) * scale + bias) in one call (see _qlinear_rows).

    X (m, k) float32, W (n, k) int8, scale (n,) float32 (input scale times each channel's
    weight scale), bias (n,) float32 or None, out (m, n) float32; act 0 = none, 1 = ReLU. Rows
    are split over ``threads`` OpenMP threads for large problems.
    """
    cdef Py_ssize_t m = X.shape[0], k = X.shape[1], n = W.shape[0]
    cdef Py_ssize_t chunk, t, nchunks
    cdef int isa_code = _K.isa
    cdef const float* pbias = NULL
    if W.shape[1] != k or out.shape[0] != m or out.shape[1] != n or scale.shape[0] != n:
        raise ValueError(f"qlinear_f32: shapes do not fit, got X {(m, k)}, W "
                         f"{(W.shape[0], W.shape[1])}, scale {(scale.shape[0],)}, out "
                         f"{(out.shape[0], out.shape[1])}; need X (m, k), W (n, k), scale (n,), "
                         "out (m, n)")
    if bias is not None:
        if bias.shape[0] != n:
            raise ValueError(f"qlinear_f32: bias needs shape ({n},), got ({bias.shape[0]},)")
        if n:
            pbias = &bias[0]
    if k > 133152:
        raise ValueError(f"qlinear_f32: k = {k} could overflow the int32 sum, need k <= 133152")
    if m == 0 or n == 0:
        return
    if threads < 1:
        threads = 1
    nchunks = threads if m >= threads * _QBLOCK else 1
    if m * n * k < 2097152:
        nchunks = 1
    cdef Py_ssize_t kk = k if k else 1
    cdef int8_t* xq = <int8_t*>malloc(nchunks * _QBLOCK * kk)
    cdef int32_t* acc = <int32_t*>malloc(nchunks * _QBLOCK * n * sizeof(int32_t))
    cdef const float* px = &X[0, 0] if k else NULL
    cdef const int8_t* pw = &W[0, 0] if k else NULL
    cdef const float* ps = &scale[0]
    cdef float* po = &out[0, 0]
    if xq == NULL or acc == NULL:
        free(xq)
        free(acc)
        raise MemoryError("qlinear_f32: no memory for the row buffers")
    try:
        if nchunks <= 1:
            with nogil:
                _qlinear_rows(px, 0, m, k, inv, pw, n, ps, pbias, po, act, isa_code, xq, acc)
            return
        chunk = (m + nchunks - 1) // nchunks
        for t in prange(nchunks, nogil=True, num_threads=nchunks, schedule="static"):
            _qlinear_rows(px, t * chunk, min(m, (t + 1) * chunk), k, inv, pw, n, ps, pbias, po,
                          act, isa_code, xq + t * _QBLOCK * kk, acc + t * _QBLOCK * n)
    finally:
        free(xq)
        free(acc)
