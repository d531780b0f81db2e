# optim.pxi -- fused optimizer steps: Adam/AdamW and SGD in one pass (included by _cpu.pyx).
#
# The NumPy optimizers (tinygrad_lite/optim/adam.py, sgd.py) walk every parameter about eight
# times per step (m *= b1; tmp = g * (1-b1); m += tmp; ...). Here each element is read and
# written once: param, grad and the state arrays stream through the cache together.
#
# Assumptions (checked by the Python caller, tinygrad_lite/optim/*.py): every array is a
# C-contiguous 1-D view (the caller passes .reshape(-1)) of the same length and the same dtype
# (float32 or float64); scalars are hyper-parameters already turned into floats. Every scalar
# is rounded to the array's dtype first and every operation runs in that dtype, in the order the
# NumPy code uses, so float32 results match NumPy's (which treats Python floats as weak scalars)
# to the last bit or so -- the compiler may only contract a*b+c into an FMA where the baseline
# ISA has one (not on baseline x86-64).
#
# Threads: above _OPTIM_PAR_MIN elements the range is cut into one contiguous block per thread
# (OpenMP prange over block indices); below it the loop runs on the calling thread, where a
# parallel region would cost more than the loop.

# Adam has a square root and two divisions per element. gcc will not vectorize sqrtf() in this
# build (without -fno-math-errno it must keep the errno call for negative inputs), so the fast
# Adam loops are written with AVX2 / AVX-512 intrinsics below -- same operations, same order, no
# FMA (the AVX-512 function is compiled with fp-contract=off), so every ISA gives the same bits as
# the plain loop _adam_range. Which one runs follows _cpu.set_isa / TINYGRAD_LITE_CPU_ISA.

from libc.math cimport sqrt, sqrtf

