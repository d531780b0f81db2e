# conv.pxi -- im2col / col2im and conv2d on top of gemm_core (included by _cpu.pyx).
#
# Layouts: images NCHW, weights (O, C/G, kh, kw), columns (C*kh*kw, OH*OW) per image with the
# C*kh*kw axis ordered (c, i, j) like the weight's flattening, so conv2d is, per image n and group g,
#
#     y[n, g] (Og x OHW)  =  W[g] (Og x K)  .  cols[n, g] (K x OHW)          K = C/G * kh * kw
#
# and its two adjoints are GEMMs too:
#
#     gcols[n, g] = W[g]^T . gy[n, g]        then  gx[n] = col2im(gcols[n])   (input gradient)
#     gW[g]      += gy[n, g] . cols[n, g]^T  summed over the images n        (weight gradient)
#
# Images are split across threads (each with its own column buffer and 1-thread GEMM) when there
# are at least as many images as threads; otherwise images run in turn and the GEMM is threaded.
# A 1x1 kernel with stride 1 and no padding needs no im2col: the image already is its column matrix.
#
# Two algorithms (set_conv_algo, or the algo argument of the entry points):
#   im2col   -- the reference: write cols out, then the packed GEMM reads it (above).
#   implicit -- implicit GEMM: the GEMM's B packing gathers from the image itself
#               (conv_kernels.h), so no column buffer is written or read. Backward-input with
#               stride 1 is the same kernel run on gy: a convolution with the flipped, transposed
#               weight w'[c, o, kh-1-i, kw-1-j] = w[o, c, i, j] and padding dh*(kh-1) - ph (which
#               may be negative: a crop). Strided backward-input keeps GEMM + col2im.
#   winograd -- Winograd F(4x4, 3x3) (winograd.pxi, winograd.h): 3x3, stride 1, dilation 1,
#               one group; forward, backward-input and backward-weight. Forced per call on
#               another layer it raises; as the global choice it falls back to auto's.
#   auto     -- winograd where it is eligible and measured faster (_wino_pays); else
#               implicit where it measured faster or equal (_implicit_pays: large column
#               buffers, and forward with >= 64 outputs per group); im2col for the rest,
#               pointwise layers and strided backward-input.

cdef extern from "conv_kernels.h" nogil:
    ctypedef struct tgl_conv_geom:
        int C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW
    void tgl_pack_b_conv_f32(int isa, const tgl_conv_geom* g, const float* x, int nr, int nc,
                             int kc, int p0, int q0, float* dst)
    void tgl_pack_b_conv_f64(int isa, const tgl_conv_geom* g, const double* x, int nr, int nc,
                             int kc, int p0, int q0, double* dst)

cdef enum:
    CONV_AUTO = 0
    CONV_IM2COL = 1
    CONV_IMPLICIT = 2
    CONV_WINOGRAD = 3

_CONV_ALGOS = {"auto": CONV_AUTO, "im2col": CONV_IM2COL, "implicit": CONV_IMPLICIT,
               "winograd": CONV_WINOGRAD}
cdef int _conv_algo = CONV_AUTO


def set_conv_algo(name):
    """Choose the conv2d algorithm: 'auto' (default), 'implicit', 'winograd' or 'im2col' (the
    reference);
    returns the previous name. Also TINYGRAD_LITE_CONV_ALGO at import."""
    global _conv_algo
    previous = conv_algo()
    code = _CONV_ALGOS.get(str(name).strip().lower() if name else "auto")
    if code is None:
        raise ValueError(f"set_conv_algo: unknown algorithm {name!r}; choose one of "
                         f"{sorted(_CONV_ALGOS)}")
    _conv_algo = code
    return previous


def conv_algo():
    """Name of the conv2d algorithm in use ('auto', 'implicit', 'winograd' or 'im2col')."""
    return {v: k for k, v in _CONV_ALGOS.items()}[_conv_algo]


try:
    set_conv_algo(os.environ.get("TINYGRAD_LITE_CONV_ALGO", "auto"))
except ValueError as _e:
    warnings.warn(f"TINYGRAD_LITE_CONV_ALGO: {_e}; using 'auto'", RuntimeWarning, stacklevel=2)


cdef struct _Geom:
    int N, C, H, W, O, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW, G
    int Cg, Og, K, OHW, CKK
    bint pointwise
    tgl_kernel_info kinfo      # this call's snapshot of the GEMM kernel table (see set_isa)


cdef _Geom _geom(Py_ssize_t N, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t O,
                 int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                 Py_ssize_t OH, Py_ssize_t OW, int G) noexcept:
    cdef _Geom g
    g.N = <int>N; g.C = <int>C; g.H = <int>H; g.W = <int>W; g.O = <int>O
    g.kh = kh; g.kw = kw; g.sh = sh; g.sw = sw; g.ph = ph; g.pw = pw; g.dh = dh; g.dw = dw
    g.OH = <int>OH; g.OW = <int>OW; g.G = G if G > 0 else 1
    g.Cg = g.C // g.G; g.Og = g.O // g.G
    g.K = g.Cg * kh * kw; g.OHW = g.OH * g.OW; g.CKK = g.C * kh * kw
    g.pointwise = kh == 1 and kw == 1 and sh == 1 and sw == 1 and ph == 0 and pw == 0
    g.kinfo = _K               # taken with the GIL held, before any nogil work
    return g


cdef inline void _valid_range(int off, int stride, int size, int out, int* lo,
                              int* hi) noexcept nogil:
    """The outputs o in [lo, hi) with 0 <= o*stride + off < size."""
    lo[0] = 0 if off >= 0 else (-off + stride - 1) // stride
    hi[0] = 0 if size - 1 - off < 0 else (size - 1 - off) // stride + 1
    if hi[0] > out:
        hi[0] = out
    if lo[0] > hi[0]:
        lo[0] = hi[0]


cdef void _im2col_image(const floating* x, _Geom* g, floating* cols, int c0,
                        int c1) noexcept nogil:
    """Rows of channels [c0, c1) of one image's column matrix:

        for c, i, j:  for oh, ow:
            cols[(c*kh + i)*kw + j, oh*OW + ow] = x_pad[c, oh*sh + i*dh, ow*sw + j*dw]
    """
    cdef int c, i, j, oh, ow, ih, off, lo, hi
    cdef floating* row
    cdef floating* dst
    cdef const floating* src
    for c in range(c0, c1):
        for i in range(g.kh):
            for j in range(g.kw):
                row = cols + <ptrdiff_t>((c * g.kh + i) * g.kw + j) * g.OHW
                off = j * g.dw - g.pw
                _valid_range(off, g.sw, g.W, g.OW, &lo, &hi)
                for oh in range(g.OH):
                    ih = oh * g.sh - g.ph + i * g.dh
                    dst = row + oh * g.OW
                    if ih < 0 or ih >= g.H:
                        memset(dst, 0, g.OW * sizeof(floating))
                        continue
                    src = x + (<ptrdiff_t>c * g.H + ih) * g.W + off
                    if lo > 0:
                        memset(dst, 0, lo * sizeof(floating))
                    if hi < g.OW:
                        memset(dst + hi, 0, (g.OW - hi) * sizeof(floating))
                    if g.sw == 1:
                        memcpy(dst + lo, src + lo, (hi - lo) * sizeof(floating))
                    else:
                        for ow in range(lo, hi):
                            dst[ow] = src[ow * g.sw]


