# rnn.pxi -- the step loops of the fused recurrent layers (included by _cpu.pyx).
#
# tinygrad_lite/nn/_recurrent_core.py computes every step's input projection with one GEMM and
# the weight gradients with one GEMM each; what is left is sequential in time and lives here:
# per step one small GEMM (the recurrent projection h_(t-1) op(W_hh), or in backward
# dA_t op(W_hh)^T) on gemm_core, and one fused pass over the gates of every batch row.
# The contract (argument order, array shapes, meaning) is the one of the NumPy step kernels
# _np_*_steps in _recurrent_core.py, which are the oracle these are tested against.
#
# Gate offsets ``offs`` are the column offsets of the gate blocks in canonical order (LSTM i, f,
# g, o; GRU r, z, n), so PyTorch's and Keras' gate orders both run here. ``keras`` picks the
# W_hh layout: (H, G*H) for Keras, (G*H, H) for PyTorch. ``reverse`` runs t = T-1 .. 0.
#
# The row passes are C functions compiled three times (baseline x86-64, AVX2+FMA, AVX-512F) and
# chosen by _cpu.set_isa / TINYGRAD_LITE_CPU_ISA like the GEMM micro-kernel. float32 uses a
# branch-free exp (Cephes-style: round x/ln2, degree-6 polynomial, scale by 2^n; relative error
# about 2e-7) so gcc vectorizes the loops; sigmoid(x) = 1 / (1 + exp(-x)) and tanh(x) from a
# polynomial for |x| < 0.625 and from 1 - 2 / (exp(2|x|) + 1) above. float64 uses libm's exp and
# tanh (scalar: float64 is for checking, not for speed).

from libc.math cimport exp as _exp_d, tanh as _tanh_d

