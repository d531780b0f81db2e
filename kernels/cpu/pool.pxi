# pool.pxi -- max and average pooling, forward and backward (included by _cpu.pyx).
#
# Direct loops, one (image, channel) plane per parallel task, so no two threads write one pixel.
# Window of output (p, q):  rows p*sh - ph + i (i < kh), columns q*sw - pw + j (j < kw);
# positions outside the image are padding: -inf for max, 0 for average (the divisor stays kh*kw,
# PyTorch's count_include_pad=True).

from libc.math cimport INFINITY


cdef int _pool_check(str op, x, y, int kh, int kw, int sh, int sw, int ph, int pw) except -1:
    """O(1): y is (N, C, OH, OW) for the (N, C, H, W) input x under the window. ValueError."""
    if x.shape[0] != y.shape[0] or x.shape[1] != y.shape[1]:
        raise ValueError(f"{op}: the output must have the input's (N, C), got input "
                         f"{tuple(x.shape)[:4]} and output {tuple(y.shape)[:4]}")
    _window_check(op, x.shape[2], x.shape[3], kh, kw, sh, sw, ph, pw, 1, 1, y.shape[2], y.shape[3])
    return 0


cdef void _max_pool_plane(const floating* x, floating* y, int64_t* idx, int H, int W, int OH,
                          int OW, int kh, int kw, int sh, int sw, int ph, int pw) noexcept nogil:
    """for p, q:  idx[p, q] = argmax over the window (first winner in row-major order;
                               NaN wins, like numpy.argmax)
                   y[p, q]   = x.flat[idx[p, q]]"""
    cdef int p, q, i, j, ih, iw, best_i
    cdef floating v, best
    for p in range(OH):
        for q in range(OW):
            best_i = -1
            best = -INFINITY
            for i in range(kh):
                ih = p * sh - ph + i
                if ih < 0 or ih >= H:
                    continue
                for j in range(kw):
                    iw = q * sw - pw + j
                    if iw < 0 or iw >= W:
                        continue
                    v = x[ih * W + iw]
                    if best_i < 0 or v > best or (v != v and best == best):
                        best = v
                        best_i = ih * W + iw
            y[p * OW + q] = best
            idx[p * OW + q] = best_i


cdef extern from "pool_kernels.h" nogil:
    void tgl_max_pool2x2_f32(int isa, const float* x, float* y, int64_t* idx, int W, int OH,
                             int OW)
    void tgl_max_pool2x2_f64(int isa, const double* x, double* y, int64_t* idx, int W, int OH,
                             int OW)


