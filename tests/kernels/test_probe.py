"""The machine probes of kernels/cpu/probe.pxi (what ``tinygrad-lite bench kernels`` prints
first): the FMA peak and the STREAM-triad bandwidth must be plausible next to what NumPy
reaches on the same machine, and the peak must bound our own GEMM from above.

The machine is shared and noisy: every comparison interleaves the two sides, times both on the
calling thread's CPU clock (as the probes time themselves; OpenBLAS held at one thread runs on the
calling thread), keeps the best of several tries, and the bounds are factors of 2, not percents.
"""

import time

import numpy as np
import pytest

from tinygrad_lite import _cpu
from tinygrad_lite.bench import machine

threadpoolctl = pytest.importorskip("threadpoolctl", reason="threadpoolctl holds OpenBLAS at "
                                    "one thread for the comparison (pip install threadpoolctl)")


def _rate(fn, work):
    """work per CPU second of the calling thread (a preempted call does not look slow)."""
    t0 = time.thread_time()
    fn()
    return work / max(time.thread_time() - t0, 1e-9)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fma_peak_is_within_2x_of_numpy_matmul_per_thread(dtype):
    """The selected ISA's peak on one thread against OpenBLAS's matmul on one thread
    (n = 512; both best of 7, interleaved)."""
    n = 512
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    iters = machine._fma_iters(_cpu, dtype, quick=True)
    ours = theirs = 0.0
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        a @ b
        for _ in range(7):
            flops, ((sec, _, _),) = _cpu.fma_probe(dtype, iters, 1)
            ours = max(ours, flops / sec if sec > 0 else 0.0)
            theirs = max(theirs, _rate(lambda: a @ b, 2.0 * n ** 3))
    assert 0.5 <= ours / theirs <= 2.0, (f"{dtype} {_cpu.isa()}: probe {ours / 1e9:.1f} vs "
                                         f"numpy matmul {theirs / 1e9:.1f} GFLOP/s")


def test_fma_peak_bounds_our_gemm_on_every_isa(isa):
    """Each ISA variant's probe is a ceiling for our GEMM in that variant (at most 10% below
    it: a peak the kernel beats would make %peak lie) and not far above it."""
    from tinygrad_lite.backends import threads as th

    n = 384
    rng = np.random.default_rng(1)
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    out = np.empty((n, n), np.float32)
    old = th.get_num_threads()
    th.set_num_threads(1)
    try:
        iters = machine._fma_iters(_cpu, "float32", quick=True)
        peak = gemm = 0.0
        _cpu.gemm(a, b, False, False, out, False, 1)
        for _ in range(5):
            flops, ((sec, _, _),) = _cpu.fma_probe("float32", iters, 1)
            peak = max(peak, flops / sec if sec > 0 else 0.0)
            gemm = max(gemm, _rate(lambda: _cpu.gemm(a, b, False, False, out, False, 1),
                                        2.0 * n ** 3))
    finally:
        th.set_num_threads(old)
    np.testing.assert_allclose(out, a @ b, rtol=1e-4, atol=1e-3)
    assert 0.25 <= gemm / peak <= 1.10, (f"{isa}: gemm {gemm / 1e9:.1f} vs probe "
                                        f"{peak / 1e9:.1f} GFLOP/s")


def test_triad_bandwidth_is_within_2x_of_numpy_copy():
    """One thread of the triad against np.copyto (both over arrays twice the last-level cache,
    best of 7, interleaved; STREAM byte counts: 24 and 16 per element)."""
    nbytes = min(256 << 20, max(48 << 20, 2 * machine._llc_bytes()))
    n = nbytes // 8
    x, y, z = np.zeros(n), np.full(n, 1.0), np.full(n, 2.0)
    dst = np.zeros(n)
    ours = theirs = 0.0
    _cpu.stream_triad(x, y, z, 3.0, 1)
    np.copyto(dst, y)
    for _ in range(7):
        (m, sec, _, _), = _cpu.stream_triad(x, y, z, 3.0, 1)
        ours = max(ours, 24.0 * m / sec if sec > 0 else 0.0)
        theirs = max(theirs, _rate(lambda: np.copyto(dst, y), 16.0 * n))
    assert np.all(x == 7.0)
    assert 0.5 <= ours / theirs <= 2.0, (f"triad {ours / 1e9:.1f} vs numpy copy "
                                         f"{theirs / 1e9:.1f} GB/s")