cdef extern from *:
    """
    #include <math.h>
    #include <stdint.h>
    #include <string.h>

    static inline __attribute__((always_inline)) float tgl_expf_a(float x) {
        x = x < -87.0f ? -87.0f : x;
        x = x > 88.0f ? 88.0f : x;
        float t = x * 1.44269504088896341f;
        float n = (t + 12582912.0f) - 12582912.0f;      /* round to nearest, |t| < 2^22 */
        float r = x - n * 0.693359375f;
        r = r - n * -2.12194440e-4f;
        float p = 1.9875691500e-4f;
        p = p * r + 1.3981999507e-3f;
        p = p * r + 8.3334519073e-3f;
        p = p * r + 4.1665795894e-2f;
        p = p * r + 1.6666665459e-1f;
        p = p * r + 5.0000001201e-1f;
        p = p * r * r + r + 1.0f;
        int32_t e = ((int32_t)n + 127) << 23;
        float s;
        memcpy(&s, &e, sizeof s);
        return p * s;
    }
    static inline __attribute__((always_inline)) float tgl_sigf_a(float x) {
        return 1.0f / (1.0f + tgl_expf_a(-x));
    }
    static inline __attribute__((always_inline)) float tgl_tanhf_a(float x) {
        float ax = x < 0.0f ? -x : x;
        float z = x * x;
        float small = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z
                         - 5.37397155531e-2f) * z + 1.33314422036e-1f) * z
                       - 3.33332819422e-1f) * z * x + x;
        float big = 1.0f - 2.0f / (tgl_expf_a(2.0f * ax) + 1.0f);
        big = x < 0.0f ? -big : big;
        return ax < 0.625f ? small : big;
    }
    static inline __attribute__((always_inline)) double tgl_sig_d(double x) {
        return 1.0 / (1.0 + exp(-x));
    }

    /* One batch row of each pass. T: float/double; SIG, TANH: the nonlinearities. */
    #define TGL_RNN_ROWS(SFX, T, ATTR, SIG, TANH)                                               \
    ATTR static void tgl_lstm_fwd_##SFX(int H, T *restrict ai, T *restrict af, T *restrict ag,  \
            T *restrict ao, const T *restrict cp, T *restrict c, T *restrict tc, T *restrict h) \
    {                                                                                          \
        for (int j = 0; j < H; j++) {                                                          \
            T i = SIG(ai[j]), f = SIG(af[j]), g = TANH(ag[j]), o = SIG(ao[j]);                 \
            ai[j] = i; af[j] = f; ag[j] = g; ao[j] = o;                                        \
            T cc = f * cp[j] + i * g;                                                          \
            T t = TANH(cc);                                                                    \
            c[j] = cc; tc[j] = t; h[j] = o * t;                                                \
        }                                                                                      \
    }                                                                                          \
    ATTR static void tgl_lstm_bwd_##SFX(int H, const T *restrict ai, const T *restrict af,     \
            const T *restrict ag, const T *restrict ao, const T *restrict cp,                  \
            const T *restrict tc, const T *restrict gy, const T *restrict dh, T *restrict dc,  \
            T *restrict di, T *restrict df, T *restrict dg, T *restrict dout)                  \
    {                                                                                          \
        for (int j = 0; j < H; j++) {                                                          \
            T i = ai[j], f = af[j], g = ag[j], o = ao[j], t = tc[j];                           \
            T d = dh[j] + gy[j];                                                               \
            T e = dc[j] + d * o * ((T)1 - t * t);                                              \
            di[j] = e * g * i * ((T)1 - i);                                                    \
            df[j] = e * cp[j] * f * ((T)1 - f);                                                \
            dg[j] = e * i * ((T)1 - g * g);                                                    \
            dout[j] = d * t * o * ((T)1 - o);                                                  \
            dc[j] = e * f;                                                                     \
        }                                                                                      \
    }                                                                                          \
    ATTR static void tgl_gru_fwd_##SFX(int H, T *restrict ar, T *restrict az, T *restrict an,  \
            const T *restrict hr, const T *restrict hz, const T *restrict hn,                  \
            T *restrict hn_save, const T *restrict hp, T *restrict h)                          \
    {                                                                                          \
        for (int j = 0; j < H; j++) {                                                          \
            T r = SIG(ar[j] + hr[j]), z = SIG(az[j] + hz[j]);                                  \
            T n = TANH(an[j] + r * hn[j]);                                                     \
            ar[j] = r; az[j] = z; an[j] = n; hn_save[j] = hn[j];                               \
            h[j] = ((T)1 - z) * n + z * hp[j];                                                 \
        }                                                                                      \
    }                                                                                          \
    ATTR static void tgl_gru_bwd_##SFX(int H, const T *restrict ar, const T *restrict az,      \
            const T *restrict an, const T *restrict hn, const T *restrict hp,                  \
            const T *restrict gy, T *restrict dh, T *restrict xr, T *restrict xz,              \
            T *restrict xn, T *restrict yr, T *restrict yz, T *restrict yn)                    \
    {                                                                                          \
        for (int j = 0; j < H; j++) {                                                          \
            T r = ar[j], z = az[j], n = an[j];                                                 \
            T d = dh[j] + gy[j];                                                               \
            T dn = d * ((T)1 - z) * ((T)1 - n * n);                                            \
            T dr = dn * hn[j] * r * ((T)1 - r);                                                \
            T dz = d * (hp[j] - n) * z * ((T)1 - z);                                           \
            xr[j] = dr; xz[j] = dz; xn[j] = dn;                                                \
            yr[j] = dr; yz[j] = dz; yn[j] = dn * r;                                            \
            dh[j] = d * z;                                                                     \
        }                                                                                      \
    }                                                                                          \
    ATTR static void tgl_rnn_fwd_##SFX(int n, const T *restrict a, T *restrict h, int relu)    \
    {                                                                                          \
        if (relu) { for (int j = 0; j < n; j++) h[j] = a[j] > (T)0 ? a[j] : (T)0; }            \
        else      { for (int j = 0; j < n; j++) h[j] = TANH(a[j]); }                           \
    }                                                                                          \
    ATTR static void tgl_rnn_bwd_##SFX(int n, const T *restrict h, const T *restrict gy,       \
            const T *restrict dh, T *restrict da, int relu)                                    \
    {                                                                                          \
        if (relu) { for (int j = 0; j < n; j++)                                                \
                        da[j] = h[j] > (T)0 ? dh[j] + gy[j] : (T)0; }                          \
        else      { for (int j = 0; j < n; j++)                                                \
                        da[j] = (dh[j] + gy[j]) * ((T)1 - h[j] * h[j]); }                      \
    }

    /* no-trapping-math: the loops compute both sides of each select and pick one; with FP
       traps assumed possible gcc turns the selects back into branches and vectorizes nothing
       below AVX-512 (which has masked ops). It changes no value (it is not -ffast-math). */
    #if defined(__GNUC__) && !defined(__clang__)
    #define TGL_RNN_NT __attribute__((optimize("no-trapping-math")))
    #else
    #define TGL_RNN_NT
    #endif
    TGL_RNN_ROWS(f32_generic, float, TGL_RNN_NT, tgl_sigf_a, tgl_tanhf_a)
    TGL_RNN_ROWS(f64_generic, double, , tgl_sig_d, tanh)
    #if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && !defined(__clang__)
    #define TGL_RNN_SIMD 1
    TGL_RNN_ROWS(f32_avx2, float, __attribute__((target("avx2,fma"))) TGL_RNN_NT, tgl_sigf_a,
                 tgl_tanhf_a)
    TGL_RNN_ROWS(f32_avx512, float, __attribute__((target("avx512f,fma"))) TGL_RNN_NT,
                 tgl_sigf_a, tgl_tanhf_a)
    #else
    #define TGL_RNN_SIMD 0
    #define tgl_lstm_fwd_f32_avx2 tgl_lstm_fwd_f32_generic
    #define tgl_lstm_bwd_f32_avx2 tgl_lstm_bwd_f32_generic
    #define tgl_gru_fwd_f32_avx2 tgl_gru_fwd_f32_generic
    #define tgl_gru_bwd_f32_avx2 tgl_gru_bwd_f32_generic
    #define tgl_rnn_fwd_f32_avx2 tgl_rnn_fwd_f32_generic
    #define tgl_rnn_bwd_f32_avx2 tgl_rnn_bwd_f32_generic
    #define tgl_lstm_fwd_f32_avx512 tgl_lstm_fwd_f32_generic
    #define tgl_lstm_bwd_f32_avx512 tgl_lstm_bwd_f32_generic
    #define tgl_gru_fwd_f32_avx512 tgl_gru_fwd_f32_generic
    #define tgl_gru_bwd_f32_avx512 tgl_gru_bwd_f32_generic
    #define tgl_rnn_fwd_f32_avx512 tgl_rnn_fwd_f32_generic
    #define tgl_rnn_bwd_f32_avx512 tgl_rnn_bwd_f32_generic
    #endif
    """
    void tgl_lstm_fwd_f32_generic(int, float*, float*, float*, float*, const float*, float*,
                                  float*, float*) noexcept nogil
    void tgl_lstm_fwd_f32_avx2(int, float*, float*, float*, float*, const float*, float*,
                               float*, float*) noexcept nogil
    void tgl_lstm_fwd_f32_avx512(int, float*, float*, float*, float*, const float*, float*,
                                 float*, float*) noexcept nogil
    void tgl_lstm_fwd_f64_generic(int, double*, double*, double*, double*, const double*,
                                  double*, double*, double*) noexcept nogil
    void tgl_lstm_bwd_f32_generic(int, const float*, const float*, const float*, const float*,
                                  const float*, const float*, const float*, const float*, float*,
                                  float*, float*, float*, float*) noexcept nogil
    void tgl_lstm_bwd_f32_avx2(int, const float*, const float*, const float*, const float*,
                               const float*, const float*, const float*, const float*, float*,
                               float*, float*, float*, float*) noexcept nogil
    void tgl_lstm_bwd_f32_avx512(int, const float*, const float*, const float*, const float*,
                                 const float*, const float*, const float*, const float*, float*,
                                 float*, float*, float*, float*) noexcept nogil
    void tgl_lstm_bwd_f64_generic(int, const double*, const double*, const double*,
                                  const double*, const double*, const double*, const double*,
                                  const double*, double*, double*, double*, double*,
                                  double*) noexcept nogil
    void tgl_gru_fwd_f32_generic(int, float*, float*, float*, const float*, const float*,
                                 const float*, float*, const float*, float*) noexcept nogil
    void tgl_gru_fwd_f32_avx2(int, float*, float*, float*, const float*, const float*,
                              const float*, float*, const float*, float*) noexcept nogil
    void tgl_gru_fwd_f32_avx512(int, float*, float*, float*, const float*, const float*,
                                const float*, float*, const float*, float*) noexcept nogil
    void tgl_gru_fwd_f64_generic(int, double*, double*, double*, const double*, const double*,
                                 const double*, double*, const double*, double*) noexcept nogil
    void tgl_gru_bwd_f32_generic(int, const float*, const float*, const float*, const float*,
                                 const float*, const float*, float*, float*, float*, float*,
                                 float*, float*, float*) noexcept nogil
    void tgl_gru_bwd_f32_avx2(int, const float*, const float*, const float*, const float*,
                              const float*, const float*, float*, float*, float*, float*,
                              float*, float*, float*) noexcept nogil
    void tgl_gru_bwd_f32_avx512(int, const float*, const float*, const float*, const float*,
                                const float*, const float*, float*, float*, float*, float*,
                                float*, float*, float*) noexcept nogil
    void tgl_gru_bwd_f64_generic(int, const double*, const double*, const double*,
                                 const double*, const double*, const double*, double*, double*,
                                 double*, double*, double*, double*, double*) noexcept nogil
    void tgl_rnn_fwd_f32_generic(int, const float*, float*, int) noexcept nogil
    void tgl_rnn_fwd_f32_avx2(int, const float*, float*, int) noexcept nogil
    void tgl_rnn_fwd_f32_avx512(int, const float*, float*, int) noexcept nogil
    void tgl_rnn_fwd_f64_generic(int, const double*, double*, int) noexcept nogil
    void tgl_rnn_bwd_f32_generic(int, const float*, const float*, const float*, float*,
                                 int) noexcept nogil
    void tgl_rnn_bwd_f32_avx2(int, const float*, const float*, const float*, float*,
                              int) noexcept nogil
    void tgl_rnn_bwd_f32_avx512(int, const float*, const float*, const float*, float*,
                                int) noexcept nogil
    void tgl_rnn_bwd_f64_generic(int, const double*, const double*, const double*, double*,
                                 int) noexcept nogil


