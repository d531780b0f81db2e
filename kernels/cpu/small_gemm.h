/*
 * small_gemm.h -- direct (unpacked) GEMM kernels for small problems, float32 and float64,
 * AVX-512 and AVX2 (included at the end of gemm_kernels.h).
 *
 * For tiny GEMMs (the MLP's N = 10 layers: 64x128x10 and friends, m*n*k <= 64^3) packing costs
 * as much as the FLOPs, so these read A and B through their strides (any strides: transposed and
 * non-contiguous operands need no copy) and keep a tile of C in registers:
 *
 *   row form (B rows contiguous, csb == 1), an R x 2W tile of C (W = lanes of one vector):
 *       for p < k:  b0, b1 = B[p, j:j+2W]  (masked at the n edge)
 *                   for i < R:  acc[i] += A(i, p) (broadcast) * (b0, b1)
 *     R is 8, 4, 2 or 1 (AVX-512) / 4, 2, 1 (AVX2), largest first: at least 4 independent
 *     accumulators, so FMA latency never limits the short k loops.
 *
 *   dot form (A and B both contiguous along k: csa == 1, rsb == 1; needs k >= W), a 4 x Q tile
 *   (Q <= 4 columns, so n = 10 runs as 4 + 4 + 2 with no wasted lanes):
 *       for p < k step W:  acc[i][j] += A[i, p:p+W] * B[p:p+W, j]   (lane-wise, masked tail)
 *       C(i, j) = sum of the lanes of acc[i][j]     (four sums reduced together)
 *
 * tgl_small_f32 / tgl_small_f64 return 0 (touching nothing) when the ISA is generic or the
 * layout is neither form; the caller then packs as usual. Each tgl_small_plan_* does the same
 * choice once, so a cached plan (small.pxi) can skip it.
 */
#ifndef TGL_SMALL_GEMM_H
#define TGL_SMALL_GEMM_H

#define TGL_SMALL_NONE 0
#define TGL_SMALL_ROWS 1
#define TGL_SMALL_DOT 2

/* Which direct form fits this layout (TGL_SMALL_NONE: pack instead). w: lanes per vector. */
static inline int tgl_small_form(int isa, int w, int k, ptrdiff_t csa, ptrdiff_t rsb,
                                 ptrdiff_t csb) {
    if (isa == TGL_ISA_GENERIC) return TGL_SMALL_NONE;
    if (csb == 1) return TGL_SMALL_ROWS;
    if (csa == 1 && rsb == 1 && k >= w) return TGL_SMALL_DOT;
    return TGL_SMALL_NONE;
}

#if TGL_HAVE_SIMD_KERNELS

