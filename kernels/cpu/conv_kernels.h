/*
 * conv_kernels.h -- the B-packing routine of implicit-GEMM convolution (float32, float64).
 *
 * conv2d of one image and group is the GEMM  y (O x OH*OW) = w (O x K) . cols (K x OH*OW)  with
 * K = C*kh*kw and cols[(c, i, j), (oh, ow)] = x_pad[c, oh*sh + i*dh, ow*sw + j*dw]. im2col
 * writes cols out (K*OH*OW values, 1.2 MB per image for a 32-channel 32x32 3x3 layer) and the
 * GEMM then reads it again to pack it. Implicit GEMM skips that buffer: the B packing of the
 * blocked GEMM (gemm_kernels.h: kc x NR k-major micro-panels, zero padded) gathers straight
 * from the image,
 *
 *     for each NR-wide panel of output pixels q = q0 + jp .. q0 + jp + NR:
 *         for p < kc:  (c, i, j) = p0 + p
 *             dst[jp*kc + p*NR + jj] = x_pad[c, oh(q)*sh + i*dh - ph, ow(q)*sw + j*dw - pw]
 *
 * A panel's pixels fall into at most NR runs of one output row each (usually one or two); the
 * runs are found once per panel, and per k each run is a zero-filled edge plus a contiguous
 * (stride 1) or strided copy. The paddings may be negative (the backward-input convolution
 * crops), so the valid range is computed, never assumed.
 */
#ifndef TGL_CONV_KERNELS_H
#define TGL_CONV_KERNELS_H

#include "gemm_kernels.h"

typedef struct {
    int C, H, W;              /* input channels (of this group) and size */
    int kh, kw, sh, sw;       /* kernel, stride */
    int ph, pw, dh, dw;       /* padding (may be < 0: a crop), dilation */
    int OH, OW;               /* output size */
} tgl_conv_geom;

#define TGL_DEFINE_CONV_PACK(NAME, T, ATTR, ROWCOPY)                                           \
    /* pack pixels [q0, q0+nc) x k rows [p0, p0+kc) of cols (see above) into NR-wide panels */ \
    ATTR static void NAME(const tgl_conv_geom *g, const T *x, int nr, int nc, int kc, int p0,  \
                          int q0, T *dst) {                                                    \
        int seg_oh[TGL_MAX_NR], seg_ow[TGL_MAX_NR], seg_len[TGL_MAX_NR], seg_off[TGL_MAX_NR]; \
        int kk = g->kh * g->kw, sw = g->sw, W = g->W, H = g->H;                               \
        for (int jp = 0; jp < nc; jp += nr) {                                                  \
            int nq = nc - jp < nr ? nc - jp : nr, nseg = 0;                                    \
            for (int t = 0; t < nq;) {            /* runs of pixels within one output row */   \
                int q = q0 + jp + t, oh = q / g->OW, ow = q % g->OW;                           \
                int len = g->OW - ow < nq - t ? g->OW - ow : nq - t;                           \
                seg_oh[nseg] = oh; seg_ow[nseg] = ow; seg_len[nseg] = len; seg_off[nseg] = t; \
                nseg++; t += len;                                                              \
            }                                                                                  \
            T *panel = dst + (ptrdiff_t)jp * kc;                                               \
            int p = p0, c = p / kk, i = (p % kk) / g->kw, j = p % g->kw;                       \
            for (int pp = 0; pp < kc; pp++) {                                                  \
                T *d = panel + (ptrdiff_t)pp * nr;                                             \
                const T *xc = x + (ptrdiff_t)c * H * W;                                        \
                int dy = i * g->dh - g->ph, dx = j * g->dw - g->pw;                            \
                for (int s = 0; s < nseg; s++) {                                               \
                    T *ds = d + seg_off[s];                                                    \
                    int len = seg_len[s], ih = seg_oh[s] * g->sh + dy;                         \
                    if (ih < 0 || ih >= H) {                                                   \
                        for (int t = 0; t < len; t++) ds[t] = 0;                               \
                        continue;                                                              \
                    }                                                                          \
                    /* pixel t of the run reads column iw = iw0 + t*sw; valid for [lo, hi) */ \
                    int iw0 = seg_ow[s] * sw + dx, lo, hi;                                     \
                    const T *src = xc + (ptrdiff_t)ih * W;                                     \
                    if (sw == 1) {                 /* no division on the common path */        \
                        lo = iw0 >= 0 ? 0 : -iw0;                                              \
                        hi = W - iw0;                                                          \
                    } else {                                                                   \
                        lo = iw0 >= 0 ? 0 : (-iw0 + sw - 1) / sw;                              \
                        hi = W - 1 - iw0 < 0 ? 0 : (W - 1 - iw0) / sw + 1;                     \
                    }                                                                          \
                    if (hi > len) hi = len;                                                    \
                    if (hi < 0) hi = 0;                                                        \
                    if (lo > hi) lo = hi;                                                      \
                    if (sw == 1) {                                                             \
                        ROWCOPY(ds, src, iw0, lo, hi, len);                                    \
                        continue;                                                              \
                    }                                                                          \
                    for (int t = 0; t < lo; t++) ds[t] = 0;                                    \
                    for (int t = lo; t < hi; t++) ds[t] = src[iw0 + t * sw];                   \
                    for (int t = hi; t < len; t++) ds[t] = 0;                                  \
                }                                                                              \
                for (int t = nq; t < nr; t++) d[t] = 0;                                        \
                if (++j == g->kw) { j = 0; if (++i == g->kh) { i = 0; c++; } }                 \
            }                                                                                  \
        }                                                                                      \
    }

