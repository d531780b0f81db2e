/*
 * conv_small.h -- direct stride-1 convolution for layers with few taps and few outputs
 * (float32, float64): the first layer of a small CNN (1 -> 8 channels, 3x3) has a GEMM of
 * M = 8 rows and K = 9, where the packed GEMM spends its time packing, not multiplying.
 *
 * The "flat" formulation. Copy one image into a zero-padded buffer xp of C planes of
 * Hp x Wp (Hp = H + 2ph, Wp = W + 2pw). With stride 1, output pixel (p, q) reads
 * xp[c, p + i*dh, q + j*dw], i.e. the flat index m = p*Wp + q shifted by the tap's offset
 * off(c, i, j) = c*Hp*Wp + i*dh*Wp + j*dw. So over the flat index m in [0, M),
 * M = (OH-1)*Wp + OW,
 *
 *     out[o, m]  = sum_k  w[o, k] * xp[off(k) + m]          (k = (c, i, j), row-major like w)
 *
 * is one long contiguous multiply-add per tap; the pixels with q >= OW (m % Wp >= OW) are
 * computed and dropped. The largest read, M-1 + off(C-1, kh-1, kw-1), is C*Hp*Wp - 1: in xp.
 * The weight gradient is the adjoint: with gyp[o, m] = gy[o, p, q] at m = p*Wp + q and 0 in the
 * dropped columns,
 *
 *     gw[o, k] += sum_m gyp[o, m] * xp[off(k) + m],     gb[o] += sum_m gyp[o, m].
 *
 * Both loops are written with fixed-width blocks of independent lanes that gcc vectorizes;
 * each is compiled three times (AVX-512, AVX2+FMA, baseline) and the caller passes the ISA of
 * the GEMM kernel table (TINYGRAD_LITE_CPU_ISA forces it). The sums run in a different order
 * from the GEMM's, so results agree with it to rounding, not bit for bit.
 */
#ifndef TGL_CONV_SMALL_H
#define TGL_CONV_SMALL_H

#include "gemm_kernels.h"

#if defined(__GNUC__)
#define TGL_SC_INLINE static inline __attribute__((always_inline))
#else
#define TGL_SC_INLINE static inline
#endif

/* The bodies use GCC/Clang vector extensions: V is a vector of VL lanes of T (16, 32 or 64
 * bytes per ISA); unaligned loads and stores go through memcpy (one instruction). The forward
 * keeps NV vectors of outputs in registers across all taps; the gradient keeps four taps x one
 * vector of partial sums. Elsewhere (MSVC) plain loops. */