static const int tgl_mask32_table[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
static const long long tgl_mask64_table[8] = {-1, -1, -1, -1, 0, 0, 0, 0};

/* ---- one set of vector operations per (ISA, dtype); S_* names are (re)defined per block ---- */
/* S_MASK(w): the mask of the first w lanes (0 <= w <= S_W); S_MLOAD/S_MSTORE use it.         */

/* Row form: rows R, columns j .. j+2W (w0, w1 valid lanes in the two vectors). */
#define TGL_SMALL_ROWS_FN(NAME, R)                                                             \
    S_ATTR static void NAME(int k, int n, const S_T *a, ptrdiff_t rsa, ptrdiff_t csa,          \
                            const S_T *b, ptrdiff_t rsb, S_T *c, ptrdiff_t ldc, int beta) {    \
        for (int j = 0; j < n; j += 2 * S_W) {                                                 \
            int w = n - j < 2 * S_W ? n - j : 2 * S_W;                                         \
            int w0 = w < S_W ? w : S_W, w1 = w - w0;                                           \
            S_MT m0 = S_MASK(w0), m1 = S_MASK(w1);                                             \
            S_VT acc0[R], acc1[R];                                                             \
            for (int i = 0; i < R; i++) { acc0[i] = S_ZERO(); acc1[i] = S_ZERO(); }            \
            const S_T *bp = b + j;                                                             \
            if (w == 2 * S_W) {                                                                \
                for (int p = 0; p < k; p++) {                                                  \
                    S_VT b0 = S_LOADU(bp + p * rsb), b1 = S_LOADU(bp + p * rsb + S_W);         \
                    for (int i = 0; i < R; i++) {                                              \
                        S_VT av = S_SET1(a[i * rsa + p * csa]);                                \
                        acc0[i] = S_FMA(av, b0, acc0[i]);                                      \
                        acc1[i] = S_FMA(av, b1, acc1[i]);                                      \
                    }                                                                          \
                }                                                                              \
            } else if (w1 == 0) {                                                              \
                for (int p = 0; p < k; p++) {                                                  \
                    S_VT b0 = S_MLOAD(m0, bp + p * rsb);                                       \
                    for (int i = 0; i < R; i++)                                                \
                        acc0[i] = S_FMA(S_SET1(a[i * rsa + p * csa]), b0, acc0[i]);            \
                }                                                                              \
            } else {                                                                           \
                for (int p = 0; p < k; p++) {                                                  \
                    S_VT b0 = S_LOADU(bp + p * rsb), b1 = S_MLOAD(m1, bp + p * rsb + S_W);     \
                    for (int i = 0; i < R; i++) {                                              \
                        S_VT av = S_SET1(a[i * rsa + p * csa]);                                \
                        acc0[i] = S_FMA(av, b0, acc0[i]);                                      \
                        acc1[i] = S_FMA(av, b1, acc1[i]);                                      \
                    }                                                                          \
                }                                                                              \
            }                                                                                  \
            for (int i = 0; i < R; i++) {                                                      \
                S_T *cc = c + i * ldc + j;                                                     \
                if (beta) {                                                                    \
                    acc0[i] = S_ADD(acc0[i], S_MLOAD(m0, cc));                                 \
                    acc1[i] = S_ADD(acc1[i], S_MLOAD(m1, cc + S_W));                           \
                }                                                                              \
                S_MSTORE(cc, m0, acc0[i]);                                                     \
                if (w1) S_MSTORE(cc + S_W, m1, acc1[i]);                                       \
            }                                                                                  \
        }                                                                                      \
    }

/* Dot form: rows i0 .. i0+4 (clamped: rows past m repeat a valid one and are not stored),
   Q columns j0 .. j0+Q (all valid). */
#define TGL_SMALL_DOT_FN(NAME, Q)                                                              \
    S_ATTR static void NAME(int m, int i0, int j0, int k, const S_T *a, ptrdiff_t rsa,         \
                            const S_T *b, ptrdiff_t csb, S_T *c, ptrdiff_t ldc, int beta) {    \
        const S_T *ar[4], *bc[Q];                                                              \
        for (int r = 0; r < 4; r++) ar[r] = a + (i0 + r < m ? i0 + r : i0) * rsa;              \
        for (int q = 0; q < Q; q++) bc[q] = b + (j0 + q) * csb;                                \
        S_VT acc[4][4];                                                                        \
        for (int r = 0; r < 4; r++)                                                            \
            for (int q = 0; q < 4; q++) acc[r][q] = S_ZERO();                                  \
        int p = 0;                                                                             \
        for (; p + S_W <= k; p += S_W) {                                                       \
            S_VT bv[Q];                                                                        \
            for (int q = 0; q < Q; q++) bv[q] = S_LOADU(bc[q] + p);                            \
            for (int r = 0; r < 4; r++) {                                                      \
                S_VT av = S_LOADU(ar[r] + p);                                                  \
                for (int q = 0; q < Q; q++) acc[r][q] = S_FMA(av, bv[q], acc[r][q]);           \
            }                                                                                  \
        }                                                                                      \
        if (p < k) {                                                                           \
            S_MT mt = S_MASK(k - p);                                                           \
            S_VT bv[Q];                                                                        \
            for (int q = 0; q < Q; q++) bv[q] = S_MLOAD(mt, bc[q] + p);                        \
            for (int r = 0; r < 4; r++) {                                                      \
                S_VT av = S_MLOAD(mt, ar[r] + p);                                              \
                for (int q = 0; q < Q; q++) acc[r][q] = S_FMA(av, bv[q], acc[r][q]);           \
            }                                                                                  \
        }                                                                                      \
        for (int r = 0; r < 4 && i0 + r < m; r++) {                                            \
            S_T s[4];                                                                          \
            S_REDUCE4(acc[r][0], acc[r][1], acc[r][2], acc[r][3], s);                          \
            S_T *d = c + (i0 + r) * ldc + j0;                                                  \
            for (int q = 0; q < Q; q++) d[q] = beta ? d[q] + s[q] : s[q];                      \
        }                                                                                      \
    }

/* The driver of one (ISA, dtype): row tiles largest first, or dot tiles 4 x (4 | n % 4). */
#define TGL_SMALL_DRIVER(NAME, ROWS, DOT)                                                      \
    S_ATTR static void NAME(int form, int m, int n, int k, const S_T *a, ptrdiff_t rsa,        \
                            ptrdiff_t csa, const S_T *b, ptrdiff_t rsb, ptrdiff_t csb,         \
                            S_T *c, ptrdiff_t ldc, int beta) {                                 \
        if (form == TGL_SMALL_ROWS) {                                                          \
            int i = 0;                                                                         \
            ROWS                                                                               \
            return;                                                                            \
        }                                                                                      \
        for (int i0 = 0; i0 < m; i0 += 4) {                                                    \
            int j0 = 0;                                                                        \
            for (; j0 + 4 <= n; j0 += 4) DOT##4(m, i0, j0, k, a, rsa, b, csb, c, ldc, beta);  \
            switch (n - j0) {                                                                  \
            case 3: DOT##3(m, i0, j0, k, a, rsa, b, csb, c, ldc, beta); break;                 \
            case 2: DOT##2(m, i0, j0, k, a, rsa, b, csb, c, ldc, beta); break;                 \
            case 1: DOT##1(m, i0, j0, k, a, rsa, b, csb, c, ldc, beta); break;                 \
            default: break;                                                                    \
            }                                                                                  \
        }                                                                                      \
    }

#define TGL_ROWS_STEP(FN, R)                                                                   \
    for (; i + R <= m; i += R) FN(k, n, a + i * rsa, rsa, csa, b, rsb, c + i * ldc, ldc, beta);

/* ============================== AVX-512 float32 ============================== */
#define S_ATTR __attribute__((target("avx512f,fma")))
#define S_T float
#define S_VT __m512
#define S_MT __mmask16
#define S_W 16
#define S_MASK(w) ((__mmask16)((w) >= 16 ? 0xFFFF : (1u << (w)) - 1))
#define S_ZERO _mm512_setzero_ps
#define S_LOADU _mm512_loadu_ps
#define S_MLOAD(mk, p) _mm512_maskz_loadu_ps(mk, p)
#define S_MSTORE(p, mk, v) _mm512_mask_storeu_ps(p, mk, v)
#define S_SET1 _mm512_set1_ps
#define S_FMA _mm512_fmadd_ps
#define S_ADD _mm512_add_ps
/* the lane sums of four accumulators: add interleaved halves, then the four 128-bit lanes */
#define S_REDUCE4(x0, x1, x2, x3, out)                                                         \
    do {                                                                                       \
        __m512 s01 = _mm512_add_ps(_mm512_unpacklo_ps(x0, x1), _mm512_unpackhi_ps(x0, x1));    \
        __m512 s23 = _mm512_add_ps(_mm512_unpacklo_ps(x2, x3), _mm512_unpackhi_ps(x2, x3));    \
        __m512d lo = _mm512_unpacklo_pd(_mm512_castps_pd(s01), _mm512_castps_pd(s23));         \
        __m512d hi = _mm512_unpackhi_pd(_mm512_castps_pd(s01), _mm512_castps_pd(s23));         \
        __m512 t = _mm512_add_ps(_mm512_castpd_ps(lo), _mm512_castpd_ps(hi));                  \
        _mm_storeu_ps(out, _mm_add_ps(                                                         \
            _mm_add_ps(_mm512_extractf32x4_ps(t, 0), _mm512_extractf32x4_ps(t, 1)),            \
            _mm_add_ps(_mm512_extractf32x4_ps(t, 2), _mm512_extractf32x4_ps(t, 3))));          \
    } while (0)
TGL_SMALL_ROWS_FN(tgl_srows8_avx512_f32, 8)
TGL_SMALL_ROWS_FN(tgl_srows4_avx512_f32, 4)
TGL_SMALL_ROWS_FN(tgl_srows2_avx512_f32, 2)
TGL_SMALL_ROWS_FN(tgl_srows1_avx512_f32, 1)
TGL_SMALL_DOT_FN(tgl_sdot_avx512_f32_4, 4)
TGL_SMALL_DOT_FN(tgl_sdot_avx512_f32_3, 3)
TGL_SMALL_DOT_FN(tgl_sdot_avx512_f32_2, 2)
TGL_SMALL_DOT_FN(tgl_sdot_avx512_f32_1, 1)
TGL_SMALL_DRIVER(tgl_small_avx512_f32,
                 TGL_ROWS_STEP(tgl_srows8_avx512_f32, 8) TGL_ROWS_STEP(tgl_srows4_avx512_f32, 4)
                 TGL_ROWS_STEP(tgl_srows2_avx512_f32, 2) TGL_ROWS_STEP(tgl_srows1_avx512_f32, 1),
                 tgl_sdot_avx512_f32_)
#undef S_T
#undef S_VT
#undef S_MT
#undef S_W
#undef S_MASK
#undef S_ZERO
#undef S_LOADU
#undef S_MLOAD
#undef S_MSTORE
#undef S_SET1
#undef S_FMA
#undef S_ADD
#undef S_REDUCE4

/* ============================== AVX-512 float64 ============================== */
#define S_T double
#define S_VT __m512d
#define S_MT __mmask8
#define S_W 8
#define S_MASK(w) ((__mmask8)((w) >= 8 ? 0xFF : (1u << (w)) - 1))
#define S_ZERO _mm512_setzero_pd
#define S_LOADU _mm512_loadu_pd
#define S_MLOAD(mk, p) _mm512_maskz_loadu_pd(mk, p)
#define S_MSTORE(p, mk, v) _mm512_mask_storeu_pd(p, mk, v)
#define S_SET1 _mm512_set1_pd
#define S_FMA _mm512_fmadd_pd
#define S_ADD _mm512_add_pd
#define S_REDUCE4(x0, x1, x2, x3, out)                                                         \
    do {                                                                                       \
        out[0] = _mm512_reduce_add_pd(x0); out[1] = _mm512_reduce_add_pd(x1);                  \
        out[2] = _mm512_reduce_add_pd(x2); out[3] = _mm512_reduce_add_pd(x3);                  \
    } while (0)
TGL_SMALL_ROWS_FN(tgl_srows8_avx512_f64, 8)
TGL_SMALL_ROWS_FN(tgl_srows4_avx512_f64, 4)
TGL_SMALL_ROWS_FN(tgl_srows2_avx512_f64, 2)
TGL_SMALL_ROWS_FN(tgl_srows1_avx512_f64, 1)
TGL_SMALL_DOT_FN(tgl_sdot_avx512_f64_4, 4)
TGL_SMALL_DOT_FN(tgl_sdot_avx512_f64_3, 3)
TGL_SMALL_DOT_FN(tgl_sdot_avx512_f64_2, 2)
TGL_SMALL_DOT_FN(tgl_sdot_avx512_f64_1, 1)
TGL_SMALL_DRIVER(tgl_small_avx512_f64,
                 TGL_ROWS_STEP(tgl_srows8_avx512_f64, 8) TGL_ROWS_STEP(tgl_srows4_avx512_f64, 4)
                 TGL_ROWS_STEP(tgl_srows2_avx512_f64, 2) TGL_ROWS_STEP(tgl_srows1_avx512_f64, 1),
                 tgl_sdot_avx512_f64_)
#undef S_ATTR
#undef S_T
#undef S_VT
#undef S_MT
#undef S_W
#undef S_MASK
#undef S_ZERO
#undef S_LOADU
#undef S_MLOAD
#undef S_MSTORE
#undef S_SET1
#undef S_FMA
#undef S_ADD
#undef S_REDUCE4

/* ============================== AVX2 float32 ============================== */
#define S_ATTR __attribute__((target("avx2,fma")))
#define S_T float
#define S_VT __m256
#define S_MT __m256i
#define S_W 8
#define S_MASK(w) _mm256_loadu_si256((const __m256i *)(tgl_mask32_table + 8 - (w)))
#define S_ZERO _mm256_setzero_ps
#define S_LOADU _mm256_loadu_ps
#define S_MLOAD(mk, p) _mm256_maskload_ps(p, mk)
#define S_MSTORE(p, mk, v) _mm256_maskstore_ps(p, mk, v)
#define S_SET1 _mm256_set1_ps
#define S_FMA _mm256_fmadd_ps
#define S_ADD _mm256_add_ps
#define S_REDUCE4(x0, x1, x2, x3, out)                                                         \
    do {                                                                                       \
        __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(x0, x1), _mm256_hadd_ps(x2, x3));             \
        _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));\
    } while (0)
