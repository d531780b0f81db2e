"""Launch configurations of the CUDA kernels (kernels/cuda/*.cu), in plain Python.

Grid and block sizes, tile counts, shared-memory bytes and the edge-tile rules live here, apart
from CuPy, so they are unit-tested on every CI run without a GPU (tests/cuda/test_launch.py)
against the preconditions each ``.cu`` file documents. ``cupy_backend`` only turns a ``Launch``
into a ``RawKernel`` call. Importing this module imports nothing but the standard library.

Rules shared by every kernel:
- every size is >= 1 (the backend answers empty problems without a launch) and every tensor
  has fewer than 2**31 elements (the kernels index with int32);
- grid.y and grid.z are at most 65535; grid-stride kernels cap grid.x at ``GRID_STRIDE_BLOCKS``.
"""

from dataclasses import dataclass

INT32_MAX = 2 ** 31 - 1
GRID_YZ_MAX = 65535
GRID_STRIDE_BLOCKS = 132 * 32      # enough blocks to fill an H100/H200 (132 SMs) many times
THREADS = 256                      # every kernel's __launch_bounds__ thread count

# name -> (block tile M, block tile N, reduction tile, threads, static shared bytes per dtype size)
# The shared bytes are checked against what ptxas reports in tests/cuda/test_compile.py.
GEMM_KERNELS = {
    "sgemm_128x128": dict(bm=128, bn=128, bk=8, threads=256,
                          smem=lambda isz: 2 * 2 * 8 * 128 * isz),
    "gemm_tiled16_f32": dict(bm=16, bn=16, bk=16, threads=256, smem=lambda isz: 2 * 16 * 17 * isz),
    "gemm_tiled16_f64": dict(bm=16, bn=16, bk=16, threads=256, smem=lambda isz: 2 * 16 * 17 * isz),
}
CONV_TILE = dict(bm=64, bn=64, bk=16, threads=256, smem=lambda isz: 2 * 16 * 65 * isz)


@dataclass(frozen=True)
class Launch:
    """One kernel launch: ``kernel`` name, ``grid`` and ``block`` triples, the static shared
    bytes it uses, and the scalar arguments that follow the array pointers (in order)."""

    kernel: str
    grid: tuple
    block: tuple
    shared_bytes: int
    scalars: tuple = ()
    types: str = ""       # one letter per scalar: "i" int32, "q" int64 (after the array pointers)
    arrays: int = 0       # how many array pointers come first

    @property
    def blocks(self):
        return self.grid[0] * self.grid[1] * self.grid[2]