@pytest.mark.parametrize("threads", [1, 2, 3, 8])
@pytest.mark.parametrize("n", [0, 1, 7, 1001])
def test_triad_computes_every_element_once(threads, n):
    rng = np.random.default_rng(n)
    b, c = rng.standard_normal(n), rng.standard_normal(n)
    a = np.full(n, np.nan)
    per = _cpu.stream_triad(a, b, c, -1.5, threads)
    np.testing.assert_array_equal(a, b + -1.5 * c)
    assert len(per) == threads and sum(p[0] for p in per) == n
    for _, sec, w0, w1 in per:                      # CPU seconds within the wall window
        assert n == 0 or (0 <= sec <= (w1 - w0) + 1e-3 and w0 <= w1)


def test_a_call_counts_as_together_only_when_the_threads_overlapped_unpreempted():
    """machine._rate: the threads' own rates add up, and the call is marked as run together only
    when their wall windows overlap and neither was preempted; a missing clock falls back to the
    wall time."""
    from tinygrad_lite.bench.machine import _best_interleaved, _rate

    assert _rate([(10.0, 1.0, 0.0, 1.0), (10.0, 1.0, 0.05, 1.0)], 1.1) == (20.0, True)
    assert _rate([(10.0, 1.0, 0.0, 1.0), (10.0, 1.0, 1.0, 2.0)], 2.0) == (20.0, False)  # in turn
    assert _rate([(10.0, 1.0, 0.0, 2.0), (10.0, 2.0, 0.0, 2.0)], 2.0) == (15.0, False)  # preempted
    assert _rate([(10.0, -1.0, -1.0, -1.0)], 2.0) == (5.0, True)
    calls = iter([[(30.0, 1.0, 0.0, 1.0), (30.0, 1.0, 2.0, 3.0)],      # apart: 60, not counted
                  [(10.0, 1.0, 0.0, 1.0), (10.0, 1.0, 0.0, 1.0)]])     # together: 20
    best, contended = _best_interleaved({"k": lambda: next(calls)}, 2)
    assert best == {"k": 20.0} and contended == []
    best, contended = _best_interleaved({"k": lambda: [(8.0, 1.0, 0.0, 1.0), (8.0, 1.0, 5.0, 6.0)]},
                                        2)
    assert best == {"k": 16.0} and contended == ["k"]     # never together: the upper bound, named


def test_probe_arguments_are_checked():
    with pytest.raises(ValueError, match="fma_probe: dtype must be 'float32' or 'float64'"):
        _cpu.fma_probe("int8", 10, 1)
    with pytest.raises(ValueError, match="iters and threads must be positive"):
        _cpu.fma_probe("float32", 0, 1)
    with pytest.raises(ValueError, match="stream_triad: arrays differ in length"):
        _cpu.stream_triad(np.zeros(3), np.zeros(4), np.zeros(3), 1.0, 1)


def test_fma_probe_follows_the_selected_isa(isa):
    """flops per call follow the ISA's vector width: the probe runs the variant the GEMM uses."""
    lanes = {"avx512": 16, "avx2": 8}.get(isa)
    flops, clocks = _cpu.fma_probe("float32", 100, 2)
    assert len(clocks) == 2 and all(len(c) == 3 for c in clocks)
    if lanes:
        assert flops == 2 * 12 * lanes * 100        # 12 chains of FMA on `lanes` floats
    else:
        assert flops == 2 * 64 * 4 * 8 * 100        # the generic 4x8 kernel's 64-deep loop
