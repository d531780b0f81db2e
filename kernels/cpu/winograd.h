/*
 * winograd.h -- Winograd F(4x4, 3x3) convolution transforms (float32, float64).
 *
 * A 3x3, stride-1 convolution computes each 4x4 block of outputs from a 6x6 block of the
 * (padded) input. Winograd's minimal filtering does it with 36 multiplies per (input channel,
 * output channel) pair instead of 144, by working in a transformed space (Lavin & Gray 2016):
 *
 *     U = G g G^T          (6x6)  the filter g (3x3), once per call
 *     V = B^T d B          (6x6)  each input tile d (6x6, rows 4*th - ph .., cols 4*tw - pw ..)
 *     M[xi] = sum_c U[xi][k, c] V[xi][c, tile]        36 GEMMs, xi = (a, b) in 6x6
 *     y = A^T M A          (4x4)  each output tile
 *
 * with the interpolation points 0, +-1, +-2 and infinity:
 *
 *   B^T = [4  0 -5  0 1 0]   G = [ 1/4     0     0]   A^T = [1 1  1 1  1 0]
 *         [0 -4 -4  1 1 0]       [-1/6  -1/6  -1/6]         [0 1 -1 2 -2 0]
 *         [0  4 -4 -1 1 0]       [-1/6   1/6  -1/6]         [0 1  1 4  4 0]
 *         [0 -2 -1  2 1 0]       [1/24  1/12   1/6]         [0 1 -1 8 -8 1]
 *         [0  2 -1 -2 1 0]       [1/24 -1/12   1/6]
 *         [0  4  0 -5 0 1]       [   0     0     1]
 *
 * The weight gradient is the adjoint of the same bilinear map: with the output-gradient tile
 * (4x4, zero beyond the output) transformed as  Gy = A gy A^T  (6x6),
 *
 *     dU[xi][k, c] = sum over tiles Gy[xi][k, tile] V[xi][c, tile]       36 GEMMs
 *     dg = G^T dU G        (3x3)
 *
 * Float32 error (measured against float64, 32 channels, values ~N(0,1)): about 5e-6 of the
 * largest output, against about 2e-7 for a direct sum -- the points +-2 and the 1/6, 1/24 of G
 * amplify rounding. The filter transforms run in double.
 *
 * This header holds the transforms; the GEMMs are the micro-kernels of gemm_kernels.h, and the
 * loops and threads live in winograd.pxi. Tiles are numbered across the batch,
 * T = (n*TH + th)*TS + tw (TS >= TW: see tgl_wino_geom), and the transforms work on a block of
 * L consecutive tiles at a time,
 * one tile per vector lane (16 float32 or 8 float64 lanes with AVX-512; a scalar loop
 * otherwise), so a block of transformed tiles is exactly a packed GEMM panel: V[xi][c][lane].
 * Inputs are gathered and outputs scattered with per-lane offsets and masks, so any padding
 * (negative too: a crop), any H, W (partial tiles at the edges) and a block that runs past the
 * last tile need no special code. Offsets are int32: the caller checks that the arrays hold
 * fewer than 2^31 values.
 */
#ifndef TGL_WINOGRAD_H
#define TGL_WINOGRAD_H

#include "gemm_kernels.h"

typedef struct {
    int N, C, H, W;      /* input: N images of C channels of H x W */
    int K, OH, OW;       /* output: K channels of OH x OW */
    int ph, pw;          /* padding (may be negative: a crop) */
    int TH, TW;          /* tiles per image: ceil(OH/4) x ceil(OW/4) */
    int TS;              /* tile numbers per tile row: TW, or TW rounded up to a multiple of 4
                            (the tiles tw >= TW are phantoms, masked out everywhere) so that
                            the float32 AVX-512 path finds every 4 lanes in one row */
} tgl_wino_geom;

static const double tgl_wino_G[6][3] = {
    {1.0 / 4, 0, 0},           {-1.0 / 6, -1.0 / 6, -1.0 / 6}, {-1.0 / 6, 1.0 / 6, -1.0 / 6},
    {1.0 / 24, 1.0 / 12, 1.0 / 6}, {1.0 / 24, -1.0 / 12, 1.0 / 6}, {0, 0, 1}};

/* ------------------------------------------------------------------------------------------ */
/* Filter transforms (plain C, in double)                                                     */
/* ------------------------------------------------------------------------------------------ */
/*
 * filter:  U[xi](ko, ci) = (G g G^T)[a][b], xi = 6a + b, for the filters g = w[k][c] (3x3),
 *          stored as the forward GEMM's packed A: per xi, MR-tall panels of ko, each k-major
 *          (ci-major): U[xi*KOp*CI + (ko/MR)*MR*CI + ci*MR + ko%MR], KOp = KO rounded up to
 *          MR, the rows ko >= KO zero.
 *          flip = 0: (ko, ci) = (k, c), U is 36 x K x C.
 *          flip = 1: g = w[k][c] rotated by 180 degrees and (ko, ci) = (c, k), U is 36 x C x K:
 *          the filter of the stride-1 backward-input convolution.
 * grad:    gw[k][c][i][j] = (G^T dU[.][k][c] G)[i][j]   (dU is 36 x K x C; with trans,
 *          36 x C x K)
 */
#define TGL_WINO_FCHUNK 32
/* U for the filters of one chunk: gt[i*3 + j][l] holds filter l's g[i][j] (l < n). Vectorizes
   over l (no data-dependent control flow): 54 + 108 multiply-adds per filter, in double. */
