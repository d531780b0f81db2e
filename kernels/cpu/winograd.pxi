# winograd.pxi -- Winograd F(4x4, 3x3) conv2d on top of the GEMM micro-kernels (included by
# _cpu.pyx before conv.pxi, whose algorithm switch calls it; the transforms are winograd.h).
#
# For a 3x3 kernel, stride 1, dilation 1, one group, any padding:
#
#   forward          y = conv(x, w): per block of L tiles (L = the micro-kernel's NR, one tile
#                    per column), on one thread:
#                        V[xi] (C x L)  = input transform of the block   (a packed B panel)
#                        for each MR rows of output channels kp:
#                            Mb[xi] (MR x L) = Upk[xi][kp] (MR x C) . V[xi]   36 micro-kernels
#                            y[.., kp rows, tiles of the block] = output transform of Mb
#                    U = G w G^T is transformed once per call, straight into MR panels.
#   backward-input   the same, on gy with the rotated, transposed filter and padding 2 - p
#                    (a crop when p > 2): for stride 1 the adjoint is that convolution.
#   backward-weight  per block of WINO_BW_LANES tiles:
#                        Vx[xi] (C x L) = input transform of x,  Gy[xi] (O x L) = A gy A^T
#                        dU[xi] (O x C) += Gy[xi] . Vx[xi]^T                 36 packed GEMMs
#                    then gw = G^T dU G. Each thread sums its blocks into its own dU. When C is
#                    the thinner side (padding it to NR would waste more), the GEMMs compute
#                    dU[xi]^T (C x O) = Vx[xi] . Gy[xi]^T instead (C=8: 0.87x -> faster).
#
# Threads split the tile blocks (forward: a static prange; backward-weight: one contiguous range
# per thread, partials added at the end). The transforms are AVX-512 vector code (one tile per
# lane) when that ISA is selected, scalar C otherwise.

cdef extern from "winograd.h" nogil:
    ctypedef struct tgl_wino_geom:
        int N, C, H, W, K, OH, OW, ph, pw, TH, TW, TS
    void tgl_wino_filter_f32(int isa, const float* w, int K, int C, int flip, int mr, float* U)
    void tgl_wino_filter_f64(int isa, const double* w, int K, int C, int flip, int mr,
                             double* U)
    void tgl_wino_filter_grad_f32(const float* dU, int K, int C, int trans, float* gw)
    void tgl_wino_filter_grad_f64(const double* dU, int K, int C, int trans, double* gw)
    void tgl_wino_in_f32(int isa, const tgl_wino_geom* g, const float* x, ptrdiff_t t0, int L,
                         int c0, int c1, float* V, ptrdiff_t xs, ptrdiff_t cs)
    void tgl_wino_in_f64(int isa, const tgl_wino_geom* g, const double* x, ptrdiff_t t0, int L,
                         int c0, int c1, double* V, ptrdiff_t xs, ptrdiff_t cs)
    void tgl_wino_out_f32(int isa, const tgl_wino_geom* g, const float* M, ptrdiff_t xs,
                          ptrdiff_t ks, int k0, int k1, ptrdiff_t t0, int L, float* y)
    void tgl_wino_out_f64(int isa, const tgl_wino_geom* g, const double* M, ptrdiff_t xs,
                          ptrdiff_t ks, int k0, int k1, ptrdiff_t t0, int L, double* y)
    void tgl_wino_gy_f32(int isa, const tgl_wino_geom* g, const float* gy, ptrdiff_t t0, int L,
                         int k0, int k1, float* G, ptrdiff_t xs, ptrdiff_t ks)
    void tgl_wino_gy_f64(int isa, const tgl_wino_geom* g, const double* gy, ptrdiff_t t0, int L,
                         int k0, int k1, double* G, ptrdiff_t xs, ptrdiff_t ks)

cdef enum:
    WINO_BW_LANES = 32     # tiles per backward-weight block (a multiple of every lane count;
                           # 32 measured 1.15x faster than 64: the block stays in L2)
    WINO_XI = 36           # the 6x6 transformed points


