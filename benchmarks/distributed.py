"""Data-parallel scaling: 2 ranks x 1 thread against 1 rank x 1 thread (not part of the tests).

The seed MLP (64 -> 128 -> 10, ReLU), global batch 256 (128 per rank on 2 ranks), Adam,
``DistributedDataParallel`` in both runs (on one rank it adds no communication). Each launch
warms up, then times ``--steps`` steps; the rounds alternate 1-rank and 2-rank launches so both
see the same machine load. Reported: samples/s of each, the ratio (scaling; ideal 2.0, target
>= 1.6), and the fraction of the 2-rank step spent waiting for gradient all-reduces. Each run
checks what it timed: the loss went down and (2 ranks) both ranks hold identical weights.
A third launch per round, 1 rank on half the batch, gives the ceiling: with free communication
the 2-rank step is one rank's half-batch step, so step(256) / step(128) bounds the ratio (the
per-step framework overhead does not shrink with the batch).

    python benchmarks/distributed.py [--steps 300] [--rounds 3] [--json out.json]
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GLOBAL_BATCH = 256


def worker(steps, warmup, global_batch):
    import tinygrad_lite as tl
    from tinygrad_lite import Tensor, nn, optim
    from tinygrad_lite import distributed as dist

    dist.init()
    tl.set_num_threads(1)
    r, w = dist.rank(), dist.world_size()
    local = global_batch // w
    rng = np.random.default_rng(0)
    x = rng.standard_normal((GLOBAL_BATCH * 8, 64)).astype(np.float32)
    y = rng.integers(0, 10, GLOBAL_BATCH * 8)
    tl.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    ddp = dist.DistributedDataParallel(model)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    losses, times = [], []
    for s in range(warmup + steps):
        b = s % 8
        lo = b * global_batch + r * local
        dist.barrier() if s == warmup else None
        t0 = time.perf_counter()
        if s == warmup:
            comm0 = ddp.comm_time
        loss = nn.functional.cross_entropy(ddp(Tensor(x[lo:lo + local])), y[lo:lo + local])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if s >= warmup:
            times.append(time.perf_counter() - t0)
        losses.append(float(loss.item()))
    total = float(np.sum(times))
    weights = np.concatenate([p.numpy().ravel() for p in model.parameters()])
    same = all(np.array_equal(a, weights) for a in dist.all_gather(weights))
    res = {"world_size": w, "global_batch": global_batch,
           "step_ms_median": 1e3 * float(np.median(times)),
           "samples_per_s": global_batch * steps / total,
           "comm_fraction": (ddp.comm_time - comm0) / total,
           "loss_first": float(np.mean(losses[:8])), "loss_last": float(np.mean(losses[-8:])),
           "ranks_agree": bool(same)}
    if r == 0:
        print("RESULT " + json.dumps(res), flush=True)


def launch(n, steps, warmup, global_batch=GLOBAL_BATCH):
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    bindir = os.path.dirname(sys.executable)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    out = subprocess.run(["mpiexec", "-n", str(n), sys.executable, os.path.abspath(__file__),
                          "--worker", "--steps", str(steps), "--warmup", str(warmup),
                          "--global-batch", str(global_batch)],
                         env=env, capture_output=True, text=True, timeout=900)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            res = json.loads(line[7:])
            if not res["ranks_agree"] or not res["loss_last"] < res["loss_first"]:
                raise SystemExit(f"benchmark run is wrong: {res}")
            return res
    raise SystemExit(f"mpiexec -n {n} failed (rc {out.returncode}):\n{out.stderr[-3000:]}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--global-batch", type=int, default=GLOBAL_BATCH, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        return worker(a.steps, a.warmup, a.global_batch)
    # "half": 1 rank on half the batch = one rank's compute in the 2-rank run with free
    # communication; t(256) / t(128) is the best ratio this step size allows
    runs = {1: [], 2: [], "half": []}
    for k in range(a.rounds):                      # interleaved: 1, 2, half, 1, 2, half
        for n in (1, 2, "half"):
            runs[n].append(launch(1, a.steps, a.warmup, GLOBAL_BATCH // 2) if n == "half"
                           else launch(n, a.steps, a.warmup))
            label = "1 (batch 128)" if n == "half" else n
            print(f"round {k + 1} ranks={label}: {runs[n][-1]['samples_per_s']:.0f} samples/s, "
                  f"step {runs[n][-1]['step_ms_median']:.3f} ms, comm "
                  f"{100 * runs[n][-1]['comm_fraction']:.1f}%", flush=True)
    ratios = [b["samples_per_s"] / o["samples_per_s"] for o, b in zip(runs[1], runs[2])]
    med_ratios = [o["step_ms_median"] / b["step_ms_median"] for o, b in zip(runs[1], runs[2])]
    ceilings = [o["step_ms_median"] / h["step_ms_median"] for o, h in zip(runs[1], runs["half"])]
    summary = {
        "model": "seed MLP 64-128-10, Adam", "global_batch": GLOBAL_BATCH, "steps": a.steps,
        "one_rank_samples_per_s": float(np.median([r["samples_per_s"] for r in runs[1]])),
        "two_rank_samples_per_s": float(np.median([r["samples_per_s"] for r in runs[2]])),
        "ratio_per_round": ratios, "ratio_median": float(np.median(ratios)),
        "ratio_of_median_steps": float(np.median(med_ratios)),
        "ceiling_t256_over_t128": float(np.median(ceilings)),
        "two_rank_comm_fraction": float(np.median([r["comm_fraction"] for r in runs[2]])),
        "cpu_count": os.cpu_count(), "runs": runs}
    print(f"\n2 ranks x 1 thread vs 1 rank x 1 thread: throughput ratio "
          f"{summary['ratio_median']:.2f}x (per round: "
          f"{', '.join(f'{r:.2f}' for r in ratios)}; target >= 1.6x), "
          f"communication {100 * summary['two_rank_comm_fraction']:.1f}% of the 2-rank step "
          f"(time waiting in the gradient all-reduce, including waiting for the other rank);\n"
          f"ratio of median step times {summary['ratio_of_median_steps']:.2f}x; ceiling for "
          f"this step size (1 rank: step(256) / step(128)) "
          f"{summary['ceiling_t256_over_t128']:.2f}x; {os.cpu_count()} CPUs on this machine, "
          f"load average {os.getloadavg()[0]:.1f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(summary, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