# ------------------------------------------------------------------ row dispatch ---

cdef inline void _lstm_fwd_row(int isa, int H, floating* a, const int* o, const floating* cp,
                               floating* c, floating* tc, floating* h) noexcept nogil:
    if floating is double:
        tgl_lstm_fwd_f64_generic(H, a + o[0], a + o[1], a + o[2], a + o[3], cp, c, tc, h)
    elif isa == TGL_ISA_AVX512:
        tgl_lstm_fwd_f32_avx512(H, a + o[0], a + o[1], a + o[2], a + o[3], cp, c, tc, h)
    elif isa == TGL_ISA_AVX2:
        tgl_lstm_fwd_f32_avx2(H, a + o[0], a + o[1], a + o[2], a + o[3], cp, c, tc, h)
    else:
        tgl_lstm_fwd_f32_generic(H, a + o[0], a + o[1], a + o[2], a + o[3], cp, c, tc, h)


cdef inline void _lstm_bwd_row(int isa, int H, const floating* a, const int* o,
                               const floating* cp, const floating* tc, const floating* gy,
                               const floating* dh, floating* dc, floating* d) noexcept nogil:
    if floating is double:
        tgl_lstm_bwd_f64_generic(H, a + o[0], a + o[1], a + o[2], a + o[3], cp, tc, gy, dh, dc,
                                 d + o[0], d + o[1], d + o[2], d + o[3])
    elif isa == TGL_ISA_AVX512:
        tgl_lstm_bwd_f32_avx512(H, a + o[0], a + o[1], a + o[2], a + o[3], cp, tc, gy, dh, dc,
                                d + o[0], d + o[1], d + o[2], d + o[3])
    elif isa == TGL_ISA_AVX2:
        tgl_lstm_bwd_f32_avx2(H, a + o[0], a + o[1], a + o[2], a + o[3], cp, tc, gy, dh, dc,
                              d + o[0], d + o[1], d + o[2], d + o[3])
    else:
        tgl_lstm_bwd_f32_generic(H, a + o[0], a + o[1], a + o[2], a + o[3], cp, tc, gy, dh, dc,
                                 d + o[0], d + o[1], d + o[2], d + o[3])