cdef extern from *:
    """
    #include <stddef.h>
    #if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && !defined(__clang__)
    #include <immintrin.h>
    #define TGL_OPTIM_SIMD 1
    /* keep w where w is NaN or w >= v, else v: numpy.maximum's NaN propagation */
    #define TGL_ADAM_SIMD(NAME, T, VT, W, ATTR, LOAD, STORE, SET1, ADD, SUB, MUL, DIV, SQRT, VMAX) \
    ATTR static void NAME(T *p, const T *g, T *m, T *v, T *vmax, ptrdiff_t lo, ptrdiff_t hi,     \
                          T decay, int dec, T b1, T omb1, T b2, T omb2, T bc2, T eps, T step)     \
    {                                                                                          \
        const VT vdecay = SET1(decay), vb1 = SET1(b1), vomb1 = SET1(omb1), vb2 = SET1(b2);      \
        const VT vomb2 = SET1(omb2), vbc2 = SET1(bc2), veps = SET1(eps), vstep = SET1(step);   \
        ptrdiff_t i = lo;                                                                      \
        for (; i + W <= hi; i += W) {                                                          \
            VT gi = LOAD(g + i), pi = LOAD(p + i), mi, vi;                                     \
            if (dec) pi = MUL(pi, vdecay);                                                     \
            mi = ADD(MUL(LOAD(m + i), vb1), MUL(gi, vomb1));                                   \
            vi = ADD(MUL(LOAD(v + i), vb2), MUL(MUL(gi, gi), vomb2));                          \
            STORE(m + i, mi);                                                                  \
            STORE(v + i, vi);                                                                  \
            if (vmax) {                                                                        \
                vi = VMAX(LOAD(vmax + i), vi);                                                 \
                STORE(vmax + i, vi);                                                           \
            }                                                                                  \
            STORE(p + i, SUB(pi, MUL(DIV(mi, ADD(DIV(SQRT(vi), vbc2), veps)), vstep)));        \
        }                                                                                      \
        for (; i < hi; i++) { /* the tail, scalar, same operations */                          \
            T gs = g[i], ps = p[i], ms, vs, ws;                                                \
            if (dec) ps = ps * decay;                                                          \
            ms = m[i] * b1 + gs * omb1;                                                        \
            vs = v[i] * b2 + (gs * gs) * omb2;                                                 \
            m[i] = ms;                                                                         \
            v[i] = vs;                                                                         \
            if (vmax) {                                                                        \
                ws = vmax[i];                                                                  \
                if (!(ws != ws || ws >= vs)) ws = vs;                                          \
                vmax[i] = ws;                                                                  \
                vs = ws;                                                                       \
            }                                                                                  \
            p[i] = ps - (ms / (SQRT##_1(vs) / bc2 + eps)) * step;                              \
        }                                                                                      \
    }
    #define TGL_A2 __attribute__((target("avx2")))
    #define TGL_A512 __attribute__((target("avx512f"), optimize("fp-contract=off")))
    #define tgl_vmax_ps256(w, v) _mm256_blendv_ps(v, w, _mm256_or_ps(_mm256_cmp_ps(w, v, _CMP_GE_OQ), _mm256_cmp_ps(w, w, _CMP_UNORD_Q)))
    #define tgl_vmax_pd256(w, v) _mm256_blendv_pd(v, w, _mm256_or_pd(_mm256_cmp_pd(w, v, _CMP_GE_OQ), _mm256_cmp_pd(w, w, _CMP_UNORD_Q)))
    #define tgl_vmax_ps512(w, v) _mm512_mask_blend_ps(_mm512_cmp_ps_mask(w, v, _CMP_GE_OQ) | _mm512_cmp_ps_mask(w, w, _CMP_UNORD_Q), v, w)
    #define tgl_vmax_pd512(w, v) _mm512_mask_blend_pd(_mm512_cmp_pd_mask(w, v, _CMP_GE_OQ) | _mm512_cmp_pd_mask(w, w, _CMP_UNORD_Q), v, w)
    #define _mm256_sqrt_ps_1 __builtin_sqrtf
    #define _mm512_sqrt_ps_1 __builtin_sqrtf
    #define _mm256_sqrt_pd_1 __builtin_sqrt
    #define _mm512_sqrt_pd_1 __builtin_sqrt
    TGL_ADAM_SIMD(tgl_adam_f32_avx2, float, __m256, 8, TGL_A2, _mm256_loadu_ps, _mm256_storeu_ps,
                  _mm256_set1_ps, _mm256_add_ps, _mm256_sub_ps, _mm256_mul_ps, _mm256_div_ps,
                  _mm256_sqrt_ps, tgl_vmax_ps256)
    TGL_ADAM_SIMD(tgl_adam_f64_avx2, double, __m256d, 4, TGL_A2, _mm256_loadu_pd, _mm256_storeu_pd,
                  _mm256_set1_pd, _mm256_add_pd, _mm256_sub_pd, _mm256_mul_pd, _mm256_div_pd,
                  _mm256_sqrt_pd, tgl_vmax_pd256)
    TGL_ADAM_SIMD(tgl_adam_f32_avx512, float, __m512, 16, TGL_A512, _mm512_loadu_ps,
                  _mm512_storeu_ps, _mm512_set1_ps, _mm512_add_ps, _mm512_sub_ps, _mm512_mul_ps,
                  _mm512_div_ps, _mm512_sqrt_ps, tgl_vmax_ps512)
    TGL_ADAM_SIMD(tgl_adam_f64_avx512, double, __m512d, 8, TGL_A512, _mm512_loadu_pd,
                  _mm512_storeu_pd, _mm512_set1_pd, _mm512_add_pd, _mm512_sub_pd, _mm512_mul_pd,
                  _mm512_div_pd, _mm512_sqrt_pd, tgl_vmax_pd512)
    #else
    #define TGL_OPTIM_SIMD 0
    #define TGL_ADAM_STUB(NAME, T) static void NAME(T *p, const T *g, T *m, T *v, T *vmax, \
        ptrdiff_t lo, ptrdiff_t hi, T decay, int dec, T b1, T omb1, T b2, T omb2, T bc2, T eps, \
        T step) {}
    TGL_ADAM_STUB(tgl_adam_f32_avx2, float)
    TGL_ADAM_STUB(tgl_adam_f64_avx2, double)
    TGL_ADAM_STUB(tgl_adam_f32_avx512, float)
    TGL_ADAM_STUB(tgl_adam_f64_avx512, double)
    #endif
    """
    int TGL_OPTIM_SIMD
    void tgl_adam_f32_avx2(float*, const float*, float*, float*, float*, Py_ssize_t, Py_ssize_t,
                           float, int, float, float, float, float, float, float, float) noexcept nogil
    void tgl_adam_f64_avx2(double*, const double*, double*, double*, double*, Py_ssize_t,
                           Py_ssize_t, double, int, double, double, double, double, double,
                           double, double) noexcept nogil
    void tgl_adam_f32_avx512(float*, const float*, float*, float*, float*, Py_ssize_t,
                             Py_ssize_t, float, int, float, float, float, float, float, float,
                             float) noexcept nogil
    void tgl_adam_f64_avx512(double*, const double*, double*, double*, double*, Py_ssize_t,
                             Py_ssize_t, double, int, double, double, double, double, double,
                             double, double) noexcept nogil

