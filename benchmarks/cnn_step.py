"""The small CNN's training step against PyTorch eager, timed on the thread's CPU clock.

    python -m benchmarks.cnn_step [--threads 1] [--rounds 40] [--profile]

The case of ``benchmarks.training --only cnn`` (batch 64 of 1x28x28, Conv2d(1, 8, 3, padding=1),
ReLU, MaxPool2d(2), Flatten, Linear(1568, 10), cross-entropy, Adam; zero_grad, forward,
backward, step, loss.item()), both from the same weights, losses checked equal first. Blocks of
10 steps alternate between the two (the order flips every round); the table prints medians and
the ratio. With one thread the clock is ``time.thread_time``: on a shared machine it leaves out
the time other processes held the core, which the wall clock of ``benchmarks.training`` counts
against whichever candidate was running (more threads use the wall clock). It also prints the
page faults per step of each (a fresh large array costs one per 4 KiB page when glibc hands it
new pages), and with ``--profile`` where our step spends its time (cProfile, thread clock).

Not part of the test run: it times things, it asserts nothing about speed.
"""

import argparse
import resource
import sys
import time

import numpy as np


def build(threads):
    import torch

    import tinygrad_lite as tl

    tl.set_num_threads(threads)
    torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads, "blas")
    except ImportError:
        pass
    from tinygrad_lite.bench.training import cnn_steps

    return cnn_steps(torch)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.cnn_step",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args(argv)
    try:
        ours, theirs = build(args.threads)
    except ImportError as e:
        print(f"cnn_step needs PyTorch as the reference: {e}")
        return 1
    for _ in range(20):
        ours()
        theirs()
    clock = time.thread_time if args.threads == 1 else time.perf_counter
    times = {"tinygrad_lite": [], "torch": []}
    pair = (("tinygrad_lite", ours), ("torch", theirs))
    for r in range(args.rounds):
        for name, f in (pair if r % 2 else pair[::-1]):
            t = clock()
            for _ in range(10):
                f()
            times[name].append((clock() - t) / 10 * 1e3)
    o, t = np.median(times["tinygrad_lite"]), np.median(times["torch"])
    which = "thread CPU" if args.threads == 1 else "wall"
    print(f"small CNN train step, {args.threads} thread(s), {which} clock, median ms/step")
    print(f"  tinygrad_lite {o:8.2f}")
    print(f"  torch         {t:8.2f}   ours vs torch: {t / o:.2f}x (above 1: ours faster)")
    for name, f in pair:
        r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(50):
            f()
        flt = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0) / 50
        print(f"  {name}: {flt:.1f} page faults per step")
    if args.profile:
        import cProfile
        import pstats

        pr, n = cProfile.Profile(time.thread_time), 200
        for _ in range(n):
            pr.enable()
            ours()
            pr.disable()
            theirs()       # keep the process in the same state as the timed rounds
        stats = pstats.Stats(pr).stats
        rows = sorted(((v[2], v[0], k) for k, v in stats.items()), reverse=True)[:12]
        total = max(v[3] for v in stats.values())
        print(f"our step under cProfile (thread clock, inflated by it): {total / n * 1e3:.2f} ms")
        for own, calls, (f, line, name) in rows:
            print(f"  {own / n * 1e6:7.0f} us  {calls // n:3d}x  "
                  f"{f.split('tinygrad_lite/')[-1]}:{line}({name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
