"""The machine a benchmark runs on, measured at the start of every run.

* CPU model (``/proc/cpuinfo``; ``platform`` elsewhere) and the ISA variant our kernels picked at
  run time (``tinygrad_lite._cpu.isa()``: avx512, avx2 or generic; ``TINYGRAD_LITE_CPU_ISA``
  forces one);
* peak FLOP/s at each thread count, float32 and float64: the FMA-throughput loop of that ISA
  (``kernels/cpu/probe.pxi``), run on every thread at once, best of a few calls;
* memory bandwidth at each thread count: the STREAM triad ``a = b + s*c`` over float64 arrays
  several times the size of the last-level cache (24 bytes per element, the STREAM count).

Both probes time each thread on its own CPU clock and add the threads' rates: on a shared machine
a preempted thread's clock stops, so they measure the cores, not the neighbours (with wall time, a
2-thread region on 2 busy cores ran slower than 1 thread here). With several threads a call only
counts when the threads really ran together (their wall-clock windows overlap by 90% and neither
was preempted for more than 10% of it): threads sharing a core (SMT) or the memory bus must be
measured sharing it. When no call qualifies (a busy machine: at load average 90 on 2 cores no
2-thread call did here), the result is the best sum of the threads' separate rates, an upper bound,
and the ``contended`` list names the probe (the header says so). The wall clock is no fallback:
there it measured the neighbours (28 of 234 GFLOP/s).

Without the extension (not built, or ``TINYGRAD_LITE_DISABLE_KERNELS=1``) both are NumPy-based
estimates and labelled so: the peak is OpenBLAS's matmul rate (n=1024, BLAS held at the thread
count; a lower bound of the true peak) and the bandwidth is ``np.copyto``'s (16 bytes per element;
NumPy copies on one thread, so other thread counts are unavailable).
"""

import os
import platform
import time

import numpy as np

FMA_CALL_S = 0.02       # target length of one probe call (quick: half)
TRIAD_MIN_BYTES = 64 << 20


def cpu_model():
    """The CPU's marketing name, as the OS reports it ('unknown' when it does not)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _llc_bytes():
    """Size of the largest CPU cache (sysfs), or 32 MiB when unknown."""
    best = 0
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for entry in os.listdir(base):
            with open(os.path.join(base, entry, "size")) as f:
                s = f.read().strip().upper()
            mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(s[-1:], 1)
            best = max(best, int(s.rstrip("KMG")) * mult)
    except (OSError, ValueError):
        pass
    return best or 32 << 20


def _together(per):
    """Did the threads of one call run at the same time? Their wall windows overlap by 90% of
    the longest, and none spent more than 10% of its window preempted."""
    span = max(w1 - w0 for _, _, w0, w1 in per)
    overlap = min(w1 for *_, w1 in per) - max(w0 for _, _, w0, _ in per)
    return overlap >= 0.9 * span and all(sec >= 0.9 * (w1 - w0) for _, sec, w0, w1 in per)


def _rate(per, wall):
    """(work per second, ran together) of one call from [(work, CPU seconds, wall start, wall
    end)] per thread: the sum of the threads' own rates; where a clock is missing (-1), the
    call's wall time (threads then count as together: the wall clock includes any waiting)."""
    if any(sec <= 0 or w0 < 0 or w1 < 0 for _, sec, w0, w1 in per):
        return sum(p[0] for p in per) / wall, True
    return sum(work / sec for work, sec, _, _ in per), len(per) == 1 or _together(per)


def _best_interleaved(calls, rounds):
    """({key: best rate}, [keys whose threads never ran together]) over ``rounds`` rounds, each
    calling every entry of ``calls`` once ({key: fn returning [(work, CPU s, wall start, wall
    end)] per thread}). Interleaved and best-of-N: a burst of load from a neighbour (they last
    longer than one call here) hits every entry alike, and noise only ever slows a call. Calls
    whose threads ran together win; without any, the best of the others (an upper bound)."""
    best = {k: 0.0 for k in calls}
    apart = {k: 0.0 for k in calls}
    for r in range(rounds):
        keys = list(calls)
        for k in keys[r % len(keys):] + keys[:r % len(keys)]:
            t0 = time.perf_counter()
            per = calls[k]()
            rate, together = _rate(per, time.perf_counter() - t0)
            if together:
                best[k] = max(best[k], rate)
            else:
                apart[k] = max(apart[k], rate)
    contended = [k for k in calls if best[k] == 0.0]
    return {k: best[k] or apart[k] for k in calls}, contended


