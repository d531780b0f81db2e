"""The CUDA kernels run on the CPU: kernels/cuda/*.cu compiled unchanged by g++ against a small
emulation of CUDA (tests/cuda/emu/cuda_emu.h: one std::thread per CUDA thread, a std::barrier
for __syncthreads), driven by the real ``cupy`` backend code with NumPy arrays in place of CuPy
ones, and checked against the NumPy float64 reference on odd sizes with NaN-poisoned outputs.

This checks, without a GPU, everything but the hardware: the kernels' index arithmetic, edge
guards, tile loaders (both layouts, float4 and scalar paths), double buffering and barriers,
split-K, the launch configurations and the backend's host code. Speed, and behaviour specific to
the GPU memory model, are for tests/gpu (run by benchmarks/gpu_check.sh on a GPU machine).
Skips, saying so, without g++.
"""

import ctypes
import os
import shutil
import subprocess
import tempfile

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinygrad_lite import cuda
from tinygrad_lite.backends import cuda_launch
from tinygrad_lite.backends.cupy_backend import CupyBackend
from tinygrad_lite.backends.numpy_backend import NumpyBackend

HERE = os.path.dirname(os.path.abspath(__file__))
CXX = shutil.which("g++")
pytestmark = [
    pytest.mark.skipif(CXX is None, reason="g++ not found: the CPU emulation of the CUDA kernels "
                                           "needs a C++20 compiler"),
    # CI's second pass hides the Cython kernels to test the NumPy fallback; the emulated CUDA
    # kernels do not depend on them and give the same result, so they run in the first pass only.
    pytest.mark.skipif(os.environ.get("TINYGRAD_LITE_DISABLE_KERNELS") == "1",
                       reason="CUDA emulation runs once, in the pass with the CPU kernels on (it "
                              "does not depend on them)"),
]
REF = NumpyBackend()


class EmuModules:
    """Stands in for cupy_backend._Modules: same ``launch(ln, *arrays)``, run on the CPU."""

    def __init__(self, lib):
        self.lib = lib
        self.launched = []
        self.errors = []      # sanitizer reports, one per launch that had any

    def launch(self, ln, *arrays):
        assert len(arrays) == ln.arrays and len(ln.types) == len(ln.scalars)
        keep, ptrs = [], (ctypes.c_void_p * (ln.arrays + len(ln.scalars)))()
        for i, a in enumerate(arrays):
            assert isinstance(a, np.ndarray) and a.flags.c_contiguous, ln.kernel
            keep.append(ctypes.c_void_p(a.ctypes.data))
        for v, t in zip(ln.scalars, ln.types):
            keep.append((ctypes.c_int32 if t == "i" else ctypes.c_int64)(v))
        for i, h in enumerate(keep):
            ptrs[i] = ctypes.cast(ctypes.pointer(h), ctypes.c_void_p)
        # UBSan (see the emu fixture) reports on the process's stderr: catch what this launch
        # writes there
        with tempfile.TemporaryFile() as err:
            saved = os.dup(2)
            os.dup2(err.fileno(), 2)
            try:
                getattr(self.lib, "emu_" + ln.kernel)(*ln.grid, *ln.block, ptrs)
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            err.seek(0)
            text = err.read().decode(errors="replace")
        if "runtime error" in text:
            self.errors.append(f"{ln.kernel}: {text}")
        self.launched.append(ln.kernel)