#if defined(__GNUC__)
#define TGL_SC_LD(V, p) ({ V _v; __builtin_memcpy(&_v, (p), sizeof(V)); _v; })
#define TGL_SC_ST(V, p, v) do { V _v = (v); __builtin_memcpy((p), &_v, sizeof(V)); } while (0)
#define TGL_DEFINE_SCONV_BODY(NAME, T, V, VL, NV, OBMAX, OBW)                                          \
    /* out[o0 .. o0+OB) for the NV*VL flat pixels at m0: OB x NV vectors of sums in registers, \
     * each tap loads NV vectors of the image once for all OB outputs */                         \
    TGL_SC_INLINE void tgl_sconv_fwd_blk_##NAME(const T *xp, ptrdiff_t M, const ptrdiff_t *off,   \
                                               int ntap, const T *w, int o0, const int OB,        \
                                               ptrdiff_t m0, T *out) {                            \
        V acc[OBMAX][NV];                                                                         \
        for (int b = 0; b < OB; b++)                                                              \
            for (int u = 0; u < NV; u++) acc[b][u] = (V){0};                                      \
        for (int k = 0; k < ntap; k++) {                                                          \
            const T *s = xp + off[k] + m0;                                                        \
            V xv[NV];                                                                             \
            for (int u = 0; u < NV; u++) xv[u] = TGL_SC_LD(V, s + u * VL);                        \
            for (int b = 0; b < OB; b++) {                                                        \
                V wv = (V){0} + w[(ptrdiff_t)(o0 + b) * ntap + k];                                \
                for (int u = 0; u < NV; u++) acc[b][u] += wv * xv[u];                             \
            }                                                                                     \
        }                                                                                         \
        for (int b = 0; b < OB; b++)                                                              \
            for (int u = 0; u < NV; u++)                                                          \
                TGL_SC_ST(V, out + (ptrdiff_t)(o0 + b) * M + m0 + u * VL, acc[b][u]);            \
    }                                                                                             \
    TGL_SC_INLINE void tgl_sconv_fwd_##NAME(const T *xp, ptrdiff_t M, const ptrdiff_t *off,       \
                                           int ntap, const T *w, int O, T *out) {                 \
        ptrdiff_t m0 = 0;                                                                         \
        for (; m0 + VL * NV <= M; m0 += VL * NV) {                                                \
            int o0 = 0;                                                                           \
            for (; o0 + OBMAX <= O; o0 += OBMAX)                                                  \
                tgl_sconv_fwd_blk_##NAME(xp, M, off, ntap, w, o0, OBMAX, m0, out);                \
            if (OBMAX > 4 && o0 + 4 <= O) {                                                       \
                tgl_sconv_fwd_blk_##NAME(xp, M, off, ntap, w, o0, 4, m0, out);                    \
                o0 += 4;                                                                          \
            }                                                                                     \
            if (o0 + 2 <= O) {                                                                    \
                tgl_sconv_fwd_blk_##NAME(xp, M, off, ntap, w, o0, 2, m0, out);                    \
                o0 += 2;                                                                          \
            }                                                                                     \
            if (o0 < O) tgl_sconv_fwd_blk_##NAME(xp, M, off, ntap, w, o0, 1, m0, out);            \
        }                                                                                         \
        for (; m0 + VL <= M; m0 += VL)                                                            \
            for (int o = 0; o < O; o++) {                                                         \
                V acc = (V){0};                                                                   \
                const T *wo = w + (ptrdiff_t)o * ntap;                                            \
                for (int k = 0; k < ntap; k++)                                                    \
                    acc += ((V){0} + wo[k]) * TGL_SC_LD(V, xp + off[k] + m0);                     \
                TGL_SC_ST(V, out + (ptrdiff_t)o * M + m0, acc);                                   \
            }                                                                                     \
        for (; m0 < M; m0++)                                                                      \
            for (int o = 0; o < O; o++) {                                                         \
                T acc = 0;                                                                        \
                const T *wo = w + (ptrdiff_t)o * ntap;                                            \
                for (int k = 0; k < ntap; k++) acc += wo[k] * xp[off[k] + m0];                    \
                out[(ptrdiff_t)o * M + m0] = acc;                                                 \
            }                                                                                     \
    }                                                                                             \
    /* gw[o0+a, k0+b] += sum_m g[o0+a, m] xp[off(k0+b) + m] for a < OB, b < KB: OB x KB      \
     * vectors of partial sums; per vector of pixels OB + KB loads feed OB * KB FMAs */           \
    TGL_SC_INLINE void tgl_sconv_bwd_blk_##NAME(const T *xp, ptrdiff_t M, const ptrdiff_t *off,   \
                                               int ntap, const T *g, int o0, const int OB,        \
                                               int k0, const int KB, T *gw) {                     \
        V acc[4][4];                                                                              \
        const T *gr[4], *xr[4];                                                                   \
        ptrdiff_t mfull = M - M % VL;                                                             \
        for (int a = 0; a < OB; a++) gr[a] = g + (ptrdiff_t)(o0 + a) * M;                         \
        for (int b = 0; b < KB; b++) xr[b] = xp + off[k0 + b];                                    \
        for (int a = 0; a < OB; a++)                                                              \
            for (int b = 0; b < KB; b++) acc[a][b] = (V){0};                                      \
        for (ptrdiff_t m = 0; m < mfull; m += VL) {                                               \
            V gv[4], xv[4];                                                                       \
            for (int a = 0; a < OB; a++) gv[a] = TGL_SC_LD(V, gr[a] + m);                         \
            for (int b = 0; b < KB; b++) xv[b] = TGL_SC_LD(V, xr[b] + m);                         \
            for (int a = 0; a < OB; a++)                                                          \
                for (int b = 0; b < KB; b++) acc[a][b] += gv[a] * xv[b];                          \
        }                                                                                         \
        for (int a = 0; a < OB; a++)                                                              \
            for (int b = 0; b < KB; b++) {                                                        \
                T s = 0;                                                                          \
                for (ptrdiff_t m = mfull; m < M; m++) s += gr[a][m] * xr[b][m];                   \
                for (int t = 0; t < VL; t++) s += acc[a][b][t];                                   \
                gw[(ptrdiff_t)(o0 + a) * ntap + k0 + b] += s;                                     \
            }                                                                                     \
    }                                                                                             \
    /* gw[o, k] += sum_m g[o, m] xp[off(k) + m];  gb[o] += sum_m g[o, m] (gb may be NULL) */      \
    TGL_SC_INLINE void tgl_sconv_bwd_w_##NAME(const T *xp, ptrdiff_t M, const ptrdiff_t *off,     \
                                             int ntap, const T *g, int O, T *gw, T *gb) {         \
        ptrdiff_t mfull = M - M % VL;                                                             \
        if (gb)                                                                                   \
            for (int o = 0; o < O; o++) {                                                         \
                const T *go = g + (ptrdiff_t)o * M;                                               \
                V a = (V){0};                                                                     \
                T s = 0;                                                                          \
                for (ptrdiff_t m = 0; m < mfull; m += VL) a += TGL_SC_LD(V, go + m);             \
                for (ptrdiff_t m = mfull; m < M; m++) s += go[m];                                 \
                for (int t = 0; t < VL; t++) s += a[t];                                           \
                gb[o] += s;                                                                       \
            }                                                                                     \
        for (int o0 = 0; o0 < O;) {                                                               \
            int ob = OBW >= 4 && O - o0 >= 4 ? 4 : (O - o0 >= 2 ? 2 : 1);                                     \
            for (int k0 = 0; k0 < ntap;) {                                                        \
                int kb = ntap - k0 >= 4 ? 4 : 1;                                                  \
                if (ob == 4 && kb == 4)                                                           \
                    tgl_sconv_bwd_blk_##NAME(xp, M, off, ntap, g, o0, 4, k0, 4, gw);              \
                else if (ob == 4)                                                                 \
                    tgl_sconv_bwd_blk_##NAME(xp, M, off, ntap, g, o0, 4, k0, 1, gw);              \
                else if (ob == 2 && kb == 4)                                                      \
                    tgl_sconv_bwd_blk_##NAME(xp, M, off, ntap, g, o0, 2, k0, 4, gw);              \
                else if (ob == 2)                                                                 \
                    tgl_sconv_bwd_blk_##NAME(xp, M, off, ntap, g, o0, 2, k0, 1, gw);              \
                else if (kb == 4)                                                                 \
                    tgl_sconv_bwd_blk_##NAME(xp, M, off, ntap, g, o0, 1, k0, 4, gw);              \
                else                                                                              \
                    tgl_sconv_bwd_blk_##NAME(xp, M, off, ntap, g, o0, 1, k0, 1, gw);              \
                k0 += kb;                                                                         \
            }                                                                                     \
            o0 += ob;                                                                             \
        }                                                                                         \
    }
