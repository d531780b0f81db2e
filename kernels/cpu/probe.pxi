# probe.pxi -- machine probes for the benchmarks (included by _cpu.pyx): the FMA throughput of
# the ISA variant the GEMM uses, and the memory bandwidth of a STREAM triad.
#
# Peak FLOP/s. A GEMM micro-kernel is a block of independent multiply-adds on accumulators that
# stay in registers; its ceiling is how many of those the core retires per second. The probe is
# that loop and nothing else:
#
#     c[j] = 1 + j/1024                      for j < 12  (12 vector accumulators)
#     repeat iters times:
#         for j < 12:  c[j] = c[j] * a + b   (one FMA each; the 12 chains are independent)
#
# Twelve chains hide the FMA latency (4-5 cycles) on two FMA ports (8-10 in flight are needed).
# a and b arrive at run time (the caller passes 1 - 1e-6 and 1e-7), so the compiler cannot fold
# the loop, and c stays finite and normal (it converges to b / (1 - a)). Each FMA is
# 2 x lanes flops: AVX-512 16 floats / 8 doubles, AVX2 8 / 4. The "generic" variant is the loop of
# the generic 4 x 8 micro-kernel itself (plain C, which the compiler turns into SSE2 mul + add at
# baseline x86-64: there is no FMA there) over panels that stay in L1. Which variant runs follows
# _cpu.set_isa / TINYGRAD_LITE_CPU_ISA, like the GEMM.
#
# Bandwidth: the STREAM triad a[i] = b[i] + s * c[i] over float64 arrays much larger than the
# last-level cache (the caller sizes them), cut into one contiguous block per thread. STREAM
# counts 24 bytes per element (two reads, one write; the write-allocate read is not counted).
#
# Timing: each thread reads its own CPU clock (CLOCK_THREAD_CPUTIME_ID) and the monotonic wall
# clock around its loop, and the functions return (CPU seconds, wall start, wall end) per thread;
# the caller (tinygrad_lite/bench/machine.py) adds up the threads' rates. On a shared machine a
# thread that another process preempts stops its CPU clock meanwhile, so the probe measures what
# the cores can do, not how busy the machine was (the wall clock of a 2-thread region on 2 loaded
# cores is the slower thread's, often less than 1 thread's rate). The wall stamps let the caller
# keep only calls where the threads really ran at the same time (which matters for bandwidth, a
# shared resource). Where there is no such clock the values are -1: the caller times the call.

