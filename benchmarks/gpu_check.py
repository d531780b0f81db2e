"""The GPU half of benchmarks/gpu_check.sh: timings against cuBLAS / cuDNN and one training
epoch on the GPU against the CPU, all measured in this run. Prints a short table last; with
``--json PATH`` also writes every number.

    python -m benchmarks.gpu_check [--json PATH] [--quick]

- sgemm: our ``sgemm_128x128`` (backend ``cupy``) vs ``cupy.matmul`` (cuBLAS, CUPY_TF32 unset so
  full fp32) at n = 1024, 2048, 4096, 8192; the two are timed alternately with CUDA events
  (median of the repeats), and our result is compared with cuBLAS's.
- conv2d forward + both backward passes: ours vs cuDNN through PyTorch (TF32 off) on the three
  reference layers of benchmarks/kernels.py and one large layer; outputs compared with torch's.
- training: the seed MLP (784-128-10, Adam) for one epoch at batch 1024 on MNIST-shaped synthetic
  data, and the CLI's small CNN for one epoch on digits, on the GPU and on the CPU: the epoch
  losses must agree (float32 sums in a different order: rtol 1e-3) and the GPU epoch time is
  reported against the CPU's.
Exits 2 (saying why) without a GPU; 1 when a check fails.
"""

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

from benchmarks.kernels import CONVS

LARGE_CONV = ("L: 64x128x56x56 -> 128, 3x3 p1", 64, 128, 56, 56, 128, 3, 1)


def _gpu_events(xp, fn, reps):
    """Milliseconds per call of ``fn`` for each of ``reps`` calls (CUDA events)."""
    start, stop = xp.cuda.Event(), xp.cuda.Event()
    out = []
    for _ in range(reps):
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        out.append(xp.cuda.get_elapsed_time(start, stop))
    return out


def _interleaved(xp, cands, reps):
    """{name: median ms}: the candidates timed one call each in turn, ``reps`` rounds."""
    for fn in cands.values():   # warm-up (compiles, plans, allocations)
        fn()
    xp.cuda.Device().synchronize()
    samples = {k: [] for k in cands}
    for _ in range(reps):
        for k, fn in cands.items():
            samples[k] += _gpu_events(xp, fn, 1)
    return {k: statistics.median(v) for k, v in samples.items()}


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def bench_sgemm(cp, ours, sizes, reps):
    rows = []
    for n in sizes:
        a = cp.random.standard_normal((n, n), dtype=cp.float32)
        b = cp.random.standard_normal((n, n), dtype=cp.float32)
        c_ours = cp.empty((n, n), cp.float32)
        c_ref = cp.empty((n, n), cp.float32)
        t = _interleaved(cp, {"ours": lambda: ours.matmul(a, b, out=c_ours),
                              "cublas": lambda: cp.matmul(a, b, out=c_ref)}, reps)
        err = _rel(c_ours.get(), c_ref.get())
        flops = 2.0 * n ** 3
        rows.append({"what": f"sgemm {n}", "ours_ms": t["ours"], "ref_ms": t["cublas"],
                     "ratio": t["cublas"] / t["ours"], "ours_tflops": flops / t["ours"] / 1e9,
                     "ref_tflops": flops / t["cublas"] / 1e9, "rel_err": err,
                     "ok": err < 1e-4})
        del a, b, c_ours, c_ref
        cp.get_default_memory_pool().free_all_blocks()
    return rows


def bench_conv(cp, ours, torch, layers, reps):
    F = torch.nn.functional
    rows = []
    for label, n, c, h, w, o, k, p in layers:
        rng = np.random.default_rng(1)
        x = rng.standard_normal((n, c, h, w)).astype(np.float32)
        wt = (rng.standard_normal((o, c, k, k)) / np.sqrt(c * k * k)).astype(np.float32)
        geo = ((1, 1), (p, p), (1, 1), 1)
        dx, dw = cp.asarray(x), cp.asarray(wt)
        y0 = ours.conv2d(dx, dw, *geo)
        gy = cp.asarray(rng.standard_normal(y0.shape).astype(np.float32))
        tx = torch.tensor(x, device="cuda", requires_grad=True)
        tw = torch.tensor(wt, device="cuda", requires_grad=True)
        tgy = torch.tensor(gy.get(), device="cuda")
        res = {}

        def mine():
            res["ours"] = (ours.conv2d(dx, dw, *geo),
                           ours.conv2d_backward_input(gy, dw, x.shape, *geo),
                           ours.conv2d_backward_weight(gy, dx, wt.shape, *geo))

        def cudnn():
            y = F.conv2d(tx, tw, padding=p)
            res["torch"] = (y,) + torch.autograd.grad(y, (tx, tw), tgy)

        # torch runs on its own stream API; synchronize both sides inside the timed call
        def cudnn_sync():
            cudnn()
            torch.cuda.synchronize()

        t = _interleaved(cp, {"ours": mine, "cudnn": cudnn_sync}, reps)
        err = max(_rel(a.get(), b.detach().cpu().numpy())
                  for a, b in zip(res["ours"], res["torch"]))
        flops = 3 * 2.0 * y0.size * c * k * k
        rows.append({"what": f"conv fwd+bwd {label}", "ours_ms": t["ours"], "ref_ms": t["cudnn"],
                     "ratio": t["cudnn"] / t["ours"], "ours_tflops": flops / t["ours"] / 1e9,
                     "ref_tflops": flops / t["cudnn"] / 1e9, "rel_err": err, "ok": err < 1e-3})
        del dx, dw, gy, tx, tw, tgy, res
        cp.get_default_memory_pool().free_all_blocks()
        torch.cuda.empty_cache()
    return rows


