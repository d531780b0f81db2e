"""Recurrent training-step benchmark: the fused LSTM/GRU (one Function per layer and direction)
against PyTorch eager.

    python -m tinygrad_lite.bench.recurrent [--repeats 15] [--threads 1,2] [--backend cython]
                                            [--only lstm,gru] [--unfused] [--json PATH]

The step (the issue's shapes): x (T=50, B=32, 16) -> {LSTM, GRU}(16, 64) -> last step ->
Linear(64, 1) -> MSE against y (32, 1) -> backward -> Adam step. Candidates run interleaved in
one process (each round times every candidate once); the medians and the best rounds are
compared (on a shared, loaded machine the best of N is the steadier of the two):

* ``tinygrad_lite``: ``nn.LSTM`` / ``nn.GRU`` (the fused path);
* ``torch``: ``torch.nn.LSTM`` / ``GRU`` eager with the same weights (when torch is installed);
* ``unfused`` (``--unfused``): the same model through the Tensor-op reference formulation
  (``nn.functional.lstm(..., fused=False)``), what every step cost before the fused Functions.

Before anything is timed every candidate starts from the same weights and their losses after
one and after two Adam steps must agree (rtol 1e-4). Ratios above 1 mean ours is faster.
"""

import argparse
import json
import statistics
import sys
import time

import numpy as np

try:
    import torch
except ImportError:  # the comparison peer is optional
    torch = None

import tinygrad_lite as tl
from tinygrad_lite import backends, nn
from tinygrad_lite.nn import _recurrent_core as core
from tinygrad_lite.optim import Adam

T, B, F, H = 50, 32, 16, 64


def rotate(cands, repeats):
    """Interleave candidates; returns (median, best) seconds per call of each."""
    samples = {k: [] for k in cands}
    for fn in cands.values():
        fn()                                          # warm-up
    for _ in range(repeats):
        for k, fn in cands.items():
            t = time.perf_counter()
            fn()
            samples[k].append(time.perf_counter() - t)
    return {k: (statistics.median(v), min(v)) for k, v in samples.items()}


class _Unfused(nn.Module):
    """The same recurrent layer, run through the Tensor-op reference formulation."""

    def __init__(self, rec):
        super().__init__()
        self.rec = rec

    def forward(self, x):
        r = self.rec
        weights = [r._params(sfx) for sfx in r._suffixes(0)]
        return core.recurrent(r._kind, x, None, weights, fused=False, **r._core_kwargs())


def _ours(kind, x0, y0, fused=True):
    tl.manual_seed(0)
    rec = (nn.LSTM if kind == "lstm" else nn.GRU)(F, H)
    head = nn.Linear(H, 1)
    params = list(rec.parameters()) + list(head.parameters())
    opt = Adam(params, lr=1e-3)
    run = rec if fused else _Unfused(rec)
    x, y = tl.Tensor(x0), tl.Tensor(y0)

    def step():
        opt.zero_grad()
        out, _ = run(x)
        loss = ((head(out[T - 1]) - y) ** 2).mean()
        loss.backward()
        opt.step()
        return loss.item()

    state = {**{f"rec.{k}": v for k, v in rec.state_dict().items()},
             **{f"head.{k}": v for k, v in head.state_dict().items()}}
    return step, state


def _theirs(kind, x0, y0, state):
    rec = (torch.nn.LSTM if kind == "lstm" else torch.nn.GRU)(F, H)
    head = torch.nn.Linear(H, 1)
    rec.load_state_dict({k[4:]: torch.tensor(np.asarray(v)) for k, v in state.items()
                         if k.startswith("rec.")})
    head.load_state_dict({k[5:]: torch.tensor(np.asarray(v)) for k, v in state.items()
                          if k.startswith("head.")})
    opt = torch.optim.Adam(list(rec.parameters()) + list(head.parameters()), lr=1e-3)
    x, y = torch.tensor(x0), torch.tensor(y0)

    def step():
        opt.zero_grad()
        out, _ = rec(x)
        loss = ((head(out[T - 1]) - y) ** 2).mean()
        loss.backward()
        opt.step()
        return loss.item()

    return step


def case(kind, repeats, unfused):
    rng = np.random.default_rng(3)
    x0 = rng.standard_normal((T, B, F)).astype(np.float32)
    y0 = rng.standard_normal((B, 1)).astype(np.float32)
    ours, state = _ours(kind, x0, y0)
    cands = {"tinygrad_lite": ours}
    checks = {}
    if torch is not None:
        cands["torch"] = _theirs(kind, x0, y0, state)
    if unfused:
        cands["unfused"], _ = _ours(kind, x0, y0, fused=False)
    for k, fn in cands.items():           # losses after one and two steps must agree
        checks[k] = (fn(), fn())
    for k, v in checks.items():
        np.testing.assert_allclose(v, checks["tinygrad_lite"], rtol=1e-4,
                                   err_msg=f"{kind}: loss of {k} differs from tinygrad_lite")
    t = rotate(cands, repeats)
    return {"case": f"{kind.upper()} train step T={T} B={B} in={F} H={H}", "unit": "ms/step",
            "losses": checks, "times": {k: v[0] * 1e3 for k, v in t.items()},
            "best": {k: v[1] * 1e3 for k, v in t.items()}}


def report(res):
    """Median and best of the interleaved rounds; ratios > 1: ours faster."""
    med, best = res["times"], res["best"]
    lines = [f"{res['case']}  [{res['unit']}, median / best]"]
    for k in med:
        ratio = "" if k == "tinygrad_lite" else \
            (f"   ours vs {k}: {med[k] / med['tinygrad_lite']:.2f}x median, "
             f"{best[k] / best['tinygrad_lite']:.2f}x best")
        lines.append(f"  {k:<14} {med[k]:9.2f} / {best[k]:7.2f}{ratio}")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--backend", default=None, help="tinygrad_lite backend (default: best built)")
    ap.add_argument("--only", default="lstm,gru")
    ap.add_argument("--unfused", action="store_true", help="also time the unfused reference")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.backend:
        backends.use(args.backend)
    print(f"backend: {backends.current().name}; torch: "
          f"{torch.__version__ if torch is not None else 'not installed'}")
    results = []
    for threads in (int(n) for n in args.threads.split(",")):
        tl.set_num_threads(threads)
        if torch is not None:
            torch.set_num_threads(threads)
        print(f"-- {threads} thread(s)")
        for kind in args.only.split(","):
            res = case(kind, args.repeats, args.unfused)
            res["threads"] = threads
            results.append(res)
            print(report(res), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"backend": backends.current().name, "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
