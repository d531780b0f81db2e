/*
 * gemm_kernels.h -- register-blocked GEMM micro-kernels and packing routines (float32, float64).
 *
 * The blocked driver (the five Goto/BLIS loops and the OpenMP split) lives in _cpu.pyx; this header
 * holds what is ISA-specific or needs a fixed-size register tile:
 *
 *   micro-kernel ukr(kc, pa, pb, c, ldc, beta) computes one MR x NR tile of C from packed panels:
 *
 *       for i < MR, j < NR:  acc[i][j] = 0
 *       for p < kc:                                   # one rank-1 update per k
 *           for i < MR, j < NR:
 *               acc[i][j] += pa[p*MR + i] * pb[p*NR + j]
 *       for i < MR, j < NR:
 *           c[i*ldc + j] = acc[i][j] + (beta ? c[i*ldc + j] : 0)
 *
 *   pa is an MR-tall micro-panel of A stored k-major (MR values per k), pb an NR-wide micro-panel
 *   of B stored k-major (NR values per k); both zero-padded at the matrix edges, so the kernel
 *   never tests bounds. The accumulator tile stays in registers:
 *     AVX-512: 12 x 32 floats / 12 x 16 doubles  = 24 zmm accumulators (+2 B vectors, 1 A broadcast)
 *     AVX2   :  6 x 16 floats /  6 x  8 doubles  = 12 ymm accumulators
 *     generic:  4 x  8 plain C (the compiler uses SSE2 at baseline x86-64)
 *
 * Portability: the file is compiled for baseline x86-64; every ISA kernel carries a
 * __attribute__((target(...))) so only it may use AVX instructions, and _cpu.pyx picks one at
 * import with __builtin_cpu_supports (or the env var TINYGRAD_LITE_CPU_ISA).
 *
 * No process-wide state: the chosen kernels (and whether packing may use SIMD) live in a
 * tgl_kernel_info that each GEMM call copies once and passes down, so switching the ISA from
 * another thread (set_isa) never changes MR/NR under a running GEMM.
 *
 * Threads (in _cpu.pyx): C is cut into one slab per thread -- column slabs (whole NR panels) when
 * n >= m, else row slabs (whole MR panels); each thread runs all five loops on its slab with its
 * own packing buffers, so with column slabs every thread packs all of A (cheap next to the
 * FLOPs at the sizes where threads pay off) and no thread ever waits for another.
 *
 * Assumptions: no aliasing between A, B and C; ldc >= NR for full tiles; callers (_cpu.pyx)
 * handle partial edge tiles by running the kernel into a scratch tile (macro_kernel below).
 */
#ifndef TGL_GEMM_KERNELS_H
#define TGL_GEMM_KERNELS_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#define TGL_X86 1
#include <immintrin.h>
#else
#define TGL_X86 0
#endif

#define TGL_ISA_GENERIC 0
#define TGL_ISA_AVX2 1
#define TGL_ISA_AVX512 2

/* The largest tile any kernel uses; scratch edge tiles are sized by it. */
#define TGL_MAX_MR 12
#define TGL_MAX_NR 32

typedef void (*tgl_ukr_f32)(int kc, const float *pa, const float *pb, float *c, ptrdiff_t ldc,
                            int beta);
typedef void (*tgl_ukr_f64)(int kc, const double *pa, const double *pb, double *c, ptrdiff_t ldc,
                            int beta);

/* ------------------------------------------------------------------------------------------ */
/* CPU feature detection                                                                       */
/* ------------------------------------------------------------------------------------------ */

static int tgl_cpu_best_isa(void) {
#if TGL_X86 && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma")) return TGL_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return TGL_ISA_AVX2;
#endif
    return TGL_ISA_GENERIC;
}