TGL_SMALL_ROWS_FN(tgl_srows4_avx2_f32, 4)
TGL_SMALL_ROWS_FN(tgl_srows2_avx2_f32, 2)
TGL_SMALL_ROWS_FN(tgl_srows1_avx2_f32, 1)
TGL_SMALL_DOT_FN(tgl_sdot_avx2_f32_4, 4)
TGL_SMALL_DOT_FN(tgl_sdot_avx2_f32_3, 3)
TGL_SMALL_DOT_FN(tgl_sdot_avx2_f32_2, 2)
TGL_SMALL_DOT_FN(tgl_sdot_avx2_f32_1, 1)
TGL_SMALL_DRIVER(tgl_small_avx2_f32,
                 TGL_ROWS_STEP(tgl_srows4_avx2_f32, 4) TGL_ROWS_STEP(tgl_srows2_avx2_f32, 2)
                 TGL_ROWS_STEP(tgl_srows1_avx2_f32, 1),
                 tgl_sdot_avx2_f32_)
#undef S_T
#undef S_VT
#undef S_MT
#undef S_W
#undef S_MASK
#undef S_ZERO
#undef S_LOADU
#undef S_MLOAD
#undef S_MSTORE
#undef S_SET1
#undef S_FMA
#undef S_ADD
#undef S_REDUCE4