def _fit(model_fn, X, y, device, batch, epochs=1):
    import tinygrad_lite as tl

    tl.manual_seed(0)
    m = model_fn()
    m.build()
    if device != "cpu":
        m.to(device)
    opt = tl.optim.Adam(list(m.parameters()), lr=1e-3)
    m.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    t0 = time.perf_counter()
    h = m.fit(X, y, epochs=epochs, batch_size=batch, seed=0, verbose=0)
    return time.perf_counter() - t0, h.history["loss"][-1]


def bench_training(quick):
    from tinygrad_lite.cli import _build_model
    from tinygrad_lite.data import MinMaxScaler, load_digits
    from tinygrad_lite.layers import Dense
    from tinygrad_lite.models import Sequential

    rows = []
    rng = np.random.default_rng(2)
    n = 12000 if quick else 60000
    X = rng.random((n, 784), dtype=np.float32)
    y = (X @ rng.standard_normal((784, 10)).astype(np.float32)).argmax(axis=1).astype(np.int64)

    def mlp():
        return Sequential([Dense(128, activation="relu", input_shape=(784,)),
                           Dense(10, activation="softmax")])

    _fit(mlp, X[:2048], y[:2048], "cuda", 1024)          # warm-up: kernel compiles, pools
    g_t, g_loss = _fit(mlp, X, y, "cuda", 1024)
    c_t, c_loss = _fit(mlp, X, y, "cpu", 1024)
    rows.append({"what": f"seed MLP epoch (n={n}, batch 1024)", "gpu_s": g_t, "cpu_s": c_t,
                 "speedup": c_t / g_t, "gpu_loss": g_loss, "cpu_loss": c_loss,
                 "ok": abs(g_loss - c_loss) <= 1e-3 * abs(c_loss)})
    Xd, yd = load_digits(return_X_y=True)
    Xd = MinMaxScaler().fit(Xd).transform(Xd).astype(np.float32)

    def cnn():
        return _build_model("cnn", 64, (8, 8), 10)

    _fit(cnn, Xd[:128], yd[:128], "cuda", 64)
    g_t, g_loss = _fit(cnn, Xd, yd, "cuda", 64)
    c_t, c_loss = _fit(cnn, Xd, yd, "cpu", 64)
    rows.append({"what": "small CNN epoch (digits, batch 64)", "gpu_s": g_t, "cpu_s": c_t,
                 "speedup": c_t / g_t, "gpu_loss": g_loss, "cpu_loss": c_loss,
                 "ok": abs(g_loss - c_loss) <= 1e-3 * abs(c_loss)})
    return rows


def table(res):
    lines = [f"{'check':<40} {'ours':>10} {'ref':>10} {'ours/ref':>9} {'err':>9}  ok"]
    for r in res["sgemm"] + res["conv"]:
        lines.append(f"{r['what']:<40} {r['ours_tflops']:>7.1f} TF {r['ref_tflops']:>7.1f} TF "
                     f"{r['ratio']:>8.2f}x {r['rel_err']:>9.1e}  {'yes' if r['ok'] else 'NO'}")
    lines.append(f"{'training':<40} {'gpu s':>10} {'cpu s':>10} {'cpu/gpu':>9} {'loss gpu/cpu':>14}")
    for r in res["training"]:
        lines.append(f"{r['what']:<40} {r['gpu_s']:>10.2f} {r['cpu_s']:>10.2f} "
                     f"{r['speedup']:>8.2f}x {r['gpu_loss']:.5f}/{r['cpu_loss']:.5f}  "
                     f"{'yes' if r['ok'] else 'NO'}")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    args = ap.parse_args(argv)
    from tinygrad_lite import backends, cuda

    reason = cuda.unavailable_reason()
    if reason:
        print(f"gpu_check: no GPU run: {reason}")
        return 2
    import cupy as cp

    if os.environ.get("CUPY_TF32", "0") != "0":
        print("gpu_check: CUPY_TF32 is set; unset it so cuBLAS runs full fp32")
        return 2
    ours = backends.get("cupy")
    info = {"device": backends.get("cupy").describe(), "cupy": cp.__version__}
    res = {"info": info}
    sizes = [1024, 2048] if args.quick else [1024, 2048, 4096, 8192]
    res["sgemm"] = bench_sgemm(cp, ours, sizes, reps=5 if args.quick else 9)
    try:
        import torch

        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        info["torch"] = torch.__version__
        info["cudnn"] = torch.backends.cudnn.version()
        layers = [tuple(c) for c in CONVS] + [LARGE_CONV]
        res["conv"] = bench_conv(cp, ours, torch, layers, reps=3 if args.quick else 7)
    except ImportError as e:
        print(f"gpu_check: torch unavailable, no cuDNN comparison ({e})")
        res["conv"] = []
    res["training"] = bench_training(args.quick)
    ok = all(r["ok"] for part in ("sgemm", "conv", "training") for r in res[part])
    res["ok"] = ok
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2, default=str)
    print(f"device: {info['device']}")
    print(table(res))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
