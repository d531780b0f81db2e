"""Kernel benchmark matrix: ops x shapes x implementations, interleaved, checked, with ratios.

    python -m benchmarks.kernels [--quick] [--threads 1,2] [--only SUBSTR,...] [--json PATH]
                                 [--plot PATH] [--md PATH]

Implementations: the numpy reference backend (OpenBLAS), our cython kernels, and PyTorch CPU when
it is installed -- each at every thread count asked for (OpenBLAS, our OpenMP and torch all set to
the same count). Every ratio compares implementations at the same thread count, measured in one
run: ``vs_numpy = t_numpy / t_ours`` (above 1: ours is faster), same for torch.

Method: each candidate is warmed up. At 1 thread the candidates of one case are timed in rotation
(interleaved sample by sample, so a noisy neighbour hits them all alike). With more threads they
are timed in rotated blocks after a 0.5 s pause (``_time_blocks``): on two cores, the worker
threads one runtime leaves spinning after its call would otherwise steal a core from the next
one's parallel region. We report the median (and the best) of the samples. Every result is
checked against a float64 NumPy computation before
it is timed. GFLOP/s count 2 flops per multiply-add; "% peak" is against --peak GFLOP/s per
thread (default 147: the measured AVX-512 fp32 FMA peak of one core of the CI machine, see
shared/KERNELS.md).
"""

import argparse
import json
import platform
import statistics
import sys
import time

import numpy as np

PEAK_PER_CORE = 147.0
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
        from threadpoolctl import ThreadpoolController

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

    return ours, torch_fn, (want,), 2.0 * m * n * k


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
    if backward:
        want = (y, ref.conv2d_backward_input(gy.astype(np.float64), w64, x.shape, *geo),
                ref.conv2d_backward_weight(gy.astype(np.float64), x64, wt.shape, *geo))
        flops *= 3
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

    return ours, torch_fn, want, flops


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

    return ours, torch_fn, want, None


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


def _time_case(cands, env, budget_s, min_samples=5, max_samples=60):
    """cands: {(impl, threads): fn}; returns {(impl, threads): [sample seconds per call]}."""
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
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            samples[key].append((time.perf_counter() - t0) / reps)
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


def run(quick=False, threads=(1, 2), peak=PEAK_PER_CORE, log=print, only=None):
    from tinygrad_lite import backends

    env = Env()
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
        ours, torch_fn, want, flops = make()
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
            timer = _time_case if t == 1 else _time_blocks
            samples.update(timer(group, env, budget))
        for key, s in samples.items():
            r = rows[key]
            r["median_s"] = statistics.median(s)
            r["best_s"] = min(s)
            r["samples"] = len(s)
            r["gflops"] = flops / r["median_s"] / 1e9 if flops else None
            r["pct_peak"] = 100 * r["gflops"] / (peak * key[1]) if flops else None
        for key, r in rows.items():
            for ref in ("numpy", "torch", "cublas"):
                other = rows.get((ref, key[1]))
                r[f"vs_{ref}"] = other["median_s"] / r["median_s"] if other else None
            results.append(r)
        log(_line(rows, threads))
    return results


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


def plot(results, threads, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cy = [r for r in results if r["impl"] == "cython"]
    labels = []
    for r in cy:
        if f"{r['op']}: {r['case']}" not in labels:
            labels.append(f"{r['op']}: {r['case']}")
    fig, axes = plt.subplots(1, 2, figsize=(14, 0.32 * len(labels) + 2), sharey=True)
    for ax, ref in zip(axes, ("numpy", "torch")):
        width = 0.8 / len(threads)
        for i, t in enumerate(threads):
            vals = {f"{r['op']}: {r['case']}": r[f"vs_{ref}"] for r in cy if r["threads"] == t}
            ys = np.arange(len(labels)) + i * width
            ax.barh(ys, [vals.get(lbl) or 0 for lbl in labels], height=width,
                    label=f"{t} thread(s)")
        ax.axvline(1.0, color="k", lw=0.8)
        ax.set_title(f"cython speed vs {ref} (t_{ref} / t_cython, same threads)")
        ax.set_yticks(np.arange(len(labels)) + 0.4 - width / 2)
        ax.set_yticklabels(labels, fontsize=7)
        ax.invert_yaxis()
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.kernels", description=__doc__.split(
        "\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller shapes, shorter timing")
    ap.add_argument("--threads", default="1,2", help="thread counts, comma separated (default 1,2)")
    ap.add_argument("--json", help="write every result (with samples count, errors) as JSON")
    ap.add_argument("--md", help="write the Markdown table here (it is printed either way)")
    ap.add_argument("--plot", help="write a PNG bar chart of the ratios")
    ap.add_argument("--only", help="run only cases whose 'op case' contains one of these "
                    "comma-separated strings (e.g. 'square,conv2d fwd+bwd')")
    ap.add_argument("--peak", type=float, default=PEAK_PER_CORE,
                    help="peak GFLOP/s per thread for the %%peak column (default 147)")
    args = ap.parse_args(argv)
    threads = tuple(int(t) for t in args.threads.split(","))
    from tinygrad_lite import backends

    info = {"python": sys.version.split()[0], "numpy": np.__version__,
            "machine": platform.processor() or platform.machine(),
            "backends": {k: v[1] for k, v in backends.available().items()}}
    torch = _torch()
    info["torch"] = torch.__version__ if torch else None
    print(f"# kernel benchmark  threads={threads}  quick={args.quick}  torch={info['torch']}",
          flush=True)
    results = run(quick=args.quick, threads=threads, peak=args.peak,
                  log=lambda s: print(s, flush=True), only=args.only)
    table = markdown(results, threads)
    print()
    print(table)
    if args.md:
        with open(args.md, "w") as f:
            f.write(table + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"info": info, "threads": threads, "peak_per_thread": args.peak,
                       "results": results}, f, indent=1, default=str)
    if args.plot:
        plot(results, threads, args.plot)
    bad = [r for r in results if not r["ok"]]
    if bad:
        print(f"\n{len(bad)} WRONG results: " + ", ".join(
            f"{r['impl']}{r['threads']} {r['op']} {r['case']}" for r in bad), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