def _fma_iters(cpu, dtype, quick):
    """Iterations that make one probe call last about FMA_CALL_S of CPU time (half in quick
    mode). Calibrated on the thread's own clock: a preempted calibration call timed on the wall
    clock gave calls so short that the vector units' wake-up dominated (float32 read 30 of 117
    GFLOP/s here)."""
    iters = 64
    while True:
        t0 = time.perf_counter()
        _, clocks = cpu.fma_probe(dtype, iters, 1)
        dt = clocks[0][0] if clocks[0][0] > 0 else time.perf_counter() - t0
        if dt > 2e-3:
            return max(1, int(iters * FMA_CALL_S * (0.5 if quick else 1.0) / dt))
        iters *= 4


def probe_peaks(cpu, threads, quick=False, rounds=None):
    """({dtype: {threads: peak GFLOP/s of that many threads together}}, contended keys) from
    the extension's FMA loop, float32 and float64, every thread count, interleaved, best of
    ``rounds``."""
    rounds = rounds or (4 if quick else 8)
    calls = {}
    for dt in ("float32", "float64"):
        iters = _fma_iters(cpu, dt, quick)
        for t in threads:
            def call(dt=dt, t=t, iters=iters):
                flops, clocks = cpu.fma_probe(dt, iters, t)
                return [(flops,) + c for c in clocks]
            call()                                # warm-up (wakes the OpenMP threads)
            calls[(dt, t)] = call
    best, contended = _best_interleaved(calls, rounds)
    return ({dt: {t: best[(dt, t)] / 1e9 for t in threads} for dt in ("float32", "float64")},
            [f"peak {dt} {t}t" for dt, t in contended])


def probe_triad(cpu, threads, quick=False, rounds=None, nbytes=None):
    """({threads: STREAM-triad GB/s}, bytes per array, contended keys), interleaved, best of
    ``rounds``."""
    rounds = rounds or (3 if quick else 5)
    nbytes = nbytes or min(256 << 20, max(TRIAD_MIN_BYTES, 4 * _llc_bytes()))
    n = nbytes // 8
    a = np.zeros(n)
    b = np.full(n, 1.0)
    c = np.full(n, 2.0)
    calls = {}
    for t in threads:
        def call(t=t):
            return [(24.0 * m,) + tuple(clk) for m, *clk in cpu.stream_triad(a, b, c, 3.0, t)]
        call()                                    # warm-up
        calls[t] = call
    best, contended = _best_interleaved(calls, rounds)
    if a[0] != 7.0 or a[-1] != 7.0:               # 1 + 3*2: the loop ran on every element
        raise RuntimeError(f"stream_triad: wrong result {a[0]!r}, {a[-1]!r} (want 7.0)")
    return {t: best[t] / 1e9 for t in threads}, nbytes, [f"bandwidth {t}t" for t in contended]


def _best_rate(call, work, repeats, clock=time.perf_counter):
    """max over ``repeats`` calls of work / seconds on ``clock`` (best-of-N). NumPy's work on one
    thread runs on the calling thread: time.thread_time then leaves out preemption, as the
    probes' own clocks do."""
    best = 0.0
    for _ in range(repeats):
        t0 = clock()
        call()
        best = max(best, work / max(clock() - t0, 1e-9))
    return best