cdef Py_ssize_t _OPTIM_PAR_MIN = 1 << 16


def optim_parallel_threshold():
    """Element count from which the fused optimizer steps use OpenMP threads."""
    return _OPTIM_PAR_MIN


cdef inline floating _sqrt(floating x) noexcept nogil:
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


cdef void _adam_range(floating* p, const floating* g, floating* m, floating* v, floating* vmax,
                      Py_ssize_t lo, Py_ssize_t hi, floating decay, bint decoupled,
                      floating b1, floating omb1, floating b2, floating omb2,
                      floating bc2_sqrt, floating eps, floating step_size) noexcept nogil:
    """for i in [lo, hi):
           if decoupled:  p[i] *= decay                          # AdamW: decay = 1 - lr*wd
           m[i] = m[i]*b1 + g[i]*(1-b1)
           v[i] = v[i]*b2 + (g[i]*g[i])*(1-b2)
           if vmax:       vmax[i] = max(vmax[i], v[i]) (NaN wins); d = vmax[i]  else d = v[i]
           denom = sqrt(d) / bc2_sqrt + eps                      # bc2_sqrt = sqrt(1 - b2^t)
           p[i] -= (m[i] / denom) * step_size                    # step_size = lr / (1 - b1^t)"""
    cdef Py_ssize_t i
    cdef floating gi, mi, vi, wi, pi
    for i in range(lo, hi):
        gi = g[i]
        pi = p[i]
        if decoupled:
            pi = pi * decay
        mi = m[i] * b1 + gi * omb1
        vi = v[i] * b2 + (gi * gi) * omb2
        m[i] = mi
        v[i] = vi
        if vmax != NULL:
            wi = vmax[i]
            if not (wi != wi or wi >= vi):   # keep a NaN already there; a new NaN wins too
                wi = vi
            vmax[i] = wi
            vi = wi
        p[i] = pi - (mi / (_sqrt(vi) / bc2_sqrt + eps)) * step_size


