/*
 * pool_kernels.h -- max pooling with the 2x2 window, stride 2, no padding (float32, float64):
 * the pool of nearly every small CNN, in one branch-free pass.
 *
 * For output (p, q) the window is a = x[2p, 2q], b = x[2p, 2q+1], c = x[2p+1, 2q],
 * d = x[2p+1, 2q+1]; the winner is the first maximum in that (row-major) order, and a NaN wins
 * (the first NaN), as numpy.argmax and the generic loop in pool.pxi:
 *
 *     best = a;  for v in b, c, d:  if v > best or (v is NaN and best is not): best = v
 *
 * The generic loop's data-dependent branches mispredict on real data (about half the
 * comparisons): 10-20 ns per output. Here the AVX2 path runs the same rule on eight outputs at
 * a time with compare masks and blends (deinterleaving the even and odd columns with shuffles),
 * and the scalar path (other ISAs, float64, the last columns of a row) uses selects.
 */
#ifndef TGL_POOL_KERNELS_H
#define TGL_POOL_KERNELS_H

#include <stdint.h>
#include "gemm_kernels.h"

#define TGL_MP_TAKE(v, best) (((v) > (best)) | (((v) != (v)) & ((best) == (best))))

#define TGL_DEFINE_MP2_SCALAR(NAME, T)                                                            \
    static void NAME(const T *x, T *y, int64_t *idx, int W, int OH, int OW, int q0) {            \
        for (int p = 0; p < OH; p++) {                                                            \
            const T *r0 = x + (ptrdiff_t)2 * p * W, *r1 = r0 + W;                                 \
            int64_t base = (int64_t)2 * p * W;                                                    \
            for (int q = q0; q < OW; q++) {                                                       \
                T best = r0[2 * q], v;                                                            \
                int64_t bi = 0;                                                                   \
                int t;                                                                            \
                v = r0[2 * q + 1]; t = TGL_MP_TAKE(v, best);                                      \
                best = t ? v : best; bi = t ? 1 : bi;                                             \
                v = r1[2 * q]; t = TGL_MP_TAKE(v, best);                                          \
                best = t ? v : best; bi = t ? W : bi;                                             \
                v = r1[2 * q + 1]; t = TGL_MP_TAKE(v, best);                                      \
                best = t ? v : best; bi = t ? W + 1 : bi;                                         \
                y[(ptrdiff_t)p * OW + q] = best;                                                  \
                idx[(ptrdiff_t)p * OW + q] = base + 2 * q + bi;                                   \
            }                                                                                     \
        }                                                                                         \
    }
TGL_DEFINE_MP2_SCALAR(tgl_max_pool2x2_f32_scalar, float)
TGL_DEFINE_MP2_SCALAR(tgl_max_pool2x2_f64_scalar, double)

#if TGL_X86 && defined(__GNUC__)
__attribute__((target("avx2,fma"))) static inline __m256 tgl_mp_take8(__m256 v, __m256 best) {
    __m256 gt = _mm256_cmp_ps(v, best, _CMP_GT_OQ);
    __m256 vnan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
    __m256 bnan = _mm256_cmp_ps(best, best, _CMP_UNORD_Q);
    return _mm256_or_ps(gt, _mm256_andnot_ps(bnan, vnan));
}

