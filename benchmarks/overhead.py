"""Framework overhead between the kernels: tiny graphs and the seed MLP's training step.

    python -m benchmarks.overhead [--repeats 9] [--threads 1] [--backend cython]

Every candidate of a case is timed in rotation in the same run (interleaved, so a noisy
neighbour hits them alike); the table prints medians and ratios against each reference.

* ``tiny``: ``(a*b).sum()`` forward + backward on 3x3 float32 tensors (pure overhead):
  tinygrad_lite eager vs PyTorch eager vs NumPy by hand (the same three products, no framework).
* ``mlp``: one training step of the seed MLP 784-128-10 (ReLU, softmax cross-entropy, Adam
  lr 1e-3 eps 1e-7, batch 64): tinygrad_lite eager, tinygrad_lite ``jit`` (captured step),
  PyTorch eager, NumPy by hand (forward, backward and Adam written out: the floor) and JAX
  ``jit`` when JAX is importable. All start from the same weights and see the same batches; their
  losses after 20 steps must agree before anything is timed.

Not part of the test run: it times things, it asserts nothing about speed.
"""

import argparse
import os
import statistics
import sys
import time


def _pin_threads(n):
    # before NumPy / torch / JAX are imported: their thread pools read these at start-up
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[k] = str(n)
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               " --xla_cpu_multi_thread_eigen=false"
                               f" intra_op_parallelism_threads={n}")


def rotate(cands, repeats):
    """Median seconds per call of each candidate; each round times every candidate once."""
    samples = {k: [] for k in cands}
    for fn, inner in cands.values():
        fn(inner)                                      # warm-up
    for _ in range(repeats):
        for k, (fn, inner) in cands.items():
            t = time.perf_counter()
            fn(inner)
            samples[k].append((time.perf_counter() - t) / inner)
    return {k: statistics.median(v) for k, v in samples.items()}


def report(title, unit, times, scale):
    names = list(times)
    print(f"{title}  [{unit}, median]")
    for k in names:
        print(f"  {k:<26} {times[k] * scale:10.2f}")
    first = names[0]
    for ours in (n for n in names if n.startswith("tinygrad_lite")):
        for ref in (n for n in names if not n.startswith("tinygrad_lite")):
            print(f"  {ours} vs {ref}: {times[ref] / times[ours]:.2f}x (above 1: ours faster)")
    if first.startswith("tinygrad_lite") and "tinygrad_lite jit" in times:
        print(f"  jit vs eager: {times[first] / times['tinygrad_lite jit']:.2f}x")
    sys.stdout.flush()


# ------------------------------------------------------------------ tiny ---

def case_tiny(repeats, np, tl, torch):
    rng = np.random.default_rng(0)
    a0, b0 = rng.random((3, 3), dtype=np.float32), rng.random((3, 3), dtype=np.float32)
    a, b = tl.Tensor(a0, requires_grad=True), tl.Tensor(b0, requires_grad=True)

    def ours(n):
        for _ in range(n):
            a.grad = b.grad = None
            (a * b).sum().backward()

    def hand(n):
        for _ in range(n):
            s = (a0 * b0).sum()
            g = np.ones_like(a0)
            ga, gb = g * b0, g * a0
        return s, ga, gb

    cands = {"tinygrad_lite": (ours, 2000)}
    if torch is not None:
        ta, tb = torch.tensor(a0, requires_grad=True), torch.tensor(b0, requires_grad=True)

        def theirs(n):
            for _ in range(n):
                ta.grad = tb.grad = None
                (ta * tb).sum().backward()

        theirs(1)
        cands["torch eager"] = (theirs, 2000)
    cands["numpy by hand"] = (hand, 2000)
    ours(1)
    s, ga, gb = hand(1)
    np.testing.assert_array_equal(a.grad.numpy(), ga)
    np.testing.assert_array_equal(b.grad.numpy(), gb)
    if torch is not None:
        np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy(), rtol=1e-6)
    report("tiny (a*b).sum() forward+backward, 3x3", "us/step", rotate(cands, repeats), 1e6)


# ------------------------------------------------------------------ seed MLP ---

B, LR, EPS = 64, 1e-3, 1e-7


def mlp_data(np, steps):
    rng = np.random.default_rng(1)
    x = rng.random((steps * B, 784), dtype=np.float32)
    y = rng.integers(0, 10, steps * B)
    onehot = np.eye(10, dtype=np.float32)[y]
    lim1, lim2 = np.sqrt(6 / (784 + 128)), np.sqrt(6 / (128 + 10))
    w = (rng.uniform(-lim1, lim1, (784, 128)).astype(np.float32), np.zeros(128, np.float32),
         rng.uniform(-lim2, lim2, (128, 10)).astype(np.float32), np.zeros(10, np.float32))
    return x, y, onehot, w


def make_ours(np, tl, w, use_jit):
    from tinygrad_lite.optim import Adam

    params = [tl.Tensor(p.copy(), requires_grad=True) for p in w]
    opt = Adam(params, lr=LR, eps=EPS)

    def step(xb, tb):
        w1, c1, w2, c2 = params
        h = (xb @ w1 + c1).relu()
        logp = (h @ w2 + c2).log_softmax(axis=1)
        loss = -(logp * tb).sum() * (1.0 / B)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    if use_jit:
        step = tl.jit(step)
    return step