#define TGL_WINO_DEFINE_FCHUNK(NAME, ATTR)                                                     \
    ATTR static void NAME(double gt[9][TGL_WINO_FCHUNK], double u[36][TGL_WINO_FCHUNK]) {      \
        for (int a = 0; a < 6; a++) {                                                          \
            double t[3][TGL_WINO_FCHUNK];                                                      \
            double g0 = tgl_wino_G[a][0], g1 = tgl_wino_G[a][1], g2 = tgl_wino_G[a][2];        \
            for (int j = 0; j < 3; j++)                                                        \
                for (int l = 0; l < TGL_WINO_FCHUNK; l++)                                      \
                    t[j][l] = g0 * gt[j][l] + g1 * gt[3 + j][l] + g2 * gt[6 + j][l];           \
            for (int b = 0; b < 6; b++) {                                                      \
                double h0 = tgl_wino_G[b][0], h1 = tgl_wino_G[b][1], h2 = tgl_wino_G[b][2];    \
                for (int l = 0; l < TGL_WINO_FCHUNK; l++)                                      \
                    u[a * 6 + b][l] = t[0][l] * h0 + t[1][l] * h1 + t[2][l] * h2;              \
            }                                                                                  \
        }                                                                                      \
    }
TGL_WINO_DEFINE_FCHUNK(tgl_wino_fchunk_generic, )
#if TGL_HAVE_SIMD_KERNELS
TGL_WINO_DEFINE_FCHUNK(tgl_wino_fchunk_avx512, __attribute__((target("avx512f,fma"))))
#endif

#define TGL_WINO_DEFINE_FILTER(SFX, T)                                                         \
    static void tgl_wino_filter_##SFX(int isa, const T *w, int K, int C, int flip, int mr,     \
                                      T *U) {                                                  \
        int KO = flip ? C : K, CI = flip ? K : C, KOp = (KO + mr - 1) / mr * mr;               \
        if (KOp > KO)                               /* the zero rows of the last panels */     \
            for (int xi = 0; xi < 36; xi++)                                                    \
                for (int ci = 0; ci < CI; ci++)                                                \
                    for (int ko = KO; ko < KOp; ko++)                                          \
                        U[(ptrdiff_t)xi * KOp * CI + (ptrdiff_t)(ko / mr) * mr * CI +          \
                          (ptrdiff_t)ci * mr + ko % mr] = 0;                                   \
        double gt[9][TGL_WINO_FCHUNK] __attribute__((aligned(64)));                            \
        double u[36][TGL_WINO_FCHUNK] __attribute__((aligned(64)));                            \
        (void)isa;                                                                             \
        /* chunks of outputs contiguous in U: U[xi][ko][ci0 .. ci0 + n) */                     \
        for (int ko = 0; ko < KO; ko++)                                                        \
            for (int ci0 = 0; ci0 < CI; ci0 += TGL_WINO_FCHUNK) {                              \
                int n = CI - ci0 < TGL_WINO_FCHUNK ? CI - ci0 : TGL_WINO_FCHUNK;               \
                for (int l = 0; l < TGL_WINO_FCHUNK; l++) {                                    \
                    int ci = ci0 + (l < n ? l : 0);                                            \
                    /* the filter w[k][c]: (k, c) = (ko, ci), or (ci, ko) rotated (flip) */    \
                    const T *s = flip ? w + ((ptrdiff_t)ci * C + ko) * 9                       \
                                      : w + ((ptrdiff_t)ko * C + ci) * 9;                      \
                    for (int ij = 0; ij < 9; ij++) gt[ij][l] = (double)s[flip ? 8 - ij : ij];  \
                }                                                                              \
                TGL_WINO_FCHUNK_RUN(isa, gt, u);                                               \
                for (int xi = 0; xi < 36; xi++) {                                              \
                    T *d = U + (ptrdiff_t)xi * KOp * CI + (ptrdiff_t)(ko / mr) * mr * CI +     \
                           (ptrdiff_t)ci0 * mr + ko % mr;                                      \
                    for (int l = 0; l < n; l++) d[(ptrdiff_t)l * mr] = (T)u[xi][l];            \
                }                                                                              \
            }                                                                                  \
    }                                                                                          \
    static void tgl_wino_filter_grad_##SFX(const T *dU, int K, int C, int trans, T *gw) {      \
        ptrdiff_t KC = (ptrdiff_t)K * C;                                                       \
        for (ptrdiff_t kc = 0; kc < KC; kc++) {                                                \
            ptrdiff_t at = trans ? (kc % C) * K + kc / C : kc;                                 \
            double t[3][6];                                                                    \
            for (int i = 0; i < 3; i++)                                                        \
                for (int b = 0; b < 6; b++) {                                                  \
                    double s = 0;                                                              \
                    for (int a = 0; a < 6; a++) s += tgl_wino_G[a][i] * dU[(a * 6 + b) * KC + at];\
                    t[i][b] = s;                                                               \
                }                                                                              \
            for (int i = 0; i < 3; i++)                                                        \
                for (int j = 0; j < 3; j++) {                                                  \
                    double s = 0;                                                              \
                    for (int b = 0; b < 6; b++) s += t[i][b] * tgl_wino_G[b][j];               \
                    gw[kc * 9 + i * 3 + j] = (T)s;                                             \
                }                                                                              \
        }                                                                                      \
    }
#if TGL_HAVE_SIMD_KERNELS
#define TGL_WINO_FCHUNK_RUN(isa, gt, u)                                                        \
    do { if (isa == TGL_ISA_AVX512) tgl_wino_fchunk_avx512(gt, u);                             \
         else tgl_wino_fchunk_generic(gt, u); } while (0)
#else
#define TGL_WINO_FCHUNK_RUN(isa, gt, u) tgl_wino_fchunk_generic(gt, u)
#endif

TGL_WINO_DEFINE_FILTER(f32, float)
TGL_WINO_DEFINE_FILTER(f64, double)

/* ------------------------------------------------------------------------------------------ */
/* 1-D transforms on six (or four) values of any arithmetic type VT                           */
/* ------------------------------------------------------------------------------------------ */
/* K2, K4, K5, K8: the constants as VT, declared by the caller. */

/* r = B^T d:  r0 = 4d0 - 5d2 + d4,  r1,2 = (d4 - 4d2) -+ (d3 - 4d1),
               r3,4 = (d4 - d2) +- 2(d3 - d1),  r5 = 4d1 - 5d3 + d5 */