cdef extern from *:
    """
    #include <stddef.h>
    #if (defined(__x86_64__) || defined(_M_X64) || defined(__i386__)) && \
        (defined(__GNUC__) || defined(__clang__))
    #define TGL_PROBE_X86 1
    #include <immintrin.h>
    #else
    #define TGL_PROBE_X86 0
    #endif

    #if defined(__unix__) || defined(__APPLE__)
    #include <time.h>
    #endif

    #define TGL_PROBE_ACC 12

    /* CPU seconds of the calling thread, or -1 where there is no per-thread clock. */
    static double tgl_thread_seconds(void) {
    #if (defined(__unix__) || defined(__APPLE__)) && defined(CLOCK_THREAD_CPUTIME_ID)
        struct timespec ts;
        if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0)
            return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
    #endif
        return -1.0;
    }

    /* Monotonic wall-clock seconds, or -1. */
    static double tgl_wall_seconds(void) {
    #if (defined(__unix__) || defined(__APPLE__)) && defined(CLOCK_MONOTONIC)
        struct timespec ts;
        if (clock_gettime(CLOCK_MONOTONIC, &ts) == 0)
            return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
    #endif
        return -1.0;
    }

    /* NAME(iters, a, b): the 12-chain FMA loop on W-lane vectors; returns the sum of the
       accumulators (the caller keeps it, so the loop is never dead code). */
    #define TGL_FMA_LOOP(NAME, T, VT, W, ATTR, SET1, FMA, ADD, STORE)                       \
        ATTR static T NAME(long iters, T a, T b) {                                          \
            const VT va = SET1(a), vb = SET1(b);                                            \
            VT c[TGL_PROBE_ACC];                                                            \
            T buf[W], r = 0;                                                                \
            _Pragma("GCC unroll 12")                                                        \
            for (int j = 0; j < TGL_PROBE_ACC; j++) c[j] = SET1((T)1 + (T)j / 1024);         \
            for (long it = 0; it < iters; it++) {                                           \
                _Pragma("GCC unroll 12")                                                    \
                for (int j = 0; j < TGL_PROBE_ACC; j++) c[j] = FMA(c[j], va, vb);           \
            }                                                                               \
            _Pragma("GCC unroll 12")                                                        \
            for (int j = 1; j < TGL_PROBE_ACC; j++) c[0] = ADD(c[0], c[j]);                 \
            STORE(buf, c[0]);                                                               \
            for (int j = 0; j < W; j++) r += buf[j];                                        \
            return r;                                                                       \
        }

    #if TGL_PROBE_X86
    TGL_FMA_LOOP(tgl_fma_avx512_f32, float, __m512, 16, __attribute__((target("avx512f,fma"))),
                 _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, _mm512_storeu_ps)
    TGL_FMA_LOOP(tgl_fma_avx512_f64, double, __m512d, 8, __attribute__((target("avx512f,fma"))),
                 _mm512_set1_pd, _mm512_fmadd_pd, _mm512_add_pd, _mm512_storeu_pd)
    TGL_FMA_LOOP(tgl_fma_avx2_f32, float, __m256, 8, __attribute__((target("avx2,fma"))),
                 _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, _mm256_storeu_ps)
    TGL_FMA_LOOP(tgl_fma_avx2_f64, double, __m256d, 4, __attribute__((target("avx2,fma"))),
                 _mm256_set1_pd, _mm256_fmadd_pd, _mm256_add_pd, _mm256_storeu_pd)
    #endif

    /* The generic variant: the loop of the generic 4 x 8 micro-kernel (plain C; no FMA at
       baseline x86-64, so the compiler emits SSE2 mul + add), over 64-deep panels that stay in
       L1. One iteration is 64 rank-1 updates: 64 * 4 * 8 multiply-adds. */
    #define TGL_GENERIC_LOOP(NAME, T)                                                       \
        static T NAME(long iters, T a, T b) {                                               \
            T pa[64 * 4], pb[64 * 8], acc[4][8], r = 0;                                     \
            for (int q = 0; q < 64 * 4; q++) pa[q] = a * (T)(q % 7 + 1);                    \
            for (int q = 0; q < 64 * 8; q++) pb[q] = b * (T)(q % 5 + 1);                    \
            for (int i = 0; i < 4; i++)                                                     \
                for (int j = 0; j < 8; j++) acc[i][j] = 0;                                  \
            for (long it = 0; it < iters; it++)                                             \
                for (int p = 0; p < 64; p++)                                                \
                    for (int i = 0; i < 4; i++)                                             \
                        for (int j = 0; j < 8; j++) acc[i][j] += pa[p * 4 + i] * pb[p * 8 + j]; \
            for (int i = 0; i < 4; i++)                                                     \
                for (int j = 0; j < 8; j++) r += acc[i][j];                                 \
            return r;                                                                       \
        }
    TGL_GENERIC_LOOP(tgl_fma_generic_f32, float)
    TGL_GENERIC_LOOP(tgl_fma_generic_f64, double)

    /* Flops per iteration of the variant's loop (0: the variant is not compiled here). */
    static long tgl_fma_flops_per_iter(int isa, int dsize) {
    #if TGL_PROBE_X86
        if (isa == 2) return 2L * TGL_PROBE_ACC * (64 / dsize);
        if (isa == 1) return 2L * TGL_PROBE_ACC * (32 / dsize);
    #endif
        return isa == 0 ? 2L * 64 * 4 * 8 : 0;
    }

    /* Run the loop of one ISA variant (0 generic, 1 AVX2, 2 AVX-512) and dtype size. */
    static double tgl_fma_run(int isa, int dsize, long iters, double a, double b) {
    #if TGL_PROBE_X86
        if (isa == 2) return dsize == 4 ? tgl_fma_avx512_f32(iters, (float)a, (float)b)
                                        : tgl_fma_avx512_f64(iters, a, b);
        if (isa == 1) return dsize == 4 ? tgl_fma_avx2_f32(iters, (float)a, (float)b)
                                        : tgl_fma_avx2_f64(iters, a, b);
    #endif
        return dsize == 4 ? tgl_fma_generic_f32(iters, (float)a, (float)b)
                          : tgl_fma_generic_f64(iters, a, b);
    }

    /* STREAM triad on [lo, hi): a[i] = b[i] + s * c[i]. */
    static void tgl_triad(double *a, const double *b, const double *c, double s,
                          ptrdiff_t lo, ptrdiff_t hi) {
        for (ptrdiff_t i = lo; i < hi; i++) a[i] = b[i] + s * c[i];
    }
    """
    double tgl_thread_seconds() nogil
    double tgl_wall_seconds() nogil
    long tgl_fma_flops_per_iter(int isa, int dsize) nogil
    double tgl_fma_run(int isa, int dsize, long iters, double a, double b) nogil
    void tgl_triad(double* a, const double* b, const double* c, double s,
                   ptrdiff_t lo, ptrdiff_t hi) nogil


