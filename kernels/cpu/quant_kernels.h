/* quant_kernels.h -- the int8 x int8 -> int32 row kernels behind quant.pxi (qgemm_s8s8s32).
 *
 *   for i in rows r0..r1:  for j in 0..n:  out[i*n + j] = sum_t int32(A[i*k + t]) * int32(W[j*k + t])
 *
 * A (m, k) and W (n, k) are int8, row-major, contiguous; out (m, n) int32. Every variant computes
 * the exact integer sum, so all of them (and NumPy) agree bit for bit; the caller keeps
 * k <= 133,152 so no int32 sum can overflow.
 *
 * The SIMD variants widen 16 (AVX2) or 32 (AVX-512BW) int8 values to int16 and use
 * madd_epi16, which multiplies int16 pairs and adds adjacent products into int32 lanes (each
 * pair sum is at most 2 * 128 * 128 = 32,768: exact). Four output channels share each load of
 * the A row. Included after gemm_kernels.h (TGL_X86, TGL_ISA_*); built for baseline x86-64 with
 * per-function target attributes, chosen at run time from the GEMM's ISA (set_isa).
 */
#ifndef TGL_QUANT_KERNELS_H
#define TGL_QUANT_KERNELS_H

#include <stddef.h>
#include <stdint.h>

static int32_t tgl_qdot_generic(const int8_t *a, const int8_t *w, ptrdiff_t k) {
    int32_t s = 0;
    for (ptrdiff_t t = 0; t < k; t++) s += (int32_t)a[t] * (int32_t)w[t];
    return s;
}

static void tgl_qrows_generic(const int8_t *A, const int8_t *W, int32_t *out, ptrdiff_t r0,
                              ptrdiff_t r1, ptrdiff_t n, ptrdiff_t k) {
    for (ptrdiff_t i = r0; i < r1; i++)
        for (ptrdiff_t j = 0; j < n; j++) out[i * n + j] = tgl_qdot_generic(A + i * k, W + j * k, k);
}

#if TGL_X86 && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