cdef str _wino_unfit(int kh, int kw, int sh, int sw, int dh, int dw, int groups,
                     size_t big):
    """None when Winograd F(4x4, 3x3) can compute this convolution, else the reason (for the
    error of a forced call). big: the largest of the three arrays, in values (int32 offsets)."""
    if kh != 3 or kw != 3:
        return f"needs a 3x3 kernel, got {kh}x{kw}"
    if sh != 1 or sw != 1:
        return f"needs stride 1, got {(sh, sw)}"
    if dh != 1 or dw != 1:
        return f"needs dilation 1, got {(dh, dw)}"
    if groups != 1:
        return f"needs groups=1, got {groups}"
    if big >= (<size_t>1 << 31):
        return f"indexes with int32 offsets, got an array of {big} values (>= 2**31)"
    return None


cdef tgl_wino_geom _wino_geom(int N, int C, int H, int W, int K, int OH, int OW, int ph,
                              int pw) noexcept nogil:
    cdef tgl_wino_geom g
    g.N = N; g.C = C; g.H = H; g.W = W; g.K = K; g.OH = OH; g.OW = OW; g.ph = ph; g.pw = pw
    g.TH = (OH + 3) // 4; g.TW = (OW + 3) // 4
    g.TS = g.TW if g.TW < 3 else (g.TW + 3) // 4 * 4   # rows of 1-2 tiles: the gather path
    return g


cdef void _wino_fwd_block(const tgl_wino_geom* wg, const floating* x, const floating* Upk,
                          int KOp, floating* y, ptrdiff_t t0, floating* V, floating* Mb,
                          const tgl_kernel_info* K) noexcept nogil:
    """Tiles [t0, t0 + L) of every output channel (see the top of the file)."""
    cdef int mr = K.mr, C = wg.C, L, kp, rows, xi
    cdef ptrdiff_t vs
    cdef tgl_ukr_f32 u32
    cdef tgl_ukr_f64 u64
    L = K.nr if floating is float else K.nr_f64
    vs = <ptrdiff_t>C * L
    if floating is float:
        tgl_wino_in_f32(K.isa, wg, x, t0, L, 0, C, V, vs, L)
    else:
        tgl_wino_in_f64(K.isa, wg, x, t0, L, 0, C, V, vs, L)
    kp = 0
    while kp < wg.K:
        rows = wg.K - kp if wg.K - kp < mr else mr
        if floating is float:
            u32 = K.ukr_f32
            if rows <= 4 and K.ukr4_f32 != NULL:
                u32 = K.ukr4_f32
            elif rows <= 8 and K.ukr8_f32 != NULL:
                u32 = K.ukr8_f32
            for xi in range(WINO_XI):
                u32(C, Upk + (<ptrdiff_t>xi * KOp + kp) * C, V + xi * vs, Mb + xi * mr * L, L, 0)
            tgl_wino_out_f32(K.isa, wg, Mb, <ptrdiff_t>mr * L, L, kp, kp + rows, t0, L, y)
        else:
            u64 = K.ukr_f64
            if rows <= 4 and K.ukr4_f64 != NULL:
                u64 = K.ukr4_f64
            elif rows <= 8 and K.ukr8_f64 != NULL:
                u64 = K.ukr8_f64
            for xi in range(WINO_XI):
                u64(C, Upk + (<ptrdiff_t>xi * KOp + kp) * C, V + xi * vs, Mb + xi * mr * L, L, 0)
            tgl_wino_out_f64(K.isa, wg, Mb, <ptrdiff_t>mr * L, L, kp, kp + rows, t0, L, y)
        kp += mr