static int tgl_openmp_enabled(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

/* ------------------------------------------------------------------------------------------ */
/* Aligned workspace                                                                           */
/* ------------------------------------------------------------------------------------------ */

static void *tgl_aligned_alloc(size_t bytes) {
    void *p = NULL;
    if (bytes == 0) bytes = 64;
    if (posix_memalign(&p, 64, bytes) != 0) return NULL;
    return p;
}

static void tgl_aligned_free(void *p) { free(p); }

/* ------------------------------------------------------------------------------------------ */
/* Generic micro-kernel: 4 x 8, plain C                                                        */
/* ------------------------------------------------------------------------------------------ */

#define TGL_GENERIC_UKR(NAME, T)                                                              \
    static void NAME(int kc, const T *pa, const T *pb, T *c, ptrdiff_t ldc, int beta) {       \
        T acc[4][8];                                                                           \
        for (int i = 0; i < 4; i++)                                                            \
            for (int j = 0; j < 8; j++) acc[i][j] = 0;                                         \
        for (int p = 0; p < kc; p++) {                                                         \
            const T *a = pa + (ptrdiff_t)p * 4, *b = pb + (ptrdiff_t)p * 8;                    \
            for (int i = 0; i < 4; i++)                                                        \
                for (int j = 0; j < 8; j++) acc[i][j] += a[i] * b[j];                          \
        }                                                                                      \
        for (int i = 0; i < 4; i++)                                                            \
            for (int j = 0; j < 8; j++)                                                        \
                c[i * ldc + j] = beta ? c[i * ldc + j] + acc[i][j] : acc[i][j];                \
    }

TGL_GENERIC_UKR(tgl_ukr_generic_f32, float)
TGL_GENERIC_UKR(tgl_ukr_generic_f64, double)

#if TGL_X86 && (defined(__GNUC__) || defined(__clang__))

/* ------------------------------------------------------------------------------------------ */
/* AVX2 micro-kernels: 6 x (2 ymm)                                                             */
/* ------------------------------------------------------------------------------------------ */
/* One macro body serves both dtypes: VT vector type, W lanes, SFX ps/pd, and the ISA prefix.  */

#define TGL_AVX2_UKR(NAME, T, VT, W, LOAD, LOADU, STOREU, BCAST, FMA, ADD, ZERO)               \
    __attribute__((target("avx2,fma"))) static void NAME(int kc, const T *pa, const T *pb,    \
                                                          T *c, ptrdiff_t ldc, int beta) {     \
        VT c00 = ZERO(), c01 = ZERO(), c10 = ZERO(), c11 = ZERO(), c20 = ZERO(), c21 = ZERO(); \
        VT c30 = ZERO(), c31 = ZERO(), c40 = ZERO(), c41 = ZERO(), c50 = ZERO(), c51 = ZERO(); \
        for (int i = 0; i < 6; i++) _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);    \
        for (int p = 0; p < kc; p++) {                                                         \
            VT b0 = LOAD(pb), b1 = LOAD(pb + W), a;                                           \
            a = BCAST(pa + 0); c00 = FMA(a, b0, c00); c01 = FMA(a, b1, c01);                   \
            a = BCAST(pa + 1); c10 = FMA(a, b0, c10); c11 = FMA(a, b1, c11);                   \
            a = BCAST(pa + 2); c20 = FMA(a, b0, c20); c21 = FMA(a, b1, c21);                   \
            a = BCAST(pa + 3); c30 = FMA(a, b0, c30); c31 = FMA(a, b1, c31);                   \
            a = BCAST(pa + 4); c40 = FMA(a, b0, c40); c41 = FMA(a, b1, c41);                   \
            a = BCAST(pa + 5); c50 = FMA(a, b0, c50); c51 = FMA(a, b1, c51);                   \
            pa += 6; pb += 2 * W;                                                              \
        }                                                                                      \
        if (beta) {                                                                            \
            c00 = ADD(c00, LOADU(c + 0 * ldc)); c01 = ADD(c01, LOADU(c + 0 * ldc + W));        \
            c10 = ADD(c10, LOADU(c + 1 * ldc)); c11 = ADD(c11, LOADU(c + 1 * ldc + W));        \
            c20 = ADD(c20, LOADU(c + 2 * ldc)); c21 = ADD(c21, LOADU(c + 2 * ldc + W));        \
            c30 = ADD(c30, LOADU(c + 3 * ldc)); c31 = ADD(c31, LOADU(c + 3 * ldc + W));        \
            c40 = ADD(c40, LOADU(c + 4 * ldc)); c41 = ADD(c41, LOADU(c + 4 * ldc + W));        \
            c50 = ADD(c50, LOADU(c + 5 * ldc)); c51 = ADD(c51, LOADU(c + 5 * ldc + W));        \
        }                                                                                      \
        STOREU(c + 0 * ldc, c00); STOREU(c + 0 * ldc + W, c01);                                \
        STOREU(c + 1 * ldc, c10); STOREU(c + 1 * ldc + W, c11);                                \
        STOREU(c + 2 * ldc, c20); STOREU(c + 2 * ldc + W, c21);                                \
        STOREU(c + 3 * ldc, c30); STOREU(c + 3 * ldc + W, c31);                                \
        STOREU(c + 4 * ldc, c40); STOREU(c + 4 * ldc + W, c41);                                \
        STOREU(c + 5 * ldc, c50); STOREU(c + 5 * ldc + W, c51);                                \
    }

