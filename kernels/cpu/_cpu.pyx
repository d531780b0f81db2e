# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
# cython: cdivision=True, nonecheck=False, embedsignature=True
"""tinygrad_lite._cpu -- the CPU kernels: GEMM, im2col/col2im, conv2d, pooling (float32/float64).

Every kernel here is a ``cdef ... noexcept nogil`` core plus a thin ``def`` wrapper. The wrappers
check, in O(1) and before they release the GIL, that the shapes fit each other and the geometry
(else ValueError), so no call can read or write out of bounds; the friendly, op-named errors
(ShapeError, DTypeError) and the layout normalization come from the caller
(``tinygrad_lite/backends/cython_backend.py``). The cores never raise.

Sections: ISA selection and workspace -- GEMM -- im2col / col2im -- conv2d -- pooling.
The ISA-specific micro-kernels and the packing routines live in gemm_kernels.h.
"""

import os
import threading
import warnings

from cython.parallel cimport prange, threadid
from libc.stddef cimport ptrdiff_t
from libc.stdint cimport int64_t
from libc.string cimport memset, memcpy

ctypedef fused floating:
    float
    double

cdef extern from "gemm_kernels.h" nogil:
    ctypedef void (*tgl_ukr_f32)(int, const float*, const float*, float*, ptrdiff_t,
                                 int) noexcept nogil
    ctypedef void (*tgl_ukr_f64)(int, const double*, const double*, double*, ptrdiff_t,
                                 int) noexcept nogil
    ctypedef struct tgl_kernel_info:
        int isa, mr, nr, nr_f64, pack_simd
        tgl_ukr_f32 ukr_f32
        tgl_ukr_f64 ukr_f64
        tgl_ukr_f32 ukr4_f32, ukr8_f32
        tgl_ukr_f64 ukr4_f64, ukr8_f64
    int TGL_ISA_GENERIC, TGL_ISA_AVX2, TGL_ISA_AVX512
    int tgl_cpu_best_isa()
    int tgl_openmp_enabled()
    void tgl_select_kernel(int isa, tgl_kernel_info* k)
    void* tgl_aligned_alloc(size_t nbytes)
    void tgl_aligned_free(void* p)
    void tgl_pack_a_f32(int simd, int mr, int mc, int kc, const float* a, ptrdiff_t rsa, ptrdiff_t csa,
                        float* dst)
    void tgl_pack_a_f64(int simd, int mr, int mc, int kc, const double* a, ptrdiff_t rsa, ptrdiff_t csa,
                        double* dst)
    void tgl_pack_b_f32(int simd, int nr, int nc, int kc, const float* b, ptrdiff_t rsb, ptrdiff_t csb,
                        float* dst, int j0, int j1)
    void tgl_pack_b_f64(int simd, int nr, int nc, int kc, const double* b, ptrdiff_t rsb, ptrdiff_t csb,
                        double* dst, int j0, int j1)
    void tgl_macro_kernel_f32(const tgl_kernel_info* K, tgl_ukr_f32 ukr, int mr, int nr, int mc, int nc, int kc,
                              const float* pa, const float* pb, float* c, ptrdiff_t ldc,
                              ptrdiff_t csc, int beta)
    void tgl_macro_kernel_f64(const tgl_kernel_info* K, tgl_ukr_f64 ukr, int mr, int nr, int mc, int nc, int kc,
                              const double* pa, const double* pb, double* c, ptrdiff_t ldc,
                              ptrdiff_t csc, int beta)
    int TGL_SMALL_NONE, TGL_SMALL_ROWS, TGL_SMALL_DOT
    int tgl_small_form(int isa, int w, int k, ptrdiff_t csa, ptrdiff_t rsb, ptrdiff_t csb)
    int tgl_small_lanes(int isa, int dsize)
    void tgl_small_run_f32(int isa, int form, int m, int n, int k, const float* a, ptrdiff_t rsa,
                           ptrdiff_t csa, const float* b, ptrdiff_t rsb, ptrdiff_t csb, float* c,
                           ptrdiff_t ldc, int beta)
    void tgl_small_run_f64(int isa, int form, int m, int n, int k, const double* a,
                           ptrdiff_t rsa, ptrdiff_t csa, const double* b, ptrdiff_t rsb,
                           ptrdiff_t csb, double* c, ptrdiff_t ldc, int beta)
    int tgl_small_f32(int isa, int m, int n, int k, const float* a, ptrdiff_t rsa, ptrdiff_t csa,
                      const float* b, ptrdiff_t rsb, ptrdiff_t csb, float* c, ptrdiff_t ldc,
                      int beta)
    int tgl_small_f64(int isa, int m, int n, int k, const double* a, ptrdiff_t rsa,
                      ptrdiff_t csa, const double* b, ptrdiff_t rsb, ptrdiff_t csb, double* c,
                      ptrdiff_t ldc, int beta)
    void tgl_gemm_naive_f32(int m, int n, int k, const float* a, ptrdiff_t rsa, ptrdiff_t csa,
                            const float* b, ptrdiff_t rsb, ptrdiff_t csb, float* c, ptrdiff_t ldc,
                            int beta)
    void tgl_gemm_naive_f64(int m, int n, int k, const double* a, ptrdiff_t rsa, ptrdiff_t csa,
                            const double* b, ptrdiff_t rsb, ptrdiff_t csb, double* c,
                            ptrdiff_t ldc, int beta)