cdef void _adam_dispatch(int isa, floating* p, const floating* g, floating* m, floating* v,
                         floating* vmax, Py_ssize_t lo, Py_ssize_t hi, floating decay,
                         bint decoupled, floating b1, floating omb1, floating b2, floating omb2,
                         floating bc2_sqrt, floating eps, floating step_size) noexcept nogil:
    """_adam_range on [lo, hi), by the AVX-512 / AVX2 loop when ``isa`` selects one."""
    if TGL_OPTIM_SIMD and isa == TGL_ISA_AVX512:
        if floating is float:
            tgl_adam_f32_avx512(p, g, m, v, vmax, lo, hi, decay, decoupled, b1, omb1, b2, omb2,
                                bc2_sqrt, eps, step_size)
        else:
            tgl_adam_f64_avx512(p, g, m, v, vmax, lo, hi, decay, decoupled, b1, omb1, b2, omb2,
                                bc2_sqrt, eps, step_size)
    elif TGL_OPTIM_SIMD and isa == TGL_ISA_AVX2:
        if floating is float:
            tgl_adam_f32_avx2(p, g, m, v, vmax, lo, hi, decay, decoupled, b1, omb1, b2, omb2,
                              bc2_sqrt, eps, step_size)
        else:
            tgl_adam_f64_avx2(p, g, m, v, vmax, lo, hi, decay, decoupled, b1, omb1, b2, omb2,
                              bc2_sqrt, eps, step_size)
    else:
        _adam_range(p, g, m, v, vmax, lo, hi, decay, decoupled, b1, omb1, b2, omb2, bc2_sqrt,
                    eps, step_size)


def adam_step(floating[::1] param, const floating[::1] grad, floating[::1] exp_avg,
              floating[::1] exp_avg_sq, floating[::1] max_exp_avg_sq, double lr, double beta1,
              double beta2, double eps, double bias_correction1, double bias_correction2_sqrt,
              double weight_decay_decoupled, bint amsgrad, int threads=1):
    """One fused Adam/AdamW step, in place on param, exp_avg, exp_avg_sq (and max_exp_avg_sq).

    Pseudo-code (every array 1-D, C-contiguous, one dtype; the caller checks all of it)::

        decay = 1 - lr * weight_decay_decoupled          # AdamW; 0 turns it off
        step_size = lr / bias_correction1                # bias_correction1 = 1 - beta1^t
        for i:
            p[i] *= decay                                (only when weight_decay_decoupled != 0)
            m[i] = m[i] * beta1 + g[i] * (1 - beta1)
            v[i] = v[i] * beta2 + g[i]^2 * (1 - beta2)
            if amsgrad: vmax[i] = max(vmax[i], v[i]); v_used = vmax[i]   else v_used = v[i]
            p[i] -= m[i] / (sqrt(v_used) / bias_correction2_sqrt + eps) * step_size

    The coupled (L2) weight decay and ``maximize`` are already folded into ``grad`` by the
    caller. ``max_exp_avg_sq`` may be None when ``amsgrad`` is false.
    """
    cdef Py_ssize_t n = param.shape[0]
    if n == 0:
        return
    cdef floating* vm = NULL
    if amsgrad:
        vm = &max_exp_avg_sq[0]
    _adam_core(&param[0], &grad[0], &exp_avg[0], &exp_avg_sq[0], vm, n, lr, beta1, beta2, eps,
               bias_correction1, bias_correction2_sqrt, weight_decay_decoupled, threads)


cdef void _adam_core(floating* p, const floating* g, floating* m, floating* v, floating* vm,
                     Py_ssize_t n, double lr, double beta1, double beta2, double eps,
                     double bias_correction1, double bias_correction2_sqrt,
                     double weight_decay_decoupled, int threads) noexcept:
    """adam_step on raw pointers (shared with adam_step_many, fused.pxi); n > 0."""
    cdef Py_ssize_t nb, b, lo, hi, chunk
    cdef bint decoupled = weight_decay_decoupled != 0
    # The scalars exactly as the NumPy code forms them (in double), then rounded to the dtype.
    cdef floating decay = <floating>(1.0 - lr * weight_decay_decoupled)
    cdef floating b1 = <floating>beta1, omb1 = <floating>(1.0 - beta1)
    cdef floating b2 = <floating>beta2, omb2 = <floating>(1.0 - beta2)
    cdef floating bc2 = <floating>bias_correction2_sqrt, e = <floating>eps
    cdef floating step_size = <floating>(lr / bias_correction1)
    cdef int isa = _K.isa
    if threads <= 1 or n < _OPTIM_PAR_MIN:
        with nogil:
            _adam_dispatch(isa, p, g, m, v, vm, 0, n, decay, decoupled, b1, omb1, b2, omb2, bc2, e,
                        step_size)
        return
    nb = threads
    chunk = (n + nb - 1) // nb
    with nogil:
        for b in prange(nb, num_threads=threads, schedule="static"):
            lo = b * chunk
            hi = min(lo + chunk, n)
            if lo < hi:
                _adam_dispatch(isa, p, g, m, v, vm, lo, hi, decay, decoupled, b1, omb1, b2, omb2, bc2,
                            e, step_size)
    return


