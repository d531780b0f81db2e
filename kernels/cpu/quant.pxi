# quant.pxi -- int8 GEMM with int32 accumulation for post-training quantization (included by
# _cpu.pyx):
#
#   qgemm_s8s8s32   out[i, j] = sum_k int32(A[i, k]) * int32(W[j, k])     (A (m, k), W (n, k))
#
# W is stored one output channel per row (Dense: kernel transposed; Conv: filters x C*kh*kw), so
# both operands are read along k with unit stride and each output is one dot product. Products of
# two int8 values fit in 15 bits; the Python caller (tinygrad_lite/quantize.py) keeps k <= 133,152
# so the int32 sum of k of them cannot overflow, and checks dtypes and C order. The integer
# result is exact, so it equals the NumPy reference ``A.astype(int32) @ W.T.astype(int32)`` bit
# for bit; scales (dequantization) are applied by the caller in floating point.

from libc.stdint cimport int8_t, int32_t


cdef int32_t _dot_s8(const int8_t* a, const int8_t* w, Py_ssize_t k) noexcept nogil:
    """sum_t a[t] * w[t] in int32; four independent sums so the compiler can vectorize."""
    cdef int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0
    cdef Py_ssize_t t = 0
    while t + 4 <= k:
        s0 += <int32_t>a[t] * <int32_t>w[t]
        s1 += <int32_t>a[t + 1] * <int32_t>w[t + 1]
        s2 += <int32_t>a[t + 2] * <int32_t>w[t + 2]
        s3 += <int32_t>a[t + 3] * <int32_t>w[t + 3]
        t += 4
    while t < k:
        s0 += <int32_t>a[t] * <int32_t>w[t]
        t += 1
    return s0 + s1 + s2 + s3


cdef void _qgemm_rows(const int8_t* A, const int8_t* W, int32_t* out, Py_ssize_t r0,
                      Py_ssize_t r1, Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    """Rows r0..r1 of out: one int32 dot product per (row of A, row of W)."""
    cdef Py_ssize_t i, j
    cdef const int8_t* a
    for i in range(r0, r1):
        a = A + i * k
        for j in range(n):
            out[i * n + j] = _dot_s8(a, W + j * k, k)


def qgemm_s8s8s32(const int8_t[:, ::1] A, const int8_t[:, ::1] W, int32_t[:, ::1] out,
                  int threads=1):
    """out = A @ W.T with int8 inputs and int32 accumulation (exact).

    A (m, k) int8 C-contiguous, W (n, k) int8 C-contiguous, out (m, n) int32 C-contiguous. Rows
    of ``out`` are split over ``threads`` OpenMP threads. Overflow-free for k <= 133,152 (the
    caller checks).
    """
    cdef Py_ssize_t m = A.shape[0], k = A.shape[1], n = W.shape[0]
    cdef Py_ssize_t chunk, t, nchunks
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
    if nchunks <= 1 or m * n * k < 65536:
        with nogil:
            _qgemm_rows(pa, pw, po, 0, m, n, k)
        return
    chunk = (m + nchunks - 1) // nchunks
    for t in prange(nchunks, nogil=True, num_threads=nchunks, schedule="static"):
        _qgemm_rows(pa, pw, po, t * chunk, min(m, (t + 1) * chunk), n, k)