cdef inline void _gru_fwd_row(int isa, int H, floating* a, const int* o, const floating* y,
                              floating* hn, const floating* hp, floating* h) noexcept nogil:
    if floating is double:
        tgl_gru_fwd_f64_generic(H, a + o[0], a + o[1], a + o[2], y + o[0], y + o[1], y + o[2],
                                hn, hp, h)
    elif isa == TGL_ISA_AVX512:
        tgl_gru_fwd_f32_avx512(H, a + o[0], a + o[1], a + o[2], y + o[0], y + o[1], y + o[2],
                               hn, hp, h)
    elif isa == TGL_ISA_AVX2:
        tgl_gru_fwd_f32_avx2(H, a + o[0], a + o[1], a + o[2], y + o[0], y + o[1], y + o[2],
                             hn, hp, h)
    else:
        tgl_gru_fwd_f32_generic(H, a + o[0], a + o[1], a + o[2], y + o[0], y + o[1], y + o[2],
                                hn, hp, h)


cdef inline void _gru_bwd_row(int isa, int H, const floating* a, const int* o,
                              const floating* hn, const floating* hp, const floating* gy,
                              floating* dh, floating* dx, floating* dy) noexcept nogil:
    if floating is double:
        tgl_gru_bwd_f64_generic(H, a + o[0], a + o[1], a + o[2], hn, hp, gy, dh, dx + o[0],
                                dx + o[1], dx + o[2], dy + o[0], dy + o[1], dy + o[2])
    elif isa == TGL_ISA_AVX512:
        tgl_gru_bwd_f32_avx512(H, a + o[0], a + o[1], a + o[2], hn, hp, gy, dh, dx + o[0],
                               dx + o[1], dx + o[2], dy + o[0], dy + o[1], dy + o[2])
    elif isa == TGL_ISA_AVX2:
        tgl_gru_bwd_f32_avx2(H, a + o[0], a + o[1], a + o[2], hn, hp, gy, dh, dx + o[0],
                             dx + o[1], dx + o[2], dy + o[0], dy + o[1], dy + o[2])
    else:
        tgl_gru_bwd_f32_generic(H, a + o[0], a + o[1], a + o[2], hn, hp, gy, dh, dx + o[0],
                                dx + o[1], dx + o[2], dy + o[0], dy + o[1], dy + o[2])


cdef inline void _rnn_fwd(int isa, int n, const floating* a, floating* h,
                          int relu) noexcept nogil:
    if floating is double:
        tgl_rnn_fwd_f64_generic(n, a, h, relu)
    elif isa == TGL_ISA_AVX512:
        tgl_rnn_fwd_f32_avx512(n, a, h, relu)
    elif isa == TGL_ISA_AVX2:
        tgl_rnn_fwd_f32_avx2(n, a, h, relu)
    else:
        tgl_rnn_fwd_f32_generic(n, a, h, relu)


cdef inline void _rnn_bwd(int isa, int n, const floating* h, const floating* gy,
                          const floating* dh, floating* da, int relu) noexcept nogil:
    if floating is double:
        tgl_rnn_bwd_f64_generic(n, h, gy, dh, da, relu)
    elif isa == TGL_ISA_AVX512:
        tgl_rnn_bwd_f32_avx512(n, h, gy, dh, da, relu)
    elif isa == TGL_ISA_AVX2:
        tgl_rnn_bwd_f32_avx2(n, h, gy, dh, da, relu)
    else:
        tgl_rnn_bwd_f32_generic(n, h, gy, dh, da, relu)


# ------------------------------------------------------------------ checks and GEMM ---

cdef int _rnn_check(str op, tuple want, tuple got, str name) except -1:
    if want != got:
        raise ValueError(f"{op}: {name} must have shape {want}, got {got}")
    return 0


cdef int _rnn_offsets(str op, tuple offs, int n, Py_ssize_t H, int* o) except -1:
    """Gate offsets: n distinct multiples of H in [0, n*H)."""
    cdef int i
    if len(offs) != n or sorted(offs) != [i * H for i in range(n)]:
        raise ValueError(f"{op}: offs must be {n} distinct multiples of H={H} below {n * H}, "
                         f"got {offs}")
    for i in range(n):
        o[i] = offs[i]
    return 0


cdef inline void _whh_strides(bint keras, bint backward, Py_ssize_t G, Py_ssize_t H,
                              ptrdiff_t* rs, ptrdiff_t* cs) noexcept nogil:
    """Strides of op(W_hh) (H x G, forward) or of op(W_hh)^T (G x H, backward) in W_hh's
    storage: (H, G) for Keras, (G, H) for PyTorch."""
    if keras:
        _strides(backward, G, rs, cs)
    else:
        _strides(not backward, H, rs, cs)


cdef inline int _rnn_threads(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, int threads) noexcept nogil:
    return 1 if m * n * k < SMALL_GEMM else threads


# The recurrent GEMM of every step multiplies by the same op(W_hh). When gemm_core would take
# its packed one-thread path with a single K and N block (k <= KC, n <= NC), W_hh is packed
# once per sequence here and every step only packs its A (the B x H state) and runs the
# macro-kernel -- the same kernels and blocking as gemm_core, minus the repeated B packing.
# Otherwise (small problems go to the direct kernel, large ones to threads) gemm_core runs.

cdef struct _StepGemm:
    bint prepacked
    Py_ssize_t m, n, k
    int mcb
    char* pb
    char* pa


cdef size_t _step_gemm_bytes(int dsize, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                             int threads) noexcept nogil:
    return _round64(gemm_workspace_bytes(dsize, m, n, k, threads))