#define TGL_WINO_BT(VT, d0, d1, d2, d3, d4, d5, r0, r1, r2, r3, r4, r5)                        \
    do {                                                                                       \
        VT t1_ = d4 - K4 * d2, t2_ = d3 - K4 * d1, t3_ = d4 - d2, t4_ = K2 * (d3 - d1);        \
        r0 = K4 * d0 - K5 * d2 + d4;                                                           \
        r5 = K4 * d1 - K5 * d3 + d5;                                                           \
        r1 = t1_ + t2_; r2 = t1_ - t2_; r3 = t3_ + t4_; r4 = t3_ - t4_;                        \
    } while (0)

/* o = A^T m:  o0 = m0 + (m1+m2) + (m3+m4),  o1 = (m1-m2) + 2(m3-m4),
               o2 = (m1+m2) + 4(m3+m4),      o3 = (m1-m2) + 8(m3-m4) + m5 */
#define TGL_WINO_AT(VT, m0, m1, m2, m3, m4, m5, o0, o1, o2, o3)                                \
    do {                                                                                       \
        VT s12_ = m1 + m2, d12_ = m1 - m2, s34_ = m3 + m4, d34_ = m3 - m4;                     \
        o0 = m0 + s12_ + s34_; o1 = d12_ + K2 * d34_;                                          \
        o2 = s12_ + K4 * s34_; o3 = d12_ + K8 * d34_ + m5;                                     \
    } while (0)

/* u = A g (the adjoint of A^T):  u0 = g0,  u1,2 = (g0+g2) +- (g1+g3),
                                  u3,4 = (g0+4g2) +- (2g1+8g3),  u5 = g3 */
#define TGL_WINO_A(VT, g0, g1, g2, g3, u0, u1, u2, u3, u4, u5)                                 \
    do {                                                                                       \
        VT e_ = g0 + g2, o_ = g1 + g3, e2_ = g0 + K4 * g2, o2_ = K2 * g1 + K8 * g3;            \
        u0 = g0; u1 = e_ + o_; u2 = e_ - o_; u3 = e2_ + o2_; u4 = e2_ - o2_; u5 = g3;           \
    } while (0)

/* ------------------------------------------------------------------------------------------ */
/* Tile transforms, one tile per lane                                                         */
/* ------------------------------------------------------------------------------------------ */
/*
 * in(t0, L, c0, c1):   for each lane l < L (tile T = t0 + l) and channel c in [c0, c1):
 *                          V[xi*xs + c*cs + l] = (B^T d B)[xi],  d = x_pad[n, c, 6x6 at tile T]
 *                      (all zeros for T >= the number of tiles)
 * out(k0, k1, t0, L):  for each lane l and k in [k0, k1), inside the output only:
 *                          y[n, k, 4th + r, 4tw + s] = (A^T m A)[r][s],
 *                          m[xi] = M[xi*xs + (k-k0)*ks + l]
 * gy(t0, L, k0, k1):   G[xi*xs + k*ks + l] = (A g A^T)[xi],
 *                          g = gy[n, k, 4x4 at tile T] (0 outside)
 *
 * Written once over: VT (vector or scalar), VL lanes, IDXT/IDXLOAD (int32 offsets),
 * MASKT (lane mask), GATHER(ptr, idx, mask) (masked lanes give 0, read nothing),
 * SCATTER(ptr, idx, mask, v), LOADV/STOREV (VL contiguous values), SET1.
 * L must be a multiple of VL.
 */
#define TGL_WINO_LANES(VL, OFF, ROWM, COLM, NROW, NCOL, ROW0, COL0, HLIM, WLIM, IMG)         \
    /* per-lane offsets and row/column validity bits for the tiles t0 + l0 .. + VL */           \
    for (int l = 0; l < VL; l++) {                                                             \
        ptrdiff_t T_ = t0 + l0 + l;                                                            \
        int n_ = (int)(T_ / tpi), r_ = (int)(T_ % tpi), th_ = r_ / g->TS, tw_ = r_ % g->TS;    \
        if (T_ >= tiles || tw_ >= g->TW) { OFF[l] = 0; continue; }                             \
        int row0_ = ROW0, col0_ = COL0;                                                        \
        OFF[l] = n_ * (IMG) + row0_ * (WLIM) + col0_;                                          \
        for (int i = 0; i < NROW; i++)                                                         \
            if (row0_ + i >= 0 && row0_ + i < (HLIM)) ROWM[i] |= 1u << l;                      \
        for (int j = 0; j < NCOL; j++)                                                         \
            if (col0_ + j >= 0 && col0_ + j < (WLIM)) COLM[j] |= 1u << l;                      \
    }