class Poisoned:
    """NumPy whose ``empty`` is NaN-filled (ints: -7): unwritten outputs cannot pass."""

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def empty(shape, dtype=float):
        out = np.empty(shape, dtype)
        out.fill(np.nan if np.dtype(dtype).kind == "f" else -7)
        return out


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    """The cupy backend's host code over the emulated kernels (built once per session)."""
    tmp = tmp_path_factory.mktemp("emu")
    so = str(tmp / "kernels_emu.so")
    # UBSan's alignment check: a float4 load from an address that is not 16-byte aligned (which
    # x86 forgives and a GPU faults on) is reported; EmuModules collects the reports
    cmd = [CXX, "-std=c++20", "-O1", "-fPIC", "-shared", "-pthread", "-Wall",
           "-Wno-unknown-pragmas", "-Werror", "-fsanitize=alignment",
           "-fsanitize-recover=alignment", "-I", os.path.join(HERE, "emu"),
           "-I", cuda.kernel_dir(), os.path.join(HERE, "emu", "kernels.cpp"), "-o", so]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if out.returncode != 0 and "ubsan" in out.stderr.lower():   # no UBSan runtime: no check
        cmd.remove("-fsanitize=alignment")
        cmd.remove("-fsanitize-recover=alignment")
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    b = object.__new__(CupyBackend)      # no CuPy: NumPy arrays, emulated launches
    b.xp, b.mods = Poisoned(), EmuModules(ctypes.CDLL(so))
    b.ubsan = "-fsanitize=alignment" in cmd
    return b


def _close(got, want, dtype, what):
    assert isinstance(got, np.ndarray) and got.shape == want.shape, (what, got.shape, want.shape)
    assert not np.isnan(got).any(), f"{what}: output elements never written (NaN poison left)"
    scale = max(float(np.abs(want).max()), 1e-30)
    err = float(np.abs(got.astype(np.float64) - want).max()) / scale
    assert err <= (2e-6 if dtype == np.float32 else 1e-13), f"{what}: rel error {err:.3g}"


def _r(shape, dtype, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (7, 13, 5), (129, 130, 67), (64, 68, 36)])
def test_sgemm_128x128_every_transpose(emu, m, n, k):
    for ta in (False, True):
        for tb in (False, True):
            a = _r((k, m) if ta else (m, k), np.float32, 1)
            b = _r((n, k) if tb else (k, n), np.float32, 2)
            want = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
            emu.mods.launched.clear()
            _close(emu.matmul(a, b, ta, tb), want, np.float32, f"sgemm {m},{n},{k} {ta} {tb}")
            assert emu.mods.launched == ["sgemm_128x128"]
            c = _r((m, n), np.float32, 3)
            base = c.astype(np.float64)
            emu.matmul(a, b, ta, tb, out=c, accumulate=True)
            _close(c, base + want, np.float32, "sgemm accumulate")


def test_sgemm_float4_and_scalar_loads_agree(emu):
    """lda, ldb multiples of 4 take the float4 path, else scalar; both exact to rounding."""
    a, b = _r((64, 36), np.float32, 4), _r((36, 68), np.float32, 5)
    assert cuda_launch.gemm(64, 68, 36, 4).scalars[-1] == 1
    want = a.astype(np.float64) @ b
    _close(emu.matmul(a, b), want, np.float32, "vec")
    emu.mods.launched.clear()
    va = np.empty((64, 37), np.float32)[:, 1:]     # a misaligned, strided view: copied
    va[...] = a
    _close(emu.matmul(va, b), want, np.float32, "view")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tiled16_and_float64_gemm(emu, dtype):
    for ta in (False, True):
        for tb in (False, True):
            a = _r((29, 37) if ta else (37, 29), dtype, 6)
            b = _r((41, 29) if tb else (29, 41), dtype, 7)
            want = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b)
            ln = cuda_launch.gemm(37, 41, 29, a.itemsize, ta, tb, kernel="tiled16")
            c = Poisoned.empty((37, 41), dtype)
            emu.mods.launch(ln, a, b, c)
            _close(c, want, dtype, f"{ln.kernel} {ta} {tb}")
    if dtype == np.float64:        # the backend's float64 matmul is this kernel
        emu.mods.launched.clear()
        _close(emu.matmul(a, b, ta, tb), want, dtype, "f64 matmul")
        assert emu.mods.launched == ["gemm_tiled16_f64"]


def test_batched_matmul_with_broadcast(emu):
    a, b = _r((2, 1, 5, 7), np.float32, 8), _r((3, 7, 4), np.float32, 9)
    _close(emu.batched_matmul(a, b), np.matmul(a.astype(np.float64), b), np.float32, "bmm")
    a2 = _r((9, 3), np.float32, 10)
    b2 = _r((4, 3, 130), np.float32, 11)
    _close(emu.batched_matmul(a2, b2), np.matmul(a2.astype(np.float64), b2), np.float32,
           "bmm broadcast a")