cdef void _step_gemm_init(_StepGemm* g, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                          const floating* b, ptrdiff_t rsb, ptrdiff_t csb, int threads,
                          char* ws, const tgl_kernel_info* K) noexcept nogil:
    """Decide the path for C (m x n) (+)= A op(B) and pack op(B) once when it pays. ws:
    _step_gemm_bytes(...) bytes (also what gemm_core gets on the other path)."""
    cdef int nr
    cdef bint fits
    # gemm_core would run a direct kernel (small_gemm.h) here: no packing to save
    cdef bint direct = m * n * k <= DIRECT_MAX and tgl_small_form(
        K.isa, tgl_small_lanes(K.isa, sizeof(floating)), <int>k, 1, rsb, csb) != TGL_SMALL_NONE
    g.m, g.n, g.k = m, n, k
    if floating is float:
        nr = K.nr
        fits = k <= KC_F32 and n <= NC_F32 and not direct
        g.mcb = _balanced(m, MC_F32, K.mr)
        g.pa = ws + _round64(<size_t>KC_F32 * NC_F32 * sizeof(floating))
    else:
        nr = K.nr_f64
        fits = k <= KC_F64 and n <= NC_F64 and not direct
        g.mcb = _balanced(m, MC_F64, K.mr)
        g.pa = ws + _round64(<size_t>KC_F64 * NC_F64 * sizeof(floating))
    g.prepacked = (fits and threads <= 1 and m > 0 and n > 0 and k > 0
                   and not _swap_pays(m, n, K.mr, nr))
    g.pb = ws
    if g.prepacked:
        if floating is float:
            tgl_pack_b_f32(K.pack_simd, nr, <int>n, <int>k, b, rsb, csb, <float*>ws, 0, <int>n)
        else:
            tgl_pack_b_f64(K.pack_simd, nr, <int>n, <int>k, b, rsb, csb, <double*>ws, 0, <int>n)


cdef void _step_gemm(const _StepGemm* g, const floating* a, const floating* b, ptrdiff_t rsb,
                     ptrdiff_t csb, floating* c, bint accumulate, int threads, char* ws,
                     const tgl_kernel_info* K) noexcept nogil:
    """C (m x n, row stride n) (+)= A (m x k, row stride k) op(B)."""
    cdef Py_ssize_t ic = 0, m = g.m, n = g.n, k = g.k
    cdef int mc
    if not g.prepacked:
        gemm_core(m, n, k, a, k, 1, b, rsb, csb, c, n, accumulate, threads, ws, K)
        return
    while ic < m:
        mc = <int>(m - ic if m - ic < g.mcb else g.mcb)
        if floating is float:
            tgl_pack_a_f32(K.pack_simd, K.mr, mc, <int>k, a + ic * k, k, 1, <float*>g.pa)
            tgl_macro_kernel_f32(K, K.ukr_f32, K.mr, K.nr, mc, <int>n, <int>k, <float*>g.pa,
                                 <float*>g.pb, c + ic * n, n, 1, accumulate)
        else:
            tgl_pack_a_f64(K.pack_simd, K.mr, mc, <int>k, a + ic * k, k, 1, <double*>g.pa)
            tgl_macro_kernel_f64(K, K.ukr_f64, K.mr, K.nr_f64, mc, <int>n, <int>k,
                                 <double*>g.pa, <double*>g.pb, c + ic * n, n, 1, accumulate)
        ic += mc


# ------------------------------------------------------------------ LSTM ---

def lstm_steps(floating[:, :, ::1] gates, const floating[:, ::1] w_hh, bint keras,
               const floating[:, ::1] h0, const floating[:, ::1] c0, floating[:, :, ::1] out,
               floating[:, :, ::1] cs, floating[:, :, ::1] tcs, tuple offs, bint reverse,
               int threads=1):
    """LSTM forward steps (see _np_lstm_steps). gates (T, B, 4H): the input projections in,
    the activated gates out; out (T+1, B, H): h_t, then the last c; cs, tcs (T, B, H): c_t and
    tanh(c_t). Per step: gates[t] += h_prev op(W_hh) (GEMM), then one pass per batch row."""
    cdef Py_ssize_t T = gates.shape[0], B = gates.shape[1], G = gates.shape[2]
    cdef Py_ssize_t H = h0.shape[1]
    cdef int o[4]
    op = "lstm_steps"
    _rnn_check(op, (H, G) if keras else (G, H), (w_hh.shape[0], w_hh.shape[1]), "w_hh")
    _rnn_check(op, (B, H), (h0.shape[0], h0.shape[1]), "h0")
    _rnn_check(op, (B, H), (c0.shape[0], c0.shape[1]), "c0")
    _rnn_check(op, (T + 1, B, H), (out.shape[0], out.shape[1], out.shape[2]), "out")
    _rnn_check(op, (T, B, H), (cs.shape[0], cs.shape[1], cs.shape[2]), "cs")
    _rnn_check(op, (T, B, H), (tcs.shape[0], tcs.shape[1], tcs.shape[2]), "tcs")
    _rnn_check(op, (T, B, 4 * H), (T, B, G), "gates")
    _rnn_offsets(op, offs, 4, H, o)
    if T == 0 or B == 0 or H == 0:
        return
    cdef tgl_kernel_info K = _K
    cdef int isa = K.isa
    cdef ptrdiff_t rsb, csb
    _whh_strides(keras, False, G, H, &rsb, &csb)
    threads = _rnn_threads(B, G, H, threads)
    cdef Py_ssize_t s, t, b
    cdef const floating* hp
    cdef const floating* cp
    cdef floating* a
    cdef _StepGemm sg
    cdef _Workspace ws = _ws_acquire()
    cdef char* buf
    try:
        buf = ws.ensure(_step_gemm_bytes(sizeof(floating), B, G, H, threads))
        with nogil:
            _step_gemm_init(&sg, B, G, H, &w_hh[0, 0], rsb, csb, threads, buf, &K)
            for s in range(T):
                t = T - 1 - s if reverse else s
                if s == 0:
                    hp, cp = &h0[0, 0], &c0[0, 0]
                else:
                    hp = &out[t + 1 if reverse else t - 1, 0, 0]
                    cp = &cs[t + 1 if reverse else t - 1, 0, 0]
                a = &gates[t, 0, 0]
                _step_gemm(&sg, hp, &w_hh[0, 0], rsb, csb, a, True, threads, buf, &K)
                for b in range(B):
                    _lstm_fwd_row(isa, <int>H, a + b * G, o, cp + b * H, &cs[t, b, 0],
                                  &tcs[t, b, 0], &out[t, b, 0])
            memcpy(&out[T, 0, 0], &cs[0 if reverse else T - 1, 0, 0],
                   B * H * sizeof(floating))
    finally:
        _ws_release(ws)


