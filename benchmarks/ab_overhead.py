"""Per-op framework overhead of two checkouts, A/B, in interleaved subprocess rounds.

    python -m benchmarks.ab_overhead --a . --b /path/to/other/checkout [--rounds 5]

Each round runs, for A then B, a fresh process that times ``(a * b + a).sum().backward()`` on 3x3
float32 tensors (three recorded ops and their backward: pure framework cost) and reports the best
of 7 repeats of 5,000 steps. Prints each side's median over the rounds and the ratio A/B, so a
change to the hot path (Function.apply, the backward walk, the backend lookup) shows up as a
ratio above 1.
"""

import argparse
import os
import statistics
import subprocess
import sys

_CODE = r"""
import time
import numpy as np
import tinygrad_lite as tl
a = tl.Tensor(np.ones((3, 3), np.float32), requires_grad=True)
b = tl.Tensor(np.ones((3, 3), np.float32), requires_grad=True)
for _ in range(2000):
    (a * b + a).sum().backward()
assert float(a.grad.data[0, 0]) == 2000 * 2.0   # checks what is timed: d/da (a*b + a) = b + 1
best = []
for _ in range(7):
    t = time.perf_counter()
    for _ in range(5000):
        (a * b + a).sum().backward()
    best.append((time.perf_counter() - t) / 5000 * 1e6)
print(min(best))
"""


def run(root):
    root = os.path.abspath(root)
    r = subprocess.run([sys.executable, "-c", _CODE], capture_output=True, text=True, cwd=root,
                       env={**os.environ, "PYTHONPATH": root}, timeout=600)
    if r.returncode:
        raise SystemExit(f"{root}: {r.stderr[-500:]}")
    return float(r.stdout)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--a", default=".")
    p.add_argument("--b", required=True)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    res = {"A": [], "B": []}
    for _ in range(args.rounds):
        res["A"].append(run(args.a))
        res["B"].append(run(args.b))
    for k, path in (("A", args.a), ("B", args.b)):
        print(f"{k} ({path}): median {statistics.median(res[k]):.2f} us/step, rounds "
              f"{[round(v, 2) for v in res[k]]}")
    print(f"ratio A/B: {statistics.median(res['A']) / statistics.median(res['B']):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