cdef void _col2im_image(const floating* cols, _Geom* g, floating* x, int c0,
                        int c1) noexcept nogil:
    """The adjoint of _im2col_image for channels [c0, c1); x must be zeroed by the caller:

        for c, i, j:  for oh, ow:  (inside the unpadded image only)
            x[c, oh*sh + i*dh - ph, ow*sw + j*dw - pw] += cols[(c*kh + i)*kw + j, oh*OW + ow]
    """
    cdef int c, i, j, oh, ow, ih, off, lo, hi
    cdef const floating* row
    cdef const floating* src
    cdef floating* dst
    for c in range(c0, c1):
        for i in range(g.kh):
            for j in range(g.kw):
                row = cols + <ptrdiff_t>((c * g.kh + i) * g.kw + j) * g.OHW
                off = j * g.dw - g.pw
                _valid_range(off, g.sw, g.W, g.OW, &lo, &hi)
                for oh in range(g.OH):
                    ih = oh * g.sh - g.ph + i * g.dh
                    if ih < 0 or ih >= g.H:
                        continue
                    src = row + oh * g.OW
                    dst = x + (<ptrdiff_t>c * g.H + ih) * g.W + off
                    if g.sw == 1:
                        for ow in range(lo, hi):
                            dst[ow] += src[ow]
                    else:
                        for ow in range(lo, hi):
                            dst[ow * g.sw] += src[ow]


