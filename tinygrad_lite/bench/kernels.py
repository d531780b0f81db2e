"""Kernel benchmark matrix: ops x shapes x implementations, interleaved, checked, with ratios.

    tinygrad-lite bench kernels [--quick] [--threads 1,2] [--only SUBSTR,...] [--json PATH]
                                [--plot PATH] [--md PATH] [--peak GFLOPS] [--clock wall|thread]
                                [--conv-algo auto|implicit|winograd|im2col]
    tinygrad-lite bench compare A.json B.json        (two --json runs; see compare.py)

Implementations: the numpy reference backend (OpenBLAS), our cython kernels, and PyTorch CPU when
it is installed -- each at every thread count asked for (OpenBLAS, our OpenMP and torch all set to
the same count). Every ratio compares implementations at the same thread count, measured in one
run: ``vs_numpy = t_numpy / t_ours`` (above 1: ours is faster), same for torch.

Method: each candidate is warmed up. At 1 thread the candidates of one case are timed in rotation
(interleaved sample by sample, so a noisy neighbour hits them all alike). With more threads they
are timed in rotated blocks after a 0.5 s pause (``_time_blocks``): on two cores, the worker
threads one runtime leaves spinning after its call would otherwise steal a core from the next
one's parallel region. We report the median (and the best) of the samples. ``--clock thread``
times the 1-thread samples on the calling thread's CPU clock instead of the wall clock (every
1-thread candidate runs on the calling thread): on a busy shared machine that leaves out the time
other processes held the core. Every result is checked against a float64 NumPy computation
before it is timed. GFLOP/s count 2 flops per multiply-add.

The machine is measured first (``machine.py``): the float32/float64 FMA peak of the ISA our
kernels picked, and the STREAM-triad bandwidth, at every thread count; the header prints them
with the CPU model. "% peak" is against the measured float32 peak at the row's thread count
(``--peak G`` overrides it with G GFLOP/s per thread). Without our kernels both are NumPy-based
estimates, labelled so. ``--json`` records the machine, the versions and every sample;
``tinygrad-lite bench compare A.json B.json`` compares two such runs. ``--plot`` draws the
roofline (every case at its arithmetic intensity under the measured roofs, one panel per thread
count) above the ratio bars.
"""

import argparse
import json
import platform
import statistics
import sys
import time

import numpy as np

SETTLE_S = 0.002        # between interleaved 1-thread samples
BLOCK_SETTLE_S = 0.5    # before each block of multi-threaded samples (see _time_blocks)

# (label, m, n, k, trans_a, trans_b): the MLP 784-128-10 at batch 64, forward and backward.
# nn.Linear keeps W as (out, in): forward y = x @ W.T, backward gx = gy @ W, gW = gy.T @ x.
MLP = [
    ("x@W1.T 64x784.784x128", 64, 128, 784, False, True),
    ("x@W1 64x784.784x128", 64, 128, 784, False, False),
    ("gy@W1 64x128.128x784", 64, 784, 128, False, False),
    ("gy.T@x 128x64.64x784", 128, 784, 64, True, False),
    ("h@W2.T 64x128.128x10", 64, 10, 128, False, True),
    ("gy@W2 64x10.10x128", 64, 128, 10, False, False),
    ("gy.T@h 10x64.64x128", 10, 128, 64, True, False),
]

# (label, N, C, H, W, O, k, padding): the three reference layers of issue 3.
CONVS = [
    ("a: 64x1x28x28 -> 6, 5x5", 64, 1, 28, 28, 6, 5, 0),
    ("b: 64x32x32x32 -> 64, 3x3 p1", 64, 32, 32, 32, 64, 3, 1),
    ("c: 128x3x32x32 -> 32, 3x3 p1", 128, 3, 32, 32, 32, 3, 1),
]

POOLS = [
    ("64x6x24x24 2x2 s2", (64, 6, 24, 24), 2, 2),
    ("64x64x32x32 2x2 s2", (64, 64, 32, 32), 2, 2),
    ("128x32x32x32 3x3 s2 p1", (128, 32, 32, 32), 3, 2),
]


