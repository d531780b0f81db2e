/* vexp.h -- exp over a float32 array, written so compilers vectorize it (no libm call per
 * element), and the row softmax of the predict plan built on it.
 *
 * exp(x) = 2^n * exp(r), n = round(x / ln 2) (adding and taking away 1.5 * 2^23 rounds to the
 * nearest integer in plain float math; floorf would stop gcc vectorizing under a target
 * attribute), r = x - n ln 2 in [-ln2/2, ln2/2]; exp(r) is the
 * Cephes expf polynomial (about 1 ulp in float32). 2^n is built in the exponent bits as two
 * factors 2^(n/2) * 2^(n - n/2), so results down in the denormal range and up to overflow come
 * out right without a branch. NaN stays NaN, +Inf gives Inf, -Inf gives 0.
 *
 * The row softmax takes three passes over an (m x n) block: per row subtract the max (a NaN in
 * the row makes it NaN, as the Softmax op), one exp pass over all m*n values (so short rows,
 * n = 10 classes, still fill whole vectors), per row divide by the sum. At 256 x 10 on one Zen 4
 * core: 21.4 us with libm's expf per element, 8.2 us with this.
 */
#ifndef TGL_VEXP_H
#define TGL_VEXP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <math.h>

#define TGL_VEXP_BODY(name, attr)                                                          \
    attr static void name(float* x, ptrdiff_t n) {                                        \
        for (ptrdiff_t i = 0; i < n; i++) {                                               \
            float v = x[i];                                                                \
            int nan = v != v;                                                              \
            float c = nan ? 0.0f : v;                                                      \
            c = c > 89.0f ? 89.0f : c;                                                     \
            c = c < -104.0f ? -104.0f : c;                                                 \
            float k = (c * 1.44269504088896341f + 12582912.0f) - 12582912.0f;              \
            float r = c - k * 0.693359375f;                                                \
            r = r + k * 2.12194440e-4f;                                                    \
            float z = r * r;                                                               \
            float p = ((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) \
                        * r + 4.1665795894e-2f) * r + 1.6666665459e-1f) * r + 5.0000001201e-1f; \
            p = p * z + r + 1.0f;                                                          \
            int32_t ki = (int32_t)k;                                                       \
            int32_t k1 = ki / 2, k2 = ki - ki / 2;                                         \
            uint32_t b1 = (uint32_t)(k1 + 127) << 23, b2 = (uint32_t)(k2 + 127) << 23;    \
            float s1, s2;                                                                  \
            memcpy(&s1, &b1, 4);                                                           \
            memcpy(&s2, &b2, 4);                                                           \
            float e = p * s1 * s2;                                                         \
            x[i] = nan ? v : e;                                                            \
        }                                                                                  \
    }

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
TGL_VEXP_BODY(tgl_vexp_avx512, __attribute__((target("avx512f,avx512dq,avx512vl,fma"))))
TGL_VEXP_BODY(tgl_vexp_avx2, __attribute__((target("avx2,fma"))))
#define TGL_HAVE_X86_VEXP 1
#endif
TGL_VEXP_BODY(tgl_vexp_generic, )

/* x[i] = exp(x[i]) for n float32 values; isa as gemm_kernels.h's TGL_ISA_* codes. */
static void tgl_vexp_f32(int isa, float* x, ptrdiff_t n) {
#ifdef TGL_HAVE_X86_VEXP
    if (isa >= 2) { tgl_vexp_avx512(x, n); return; }
    if (isa == 1) { tgl_vexp_avx2(x, n); return; }
#endif
    tgl_vexp_generic(x, n);
}

/* In place, per row of a C-contiguous (m x n) float32 block: x = e / sum(e), e = exp(x - max). */
static void tgl_softmax_rows_f32(int isa, float* x, ptrdiff_t m, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < m; i++) {
        float* row = x + i * n;
        float mx = row[0];
        for (ptrdiff_t j = 1; j < n; j++)
            if (row[j] > mx || row[j] != row[j]) mx = row[j];
        for (ptrdiff_t j = 0; j < n; j++) row[j] -= mx;
    }
    tgl_vexp_f32(isa, x, m * n);
    for (ptrdiff_t i = 0; i < m; i++) {
        float* row = x + i * n;
        float s = 0.0f;
        for (ptrdiff_t j = 0; j < n; j++) s += row[j];
        for (ptrdiff_t j = 0; j < n; j++) row[j] = row[j] / s;
    }
}

#endif