def cdiv(a, b):
    return -(-a // b)


def _sfx(itemsize, op):
    if itemsize == 4:
        return "f32"
    if itemsize == 8:
        return "f64"
    raise ValueError(f"{op}: the CUDA kernels take float32 or float64 (itemsize 4 or 8), got "
                     f"itemsize {itemsize}; cast with .astype(np.float32)")


def _positive(op, **sizes):
    for name, v in sizes.items():
        if int(v) < 1:
            raise ValueError(f"{op}: {name} must be >= 1 for a kernel launch, got {v}")


def _int32(op, **counts):
    for name, v in counts.items():
        if int(v) > INT32_MAX:
            raise ValueError(f"{op}: {name} has {v} elements, more than the CUDA kernels' int32 "
                             f"indexing allows ({INT32_MAX}); split the batch")


def _grid_yz(op, grid):
    if grid[1] > GRID_YZ_MAX or grid[2] > GRID_YZ_MAX:
        raise ValueError(f"{op}: grid {grid} exceeds the CUDA limit of {GRID_YZ_MAX} in y/z; "
                         "split the batch")


# ---- GEMM ---------------------------------------------------------------------------------------


def gemm(M, N, K, itemsize, trans_a=False, trans_b=False, lda=None, ldb=None, ldc=None, batch=1,
         a_mod=1, a_stride=0, b_mod=1, b_stride=0, c_stride=0, aligned=True, kernel=None,
         accumulate=False):
    """The launch of C[z] = op(A[z % a_mod]) @ op(B[z % b_mod]) (+= with ``accumulate``) for
    z < batch, row-major operands with leading dimensions lda/ldb/ldc (default: packed).

    float32 runs ``sgemm_128x128`` (``kernel="tiled16"`` picks the baseline); float64 the tiled16
    kernel. ``aligned``: the caller's A and B pointers are 16-byte aligned; float4 loads
    (``vec``) are used only then and when lda, ldb and the batch strides are multiples of 4.
    """
    op = "gemm"
    _positive(op, M=M, N=N, K=K, batch=batch, a_mod=a_mod, b_mod=b_mod)
    sfx = _sfx(itemsize, op)
    lda = (M if trans_a else K) if lda is None else lda
    ldb = (K if trans_b else N) if ldb is None else ldb
    ldc = N if ldc is None else ldc
    if lda < (M if trans_a else K) or ldb < (K if trans_b else N) or ldc < N:
        raise ValueError(f"{op}: leading dimensions too small for M={M}, N={N}, K={K} "
                         f"(trans_a={trans_a}, trans_b={trans_b}), got lda={lda}, ldb={ldb}, "
                         f"ldc={ldc}")
    a_rows, b_rows = (K, M) if trans_a else (M, K), (N, K) if trans_b else (K, N)
    _int32(op, A=a_mod * a_stride + a_rows[0] * lda, B=b_mod * b_stride + b_rows[0] * ldb,
           C=(batch - 1) * c_stride + M * ldc)
    if kernel is None:
        kernel = "sgemm_128x128" if sfx == "f32" else "tiled16"
    if kernel == "tiled16":
        kernel = f"gemm_tiled16_{sfx}"
    if kernel not in GEMM_KERNELS or (kernel == "sgemm_128x128" and sfx != "f32"):
        raise ValueError(f"{op}: no kernel {kernel!r} for itemsize {itemsize}; known: "
                         f"{sorted(GEMM_KERNELS)}")
    cfg = GEMM_KERNELS[kernel]
    grid = (cdiv(N, cfg["bn"]), cdiv(M, cfg["bm"]), batch)
    _grid_yz(op, grid)
    block = (256, 1, 1) if kernel == "sgemm_128x128" else (16, 16, 1)
    scalars = (M, N, K, lda, ldb, ldc, int(trans_a), int(trans_b), int(accumulate),
               a_mod, a_stride, b_mod, b_stride, c_stride)
    types = "iiiiiiiiiiqiqq"
    if kernel == "sgemm_128x128":
        # float4 loads need every row start 16-byte aligned: aligned bases, and leading
        # dimensions and batch strides that are multiples of 4 floats
        vec = (bool(aligned) and lda % 4 == 0 and ldb % 4 == 0 and a_stride % 4 == 0
               and b_stride % 4 == 0)
        scalars += (int(vec),)
        types += "i"
    return Launch(kernel, grid, block, cfg["smem"](itemsize), scalars, types, 3)


# ---- conv2d -------------------------------------------------------------------------------------


def conv_geometry(x_shape, w_shape, stride, padding, dilation, groups):
    """The 16 ints every conv2d kernel takes (N, C, H, W, O, G, kh, kw, sh, sw, ph, pw, dh, dw,
    OH, OW), after checking the preconditions of kernels/cuda/conv2d.cu."""
    op = "conv2d"
    n, c, h, w = (int(v) for v in x_shape)
    o, cg, kh, kw = (int(v) for v in w_shape)
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    _positive(op, N=n, C=c, H=h, W=w, O=o, kh=kh, kw=kw, sh=sh, sw=sw, dh=dh, dw=dw,
              groups=groups)
    if ph < 0 or pw < 0:
        raise ValueError(f"{op}: padding must be >= 0, got {(ph, pw)}")
    if c % groups or o % groups or cg * groups != c:
        raise ValueError(f"{op}: channels must split into groups: C={c}, O={o}, groups={groups}, "
                         f"weight in-channels {cg} (expected C/groups)")
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    if oh < 1 or ow < 1:
        raise ValueError(f"{op}: output would be empty ({oh} x {ow}) for input {h} x {w}, kernel "
                         f"{kh} x {kw}, padding {(ph, pw)}, dilation {(dh, dw)}; pad the input")
    _int32(op, x=n * c * h * w, y=n * o * oh * ow, cols=n * c * kh * kw * oh * ow,
           weight=o * cg * kh * kw)
    return (n, c, h, w, o, groups, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)


def _conv_gemm(kernel, m, n, g):
    grid = (cdiv(n, CONV_TILE["bn"]), cdiv(m, CONV_TILE["bm"]), g)
    _grid_yz(kernel, grid)
    return grid


def conv_forward(geom, itemsize):
    """Implicit-GEMM forward: M = O/G, N = N_img*OH*OW, one grid z per group."""
    n, c, _, _, o, g, kh, kw, *_, oh, ow = geom
    name = f"conv2d_fwd_{_sfx(itemsize, 'conv2d')}"
    return Launch(name, _conv_gemm(name, o // g, n * oh * ow, g), (THREADS, 1, 1),
                  CONV_TILE["smem"](itemsize), tuple(geom), "i" * 16, 3)


def conv_dcols(geom, itemsize):
    """Input-gradient columns: M = (C/G)*kh*kw, N = N_img*OH*OW; col2im follows."""
    n, c, _, _, o, g, kh, kw, *_, oh, ow = geom
    name = f"conv2d_dcols_{_sfx(itemsize, 'conv2d_backward_input')}"
    return Launch(name, _conv_gemm(name, (c // g) * kh * kw, n * oh * ow, g), (THREADS, 1, 1),
                  CONV_TILE["smem"](itemsize), tuple(geom), "i" * 16, 3)


def wgrad_splits(reduction, tiles, target_blocks=2 * GRID_STRIDE_BLOCKS // 32):
    """Split-K for the weight gradient: (splits, chunk) so that ``tiles * splits`` blocks fill
    the GPU, chunk is a multiple of the 16-wide reduction tile, and no split is empty
    (``(splits - 1) * chunk < reduction <= splits * chunk``)."""
    _positive("conv2d_backward_weight", reduction=reduction, tiles=tiles)
    want = max(1, min(cdiv(target_blocks, tiles), cdiv(reduction, 256)))
    chunk = cdiv(cdiv(reduction, want), 16) * 16
    return cdiv(reduction, chunk), chunk


def conv_wgrad(geom, itemsize):
    """Weight gradient: M = O/G, N = (C/G)*kh*kw, reduction N_img*OH*OW split S ways; grid z is
    G*S; the kernel writes S partial (O, (C/G)*kh*kw) sums that the host adds up."""
    n, c, _, _, o, g, kh, kw, *_, oh, ow = geom
    m, nn = o // g, (c // g) * kh * kw
    name = f"conv2d_wgrad_{_sfx(itemsize, 'conv2d_backward_weight')}"
    tiles = cdiv(nn, CONV_TILE["bn"]) * cdiv(m, CONV_TILE["bm"]) * g
    splits, chunk = wgrad_splits(n * oh * ow, tiles)
    while g * splits > GRID_YZ_MAX:   # only for absurd group counts: fewer, longer splits
        chunk *= 2
        splits = cdiv(n * oh * ow, chunk)
    _int32(name, partials=splits * o * nn)
    grid = (cdiv(nn, CONV_TILE["bn"]), cdiv(m, CONV_TILE["bm"]), g * splits)
    _grid_yz(name, grid)
    return Launch(name, grid, (THREADS, 1, 1), CONV_TILE["smem"](itemsize),
                  tuple(geom) + (splits, chunk), "i" * 18, 3)


def elementwise(kernel, total):
    """A grid-stride kernel over ``total`` elements: 256 threads, at most GRID_STRIDE_BLOCKS."""
    _positive(kernel, total=total)
    _int32(kernel, total=total)
    return (min(cdiv(total, THREADS), GRID_STRIDE_BLOCKS), 1, 1), (THREADS, 1, 1)


def im2col(geom, itemsize):
    n, c, _, _, _, _, kh, kw, *_, oh, ow = geom
    name = f"im2col_{_sfx(itemsize, 'im2col')}"
    grid, block = elementwise(name, n * c * kh * kw * oh * ow)
    return Launch(name, grid, block, 0, tuple(geom), "i" * 16, 2)


def col2im(geom, itemsize):
    n, c, h, w = geom[:4]
    name = f"col2im_{_sfx(itemsize, 'col2im')}"
    grid, block = elementwise(name, n * c * h * w)
    return Launch(name, grid, block, 0, tuple(geom), "i" * 16, 2)


# ---- pooling ------------------------------------------------------------------------------------


def pool_geometry(x_shape, kernel, stride, padding):
    """The 12 ints the pooling kernels take (N, C, H, W, kh, kw, sh, sw, ph, pw, OH, OW)."""
    op = "pool2d"
    n, c, h, w = (int(v) for v in x_shape)
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    _positive(op, N=n, C=c, H=h, W=w, kh=kh, kw=kw, sh=sh, sw=sw)
    if not (0 <= ph <= kh // 2 and 0 <= pw <= kw // 2):
        raise ValueError(f"{op}: padding must be between 0 and half the kernel, got padding "
                         f"{(ph, pw)} for kernel {(kh, kw)}")
    oh = (h + 2 * ph - kh) // sh + 1
    ow = (w + 2 * pw - kw) // sw + 1
    if oh < 1 or ow < 1:
        raise ValueError(f"{op}: output would be empty ({oh} x {ow}) for input {h} x {w}, kernel "
                         f"{(kh, kw)}, padding {(ph, pw)}")
    _int32(op, x=n * c * h * w, y=n * c * oh * ow)
    return (n, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow)


def pool(kind, geom, itemsize):
    """``kind`` one of max_pool2d_fwd, max_pool2d_bwd, avg_pool2d_fwd, avg_pool2d_bwd: forward
    kernels run one thread per output element, backward (gather) ones one per input element."""
    n, c, h, w, *_, oh, ow = geom
    if kind not in ("max_pool2d_fwd", "max_pool2d_bwd", "avg_pool2d_fwd", "avg_pool2d_bwd"):
        raise ValueError(f"pool: unknown kernel kind {kind!r}")
    name = f"{kind}_{_sfx(itemsize, kind)}"
    total = n * c * (oh * ow if kind.endswith("fwd") else h * w)
    grid, block = elementwise(name, total)
    arrays = 3 if kind in ("max_pool2d_fwd", "max_pool2d_bwd") else 2
    return Launch(name, grid, block, 0, tuple(geom), "i" * 12, arrays)