# ============================================================ ISA selection and workspace ===

_ISA_NAMES = {TGL_ISA_GENERIC: "generic", TGL_ISA_AVX2: "avx2", TGL_ISA_AVX512: "avx512"}
_ISA_CODES = {v: k for k, v in _ISA_NAMES.items()}
cdef int _BEST_ISA = tgl_cpu_best_isa()
# The selected kernels. Only ever written with the GIL held (set_isa), and every kernel entry
# point copies it once, with the GIL held, before it releases the GIL: a running GEMM never
# sees a half-switched table.
cdef tgl_kernel_info _K


def supported_isas():
    """The ISA variants this CPU can run, best first (always ends with 'generic')."""
    return [name for code, name in sorted(_ISA_NAMES.items(), reverse=True) if code <= _BEST_ISA]


def set_isa(name):
    """Force an ISA variant ('avx512', 'avx2', 'generic' or 'auto'); returns the previous name.

    A variant the CPU cannot run would crash the process (SIGILL), so it is refused with a
    ValueError naming what is supported.
    """
    global _K
    previous = isa()
    code = _BEST_ISA if name in (None, "", "auto") else _ISA_CODES.get(name)
    if code is None or code > _BEST_ISA:
        raise ValueError(f"set_isa: unknown or unsupported ISA variant, got {name!r}; "
                         f"this CPU supports {supported_isas()}")
    cdef tgl_kernel_info k
    tgl_select_kernel(code, &k)
    _K = k
    return previous


def isa():
    """Name of the ISA variant the GEMM micro-kernel uses now."""
    return _ISA_NAMES[_K.isa]


def openmp():
    """True when the extension was compiled with OpenMP (threads > 1 can run in parallel)."""
    return bool(tgl_openmp_enabled())


def _init_isa():
    forced = os.environ.get("TINYGRAD_LITE_CPU_ISA", "auto").strip().lower()
    try:
        set_isa(forced)
    except ValueError as e:
        warnings.warn(f"TINYGRAD_LITE_CPU_ISA: {e}; using {supported_isas()[0]!r}", RuntimeWarning,
                      stacklevel=2)
        set_isa("auto")


_init_isa()