typedef float tgl_v16f __attribute__((vector_size(64)));
typedef float tgl_v8f __attribute__((vector_size(32)));
typedef float tgl_v4f __attribute__((vector_size(16)));
typedef double tgl_v8d __attribute__((vector_size(64)));
typedef double tgl_v4d __attribute__((vector_size(32)));
typedef double tgl_v2d __attribute__((vector_size(16)));
TGL_DEFINE_SCONV_BODY(f32_b512, float, tgl_v16f, 16, 2, 8, 4)
TGL_DEFINE_SCONV_BODY(f32_b256, float, tgl_v8f, 8, 2, 4, 2)
TGL_DEFINE_SCONV_BODY(f32_b128, float, tgl_v4f, 4, 2, 4, 2)
TGL_DEFINE_SCONV_BODY(f64_b512, double, tgl_v8d, 8, 2, 8, 4)
TGL_DEFINE_SCONV_BODY(f64_b256, double, tgl_v4d, 4, 2, 4, 2)
TGL_DEFINE_SCONV_BODY(f64_b128, double, tgl_v2d, 2, 2, 4, 2)
#define TGL_SC_GENERIC _b128
#else
#define TGL_DEFINE_SCONV_SCALAR(NAME, T)                                                          \
    static void tgl_sconv_fwd_##NAME(const T *xp, ptrdiff_t M, const ptrdiff_t *off, int ntap,    \
                                     const T *w, int O, T *out) {                                 \
        for (int o = 0; o < O; o++)                                                               \
            for (ptrdiff_t m = 0; m < M; m++) {                                                   \
                T acc = 0;                                                                        \
                for (int k = 0; k < ntap; k++) acc += w[(ptrdiff_t)o * ntap + k] * xp[off[k] + m];\
                out[(ptrdiff_t)o * M + m] = acc;                                                  \
            }                                                                                     \
    }                                                                                             \
    static void tgl_sconv_bwd_w_##NAME(const T *xp, ptrdiff_t M, const ptrdiff_t *off, int ntap,  \
                                       const T *g, int O, T *gw, T *gb) {                         \
        for (int o = 0; o < O; o++) {                                                             \
            const T *go = g + (ptrdiff_t)o * M;                                                   \
            if (gb) { T s = 0; for (ptrdiff_t m = 0; m < M; m++) s += go[m]; gb[o] += s; }        \
            for (int k = 0; k < ntap; k++) {                                                      \
                T s = 0;                                                                          \
                for (ptrdiff_t m = 0; m < M; m++) s += go[m] * xp[off[k] + m];                    \
                gw[(ptrdiff_t)o * ntap + k] += s;                                                 \
            }                                                                                     \
        }                                                                                         \
    }