TGL_AVX2_UKR(tgl_ukr_avx2_f32, float, __m256, 8, _mm256_load_ps, _mm256_loadu_ps,
             _mm256_storeu_ps, _mm256_broadcast_ss, _mm256_fmadd_ps, _mm256_add_ps,
             _mm256_setzero_ps)
TGL_AVX2_UKR(tgl_ukr_avx2_f64, double, __m256d, 4, _mm256_load_pd, _mm256_loadu_pd,
             _mm256_storeu_pd, _mm256_broadcast_sd, _mm256_fmadd_pd, _mm256_add_pd,
             _mm256_setzero_pd)

/* ------------------------------------------------------------------------------------------ */
/* AVX-512 micro-kernels: 12 x (2 zmm)                                                         */
/* ------------------------------------------------------------------------------------------ */

/* The row macros use Z_* names that are defined just before each instantiation below. */
#define TGL_Z_FMA_ROW(i)                                                                       \
    a = Z_BCAST(pa + i); c##i##_0 = Z_FMA(a, b0, c##i##_0); c##i##_1 = Z_FMA(a, b1, c##i##_1);
#define TGL_Z_ADD_ROW(i)                                                                       \
    c##i##_0 = Z_ADD(c##i##_0, Z_LOADU(c + i * ldc));                                          \
    c##i##_1 = Z_ADD(c##i##_1, Z_LOADU(c + i * ldc + Z_W));
#define TGL_Z_STORE_ROW(i) Z_STOREU(c + i * ldc, c##i##_0); Z_STOREU(c + i * ldc + Z_W, c##i##_1);
#define TGL_Z_ALL(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11)
#define TGL_Z_ALL8(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7)
#define TGL_Z_ALL4(M) M(0) M(1) M(2) M(3)
#define TGL_Z_PREFETCH_ROW(i)                                                                  \
    _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);                                    \
    _mm_prefetch((const char *)(c + i * ldc + 2 * Z_W - 1), _MM_HINT_T0);

/* ROWS: the row list (12 for the full tile; 8 or 4 for the last, short panel of A -- the packed
   panel keeps its 12-value stride per k, the unused rows are simply not computed). */
#define TGL_AVX512_UKR(NAME, T, VT, ROWS)                                                      \
    __attribute__((target("avx512f,fma"))) static void NAME(int kc, const T *pa, const T *pb, \
                                                             T *c, ptrdiff_t ldc, int beta) {  \
        VT c0_0 = Z_ZERO(), c0_1 = Z_ZERO(), c1_0 = Z_ZERO(), c1_1 = Z_ZERO();                 \
        VT c2_0 = Z_ZERO(), c2_1 = Z_ZERO(), c3_0 = Z_ZERO(), c3_1 = Z_ZERO();                 \
        VT c4_0 = Z_ZERO(), c4_1 = Z_ZERO(), c5_0 = Z_ZERO(), c5_1 = Z_ZERO();                 \
        VT c6_0 = Z_ZERO(), c6_1 = Z_ZERO(), c7_0 = Z_ZERO(), c7_1 = Z_ZERO();                 \
        VT c8_0 = Z_ZERO(), c8_1 = Z_ZERO(), c9_0 = Z_ZERO(), c9_1 = Z_ZERO();                 \
        VT c10_0 = Z_ZERO(), c10_1 = Z_ZERO(), c11_0 = Z_ZERO(), c11_1 = Z_ZERO();             \
        ROWS(TGL_Z_PREFETCH_ROW)                                                               \
        for (int p = 0; p < kc; p++) {                                                         \
            VT b0 = Z_LOAD(pb), b1 = Z_LOAD(pb + Z_W), a;                                      \
            ROWS(TGL_Z_FMA_ROW)                                                                \
            pa += 12; pb += 2 * Z_W;                                                           \
        }                                                                                      \
        if (beta) { ROWS(TGL_Z_ADD_ROW) }                                                      \
        ROWS(TGL_Z_STORE_ROW)                                                                  \
    }