__attribute__((target("avx2"))) static inline int32_t tgl_hsum_avx2(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

#define TGL_W16(p) _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(p)))

__attribute__((target("avx2"))) static void tgl_qrows_avx2(const int8_t *A, const int8_t *W,
                                                          int32_t *out, ptrdiff_t r0,
                                                          ptrdiff_t r1, ptrdiff_t n,
                                                          ptrdiff_t k) {
    const ptrdiff_t k16 = k & ~(ptrdiff_t)15;
    for (ptrdiff_t i = r0; i < r1; i++) {
        const int8_t *a = A + i * k;
        int32_t *o = out + i * n;
        ptrdiff_t j = 0;
        for (; j + 4 <= n; j += 4) {
            const int8_t *w0 = W + j * k, *w1 = w0 + k, *w2 = w1 + k, *w3 = w2 + k;
            __m256i c0 = _mm256_setzero_si256(), c1 = c0, c2 = c0, c3 = c0;
            for (ptrdiff_t t = 0; t < k16; t += 16) {
                const __m256i va = TGL_W16(a + t);
                c0 = _mm256_add_epi32(c0, _mm256_madd_epi16(va, TGL_W16(w0 + t)));
                c1 = _mm256_add_epi32(c1, _mm256_madd_epi16(va, TGL_W16(w1 + t)));
                c2 = _mm256_add_epi32(c2, _mm256_madd_epi16(va, TGL_W16(w2 + t)));
                c3 = _mm256_add_epi32(c3, _mm256_madd_epi16(va, TGL_W16(w3 + t)));
            }
            o[j] = tgl_hsum_avx2(c0) + tgl_qdot_generic(a + k16, w0 + k16, k - k16);
            o[j + 1] = tgl_hsum_avx2(c1) + tgl_qdot_generic(a + k16, w1 + k16, k - k16);
            o[j + 2] = tgl_hsum_avx2(c2) + tgl_qdot_generic(a + k16, w2 + k16, k - k16);
            o[j + 3] = tgl_hsum_avx2(c3) + tgl_qdot_generic(a + k16, w3 + k16, k - k16);
        }
        for (; j < n; j++) {
            const int8_t *w0 = W + j * k;
            __m256i c0 = _mm256_setzero_si256();
            for (ptrdiff_t t = 0; t < k16; t += 16)
                c0 = _mm256_add_epi32(c0, _mm256_madd_epi16(TGL_W16(a + t), TGL_W16(w0 + t)));
            o[j] = tgl_hsum_avx2(c0) + tgl_qdot_generic(a + k16, w0 + k16, k - k16);
        }
    }
}

#define TGL_W32(p) _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(p)))

__attribute__((target("avx512f,avx512bw"))) static void tgl_qrows_avx512(
    const int8_t *A, const int8_t *W, int32_t *out, ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t n,
    ptrdiff_t k) {
    const ptrdiff_t k32 = k & ~(ptrdiff_t)31;
    for (ptrdiff_t i = r0; i < r1; i++) {
        const int8_t *a = A + i * k;
        int32_t *o = out + i * n;
        ptrdiff_t j = 0;
        for (; j + 4 <= n; j += 4) {
            const int8_t *w0 = W + j * k, *w1 = w0 + k, *w2 = w1 + k, *w3 = w2 + k;
            __m512i c0 = _mm512_setzero_si512(), c1 = c0, c2 = c0, c3 = c0;
            for (ptrdiff_t t = 0; t < k32; t += 32) {
                const __m512i va = TGL_W32(a + t);
                c0 = _mm512_add_epi32(c0, _mm512_madd_epi16(va, TGL_W32(w0 + t)));
                c1 = _mm512_add_epi32(c1, _mm512_madd_epi16(va, TGL_W32(w1 + t)));
                c2 = _mm512_add_epi32(c2, _mm512_madd_epi16(va, TGL_W32(w2 + t)));
                c3 = _mm512_add_epi32(c3, _mm512_madd_epi16(va, TGL_W32(w3 + t)));
            }
            o[j] = _mm512_reduce_add_epi32(c0) + tgl_qdot_generic(a + k32, w0 + k32, k - k32);
            o[j + 1] = _mm512_reduce_add_epi32(c1) + tgl_qdot_generic(a + k32, w1 + k32, k - k32);
            o[j + 2] = _mm512_reduce_add_epi32(c2) + tgl_qdot_generic(a + k32, w2 + k32, k - k32);
            o[j + 3] = _mm512_reduce_add_epi32(c3) + tgl_qdot_generic(a + k32, w3 + k32, k - k32);
        }
        for (; j < n; j++) {
            const int8_t *w0 = W + j * k;
            __m512i c0 = _mm512_setzero_si512();
            for (ptrdiff_t t = 0; t < k32; t += 32)
                c0 = _mm512_add_epi32(c0, _mm512_madd_epi16(TGL_W32(a + t), TGL_W32(w0 + t)));
            o[j] = _mm512_reduce_add_epi32(c0) + tgl_qdot_generic(a + k32, w0 + k32, k - k32);
        }
    }
}

static int tgl_q_have_avx512bw(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
}
#endif

/* Rows r0..r1 with the variant for GEMM ISA ``isa`` (AVX-512 also needs AVX-512BW here). */
static void tgl_qrows(int isa, const int8_t *A, const int8_t *W, int32_t *out, ptrdiff_t r0,
                      ptrdiff_t r1, ptrdiff_t n, ptrdiff_t k) {
#if TGL_X86 && (defined(__GNUC__) || defined(__clang__))
    if (isa == TGL_ISA_AVX512 && tgl_q_have_avx512bw()) {
        tgl_qrows_avx512(A, W, out, r0, r1, n, k);
        return;
    }
    if (isa >= TGL_ISA_AVX2) {
        tgl_qrows_avx2(A, W, out, r0, r1, n, k);
        return;
    }
#endif
    (void)isa;
    tgl_qrows_generic(A, W, out, r0, r1, n, k);
}

#endif
