"""The review's zip bomb at full size: how long ``load_model`` takes to refuse it, and its peak RSS.

    python -m benchmarks.zip_bomb [--gib 1.9] [--reference-path /path/to/other/checkout]

Builds a ~2 MB ``.npz`` holding 1.9 GiB of deflated zeros (one float64 member, 1000:1), then loads
it in fresh subprocesses (peak RSS from ``resource.getrusage``, minus the RSS after imports) and
prints seconds and MB over the baseline for this checkout and, with ``--reference-path``, for
another checkout (e.g. the code before the fix), run alternately.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

_PROBE = """
import resource, sys, time
import tinygrad_lite.io as io
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
from tinygrad_lite import models  # noqa: F401  (imported by load_model; not part of the time)
t = time.perf_counter()
try:
    io.load_model(sys.argv[1])
    outcome = "LOADED"
except Exception as e:
    outcome = type(e).__name__ + ": " + str(e)[:90]
dt = time.perf_counter() - t
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) // 1024, round(dt, 3), outcome)
"""


def build(path, n_bytes):
    header = {"descr": "<f8", "fortran_order": False, "shape": (n_bytes // 8,)}
    chunk = bytes(2**24)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("weights.0.kernel.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_2_0(f, header)
            left = n_bytes
            while left > 0:
                f.write(chunk[:min(left, len(chunk))])
                left -= len(chunk)
        zf.writestr("__metadata__.npy", b"")


def probe(root, path):
    env = {**os.environ, "PYTHONPATH": root}
    r = subprocess.run([sys.executable, "-c", _PROBE, path], capture_output=True, text=True,
                       env=env, timeout=600, cwd=root)   # cwd too: "-c" puts it first on sys.path
    if r.returncode != 0:
        return f"probe crashed (status {r.returncode}): {r.stderr.strip()[-200:]}"
    rss, seconds, outcome = r.stdout.strip().split(" ", 2)
    return f"{float(seconds):8.3f} s  {int(rss):6d} MB over baseline  {outcome}"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gib", type=float, default=1.9)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--reference-path", help="another checkout to compare (e.g. before the fix)")
    args = p.parse_args(argv)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bomb.npz")
        build(path, int(args.gib * 2**30))
        print(f"bomb: {os.path.getsize(path) / 1e6:.2f} MB on disk, {args.gib} GiB inflated")
        for _ in range(args.repeats):
            print(f"this checkout: {probe(here, path)}")
            if args.reference_path:
                print(f"reference:     {probe(args.reference_path, path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