cdef class _Workspace:
    """A 64-byte aligned scratch buffer that grows on demand and is reused between calls."""
    cdef char* ptr
    cdef size_t size

    cdef char* ensure(self, size_t nbytes) except NULL:
        if nbytes > self.size:
            tgl_aligned_free(self.ptr)
            self.ptr = NULL
            self.size = 0
            self.ptr = <char*>tgl_aligned_alloc(nbytes)
            if self.ptr == NULL:
                raise MemoryError(f"cpu kernels: cannot allocate a {nbytes}-byte workspace")
            self.size = nbytes
        return self.ptr

    def __dealloc__(self):
        tgl_aligned_free(self.ptr)


# One shared workspace for the common single-caller case; a concurrent caller (another Python
# thread inside a kernel with the GIL released) gets a private one instead of waiting.
_ws_lock = threading.Lock()
cdef _Workspace _ws_shared = _Workspace()


cdef _Workspace _ws_acquire():
    if _ws_lock.acquire(False):
        return _ws_shared
    return _Workspace()


cdef void _ws_release(_Workspace ws):
    if ws is _ws_shared:
        _ws_lock.release()


cdef inline size_t _round64(size_t nbytes) noexcept nogil:
    return (nbytes + 63) & ~(<size_t>63)


# ============================================================================== GEMM ========
#
# C (m x n) = op(A) (m x k) . op(B) (k x n)  [+ C when accumulate]
# with element (i, p) of op(A) at a[i*rsa + p*csa] and (p, j) of op(B) at b[p*rsb + j*csb].
#
# The five loops of Goto/BLIS around the micro-kernel (gemm_kernels.h), on one thread:
#
#   for jc in blocks of NC over n:                 # packed B block (kc x nc) lives in L2
#       for pc in blocks of KC over k:
#           pack op(B)[pc:pc+kc, jc:jc+nc] into NR-wide k-major panels
#           for ic in blocks of MC over m:
#               pack op(A)[ic:ic+mc, pc:pc+kc] into MR-tall k-major panels   (lives in L2/L1)
#               for jr in NR panels: for ir in MR panels:     # the macro-kernel
#                   C[ic+ir : +MR, jc+jr : +NR] (+)= micro-kernel over kc
#
# The first K block writes C (or adds, when accumulate), the later ones add. Block sizes are
# balanced (k = 784 runs as 4 blocks of 196, not 3 x 256 + 16) so no block is a sliver.
#
# Small problems (m*n*k <= DIRECT_MAX) skip all of this on AVX-512 and AVX2: tgl_small_f32/f64
# read A and B through their strides (small_gemm.h), when their layout allows it. The Python
# entry for them, with nothing in between (no workspace, cached per-shape plans), is small.pxi.
#
# Threads: C is cut into one slab per thread -- column slabs (whole NR panels) when n >= m, else
# row slabs (whole MR panels) -- and each thread runs the loops above on its slab with its own
# packing buffers. Threads never wait for each other inside a call (one fork, one join), which
# keeps two threads fast even when the machine is shared and a thread gets descheduled.

cdef enum:
    SMALL_GEMM = 96 * 96 * 128  # m*n*k below this runs on one thread (a wake-up costs more)
    DIRECT_MAX = 64 * 64 * 64   # m*n*k up to this skips packing (small_gemm.h)
    KC_F32 = 256
    NC_F32 = 1024
    MC_F32 = 144
    KC_F64 = 192
    NC_F64 = 512
    MC_F64 = 96