CONV = [((1, 1, 1, 1), (1, 1, 1, 1), (1, 1), (0, 0), (1, 1), 1),
        ((2, 3, 7, 5), (5, 3, 3, 3), (1, 1), (1, 1), (1, 1), 1),
        ((3, 4, 11, 13), (6, 2, 3, 2), (2, 1), (1, 0), (1, 2), 2),
        ((2, 6, 9, 9), (6, 1, 3, 3), (2, 2), (1, 1), (2, 2), 6),
        ((2, 3, 9, 8), (67, 3, 5, 5), (1, 1), (2, 2), (1, 1), 1)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CONV, ids=[str(c[0]) + str(c[1]) for c in CONV])
def test_conv2d_forward_and_both_backward_passes(emu, case, dtype):
    x_shape, w_shape, *geo = case
    x, w = _r(x_shape, dtype, 12), _r(w_shape, dtype, 13)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    y = REF.conv2d(x64, w64, *geo)
    gy = _r(y.shape, dtype, 14)
    emu.mods.launched.clear()
    _close(emu.conv2d(x, w, *geo), y, dtype, "conv2d")
    _close(emu.conv2d_backward_input(gy, w, x_shape, *geo),
           REF.conv2d_backward_input(gy.astype(np.float64), w64, x_shape, *geo), dtype, "dx")
    _close(emu.conv2d_backward_weight(gy, x, w_shape, *geo),
           REF.conv2d_backward_weight(gy.astype(np.float64), x64, w_shape, *geo), dtype, "dw")
    sfx = "f32" if dtype == np.float32 else "f64"
    assert emu.mods.launched == [f"conv2d_fwd_{sfx}", f"conv2d_dcols_{sfx}", f"col2im_{sfx}",
                                 f"conv2d_wgrad_{sfx}"]


def test_weight_gradient_split_k_sums_every_split(emu):
    """A reduction long enough for several splits (each a multiple of 16, the last partial)."""
    geo = ((1, 1), (1, 1), (1, 1), 1)
    x, w = _r((5, 2, 23, 21), np.float32, 15), _r((3, 2, 3, 3), np.float32, 16)
    gm = cuda_launch.conv_geometry(x.shape, w.shape, *geo)
    splits, chunk = cuda_launch.conv_wgrad(gm, 4).scalars[-2:]
    assert splits > 2 and (5 * 23 * 21) % chunk
    gy = _r((5, 3, 23, 21), np.float32, 17)
    _close(emu.conv2d_backward_weight(gy, x, w.shape, *geo),
           REF.conv2d_backward_weight(gy.astype(np.float64), x.astype(np.float64), w.shape,
                                      *geo), np.float32, "split-K dw")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", [((2, 3, 7, 5), (3, 2), (2, 1), (1, 0), (1, 2)),
                                  ((1, 1, 1, 1), (1, 1), (1, 1), (0, 0), (1, 1)),
                                  ((2, 5, 9, 8), (3, 3), (1, 1), (1, 1), (1, 1))])
def test_im2col_and_col2im(emu, case, dtype):
    x_shape, *geo = case
    x = _r(x_shape, dtype, 18)
    cols = REF.im2col(x.astype(np.float64), *geo)
    _close(emu.im2col(x, *geo), cols, dtype, "im2col")
    g = _r(cols.shape, dtype, 19)
    got = emu.col2im(g, x_shape, *geo)
    _close(got, REF.col2im(g.astype(np.float64), x_shape, *geo), dtype, "col2im")
    # the adjoint identity <im2col(x), g> = <x, col2im(g)>
    lhs = float((emu.im2col(x, *geo).astype(np.float64) * g).sum())
    assert abs(lhs - float((x.astype(np.float64) * got).sum())) <= 1e-4 * max(1.0, abs(lhs))


POOL = [((2, 3, 8, 8), (2, 2), (2, 2), (0, 0)), ((1, 1, 1, 1), (1, 1), (1, 1), (0, 0)),
        ((3, 2, 13, 11), (3, 3), (2, 2), (1, 1)), ((2, 5, 7, 9), (3, 2), (1, 2), (1, 1)),
        ((1, 2, 31, 29), (5, 5), (3, 3), (2, 2))]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", POOL, ids=[str(c) for c in POOL])
