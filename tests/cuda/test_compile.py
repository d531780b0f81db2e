"""Compile checks of the CUDA kernels, on every CI run (no GPU needed, only nvcc).

Every ``kernels/cuda/*.cu`` is compiled with ``nvcc -arch=sm_XX -cubin -Xptxas -v`` for sm_90
(H100/H200) and sm_80 (A100). A file fails on any error or warning, on any register spill or
local-memory use (a stack frame), and on a register count above the budget its
``__launch_bounds__`` allows (read from the PTX ``.maxntid`` / ``.minnctapersm``, so macros and
templates are covered). The static shared memory ptxas reports must be what the host-side
launch code (backends/cuda_launch.py) assumes. Compiles run once per session, in parallel.
Skips, saying so, only when nvcc is absent (see the README, "CUDA").
"""

import concurrent.futures
import os
import re
import shutil
import subprocess
import tempfile

import pytest

from tinygrad_lite import cuda
from tinygrad_lite.backends import cuda_launch

ARCHS = ("sm_90", "sm_80")
NVCC = shutil.which("nvcc") or next(
    (p for p in ("/usr/local/cuda/bin/nvcc",) if os.path.exists(p)), None)
pytestmark = pytest.mark.skipif(
    NVCC is None, reason="nvcc not found: install the CUDA toolkit (README, 'CUDA') to compile-check "
                         "kernels/cuda/*.cu")


def parse_ptxas(text):
    """{kernel: {registers, spill_stores, spill_loads, stack, smem}} from ``ptxas -v`` output."""
    out, current = {}, None
    for line in text.splitlines():
        m = re.search(r"Function properties for (\w+)", line)
        if m:
            current = out.setdefault(m.group(1), {"smem": 0})
            continue
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads",
                      line)
        if m and current is not None:
            current.update(stack=int(m.group(1)), spill_stores=int(m.group(2)),
                           spill_loads=int(m.group(3)))
            continue
        m = re.search(r"Used (\d+) registers", line)
        if m and current is not None:
            current["registers"] = int(m.group(1))
            s = re.search(r"(\d+) bytes smem", line)
            current["smem"] = int(s.group(1)) if s else 0
            lm = re.search(r"(\d+) bytes lmem", line)
            current["lmem"] = int(lm.group(1)) if lm else 0
    return out


def parse_launch_bounds(ptx):
    """{kernel: (max threads per block, min blocks per SM or 1)} from PTX entry directives;
    None for a kernel that declares no ``__launch_bounds__``."""
    out = {}
    for m in re.finditer(r"\.entry\s+(\w+)\s*\((.*?)\)\s*(.*?)\{", ptx, re.S):
        directives = m.group(3)
        t = re.search(r"\.maxntid\s+(\d+)(?:,\s*(\d+))?(?:,\s*(\d+))?", directives)
        b = re.search(r"\.minnctapersm\s+(\d+)", directives)
        if t is None:
            out[m.group(1)] = None
        else:
            threads = 1
            for g in t.groups():
                threads *= int(g) if g else 1
            out[m.group(1)] = (threads, int(b.group(1)) if b else 1)
    return out


def parse_params(ptx):
    """{kernel: [PTX parameter types]} (.u64 for pointers and long long, .u32 for int)."""
    return {m.group(1): re.findall(r"\.param\s+\.(\w+)", m.group(2))
            for m in re.finditer(r"\.entry\s+(\w+)\s*\((.*?)\)", ptx, re.S)}