#define Z_W 16
#define Z_ZERO _mm512_setzero_ps
#define Z_LOAD _mm512_load_ps
#define Z_LOADU _mm512_loadu_ps
#define Z_STOREU _mm512_storeu_ps
#define Z_BCAST(p) _mm512_set1_ps(*(p))
#define Z_FMA _mm512_fmadd_ps
#define Z_ADD _mm512_add_ps
TGL_AVX512_UKR(tgl_ukr_avx512_f32, float, __m512, TGL_Z_ALL)
TGL_AVX512_UKR(tgl_ukr_avx512_r8_f32, float, __m512, TGL_Z_ALL8)
TGL_AVX512_UKR(tgl_ukr_avx512_r4_f32, float, __m512, TGL_Z_ALL4)
#undef Z_W
#undef Z_ZERO
#undef Z_LOAD
#undef Z_LOADU
#undef Z_STOREU
#undef Z_BCAST
#undef Z_FMA
#undef Z_ADD

#define Z_W 8
#define Z_ZERO _mm512_setzero_pd
#define Z_LOAD _mm512_load_pd
#define Z_LOADU _mm512_loadu_pd
#define Z_STOREU _mm512_storeu_pd
#define Z_BCAST(p) _mm512_set1_pd(*(p))
#define Z_FMA _mm512_fmadd_pd
#define Z_ADD _mm512_add_pd
TGL_AVX512_UKR(tgl_ukr_avx512_f64, double, __m512d, TGL_Z_ALL)
TGL_AVX512_UKR(tgl_ukr_avx512_r8_f64, double, __m512d, TGL_Z_ALL8)
TGL_AVX512_UKR(tgl_ukr_avx512_r4_f64, double, __m512d, TGL_Z_ALL4)
#undef Z_W
#undef Z_ZERO
#undef Z_LOAD
#undef Z_LOADU
#undef Z_STOREU
#undef Z_BCAST
#undef Z_FMA
#undef Z_ADD

/* ------------------------------------------------------------------------------------------ */
/* Transposing pack (float32, AVX2): the copy that turns rows into k-major panels             */
/* ------------------------------------------------------------------------------------------ */
/*
 * for p < kc: for i < P:  dst[p*P + i] = (i < nvalid) ? src[i*ld + p] : 0
 *
 * Used for a row-major A (MR rows -> k-major panel) and a transposed B (NR rows of the stored
 * N x K matrix -> k-major panel). Works on 8 x 8 tiles: load 8 rows of 8 k's, transpose in
 * registers (unpack / shuffle / permute), store 8 vectors of 8 row values. Scalar tail for k.
 */