def test_pooling_forward_and_backward(emu, case, dtype):
    x_shape, *geo = case
    x = _r(x_shape, dtype, 20)
    y, idx = REF.max_pool2d(x.astype(np.float64), *geo)
    gy = _r(y.shape, dtype, 21)
    gy64 = gy.astype(np.float64)
    got_y, got_idx = emu.max_pool2d(x, *geo)
    _close(got_y, y, dtype, "max_pool2d")
    np.testing.assert_array_equal(got_idx, idx)
    _close(emu.max_pool2d_backward(gy, got_idx, x_shape, *geo),
           REF.max_pool2d_backward(gy64, idx, x_shape, *geo), dtype, "max_pool2d_backward")
    _close(emu.avg_pool2d(x, *geo), REF.avg_pool2d(x.astype(np.float64), *geo), dtype, "avg")
    _close(emu.avg_pool2d_backward(gy, x_shape, *geo),
           REF.avg_pool2d_backward(gy64, x_shape, *geo), dtype, "avg_pool2d_backward")


def test_max_pool_ties_nan_and_infinities_follow_numpy(emu):
    x = np.zeros((1, 2, 4, 6), np.float32)                 # ties everywhere
    x[0, 0, 1, 1] = np.nan
    x[0, 1, :2, :2] = -np.inf
    x[0, 1, 2, 3] = np.inf
    for geo in (((2, 2), (2, 2), (0, 0)), ((3, 3), (2, 2), (1, 1))):
        y, idx = emu.max_pool2d(x, *geo)
        ry, ridx = REF.max_pool2d(x, *geo)
        np.testing.assert_array_equal(idx, ridx)
        np.testing.assert_array_equal(y, ry)               # NaN == NaN in this comparison


def test_padding_over_half_the_window_uses_the_reference_code(emu):
    """Outside the kernels' precondition (padding <= kernel/2) the backend runs the xp code."""
    x = _r((1, 1, 5, 5), np.float32, 22)
    emu.mods.launched.clear()
    y = emu.avg_pool2d(x, (2, 2), (1, 1), (2, 2))
    assert emu.mods.launched == []
    np.testing.assert_allclose(y, REF.avg_pool2d(x, (2, 2), (1, 1), (2, 2)))


def _race_check(tmp_path, kernel_dir):
    exe = str(tmp_path / "race_check")
    cmd = [CXX, "-std=c++20", "-O0", "-pthread", "-fsanitize=thread",
           "-Wno-unknown-pragmas", "-I", os.path.join(HERE, "emu"), "-I", kernel_dir,
           os.path.join(HERE, "emu", "race_check.cpp"), "-o", exe]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if out.returncode != 0 and "tsan" in out.stderr.lower():
        pytest.skip(f"ThreadSanitizer unavailable: {out.stderr.strip()[:200]}")
    assert out.returncode == 0, out.stderr
    return subprocess.run([exe], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, TSAN_OPTIONS="exitcode=66"))


def test_no_data_race_on_shared_memory_and_the_check_can_fail(tmp_path):
    """ThreadSanitizer over the emulation (tests/cuda/emu/race_check.cpp): the kernels'
    __syncthreads() leave no race on shared memory -- and dropping the one after
    sgemm_128x128's double-buffer store is reported as a race (the check works)."""
    run = _race_check(tmp_path, cuda.kernel_dir())
    assert run.returncode == 0 and "race check done" in run.stdout, run.stderr[-3000:]
    assert "ThreadSanitizer" not in run.stderr
    mutant = tmp_path / "mutant"
    mutant.mkdir()
    for name in cuda.KERNEL_FILES:
        (mutant / name).write_text(cuda.kernel_source(name))
    src = (mutant / "sgemm.cu").read_text()
    sync = "            store_b(Bs[buf ^ 1], rb, trans_b, t);\n            __syncthreads();\n"
    assert src.count(sync) == 1
    dropped = sync.replace("            __syncthreads();\n", "")
    (mutant / "sgemm.cu").write_text(src.replace(sync, dropped))
    bad = _race_check(tmp_path / "mutant", str(mutant))
    assert bad.returncode == 66 and "data race" in bad.stderr