#define TGL_WINO_DEFINE_TILES(SFX, T, ATTR, VT, VL, IDXT, IDXLOAD, MASKT, GATHER, SCATTER,      \
                              LOADV, STOREV, SET1)                                             \
    ATTR static void tgl_wino_in_##SFX(const tgl_wino_geom *g, const T *x, ptrdiff_t t0,      \
                                       int L, int c0, int c1, T *V, ptrdiff_t xs,              \
                                       ptrdiff_t cs) {                                         \
        const VT K2 = SET1(2), K4 = SET1(4), K5 = SET1(5);                                     \
        ptrdiff_t tpi = (ptrdiff_t)g->TH * g->TS, tiles = tpi * g->N;                          \
        ptrdiff_t HW = (ptrdiff_t)g->H * g->W;                                                 \
        int W = g->W;                                                                          \
        for (int l0 = 0; l0 < L; l0 += VL) {                                                   \
            int off[VL] __attribute__((aligned(64)));                                          \
            unsigned rowm[6] = {0}, colm[6] = {0};                                             \
            TGL_WINO_LANES(VL, off, rowm, colm, 6, 6, 4 * th_ - g->ph, 4 * tw_ - g->pw, g->H,      \
                           g->W, g->C * (int)HW)                                               \
            IDXT vi = IDXLOAD(off);                                                            \
            MASKT mm[6][6];                                                                    \
            for (int i = 0; i < 6; i++)                                                        \
                for (int j = 0; j < 6; j++) mm[i][j] = (MASKT)(rowm[i] & colm[j]);             \
            for (int c = c0; c < c1; c++) {                                                    \
                const T *xc = x + c * HW;                                                      \
                VT tmp[6][6];                                                                  \
                for (int j = 0; j < 6; j++) {                                                  \
                    VT d0 = GATHER(xc + j, vi, mm[0][j]);                                      \
                    VT d1 = GATHER(xc + W + j, vi, mm[1][j]);                                  \
                    VT d2 = GATHER(xc + 2 * W + j, vi, mm[2][j]);                              \
                    VT d3 = GATHER(xc + 3 * W + j, vi, mm[3][j]);                              \
                    VT d4 = GATHER(xc + 4 * W + j, vi, mm[4][j]);                              \
                    VT d5 = GATHER(xc + 5 * W + j, vi, mm[5][j]);                              \
                    TGL_WINO_BT(VT, d0, d1, d2, d3, d4, d5, tmp[0][j], tmp[1][j], tmp[2][j],   \
                                tmp[3][j], tmp[4][j], tmp[5][j]);                              \
                }                                                                              \
                T *v = V + c * cs + l0;                                                        \
                for (int a = 0; a < 6; a++) {                                                  \
                    VT r0, r1, r2, r3, r4, r5;                                                 \
                    TGL_WINO_BT(VT, tmp[a][0], tmp[a][1], tmp[a][2], tmp[a][3], tmp[a][4],     \
                                tmp[a][5], r0, r1, r2, r3, r4, r5);                            \
                    T *va = v + (ptrdiff_t)(a * 6) * xs;                                       \
                    STOREV(va, r0); STOREV(va + xs, r1); STOREV(va + 2 * xs, r2);              \
                    STOREV(va + 3 * xs, r3); STOREV(va + 4 * xs, r4); STOREV(va + 5 * xs, r5); \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    ATTR static void tgl_wino_out_##SFX(const tgl_wino_geom *g, const T *M, ptrdiff_t xs,     \
                                        ptrdiff_t ks, int k0, int k1, ptrdiff_t t0, int L,     \
                                        T *y) {                                                \
        const VT K2 = SET1(2), K4 = SET1(4), K8 = SET1(8);                                     \
        ptrdiff_t tpi = (ptrdiff_t)g->TH * g->TS, tiles = tpi * g->N;                          \
        ptrdiff_t OHW = (ptrdiff_t)g->OH * g->OW;                                              \
        int OW = g->OW;                                                                        \
        for (int l0 = 0; l0 < L; l0 += VL) {                                                   \
            int off[VL] __attribute__((aligned(64)));                                          \
            unsigned rowm[4] = {0}, colm[4] = {0};                                             \
            TGL_WINO_LANES(VL, off, rowm, colm, 4, 4, 4 * th_, 4 * tw_, g->OH, g->OW,              \
                           g->K * (int)OHW)                                                    \
            IDXT vi = IDXLOAD(off);                                                            \
            MASKT mm[4][4];                                                                    \
            for (int i = 0; i < 4; i++)                                                        \
                for (int j = 0; j < 4; j++) mm[i][j] = (MASKT)(rowm[i] & colm[j]);             \
            if (!(rowm[0] & colm[0])) continue;         /* no tile in this lane group */       \
            for (int k = k0; k < k1; k++) {                                                    \
                const T *m = M + (ptrdiff_t)(k - k0) * ks + l0;                                \
                T *yk = y + k * OHW;                                                           \
                VT tmp[6][4];                                                                  \
                for (int a = 0; a < 6; a++) {                                                  \
                    const T *ma = m + (ptrdiff_t)(a * 6) * xs;                                 \
                    VT m0 = LOADV(ma), m1 = LOADV(ma + xs), m2 = LOADV(ma + 2 * xs);           \
                    VT m3 = LOADV(ma + 3 * xs), m4 = LOADV(ma + 4 * xs), m5 = LOADV(ma + 5 * xs);\
                    TGL_WINO_AT(VT, m0, m1, m2, m3, m4, m5, tmp[a][0], tmp[a][1], tmp[a][2],   \
                                tmp[a][3]);                                                    \
                }                                                                              \
                for (int s = 0; s < 4; s++) {                                                  \
                    VT o0, o1, o2, o3;                                                         \
                    TGL_WINO_AT(VT, tmp[0][s], tmp[1][s], tmp[2][s], tmp[3][s], tmp[4][s],     \
                                tmp[5][s], o0, o1, o2, o3);                                    \
                    SCATTER(yk + s, vi, mm[0][s], o0);                                         \
                    SCATTER(yk + OW + s, vi, mm[1][s], o1);                                    \
                    SCATTER(yk + 2 * OW + s, vi, mm[2][s], o2);                                \
                    SCATTER(yk + 3 * OW + s, vi, mm[3][s], o3);                                \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    ATTR static void tgl_wino_gy_##SFX(const tgl_wino_geom *g, const T *gy, ptrdiff_t t0,     \
                                       int L, int k0, int k1, T *G, ptrdiff_t xs,              \
                                       ptrdiff_t ks) {                                         \
        const VT K2 = SET1(2), K4 = SET1(4), K8 = SET1(8);                                     \
        ptrdiff_t tpi = (ptrdiff_t)g->TH * g->TS, tiles = tpi * g->N;                          \
        ptrdiff_t OHW = (ptrdiff_t)g->OH * g->OW;                                              \
        int OW = g->OW;                                                                        \
        for (int l0 = 0; l0 < L; l0 += VL) {                                                   \
            int off[VL] __attribute__((aligned(64)));                                          \
            unsigned rowm[4] = {0}, colm[4] = {0};                                             \
            TGL_WINO_LANES(VL, off, rowm, colm, 4, 4, 4 * th_, 4 * tw_, g->OH, g->OW,              \
                           g->K * (int)OHW)                                                    \
            IDXT vi = IDXLOAD(off);                                                            \
            MASKT mm[4][4];                                                                    \
            for (int i = 0; i < 4; i++)                                                        \
                for (int j = 0; j < 4; j++) mm[i][j] = (MASKT)(rowm[i] & colm[j]);             \
            for (int k = k0; k < k1; k++) {                                                    \
                const T *gk = gy + k * OHW;                                                    \
                VT tmp[4][6];                                                                  \
                for (int r = 0; r < 4; r++) {                                                  \
                    const T *gr = gk + r * OW;                                                 \
                    VT g0 = GATHER(gr, vi, mm[r][0]), g1 = GATHER(gr + 1, vi, mm[r][1]);       \
                    VT g2 = GATHER(gr + 2, vi, mm[r][2]), g3 = GATHER(gr + 3, vi, mm[r][3]);   \
                    TGL_WINO_A(VT, g0, g1, g2, g3, tmp[r][0], tmp[r][1], tmp[r][2], tmp[r][3], \
                               tmp[r][4], tmp[r][5]);                                          \
                }                                                                              \
                T *o = G + k * ks + l0;                                                        \
                for (int b = 0; b < 6; b++) {                                                  \
                    VT u0, u1, u2, u3, u4, u5;                                                 \
                    TGL_WINO_A(VT, tmp[0][b], tmp[1][b], tmp[2][b], tmp[3][b], u0, u1, u2, u3, \
                               u4, u5);                                                        \
                    STOREV(o + (ptrdiff_t)(0 * 6 + b) * xs, u0);                               \
                    STOREV(o + (ptrdiff_t)(1 * 6 + b) * xs, u1);                               \
                    STOREV(o + (ptrdiff_t)(2 * 6 + b) * xs, u2);                               \
                    STOREV(o + (ptrdiff_t)(3 * 6 + b) * xs, u3);                               \
                    STOREV(o + (ptrdiff_t)(4 * 6 + b) * xs, u4);                               \
                    STOREV(o + (ptrdiff_t)(5 * 6 + b) * xs, u5);                               \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }

/* Scalar: one lane. */
#define TGL_W1_IDXLOAD(p) (*(p))
#define TGL_W1_GATHER(p, i, m) ((m) ? (p)[i] : 0)
#define TGL_W1_SCATTER(p, i, m, v) do { if (m) (p)[i] = (v); } while (0)
#define TGL_W1_LOADV(p) (*(p))
#define TGL_W1_STOREV(p, v) (*(p) = (v))
#define TGL_W1_SET1_F32(c) ((float)(c))
#define TGL_W1_SET1_F64(c) ((double)(c))
TGL_WINO_DEFINE_TILES(generic_f32, float, , float, 1, int, TGL_W1_IDXLOAD, unsigned,
                      TGL_W1_GATHER, TGL_W1_SCATTER, TGL_W1_LOADV, TGL_W1_STOREV,
                      TGL_W1_SET1_F32)
TGL_WINO_DEFINE_TILES(generic_f64, double, , double, 1, int, TGL_W1_IDXLOAD, unsigned,
                      TGL_W1_GATHER, TGL_W1_SCATTER, TGL_W1_LOADV, TGL_W1_STOREV,
                      TGL_W1_SET1_F64)

#if TGL_HAVE_SIMD_KERNELS
/* AVX-512: 16 float32 / 8 float64 lanes, hardware gathers and scatters (masked lanes neither
   read nor write memory). GCC's vector extensions give +, -, * on __m512 / __m512d, and
   -ffp-contract=fast (GCC's default outside ISO mode) fuses them into FMAs. */
#define TGL_WZ_IDX16(p) _mm512_load_si512((const void *)(p))
#define TGL_WZ_IDX8(p) _mm256_load_si256((const __m256i *)(p))
#define TGL_WZ_GATHER_PS(p, i, m) _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, i, p, 4)
#define TGL_WZ_GATHER_PD(p, i, m) _mm512_mask_i32gather_pd(_mm512_setzero_pd(), m, i, p, 8)
#define TGL_WZ_SCATTER_PS(p, i, m, v) _mm512_mask_i32scatter_ps(p, m, i, v, 4)
#define TGL_WZ_SCATTER_PD(p, i, m, v) _mm512_mask_i32scatter_pd(p, m, i, v, 8)
TGL_WINO_DEFINE_TILES(avx512_f32, float, __attribute__((target("avx512f,fma"))), __m512, 16,
                      __m512i, TGL_WZ_IDX16, __mmask16, TGL_WZ_GATHER_PS, TGL_WZ_SCATTER_PS,
                      _mm512_loadu_ps, _mm512_storeu_ps, _mm512_set1_ps)
TGL_WINO_DEFINE_TILES(avx512_f64, double, __attribute__((target("avx512f,fma"))), __m512d, 8,
                      __m256i, TGL_WZ_IDX8, __mmask8, TGL_WZ_GATHER_PD, TGL_WZ_SCATTER_PD,
                      _mm512_loadu_pd, _mm512_storeu_pd, _mm512_set1_pd)
#endif

#if TGL_HAVE_SIMD_KERNELS
/* ------------------------------------------------------------------------------------------ */
/* AVX-512 float32 without gathers: four consecutive tiles of a row per 16-float vector       */
/* ------------------------------------------------------------------------------------------ */
/*
 * A lane group is 16 tiles in four quarters of 4 lanes. When each quarter holds 4 consecutive
 * tiles of one tile row (always when TW is a multiple of 4; checked per group), row i of its
 * input tiles is 16 + 2 contiguous floats: load them (masked at the image edges) and
 * deinterleave -- d_j[l] = e[4l + j] -- with permutes; the output rows are interleaved back and
 * stored as 16 contiguous floats. Gathers and scatters (~16 cycles each on the machine measured)
 * made up most of the transform time; this path does it with 2 loads and ~2 permutes per row
 * and column. Other groups take the gather path above.
 */
typedef struct {
    ptrdiff_t off[4];      /* per quarter: offset of its first tile's (row 0, col 0) */
    __mmask16 m0[4], m4[4];/* columns e (e + 4) of the 16 (18) valid, per quarter; 0: empty */
    unsigned rows[4];      /* bit i: row i of the quarter's tiles inside the image */
} tgl_wino_quarters;

/* The quarters of tiles T0 .. T0 + 15; 0 when one straddles two tile rows. in: input side
   (6 rows, offsets into x, padding); else the output side (4 rows, offsets into y / gy). */
static int tgl_wino_quarters_of(const tgl_wino_geom *g, ptrdiff_t T0, int in,
                                tgl_wino_quarters *q) {
    ptrdiff_t tpi = (ptrdiff_t)g->TH * g->TS, tiles = tpi * g->N;
    for (int k = 0; k < 4; k++) {
        ptrdiff_t T = T0 + 4 * k;
        q->off[k] = 0; q->m0[k] = q->m4[k] = 0; q->rows[k] = 0;
        if (T >= tiles) continue;
        int n = (int)(T / tpi), r = (int)(T % tpi), th = r / g->TS, tw = r % g->TS;
        if (tw + 3 >= g->TS) return 0;      /* (phantom tiles: masked by the columns) */
        int row0 = in ? 4 * th - g->ph : 4 * th, col0 = in ? 4 * tw - g->pw : 4 * tw;
        int H = in ? g->H : g->OH, W = in ? g->W : g->OW, nr = in ? 6 : 4;
        q->off[k] = (ptrdiff_t)n * (in ? g->C : g->K) * H * W + (ptrdiff_t)row0 * W + col0;
        for (int i = 0; i < nr; i++)
            if (row0 + i >= 0 && row0 + i < H) q->rows[k] |= 1u << i;
        for (int e = 0; e < 16; e++) {
            if (col0 + e >= 0 && col0 + e < W) q->m0[k] |= (__mmask16)(1u << e);
            if (col0 + 4 + e >= 0 && col0 + 4 + e < W) q->m4[k] |= (__mmask16)(1u << e);
        }
    }
    return 1;
}

/* The rows a channel's quarters read, TGL_WQ_AHEAD channels ahead: the transforms stream
   through x and gy one channel plane at a time, 4 runs per row, too many streams for the
   hardware prefetchers (the loads were the hot spot). */
#define TGL_WQ_AHEAD 2
#define TGL_WQ_PREFETCH(q, base, NROWS, W)                                                     \
    do {                                                                                       \
        for (int k_ = 0; k_ < 4; k_++)                                                         \
            for (int i_ = 0; i_ < NROWS; i_++)                                                 \
                if (((q)->rows[k_] >> i_) & 1) {                                               \
                    const char *p_ = (const char *)((base) + (q)->off[k_] + (ptrdiff_t)i_ * (W)); \
                    _mm_prefetch(p_, _MM_HINT_T0); _mm_prefetch(p_ + 76, _MM_HINT_T0);         \
                }                                                                              \
    } while (0)

/* d_j[l] = e[4l + j], j = J0, J0 + 1, from the 64 values e of v[0..3] (quarter k: e[16k..]) */
#define TGL_WQ_DEINT2(v, P, dA, dB)                                                            \
    do {                                                                                       \
        __m512 t_ = _mm512_permutex2var_ps(v[0], P, v[1]);                                     \
        __m512 w_ = _mm512_permutex2var_ps(v[2], P, v[3]);                                     \
        dA = _mm512_shuffle_f32x4(t_, w_, 0x44); dB = _mm512_shuffle_f32x4(t_, w_, 0xEE);      \
    } while (0)

__attribute__((target("avx512f,fma"))) static void tgl_wino_in_q16_f32(
    const tgl_wino_geom *g, const tgl_wino_quarters *q, const float *x, int c0, int c1,
    float *V, ptrdiff_t xs, ptrdiff_t cs) {
    const __m512 K2 = _mm512_set1_ps(2), K4 = _mm512_set1_ps(4), K5 = _mm512_set1_ps(5);
    const __m512i P01 = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28,
                                          1, 5, 9, 13, 17, 21, 25, 29);
    const __m512i P23 = _mm512_setr_epi32(2, 6, 10, 14, 18, 22, 26, 30,
                                          3, 7, 11, 15, 19, 23, 27, 31);
    ptrdiff_t HW = (ptrdiff_t)g->H * g->W;
    int W = g->W;
    for (int c = c0; c < c1; c++) {
        const float *xc = x + c * HW;
        __m512 tmp[6][6];
        if (c + TGL_WQ_AHEAD < c1) TGL_WQ_PREFETCH(q, xc + TGL_WQ_AHEAD * HW, 6, W);
        for (int i = 0; i < 6; i++) {
            __m512 v[4], u[4], d0, d1, d2, d3, d4, d5;
            for (int k = 0; k < 4; k++) {
                if ((q->rows[k] >> i) & 1) {
                    const float *p = xc + q->off[k] + (ptrdiff_t)i * W;
                    v[k] = _mm512_maskz_loadu_ps(q->m0[k], p);
                    u[k] = _mm512_maskz_loadu_ps(q->m4[k], p + 4);
                } else {
                    v[k] = u[k] = _mm512_setzero_ps();
                }
            }
            TGL_WQ_DEINT2(v, P01, d0, d1);
            TGL_WQ_DEINT2(v, P23, d2, d3);
            TGL_WQ_DEINT2(u, P01, d4, d5);
            TGL_WINO_BT(__m512, d0, d1, d2, d3, d4, d5, tmp[i][0], tmp[i][1], tmp[i][2],
                        tmp[i][3], tmp[i][4], tmp[i][5]);
        }
        float *v = V + c * cs;
        for (int b = 0; b < 6; b++) {
            __m512 r0, r1, r2, r3, r4, r5;
            TGL_WINO_BT(__m512, tmp[0][b], tmp[1][b], tmp[2][b], tmp[3][b], tmp[4][b],
                        tmp[5][b], r0, r1, r2, r3, r4, r5);
            _mm512_storeu_ps(v + (ptrdiff_t)(0 * 6 + b) * xs, r0);
            _mm512_storeu_ps(v + (ptrdiff_t)(1 * 6 + b) * xs, r1);
            _mm512_storeu_ps(v + (ptrdiff_t)(2 * 6 + b) * xs, r2);
            _mm512_storeu_ps(v + (ptrdiff_t)(3 * 6 + b) * xs, r3);
            _mm512_storeu_ps(v + (ptrdiff_t)(4 * 6 + b) * xs, r4);
            _mm512_storeu_ps(v + (ptrdiff_t)(5 * 6 + b) * xs, r5);
        }
    }
}

__attribute__((target("avx512f,fma"))) static void tgl_wino_out_q16_f32(
    const tgl_wino_geom *g, const tgl_wino_quarters *q, const float *M, ptrdiff_t xs,
    ptrdiff_t ks, int k0, int k1, float *y) {
    const __m512 K2 = _mm512_set1_ps(2), K4 = _mm512_set1_ps(4), K8 = _mm512_set1_ps(8);
    /* z_k[4l + s] = o_s[4k + l]: from (o0 | o1) and (o2 | o3) halves */
    const __m512i Q0 = _mm512_setr_epi32(0, 8, 16, 24, 1, 9, 17, 25,
                                         2, 10, 18, 26, 3, 11, 19, 27);
    const __m512i Q1 = _mm512_setr_epi32(4, 12, 20, 28, 5, 13, 21, 29,
                                         6, 14, 22, 30, 7, 15, 23, 31);
    ptrdiff_t OHW = (ptrdiff_t)g->OH * g->OW;
    int OW = g->OW;
    for (int k = k0; k < k1; k++) {
        const float *m = M + (ptrdiff_t)(k - k0) * ks;
        float *yk = y + k * OHW;
        __m512 tmp[6][4], o[4][4];
        for (int a = 0; a < 6; a++) {
            const float *ma = m + (ptrdiff_t)(a * 6) * xs;
            __m512 m0 = _mm512_loadu_ps(ma), m1 = _mm512_loadu_ps(ma + xs);
            __m512 m2 = _mm512_loadu_ps(ma + 2 * xs), m3 = _mm512_loadu_ps(ma + 3 * xs);
            __m512 m4 = _mm512_loadu_ps(ma + 4 * xs), m5 = _mm512_loadu_ps(ma + 5 * xs);
            TGL_WINO_AT(__m512, m0, m1, m2, m3, m4, m5, tmp[a][0], tmp[a][1], tmp[a][2],
                        tmp[a][3]);
        }
        for (int s = 0; s < 4; s++)
            TGL_WINO_AT(__m512, tmp[0][s], tmp[1][s], tmp[2][s], tmp[3][s], tmp[4][s],
                        tmp[5][s], o[0][s], o[1][s], o[2][s], o[3][s]);
        for (int r = 0; r < 4; r++) {
            __m512 t01 = _mm512_shuffle_f32x4(o[r][0], o[r][1], 0x44);
            __m512 t23 = _mm512_shuffle_f32x4(o[r][2], o[r][3], 0x44);
            __m512 h01 = _mm512_shuffle_f32x4(o[r][0], o[r][1], 0xEE);
            __m512 h23 = _mm512_shuffle_f32x4(o[r][2], o[r][3], 0xEE);
            __m512 z[4];
            z[0] = _mm512_permutex2var_ps(t01, Q0, t23);
            z[1] = _mm512_permutex2var_ps(t01, Q1, t23);
            z[2] = _mm512_permutex2var_ps(h01, Q0, h23);
            z[3] = _mm512_permutex2var_ps(h01, Q1, h23);
            for (int kq = 0; kq < 4; kq++)
                if ((q->rows[kq] >> r) & 1)
                    _mm512_mask_storeu_ps(yk + q->off[kq] + (ptrdiff_t)r * OW, q->m0[kq], z[kq]);
        }
    }
}

__attribute__((target("avx512f,fma"))) static void tgl_wino_gy_q16_f32(
    const tgl_wino_geom *g, const tgl_wino_quarters *q, const float *gy, int k0, int k1,
    float *G, ptrdiff_t xs, ptrdiff_t ks) {
    const __m512 K2 = _mm512_set1_ps(2), K4 = _mm512_set1_ps(4), K8 = _mm512_set1_ps(8);
    const __m512i P01 = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28,
                                          1, 5, 9, 13, 17, 21, 25, 29);
    const __m512i P23 = _mm512_setr_epi32(2, 6, 10, 14, 18, 22, 26, 30,
                                          3, 7, 11, 15, 19, 23, 27, 31);
    ptrdiff_t OHW = (ptrdiff_t)g->OH * g->OW;
    int OW = g->OW;
    for (int k = k0; k < k1; k++) {
        const float *gk = gy + k * OHW;
        __m512 tmp[4][6];
        if (k + TGL_WQ_AHEAD < k1) TGL_WQ_PREFETCH(q, gk + TGL_WQ_AHEAD * OHW, 4, OW);
        for (int r = 0; r < 4; r++) {
            __m512 v[4], g0, g1, g2, g3;
            for (int kq = 0; kq < 4; kq++)
                v[kq] = ((q->rows[kq] >> r) & 1)
                            ? _mm512_maskz_loadu_ps(q->m0[kq], gk + q->off[kq] + (ptrdiff_t)r * OW)
                            : _mm512_setzero_ps();
            TGL_WQ_DEINT2(v, P01, g0, g1);
            TGL_WQ_DEINT2(v, P23, g2, g3);
            TGL_WINO_A(__m512, g0, g1, g2, g3, tmp[r][0], tmp[r][1], tmp[r][2], tmp[r][3],
                       tmp[r][4], tmp[r][5]);
        }
        float *o = G + k * ks;
        for (int b = 0; b < 6; b++) {
            __m512 u0, u1, u2, u3, u4, u5;
            TGL_WINO_A(__m512, tmp[0][b], tmp[1][b], tmp[2][b], tmp[3][b], u0, u1, u2, u3, u4,
                       u5);
            _mm512_storeu_ps(o + (ptrdiff_t)(0 * 6 + b) * xs, u0);
            _mm512_storeu_ps(o + (ptrdiff_t)(1 * 6 + b) * xs, u1);
            _mm512_storeu_ps(o + (ptrdiff_t)(2 * 6 + b) * xs, u2);
            _mm512_storeu_ps(o + (ptrdiff_t)(3 * 6 + b) * xs, u3);
            _mm512_storeu_ps(o + (ptrdiff_t)(4 * 6 + b) * xs, u4);
            _mm512_storeu_ps(o + (ptrdiff_t)(5 * 6 + b) * xs, u5);
        }
    }
}

/* Per 16-lane group: the contiguous path where the quarters allow it, else the gathers. */
static void tgl_wino_in_avx512q_f32(const tgl_wino_geom *g, const float *x, ptrdiff_t t0, int L,
                                    int c0, int c1, float *V, ptrdiff_t xs, ptrdiff_t cs) {
    tgl_wino_quarters q;
    for (int l0 = 0; l0 < L; l0 += 16) {
        if (tgl_wino_quarters_of(g, t0 + l0, 1, &q))
            tgl_wino_in_q16_f32(g, &q, x, c0, c1, V + l0, xs, cs);
        else
            tgl_wino_in_avx512_f32(g, x, t0 + l0, 16, c0, c1, V + l0, xs, cs);
    }
}
static void tgl_wino_out_avx512q_f32(const tgl_wino_geom *g, const float *M, ptrdiff_t xs,
                                     ptrdiff_t ks, int k0, int k1, ptrdiff_t t0, int L, float *y) {
    tgl_wino_quarters q;
    for (int l0 = 0; l0 < L; l0 += 16) {
        if (tgl_wino_quarters_of(g, t0 + l0, 0, &q))
            tgl_wino_out_q16_f32(g, &q, M + l0, xs, ks, k0, k1, y);
        else
            tgl_wino_out_avx512_f32(g, M + l0, xs, ks, k0, k1, t0 + l0, 16, y);
    }
}
static void tgl_wino_gy_avx512q_f32(const tgl_wino_geom *g, const float *gy, ptrdiff_t t0, int L,
                                    int k0, int k1, float *G, ptrdiff_t xs, ptrdiff_t ks) {
    tgl_wino_quarters q;
    for (int l0 = 0; l0 < L; l0 += 16) {
        if (tgl_wino_quarters_of(g, t0 + l0, 0, &q))
            tgl_wino_gy_q16_f32(g, &q, gy, k0, k1, G + l0, xs, ks);
        else
            tgl_wino_gy_avx512_f32(g, gy, t0 + l0, 16, k0, k1, G + l0, xs, ks);
    }
}
#define tgl_wino_in_avx512f_f32 tgl_wino_in_avx512q_f32
#define tgl_wino_out_avx512f_f32 tgl_wino_out_avx512q_f32
#define tgl_wino_gy_avx512f_f32 tgl_wino_gy_avx512q_f32
#define tgl_wino_in_avx512f_f64 tgl_wino_in_avx512_f64
#define tgl_wino_out_avx512f_f64 tgl_wino_out_avx512_f64
#define tgl_wino_gy_avx512f_f64 tgl_wino_gy_avx512_f64
#endif

/* The transforms for an ISA (tgl_kernel_info.isa): AVX-512 has vector versions (float32: the
   contiguous path where it applies), the others run the scalar ones (correct everywhere; auto
   picks winograd only where it measured faster). */
#if TGL_HAVE_SIMD_KERNELS
#define TGL_WINO_PICK(NAME, SFX, ...)                                                          \
    if (isa == TGL_ISA_AVX512) { NAME##_avx512f_##SFX(__VA_ARGS__); return; }                  \
    NAME##_generic_##SFX(__VA_ARGS__);
#else
#define TGL_WINO_PICK(NAME, SFX, ...) NAME##_generic_##SFX(__VA_ARGS__);
#endif
#define TGL_WINO_DISPATCH(SFX, T)                                                              \
    static void tgl_wino_in_##SFX(int isa, const tgl_wino_geom *g, const T *x, ptrdiff_t t0,   \
                                  int L, int c0, int c1, T *V, ptrdiff_t xs, ptrdiff_t cs) {   \
        TGL_WINO_PICK(tgl_wino_in, SFX, g, x, t0, L, c0, c1, V, xs, cs)                        \
    }                                                                                          \
    static void tgl_wino_out_##SFX(int isa, const tgl_wino_geom *g, const T *M, ptrdiff_t xs,  \
                                   ptrdiff_t ks, int k0, int k1, ptrdiff_t t0, int L, T *y) {  \
        TGL_WINO_PICK(tgl_wino_out, SFX, g, M, xs, ks, k0, k1, t0, L, y)                       \
    }                                                                                          \
    static void tgl_wino_gy_##SFX(int isa, const tgl_wino_geom *g, const T *gy, ptrdiff_t t0,  \
                                  int L, int k0, int k1, T *G, ptrdiff_t xs, ptrdiff_t ks) {   \
        TGL_WINO_PICK(tgl_wino_gy, SFX, g, gy, t0, L, k0, k1, G, xs, ks)                       \
    }
TGL_WINO_DISPATCH(f32, float)
TGL_WINO_DISPATCH(f64, double)

#endif /* TGL_WINOGRAD_H */