# ------------------------------------------------------------------------ candidates ------

class Env:
    """Sets the thread count of every runtime before a candidate runs (outside the timer)."""

    def __init__(self):
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            raise SystemExit("tinygrad-lite bench kernels: needs threadpoolctl, to hold OpenBLAS "
                             "at the thread count being measured; pip install threadpoolctl (or "
                             "'tinygrad_lite[bench]')") from None
        self.blas = ThreadpoolController().select(user_api="blas")
        self.torch = _torch()

    def set(self, impl, threads):
        from tinygrad_lite.backends import threads as our_threads

        self.blas.limit(limits=threads if impl == "numpy" else 1)
        our_threads.set_num_threads(threads)
        if self.torch is not None:
            self.torch.set_num_threads(threads)


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def matmul_case(m, n, k, ta, tb, rng):
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
    want = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)

    def ours(backend):
        return lambda: backend.matmul(a, b, ta, tb)

    def torch_fn(torch):
        ta_, tb_ = torch.from_numpy(a), torch.from_numpy(b)
        return lambda: torch.matmul(ta_.T if ta else ta_, tb_.T if tb else tb_)

    return ours, torch_fn, (want,), 2.0 * m * n * k, 4.0 * (a.size + b.size + m * n)


def conv_case(n, c, h, w, o, k, p, backward, rng):
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = (rng.standard_normal((o, c, k, k)) / np.sqrt(c * k * k)).astype(np.float32)
    geo = ((1, 1), (p, p), (1, 1), 1)
    from tinygrad_lite.backends.numpy_backend import NumpyBackend

    ref = NumpyBackend()
    x64, w64 = x.astype(np.float64), wt.astype(np.float64)
    y = ref.conv2d(x64, w64, *geo)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    flops = 2.0 * y.size * c * k * k
    nbytes = 4.0 * (x.size + wt.size + y.size)    # each array read or written once
    if backward:
        want = (y, ref.conv2d_backward_input(gy.astype(np.float64), w64, x.shape, *geo),
                ref.conv2d_backward_weight(gy.astype(np.float64), x64, wt.shape, *geo))
        flops *= 3
        nbytes *= 2                               # gy, w -> gx and gy, x -> gw
    else:
        want = (y,)

    def ours(backend):
        if not backward:
            return lambda: (backend.conv2d(x, wt, *geo),)
        return lambda: (backend.conv2d(x, wt, *geo),
                        backend.conv2d_backward_input(gy, wt, x.shape, *geo),
                        backend.conv2d_backward_weight(gy, x, wt.shape, *geo))

    def torch_fn(torch):
        F = torch.nn.functional
        tx, tw, tg = torch.from_numpy(x), torch.from_numpy(wt), torch.from_numpy(gy)
        if not backward:
            def run():
                with torch.no_grad():
                    return (F.conv2d(tx, tw, padding=p),)
            return run

        def run_bwd():
            xx = tx.detach().requires_grad_(True)
            ww = tw.detach().requires_grad_(True)
            out = F.conv2d(xx, ww, padding=p)
            out.backward(tg)
            return out.detach(), xx.grad, ww.grad
        return run_bwd

    return ours, torch_fn, want, flops, nbytes