def max_pool2d_forward(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] y,
                       int64_t[:, :, :, ::1] idx, int kh, int kw, int sh, int sw, int ph, int pw,
                       int threads=1):
    """y, idx = max_pool2d(x); both preallocated (N, C, OH, OW); idx is the flat h*W + w index
    of the winner in its (H, W) plane. ValueError on a misfit of the shapes and the geometry."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t OH = y.shape[2], OW = y.shape[3]
    cdef int t, isa = _K.isa
    _pool_check("max_pool2d_forward", x, y, kh, kw, sh, sw, ph, pw)
    if tuple(idx.shape)[:4] != tuple(y.shape)[:4]:
        raise ValueError(f"max_pool2d_forward: idx must have y's shape {tuple(y.shape)[:4]}, got "
                         f"{tuple(idx.shape)[:4]}")
    if N * C * OH * OW == 0:
        return
    with nogil:
        for t in prange(N * C, num_threads=threads if threads > 0 else 1, schedule="static"):
            if kh == 2 and kw == 2 and sh == 2 and sw == 2 and ph == 0 and pw == 0:
                if floating is float:       # the usual CNN pool, branch-free (pool_kernels.h)
                    tgl_max_pool2x2_f32(isa, &x[t // C, t % C, 0, 0], &y[t // C, t % C, 0, 0],
                                        &idx[t // C, t % C, 0, 0], <int>W, <int>OH, <int>OW)
                else:
                    tgl_max_pool2x2_f64(isa, &x[t // C, t % C, 0, 0], &y[t // C, t % C, 0, 0],
                                        &idx[t // C, t % C, 0, 0], <int>W, <int>OH, <int>OW)
            else:
                _max_pool_plane(&x[t // C, t % C, 0, 0], &y[t // C, t % C, 0, 0],
                                &idx[t // C, t % C, 0, 0], <int>H, <int>W, <int>OH, <int>OW,
                                kh, kw, sh, sw, ph, pw)
    return


def max_pool2d_backward(const floating[:, :, :, ::1] gy, const int64_t[:, :, :, ::1] idx,
                        floating[:, :, :, ::1] gx, int threads=1):
    """gx (overwritten) = 0; then gx[n, c].flat[idx[n, c, p, q]] += gy[n, c, p, q].
    Indices outside the plane are skipped (the caller's indices come from max_pool2d_forward).
    ValueError unless idx has gy's shape and gy, gx agree on (N, C)."""
    cdef Py_ssize_t N = gx.shape[0], C = gx.shape[1], HW = gx.shape[2] * gx.shape[3]
    cdef Py_ssize_t OHW = gy.shape[2] * gy.shape[3]
    cdef Py_ssize_t s
    cdef int t
    cdef int64_t k
    cdef floating* dst
    cdef const floating* src
    cdef const int64_t* ix
    if (tuple(idx.shape)[:4] != tuple(gy.shape)[:4] or gy.shape[0] != N
            or gy.shape[1] != C):
        raise ValueError(f"max_pool2d_backward: shapes do not fit, got gy "
                         f"{tuple(gy.shape)[:4]}, idx {tuple(idx.shape)[:4]}, gx "
                         f"{tuple(gx.shape)[:4]}; need idx of gy's shape and gy's (N, C) "
                         "equal to gx's")
    if N * C * HW == 0:
        return
    with nogil:
        for t in prange(N * C, num_threads=threads if threads > 0 else 1, schedule="static"):
            dst = &gx[t // C, t % C, 0, 0]
            memset(dst, 0, HW * sizeof(floating))
            if OHW > 0:
                src = &gy[t // C, t % C, 0, 0]
                ix = &idx[t // C, t % C, 0, 0]
                for s in range(OHW):
                    k = ix[s]
                    if 0 <= k < HW:
                        dst[k] += src[s]
    return


cdef void _avg_pool_plane(const floating* x, floating* y, int H, int W, int OH, int OW, int kh,
                          int kw, int sh, int sw, int ph, int pw) noexcept nogil:
    """for p, q:  y[p, q] = (sum of x over the window's in-image positions) / (kh*kw)"""
    cdef int p, q, i, j, ih, iw, j0, j1
    cdef floating s
    cdef floating inv = 1.0 / (kh * kw)
    for p in range(OH):
        for q in range(OW):
            s = 0
            j0 = q * sw - pw
            j1 = j0 + kw
            if j0 < 0:
                j0 = 0
            if j1 > W:
                j1 = W
            for i in range(kh):
                ih = p * sh - ph + i
                if ih < 0 or ih >= H:
                    continue
                for iw in range(j0, j1):
                    s = s + x[ih * W + iw]
            y[p * OW + q] = s * inv


cdef void _avg_pool_plane_backward(const floating* gy, floating* gx, int H, int W, int OH, int OW,
                                   int kh, int kw, int sh, int sw, int ph,
                                   int pw) noexcept nogil:
    """gx = 0;  for p, q:  gx[window(p, q) inside the image] += gy[p, q] / (kh*kw)"""
    cdef int p, q, i, ih, iw, j0, j1
    cdef floating v
    cdef floating inv = 1.0 / (kh * kw)
    memset(gx, 0, <size_t>H * W * sizeof(floating))
    for p in range(OH):
        for q in range(OW):
            v = gy[p * OW + q] * inv
            j0 = q * sw - pw
            j1 = j0 + kw
            if j0 < 0:
                j0 = 0
            if j1 > W:
                j1 = W
            for i in range(kh):
                ih = p * sh - ph + i
                if ih < 0 or ih >= H:
                    continue
                for iw in range(j0, j1):
                    gx[ih * W + iw] += v


def avg_pool2d_forward(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] y, int kh, int kw,
                       int sh, int sw, int ph, int pw, int threads=1):
    """y = avg_pool2d(x) with count_include_pad; y preallocated (N, C, OH, OW)."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t OH = y.shape[2], OW = y.shape[3]
    cdef int t
    _pool_check("avg_pool2d_forward", x, y, kh, kw, sh, sw, ph, pw)
    if N * C * OH * OW == 0:
        return
    with nogil:
        for t in prange(N * C, num_threads=threads if threads > 0 else 1, schedule="static"):
            _avg_pool_plane(&x[t // C, t % C, 0, 0], &y[t // C, t % C, 0, 0], <int>H, <int>W,
                            <int>OH, <int>OW, kh, kw, sh, sw, ph, pw)
    return


def avg_pool2d_backward(const floating[:, :, :, ::1] gy, floating[:, :, :, ::1] gx, int kh,
                        int kw, int sh, int sw, int ph, int pw, int threads=1):
    """gx (overwritten) = the adjoint of avg_pool2d applied to gy."""
    cdef Py_ssize_t N = gx.shape[0], C = gx.shape[1], H = gx.shape[2], W = gx.shape[3]
    cdef Py_ssize_t OH = gy.shape[2], OW = gy.shape[3]
    cdef int t
    _pool_check("avg_pool2d_backward", gx, gy, kh, kw, sh, sw, ph, pw)
    if N * C * H * W == 0:
        return
    if OH * OW == 0:
        memset(&gx[0, 0, 0, 0], 0, N * C * H * W * sizeof(floating))
        return
    with nogil:
        for t in prange(N * C, num_threads=threads if threads > 0 else 1, schedule="static"):
            _avg_pool_plane_backward(&gy[t // C, t % C, 0, 0], &gx[t // C, t % C, 0, 0], <int>H,
                                     <int>W, <int>OH, <int>OW, kh, kw, sh, sw, ph, pw)
    return