/* ============================== AVX2 float64 ============================== */
#define S_T double
#define S_VT __m256d
#define S_MT __m256i
#define S_W 4
#define S_MASK(w) _mm256_loadu_si256((const __m256i *)(tgl_mask64_table + 4 - (w)))
#define S_ZERO _mm256_setzero_pd
#define S_LOADU _mm256_loadu_pd
#define S_MLOAD(mk, p) _mm256_maskload_pd(p, mk)
#define S_MSTORE(p, mk, v) _mm256_maskstore_pd(p, mk, v)
#define S_SET1 _mm256_set1_pd
#define S_FMA _mm256_fmadd_pd
#define S_ADD _mm256_add_pd
/* hadd pairs within 128-bit lanes, then add the swapped lanes to the blended ones */
#define S_REDUCE4(x0, x1, x2, x3, out)                                                         \
    do {                                                                                       \
        __m256d h01 = _mm256_hadd_pd(x0, x1), h23 = _mm256_hadd_pd(x2, x3);                    \
        _mm256_storeu_pd(out, _mm256_add_pd(_mm256_permute2f128_pd(h01, h23, 0x21),            \
                                            _mm256_blend_pd(h01, h23, 0xC)));                  \
    } while (0)
TGL_SMALL_ROWS_FN(tgl_srows4_avx2_f64, 4)
TGL_SMALL_ROWS_FN(tgl_srows2_avx2_f64, 2)
TGL_SMALL_ROWS_FN(tgl_srows1_avx2_f64, 1)
TGL_SMALL_DOT_FN(tgl_sdot_avx2_f64_4, 4)
TGL_SMALL_DOT_FN(tgl_sdot_avx2_f64_3, 3)
TGL_SMALL_DOT_FN(tgl_sdot_avx2_f64_2, 2)
TGL_SMALL_DOT_FN(tgl_sdot_avx2_f64_1, 1)
TGL_SMALL_DRIVER(tgl_small_avx2_f64,
                 TGL_ROWS_STEP(tgl_srows4_avx2_f64, 4) TGL_ROWS_STEP(tgl_srows2_avx2_f64, 2)
                 TGL_ROWS_STEP(tgl_srows1_avx2_f64, 1),
                 tgl_sdot_avx2_f64_)