def lstm_steps_backward(const floating[:, :, ::1] gout, const floating[:, :, ::1] gates,
                        const floating[:, ::1] w_hh, bint keras, const floating[:, ::1] h0,
                        const floating[:, ::1] c0, const floating[:, :, ::1] out,
                        const floating[:, :, ::1] cs, const floating[:, :, ::1] tcs, tuple offs,
                        bint reverse, floating[:, :, ::1] da, floating[:, ::1] dh0,
                        floating[:, ::1] dc0, int threads=1):
    """LSTM BPTT (see _np_lstm_steps_backward): da (T, B, 4H) = dL/d(pre-activations);
    dh0, dc0 (B, H) carry dL/dh and dL/dc back through the steps and end as dL/d(h0, c0).
    Per step: one pass per batch row, then dh = da[t] op(W_hh)^T (GEMM)."""
    cdef Py_ssize_t T = gates.shape[0], B = gates.shape[1], G = gates.shape[2]
    cdef Py_ssize_t H = h0.shape[1]
    cdef int o[4]
    op = "lstm_steps_backward"
    _rnn_check(op, (T, B, 4 * H), (T, B, G), "gates")
    _rnn_check(op, (T + 1, B, H), (gout.shape[0], gout.shape[1], gout.shape[2]), "gout")
    _rnn_check(op, (H, G) if keras else (G, H), (w_hh.shape[0], w_hh.shape[1]), "w_hh")
    _rnn_check(op, (B, H), (h0.shape[0], h0.shape[1]), "h0")
    _rnn_check(op, (B, H), (c0.shape[0], c0.shape[1]), "c0")
    _rnn_check(op, (B, H), (dh0.shape[0], dh0.shape[1]), "dh0")
    _rnn_check(op, (B, H), (dc0.shape[0], dc0.shape[1]), "dc0")
    _rnn_check(op, (T + 1, B, H), (out.shape[0], out.shape[1], out.shape[2]), "out")
    _rnn_check(op, (T, B, H), (cs.shape[0], cs.shape[1], cs.shape[2]), "cs")
    _rnn_check(op, (T, B, H), (tcs.shape[0], tcs.shape[1], tcs.shape[2]), "tcs")
    _rnn_check(op, (T, B, G), (da.shape[0], da.shape[1], da.shape[2]), "da")
    _rnn_offsets(op, offs, 4, H, o)
    if T == 0 or B == 0 or H == 0:
        return
    cdef tgl_kernel_info K = _K
    cdef int isa = K.isa
    cdef ptrdiff_t rsb, csb
    _whh_strides(keras, True, G, H, &rsb, &csb)
    threads = _rnn_threads(B, H, G, threads)
    cdef Py_ssize_t s, t, b
    cdef const floating* cp
    cdef floating* d
    cdef floating* dh = &dh0[0, 0]
    cdef floating* dc = &dc0[0, 0]
    cdef _StepGemm sg
    cdef _Workspace ws = _ws_acquire()
    cdef char* buf
    try:
        buf = ws.ensure(_step_gemm_bytes(sizeof(floating), B, H, G, threads))
        with nogil:
            _step_gemm_init(&sg, B, H, G, &w_hh[0, 0], rsb, csb, threads, buf, &K)
            memset(dh, 0, B * H * sizeof(floating))
            memcpy(dc, &gout[T, 0, 0], B * H * sizeof(floating))
            for s in range(T):
                t = s if reverse else T - 1 - s
                cp = &c0[0, 0] if s == T - 1 else &cs[t + 1 if reverse else t - 1, 0, 0]
                d = &da[t, 0, 0]
                for b in range(B):
                    _lstm_bwd_row(isa, <int>H, &gates[t, b, 0], o, cp + b * H, &tcs[t, b, 0],
                                  &gout[t, b, 0], dh + b * H, dc + b * H, d + b * G)
                _step_gemm(&sg, d, &w_hh[0, 0], rsb, csb, dh, False, threads, buf, &K)
    finally:
        _ws_release(ws)


# ------------------------------------------------------------------ GRU ---