_probe_sink = 0.0


cdef double[::1] _zeros_f64(Py_ssize_t n):
    import array

    return array.array("d", [0.0] * n)


cdef list _clocks(double[::1] c0, double[::1] c1, double[::1] w0, double[::1] w1):
    """Per thread (CPU seconds, wall start, wall end); -1 where a clock is missing."""
    return [(c1[i] - c0[i] if c0[i] >= 0 and c1[i] >= 0 else -1.0, w0[i], w1[i])
            for i in range(c0.shape[0])]


def fma_probe(dtype, long iters, int threads=1):
    """Run the FMA-throughput loop of the current ISA variant (``isa()``) on ``threads`` threads
    at once, ``iters`` iterations each. Returns (flops done by each thread, [(CPU seconds, wall
    start, wall end) of each thread]) -- -1 where the OS lacks the clock: then time the call.
    The sum of flops / CPU seconds over the threads is their peak.

    dtype: 'float32' or 'float64'. The sum of the accumulators is kept in a module attribute, so
    the loop cannot be optimized away."""
    cdef int dsize
    if dtype in ("float32", "f4", "f32"):
        dsize = 4
    elif dtype in ("float64", "f8", "f64"):
        dsize = 8
    else:
        raise ValueError(f"fma_probe: dtype must be 'float32' or 'float64', got {dtype!r}")
    if iters < 1 or threads < 1:
        raise ValueError(f"fma_probe: iters and threads must be positive, got iters={iters}, "
                         f"threads={threads}")
    cdef int isa_code = _K.isa
    cdef long per_iter = tgl_fma_flops_per_iter(isa_code, dsize)
    cdef double[::1] sink = _zeros_f64(threads)
    cdef double[::1] c0 = _zeros_f64(threads)
    cdef double[::1] c1 = _zeros_f64(threads)
    cdef double[::1] w0 = _zeros_f64(threads)
    cdef double[::1] w1 = _zeros_f64(threads)
    cdef int t
    with nogil:
        for t in prange(threads, num_threads=threads, schedule="static", chunksize=1):
            w0[t] = tgl_wall_seconds()
            c0[t] = tgl_thread_seconds()
            sink[t] = tgl_fma_run(isa_code, dsize, iters, 1.0 - 1e-6, 1e-7)
            c1[t] = tgl_thread_seconds()
            w1[t] = tgl_wall_seconds()
    global _probe_sink
    _probe_sink = sum(sink)
    return float(per_iter) * iters, _clocks(c0, c1, w0, w1)


def stream_triad(double[::1] a, const double[::1] b, const double[::1] c, double s,
                 int threads=1):
    """a[i] = b[i] + s * c[i], one contiguous block per thread (the STREAM triad: 24 bytes move
    per element). Returns [(elements, CPU seconds, wall start, wall end) of each thread] (-1
    where the OS lacks the clock: then time the call)."""
    cdef Py_ssize_t n = a.shape[0]
    if b.shape[0] != n or c.shape[0] != n:
        raise ValueError(f"stream_triad: arrays differ in length, got {n}, {b.shape[0]}, "
                         f"{c.shape[0]}")
    if threads < 1:
        raise ValueError(f"stream_triad: threads must be positive, got {threads}")
    cdef Py_ssize_t per = (n + threads - 1) // threads
    cdef double[::1] c0 = _zeros_f64(threads)
    cdef double[::1] c1 = _zeros_f64(threads)
    cdef double[::1] w0 = _zeros_f64(threads)
    cdef double[::1] w1 = _zeros_f64(threads)
    cdef int t
    if n == 0:
        return [(0, 0.0, 0.0, 0.0)] * threads
    with nogil:
        for t in prange(threads, num_threads=threads, schedule="static", chunksize=1):
            w0[t] = tgl_wall_seconds()
            c0[t] = tgl_thread_seconds()
            tgl_triad(&a[0], &b[0], &c[0], s, min(n, t * per), min(n, (t + 1) * per))
            c1[t] = tgl_thread_seconds()
            w1[t] = tgl_wall_seconds()
    return [(max(0, min(n, (i + 1) * per) - min(n, i * per)),) + clk
            for i, clk in enumerate(_clocks(c0, c1, w0, w1))]