#undef S_ATTR
#undef S_T
#undef S_VT
#undef S_MT
#undef S_W
#undef S_MASK
#undef S_ZERO
#undef S_LOADU
#undef S_MLOAD
#undef S_MSTORE
#undef S_SET1
#undef S_FMA
#undef S_ADD
#undef S_REDUCE4

/* Run a form chosen by tgl_small_form (a cached plan) on this ISA. m, n, k >= 1. */
static void tgl_small_run_f32(int isa, int form, int m, int n, int k, const float *a,
                              ptrdiff_t rsa, ptrdiff_t csa, const float *b, ptrdiff_t rsb,
                              ptrdiff_t csb, float *c, ptrdiff_t ldc, int beta) {
    if (isa == TGL_ISA_AVX512)
        tgl_small_avx512_f32(form, m, n, k, a, rsa, csa, b, rsb, csb, c, ldc, beta);
    else
        tgl_small_avx2_f32(form, m, n, k, a, rsa, csa, b, rsb, csb, c, ldc, beta);
}

static void tgl_small_run_f64(int isa, int form, int m, int n, int k, const double *a,
                              ptrdiff_t rsa, ptrdiff_t csa, const double *b, ptrdiff_t rsb,
                              ptrdiff_t csb, double *c, ptrdiff_t ldc, int beta) {
    if (isa == TGL_ISA_AVX512)
        tgl_small_avx512_f64(form, m, n, k, a, rsa, csa, b, rsb, csb, c, ldc, beta);
    else
        tgl_small_avx2_f64(form, m, n, k, a, rsa, csa, b, rsb, csb, c, ldc, beta);
}

