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


def conv2d_forward(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w,
                   floating[:, :, :, ::1] y, int sh, int sw, int ph, int pw, int dh, int dw,
                   int groups, int threads=1):
    """y = conv2d(x, w) (no bias); y is preallocated (N, O, OH, OW). ValueError on a misfit."""
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
                          int dw, int groups, int threads=1):
    """gx (N, C, H, W) = the adjoint of conv2d in x applied to gy; gx is overwritten.
    ValueError on a misfit of gy (N, O, OH, OW), w and gx."""
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
                           int dw, int groups, int threads=1):
    """gw (O, C/G, kh, kw) = sum over images of gy[n] . cols[n]^T per group; gw is overwritten.
    With several threads each sums its own images into a private partial, then partials add.
    ValueError on a misfit of gy (N, O, OH, OW), x and gw."""
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