cdef void _sgd_range(floating* p, const floating* g, floating* buf, Py_ssize_t lo, Py_ssize_t hi,
                     floating lr, floating mu, floating omd, bint nesterov,
                     bint first_step) noexcept nogil:
    """for i in [lo, hi):
           if buf is NULL:  d = g[i]                                       # plain SGD
           else:
               buf[i] = g[i] if first_step else buf[i]*mu + g[i]*(1-dampening)
               d = g[i] + buf[i]*mu if nesterov else buf[i]
           p[i] -= d * lr"""
    cdef Py_ssize_t i
    cdef floating gi, bi, d
    if buf == NULL:
        for i in range(lo, hi):
            p[i] = p[i] - g[i] * lr
        return
    for i in range(lo, hi):
        gi = g[i]
        if first_step:
            bi = gi
        else:
            bi = buf[i] * mu + gi * omd
        buf[i] = bi
        if nesterov:
            d = gi + bi * mu
        else:
            d = bi
        p[i] = p[i] - d * lr


def sgd_step(floating[::1] param, const floating[::1] grad, floating[::1] momentum_buf,
             double lr, double momentum, double dampening, bint nesterov, bint first_step,
             int threads=1):
    """One fused SGD step (PyTorch semantics), in place on param (and momentum_buf).

    Pseudo-code (every array 1-D, C-contiguous, one dtype; the caller checks all of it)::

        for i:
            if momentum_buf is None:   d = g[i]
            else:
                buf[i] = g[i]                                         (first_step)
                buf[i] = buf[i] * momentum + g[i] * (1 - dampening)   (later steps)
                d = g[i] + buf[i] * momentum if nesterov else buf[i]
            p[i] -= d * lr

    Weight decay and ``maximize`` are already folded into ``grad`` by the caller; pass
    ``momentum_buf=None`` when momentum is 0.
    """
    cdef Py_ssize_t n = param.shape[0]
    if n == 0:
        return
    cdef floating* bp = NULL
    if momentum_buf is not None:
        bp = &momentum_buf[0]
    _sgd_core(&param[0], &grad[0], bp, n, lr, momentum, dampening, nesterov, first_step, threads)


cdef void _sgd_core(floating* p, const floating* g, floating* bp, Py_ssize_t n, double lr,
                    double momentum, double dampening, bint nesterov, bint first_step,
                    int threads) noexcept:
    """sgd_step on raw pointers (shared with sgd_step_many, fused.pxi); n > 0."""
    cdef Py_ssize_t nb, b, lo, hi, chunk
    cdef floating flr = <floating>lr, mu = <floating>momentum
    cdef floating omd = <floating>(1.0 - dampening)
    if threads <= 1 or n < _OPTIM_PAR_MIN:
        with nogil:
            _sgd_range(p, g, bp, 0, n, flr, mu, omd, nesterov, first_step)
        return
    nb = threads
    chunk = (n + nb - 1) // nb
    with nogil:
        for b in prange(nb, num_threads=threads, schedule="static"):
            lo = b * chunk
            hi = min(lo + chunk, n)
            if lo < hi:
                _sgd_range(p, g, bp, lo, hi, flr, mu, omd, nesterov, first_step)
    return