cdef void _wino_filter(const floating* w, floating* Upk, int C, int KO, bint flip,
                       const tgl_kernel_info* K) noexcept nogil:
    """Upk = the transformed filters, packed in MR panels per xi (winograd.h). On one thread:
    vectorized over the filters it is about 1% of a layer-b pass, less than what a second
    parallel region (one more join) cost on the busy machine measured."""
    if floating is float:
        if flip:
            tgl_wino_filter_f32(K.isa, w, C, KO, 1, K.mr, Upk)
        else:
            tgl_wino_filter_f32(K.isa, w, KO, C, 0, K.mr, Upk)
    else:
        if flip:
            tgl_wino_filter_f64(K.isa, w, C, KO, 1, K.mr, Upk)
        else:
            tgl_wino_filter_f64(K.isa, w, KO, C, 0, K.mr, Upk)


cdef int _wino_conv(const floating* x, const floating* w, floating* y, int N, int C, int H,
                    int W, int KO, int OH, int OW, int ph, int pw, bint flip, int threads,
                    const tgl_kernel_info* K) except -1:
    """y (N, KO, OH, OW) = the 3x3 stride-1 convolution of x (N, C, H, W), padded by (ph, pw)
    (negative: cropped), with w (KO, C, 3, 3) -- or, with flip, with w (C, KO, 3, 3) rotated by
    180 degrees and transposed (the backward-input filter). y is overwritten. Callers check
    the geometry (_window_check, _wino_unfit) and that N, C, KO, OH, OW > 0."""
    cdef tgl_wino_geom wg = _wino_geom(N, C, H, W, KO, OH, OW, ph, pw)
    cdef int mr = K.mr, L = K.nr if floating is float else K.nr_f64
    cdef int KOp = _cdiv(KO, mr) * mr, xi, b, nthreads
    cdef size_t fs = sizeof(floating)
    cdef ptrdiff_t tiles = <ptrdiff_t>N * wg.TH * wg.TS
    cdef int nblk = _cdiv(tiles, L)
    cdef size_t vb = _round64(<size_t>WINO_XI * C * L * fs)
    cdef size_t per = vb + _round64(<size_t>WINO_XI * mr * L * fs)
    cdef size_t pkb = _round64(<size_t>WINO_XI * KOp * C * fs)
    cdef floating* Upk
    cdef char* buf
    cdef char* mine
    nthreads = threads if threads < nblk else nblk
    cdef _Workspace ws = _ws_acquire()   # reused: a fresh buffer per call costs page faults
    try:
        # [Upk: the transformed, packed filters | per thread: V, Mb]
        Upk = <floating*>ws.ensure(pkb + per * (nthreads if nthreads > 1 else 1))
        buf = <char*>Upk + pkb
        with nogil:
            _wino_filter(w, Upk, C, KO, flip, K)
            if nthreads <= 1:
                for b in range(nblk):
                    _wino_fwd_block(&wg, x, Upk, KOp, y, <ptrdiff_t>b * L, <floating*>buf,
                                    <floating*>(buf + vb), K)
            else:
                for b in prange(nblk, num_threads=nthreads, schedule="static"):
                    mine = buf + threadid() * per
                    _wino_fwd_block(&wg, x, Upk, KOp, y, <ptrdiff_t>b * L, <floating*>mine,
                                    <floating*>(mine + vb), K)
    finally:
        _ws_release(ws)
    return 0