/* ROWCOPY: ds[t] = src[iw0 + t] for lo <= t < hi, 0 for the rest of t < len (stride 1). */
#define TGL_ROWCOPY_PLAIN(ds, src, iw0, lo, hi, len)                                           \
    do {                                                                                       \
        for (int t = 0; t < lo; t++) ds[t] = 0;                                                \
        for (int t = lo; t < hi; t++) ds[t] = src[iw0 + t];                                    \
        for (int t = hi; t < len; t++) ds[t] = 0;                                              \
    } while (0)

TGL_DEFINE_CONV_PACK(tgl_pack_b_conv_generic_f32, float, , TGL_ROWCOPY_PLAIN)
TGL_DEFINE_CONV_PACK(tgl_pack_b_conv_generic_f64, double, , TGL_ROWCOPY_PLAIN)

#if TGL_HAVE_SIMD_KERNELS
/* Masked vector copies: lanes outside [lo, hi) are neither read (a masked-off lane never
   faults) nor kept (zeroed), so a row edge costs nothing extra. The lane index t is relative to
   the run; the source address of lane t is src + iw0 + t, formed only for unmasked lanes. */
#define TGL_ROWCOPY_VEC(T, W, MT, MASKRANGE, MLOADZ, MSTORE)                                    \
    for (int t = 0; t < len; t += W) {                                                         \
        int n = len - t < W ? len - t : W;                                                     \
        int a = lo - t < 0 ? 0 : lo - t, b = hi - t > n ? n : hi - t;                          \
        MT keep = MASKRANGE(a, b), all = MASKRANGE(0, n);                                      \
        MSTORE(ds + t, all, MLOADZ(keep, src + iw0 + t));                                      \
    }

__attribute__((target("avx512f"))) static inline __mmask16 tgl_mrange16(int a, int b) {
    return b <= a ? 0 : (__mmask16)((((1u << (b - a)) - 1) << a) & 0xFFFF);
}
__attribute__((target("avx512f"))) static inline __mmask8 tgl_mrange8(int a, int b) {
    return b <= a ? 0 : (__mmask8)((((1u << (b - a)) - 1) << a) & 0xFF);
}
#define TGL_ROWCOPY_512_F32(ds, src, iw0, lo, hi, len)                                         \
    TGL_ROWCOPY_VEC(float, 16, __mmask16, tgl_mrange16, _mm512_maskz_loadu_ps_shim,            \
                    _mm512_mask_storeu_ps)
#define TGL_ROWCOPY_512_F64(ds, src, iw0, lo, hi, len)                                         \
    TGL_ROWCOPY_VEC(double, 8, __mmask8, tgl_mrange8, _mm512_maskz_loadu_pd_shim,              \
                    _mm512_mask_storeu_pd)
#define _mm512_maskz_loadu_ps_shim(k, p) _mm512_maskz_loadu_ps(k, (const void *)(p))
#define _mm512_maskz_loadu_pd_shim(k, p) _mm512_maskz_loadu_pd(k, (const void *)(p))