cdef inline int _cdiv(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return <int>((a + b - 1) // b)

cdef inline int _balanced(Py_ssize_t size, int most, int multiple) noexcept nogil:
    """The block size <= most (rounded up to a multiple) that splits size into equal blocks."""
    cdef int blocks = _cdiv(size, most)
    cdef int b = _cdiv(_cdiv(size, blocks), multiple) * multiple
    return b if b > 0 else multiple

cdef size_t _thread_ws_bytes(int dsize) noexcept nogil:
    """Packing buffers of one thread: a KC x NC block of B and a MC x KC block of A."""
    if dsize == 4:
        return _round64(<size_t>KC_F32 * NC_F32 * 4) + _round64(<size_t>KC_F32 * MC_F32 * 4)
    return _round64(<size_t>KC_F64 * NC_F64 * 8) + _round64(<size_t>KC_F64 * MC_F64 * 8)

cdef size_t gemm_workspace_bytes(int dsize, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                                 int threads) noexcept nogil:
    """Bytes gemm_core needs for this many threads."""
    return _thread_ws_bytes(dsize) * (threads if threads > 1 else 1)


cdef void _gemm_serial(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                       const floating* a, ptrdiff_t rsa, ptrdiff_t csa,
                       const floating* b, ptrdiff_t rsb, ptrdiff_t csb,
                       floating* c, ptrdiff_t ldc, ptrdiff_t csc, bint accumulate,
                       char* ws, const tgl_kernel_info* K) noexcept nogil:
    """The five loops on one thread; m, n, k > 0; C(i, j) at c[i*ldc + j*csc].
    ws: _thread_ws_bytes, 64-byte aligned. K: the caller's snapshot of the kernel table."""
    cdef int mr = K.mr, nr, kcb, ncb, mcb, kc, nc, mc, beta
    cdef int simd = K.pack_simd
    cdef Py_ssize_t jc, pc, ic
    cdef floating* pb = <floating*>ws
    cdef floating* pa
    if floating is float:
        nr = K.nr
        kcb = _balanced(k, KC_F32, 1)
        ncb = _balanced(n, NC_F32, nr)
        mcb = _balanced(m, MC_F32, mr)
    else:
        nr = K.nr_f64
        kcb = _balanced(k, KC_F64, 1)
        ncb = _balanced(n, NC_F64, nr)
        mcb = _balanced(m, MC_F64, mr)
    pa = <floating*>(ws + _round64(<size_t>kcb * ncb * sizeof(floating)))
    jc = 0
    while jc < n:
        nc = <int>(n - jc if n - jc < ncb else ncb)
        pc = 0
        while pc < k:
            kc = <int>(k - pc if k - pc < kcb else kcb)
            beta = 1 if (accumulate or pc > 0) else 0
            if floating is float:
                tgl_pack_b_f32(simd, nr, nc, kc, b + pc * rsb + jc * csb, rsb, csb, pb, 0, nc)
            else:
                tgl_pack_b_f64(simd, nr, nc, kc, b + pc * rsb + jc * csb, rsb, csb, pb, 0, nc)
            ic = 0
            while ic < m:
                mc = <int>(m - ic if m - ic < mcb else mcb)
                if floating is float:
                    tgl_pack_a_f32(simd, mr, mc, kc, a + ic * rsa + pc * csa, rsa, csa, pa)
                    tgl_macro_kernel_f32(K, K.ukr_f32, mr, nr, mc, nc, kc, pa, pb,
                                         c + ic * ldc + jc * csc, ldc, csc, beta)
                else:
                    tgl_pack_a_f64(simd, mr, mc, kc, a + ic * rsa + pc * csa, rsa, csa, pa)
                    tgl_macro_kernel_f64(K, K.ukr_f64, mr, nr, mc, nc, kc, pa, pb,
                                         c + ic * ldc + jc * csc, ldc, csc, beta)
                ic += mc
            pc += kc
        jc += nc


cdef void gemm_core(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                    const floating* a, ptrdiff_t rsa, ptrdiff_t csa,
                    const floating* b, ptrdiff_t rsb, ptrdiff_t csb,
                    floating* c, ptrdiff_t ldc, bint accumulate, int threads,
                    char* ws, const tgl_kernel_info* K) noexcept nogil:
    """The blocked GEMM (loops above). ws: gemm_workspace_bytes(...) bytes, 64-byte aligned.
    K: a snapshot of _K taken by the def entry point (never _K itself: see set_isa)."""
    cdef Py_ssize_t i
    cdef int nr
    if m <= 0 or n <= 0:
        return
    if k <= 0:                                   # an empty sum: C = 0 (or unchanged)
        if not accumulate:
            for i in range(m):
                memset(c + i * ldc, 0, n * sizeof(floating))
        return
    # Small problems: packing would cost as much as the FLOPs (see small_gemm.h).
    if floating is float:
        if m * n * k <= DIRECT_MAX and tgl_small_f32(K.isa, <int>m, <int>n, <int>k, a, rsa, csa,
                                                     b, rsb, csb, c, ldc, accumulate):
            return
        nr = K.nr
    else:
        if m * n * k <= DIRECT_MAX and tgl_small_f64(K.isa, <int>m, <int>n, <int>k, a, rsa, csa,
                                                     b, rsb, csb, c, ldc, accumulate):
            return
        nr = K.nr_f64
    if _swap_pays(m, n, K.mr, nr):
        # C^T = op(B)^T op(A)^T: the thin n goes on the MR axis, C is written transposed.
        _gemm_threads(n, m, k, b, csb, rsb, a, csa, rsa, c, 1, ldc, accumulate, threads, ws, K)
    else:
        _gemm_threads(m, n, k, a, rsa, csa, b, rsb, csb, c, ldc, 1, accumulate, threads, ws, K)


cdef inline bint _swap_pays(Py_ssize_t m, Py_ssize_t n, int mr, int nr) noexcept nogil:
    """True when n is thin: padding n to NR wastes much more than padding it to MR would."""
    cdef Py_ssize_t plain = <Py_ssize_t>_cdiv(m, mr) * mr * _cdiv(n, nr) * nr
    cdef Py_ssize_t swapped = <Py_ssize_t>_cdiv(n, mr) * mr * _cdiv(m, nr) * nr
    return n < nr and 2 * swapped < plain


cdef void _gemm_threads(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                        const floating* a, ptrdiff_t rsa, ptrdiff_t csa,
                        const floating* b, ptrdiff_t rsb, ptrdiff_t csb,
                        floating* c, ptrdiff_t ldc, ptrdiff_t csc, bint accumulate, int threads,
                        char* ws, const tgl_kernel_info* K) noexcept nogil:
    """Cut C into one slab per thread and run _gemm_serial on each (no barriers inside)."""
    cdef Py_ssize_t lo, hi
    cdef int t, slabs, unit, nunits
    cdef bint by_cols
    cdef size_t per = _thread_ws_bytes(sizeof(floating))
    if threads <= 1:
        _gemm_serial(m, n, k, a, rsa, csa, b, rsb, csb, c, ldc, csc, accumulate, ws, K)
        return
    by_cols = n >= m
    if floating is float:
        unit = K.nr if by_cols else K.mr
    else:
        unit = K.nr_f64 if by_cols else K.mr
    nunits = _cdiv(n if by_cols else m, unit)
    slabs = threads if threads < nunits else nunits
    if slabs <= 1:
        _gemm_serial(m, n, k, a, rsa, csa, b, rsb, csb, c, ldc, csc, accumulate, ws, K)
        return
    for t in prange(slabs, num_threads=slabs, schedule="static"):
        lo = <Py_ssize_t>(nunits * t // slabs) * unit
        hi = <Py_ssize_t>(nunits * (t + 1) // slabs) * unit
        if by_cols:
            if hi > n:
                hi = n
            _gemm_serial(m, hi - lo, k, a, rsa, csa, b + lo * csb, rsb, csb, c + lo * csc, ldc,
                         csc, accumulate, ws + t * per, K)
        else:
            if hi > m:
                hi = m
            _gemm_serial(hi - lo, n, k, a + lo * rsa, rsa, csa, b, rsb, csb, c + lo * ldc, ldc,
                         csc, accumulate, ws + t * per, K)


cdef inline void _strides(bint trans, Py_ssize_t ld, ptrdiff_t* rs, ptrdiff_t* cs) noexcept nogil:
    # A C-contiguous stored matrix with row length ld; op() = transpose swaps the strides.
    if trans:
        rs[0] = 1
        cs[0] = ld
    else:
        rs[0] = ld
        cs[0] = 1


cdef inline bint _overlap(const void* p, size_t pn, const void* q, size_t qn) noexcept nogil:
    """True when the byte ranges [p, p+pn) and [q, q+qn) intersect (both non-empty)."""
    cdef size_t a = <size_t>p, b = <size_t>q
    return pn > 0 and qn > 0 and a < b + qn and b < a + pn


cdef int _gemm_check(str op, Py_ssize_t ar, Py_ssize_t ac, Py_ssize_t br, Py_ssize_t bc,
                     Py_ssize_t om, Py_ssize_t on, bint trans_a, bint trans_b,
                     const void* pa, const void* pb, const void* po, size_t itemsize) except -1:
    """O(1) checks of one GEMM call: op(A) (m, k), op(B) (k, n), out (m, n), out not overlapping
    an input (the K loop would read values it already wrote). Raises ValueError."""
    cdef Py_ssize_t m = ac if trans_a else ar, k = ar if trans_a else ac
    cdef Py_ssize_t k2 = bc if trans_b else br, n = br if trans_b else bc
    if k != k2 or m != om or n != on:
        raise ValueError(f"{op}: shapes do not fit, got op(A) {(m, k)}, op(B) {(k2, n)} and out "
                         f"{(om, on)}; need op(A) (m, k), op(B) (k, n), out (m, n)")
    if (_overlap(po, om * on * itemsize, pa, ar * ac * itemsize)
            or _overlap(po, om * on * itemsize, pb, br * bc * itemsize)):
        raise ValueError(f"{op}: out overlaps an input in memory; pass a separate out array")
    return 0


def gemm(const floating[:, ::1] A, const floating[:, ::1] B, bint trans_a, bint trans_b,
         floating[:, ::1] out, bint accumulate=False, int threads=1):
    """out = op(A) @ op(B)  (out += ... when accumulate), op = transpose when the flag is set.

    A, B, out: C-contiguous, one dtype (float32 or float64); op(A) is (m, k), op(B) is (k, n),
    out is (m, n) and shares no memory with A or B (else ValueError, checked in O(1) before any
    work). Runs the packed, blocked GEMM with ``threads`` OpenMP threads and the GIL released.
    """
    cdef Py_ssize_t m = out.shape[0], n = out.shape[1]
    cdef Py_ssize_t k = A.shape[0] if trans_a else A.shape[1]
    cdef ptrdiff_t rsa, csa, rsb, csb
    cdef const floating* pa = &A[0, 0] if A.shape[0] * A.shape[1] else NULL
    cdef const floating* pb = &B[0, 0] if B.shape[0] * B.shape[1] else NULL
    cdef floating* po = &out[0, 0] if m * n else NULL
    _gemm_check("gemm", A.shape[0], A.shape[1], B.shape[0], B.shape[1], m, n, trans_a, trans_b,
                pa, pb, po, sizeof(floating))
    cdef tgl_kernel_info K = _K          # one snapshot per call (see set_isa)
    _strides(trans_a, A.shape[1], &rsa, &csa)
    _strides(trans_b, B.shape[1], &rsb, &csb)
    if m == 0 or n == 0:
        return
    if k == 0 or m * n * k < SMALL_GEMM:
        threads = 1        # not worth a parallel region
    cdef _Workspace ws = _ws_acquire()
    cdef char* buf
    try:
        buf = ws.ensure(gemm_workspace_bytes(sizeof(floating), m, n, k, threads))
        with nogil:
            gemm_core(m, n, k, pa, rsa, csa, pb, rsb, csb, po, n, accumulate, threads, buf, &K)
    finally:
        _ws_release(ws)
    return


def gemm_naive(const floating[:, ::1] A, const floating[:, ::1] B, bint trans_a, bint trans_b,
               floating[:, ::1] out, bint accumulate=False):
    """The textbook triple loop (no blocking, no SIMD, one thread) -- same contract as gemm.

        for i < m: for j < n:
            out[i, j] = sum_p op(A)[i, p] * op(B)[p, j]   (+ out[i, j] when accumulate)
    """
    cdef Py_ssize_t m = out.shape[0], n = out.shape[1]
    cdef Py_ssize_t k = A.shape[0] if trans_a else A.shape[1]
    cdef ptrdiff_t rsa, csa, rsb, csb
    cdef const floating* pa = &A[0, 0] if A.shape[0] * A.shape[1] else NULL
    cdef const floating* pb = &B[0, 0] if B.shape[0] * B.shape[1] else NULL
    cdef floating* po = &out[0, 0] if m * n else NULL
    _gemm_check("gemm_naive", A.shape[0], A.shape[1], B.shape[0], B.shape[1], m, n, trans_a,
                trans_b, pa, pb, po, sizeof(floating))
    _strides(trans_a, A.shape[1], &rsa, &csa)
    _strides(trans_b, B.shape[1], &rsb, &csb)
    if m == 0 or n == 0:
        return
    with nogil:
        if floating is float:
            tgl_gemm_naive_f32(<int>m, <int>n, <int>k, pa, rsa, csa, pb, rsb, csb, po, n,
                               accumulate)
        else:
            tgl_gemm_naive_f64(<int>m, <int>n, <int>k, pa, rsa, csa, pb, rsb, csb, po, n,
                               accumulate)
    return


# ================================================================ geometry checks ==========

cdef int _window_check(str op, Py_ssize_t H, Py_ssize_t W, int kh, int kw, int sh, int sw, int ph,
                       int pw, int dh, int dw, Py_ssize_t OH, Py_ssize_t OW) except -1:
    """O(1): window sizes, strides, dilations >= 1, paddings >= 0, and (OH, OW) the output size
    of an (H, W) input under them. Raises ValueError (the entry points call it with the GIL)."""
    cdef Py_ssize_t nh, nw
    if kh < 1 or kw < 1 or sh < 1 or sw < 1 or dh < 1 or dw < 1 or ph < 0 or pw < 0:
        raise ValueError(f"{op}: bad window, got kernel {(kh, kw)}, stride {(sh, sw)}, padding "
                         f"{(ph, pw)}, dilation {(dh, dw)}; need kernel, stride, dilation >= 1 "
                         "and padding >= 0")
    nh = H + 2 * ph - <Py_ssize_t>dh * (kh - 1) - 1
    nw = W + 2 * pw - <Py_ssize_t>dw * (kw - 1) - 1
    if nh < 0 or nw < 0:
        raise ValueError(f"{op}: kernel larger than the padded input, got input {(H, W)}, kernel "
                         f"{(kh, kw)}, padding {(ph, pw)}, dilation {(dh, dw)}")
    if OH != nh // sh + 1 or OW != nw // sw + 1:
        raise ValueError(f"{op}: output size must be {(nh // sh + 1, nw // sw + 1)} for input "
                         f"{(H, W)}, got {(OH, OW)}")
    return 0


cdef int _conv_check(str op, tuple x, tuple w, tuple y, int groups) except -1:
    """O(1): x (N, C, H, W), w (O, C/groups, kh, kw), y (N, O, OH, OW) fit each other."""
    if groups < 1 or w[0] % groups or x[1] != w[1] * groups or y[0] != x[0] or y[1] != w[0]:
        raise ValueError(f"{op}: shapes do not fit, got x {x}, w {w}, y {y}, groups {groups}; "
                         "need x (N, C, H, W), w (O, C/groups, kh, kw), y (N, O, OH, OW)")
    return 0


include "small.pxi"
include "winograd.pxi"
include "conv.pxi"
include "pool.pxi"
include "optim.pxi"
include "fused.pxi"
include "rnn.pxi"
include "probe.pxi"
include "quant.pxi"
include "check.pxi"