#else /* no SIMD kernels: every layout packs */
#define tgl_small_run_f32(isa, form, m, n, k, a, rsa, csa, b, rsb, csb, c, ldc, beta) ((void)0)
#define tgl_small_run_f64(isa, form, m, n, k, a, rsa, csa, b, rsb, csb, c, ldc, beta) ((void)0)
#endif

/* The lanes of one vector of this ISA for a dtype of dsize bytes (0 for generic). */
static inline int tgl_small_lanes(int isa, int dsize) {
    int bytes = isa == TGL_ISA_AVX512 ? 64 : isa == TGL_ISA_AVX2 ? 32 : 0;
    return bytes / dsize;
}

/* The direct GEMM: C (m x n, row stride ldc) (+)= op(A) op(B); 1 when done, 0 when the layout
   has no direct kernel (then nothing was touched). m, n, k >= 1. */
static int tgl_small_f32(int isa, int m, int n, int k, const float *a, ptrdiff_t rsa,
                         ptrdiff_t csa, const float *b, ptrdiff_t rsb, ptrdiff_t csb, float *c,
                         ptrdiff_t ldc, int beta) {
    int form = TGL_HAVE_SIMD_KERNELS ? tgl_small_form(isa, tgl_small_lanes(isa, 4), k, csa, rsb,
                                                      csb) : TGL_SMALL_NONE;
    if (form == TGL_SMALL_NONE) return 0;
    tgl_small_run_f32(isa, form, m, n, k, a, rsa, csa, b, rsb, csb, c, ldc, beta);
    return 1;
}

static int tgl_small_f64(int isa, int m, int n, int k, const double *a, ptrdiff_t rsa,
                         ptrdiff_t csa, const double *b, ptrdiff_t rsb, ptrdiff_t csb, double *c,
                         ptrdiff_t ldc, int beta) {
    int form = TGL_HAVE_SIMD_KERNELS ? tgl_small_form(isa, tgl_small_lanes(isa, 8), k, csa, rsb,
                                                      csb) : TGL_SMALL_NONE;
    if (form == TGL_SMALL_NONE) return 0;
    tgl_small_run_f64(isa, form, m, n, k, a, rsa, csa, b, rsb, csb, c, ldc, beta);
    return 1;
}

#endif /* TGL_SMALL_GEMM_H */
