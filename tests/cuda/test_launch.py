"""Host-side launch configuration of the CUDA kernels (backends/cuda_launch.py), without a GPU.

Checked against the preconditions written at the top of kernels/cuda/*.cu: the grid covers
every output exactly (no missing edge tile, no fully idle tile row/column), tile counts,
shared-memory bytes, the float4 rule, split-K leaving no empty split, int32 and grid limits, and
the output sizes against the NumPy reference backend.
"""

import numpy as np
import pytest
from hypothesis import given, strategies as st

from tinygrad_lite.backends import cuda_launch as cl
from tinygrad_lite.backends.numpy_backend import NumpyBackend

ODD = [1, 2, 3, 5, 7, 13, 31, 127, 128, 129, 257, 1000]
sizes = st.one_of(st.sampled_from(ODD), st.integers(1, 5000))


def _covers(count, tile, extent):
    """``count`` tiles of ``tile`` cover [0, extent) and the last one starts inside it."""
    return count * tile >= extent and (count - 1) * tile < extent


@given(M=sizes, N=sizes, K=sizes, ta=st.booleans(), tb=st.booleans(),
       isz=st.sampled_from([4, 8]), tiled=st.booleans())
def test_gemm_grid_covers_every_output_once(M, N, K, ta, tb, isz, tiled):
    ln = cl.gemm(M, N, K, isz, trans_a=ta, trans_b=tb, kernel="tiled16" if tiled else None)
    cfg = cl.GEMM_KERNELS[ln.kernel]
    assert ln.kernel == ("sgemm_128x128" if isz == 4 and not tiled else
                         f"gemm_tiled16_{'f32' if isz == 4 else 'f64'}")
    assert _covers(ln.grid[0], cfg["bn"], N) and _covers(ln.grid[1], cfg["bm"], M)
    assert ln.grid[2] == 1
    assert ln.block[0] * ln.block[1] * ln.block[2] == cfg["threads"] == 256
    lda, ldb = (M if ta else K), (K if tb else N)
    assert ln.scalars[:9] == (M, N, K, lda, ldb, N, int(ta), int(tb), 0)
    if ln.kernel == "sgemm_128x128":
        assert ln.shared_bytes == 2 * 2 * 8 * 128 * 4 <= 48 * 1024   # static shared limit
        assert ln.scalars[-1] == int(lda % 4 == 0 and ldb % 4 == 0)
    else:
        assert ln.shared_bytes == 2 * 16 * 17 * isz