def gru_steps(floating[:, :, ::1] gates, const floating[:, ::1] w_hh, b_hh, bint keras,
              const floating[:, ::1] h0, floating[:, :, ::1] out, floating[:, :, ::1] hn,
              tuple offs, bint reverse, int threads=1):
    """GRU forward steps (see _np_gru_steps). gates (T, B, 3H): the input projections (with
    b_ih) in, the activated r, z, n out; b_hh (3H,) or None; out (T, B, H) = h_t; hn (T, B, H)
    = the n block of h_prev op(W_hh) + b_hh (kept for backward)."""
    cdef Py_ssize_t T = gates.shape[0], B = gates.shape[1], G = gates.shape[2]
    cdef Py_ssize_t H = h0.shape[1]
    cdef int o[3]
    op = "gru_steps"
    _rnn_check(op, (H, G) if keras else (G, H), (w_hh.shape[0], w_hh.shape[1]), "w_hh")
    _rnn_check(op, (B, H), (h0.shape[0], h0.shape[1]), "h0")
    _rnn_check(op, (T, B, H), (out.shape[0], out.shape[1], out.shape[2]), "out")
    _rnn_check(op, (T, B, H), (hn.shape[0], hn.shape[1], hn.shape[2]), "hn")
    _rnn_check(op, (T, B, 3 * H), (T, B, G), "gates")
    _rnn_offsets(op, offs, 3, H, o)
    cdef const floating[::1] bias
    cdef const floating* bp = NULL
    if b_hh is not None:
        bias = b_hh
        _rnn_check(op, (G,), (bias.shape[0],), "b_hh")
        if G:
            bp = &bias[0]
    if T == 0 or B == 0 or H == 0:
        return
    cdef tgl_kernel_info K = _K
    cdef int isa = K.isa
    cdef ptrdiff_t rsb, csb
    _whh_strides(keras, False, G, H, &rsb, &csb)
    threads = _rnn_threads(B, G, H, threads)
    cdef Py_ssize_t s, t, b
    cdef const floating* hp
    cdef floating* a
    cdef floating* y
    cdef _Workspace ws = _ws_acquire()
    cdef char* buf
    cdef size_t gemm_bytes = _step_gemm_bytes(sizeof(floating), B, G, H, threads)
    cdef _StepGemm sg
    try:
        buf = ws.ensure(gemm_bytes + B * G * sizeof(floating))
        y = <floating*>(buf + gemm_bytes)         # h_prev op(W_hh) + b_hh, (B, 3H)
        with nogil:
            _step_gemm_init(&sg, B, G, H, &w_hh[0, 0], rsb, csb, threads, buf, &K)
            for s in range(T):
                t = T - 1 - s if reverse else s
                hp = &h0[0, 0] if s == 0 else &out[t + 1 if reverse else t - 1, 0, 0]
                for b in range(B):
                    if bp != NULL:
                        memcpy(y + b * G, bp, G * sizeof(floating))
                    else:
                        memset(y + b * G, 0, G * sizeof(floating))
                _step_gemm(&sg, hp, &w_hh[0, 0], rsb, csb, y, True, threads, buf, &K)
                a = &gates[t, 0, 0]
                for b in range(B):
                    _gru_fwd_row(isa, <int>H, a + b * G, o, y + b * G, &hn[t, b, 0], hp + b * H,
                                 &out[t, b, 0])
    finally:
        _ws_release(ws)


def gru_steps_backward(const floating[:, :, ::1] gout, const floating[:, :, ::1] gates,
                       const floating[:, ::1] w_hh, bint keras, const floating[:, ::1] h0,
                       const floating[:, :, ::1] out, const floating[:, :, ::1] hn, tuple offs,
                       bint reverse, floating[:, :, ::1] dxa, floating[:, :, ::1] dha,
                       floating[:, ::1] dh0, int threads=1):
    """GRU BPTT (see _np_gru_steps_backward): dxa, dha (T, B, 3H) = dL/d(x projection),
    dL/d(h_prev op(W_hh) + b_hh); dh0 carries dL/dh back and ends as dL/dh0. Per step: one pass
    per batch row (dh <- dh z), then dh += dha[t] op(W_hh)^T (GEMM, accumulating)."""
    cdef Py_ssize_t T = gates.shape[0], B = gates.shape[1], G = gates.shape[2]
    cdef Py_ssize_t H = h0.shape[1]
    cdef int o[3]
    op = "gru_steps_backward"
    _rnn_check(op, (T, B, 3 * H), (T, B, G), "gates")
    _rnn_check(op, (T, B, H), (gout.shape[0], gout.shape[1], gout.shape[2]), "gout")
    _rnn_check(op, (H, G) if keras else (G, H), (w_hh.shape[0], w_hh.shape[1]), "w_hh")
    _rnn_check(op, (B, H), (h0.shape[0], h0.shape[1]), "h0")
    _rnn_check(op, (B, H), (dh0.shape[0], dh0.shape[1]), "dh0")
    _rnn_check(op, (T, B, H), (out.shape[0], out.shape[1], out.shape[2]), "out")
    _rnn_check(op, (T, B, H), (hn.shape[0], hn.shape[1], hn.shape[2]), "hn")
    _rnn_check(op, (T, B, G), (dxa.shape[0], dxa.shape[1], dxa.shape[2]), "dxa")
    _rnn_check(op, (T, B, G), (dha.shape[0], dha.shape[1], dha.shape[2]), "dha")
    _rnn_offsets(op, offs, 3, H, o)
    if T == 0 or B == 0 or H == 0:
        return
    cdef tgl_kernel_info K = _K
    cdef int isa = K.isa
    cdef ptrdiff_t rsb, csb
    _whh_strides(keras, True, G, H, &rsb, &csb)
    threads = _rnn_threads(B, H, G, threads)
    cdef Py_ssize_t s, t, b
    cdef const floating* hp
    cdef floating* dh = &dh0[0, 0]
    cdef _StepGemm sg
    cdef _Workspace ws = _ws_acquire()
    cdef char* buf
    try:
        buf = ws.ensure(_step_gemm_bytes(sizeof(floating), B, H, G, threads))
        with nogil:
            _step_gemm_init(&sg, B, H, G, &w_hh[0, 0], rsb, csb, threads, buf, &K)
            memset(dh, 0, B * H * sizeof(floating))
            for s in range(T):
                t = s if reverse else T - 1 - s
                hp = &h0[0, 0] if s == T - 1 else &out[t + 1 if reverse else t - 1, 0, 0]
                for b in range(B):
                    _gru_bwd_row(isa, <int>H, &gates[t, b, 0], o, &hn[t, b, 0], hp + b * H,
                                 &gout[t, b, 0], dh + b * H, &dxa[t, b, 0], &dha[t, b, 0])
                _step_gemm(&sg, &dha[t, 0, 0], &w_hh[0, 0], rsb, csb, dh, True, threads, buf,
                           &K)
    finally:
        _ws_release(ws)