/* AVX2: lane masks from a sliding window over a table of -1s between 0s. */
static const int tgl_conv_lanes32[24] = {0, 0, 0, 0, 0, 0, 0, 0, -1, -1, -1, -1, -1, -1, -1, -1,
                                         0, 0, 0, 0, 0, 0, 0, 0};
__attribute__((target("avx2"))) static inline __m256i tgl_mrange_avx2_32(int a, int b) {
    /* lanes [a, b) of 8 (0 <= a <= 8, 0 <= b <= 8) */
    if (b <= a) return _mm256_setzero_si256();
    __m256i hi = _mm256_loadu_si256((const __m256i *)(tgl_conv_lanes32 + 8 - a));
    __m256i lo = _mm256_loadu_si256((const __m256i *)(tgl_conv_lanes32 + 16 - b));
    return _mm256_and_si256(lo, hi);
}
__attribute__((target("avx2"))) static inline __m256i tgl_mrange_avx2_64(int a, int b) {
    /* lanes [a, b) of 4 as 64-bit masks: widen the 32-bit mask of [a, b) */
    __m256i m = tgl_mrange_avx2_32(a, b);
    return _mm256_cvtepi32_epi64(_mm256_castsi256_si128(m));
}
#define TGL_AVX2_ML_PS(k, p) _mm256_maskload_ps(p, k)
#define TGL_AVX2_MS_PS(p, k, v) _mm256_maskstore_ps(p, k, v)
#define TGL_AVX2_ML_PD(k, p) _mm256_maskload_pd(p, k)
#define TGL_AVX2_MS_PD(p, k, v) _mm256_maskstore_pd(p, k, v)
#define TGL_ROWCOPY_256_F32(ds, src, iw0, lo, hi, len)                                         \
    TGL_ROWCOPY_VEC(float, 8, __m256i, tgl_mrange_avx2_32, TGL_AVX2_ML_PS, TGL_AVX2_MS_PS)
#define TGL_ROWCOPY_256_F64(ds, src, iw0, lo, hi, len)                                         \
    TGL_ROWCOPY_VEC(double, 4, __m256i, tgl_mrange_avx2_64, TGL_AVX2_ML_PD, TGL_AVX2_MS_PD)

TGL_DEFINE_CONV_PACK(tgl_pack_b_conv_avx512_f32, float, __attribute__((target("avx512f"))),
                     TGL_ROWCOPY_512_F32)
TGL_DEFINE_CONV_PACK(tgl_pack_b_conv_avx512_f64, double, __attribute__((target("avx512f"))),
                     TGL_ROWCOPY_512_F64)
TGL_DEFINE_CONV_PACK(tgl_pack_b_conv_avx2_f32, float, __attribute__((target("avx2"))),
                     TGL_ROWCOPY_256_F32)
TGL_DEFINE_CONV_PACK(tgl_pack_b_conv_avx2_f64, double, __attribute__((target("avx2"))),
                     TGL_ROWCOPY_256_F64)
#endif

/* The packer for an ISA (tgl_kernel_info.isa). */
#define TGL_CONV_PACK_DISPATCH(SFX, T)                                                         \
    static void tgl_pack_b_conv_##SFX(int isa, const tgl_conv_geom *g, const T *x, int nr,    \
                                      int nc, int kc, int p0, int q0, T *dst) {                \
        TGL_CONV_PACK_SIMD(SFX)                                                                \
        tgl_pack_b_conv_generic_##SFX(g, x, nr, nc, kc, p0, q0, dst);                          \
    }
#if TGL_HAVE_SIMD_KERNELS
#define TGL_CONV_PACK_SIMD(SFX)                                                                \
    if (isa == TGL_ISA_AVX512) { tgl_pack_b_conv_avx512_##SFX(g, x, nr, nc, kc, p0, q0, dst); return; } \
    if (isa == TGL_ISA_AVX2) { tgl_pack_b_conv_avx2_##SFX(g, x, nr, nc, kc, p0, q0, dst); return; }
#else
#define TGL_CONV_PACK_SIMD(SFX)
#endif
TGL_CONV_PACK_DISPATCH(f32, float)
TGL_CONV_PACK_DISPATCH(f64, double)

#endif /* TGL_CONV_KERNELS_H */