def test_sgemm_128_thread_tiles_cover_the_block_tile_once():
    """The 16 x 16 threads x 8 x 8 outputs of sgemm_128x128 (rows ty*4 + {0..3, 64..67}, same for
    columns) tile 128 x 128 exactly once, and each loader thread fetches 4 distinct elements of
    the 128 x 8 / 8 x 128 tiles in either layout (the mapping written in sgemm.cu)."""
    hits = np.zeros((128, 128), int)
    for t in range(256):
        ty, tx = divmod(t, 16)
        for i in range(8):
            for j in range(8):
                hits[ty * 4 + (i & 3) + (i >> 2) * 64, tx * 4 + (j & 3) + (j >> 2) * 64] += 1
    assert (hits == 1).all()
    for trans in (False, True):
        a = np.zeros((8, 128), int)   # [k][m]
        for t in range(256):
            for v in range(4):
                k, m = ((t // 32, (t % 32) * 4 + v) if trans else ((t % 2) * 4 + v, t // 2))
                a[k, m] += 1
        assert (a == 1).all()


def test_gemm_vector_loads_need_aligned_pointers_and_leading_dims():
    assert cl.gemm(64, 64, 64, 4).scalars[-1] == 1
    assert cl.gemm(64, 64, 64, 4, aligned=False).scalars[-1] == 0
    assert cl.gemm(64, 63, 64, 4).scalars[-1] == 0                  # ldb = 63
    assert cl.gemm(64, 64, 64, 4, lda=68, ldb=132).scalars[-1] == 1
    assert cl.gemm(64, 64, 5, 4, trans_a=True, trans_b=True).scalars[-1] == 0   # ldb = K = 5
    # batched: the z-th matrix starts z * stride floats in; odd strides break 16-byte alignment
    assert cl.gemm(3, 4, 4, 4, batch=2, a_mod=2, a_stride=12, b_mod=2, b_stride=16,
                   c_stride=12).scalars[-1] == 1
    assert cl.gemm(3, 4, 4, 4, batch=2, a_mod=2, a_stride=13, b_mod=2, b_stride=16,
                   c_stride=12).scalars[-1] == 0


def test_gemm_batch_and_broadcast_offsets():
    ln = cl.gemm(3, 5, 7, 4, batch=6, a_mod=2, a_stride=21, b_mod=6, b_stride=35, c_stride=15)
    assert ln.grid == (1, 1, 6)
    assert ln.scalars[9:14] == (2, 21, 6, 35, 15)


@pytest.mark.parametrize("kwargs, match", [
    (dict(M=0, N=1, K=1, itemsize=4), "M must be >= 1"),
    (dict(M=1, N=1, K=1, itemsize=2), "float32 or float64"),
    (dict(M=4, N=4, K=4, itemsize=4, lda=3), "leading dimensions too small"),
    (dict(M=4, N=4, K=4, itemsize=8, kernel="sgemm_128x128"), "no kernel"),
    (dict(M=2 ** 16, N=2 ** 16, K=1, itemsize=4), "int32"),
    (dict(M=1, N=1, K=1, itemsize=4, batch=70000), "65535"),
])
def test_gemm_refuses_what_the_kernels_cannot_do(kwargs, match):
    with pytest.raises(ValueError, match=match):
        cl.gemm(**kwargs)


conv_cases = st.tuples(
    st.integers(1, 3), st.integers(1, 4), st.integers(1, 12), st.integers(1, 12),   # N, Cg, H, W
    st.integers(1, 4), st.integers(1, 3),                                            # Og, G
    st.integers(1, 4), st.integers(1, 4), st.integers(1, 3), st.integers(1, 3),      # kh, kw, sh, sw
    st.integers(0, 2), st.integers(0, 2), st.integers(1, 2), st.integers(1, 2))     # ph, pw, dh, dw


@given(conv_cases)
def test_conv_geometry_and_grids_match_the_numpy_reference(case):
    n, cg, h, w, og, g, kh, kw, sh, sw, ph, pw, dh, dw = case
    x_shape, w_shape = (n, cg * g, h, w), (og * g, cg, kh, kw)
    args = ((sh, sw), (ph, pw), (dh, dw), g)
    if (h + 2 * ph - dh * (kh - 1) - 1) < 0 or (w + 2 * pw - dw * (kw - 1) - 1) < 0:
        with pytest.raises(ValueError, match="output would be empty"):
            cl.conv_geometry(x_shape, w_shape, *args)
        return
    geom = cl.conv_geometry(x_shape, w_shape, *args)
    y = NumpyBackend().conv2d(np.zeros(x_shape, np.float32), np.zeros(w_shape, np.float32), *args)
    oh, ow = geom[-2:]
    assert y.shape == (n, og * g, oh, ow)
    L, kd = oh * ow, cg * kh * kw
    for isz in (4, 8):
        f, d, wg = cl.conv_forward(geom, isz), cl.conv_dcols(geom, isz), cl.conv_wgrad(geom, isz)
        assert _covers(f.grid[0], 64, n * L) and _covers(f.grid[1], 64, og) and f.grid[2] == g
        assert _covers(d.grid[0], 64, n * L) and _covers(d.grid[1], 64, kd) and d.grid[2] == g
        splits, chunk = wg.scalars[-2:]
        assert _covers(wg.grid[0], 64, kd) and _covers(wg.grid[1], 64, og)
        assert wg.grid[2] == g * splits
        assert chunk % 16 == 0 and _covers(splits, chunk, n * L)      # no empty split
        assert f.shared_bytes == d.shared_bytes == 2 * 16 * 65 * isz
        cols = cl.im2col(geom, isz)
        assert cols.grid[0] * 256 >= n * cg * g * kh * kw * L or \
            cols.grid[0] == cl.GRID_STRIDE_BLOCKS


@given(reduction=st.integers(1, 10 ** 7), tiles=st.integers(1, 5000))
def test_wgrad_split_k_rules(reduction, tiles):
    splits, chunk = cl.wgrad_splits(reduction, tiles)
    assert chunk % 16 == 0 and chunk >= 16
    assert (splits - 1) * chunk < reduction <= splits * chunk
    assert splits == 1 or tiles * (splits - 1) < 264       # never more splits than needed
    assert splits <= max(1, -(-reduction // 256))           # each split has >= ~256 terms


@given(total=st.integers(1, 2 ** 31 - 1))
def test_grid_stride_launch_reaches_every_element(total):
    grid, block = cl.elementwise("k", total)
    assert block == (256, 1, 1) and 1 <= grid[0] <= cl.GRID_STRIDE_BLOCKS
    stride = grid[0] * 256
    assert stride >= total or grid[0] == cl.GRID_STRIDE_BLOCKS   # the loop does the rest
    assert grid[0] == 1 or (grid[0] - 1) * 256 < total          # no block starts past the end


pool_cases = st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 11), st.integers(1, 11),
                       st.integers(1, 4), st.integers(1, 4), st.integers(1, 3), st.integers(1, 3),
                       st.integers(0, 2), st.integers(0, 2))


@given(pool_cases)
def test_pool_geometry_matches_the_numpy_reference(case):
    n, c, h, w, kh, kw, sh, sw, ph, pw = case
    args = ((kh, kw), (sh, sw), (ph, pw))
    if ph > kh // 2 or pw > kw // 2:
        with pytest.raises(ValueError, match="half the kernel"):
            cl.pool_geometry((n, c, h, w), *args)
        return
    if h + 2 * ph < kh or w + 2 * pw < kw:
        with pytest.raises(ValueError, match="output would be empty"):
            cl.pool_geometry((n, c, h, w), *args)
        return
    geom = cl.pool_geometry((n, c, h, w), *args)
    y, idx = NumpyBackend().max_pool2d(np.zeros((n, c, h, w)), *args)
    assert y.shape == (n, c) + tuple(geom[-2:])
    for kind in ("max_pool2d_fwd", "avg_pool2d_fwd"):
        assert cl.pool(kind, geom, 4).grid[0] == -(-y.size // 256)
    for kind in ("max_pool2d_bwd", "avg_pool2d_bwd"):
        assert cl.pool(kind, geom, 8).grid[0] == -(-(n * c * h * w) // 256)


def test_conv_errors_name_the_problem():
    with pytest.raises(ValueError, match="groups"):
        cl.conv_geometry((1, 4, 5, 5), (6, 3, 3, 3), (1, 1), (0, 0), (1, 1), 2)
    with pytest.raises(ValueError, match="padding must be >= 0"):
        cl.conv_geometry((1, 4, 5, 5), (6, 4, 3, 3), (1, 1), (-1, 0), (1, 1), 1)
    with pytest.raises(ValueError, match="int32"):
        cl.conv_geometry((4096, 64, 128, 128), (64, 64, 3, 3), (1, 1), (1, 1), (1, 1), 1)
    with pytest.raises(ValueError, match="unknown kernel kind"):
        cl.pool("sum_pool", cl.pool_geometry((1, 1, 4, 4), (2, 2), (2, 2), (0, 0)), 4)


def test_importing_the_launch_code_imports_no_array_library():
    import subprocess
    import sys

    code = ("import sys; import tinygrad_lite.backends.cuda_launch; "
            "print('cupy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
