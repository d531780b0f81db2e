"""The int8 GEMM of kernels/cpu/quant.pxi (``_cpu.qgemm_s8s8s32``) against its references,
measured interleaved in one run (not part of the tests):

* NumPy's integer matmul on int32 copies (the fallback when the kernels are off; same result);
* float32 ``numpy.matmul`` (OpenBLAS sgemm) on the same shape, the float layer's cost.

Also an end-to-end row: ``predict`` of the digits-sized MLP (64-128-64-10) in float32 and after
``quantize.quantize_model``, interleaved. Every result is checked before timing (int32 equality
with NumPy; the int8 model's argmax agreement). Medians of ``--rounds`` rounds, each the best of
``--reps`` calls; ratios are reference time / kernel time (> 1: the kernel is faster).

    python benchmarks/quant.py [--rounds 7] [--reps 5] [--threads 1]
"""

import argparse
import statistics
import time

import numpy as np

SHAPES = [(64, 784, 128), (256, 256, 256), (1024, 64, 128), (64, 1152, 64)]


def _best(fn, reps):
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import tinygrad_lite as tl
    from tinygrad_lite import quantize

    tl.set_num_threads(args.threads)
    kern = quantize._kernel()
    if kern is None:
        raise SystemExit("the Cython kernels are not loaded (build them, unset "
                         "TINYGRAD_LITE_DISABLE_KERNELS)")
    try:
        from threadpoolctl import threadpool_limits
        limit = threadpool_limits(args.threads)
    except ImportError:
        limit = None
    rng = np.random.default_rng(0)
    print(f"threads={args.threads}")
    print(f"{'m x k x n':>18} | {'int8 kernel':>11} | {'numpy int32':>11} | {'numpy f32':>10} "
          f"| {'vs int32':>8} | {'vs f32':>7} | GOPS")
    for m, k, n in SHAPES:
        a = rng.integers(-127, 128, (m, k), dtype=np.int8)
        w = rng.integers(-127, 128, (n, k), dtype=np.int8)
        af, wtf = a.astype(np.float32), np.ascontiguousarray(w.T.astype(np.float32))
        out = np.empty((m, n), np.int32)
        kern(a, w, out, args.threads)
        assert np.array_equal(out, quantize.qgemm_reference(a, w))
        cand = {"kernel": lambda: kern(a, w, out, args.threads),
                "int32": lambda: quantize.qgemm_reference(a, w),
                "f32": lambda: af @ wtf}
        times = {name: [] for name in cand}
        for _ in range(args.rounds):
            for name, fn in cand.items():           # interleaved
                times[name].append(_best(fn, args.reps))
        med = {name: statistics.median(v) for name, v in times.items()}
        print(f"{f'{m}x{k}x{n}':>18} | {med['kernel'] * 1e3:9.3f}ms | {med['int32'] * 1e3:9.3f}ms"
              f" | {med['f32'] * 1e3:8.3f}ms | {med['int32'] / med['kernel']:7.1f}x | "
              f"{med['f32'] / med['kernel']:6.2f}x | {2 * m * k * n / med['kernel'] / 1e9:.1f}")

    from tinygrad_lite.data import StandardScaler, load_digits
    from tinygrad_lite.layers import Dense
    from tinygrad_lite.models import Sequential

    X, _ = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X).astype(np.float32)
    tl.manual_seed(0)
    model = Sequential([Dense(128, activation="relu", input_shape=(64,)),
                        Dense(64, activation="relu"), Dense(10, activation="softmax")])
    model.build((64,))
    q = quantize.quantize_model(model, X[:300])
    agree = (model.predict(X).argmax(1) == q.predict(X).argmax(1)).mean()
    print(f"\ndigits MLP predict, {len(X)} rows (argmax agreement {agree:.3f}):")
    for rows in (1, len(X)):
        xb = X[:rows]
        cand = {"float32": lambda: model.predict(xb), "int8": lambda: q.predict(xb)}
        times = {name: [] for name in cand}
        for _ in range(args.rounds):
            for name, fn in cand.items():
                times[name].append(_best(fn, args.reps))
        med = {name: statistics.median(v) for name, v in times.items()}
        print(f"  {rows:5d} rows: float32 {med['float32'] * 1e3:.3f} ms, int8 "
              f"{med['int8'] * 1e3:.3f} ms, float32/int8 = {med['float32'] / med['int8']:.2f}x")
    if limit is not None:
        limit.unregister() if hasattr(limit, "unregister") else None


if __name__ == "__main__":
    main()