# ------------------------------------------------------------------ Elman RNN ---

def rnn_steps(floating[:, :, ::1] gates, const floating[:, ::1] w_hh, bint keras,
              const floating[:, ::1] h0, floating[:, :, ::1] out, bint relu, bint reverse,
              int threads=1):
    """Elman RNN forward steps (see _np_rnn_steps): gates (T, B, H) the input projections (a
    scratch: the pre-activations are left there); out (T, B, H) = act(gates[t] + h op(W_hh))."""
    cdef Py_ssize_t T = gates.shape[0], B = gates.shape[1], H = gates.shape[2]
    op = "rnn_steps"
    _rnn_check(op, (H, H), (w_hh.shape[0], w_hh.shape[1]), "w_hh")
    _rnn_check(op, (B, H), (h0.shape[0], h0.shape[1]), "h0")
    _rnn_check(op, (T, B, H), (out.shape[0], out.shape[1], out.shape[2]), "out")
    if T == 0 or B == 0 or H == 0:
        return
    cdef tgl_kernel_info K = _K
    cdef int isa = K.isa
    cdef ptrdiff_t rsb, csb
    _whh_strides(keras, False, H, H, &rsb, &csb)
    threads = _rnn_threads(B, H, H, threads)
    cdef Py_ssize_t s, t
    cdef const floating* hp
    cdef _StepGemm sg
    cdef _Workspace ws = _ws_acquire()
    cdef char* buf
    try:
        buf = ws.ensure(_step_gemm_bytes(sizeof(floating), B, H, H, threads))
        with nogil:
            _step_gemm_init(&sg, B, H, H, &w_hh[0, 0], rsb, csb, threads, buf, &K)
            for s in range(T):
                t = T - 1 - s if reverse else s
                hp = &h0[0, 0] if s == 0 else &out[t + 1 if reverse else t - 1, 0, 0]
                _step_gemm(&sg, hp, &w_hh[0, 0], rsb, csb, &gates[t, 0, 0], True, threads,
                           buf, &K)
                _rnn_fwd(isa, <int>(B * H), &gates[t, 0, 0], &out[t, 0, 0], relu)
    finally:
        _ws_release(ws)


def rnn_steps_backward(const floating[:, :, ::1] gout, const floating[:, ::1] w_hh, bint keras,
                       const floating[:, ::1] h0, const floating[:, :, ::1] out, bint relu,
                       bint reverse, floating[:, :, ::1] da, floating[:, ::1] dh0,
                       int threads=1):
    """Elman RNN BPTT (see _np_rnn_steps_backward): da (T, B, H) = dL/d(pre-activations);
    dh0 carries dL/dh back and ends as dL/dh0."""
    cdef Py_ssize_t T = out.shape[0], B = out.shape[1], H = out.shape[2]
    op = "rnn_steps_backward"
    _rnn_check(op, (T, B, H), (gout.shape[0], gout.shape[1], gout.shape[2]), "gout")
    _rnn_check(op, (H, H), (w_hh.shape[0], w_hh.shape[1]), "w_hh")
    _rnn_check(op, (B, H), (h0.shape[0], h0.shape[1]), "h0")
    _rnn_check(op, (B, H), (dh0.shape[0], dh0.shape[1]), "dh0")
    _rnn_check(op, (T, B, H), (da.shape[0], da.shape[1], da.shape[2]), "da")
    if T == 0 or B == 0 or H == 0:
        return
    cdef tgl_kernel_info K = _K
    cdef int isa = K.isa
    cdef ptrdiff_t rsb, csb
    _whh_strides(keras, True, H, H, &rsb, &csb)
    threads = _rnn_threads(B, H, H, threads)
    cdef Py_ssize_t s, t
    cdef floating* dh = &dh0[0, 0]
    cdef _StepGemm sg
    cdef _Workspace ws = _ws_acquire()
    cdef char* buf
    try:
        buf = ws.ensure(_step_gemm_bytes(sizeof(floating), B, H, H, threads))
        with nogil:
            _step_gemm_init(&sg, B, H, H, &w_hh[0, 0], rsb, csb, threads, buf, &K)
            memset(dh, 0, B * H * sizeof(floating))
            for s in range(T):
                t = s if reverse else T - 1 - s
                _rnn_bwd(isa, <int>(B * H), &out[t, 0, 0], &gout[t, 0, 0], dh, &da[t, 0, 0],
                         relu)
                _step_gemm(&sg, &da[t, 0, 0], &w_hh[0, 0], rsb, csb, dh, False, threads, buf,
                           &K)
    finally:
        _ws_release(ws)