def register_budget(threads, min_blocks):
    """Registers per thread that ``__launch_bounds__(threads, min_blocks)`` leaves: 64 Ki
    registers per SM shared by min_blocks blocks, allocated per warp in units of 256 (so per
    thread in steps of 8), and never more than 255."""
    warps = -(-threads // 32) * min_blocks
    per_thread = (65536 // warps) // 32
    return min(255, per_thread // 8 * 8)


def _compile(path, arch, workdir):
    base = os.path.join(workdir, f"{os.path.basename(path)}.{arch}")
    os.makedirs(base, exist_ok=True)
    cmd = [NVCC, f"-arch={arch}", "-cubin", "-std=c++17", "-Xptxas", "-v",
           "-Xptxas", "--warn-on-spills", "-Xptxas", "--warn-on-local-memory-usage",
           "--keep", "--keep-dir", base, "-o", os.path.join(base, "out.cubin"), path]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    ptx = ""
    for name in os.listdir(base):
        if name.endswith(".ptx"):
            with open(os.path.join(base, name)) as f:
                ptx = f.read()
    return {"cmd": " ".join(cmd), "rc": proc.returncode, "log": proc.stdout + proc.stderr,
            "ptx": ptx}


@pytest.fixture(scope="module")
def compiled():
    """{(file, arch): result}, all compiled once, in parallel (one process per core)."""
    files = [os.path.join(cuda.kernel_dir(), f) for f in cuda.KERNEL_FILES]
    with tempfile.TemporaryDirectory() as tmp, concurrent.futures.ThreadPoolExecutor(
            max_workers=max(2, os.cpu_count() or 2)) as pool:
        jobs = {(os.path.basename(f), a): pool.submit(_compile, f, a, tmp)
                for f in files for a in ARCHS}
        return {k: j.result() for k, j in jobs.items()}


CASES = [(f, a) for f in cuda.KERNEL_FILES for a in ARCHS]


def test_every_cu_file_is_checked():
    on_disk = sorted(f for f in os.listdir(cuda.kernel_dir()) if f.endswith(".cu"))
    assert on_disk == sorted(cuda.KERNEL_FILES)


@pytest.mark.parametrize("name,arch", CASES)
def test_compiles_without_warnings_spills_or_local_memory(compiled, name, arch):
    r = compiled[(name, arch)]
    assert r["rc"] == 0, f"{r['cmd']}\n{r['log']}"
    bad = [ln for ln in r["log"].splitlines() if re.search(r"warning|error", ln, re.I)]
    assert not bad, "\n".join(bad)
    stats = parse_ptxas(r["log"])
    bounds = parse_launch_bounds(r["ptx"])
    assert stats and set(stats) == set(bounds), (sorted(stats), sorted(bounds))
    for kernel, s in stats.items():
        assert s["spill_stores"] == 0 and s["spill_loads"] == 0, f"{kernel} ({arch}) spills: {s}"
        assert s["stack"] == 0 and s["lmem"] == 0, f"{kernel} ({arch}) uses local memory: {s}"
        assert bounds[kernel] is not None, f"{kernel} declares no __launch_bounds__"
        budget = register_budget(*bounds[kernel])
        assert s["registers"] <= budget, (
            f"{kernel} ({arch}) uses {s['registers']} registers, over the {budget} that "
            f"__launch_bounds__{bounds[kernel]} allows")


def test_host_launch_code_matches_the_compiled_kernels(compiled):
    """Every kernel the launch code names exists, with the thread count it launches and the
    static shared memory it budgets; every compiled kernel is reachable from the launch code."""
    stats, bounds, params = {}, {}, {}
    for name in cuda.KERNEL_FILES:
        r = compiled[(name, "sm_90")]
        assert r["rc"] == 0, r["log"]
        stats.update(parse_ptxas(r["log"]))
        bounds.update(parse_launch_bounds(r["ptx"]))
        params.update(parse_params(r["ptx"]))
    geom = cuda_launch.conv_geometry((2, 4, 9, 7), (6, 2, 3, 3), (2, 1), (1, 0), (1, 2), 2)
    pgeom = cuda_launch.pool_geometry((2, 3, 7, 5), (3, 2), (2, 2), (1, 1))
    launches = []
    for isz in (4, 8):
        launches += [cuda_launch.gemm(5, 7, 3, isz, kernel="tiled16"),
                     cuda_launch.conv_forward(geom, isz), cuda_launch.conv_dcols(geom, isz),
                     cuda_launch.conv_wgrad(geom, isz), cuda_launch.im2col(geom, isz),
                     cuda_launch.col2im(geom, isz)]
        launches += [cuda_launch.pool(k, pgeom, isz) for k in
                     ("max_pool2d_fwd", "max_pool2d_bwd", "avg_pool2d_fwd", "avg_pool2d_bwd")]
    launches.append(cuda_launch.gemm(5, 7, 3, 4))
    for ln in launches:
        assert ln.kernel in stats, ln.kernel
        threads = ln.block[0] * ln.block[1] * ln.block[2]
        assert bounds[ln.kernel][0] == threads, (ln.kernel, bounds[ln.kernel], threads)
        assert stats[ln.kernel]["smem"] == ln.shared_bytes, (ln.kernel, stats[ln.kernel])
        # the argument list the host passes is the kernel's signature: pointers, then scalars
        assert len(ln.types) == len(ln.scalars)
        want = ["u64"] * ln.arrays + [{"i": "u32", "q": "u64"}[c] for c in ln.types]
        assert params[ln.kernel] == want, (ln.kernel, params[ln.kernel], want)
    assert {ln.kernel for ln in launches} == set(stats)


def test_the_checker_catches_a_spill_and_a_missing_launch_bound(tmp_path):
    """The parsers are what make the checks above fail: a kernel forced to spill (launch bounds
    leaving 32 registers for a 64-float accumulator loop) and one without bounds are caught."""
    src = tmp_path / "bad.cu"
    src.write_text(r'''
extern "C" __global__ void __launch_bounds__(1024, 2) spills(const float* a, float* c, int n) {
    float acc[64];
    for (int i = 0; i < 64; ++i) acc[i] = a[i * n + threadIdx.x];
    for (int k = 0; k < n; ++k)
        for (int i = 0; i < 64; ++i) acc[i] = acc[i] * a[k] + acc[(i + 7) & 63];
    for (int i = 0; i < 64; ++i) c[i * n + threadIdx.x] = acc[i];
}
extern "C" __global__ void unbounded(float* c) { c[threadIdx.x] = 1.f; }
''')
    r = _compile(str(src), "sm_90", str(tmp_path))
    assert r["rc"] == 0, r["log"]
    stats = parse_ptxas(r["log"])
    bounds = parse_launch_bounds(r["ptx"])
    assert bounds == {"spills": (1024, 2), "unbounded": None}
    assert register_budget(1024, 2) == 32
    s = stats["spills"]
    assert s["spill_stores"] > 0 or s["stack"] > 0 or s["registers"] > 32, s
    assert "warning" in r["log"].lower()       # --warn-on-spills / local-memory warnings fire


def _find_nvrtc():
    """libnvrtc: $NVRTC_LIB, the system's, or the nvidia-cuda-nvrtc wheel CuPy installs."""
    import ctypes.util
    import glob
    import site

    cands = [os.environ.get("NVRTC_LIB"), ctypes.util.find_library("nvrtc")]
    for base in site.getsitepackages() + ["/usr/local/cuda/lib64"]:
        cands += sorted(glob.glob(os.path.join(base, "nvidia", "cu1*", "lib", "libnvrtc.so*")))
        cands += sorted(glob.glob(os.path.join(base, "libnvrtc.so*")))
    return next((c for c in cands if c and os.path.exists(c) or c and "/" not in c), None)


@pytest.mark.parametrize("name", cuda.KERNEL_FILES)
def test_nvrtc_compiles_every_file_cleanly(name):
    """cupy.RawModule compiles with NVRTC, not nvcc: the same sources must pass there too, with
    an empty log (no warnings), for sm_90 and sm_80. NVRTC needs no GPU; skips without it."""
    import ctypes

    path = _find_nvrtc()
    if path is None:
        pytest.skip("libnvrtc not found (pip install nvidia-cuda-nvrtc, or set NVRTC_LIB)")
    lib = ctypes.CDLL(path)
    src = cuda.kernel_source(name).encode()
    for arch in (b"-arch=sm_90", b"-arch=sm_80"):
        prog = ctypes.c_void_p()
        assert lib.nvrtcCreateProgram(ctypes.byref(prog), src, name.encode(), 0, None, None) == 0
        opts = (ctypes.c_char_p * 2)(b"-std=c++17", arch)
        rc = lib.nvrtcCompileProgram(prog, 2, opts)
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, log)
        lib.nvrtcDestroyProgram(ctypes.byref(prog))
        assert rc == 0 and not log.value.strip(), f"{name} {arch.decode()}: {log.value.decode()}"