def im2col(const floating[:, :, :, ::1] x, floating[:, :, ::1] cols, int kh, int kw, int sh,
           int sw, int ph, int pw, int dh, int dw, int threads=1):
    """cols (N, C*kh*kw, OH*OW) = im2col(x (N, C, H, W)). Parallel over (image, channel) pairs.
    ValueError unless cols has exactly that shape for the geometry."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1]
    cdef Py_ssize_t OHW = cols.shape[2]
    cdef Py_ssize_t OH = (x.shape[2] + 2 * ph - dh * (kh - 1) - 1) // sh + 1 if sh > 0 else 0
    cdef Py_ssize_t OW = (x.shape[3] + 2 * pw - dw * (kw - 1) - 1) // sw + 1 if sw > 0 else 0
    _window_check("im2col", x.shape[2], x.shape[3], kh, kw, sh, sw, ph, pw, dh, dw, OH, OW)
    if cols.shape[0] != N or cols.shape[1] != C * kh * kw or OHW != OH * OW:
        raise ValueError(f"im2col: cols must have shape {(N, C * kh * kw, OH * OW)}, got "
                         f"{tuple(cols.shape)[:3]}")
    cdef _Geom g = _geom(N, C, x.shape[2], x.shape[3], C, kh, kw, sh, sw, ph, pw, dh, dw,
                         OHW // OW if OW > 0 else 0, OW, 1)
    cdef int t
    if N * C == 0 or g.OHW == 0:
        return
    with nogil:
        for t in prange(N * C, num_threads=threads if threads > 0 else 1, schedule="static"):
            _im2col_image(&x[t // C, 0, 0, 0], &g, &cols[t // C, 0, 0], t % C, t % C + 1)
    return


def col2im(const floating[:, :, ::1] cols, floating[:, :, :, ::1] x, int kh, int kw, int sh,
           int sw, int ph, int pw, int dh, int dw, int threads=1):
    """x (N, C, H, W) = col2im(cols (N, C*kh*kw, OH*OW)); x is overwritten (zeroed, then
    scatter-added). Parallel over (image, channel) planes, so no two threads touch one pixel.
    ValueError unless cols has exactly that shape for x's shape and the geometry."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t OHW = cols.shape[2]
    cdef Py_ssize_t OH = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1 if sh > 0 else 0
    cdef Py_ssize_t OW = (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1 if sw > 0 else 0
    _window_check("col2im", H, W, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW)
    if cols.shape[0] != N or cols.shape[1] != C * kh * kw or OHW != OH * OW:
        raise ValueError(f"col2im: cols must have shape {(N, C * kh * kw, OH * OW)} for x "
                         f"{tuple(x.shape)[:4]}, got {tuple(cols.shape)[:3]}")
    cdef _Geom g = _geom(N, C, H, W, C, kh, kw, sh, sw, ph, pw, dh, dw,
                         OHW // OW if OW > 0 else 0, OW, 1)
    cdef int t
    if N * C * H * W == 0:
        return
    with nogil:
        for t in prange(N * C, num_threads=threads if threads > 0 else 1, schedule="static"):
            memset(&x[t // C, t % C, 0, 0], 0, H * W * sizeof(floating))
            if g.OHW > 0:
                _col2im_image(&cols[t // C, 0, 0], &g, &x[t // C, 0, 0, 0], t % C, t % C + 1)
    return


# ---------------------------------------------------------------------------- conv2d ------

cdef size_t _conv_thread_bytes(_Geom* g, int fsize, int inner_threads, bint need_cols,
                               bint need_gw) noexcept nogil:
    """Scratch per outer thread: a column buffer, a GEMM workspace, a weight-gradient partial."""
    cdef size_t b = 0, gb
    if need_cols:
        b += _round64(<size_t>g.CKK * g.OHW * fsize)
    gb = gemm_workspace_bytes(fsize, g.Og, g.OHW, g.K, inner_threads)
    gb = max(gb, gemm_workspace_bytes(fsize, g.K, g.OHW, g.Og, inner_threads))
    gb = max(gb, gemm_workspace_bytes(fsize, g.Og, g.K, g.OHW, inner_threads))
    b += gb
    if need_gw:
        b += _round64(<size_t>g.O * g.K * fsize)
    return b


cdef void _conv_fwd_image(const floating* x, const floating* w, floating* y, _Geom* g,
                          floating* cols, char* gws, int threads) noexcept nogil:
    cdef int gi
    cdef const floating* b = x
    if not g.pointwise:
        _im2col_image(x, g, cols, 0, g.C)
        b = cols
    for gi in range(g.G):
        gemm_core(g.Og, g.OHW, g.K, w + <ptrdiff_t>gi * g.Og * g.K, g.K, 1,
                  b + <ptrdiff_t>gi * g.K * g.OHW, g.OHW, 1,
                  y + <ptrdiff_t>gi * g.Og * g.OHW, g.OHW, False, threads, gws, &g.kinfo)


cdef void _conv_bwd_input_image(const floating* gy, const floating* w, floating* gx, _Geom* g,
                                floating* gcols, char* gws, int threads) noexcept nogil:
    cdef int gi
    cdef floating* c = gx if g.pointwise else gcols
    for gi in range(g.G):
        gemm_core(g.K, g.OHW, g.Og, w + <ptrdiff_t>gi * g.Og * g.K, 1, g.K,
                  gy + <ptrdiff_t>gi * g.Og * g.OHW, g.OHW, 1,
                  c + <ptrdiff_t>gi * g.K * g.OHW, g.OHW, False, threads, gws, &g.kinfo)
    if not g.pointwise:
        memset(gx, 0, <size_t>g.C * g.H * g.W * sizeof(floating))
        _col2im_image(gcols, g, gx, 0, g.C)


cdef void _conv_bwd_weight_image(const floating* gy, const floating* x, floating* gw, _Geom* g,
                                 floating* cols, char* gws, int threads) noexcept nogil:
    cdef int gi
    cdef const floating* b = x
    if not g.pointwise:
        _im2col_image(x, g, cols, 0, g.C)
        b = cols
    for gi in range(g.G):
        gemm_core(g.Og, g.K, g.OHW, gy + <ptrdiff_t>gi * g.Og * g.OHW, g.OHW, 1,
                  b + <ptrdiff_t>gi * g.K * g.OHW, 1, g.OHW,
                  gw + <ptrdiff_t>gi * g.Og * g.K, g.K, True, threads, gws, &g.kinfo)


cdef int _split(_Geom* g, int threads, int* outer, int* inner) noexcept nogil:
    if threads < 1:
        threads = 1
    if g.N >= threads:
        outer[0] = threads
        inner[0] = 1
    else:
        outer[0] = 1
        inner[0] = threads
    return 0


# ------------------------------------------------------------------- implicit GEMM ------

cdef void _iconv_serial(const tgl_conv_geom* cg, const floating* x, const floating* w, int M,
                        floating* y, Py_ssize_t q_lo, Py_ssize_t q_hi, char* ws,
                        const tgl_kernel_info* K) noexcept nogil:
    """Columns [q_lo, q_hi) of y (M x OH*OW, row stride OH*OW) = w (M x Kd, row-major) .
    cols(x) for one image and group (x: cg.C channels of cg.H x cg.W), Kd = C*kh*kw > 0:
    _gemm_serial's loops with the B packing gathering from x. ws: _thread_ws_bytes bytes."""
    cdef Py_ssize_t Kd = <Py_ssize_t>cg.C * cg.kh * cg.kw, OHW = <Py_ssize_t>cg.OH * cg.OW
    cdef Py_ssize_t ncols = q_hi - q_lo, jc, pc, ic
    cdef int mr = K.mr, nr, kcb, ncb, mcb, kc, nc, mc, beta
    cdef int simd = K.pack_simd
    cdef floating* pb = <floating*>ws
    cdef floating* pa
    if floating is float:
        nr = K.nr
        kcb = _balanced(Kd, KC_F32, 1)
        ncb = _balanced(ncols, NC_F32, nr)
        mcb = _balanced(M, MC_F32, mr)
    else:
        nr = K.nr_f64
        kcb = _balanced(Kd, KC_F64, 1)
        ncb = _balanced(ncols, NC_F64, nr)
        mcb = _balanced(M, MC_F64, mr)
    pa = <floating*>(ws + _round64(<size_t>kcb * ncb * sizeof(floating)))
    jc = q_lo
    while jc < q_hi:
        nc = <int>(q_hi - jc if q_hi - jc < ncb else ncb)
        pc = 0
        while pc < Kd:
            kc = <int>(Kd - pc if Kd - pc < kcb else kcb)
            beta = 1 if pc > 0 else 0
            if floating is float:
                tgl_pack_b_conv_f32(K.isa, cg, x, nr, nc, kc, <int>pc, <int>jc, pb)
            else:
                tgl_pack_b_conv_f64(K.isa, cg, x, nr, nc, kc, <int>pc, <int>jc, pb)
            ic = 0
            while ic < M:
                mc = <int>(M - ic if M - ic < mcb else mcb)
                if floating is float:
                    tgl_pack_a_f32(simd, mr, mc, kc, w + ic * Kd + pc, Kd, 1, pa)
                    tgl_macro_kernel_f32(K, K.ukr_f32, mr, nr, mc, nc, kc, pa, pb,
                                         y + ic * OHW + jc, OHW, 1, beta)
                else:
                    tgl_pack_a_f64(simd, mr, mc, kc, w + ic * Kd + pc, Kd, 1, pa)
                    tgl_macro_kernel_f64(K, K.ukr_f64, mr, nr, mc, nc, kc, pa, pb,
                                         y + ic * OHW + jc, OHW, 1, beta)
                ic += mc
            pc += kc
        jc += nc


cdef int _iconv_tasks(int N, int threads, Py_ssize_t OHW, int nr, int* slabs) noexcept nogil:
    """Work split of an implicit convolution: N images x slabs column slabs each (one slab per
    image when there are at least as many images as threads). Returns the thread count."""
    cdef int s = 1, units = _cdiv(OHW, nr)
    if threads > N:
        s = _cdiv(threads, N)
    if s > units:
        s = units
    slabs[0] = s if s > 0 else 1
    return threads if threads < N * slabs[0] else N * slabs[0]


cdef void _iconv_run(const tgl_conv_geom* cg, int N, int G, const floating* x,
                     const floating* w, int M, floating* y, int threads, char* ws,
                     const tgl_kernel_info* K) noexcept nogil:
    """y (N, G*M, OH, OW) = the convolution of x (N, G*cg.C, cg.H, cg.W) with w (G*M, cg.C,
    kh, kw), group by group. ws: _thread_ws_bytes per thread (_iconv_tasks threads)."""
    cdef Py_ssize_t HWin = <Py_ssize_t>cg.H * cg.W, OHW = <Py_ssize_t>cg.OH * cg.OW
    cdef Py_ssize_t Kd = <Py_ssize_t>cg.C * cg.kh * cg.kw
    cdef Py_ssize_t xs = G * cg.C * HWin, ys = <Py_ssize_t>G * M * OHW, lo, hi
    cdef size_t per = _thread_ws_bytes(sizeof(floating))
    cdef int nr = K.nr if floating is float else K.nr_f64
    cdef int slabs, nthreads = _iconv_tasks(N, threads, OHW, nr, &slabs)
    cdef int units = _cdiv(OHW, nr), t, n, s, gi
    if nthreads <= 1:
        for n in range(N):
            for gi in range(G):
                _iconv_serial(cg, x + n * xs + gi * cg.C * HWin, w + gi * M * Kd, M,
                              y + n * ys + gi * M * OHW, 0, OHW, ws, K)
        return
    for t in prange(N * slabs, num_threads=nthreads, schedule="static"):
        n = t // slabs
        s = t % slabs
        lo = <Py_ssize_t>(units * s // slabs) * nr
        hi = <Py_ssize_t>(units * (s + 1) // slabs) * nr
        if hi > OHW:
            hi = OHW
        for gi in range(G):
            _iconv_serial(cg, x + n * xs + gi * cg.C * HWin, w + gi * M * Kd, M,
                          y + n * ys + gi * M * OHW, lo, hi, ws + threadid() * per, K)


cdef tgl_conv_geom _cgeom_fwd(_Geom* g) noexcept nogil:
    cdef tgl_conv_geom c
    c.C = g.Cg; c.H = g.H; c.W = g.W; c.kh = g.kh; c.kw = g.kw; c.sh = g.sh; c.sw = g.sw
    c.ph = g.ph; c.pw = g.pw; c.dh = g.dh; c.dw = g.dw; c.OH = g.OH; c.OW = g.OW
    return c


cdef tgl_conv_geom _cgeom_bwd_input(_Geom* g) noexcept nogil:
    """Stride-1 backward-input as a convolution of gy (Og channels of OH x OW) giving H x W."""
    cdef tgl_conv_geom c
    c.C = g.Og; c.H = g.OH; c.W = g.OW; c.kh = g.kh; c.kw = g.kw; c.sh = 1; c.sw = 1
    c.ph = g.dh * (g.kh - 1) - g.ph; c.pw = g.dw * (g.kw - 1) - g.pw; c.dh = g.dh; c.dw = g.dw
    c.OH = g.H; c.OW = g.W
    return c


cdef void _flip_weight(const floating* w, floating* wt, _Geom* g) noexcept nogil:
    """wt[gi][c, o, i, j] = w[gi*Og + o, c, kh-1-i, kw-1-j]: per group a (Cg x Og*kh*kw) matrix."""
    cdef int gi, o, c, i, j, kk = g.kh * g.kw
    cdef const floating* src
    cdef floating* dst
    for gi in range(g.G):
        for o in range(g.Og):
            for c in range(g.Cg):
                src = w + (<ptrdiff_t>(gi * g.Og + o) * g.Cg + c) * kk
                dst = wt + <ptrdiff_t>gi * g.Cg * g.Og * kk + (<ptrdiff_t>c * g.Og + o) * kk
                for i in range(g.kh):
                    for j in range(g.kw):
                        dst[i * g.kw + j] = src[(g.kh - 1 - i) * g.kw + (g.kw - 1 - j)]


cdef bint _implicit_pays(_Geom* g, bint backward) noexcept nogil:
    """auto's choice (measured, 1 thread, float32, 3x3 and 5x5 layers). The gather costs about
    what im2col + packing cost, so implicit wins when the column buffer (C/G*kh*kw x OH*OW per
    image) falls out of the caches -- 1.24x forward at 4.7 MB, 1.31x backward at 9.4 MB -- and
    ties at 1.2 MB; it loses where the GEMM's M is small, so its packed B is reused by few
    rows: forward with few outputs (0.83x at 16, 0.96x at 32) or few input channels (the 1- and
    3-channel layers, 1.1-2x slower); backward-input, whose M is C/G, up to 4.7 MB (0.76-0.98x)."""
    cdef size_t cols = <size_t>g.K * g.OHW          # values; thresholds as float32 bytes
    if g.pointwise:
        return False
    if backward:
        return g.Cg >= g.kinfo.mr and cols * 4 >= (<size_t>8 << 20)
    return g.Cg >= 8 and (g.Og >= 64 or cols * 4 >= (<size_t>4 << 20))


cdef int _pick_algo(str op, object algo, bint pointwise, bint strided_bwd,
                    _Geom* g) except -1:
    """The algorithm of one call, CONV_IM2COL, CONV_IMPLICIT or CONV_WINOGRAD: the call's algo
    ('auto', None, 'im2col', 'implicit' or 'winograd'), else set_conv_algo's; auto takes
    winograd where it fits and pays (_wino_pays), else implicit except where nothing is
    gathered (pointwise) and where im2col wins (the caller passes pointwise=True then), and
    never for a strided backward-input (not an implicit convolution). A call that forces
    winograd on a layer it cannot compute raises; the global winograd falls back to auto."""
    cdef int code = _algo_code(op, algo)
    cdef str why = _wino_unfit(g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.G,
                               max(<size_t>g.N * g.C * g.H * g.W, <size_t>g.N * g.O * g.OHW))
    if code == CONV_IMPLICIT and strided_bwd:
        raise ValueError(f"{op}: the implicit algorithm computes a stride-1 backward-input "
                         "only; use algo='im2col' or 'auto' for strides > 1")
    if code == CONV_WINOGRAD and why is not None:
        raise ValueError(f"{op}: the winograd algorithm {why}; use algo='auto', 'implicit' "
                         "or 'im2col' for this layer")
    if code == CONV_AUTO:
        code = _conv_algo
    if why is None and (code == CONV_WINOGRAD or (code == CONV_AUTO and _wino_pays(g))):
        return CONV_WINOGRAD
    if code == CONV_WINOGRAD:
        code = CONV_AUTO
    if code == CONV_IM2COL or strided_bwd:
        return CONV_IM2COL
    if code == CONV_AUTO and pointwise:
        return CONV_IM2COL
    return CONV_IMPLICIT


cdef bint _wino_pays(_Geom* g) noexcept nogil:
    """auto's choice of winograd for an eligible layer: AVX-512 (its transforms are vector code
    there only), at least 8 input and output channels, and on images of 1-2 tiles a row (OW
    <= 8: gathered transforms, few tiles to pay for the filter transform) at most 8192 filters.
    Measured (1 thread, float32, against the faster of implicit and im2col, per pass): 1.6-3.4x
    forward and backward-input and 1.0-3.2x backward-weight for 8-128 channels on 8x8..56x56
    images; 0.45-1.4x with 3 input channels; 0.6-0.8x for 512 -> 512 channels on 8x8. float64
    (gathered transforms): 1.6-2.5x on five of those layers, so the rule ignores the dtype."""
    return (g.kinfo.isa == TGL_ISA_AVX512 and g.C >= 8 and g.O >= 8
            and (g.OW > 8 or <size_t>g.C * g.O <= 8192))


cdef int _algo_code(str op, object algo) except -1:
    code = _CONV_ALGOS.get(str(algo).strip().lower() if algo else "auto")
    if code is None:
        raise ValueError(f"{op}: unknown algo {algo!r}; choose one of {sorted(_CONV_ALGOS)}")
    return code


cdef int _iconv_call(const tgl_conv_geom* cg, int N, int G, const floating* x,
                     const floating* w, int M, floating* y, int threads,
                     const tgl_kernel_info* K) except -1:
    """_iconv_run with its workspace (the shared one when free), the GIL released."""
    cdef int slabs
    cdef int nthreads = _iconv_tasks(N, threads if threads > 0 else 1,
                                     <Py_ssize_t>cg.OH * cg.OW,
                                     K.nr if floating is float else K.nr_f64, &slabs)
    cdef _Workspace ws = _ws_acquire()
    cdef char* buf
    try:
        buf = ws.ensure(_thread_ws_bytes(sizeof(floating)) * (nthreads if nthreads > 1 else 1))
        with nogil:
            _iconv_run(cg, N, G, x, w, M, y, threads if threads > 0 else 1, buf, K)
    finally:
        _ws_release(ws)
    return 0


def conv2d_forward(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w,
                   floating[:, :, :, ::1] y, int sh, int sw, int ph, int pw, int dh, int dw,
                   int groups, int threads=1, algo=None):
    """y = conv2d(x, w) (no bias); y is preallocated (N, O, OH, OW). ValueError on a misfit.
    algo: 'implicit', 'im2col' or None/'auto' (set_conv_algo's choice; see the top of conv.pxi)."""
    _conv_check("conv2d_forward", tuple(x.shape)[:4], tuple(w.shape)[:4], tuple(y.shape)[:4],
                groups)
    _window_check("conv2d_forward", x.shape[2], x.shape[3], <int>w.shape[2], <int>w.shape[3], sh,
                  sw, ph, pw, dh, dw, y.shape[2], y.shape[3])
    cdef _Geom g = _geom(x.shape[0], x.shape[1], x.shape[2], x.shape[3], w.shape[0],
                         <int>w.shape[2], <int>w.shape[3], sh, sw, ph, pw, dh, dw,
                         y.shape[2], y.shape[3], groups)
    cdef int outer, inner, n, tid
    if <size_t>g.N * g.O * g.OHW == 0:
        return
    if g.K == 0:
        memset(&y[0, 0, 0, 0], 0, <size_t>g.N * g.O * g.OHW * sizeof(floating))
        return
    # a few taps and outputs: the direct kernel (end of file)
    if _small_pays("conv2d_forward", &g, algo):
        _small_fwd_call(&x[0, 0, 0, 0], &w[0, 0, 0, 0], <const floating*>NULL, &y[0, 0, 0, 0],
                        &g, threads)
        return
    cdef int code = _pick_algo("conv2d_forward", algo, not _implicit_pays(&g, False), False, &g)
    cdef tgl_conv_geom cg
    if code == CONV_WINOGRAD:
        _wino_conv(&x[0, 0, 0, 0], &w[0, 0, 0, 0], &y[0, 0, 0, 0], g.N, g.C, g.H, g.W, g.O,
                   g.OH, g.OW, g.ph, g.pw, False, threads if threads > 0 else 1, &g.kinfo)
        return
    if code == CONV_IMPLICIT:
        cg = _cgeom_fwd(&g)
        _iconv_call(&cg, g.N, g.G, &x[0, 0, 0, 0], &w[0, 0, 0, 0], g.Og, &y[0, 0, 0, 0],
                    threads, &g.kinfo)
        return
    _split(&g, threads, &outer, &inner)
    cdef size_t per = _conv_thread_bytes(&g, sizeof(floating), inner, not g.pointwise, False)
    cdef size_t colb = 0 if g.pointwise else _round64(<size_t>g.CKK * g.OHW * sizeof(floating))
    cdef _Workspace ws = _ws_acquire()
    cdef char* buf
    cdef char* mine
    try:
        buf = ws.ensure(per * outer)
        with nogil:
            if outer == 1:
                for n in range(g.N):
                    _conv_fwd_image(&x[n, 0, 0, 0], &w[0, 0, 0, 0], &y[n, 0, 0, 0], &g,
                                    <floating*>buf, buf + colb, inner)
            else:
                for n in prange(g.N, num_threads=outer, schedule="static"):
                    tid = threadid()
                    mine = buf + tid * per
                    _conv_fwd_image(&x[n, 0, 0, 0], &w[0, 0, 0, 0], &y[n, 0, 0, 0], &g,
                                    <floating*>mine, mine + colb, 1)
    finally:
        _ws_release(ws)
    return


def conv2d_backward_input(const floating[:, :, :, ::1] gy, const floating[:, :, :, ::1] w,
                          floating[:, :, :, ::1] gx, int sh, int sw, int ph, int pw, int dh,
                          int dw, int groups, int threads=1, algo=None):
    """gx (N, C, H, W) = the adjoint of conv2d in x applied to gy; gx is overwritten.
    ValueError on a misfit of gy (N, O, OH, OW), w and gx. algo as in conv2d_forward
    ('implicit' needs stride 1)."""
    _conv_check("conv2d_backward_input", tuple(gx.shape)[:4], tuple(w.shape)[:4],
                tuple(gy.shape)[:4], groups)
    _window_check("conv2d_backward_input", gx.shape[2], gx.shape[3], <int>w.shape[2],
                  <int>w.shape[3], sh, sw, ph, pw, dh, dw, gy.shape[2], gy.shape[3])
    cdef _Geom g = _geom(gx.shape[0], gx.shape[1], gx.shape[2], gx.shape[3], w.shape[0],
                         <int>w.shape[2], <int>w.shape[3], sh, sw, ph, pw, dh, dw,
                         gy.shape[2], gy.shape[3], groups)
    cdef int outer, inner, n, tid
    if g.N * g.C * g.H * g.W == 0:
        return
    if g.OHW == 0 or g.O == 0:
        memset(&gx[0, 0, 0, 0], 0, <size_t>g.N * g.C * g.H * g.W * sizeof(floating))
        return
    cdef int code = _pick_algo("conv2d_backward_input", algo, not _implicit_pays(&g, True),
                               sh != 1 or sw != 1, &g)
    cdef tgl_conv_geom cg
    cdef _Workspace wsw
    cdef floating* wt
    if code == CONV_WINOGRAD:       # the convolution of gy with the flipped w, padding 2 - p
        _wino_conv(&gy[0, 0, 0, 0], &w[0, 0, 0, 0], &gx[0, 0, 0, 0], g.N, g.O, g.OH, g.OW, g.C,
                   g.H, g.W, 2 - g.ph, 2 - g.pw, True, threads if threads > 0 else 1, &g.kinfo)
        return
    if code == CONV_IMPLICIT:
        cg = _cgeom_bwd_input(&g)
        wsw = _Workspace()      # the flipped weight (size of w); the shared one is for GEMM
        wt = <floating*>wsw.ensure(<size_t>g.O * g.K * sizeof(floating))
        _flip_weight(&w[0, 0, 0, 0], wt, &g)
        _iconv_call(&cg, g.N, g.G, &gy[0, 0, 0, 0], wt, g.Cg, &gx[0, 0, 0, 0], threads,
                    &g.kinfo)
        return
    _split(&g, threads, &outer, &inner)
    cdef size_t per = _conv_thread_bytes(&g, sizeof(floating), inner, not g.pointwise, False)
    cdef size_t colb = 0 if g.pointwise else _round64(<size_t>g.CKK * g.OHW * sizeof(floating))
    cdef _Workspace ws = _ws_acquire()
    cdef char* buf
    cdef char* mine
    try:
        buf = ws.ensure(per * outer)
        with nogil:
            if outer == 1:
                for n in range(g.N):
                    _conv_bwd_input_image(&gy[n, 0, 0, 0], &w[0, 0, 0, 0], &gx[n, 0, 0, 0], &g,
                                          <floating*>buf, buf + colb, inner)
            else:
                for n in prange(g.N, num_threads=outer, schedule="static"):
                    tid = threadid()
                    mine = buf + tid * per
                    _conv_bwd_input_image(&gy[n, 0, 0, 0], &w[0, 0, 0, 0], &gx[n, 0, 0, 0], &g,
                                          <floating*>mine, mine + colb, 1)
    finally:
        _ws_release(ws)
    return


def conv2d_backward_weight(const floating[:, :, :, ::1] gy, const floating[:, :, :, ::1] x,
                           floating[:, :, :, ::1] gw, int sh, int sw, int ph, int pw, int dh,
                           int dw, int groups, int threads=1, algo=None):
    """gw (O, C/G, kh, kw) = sum over images of gy[n] . cols[n]^T per group; gw is overwritten.
    With several threads each sums its own images into a private partial, then partials add.
    ValueError on a misfit of gy (N, O, OH, OW), x and gw. algo: 'winograd' (see the top of
    conv.pxi), else (None, 'auto', 'implicit', 'im2col') auto's choice: winograd where it
    pays, else im2col + GEMM (there is no implicit weight gradient)."""
    _conv_check("conv2d_backward_weight", tuple(x.shape)[:4], tuple(gw.shape)[:4],
                tuple(gy.shape)[:4], groups)
    _window_check("conv2d_backward_weight", x.shape[2], x.shape[3], <int>gw.shape[2],
                  <int>gw.shape[3], sh, sw, ph, pw, dh, dw, gy.shape[2], gy.shape[3])
    cdef _Geom g = _geom(x.shape[0], x.shape[1], x.shape[2], x.shape[3], gw.shape[0],
                         <int>gw.shape[2], <int>gw.shape[3], sh, sw, ph, pw, dh, dw,
                         gy.shape[2], gy.shape[3], groups)
    cdef int outer, inner, n, tid, t
    cdef Py_ssize_t i, gwn = <Py_ssize_t>g.O * g.K
    if gwn == 0:
        return
    memset(&gw[0, 0, 0, 0], 0, gwn * sizeof(floating))
    if g.N * g.OHW == 0:
        return
    # a few taps and outputs: the direct kernel (end of file)
    if _small_pays("conv2d_backward_weight", &g, algo):
        _small_bwd_w_call(&gy[0, 0, 0, 0], &x[0, 0, 0, 0], &gw[0, 0, 0, 0], <floating*>NULL, &g,
                          threads)
        return
    if _pick_algo("conv2d_backward_weight", algo, True, False, &g) == CONV_WINOGRAD:
        _wino_bwd_weight(&gy[0, 0, 0, 0], &x[0, 0, 0, 0], &gw[0, 0, 0, 0], g.N, g.C, g.H, g.W,
                         g.O, g.OH, g.OW, g.ph, g.pw, threads if threads > 0 else 1, &g.kinfo)
        return
    _split(&g, threads, &outer, &inner)
    cdef size_t colb = 0 if g.pointwise else _round64(<size_t>g.CKK * g.OHW * sizeof(floating))
    cdef size_t per = _conv_thread_bytes(&g, sizeof(floating), inner, not g.pointwise, True)
    cdef size_t gwb = _round64(<size_t>gwn * sizeof(floating))
    cdef _Workspace ws = _ws_acquire()
    cdef char* buf
    cdef char* mine
    cdef floating* part
    cdef floating* acc = &gw[0, 0, 0, 0]
    try:
        buf = ws.ensure(per * outer)
        with nogil:
            if outer == 1:
                for n in range(g.N):
                    _conv_bwd_weight_image(&gy[n, 0, 0, 0], &x[n, 0, 0, 0], acc, &g,
                                           <floating*>buf, buf + colb + gwb, inner)
            else:
                for t in prange(outer, num_threads=outer, schedule="static"):
                    mine = buf + t * per
                    part = <floating*>(mine + colb)
                    memset(part, 0, gwn * sizeof(floating))
                    for n in range(g.N * t // outer, g.N * (t + 1) // outer):
                        _conv_bwd_weight_image(&gy[n, 0, 0, 0], &x[n, 0, 0, 0], part, &g,
                                               <floating*>mine, mine + colb + gwb, 1)
                for t in range(outer):
                    part = <floating*>(buf + t * per + colb)
                    for i in range(gwn):
                        acc[i] += part[i]
    finally:
        _ws_release(ws)
    return


# ------------------------------------------------------ direct conv for few taps ------
#
# conv_small.h: a direct stride-1 convolution over a zero-padded copy of each image, for layers
# whose GEMM would be tiny (the first layer of a small CNN: 1 -> 8 channels, 3x3, so M = 8 and
# K = 9). auto takes it for stride 1, one group, C*kh*kw <= SMALL_MAX_TAPS and O <= SMALL_MAX_O;
# a forced algo ('im2col', 'implicit') never does. Measured against im2col, 1 thread, float32,
# batch 64, on the shared 2-core machine (best of 15 interleaved): 1 -> 6 5x5 28x28 forward
# 1.27x, weight gradient 1.11x; 3 -> 8 3x3 32x32 1.49x, 1.16x; 1 -> 8 3x3 28x28 0.93x, 1.0x
# (both near the FMA throughput there); 3 -> 16 3x3 0.73x, 0.92x, hence O <= 8. What it adds
# for the small CNN is the bias: conv2d_forward_bias adds it in the epilogue (no second pass
# over the output) and conv2d_backward_weight_bias sums its gradient in the dw pass.

cdef extern from "conv_small.h" nogil:
    void tgl_sconv_fwd_f32(int isa, const float* xp, ptrdiff_t M, const ptrdiff_t* off,
                           int ntap, const float* w, int O, float* out)
    void tgl_sconv_fwd_f64(int isa, const double* xp, ptrdiff_t M, const ptrdiff_t* off,
                           int ntap, const double* w, int O, double* out)
    void tgl_sconv_bwd_w_f32(int isa, const float* xp, ptrdiff_t M, const ptrdiff_t* off,
                             int ntap, const float* g, int O, float* gw, float* gb)
    void tgl_sconv_bwd_w_f64(int isa, const double* xp, ptrdiff_t M, const ptrdiff_t* off,
                             int ntap, const double* g, int O, double* gw, double* gb)

cdef enum:
    SMALL_MAX_TAPS = 32
    SMALL_MAX_O = 8


cdef bint _small_fits(_Geom* g) noexcept nogil:
    return (g.sh == 1 and g.sw == 1 and g.G == 1 and 0 < g.K <= SMALL_MAX_TAPS
            and g.O <= SMALL_MAX_O and g.OHW > 0)


cdef bint _small_pays(str op, _Geom* g, object algo) except -1:
    """auto (the call's algo and set_conv_algo's) and a layer _small_fits."""
    return (_algo_code(op, algo) == CONV_AUTO and _conv_algo == CONV_AUTO
            and _small_fits(g))


def conv_small_fits(int C, int O, int kh, int kw, int sh, int sw, int groups):
    """Whether auto runs a (C -> O, kh x kw, stride, groups) conv2d with the direct few-tap
    kernel (conv_small.h) rather than a GEMM: for tests and benchmarks."""
    cdef _Geom g = _geom(1, C, kh, kw, O, kh, kw, sh, sw, 0, 0, 1, 1, 1, 1, groups)
    return bool(_small_fits(&g))


cdef struct _SmallGeom:
    int Hp, Wp
    Py_ssize_t M, plane, xpn      # flat length, Hp*Wp, C*Hp*Wp
    ptrdiff_t off[SMALL_MAX_TAPS]


cdef _SmallGeom _small_geom(_Geom* g) noexcept nogil:
    cdef _SmallGeom s
    cdef int c, i, j, k = 0
    s.Hp = g.H + 2 * g.ph
    s.Wp = g.W + 2 * g.pw
    s.plane = <Py_ssize_t>s.Hp * s.Wp
    s.xpn = s.plane * g.C
    s.M = <Py_ssize_t>(g.OH - 1) * s.Wp + g.OW
    for c in range(g.C):
        for i in range(g.kh):
            for j in range(g.kw):
                s.off[k] = c * s.plane + <ptrdiff_t>i * g.dh * s.Wp + j * g.dw
                k += 1
    return s


cdef size_t _small_bytes(_Geom* g, _SmallGeom* s, int fsize, bint grad) noexcept nogil:
    """Scratch per thread: the padded image, the flat output (or gradient), gw and gb partials."""
    cdef size_t b = _round64(<size_t>s.xpn * fsize) + _round64(<size_t>g.O * s.M * fsize)
    if grad:
        b += _round64(<size_t>(g.O * g.K + g.O) * fsize)
    return b


cdef void _small_pad(const floating* x, floating* xp, _Geom* g, _SmallGeom* s) noexcept nogil:
    """xp (C planes of Hp x Wp) = x (C planes of H x W) with ph, pw zeros around."""
    cdef int c, r
    if g.ph or g.pw:
        memset(xp, 0, <size_t>s.xpn * sizeof(floating))
    for c in range(g.C):
        for r in range(g.H):
            memcpy(xp + c * s.plane + <Py_ssize_t>(r + g.ph) * s.Wp + g.pw,
                   x + (<Py_ssize_t>c * g.H + r) * g.W, <size_t>g.W * sizeof(floating))


cdef void _small_fwd_image(const floating* x, const floating* w, const floating* b, floating* y,
                           _Geom* g, _SmallGeom* s, char* buf) noexcept nogil:
    """y (O x OH x OW) = conv2d(x) of one image (+ b[o] when b is not NULL)."""
    cdef floating* xp = <floating*>buf
    cdef floating* out = <floating*>(buf + _round64(<size_t>s.xpn * sizeof(floating)))
    cdef int o, p, q
    cdef floating bo
    cdef const floating* src
    cdef floating* dst
    _small_pad(x, xp, g, s)
    if floating is float:
        tgl_sconv_fwd_f32(g.kinfo.isa, xp, s.M, s.off, g.K, w, g.O, out)
    else:
        tgl_sconv_fwd_f64(g.kinfo.isa, xp, s.M, s.off, g.K, w, g.O, out)
    for o in range(g.O):
        bo = b[o] if b != NULL else 0
        for p in range(g.OH):
            src = out + o * s.M + <Py_ssize_t>p * s.Wp
            dst = y + (<Py_ssize_t>o * g.OH + p) * g.OW
            if b != NULL:
                for q in range(g.OW):
                    dst[q] = src[q] + bo
            else:
                memcpy(dst, src, <size_t>g.OW * sizeof(floating))


cdef void _small_fwd(const floating* x, const floating* w, const floating* b, floating* y,
                     _Geom* g, _SmallGeom* s, char* buf, size_t per, int threads) noexcept nogil:
    cdef Py_ssize_t xs = <Py_ssize_t>g.C * g.H * g.W, ys = <Py_ssize_t>g.O * g.OHW
    cdef int n
    if threads <= 1 or g.N < 2:
        for n in range(g.N):
            _small_fwd_image(x + n * xs, w, b, y + n * ys, g, s, buf)
        return
    for n in prange(g.N, num_threads=threads, schedule="static"):
        _small_fwd_image(x + n * xs, w, b, y + n * ys, g, s, buf + threadid() * per)


cdef void _small_bwd_w_image(const floating* gy, const floating* x, floating* gw, floating* gb,
                             _Geom* g, _SmallGeom* s, char* buf) noexcept nogil:
    """gw (O x K) += the weight gradient of one image; gb (O) += sum of gy (when not NULL)."""
    cdef floating* xp = <floating*>buf
    cdef floating* gp = <floating*>(buf + _round64(<size_t>s.xpn * sizeof(floating)))
    cdef int o, p, gap = s.Wp - g.OW
    cdef floating* dst
    _small_pad(x, xp, g, s)
    for o in range(g.O):             # gp[o, p*Wp + q] = gy[o, p, q]; 0 in the dropped columns
        for p in range(g.OH):
            dst = gp + o * s.M + <Py_ssize_t>p * s.Wp
            memcpy(dst, gy + (<Py_ssize_t>o * g.OH + p) * g.OW, <size_t>g.OW * sizeof(floating))
            if p < g.OH - 1 and gap > 0:
                memset(dst + g.OW, 0, <size_t>gap * sizeof(floating))
    if floating is float:
        tgl_sconv_bwd_w_f32(g.kinfo.isa, xp, s.M, s.off, g.K, gp, g.O, gw, gb)
    else:
        tgl_sconv_bwd_w_f64(g.kinfo.isa, xp, s.M, s.off, g.K, gp, g.O, gw, gb)


cdef void _small_bwd_w(const floating* gy, const floating* x, floating* gw, floating* gb,
                       _Geom* g, _SmallGeom* s, char* buf, size_t per,
                       int threads) noexcept nogil:
    """gw = sum over images (overwritten); gb likewise when not NULL. Several threads each sum
    their own images into a private partial (in their scratch), then the partials add."""
    cdef Py_ssize_t xs = <Py_ssize_t>g.C * g.H * g.W, ys = <Py_ssize_t>g.O * g.OHW
    cdef Py_ssize_t nw = <Py_ssize_t>g.O * g.K, i
    cdef size_t partb = _round64(<size_t>s.xpn * sizeof(floating)) + \
        _round64(<size_t>g.O * s.M * sizeof(floating))
    cdef int n, t, outer = threads if threads < g.N else g.N
    cdef floating* part
    memset(gw, 0, <size_t>nw * sizeof(floating))
    if gb != NULL:
        memset(gb, 0, <size_t>g.O * sizeof(floating))
    if outer <= 1:
        for n in range(g.N):
            _small_bwd_w_image(gy + n * ys, x + n * xs, gw, gb, g, s, buf)
        return
    for t in prange(outer, num_threads=outer, schedule="static"):
        part = <floating*>(buf + t * per + partb)
        memset(part, 0, <size_t>(nw + g.O) * sizeof(floating))
        for n in range(g.N * t // outer, g.N * (t + 1) // outer):
            _small_bwd_w_image(gy + n * ys, x + n * xs, part, part + nw if gb != NULL else NULL,
                               g, s, buf + t * per)
    for t in range(outer):
        part = <floating*>(buf + t * per + partb)
        for i in range(nw):
            gw[i] += part[i]
        if gb != NULL:
            for i in range(g.O):
                gb[i] += part[nw + i]


cdef int _small_fwd_call(const floating* x, const floating* w, const floating* b, floating* y,
                         _Geom* g, int threads) except -1:
    cdef _SmallGeom s = _small_geom(g)
    cdef size_t per = _small_bytes(g, &s, sizeof(floating), False)
    cdef int nt = threads if 1 < threads < g.N else (g.N if threads > 1 else 1)
    cdef _Workspace ws = _ws_acquire()
    cdef char* buf
    try:
        buf = ws.ensure(per * nt)
        with nogil:
            _small_fwd(x, w, b, y, g, &s, buf, per, nt)
    finally:
        _ws_release(ws)
    return 0


cdef int _small_bwd_w_call(const floating* gy, const floating* x, floating* gw, floating* gb,
                           _Geom* g, int threads) except -1:
    cdef _SmallGeom s = _small_geom(g)
    cdef size_t per = _small_bytes(g, &s, sizeof(floating), True)
    cdef int nt = threads if 1 < threads < g.N else (g.N if threads > 1 else 1)
    cdef _Workspace ws = _ws_acquire()
    cdef char* buf
    try:
        buf = ws.ensure(per * nt)
        with nogil:
            _small_bwd_w(gy, x, gw, gb, g, &s, buf, per, nt)
    finally:
        _ws_release(ws)
    return 0


cdef void _add_bias(floating* y, const floating* b, Py_ssize_t N, Py_ssize_t O,
                    Py_ssize_t HW) noexcept nogil:
    cdef Py_ssize_t n, o, i
    cdef floating* row
    for n in range(N):
        for o in range(O):
            row = y + (n * O + o) * HW
            for i in range(HW):
                row[i] = row[i] + b[o]


cdef void _sum_bias(const floating* gy, floating* gb, Py_ssize_t N, Py_ssize_t O,
                    Py_ssize_t HW) noexcept nogil:
    """gb[o] = sum over n, pixels of gy[n, o] (overwritten), eight lanes of partial sums."""
    cdef Py_ssize_t n, o, i, full = HW - HW % 8
    cdef floating a[8]
    cdef floating s
    cdef const floating* row
    cdef int t
    for o in range(O):
        s = 0
        for t in range(8):
            a[t] = 0
        for n in range(N):
            row = gy + (n * O + o) * HW
            for i in range(0, full, 8):
                for t in range(8):
                    a[t] += row[i + t]
            for i in range(full, HW):
                s += row[i]
        for t in range(8):
            s += a[t]
        gb[o] = s


def conv2d_forward_bias(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w,
                        const floating[::1] b, floating[:, :, :, ::1] y, int sh, int sw, int ph,
                        int pw, int dh, int dw, int groups, int threads=1, algo=None):
    """y = conv2d(x, w) + b[None, :, None, None], the bias added in the kernel's epilogue; the
    same values as conv2d_forward then the add. ValueError on a misfit (b must have O values)."""
    if b.shape[0] != w.shape[0]:
        raise ValueError(f"conv2d_forward_bias: b must have {w.shape[0]} values (one per output "
                         f"channel), got {b.shape[0]}")
    _conv_check("conv2d_forward_bias", tuple(x.shape)[:4], tuple(w.shape)[:4],
                tuple(y.shape)[:4], groups)
    _window_check("conv2d_forward_bias", x.shape[2], x.shape[3], <int>w.shape[2],
                  <int>w.shape[3], sh, sw, ph, pw, dh, dw, y.shape[2], y.shape[3])
    cdef _Geom g = _geom(x.shape[0], x.shape[1], x.shape[2], x.shape[3], w.shape[0],
                         <int>w.shape[2], <int>w.shape[3], sh, sw, ph, pw, dh, dw,
                         y.shape[2], y.shape[3], groups)
    if <size_t>g.N * g.O * g.OHW == 0:
        return
    if _small_pays("conv2d_forward_bias", &g, algo):
        _small_fwd_call(&x[0, 0, 0, 0], &w[0, 0, 0, 0], &b[0], &y[0, 0, 0, 0], &g, threads)
        return
    conv2d_forward(x, w, y, sh, sw, ph, pw, dh, dw, groups, threads, algo)
    with nogil:
        _add_bias(&y[0, 0, 0, 0], &b[0], g.N, g.O, g.OHW)


def conv2d_backward_weight_bias(const floating[:, :, :, ::1] gy, const floating[:, :, :, ::1] x,
                                floating[:, :, :, ::1] gw, floating[::1] gb, int sh, int sw,
                                int ph, int pw, int dh, int dw, int groups, int threads=1):
    """gw as conv2d_backward_weight and gb[o] = sum of gy[:, o] (both overwritten), in one pass
    over gy where the direct kernel runs. ValueError on a misfit (gb must have O values)."""
    if gb.shape[0] != gw.shape[0]:
        raise ValueError(f"conv2d_backward_weight_bias: gb must have {gw.shape[0]} values (one "
                         f"per output channel), got {gb.shape[0]}")
    _conv_check("conv2d_backward_weight_bias", tuple(x.shape)[:4], tuple(gw.shape)[:4],
                tuple(gy.shape)[:4], groups)
    _window_check("conv2d_backward_weight_bias", x.shape[2], x.shape[3], <int>gw.shape[2],
                  <int>gw.shape[3], sh, sw, ph, pw, dh, dw, gy.shape[2], gy.shape[3])
    cdef _Geom g = _geom(x.shape[0], x.shape[1], x.shape[2], x.shape[3], gw.shape[0],
                         <int>gw.shape[2], <int>gw.shape[3], sh, sw, ph, pw, dh, dw,
                         gy.shape[2], gy.shape[3], groups)
    if g.O == 0:
        return
    if g.N * g.OHW > 0 and _small_pays("conv2d_backward_weight_bias", &g, None):
        _small_bwd_w_call(&gy[0, 0, 0, 0], &x[0, 0, 0, 0], &gw[0, 0, 0, 0], &gb[0], &g,
                          threads)
        return
    conv2d_backward_weight(gy, x, gw, sh, sw, ph, pw, dh, dw, groups, threads)
    if g.N * g.OHW == 0:
        memset(&gb[0], 0, g.O * sizeof(floating))
        return
    with nogil:
        _sum_bias(&gy[0, 0, 0, 0], &gb[0], g.N, g.O, g.OHW)