def pool_case(shape, k, s, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    p = 1 if k == 3 else 0
    from tinygrad_lite.backends.numpy_backend import NumpyBackend

    want = (NumpyBackend().max_pool2d(x.astype(np.float64), (k, k), (s, s), (p, p))[0],)

    def ours(backend):
        return lambda: (backend.max_pool2d(x, (k, k), (s, s), (p, p))[0],)

    def torch_fn(torch):
        tx = torch.from_numpy(x)

        def run():
            with torch.no_grad():
                return (torch.nn.functional.max_pool2d(tx, k, s, p, return_indices=True)[0],)
        return run

    return ours, torch_fn, want, None, None


class _OnDevice:
    """A GPU backend fed the cases' host arrays: each array is copied to the device once (cached),
    and every call synchronizes, so the timers see kernel time and not transfers. Results stay
    on the device; ``_check`` copies them back."""

    def __init__(self, backend):
        self.backend, self.cache = backend, {}

    def _dev(self, a):
        if not isinstance(a, np.ndarray):
            return a
        hit = self.cache.get(id(a))
        if hit is None or hit[0] is not a:
            hit = self.cache[id(a)] = (a, self.backend.xp.asarray(a))
        return hit[1]

    def __getattr__(self, name):
        fn = getattr(self.backend, name)

        def call(*args, **kw):
            out = fn(*[self._dev(a) for a in args], **kw)
            self.backend.xp.cuda.get_current_stream().synchronize()
            return out

        return call


# ---------------------------------------------------------------------------- timing ------

def _check(got, want):
    got = got if isinstance(got, tuple) else (got,)
    err = 0.0
    for g, w in zip(got, want):
        g = g.detach().numpy() if hasattr(g, "detach") else g.get() if hasattr(g, "get") \
            else np.asarray(g)
        scale = float(np.abs(w).max()) or 1.0
        err = max(err, float(np.abs(g.astype(np.float64) - w).max()) / scale)
    return err, err < 1e-4


def _time_case(cands, env, budget_s, min_samples=5, max_samples=60, clock=time.perf_counter):
    """cands: {(impl, threads): fn}; returns {(impl, threads): [sample seconds per call]}.

    ``clock``: the wall clock, or ``time.thread_time`` (``--clock thread``): at 1 thread every
    candidate runs on the calling thread (OpenBLAS held at 1, our kernels and torch at 1), so its
    CPU clock times the work and leaves out the time another process held the core."""
    inner = {}
    for key, fn in cands.items():           # warm-up, and calls per sample for tiny ops
        env.set(*key)
        fn()
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        inner[key] = max(1, int(2e-3 / max(dt, 1e-7)))
    samples = {key: [] for key in cands}
    order = list(cands)
    t_end = time.perf_counter() + budget_s
    i = 0
    while True:
        for key in order[i % len(order):] + order[:i % len(order)]:      # rotate the start
            env.set(*key)
            fn, reps = cands[key], inner[key]
            time.sleep(SETTLE_S)             # let other runtimes' spinning workers go idle
            t0 = clock()
            for _ in range(reps):
                fn()
            samples[key].append((clock() - t0) / reps)
        i += 1
        n = len(samples[order[0]])
        if n >= max_samples or (n >= min_samples and time.perf_counter() > t_end):
            return samples


def _time_blocks(cands, env, budget_s, rounds=3):
    """Multi-threaded candidates, timed in blocks: all samples of one candidate back to back,
    after a pause long enough for the previous runtime's worker threads to stop spinning.

    Interleaving single calls (``_time_case``) is fairer against noise, but with two cores the
    worker threads that OpenBLAS or another OpenMP runtime leave spinning after their call take a
    core from the next candidate's parallel region and its join waits a whole time slice (measured
    here: our 2-thread GEMM at n=256 fell from ~280 to ~5 GFLOP/s right after numpy's 2-thread
    call, and recovered after a 0.5 s pause). Real use never interleaves runtimes like that (the
    cython backend holds OpenBLAS at one thread), so blocks, rotated over ``rounds``, measure each
    runtime as it runs in practice while still sharing slow drifts of the machine between them.
    """
    per_block = budget_s / rounds
    samples = {key: [] for key in cands}
    order = list(cands)
    for r in range(rounds):
        for key in order[r % len(order):] + order[:r % len(order)]:
            env.set(*key)
            fn = cands[key]
            time.sleep(BLOCK_SETTLE_S)
            fn()                                          # wake this runtime's pool
            t_end = time.perf_counter() + per_block
            while True:
                t0 = time.perf_counter()
                fn()
                samples[key].append(time.perf_counter() - t0)
                if time.perf_counter() > t_end and len(samples[key]) >= 2 * (r + 1):
                    break
    return samples


def run(quick=False, threads=(1, 2), peak=None, log=print, only=None, env=None, clock="wall"):
    """Time every case; returns one row per (case, impl, threads). ``peak``: {threads: GFLOP/s
    of that many threads} for the %peak column (None: no %peak). ``clock``: 'wall', or
    'thread' to time the 1-thread samples on the calling thread's CPU clock (see _time_case)."""
    from tinygrad_lite import backends

    env = env or Env()
    rng = np.random.default_rng(0)
    impls = {"numpy": backends.get("numpy")}
    try:
        impls["cython"] = backends.get("cython")
    except Exception as e:
        log(f"cython backend unavailable: {e}")
    for gpu in ("cupy", "cublas"):   # columns on a machine with CuPy and a CUDA device
        ok, why = backends.available().get(gpu, (False, "unknown"))
        if ok:
            impls[gpu] = _OnDevice(backends.get(gpu))
        else:
            log(f"{gpu} backend unavailable: {why}")
    torch = env.torch
    sizes = [64, 128, 256, 512] if quick else [64, 128, 256, 512, 1024, 2048]
    cases = [("matmul", f"square {s}", lambda s=s: matmul_case(s, s, s, False, False, rng))
             for s in sizes]
    cases += [("matmul", f"MLP {lbl}", lambda a=a: matmul_case(*a, rng)) for lbl, *a in MLP]
    for bwd in (False, True):
        op = "conv2d fwd+bwd" if bwd else "conv2d fwd"
        for lbl, *a in CONVS:
            if quick:
                a = [max(8, a[0] // 4)] + a[1:]
                lbl = lbl.replace(f"{a[0] * 4}x", f"{a[0]}x", 1)
            cases.append((op, lbl, lambda a=a, b=bwd: conv_case(*a, b, rng)))
    cases += [("max_pool2d", lbl, lambda a=(sh, k, s): pool_case(*a, rng))
              for lbl, sh, k, s in POOLS]

    if only:
        cases = [c for c in cases if any(o in f"{c[0]} {c[1]}" for o in only.split(","))]
    results = []
    budget = 0.4 if quick else 1.5
    for op, label, make in cases:
        ours, torch_fn, want, flops, nbytes = make()
        cands = {}
        for t in threads:
            for name, backend in impls.items():
                cands[(name, t)] = ours(backend)
            if torch is not None:
                cands[("torch", t)] = torch_fn(torch)
        rows = {}
        for key, fn in cands.items():
            env.set(*key)
            err, ok = _check(fn(), want)
            rows[key] = {"op": op, "case": label, "impl": key[0], "threads": key[1],
                         "max_rel_err": err, "ok": ok}
        samples = {}
        for t in threads:
            group = {k: fn for k, fn in cands.items() if k[1] == t}
            if t == 1:
                samples.update(_time_case(group, env, budget, clock=time.thread_time
                                          if clock == "thread" else time.perf_counter))
            else:
                samples.update(_time_blocks(group, env, budget))
        for key, s in samples.items():
            r = rows[key]
            q1, med, q3 = _quartiles(s)
            r["median_s"] = med
            r["best_s"] = min(s)
            r["q1_s"], r["q3_s"] = q1, q3                 # the spread `bench compare` reads
            r["samples"] = len(s)
            r["samples_s"] = [float(f"{v:.4g}") for v in s]
            r["flops"], r["bytes"] = flops, nbytes
            r["intensity"] = flops / nbytes if flops and nbytes else None
            r["gflops"] = flops / r["median_s"] / 1e9 if flops else None
            p = (peak or {}).get(key[1])
            r["pct_peak"] = 100 * r["gflops"] / p if flops and p else None
        for key, r in rows.items():
            for ref in ("numpy", "torch", "cublas"):
                other = rows.get((ref, key[1]))
                r[f"vs_{ref}"] = other["median_s"] / r["median_s"] if other else None
            results.append(r)
        log(_line(rows, threads))
    return results


def _quartiles(s):
    """(first quartile, median, third quartile) of the samples (one sample: all three equal)."""
    if len(s) < 2:
        return s[0], s[0], s[0]
    q = statistics.quantiles(s, n=4, method="inclusive")
    return q[0], statistics.median(s), q[2]


# ---------------------------------------------------------------------------- output ------

def _fmt(v, spec):
    return "—" if v is None else format(v, spec)


def _line(rows, threads):
    r0 = next(iter(rows.values()))
    parts = [f"{r0['op']:<15} {r0['case']:<30}"]
    for t in threads:
        for impl in ("numpy", "cython", "torch", "cupy", "cublas"):
            r = rows.get((impl, t))
            if r:
                v = f"{r['gflops']:.0f}GF" if r["gflops"] else f"{r['median_s'] * 1e3:.2f}ms"
                parts.append(f"{impl[:2]}{t}={v}{'' if r['ok'] else '(WRONG)'}")
        c = rows.get(("cython", t))
        if c:
            parts.append(f"vs np {_fmt(c['vs_numpy'], '.2f')} vs th {_fmt(c['vs_torch'], '.2f')}")
    return "  ".join(parts)


def markdown(results, threads):
    head = ["op", "case"]
    for t in threads:
        head += [f"numpy {t}t", f"cython {t}t", f"torch {t}t", f"cy/np {t}t", f"cy/torch {t}t",
                 f"%peak cy {t}t"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    by = {(r["op"], r["case"], r["impl"], r["threads"]): r for r in results}
    seen = []
    for r in results:
        if (r["op"], r["case"]) not in seen:
            seen.append((r["op"], r["case"]))
    for op, case in seen:
        row = [op, case]
        for t in threads:
            for impl in ("numpy", "cython", "torch"):
                r = by.get((op, case, impl, t))
                if r is None:
                    row.append("—")
                    continue
                v = f"{r['gflops']:.1f} GF/s" if r["gflops"] else f"{r['median_s'] * 1e3:.3f} ms"
                row.append(v + ("" if r["ok"] else " WRONG"))
            c = by.get((op, case, "cython", t), {})
            row += [_fmt(c.get("vs_numpy"), ".2f") + "×", _fmt(c.get("vs_torch"), ".2f") + "×",
                    _fmt(c.get("pct_peak"), ".0f")]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def plot(results, threads, path, machine=None, torch_version=None):
    """Top row: the roofline, one panel per thread count -- every case with a flop count at its
    arithmetic intensity (flops / bytes each array moves once) and its achieved GFLOP/s, under
    the measured float32 compute roof and the STREAM bandwidth roof. Bottom row: the ratio bars
    (ours vs NumPy, and vs PyTorch when it was timed). Returns the figure's title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    from .machine import bandwidth_at, peak_at

    machine = machine or {}
    cy = [r for r in results if r["impl"] == "cython"]
    ours = cy or [r for r in results if r["impl"] == "numpy"]
    labels = []
    for r in ours:
        if f"{r['op']}: {r['case']}" not in labels:
            labels.append(f"{r['op']}: {r['case']}")
    refs = ["numpy"] if cy else []
    has_torch = any(r["impl"] == "torch" for r in results)
    if cy and has_torch:
        refs.append("torch")
    ncols = max(len(threads), len(refs), 1)
    fig = plt.figure(figsize=(7 * ncols, 5.5 + 0.3 * len(labels) + 2))
    grid = fig.add_gridspec(2, ncols, height_ratios=[5.5, 0.3 * len(labels) + 2])
    colors = {"matmul": "tab:blue", "conv2d fwd": "tab:orange", "conv2d fwd+bwd": "tab:red"}
    markers = {"cython": "o", "numpy": "s", "torch": "^"}
    pts = [r for r in results if r.get("intensity") and r.get("gflops")]
    for i, t in enumerate(threads):
        ax = fig.add_subplot(grid[0, i])
        here = [r for r in pts if r["threads"] == t]
        ai = [r["intensity"] for r in here] or [1.0, 100.0]
        xs = np.geomspace(min(ai) / 2, max(ai) * 2, 200)
        peak, bw = peak_at(machine, t), bandwidth_at(machine, t)
        if peak:
            ax.plot(xs, np.minimum(peak, bw * xs) if bw else np.full_like(xs, peak), "k-",
                    lw=1.2, label=f"roof: {peak:.0f} GFLOP/s" + (f", {bw:.0f} GB/s" if bw else ""))
        elif bw:
            ax.plot(xs, bw * xs, "k--", lw=1, label=f"bandwidth roof {bw:.0f} GB/s")
        for r in here:
            filled = r["impl"] == ("cython" if cy else "numpy")
            c = colors.get(r["op"], "tab:gray")
            ax.scatter(r["intensity"], r["gflops"], marker=markers.get(r["impl"], "x"), s=28,
                       facecolors=c if filled else "none", edgecolors=c, lw=0.9)
            if filled:
                ax.annotate(_short(r), (r["intensity"], r["gflops"]), fontsize=5,
                            xytext=(3, 2), textcoords="offset points")
        for op, c in colors.items():
            ax.scatter([], [], color=c, marker="o", s=20, label=op)
        for impl, m in markers.items():
            if any(r["impl"] == impl for r in here):
                ax.scatter([], [], facecolors="none", edgecolors="k", marker=m, s=20, label=impl)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("arithmetic intensity (flop / byte)")
        ax.set_ylabel("GFLOP/s (median)")
        src = "measured" if machine.get("source") == "kernels" else "NumPy estimate"
        # GFLOP/s count the direct algorithm's FLOPs: a FLOP-saving one (Winograd conv) can
        # plot above the compute roof, and the title says so
        above = "; above the roof: Winograd" if peak and any(
            r["gflops"] > peak for r in here) else ""
        ax.set_title(f"roofline, {t} thread(s) (roofs {src}; filled: "
                     f"{'ours' if cy else 'numpy'}){above}", fontsize=9)
        ax.legend(fontsize=6, loc="lower left")
        ax.grid(True, which="both", lw=0.3, alpha=0.5)
    width = 0.8 / len(threads)
    for j, ref in enumerate(refs):
        ax = fig.add_subplot(grid[1, j])
        for i, t in enumerate(threads):
            vals = {f"{r['op']}: {r['case']}": r[f"vs_{ref}"] for r in cy if r["threads"] == t}
            ys = np.arange(len(labels)) + i * width
            ax.barh(ys, [vals.get(lbl) or 0 for lbl in labels], height=width,
                    label=f"{t} thread(s)")
        ax.axvline(1.0, color="k", lw=0.8)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.tick_params(axis="x", which="minor", labelsize=6)
        ax.set_title(f"cython vs {ref}: t_{ref} / t_cython, same threads (above 1: ours "
                     "faster)", fontsize=9)
        ax.set_yticks(np.arange(len(labels)) + 0.4 - width / 2)
        ax.set_yticklabels(labels, fontsize=7)
        ax.invert_yaxis()
        ax.legend(fontsize=7)
    title = f"kernel benchmark on {machine.get('cpu', '?')}, ISA {machine.get('isa') or 'none'}"
    if not cy:
        title += " -- ratio panels omitted: our kernels are unavailable (NumPy only)"
    elif not has_torch:
        title += (" -- vs-torch panel omitted: PyTorch is not installed"
                  if torch_version is None else " -- vs-torch panel omitted: torch was not timed")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return title


def _short(r):
    """A point's label on the roofline: 'square 256', 'MLP h@W2.T', 'conv b fwd+bwd'."""
    if r["op"] == "matmul":
        return r["case"].split(" ")[0] + " " + r["case"].split(" ")[1]
    return f"conv {r['case'].split(':')[0]} {r['op'].split(' ')[1]}"


def versions(env):
    """Library versions for the JSON (what a comparison of two runs must know)."""
    import tinygrad_lite

    blas = env.blas.info()
    return {"python": sys.version.split()[0], "numpy": np.__version__,
            "tinygrad_lite": getattr(tinygrad_lite, "__version__", None),
            "torch": env.torch.__version__ if env.torch else None,
            "blas": [f"{b.get('internal_api')} {b.get('version')} ({b.get('architecture')})"
                     for b in blas],
            "platform": platform.platform()}


def main(argv=None):
    ap = argparse.ArgumentParser(prog="tinygrad-lite bench kernels", description=__doc__.split(
        "\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller shapes, shorter timing")
    ap.add_argument("--threads", default="1,2", help="thread counts, comma separated (default 1,2)")
    ap.add_argument("--json", help="write the machine, versions and every result (with its "
                    "samples) as JSON; `tinygrad-lite bench compare A.json B.json` reads two")
    ap.add_argument("--md", help="write the Markdown table here (it is printed either way)")
    ap.add_argument("--plot", help="write a PNG: the roofline above the ratio bars")
    ap.add_argument("--only", help="run only cases whose 'op case' contains one of these "
                    "comma-separated strings (e.g. 'square,conv2d fwd+bwd')")
    ap.add_argument("--clock", choices=["wall", "thread"], default="wall",
                    help="time 1-thread samples on the wall clock (default) or on the calling "
                    "thread's CPU clock ('thread': on a busy shared machine it leaves out the "
                    "time other processes held the core; more threads always use the wall clock)")
    ap.add_argument("--peak", type=float, default=None,
                    help="peak GFLOP/s per thread for the %%peak column (default: the float32 "
                    "FMA peak measured at the start of the run, at each thread count)")
    ap.add_argument("--conv-algo", default="auto",
                    choices=["auto", "implicit", "winograd", "im2col"],
                    help="conv2d algorithm of the cython backend (default auto; winograd runs "
                    "3x3 stride-1 layers only, the others take auto's choice)")
    args = ap.parse_args(argv)
    threads = tuple(int(t) for t in args.threads.split(","))
    if args.plot:                      # say so now, not after the whole run
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            ap.error("--plot needs matplotlib: pip install matplotlib (or 'tinygrad_lite[bench]')")
    from tinygrad_lite import backends

    from . import machine as machine_mod

    env = Env()
    info = versions(env)
    info["backends"] = {k: v[1] for k, v in backends.available().items()}
    from tinygrad_lite.backends.cython_backend import _cpu

    if _cpu is not None:
        _cpu.set_conv_algo(args.conv_algo)
    info["conv_algo"] = args.conv_algo
    print(f"# kernel benchmark  threads={threads}  quick={args.quick}  torch={info['torch']}  "
          f"conv_algo={args.conv_algo}", flush=True)
    mach = machine_mod.measure(threads, quick=args.quick, blas=env.blas)
    for line in machine_mod.header(mach):
        print(f"# {line}", flush=True)
    if args.peak:
        peak = {t: args.peak * t for t in threads}
        print(f"# %peak against --peak {args.peak:g} GFLOP/s per thread (override)")
    else:
        peak = {t: machine_mod.peak_at(mach, t) for t in threads}
        what = "measured" if mach["source"] == "kernels" else "NumPy-estimated"
        print(f"# %peak against the {what} float32 peak at each thread count")
    if args.clock == "thread":
        print("# 1-thread samples timed on the calling thread's CPU clock (--clock thread)")
    results = run(quick=args.quick, threads=threads, peak=peak,
                  log=lambda s: print(s, flush=True), only=args.only, env=env, clock=args.clock)
    table = markdown(results, threads)
    print()
    print(table)
    if args.md:
        with open(args.md, "w") as f:
            f.write(table + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"format": "tinygrad_lite.bench.kernels/2", "info": info,
                       "machine": mach, "threads": threads, "quick": args.quick,
                       "clock": args.clock,
                       "peak_source": "--peak" if args.peak else mach["source"],
                       "peak_gflops_used": peak, "results": results}, f, indent=1, default=str)
    if args.plot:
        plot(results, threads, args.plot, machine=mach, torch_version=info["torch"])
    bad = [r for r in results if not r["ok"]]
    if bad:
        print(f"\n{len(bad)} WRONG results: " + ", ".join(
            f"{r['impl']}{r['threads']} {r['op']} {r['case']}" for r in bad), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