__attribute__((target("avx2,fma"))) static void tgl_max_pool2x2_f32_avx2(
    const float *x, float *y, int64_t *idx, int W, int OH, int OW) {
    const __m256i lane2 = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    const __m256i one = _mm256_set1_epi32(1), ow = _mm256_set1_epi32(W);
    const __m256i ow1 = _mm256_set1_epi32(W + 1);
    int qv = OW - OW % 8;
    for (int p = 0; p < OH; p++) {
        const float *r0 = x + (ptrdiff_t)2 * p * W, *r1 = r0 + W;
        float *yr = y + (ptrdiff_t)p * OW;
        int64_t *ir = idx + (ptrdiff_t)p * OW;
        for (int q = 0; q < qv; q += 8) {
            __m256 lo0 = _mm256_loadu_ps(r0 + 2 * q), hi0 = _mm256_loadu_ps(r0 + 2 * q + 8);
            __m256 lo1 = _mm256_loadu_ps(r1 + 2 * q), hi1 = _mm256_loadu_ps(r1 + 2 * q + 8);
            /* evens / odds of 16 columns, back in column order (shuffle works per 128 bits) */
            __m256 a = _mm256_castpd_ps(_mm256_permute4x64_pd(
                _mm256_castps_pd(_mm256_shuffle_ps(lo0, hi0, _MM_SHUFFLE(2, 0, 2, 0))), 0xD8));
            __m256 b = _mm256_castpd_ps(_mm256_permute4x64_pd(
                _mm256_castps_pd(_mm256_shuffle_ps(lo0, hi0, _MM_SHUFFLE(3, 1, 3, 1))), 0xD8));
            __m256 c = _mm256_castpd_ps(_mm256_permute4x64_pd(
                _mm256_castps_pd(_mm256_shuffle_ps(lo1, hi1, _MM_SHUFFLE(2, 0, 2, 0))), 0xD8));
            __m256 d = _mm256_castpd_ps(_mm256_permute4x64_pd(
                _mm256_castps_pd(_mm256_shuffle_ps(lo1, hi1, _MM_SHUFFLE(3, 1, 3, 1))), 0xD8));
            __m256 best = a, t;
            __m256i bi = _mm256_setzero_si256();
            t = tgl_mp_take8(b, best);
            best = _mm256_blendv_ps(best, b, t);
            bi = _mm256_blendv_epi8(bi, one, _mm256_castps_si256(t));
            t = tgl_mp_take8(c, best);
            best = _mm256_blendv_ps(best, c, t);
            bi = _mm256_blendv_epi8(bi, ow, _mm256_castps_si256(t));
            t = tgl_mp_take8(d, best);
            best = _mm256_blendv_ps(best, d, t);
            bi = _mm256_blendv_epi8(bi, ow1, _mm256_castps_si256(t));
            _mm256_storeu_ps(yr + q, best);
            /* flat index 2p*W + 2q + lane*2 + bi, widened to int64 */
            __m256i k = _mm256_add_epi32(_mm256_add_epi32(bi, lane2),
                                         _mm256_set1_epi32(2 * p * W + 2 * q));
            _mm256_storeu_si256((__m256i *)(ir + q),
                                _mm256_cvtepi32_epi64(_mm256_castsi256_si128(k)));
            _mm256_storeu_si256((__m256i *)(ir + q + 4),
                                _mm256_cvtepi32_epi64(_mm256_extracti128_si256(k, 1)));
        }
    }
    if (qv < OW)
        tgl_max_pool2x2_f32_scalar(x, y, idx, W, OH, OW, qv);
}
#endif

/* One (H x W) plane -> (OH x OW) y and idx (flat h*W + w of each winner); 2*OH <= H, 2*OW <= W,
 * and the flat indices fit an int (the caller's planes are indexed with int). */
static void tgl_max_pool2x2_f32(int isa, const float *x, float *y, int64_t *idx, int W, int OH,
                                int OW) {
#if TGL_X86 && defined(__GNUC__)
    if (isa != TGL_ISA_GENERIC) {
        tgl_max_pool2x2_f32_avx2(x, y, idx, W, OH, OW);
        return;
    }
#endif
    (void)isa;
    tgl_max_pool2x2_f32_scalar(x, y, idx, W, OH, OW, 0);
}

static void tgl_max_pool2x2_f64(int isa, const double *x, double *y, int64_t *idx, int W, int OH,
                                int OW) {
    (void)isa;
    tgl_max_pool2x2_f64_scalar(x, y, idx, W, OH, OW, 0);
}

#endif /* TGL_POOL_KERNELS_H */