__attribute__((target("avx2,fma"))) static void tgl_pack_transpose_f32_avx2(
    int P, int nvalid, int kc, const float *src, ptrdiff_t ld, float *dst) {
    int p = 0;
    for (; p + 8 <= kc; p += 8) {
        for (int i0 = 0; i0 < P; i0 += 8) {
            int r = P - i0 < 8 ? P - i0 : 8;          /* lanes to store */
            __m256 v[8];
            for (int i = 0; i < 8; i++)
                v[i] = (i0 + i < nvalid) ? _mm256_loadu_ps(src + (i0 + i) * ld + p)
                                         : _mm256_setzero_ps();
            __m256 t0 = _mm256_unpacklo_ps(v[0], v[1]), t1 = _mm256_unpackhi_ps(v[0], v[1]);
            __m256 t2 = _mm256_unpacklo_ps(v[2], v[3]), t3 = _mm256_unpackhi_ps(v[2], v[3]);
            __m256 t4 = _mm256_unpacklo_ps(v[4], v[5]), t5 = _mm256_unpackhi_ps(v[4], v[5]);
            __m256 t6 = _mm256_unpacklo_ps(v[6], v[7]), t7 = _mm256_unpackhi_ps(v[6], v[7]);
            __m256 u0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
            __m256 u1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
            __m256 u2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
            __m256 u3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
            __m256 u4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
            __m256 u5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
            __m256 u6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
            __m256 u7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
            __m256 o[8];
            o[0] = _mm256_permute2f128_ps(u0, u4, 0x20); o[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
            o[2] = _mm256_permute2f128_ps(u2, u6, 0x20); o[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
            o[4] = _mm256_permute2f128_ps(u0, u4, 0x31); o[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
            o[6] = _mm256_permute2f128_ps(u2, u6, 0x31); o[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
            float *d = dst + (ptrdiff_t)p * P + i0;
            if (r == 8) {
                for (int q = 0; q < 8; q++) _mm256_storeu_ps(d + q * P, o[q]);
            } else if (r == 4) {
                for (int q = 0; q < 8; q++) _mm_storeu_ps(d + q * P, _mm256_castps256_ps128(o[q]));
            } else {
                __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(r),
                                                  _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
                for (int q = 0; q < 8; q++) _mm256_maskstore_ps(d + q * P, mask, o[q]);
            }
        }
    }
    for (; p < kc; p++) {
        float *d = dst + (ptrdiff_t)p * P;
        for (int i = 0; i < nvalid; i++) d[i] = src[i * ld + p];
        for (int i = nvalid; i < P; i++) d[i] = 0;
    }
}

#define TGL_HAVE_SIMD_KERNELS 1
#else
#define TGL_HAVE_SIMD_KERNELS 0
#endif /* TGL_X86 */

/* ------------------------------------------------------------------------------------------ */
/* Kernel table                                                                                */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
    int isa, mr, nr;
    int pack_simd; /* float32 packing may use the AVX2 transposing copy */
    tgl_ukr_f32 ukr_f32;
    tgl_ukr_f64 ukr_f64;
    int nr_f64; /* double tiles hold half as many lanes per vector */
    /* short last panels of A: 4- and 8-row kernels (NULL where the ISA has none) */
    tgl_ukr_f32 ukr4_f32, ukr8_f32;
    tgl_ukr_f64 ukr4_f64, ukr8_f64;
} tgl_kernel_info;

static void tgl_select_kernel(int isa, tgl_kernel_info *k) {
    k->pack_simd = isa != TGL_ISA_GENERIC;
    k->ukr4_f32 = k->ukr8_f32 = NULL;
    k->ukr4_f64 = k->ukr8_f64 = NULL;
#if TGL_HAVE_SIMD_KERNELS
    if (isa == TGL_ISA_AVX512) {
        k->isa = isa; k->mr = 12; k->nr = 32; k->nr_f64 = 16;
        k->ukr_f32 = tgl_ukr_avx512_f32; k->ukr_f64 = tgl_ukr_avx512_f64;
        k->ukr4_f32 = tgl_ukr_avx512_r4_f32; k->ukr8_f32 = tgl_ukr_avx512_r8_f32;
        k->ukr4_f64 = tgl_ukr_avx512_r4_f64; k->ukr8_f64 = tgl_ukr_avx512_r8_f64;
        return;
    }
    if (isa == TGL_ISA_AVX2) {
        k->isa = isa; k->mr = 6; k->nr = 16; k->nr_f64 = 8;
        k->ukr_f32 = tgl_ukr_avx2_f32; k->ukr_f64 = tgl_ukr_avx2_f64;
        return;
    }
#endif
    k->isa = TGL_ISA_GENERIC; k->mr = 4; k->nr = 8; k->nr_f64 = 8;
    k->ukr_f32 = tgl_ukr_generic_f32; k->ukr_f64 = tgl_ukr_generic_f64;
}

/* ------------------------------------------------------------------------------------------ */
/* Packing and the macro-kernel, written once for both dtypes                                 */
/* ------------------------------------------------------------------------------------------ */
/*
 * Element (i, k) of op(A) is a[i*rsa + k*csa]; element (k, j) of op(B) is b[k*rsb + j*csb].
 * A transpose flag only swaps the two strides, so the packing absorbs it.
 *
 * pack_a(mc, kc):  for each MR-tall panel ip:   for p < kc: for i < MR:
 *                      dst[ip*kc + p*MR + i] = (ip+i < mc) ? A(ip+i, p) : 0
 * pack_b(kc, nc):  for each NR-wide panel jp:   for p < kc: for j < NR:
 *                      dst[jp*kc + p*NR + j] = (jp+j < nc) ? B(p, jp+j) : 0
 * macro_kernel:    for jp (NR panels of B): for ip (MR panels of A): ukr on tile (ip, jp);
 *                  edge tiles go through a scratch tile, then are copied / added into C.
 */

/* Copy exactly P values: constant sizes let the compiler emit vector moves, not a call. */
#define TGL_COPY_P(d, s, P, T)                                                                 \
    do {                                                                                       \
        switch (P) {                                                                           \
        case 4: memcpy(d, s, 4 * sizeof(T)); break;                                            \
        case 6: memcpy(d, s, 6 * sizeof(T)); break;                                            \
        case 8: memcpy(d, s, 8 * sizeof(T)); break;                                            \
        case 12: memcpy(d, s, 12 * sizeof(T)); break;                                          \
        case 16: memcpy(d, s, 16 * sizeof(T)); break;                                          \
        case 32: memcpy(d, s, 32 * sizeof(T)); break;                                          \
        default: memcpy(d, s, (size_t)(P) * sizeof(T));                                        \
        }                                                                                      \
    } while (0)

/* simd (tgl_kernel_info.pack_simd): use the AVX2 transposing packer for float32 (any SIMD ISA). */

#define TGL_DEFINE_PACK(SFX, T, TRANSPOSE)                                                     \
    /* one panel: for p < kc: for i < P: dst[p*P + i] = i < n ? X(i, p) : 0,                   \
       X(i, p) = src[i*rs + p*cs] */                                                           \
    static void tgl_pack_panel_##SFX(int simd, int P, int n, int kc, const T *src,             \
                                     ptrdiff_t rs, ptrdiff_t cs, T *dst) {                     \
        if (n == P && rs == 1) {                 /* k-major already: contiguous copies */      \
            for (int p = 0; p < kc; p++) TGL_COPY_P(dst + (ptrdiff_t)p * P, src + p * cs, P, T);\
            return;                                                                            \
        }                                                                                      \
        if (cs == 1 && TRANSPOSE(simd, P, n, kc, src, rs, dst)) return;                           \
        for (int p = 0; p < kc; p++) {                                                         \
            T *d = dst + (ptrdiff_t)p * P;                                                     \
            for (int i = 0; i < n; i++) d[i] = src[i * rs + p * cs];                           \
            for (int i = n; i < P; i++) d[i] = 0;                                              \
        }                                                                                      \
    }                                                                                          \
    static void tgl_pack_a_##SFX(int simd, int mr, int mc, int kc, const T *a, ptrdiff_t rsa, \
                                 ptrdiff_t csa, T *dst) {                                      \
        for (int ip = 0; ip < mc; ip += mr) {                                                  \
            int m = mc - ip < mr ? mc - ip : mr;                                               \
            tgl_pack_panel_##SFX(simd, mr, m, kc, a + ip * rsa, rsa, csa, dst + (ptrdiff_t)ip * kc);\
        }                                                                                      \
    }                                                                                          \
    /* pack the NR-wide panels [j0, j1) of a kc x nc block; B(p, j) = b[p*rsb + j*csb] */       \
    static void tgl_pack_b_##SFX(int simd, int nr, int nc, int kc, const T *b, ptrdiff_t rsb, \
                                 ptrdiff_t csb, T *dst, int j0, int j1) {                      \
        for (int jp = j0; jp < j1 && jp < nc; jp += nr) {                                      \
            int n = nc - jp < nr ? nc - jp : nr;                                               \
            tgl_pack_panel_##SFX(simd, nr, n, kc, b + jp * csb, csb, rsb, dst + (ptrdiff_t)jp * kc);\
        }                                                                                      \
    }                                                                                          \
    /* C(i, j) at c[i*ldc + j*csc]; csc != 1 (a transposed C) always goes through the tile. */ \
    static void tgl_macro_kernel_##SFX(const tgl_kernel_info *K, tgl_ukr_##SFX ukr, int mr,     \
                                       int nr, int mc, int nc, int kc, const T *pa,            \
                                       const T *pb, T *c, ptrdiff_t ldc, ptrdiff_t csc,        \
                                       int beta) {                                             \
        T tile[TGL_MAX_MR * TGL_MAX_NR] __attribute__((aligned(64)));                          \
        for (int jp = 0; jp < nc; jp += nr) {                                                  \
            int n = nc - jp < nr ? nc - jp : nr;                                               \
            const T *b = pb + (ptrdiff_t)jp * kc;                                              \
            for (int ip = 0; ip < mc; ip += mr) {                                              \
                int m = mc - ip < mr ? mc - ip : mr;                                           \
                const T *a = pa + (ptrdiff_t)ip * kc;                                          \
                T *cc = c + ip * ldc + jp * csc;                                               \
                tgl_ukr_##SFX u = ukr;                                                         \
                int rows = mr;                                                                 \
                if (m <= 4 && K->ukr4_##SFX) { u = K->ukr4_##SFX; rows = 4; }                  \
                else if (m <= 8 && K->ukr8_##SFX) { u = K->ukr8_##SFX; rows = 8; }             \
                if (m == rows && n == nr && csc == 1) {                                        \
                    u(kc, a, b, cc, ldc, beta);                                                \
                } else {                                                                       \
                    u(kc, a, b, tile, nr, 0);                                                  \
                    for (int i = 0; i < m; i++)                                                \
                        for (int j = 0; j < n; j++) {                                          \
                            T *d = cc + i * ldc + j * csc;                                     \
                            *d = beta ? *d + tile[i * nr + j] : tile[i * nr + j];              \
                        }                                                                      \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    /* gemm_naive: the textbook triple loop, for learners and as a second oracle.              \
         for i < m: for j < n: s = sum_p A(i,p) B(p,j);  C[i,j] = s + (beta ? C[i,j] : 0) */   \
    static void tgl_gemm_naive_##SFX(int m, int n, int k, const T *a, ptrdiff_t rsa,          \
                                     ptrdiff_t csa, const T *b, ptrdiff_t rsb, ptrdiff_t csb,  \
                                     T *c, ptrdiff_t ldc, int beta) {                          \
        for (int i = 0; i < m; i++)                                                            \
            for (int j = 0; j < n; j++) {                                                      \
                T s = 0;                                                                       \
                for (int p = 0; p < k; p++) s += a[i * rsa + p * csa] * b[p * rsb + j * csb];  \
                c[i * ldc + j] = beta ? c[i * ldc + j] + s : s;                                \
            }                                                                                  \
    }

#if TGL_HAVE_SIMD_KERNELS
static int tgl_transpose_f32(int simd, int P, int n, int kc, const float *src, ptrdiff_t ld,
                             float *dst) {
    if (!simd || kc < 8) return 0;
    tgl_pack_transpose_f32_avx2(P, n, kc, src, ld, dst);
    return 1;
}
#else
#define tgl_transpose_f32(simd, P, n, kc, src, ld, dst) 0
#endif
#define tgl_transpose_none(simd, P, n, kc, src, ld, dst) 0

TGL_DEFINE_PACK(f32, float, tgl_transpose_f32)
TGL_DEFINE_PACK(f64, double, tgl_transpose_none)

/* Direct (unpacked) kernels for small problems: small_gemm.h. */
#include "small_gemm.h"

#endif /* TGL_GEMM_KERNELS_H */
