/* check_kernels.h -- is every value of a float array finite? One streaming pass, no temporary.
 *
 * A float32 is NaN or +-Inf exactly when its 8 exponent bits are all ones (0x7f800000 under the
 * mask), a float64 when its 11 are (0x7ff0000000000000). The loop ORs the per-element answer of
 * that test; compilers turn it into vector compare + or at the target's width, so it runs at
 * the speed of reading the array (model.predict checks its input with it: NumPy's
 * isfinite(x).all() makes a boolean temporary and a second pass).
 *
 * Each ISA variant is the same C with a target attribute; the caller picks one at run time.
 */
#ifndef TGL_CHECK_KERNELS_H
#define TGL_CHECK_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#define TGL_NONFINITE_BODY(name, attr)                                                   \
    attr static int name##_f32(const uint32_t* p, ptrdiff_t n) {                         \
        uint32_t bad = 0;                                                                \
        for (ptrdiff_t i = 0; i < n; i++) bad |= (p[i] & 0x7f800000u) == 0x7f800000u;    \
        return bad != 0;                                                                 \
    }                                                                                    \
    attr static int name##_f64(const uint64_t* p, ptrdiff_t n) {                         \
        uint64_t bad = 0;                                                                \
        const uint64_t e = 0x7ff0000000000000ull;                                        \
        for (ptrdiff_t i = 0; i < n; i++) bad |= (p[i] & e) == e;                        \
        return bad != 0;                                                                 \
    }

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
TGL_NONFINITE_BODY(tgl_nonfinite_avx512, __attribute__((target("avx512f,avx512bw"))))
TGL_NONFINITE_BODY(tgl_nonfinite_avx2, __attribute__((target("avx2"))))
#define TGL_HAVE_X86_CHECK 1
#endif
TGL_NONFINITE_BODY(tgl_nonfinite_generic, )

/* 1 when any of the n values at p is NaN or +-Inf. isa: 2 avx512, 1 avx2, 0 generic (the
 * TGL_ISA_* codes of gemm_kernels.h). Chunks of 64K values let a bad value end the scan early. */
static int tgl_any_nonfinite(int isa, const void* data, ptrdiff_t n, int dsize) {
    const ptrdiff_t chunk = 1 << 16;
    for (ptrdiff_t i0 = 0; i0 < n; i0 += chunk) {
        ptrdiff_t m = n - i0 < chunk ? n - i0 : chunk;
        int bad;
#ifdef TGL_HAVE_X86_CHECK
        if (isa >= 2)
            bad = dsize == 4 ? tgl_nonfinite_avx512_f32((const uint32_t*)data + i0, m)
                             : tgl_nonfinite_avx512_f64((const uint64_t*)data + i0, m);
        else if (isa == 1)
            bad = dsize == 4 ? tgl_nonfinite_avx2_f32((const uint32_t*)data + i0, m)
                             : tgl_nonfinite_avx2_f64((const uint64_t*)data + i0, m);
        else
#endif
            bad = dsize == 4 ? tgl_nonfinite_generic_f32((const uint32_t*)data + i0, m)
                             : tgl_nonfinite_generic_f64((const uint64_t*)data + i0, m);
        if (bad) return 1;
    }
    return 0;
}

#endif