@settings(max_examples=8)
@given(st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 2), st.integers(1, 9),
                 st.integers(1, 9), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3),
                 st.integers(1, 2), st.integers(1, 2), st.integers(0, 2), st.integers(0, 1),
                 st.integers(1, 2)), st.sampled_from([np.float32, np.float64]))
def test_conv2d_random_geometry(emu, case, dtype):
    n, cg, g, h, w, og, kh, kw, sh, sw, ph, pw, dil = case
    geo = ((sh, sw), (ph, pw), (dil, dil), g)
    if h + 2 * ph < dil * (kh - 1) + 1 or w + 2 * pw < dil * (kw - 1) + 1:
        return                                        # empty output: refused, tested elsewhere
    x, wt = _r((n, cg * g, h, w), dtype, 30), _r((og * g, cg, kh, kw), dtype, 31)
    x64, w64 = x.astype(np.float64), wt.astype(np.float64)
    y = REF.conv2d(x64, w64, *geo)
    gy = _r(y.shape, dtype, 32)
    _close(emu.conv2d(x, wt, *geo), y, dtype, f"conv2d {case}")
    _close(emu.conv2d_backward_input(gy, wt, x.shape, *geo),
           REF.conv2d_backward_input(gy.astype(np.float64), w64, x.shape, *geo), dtype, "dx")
    _close(emu.conv2d_backward_weight(gy, x, wt.shape, *geo),
           REF.conv2d_backward_weight(gy.astype(np.float64), x64, wt.shape, *geo), dtype, "dw")


@settings(max_examples=8)
@given(st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 11), st.integers(1, 11),
                 st.integers(1, 4), st.integers(1, 4), st.integers(1, 3), st.integers(1, 3)),
       st.data())
def test_pooling_random_geometry(emu, case, data):
    n, c, h, w, kh, kw, sh, sw = case
    ph, pw = data.draw(st.integers(0, kh // 2)), data.draw(st.integers(0, kw // 2))
    if h + 2 * ph < kh or w + 2 * pw < kw:
        return
    geo = ((kh, kw), (sh, sw), (ph, pw))
    x = _r((n, c, h, w), np.float32, 33)
    y, idx = REF.max_pool2d(x.astype(np.float64), *geo)
    gy = _r(y.shape, np.float32, 34)
    got_y, got_idx = emu.max_pool2d(x, *geo)
    _close(got_y, y, np.float32, f"max_pool2d {case}")
    np.testing.assert_array_equal(got_idx, idx)
    _close(emu.max_pool2d_backward(gy, got_idx, x.shape, *geo),
           REF.max_pool2d_backward(gy.astype(np.float64), idx, x.shape, *geo), np.float32, "gx")
    _close(emu.avg_pool2d(x, *geo), REF.avg_pool2d(x.astype(np.float64), *geo), np.float32,
           "avg")
    _close(emu.avg_pool2d_backward(gy, x.shape, *geo),
           REF.avg_pool2d_backward(gy.astype(np.float64), x.shape, *geo), np.float32, "avg gx")


def test_zz_no_misaligned_vector_load_in_any_emulated_run(emu):
    """Runs after the others (file order): UBSan saw no misaligned access in any launch above,
    and it does see one (a float4 load at a 4-byte offset) -- the check is live."""
    if not emu.ubsan:
        pytest.skip("g++ has no UBSan runtime here: the alignment check is off")
    assert emu.mods.errors == [], emu.mods.errors[0][:2000]
    a = np.zeros(64 + 1, np.float32)[1:].reshape(4, 16)           # base 4 bytes past 16
    b = np.zeros((16, 8), np.float32)
    ln = cuda_launch.gemm(4, 8, 16, 4, aligned=True)             # lies: claims aligned
    assert ln.scalars[-1] == 1
    emu.mods.launch(ln, a, b, np.empty((4, 8), np.float32))
    assert len(emu.mods.errors) == 1 and "misaligned address" in emu.mods.errors[0]
    emu.mods.errors.clear()