def numpy_matmul_peak(dtype, threads, blas, n=1024, repeats=3):
    """NumPy estimate of the peak: OpenBLAS's matmul rate (GFLOP/s), BLAS held at ``threads``."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, n)).astype(dtype)
    y = rng.standard_normal((n, n)).astype(dtype)
    with blas.limit(limits=threads):
        x @ y
        clock = time.thread_time if threads == 1 else time.perf_counter
        return _best_rate(lambda: x @ y, 2.0 * n ** 3, repeats, clock) / 1e9


def numpy_copy_bandwidth(nbytes=None, repeats=5):
    """NumPy estimate of the bandwidth: ``np.copyto`` (GB/s, 16 bytes per element, 1 thread)."""
    nbytes = nbytes or min(256 << 20, max(TRIAD_MIN_BYTES, 4 * _llc_bytes()))
    n = nbytes // 8
    src = np.full(n, 1.0)
    dst = np.zeros(n)
    np.copyto(dst, src)
    return _best_rate(lambda: np.copyto(dst, src), 16.0 * n, repeats, time.thread_time) / 1e9


def measure(threads=(1, 2), quick=False, blas=None):
    """Measure the machine. Returns a JSON-ready dict:

    ``cpu``, ``isa``, ``isa_supported``, ``source`` ('kernels' or 'numpy-estimate'), ``method``
    (what was run, in words), ``peak_gflops`` {dtype: {threads: GFLOP/s of all those threads}},
    ``bandwidth_gbs`` {threads: GB/s or None}, ``seconds`` (what measuring took).

    ``blas``: a threadpoolctl controller for the NumPy estimate (the kernels do not need one).
    """
    from ..backends._ext import load_cpu_kernels

    t0 = time.perf_counter()
    cpu, err = load_cpu_kernels()
    info = {"cpu": cpu_model(), "cpus": os.cpu_count(), "threads": list(threads)}
    if cpu is not None and hasattr(cpu, "fma_probe"):
        info.update(source="kernels", isa=cpu.isa(), isa_supported=cpu.supported_isas())
        info["peak_gflops"], c1 = probe_peaks(cpu, threads, quick)
        info["bandwidth_gbs"], nbytes, c2 = probe_triad(cpu, threads, quick)
        info["contended"] = c1 + c2
        info["method"] = (f"peak: {info['isa']} FMA-throughput loop (kernels/cpu/probe.pxi); "
                          f"bandwidth: STREAM triad over 3 x {nbytes >> 20} MiB float64; best "
                          f"of {4 if quick else 8} and {3 if quick else 5} interleaved rounds, "
                          "each thread on its own CPU clock"
                          + (f"; UPPER BOUND, the threads never ran together (busy machine): "
                             f"{', '.join(info['contended'])}" if info["contended"] else ""))
    else:
        why = str(err) if err is not None else "this build of the extension has no probes"
        info.update(source="numpy-estimate", isa=None, isa_supported=None, kernels_missing=why)
        if blas is not None:
            info["peak_gflops"] = {dt: {t: numpy_matmul_peak(dt, t, blas) for t in threads}
                                   for dt in ("float32", "float64")}
        else:
            info["peak_gflops"] = {dt: {t: None for t in threads} for dt in ("float32", "float64")}
        bw1 = numpy_copy_bandwidth()
        info["bandwidth_gbs"] = {t: (bw1 if t == 1 else None) for t in threads}
        info["method"] = ("NumPy estimate (our kernels are unavailable: " + why + "): peak = "
                          + ("OpenBLAS matmul rate at n=1024 (a lower bound)" if blas is not None
                             else "unavailable (threadpoolctl missing)")
                          + "; bandwidth = np.copyto at 1 thread (other thread counts "
                          "unavailable)")
    info["seconds"] = round(time.perf_counter() - t0, 2)
    return info


def peak_at(info, threads, dtype="float32"):
    """The measured peak GFLOP/s of ``threads`` threads (None when unavailable). JSON turns the
    thread keys into strings; both are accepted."""
    d = (info.get("peak_gflops") or {}).get(dtype) or {}
    return d.get(threads, d.get(str(threads)))


def bandwidth_at(info, threads):
    d = info.get("bandwidth_gbs") or {}
    return d.get(threads, d.get(str(threads)))


def header(info):
    """The lines the benchmarks print first (without the leading '# ')."""
    def fmt(v, unit):
        return "unavailable" if v is None else f"{v:.1f} {unit}"

    ts = info["threads"]
    isa = (f"ISA {info['isa']} (picked at run time; this CPU runs "
           f"{', '.join(info['isa_supported'])})") if info["isa"] else "our kernels unavailable"
    lines = [f"machine: {info['cpu']} ({info['cpus']} CPUs), {isa}"]
    label = "measured" if info["source"] == "kernels" else "NumPy ESTIMATE"
    upper = set(info.get("contended") or [])

    def ub(key):
        return " (upper bound)" if key in upper else ""

    for dt in ("float32", "float64"):
        per = ", ".join(f"{fmt(peak_at(info, t, dt), 'GFLOP/s')} at {t}t"
                        + (f" ({peak_at(info, t, dt) / t:.1f}/thread)"
                           if t > 1 and peak_at(info, t, dt) else "")
                        + ub(f"peak {dt} {t}t") for t in ts)
        lines.append(f"peak {dt} ({label}): {per}")
    bw = ", ".join(f"{fmt(bandwidth_at(info, t), 'GB/s')} at {t}t" + ub(f"bandwidth {t}t")
                   for t in ts)
    lines.append(f"bandwidth ({label}): {bw}")
    lines.append(f"method: {info['method']} [{info['seconds']} s]")
    return lines
