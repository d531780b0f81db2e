"""Benchmark of the issue-9 nn ops: 1-D/3-D conv and pooling, pooling options, interpolate,
attention -- forward + backward, ours on each CPU backend against PyTorch CPU, one run.

    python -m benchmarks.nn_nd [--quick] [--threads N]

Each case builds the same float32 inputs for every candidate, checks our result (numpy and
cython backends) against PyTorch's before timing (max |diff| printed), warms up, then times the
candidates in rotation (interleaved sample by sample, so a noisy neighbour hits them all alike)
and reports medians. ``torch/ours`` = t_torch / t_ours (above 1: ours is faster). Without torch
only our backends are timed and the ratio column is the numpy backend's time over cython's.
"""

import argparse
import statistics
import time

import numpy as np

import tinygrad_lite as tl
from tinygrad_lite import backends
from tinygrad_lite.nn import functional as F


def _cases(quick):
    """(label, function, input shapes, kwargs); the label names the first input's shape."""
    s = 1 if quick else 2
    cases = [
        ("conv1d", [(16 * s, 32, 256), (64, 32, 5)], dict(padding=2), "-> 64, k5 p2"),
        ("conv3d", [(2 * s, 8, 16, 16, 16), (16, 8, 3, 3, 3)], dict(padding=1),
         "-> 16, k3 p1"),
        ("max_pool1d", [(16 * s, 32, 256)], dict(kernel_size=3, stride=2, padding=1),
         "k3 s2 p1"),
        ("max_pool3d", [(2 * s, 16, 16, 16, 16)], dict(kernel_size=2), "k2"),
        ("avg_pool3d", [(2 * s, 16, 16, 16, 16)],
         dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), "k3 s2 p1 ceil"),
        ("max_pool2d", [(16 * s, 16, 32, 32)],
         dict(kernel_size=3, stride=2, dilation=2, ceil_mode=True), "k3 s2 dil2 ceil"),
        ("interpolate", [(8 * s, 16, 32, 32)],
         dict(size=(64, 64), mode="bilinear", align_corners=False), "bilinear -> 64x64"),
        ("scaled_dot_product_attention", [(8 * s, 8, 128, 32)] * 3, dict(is_causal=True),
         "causal"),
    ]
    return [(f"{fn.replace('scaled_dot_product_attention', 'sdpa')} "
             f"{'x'.join(map(str, shapes[0]))} {note}", fn, shapes, kw)
            for fn, shapes, kw, note in cases]


def _ours(fn, arrays, kw):
    def run():
        ts = [tl.Tensor(a, requires_grad=True) for a in arrays]
        y = getattr(F, fn)(*ts, **kw)
        (y * y).sum().backward()
        return y.numpy(), [t.grad.numpy() for t in ts]

    return run


def _torch_run(torch, fn, arrays, kw):
    def run():
        ts = [torch.tensor(a, requires_grad=True) for a in arrays]
        y = getattr(torch.nn.functional, fn)(*ts, **kw)
        (y * y).sum().backward()
        return y.detach().numpy(), [t.grad.numpy() for t in ts]

    return run


def _with_backend(name, run):
    def wrapped():
        with backends.use(name):
            return run()

    return wrapped


def _diff(a, b):
    """Largest |ours - ref| relative to the largest |ref|, over the output and every gradient
    (float32 sums of thousands of terms differ in the last bits; a wrong rule differs by O(1))."""
    return max(float(np.max(np.abs(x - y)) / max(np.max(np.abs(y)), 1e-30)) for x, y in
               zip([a[0]] + a[1], [b[0]] + b[1]))


def run(quick=False, threads=1, log=print):
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        torch = None
    from tinygrad_lite.backends import threads as our_threads

    our_threads.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    except ImportError:
        pass
    names = [n for n in ("numpy", "cython") if n in backends.names()]
    rng = np.random.default_rng(0)
    budget = 0.6 if quick else 2.0
    header = f"{'case':44s} " + " ".join(f"{n + ' ms':>10s}" for n in names)
    header += f" {'torch ms':>10s} " + " ".join(f"{'torch/' + n:>13s}" for n in names) \
        if torch else ""
    log(header)
    results = []
    for label, fn, shapes, kw in _cases(quick):
        arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        cands = {n: _with_backend(n, _ours(fn, arrays, kw)) for n in names}
        if torch is not None:
            cands["torch"] = _torch_run(torch, fn, arrays, kw)
        ref = cands["torch"]() if torch is not None else cands[names[0]]()
        errs = {n: _diff(cands[n](), ref) for n in names}
        for n, e in errs.items():
            if e > 1e-3:
                raise AssertionError(f"{label}: {n} differs from the reference by {e:.2e}")
        samples = {n: [] for n in cands}
        t_end = time.perf_counter() + budget * len(cands)
        while time.perf_counter() < t_end or min(len(v) for v in samples.values()) < 3:
            for n, c in cands.items():
                t0 = time.perf_counter()
                c()
                samples[n].append(time.perf_counter() - t0)
        med = {n: statistics.median(v) * 1e3 for n, v in samples.items()}
        line = f"{label:44s} " + " ".join(f"{med[n]:10.2f}" for n in names)
        if torch is not None:
            line += f" {med['torch']:10.2f} " + " ".join(
                f"{med['torch'] / med[n]:13.2f}" for n in names)
        log(line + f"   (max rel diff {max(errs.values()):.1e})")
        results.append(dict(case=label, ms=med, max_rel_diff=errs))
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.nn_nd",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller shapes, shorter timing")
    ap.add_argument("--threads", type=int, default=1, help="threads for every runtime")
    args = ap.parse_args(argv)
    run(args.quick, args.threads)


if __name__ == "__main__":
    main()