cdef void _wino_bw_part(const tgl_wino_geom* wg, const floating* gy, const floating* x,
                        int b0, int b1, char* mine, size_t vb, size_t gb, size_t db,
                        bint trans, const tgl_kernel_info* K) noexcept nogil:
    """dU (36 x O x C, at mine + vb + gb) = the sum over the tile blocks [b0, b1) of
    Gy[xi] . Vx[xi]^T (see the top of the file); with trans, dU^T (36 x C x O)."""
    cdef int L = WINO_BW_LANES, C = wg.C, KO = wg.K, b, xi
    cdef floating* Vx = <floating*>mine
    cdef floating* Gt = <floating*>(mine + vb)
    cdef floating* dU = <floating*>(mine + vb + gb)
    cdef char* gws = mine + vb + gb + db
    cdef ptrdiff_t t0
    memset(dU, 0, <size_t>WINO_XI * KO * C * sizeof(floating))
    for b in range(b0, b1):
        t0 = <ptrdiff_t>b * L
        if floating is float:
            tgl_wino_in_f32(K.isa, wg, x, t0, L, 0, C, Vx, <ptrdiff_t>C * L, L)
            tgl_wino_gy_f32(K.isa, wg, gy, t0, L, 0, KO, Gt, <ptrdiff_t>KO * L, L)
        else:
            tgl_wino_in_f64(K.isa, wg, x, t0, L, 0, C, Vx, <ptrdiff_t>C * L, L)
            tgl_wino_gy_f64(K.isa, wg, gy, t0, L, 0, KO, Gt, <ptrdiff_t>KO * L, L)
        for xi in range(WINO_XI):
            if trans:
                _gemm_serial(C, KO, L, Vx + <ptrdiff_t>xi * C * L, L, 1,
                             Gt + <ptrdiff_t>xi * KO * L, 1, L,
                             dU + <ptrdiff_t>xi * KO * C, KO, 1, True, gws, K)
            else:
                _gemm_serial(KO, C, L, Gt + <ptrdiff_t>xi * KO * L, L, 1,
                             Vx + <ptrdiff_t>xi * C * L, 1, L,
                             dU + <ptrdiff_t>xi * KO * C, C, 1, True, gws, K)


cdef int _wino_bwd_weight(const floating* gy, const floating* x, floating* gw, int N, int C,
                          int H, int W, int KO, int OH, int OW, int ph, int pw, int threads,
                          const tgl_kernel_info* K) except -1:
    """gw (KO, C, 3, 3) = the weight gradient of the 3x3 stride-1 convolution of x (N, C, H, W)
    padded by (ph, pw), given gy (N, KO, OH, OW); gw is overwritten. Callers check as for
    _wino_conv."""
    cdef tgl_wino_geom wg = _wino_geom(N, C, H, W, KO, OH, OW, ph, pw)
    cdef size_t fs = sizeof(floating)
    cdef size_t vb = _round64(<size_t>WINO_XI * C * WINO_BW_LANES * fs)
    cdef size_t gb = _round64(<size_t>WINO_XI * KO * WINO_BW_LANES * fs)
    cdef size_t db = _round64(<size_t>WINO_XI * KO * C * fs)
    cdef size_t per = vb + gb + db + _thread_ws_bytes(fs)
    cdef ptrdiff_t tiles = <ptrdiff_t>N * wg.TH * wg.TS, i, n = <ptrdiff_t>WINO_XI * KO * C
    cdef int nblk = _cdiv(tiles, WINO_BW_LANES), t
    cdef int nthreads = threads if threads < nblk else nblk
    cdef int nr = K.nr if floating is float else K.nr_f64
    cdef bint trans = (<size_t>_cdiv(C, K.mr) * K.mr * _cdiv(KO, nr) * nr
                       < <size_t>_cdiv(KO, K.mr) * K.mr * _cdiv(C, nr) * nr)
    cdef _Workspace ws = _ws_acquire()
    cdef char* buf
    cdef floating* acc
    cdef floating* part
    if nthreads < 1:
        nthreads = 1
    try:
        buf = ws.ensure(per * nthreads)
        with nogil:
            if nthreads == 1:
                _wino_bw_part(&wg, gy, x, 0, nblk, buf, vb, gb, db, trans, K)
            else:
                for t in prange(nthreads, num_threads=nthreads, schedule="static"):
                    _wino_bw_part(&wg, gy, x, nblk * t // nthreads, nblk * (t + 1) // nthreads,
                                  buf + t * per, vb, gb, db, trans, K)
            acc = <floating*>(buf + vb + gb)
            for t in range(1, nthreads):
                part = <floating*>(buf + t * per + vb + gb)
                for i in range(n):
                    acc[i] += part[i]
            if floating is float:
                tgl_wino_filter_grad_f32(acc, KO, C, trans, gw)
            else:
                tgl_wino_filter_grad_f64(acc, KO, C, trans, gw)
    finally:
        _ws_release(ws)
    return 0