def make_hand(np, w):
    from tinygrad_lite.bench.training import numpy_mlp_step   # the same hand-written floor

    params = [p.copy() for p in w]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    t = [0]

    def step(xb, yb):
        t[0] += 1
        return numpy_mlp_step(params, m, v, t[0], xb, yb, LR, 0.9, 0.999, EPS)

    return step


def make_torch(torch, w):
    params = [torch.tensor(p.copy(), requires_grad=True) for p in w]
    opt = torch.optim.Adam(params, lr=LR, eps=EPS)

    def step(xb, yb):
        w1, c1, w2, c2 = params
        z = torch.relu(xb @ w1 + c1) @ w2 + c2
        loss = torch.nn.functional.cross_entropy(z, yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    return step


def make_jax(w):
    import jax
    import jax.numpy as jnp

    def loss_fn(params, xb, tb):
        w1, c1, w2, c2 = params
        h = jnp.maximum(xb @ w1 + c1, 0)
        logp = jax.nn.log_softmax(h @ w2 + c2, axis=1)
        return -(logp * tb).sum() / B

    @jax.jit
    def update(params, m, v, t, xb, tb):
        loss, grads = jax.value_and_grad(loss_fn)(params, xb, tb)
        b1, b2 = 0.9, 0.999
        m = [b1 * mi + (1 - b1) * g for mi, g in zip(m, grads)]
        v = [b2 * vi + (1 - b2) * g * g for vi, g in zip(v, grads)]
        params = [p - LR * (mi / (1 - b1 ** t)) / (jnp.sqrt(vi / (1 - b2 ** t)) + EPS)
                  for p, mi, vi in zip(params, m, v)]
        return params, m, v, loss

    state = {"p": [jnp.asarray(p) for p in w], "t": 0}
    state["m"] = [jnp.zeros_like(p) for p in state["p"]]
    state["v"] = [jnp.zeros_like(p) for p in state["p"]]

    def step(xb, tb):
        state["t"] += 1
        state["p"], state["m"], state["v"], loss = update(
            state["p"], state["m"], state["v"], float(state["t"]), xb, tb)
        return loss

    return step


def case_mlp(repeats, np, tl, torch):
    nb = 8                                   # cycle over 8 different batches
    x, y, onehot, w = mlp_data(np, nb)
    batches = [(x[i * B:(i + 1) * B], y[i * B:(i + 1) * B], onehot[i * B:(i + 1) * B])
               for i in range(nb)]
    cands, checks = {}, {}

    def runner(step, kind):
        if kind == "tl":
            args = [(tl.Tensor(xb), tl.Tensor(tb)) for xb, _, tb in batches]
        elif kind == "hand":
            args = [(xb, yb) for xb, yb, _ in batches]
        elif kind == "torch":
            args = [(torch.tensor(xb), torch.tensor(yb)) for xb, yb, _ in batches]
        else:
            import jax.numpy as jnp

            args = [(jnp.asarray(xb), jnp.asarray(tb)) for xb, _, tb in batches]

        def run(n):
            loss = None
            for i in range(n):
                loss = step(*args[i % nb])
            return loss

        def value(n):
            loss = run(n)
            return float(loss.item() if hasattr(loss, "item") else loss)

        return run, value

    makers = [("tinygrad_lite", "tl", lambda: make_ours(np, tl, w, False))]
    if hasattr(tl, "jit"):
        makers.append(("tinygrad_lite jit", "tl", lambda: make_ours(np, tl, w, True)))
    if torch is not None:
        makers.append(("torch eager", "torch", lambda: make_torch(torch, w)))
    makers.append(("numpy by hand", "hand", lambda: make_hand(np, w)))
    try:
        import jax  # noqa: F401

        makers.append(("jax jit", "jax", lambda: make_jax(w)))
    except ImportError:
        pass
    for name, kind, make in makers:
        # the loss after 20 steps from fresh weights must agree before timing
        _, value = runner(make(), kind)
        checks[name] = value(20)
        run, _ = runner(make(), kind)
        cands[name] = (run, 50)
    for name, v in checks.items():
        np.testing.assert_allclose(v, checks["numpy by hand"], rtol=1e-4, err_msg=name)
    print(f"  losses after 20 steps agree: {checks}")
    report("seed MLP train step 784-128-10, Adam, batch 64", "us/step",
           rotate(cands, repeats), 1e6)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--backend", default=None)
    ap.add_argument("--only", default="tiny,mlp")
    args = ap.parse_args(argv)
    _pin_threads(args.threads)
    import numpy as np

    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
    import tinygrad_lite as tl
    from tinygrad_lite import backends

    tl.set_num_threads(args.threads)
    if args.backend:
        backends.use(args.backend)
    print(f"backend: {backends.current().name}; threads: {args.threads}; torch: "
          f"{torch.__version__ if torch is not None else 'not installed'}")
    for name in args.only.split(","):
        {"tiny": case_tiny, "mlp": case_mlp}[name](args.repeats, np, tl, torch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