TGL_DEFINE_SCONV_SCALAR(f32_scalar, float)
TGL_DEFINE_SCONV_SCALAR(f64_scalar, double)
#define TGL_SC_GENERIC _scalar
#endif

#define TGL_SC_CAT3(a, b, c) a##b##c
#define TGL_SC_GEN(NAME, SUF, G) TGL_SC_CAT3(NAME, SUF, G)

/* One entry per type and pass; isa picks the compiled variant (TGL_ISA_*). */
#if TGL_X86 && defined(__GNUC__)
#define TGL_DEFINE_SCONV_ISA(SUF, T)                                                              \
    __attribute__((target("avx512f,fma"))) static void tgl_sconv_fwd_##SUF##_avx512(             \
        const T *xp, ptrdiff_t M, const ptrdiff_t *off, int ntap, const T *w, int O, T *out) {    \
        tgl_sconv_fwd_##SUF##_b512(xp, M, off, ntap, w, O, out);                                  \
    }                                                                                             \
    __attribute__((target("avx2,fma"))) static void tgl_sconv_fwd_##SUF##_avx2(                   \
        const T *xp, ptrdiff_t M, const ptrdiff_t *off, int ntap, const T *w, int O, T *out) {    \
        tgl_sconv_fwd_##SUF##_b256(xp, M, off, ntap, w, O, out);                                  \
    }                                                                                             \
    __attribute__((target("avx512f,fma"))) static void tgl_sconv_bwd_w_##SUF##_avx512(           \
        const T *xp, ptrdiff_t M, const ptrdiff_t *off, int ntap, const T *g, int O, T *gw,       \
        T *gb) {                                                                                  \
        tgl_sconv_bwd_w_##SUF##_b512(xp, M, off, ntap, g, O, gw, gb);                             \
    }                                                                                             \
    __attribute__((target("avx2,fma"))) static void tgl_sconv_bwd_w_##SUF##_avx2(                 \
        const T *xp, ptrdiff_t M, const ptrdiff_t *off, int ntap, const T *g, int O, T *gw,       \
        T *gb) {                                                                                  \
        tgl_sconv_bwd_w_##SUF##_b256(xp, M, off, ntap, g, O, gw, gb);                             \
    }
TGL_DEFINE_SCONV_ISA(f32, float)
TGL_DEFINE_SCONV_ISA(f64, double)
#endif

#define TGL_DEFINE_SCONV_DISPATCH(SUF, T)                                                         \
    static void tgl_sconv_fwd_##SUF##_generic(const T *xp, ptrdiff_t M, const ptrdiff_t *off,     \
                                              int ntap, const T *w, int O, T *out) {              \
        TGL_SC_GEN(tgl_sconv_fwd_, SUF, TGL_SC_GENERIC)(xp, M, off, ntap, w, O, out);       \
    }                                                                                             \
    static void tgl_sconv_bwd_w_##SUF##_generic(const T *xp, ptrdiff_t M, const ptrdiff_t *off,   \
                                                int ntap, const T *g, int O, T *gw, T *gb) {      \
        TGL_SC_GEN(tgl_sconv_bwd_w_, SUF, TGL_SC_GENERIC)(xp, M, off, ntap, g, O, gw, gb);  \
    }                                                                                             \
    static void tgl_sconv_fwd_##SUF(int isa, const T *xp, ptrdiff_t M, const ptrdiff_t *off,      \
                                    int ntap, const T *w, int O, T *out) {                        \
        TGL_SCONV_PICK(isa, tgl_sconv_fwd_##SUF, (xp, M, off, ntap, w, O, out));                  \
    }                                                                                             \
    static void tgl_sconv_bwd_w_##SUF(int isa, const T *xp, ptrdiff_t M, const ptrdiff_t *off,    \
                                      int ntap, const T *g, int O, T *gw, T *gb) {                \
        TGL_SCONV_PICK(isa, tgl_sconv_bwd_w_##SUF, (xp, M, off, ntap, g, O, gw, gb));             \
    }

#if TGL_X86 && defined(__GNUC__)
#define TGL_SCONV_PICK(isa, NAME, ARGS)                                                           \
    do {                                                                                          \
        if ((isa) == TGL_ISA_AVX512) NAME##_avx512 ARGS;                                          \
        else if ((isa) == TGL_ISA_AVX2) NAME##_avx2 ARGS;                                         \
        else NAME##_generic ARGS;                                                                 \
    } while (0)
#else
#define TGL_SCONV_PICK(isa, NAME, ARGS) NAME##_generic ARGS
#endif

TGL_DEFINE_SCONV_DISPATCH(f32, float)
TGL_DEFINE_SCONV_DISPATCH(f64, double)

#endif /* TGL_CONV_SMALL_H */
