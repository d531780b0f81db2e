"""End-to-end benchmarks: framework overhead, the seed MLP's fit() throughput, predict latency,
the seed MLP through ``jit``, a small CNN step, and the LSTM/GRU steps of ``recurrent``
(tinygrad_lite/bench/recurrent.py).

    tinygrad-lite bench training [--repeats 7] [--threads 1,2] [--backend cython] [--json PATH]
                                 [--only tiny,mlp,predict1,predict256,jit,cnn,lstm,gru]

``--threads 1,2`` runs the whole suite once per thread count, each in a fresh process (JAX/XLA
reads its thread setting at import).

Each case runs every candidate in rotation (interleaved, so a noisy neighbour hits them alike)
and reports medians and the ratio against the references timed in the same run:

* ``tiny``: ``(a*b).sum()`` forward+backward on 3x3 tensors (pure framework overhead) vs PyTorch;
* ``mlp``: the seed's 784-128-10 MLP, ReLU, softmax cross-entropy, Adam, batch 64, through
  ``Sequential.fit`` on a new model per call (its default: the step captured with ``jit``, so
  every call builds, compiles and records; ``fit(jit=False)``, the eager loop, and ``fit()``
  again on one built model, whose captured step is kept between calls as JAX's compiled step
  is, run as their own candidates) — vs a PyTorch eager loop, a ``jax.jit`` step and a
  hand-written NumPy loop with zero framework (forward, backward and Adam by hand: the floor
  any framework pays on top of);
* ``predict1`` / ``predict256``: the seed MLP's forward on 1 and 256 rows (softmax output), through
  ``Sequential.predict`` and ``nn.Sequential`` under ``no_grad`` (both the compiled plan,
  tinygrad_lite/plan.py) — vs NumPy by hand (the floor), PyTorch eager under ``inference_mode``
  and a ``jax.jit``-compiled function;
* ``jit``: the seed MLP epoch (as ``mlp``) as an ``nn`` loop whose step is ``tinygrad_lite.jit``
  compiled — vs NumPy by hand, PyTorch eager and JAX ``jit`` (prints 'jit: not available' when
  the package has no ``jit``);
* ``cnn``: one training step of conv(1->8, 3x3, pad 1)-relu-maxpool(2)-linear(1568->10), batch 64,
  1x28x28, Adam, built from ``tinygrad_lite.nn`` — vs PyTorch eager;
* ``lstm`` / ``gru``: the cases of ``tinygrad_lite/bench/recurrent.py``.

JAX is optional like torch (``pip install jax``); each missing peer is reported, not timed.

PyTorch is optional (``pip install torch==2.13.0``); without it only the NumPy reference is shown.
Every candidate is checked before it is timed: all start from the same weights, and their losses
(after the first step; after a whole epoch for the MLP) must agree.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

try:
    import torch
except ImportError:  # the comparison peer is optional
    torch = None

jax = None   # imported in main() after the thread count is set (XLA reads it at import)

import tinygrad_lite as tl
from tinygrad_lite import backends, nn
from tinygrad_lite.nn import functional as F
from tinygrad_lite.optim import Adam


def timed(fn, repeats):
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def rotate(cands, repeats, inner):
    """Interleave candidates: each round times every candidate once (``inner`` calls each)."""
    samples = {k: [] for k in cands}
    for fn in cands.values():
        fn()                                          # warm-up
    for _ in range(repeats):
        for k, fn in cands.items():
            samples[k].append(min(timed(fn, 1)) / inner)
    return {k: statistics.median(v) for k, v in samples.items()}


# ------------------------------------------------------------------ tiny overhead ---

def case_tiny(repeats):
    rng = np.random.default_rng(0)
    a0, b0 = rng.random((3, 3), dtype=np.float32), rng.random((3, 3), dtype=np.float32)
    a, b = tl.Tensor(a0, requires_grad=True), tl.Tensor(b0, requires_grad=True)
    n = 2000

    def ours():
        for _ in range(n):
            a.grad = b.grad = None
            (a * b).sum().backward()

    cands = {"tinygrad_lite": ours}
    if torch is not None:
        ta, tb = torch.tensor(a0, requires_grad=True), torch.tensor(b0, requires_grad=True)

        def theirs():
            for _ in range(n):
                ta.grad = tb.grad = None
                (ta * tb).sum().backward()

        cands["torch"] = theirs
        ours()
        theirs()
        np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy(), rtol=1e-6)
    t = rotate(cands, repeats, n)
    return {"case": "tiny (a*b).sum() fwd+bwd", "unit": "us/step",
            "times": {k: v * 1e6 for k, v in t.items()}}


# ------------------------------------------------------------------ MLP fit ---

def _mlp_weights(seed=0):
    rng = np.random.default_rng(seed)
    lim1, lim2 = np.sqrt(6 / (784 + 128)), np.sqrt(6 / (128 + 10))
    return (rng.uniform(-lim1, lim1, (784, 128)).astype(np.float32), np.zeros(128, np.float32),
            rng.uniform(-lim2, lim2, (128, 10)).astype(np.float32), np.zeros(10, np.float32))


def numpy_mlp_loop(x, y, weights, steps, batch=64, lr=1e-3, b1=0.9, b2=0.999, eps=1e-7):
    """The floor: forward, backward and Adam written by hand in NumPy, no framework at all."""
    params = [w.copy() for w in weights]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    losses = []
    for t in range(1, steps + 1):
        i = ((t - 1) * batch) % len(x)
        losses.append(numpy_mlp_step(params, m, v, t, x[i:i + batch], y[i:i + batch],
                                     lr, b1, b2, eps))
    return losses


def numpy_mlp_step(params, m, v, t, xb, yb, lr=1e-3, b1=0.9, b2=0.999, eps=1e-7):
    """One hand-written step (forward, softmax cross-entropy, backward, Adam step ``t``),
    updating ``params``, ``m`` and ``v`` in place; returns the loss."""
    w1, c1, w2, c2 = params
    h = np.maximum(xb @ w1 + c1, 0)
    z = h @ w2 + c2
    z = z - z.max(1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(1, keepdims=True)
    loss = -np.log(p[np.arange(len(yb)), yb]).mean()
    dz = p
    dz[np.arange(len(yb)), yb] -= 1
    dz /= len(yb)
    dh = (dz @ w2.T) * (h > 0)
    grads = [xb.T @ dh, dh.sum(0), h.T @ dz, dz.sum(0)]
    for k, g in enumerate(grads):
        m[k] = b1 * m[k] + (1 - b1) * g
        v[k] = b2 * v[k] + (1 - b2) * g * g
        mh, vh = m[k] / (1 - b1 ** t), v[k] / (1 - b2 ** t)
        params[k] -= lr * mh / (np.sqrt(vh) + eps)
    return loss


def case_mlp(repeats):
    from tinygrad_lite.layers import Dense
    from tinygrad_lite.models import Sequential

    rng = np.random.default_rng(1)
    steps, batch = 50, 64
    x = rng.random((steps * batch, 784), dtype=np.float32)
    y = rng.integers(0, 10, steps * batch)
    w = _mlp_weights()

    def build():
        model = Sequential([Dense(128, activation="relu", input_shape=(784,)),
                            Dense(10, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.set_weights(list(w))
        return model

    def ours():   # fit's default: the step captured with jit (jit="auto")
        hist = build().fit(x, y, epochs=1, batch_size=batch, shuffle=False, verbose=0)
        assert hist.params["jit"] == "captured", hist.params["jit"]
        return hist.history["loss"][0]

    def eager():
        hist = build().fit(x, y, epochs=1, batch_size=batch, shuffle=False, verbose=0,
                           jit=False)
        return hist.history["loss"][0]

    built = build()

    def again():  # fit() once more on one built model: its captured step is kept between
        hist = built.fit(x, y, epochs=1, batch_size=batch, shuffle=False, verbose=0)  # calls
        return hist.history["loss"][0]                # (as JAX's step is compiled once)

    def hand():
        return float(np.mean(numpy_mlp_loop(x, y, w, steps, batch)))

    cands = {"tinygrad_lite": ours, "tl fit(jit=False)": eager, "tl fit(), built model": again,
             "numpy by hand": hand}
    if torch is not None:
        cands["torch"] = _torch_mlp_epoch(x, y, w, steps, batch)
    if jax is not None:
        cands["jax jit"] = jax_mlp_epoch(x, y, w, steps, batch)
    # Same weights, same batches, 50 Adam steps: every candidate must land on the same mean loss
    # (float32 rounding apart) before any of them is timed.
    losses = {k: fn() for k, fn in cands.items()}
    for k, v in losses.items():
        np.testing.assert_allclose(v, losses["numpy by hand"], rtol=1e-4, err_msg=k)
    t = rotate(cands, repeats, steps * batch)
    return {"case": "seed MLP fit() 784-128-10 Adam b64", "unit": "samples/s",
            "times": {k: 1.0 / v for k, v in t.items()}, "higher_is_better": True}


def _import_jax(threads):
    global jax
    if threads:
        flags = (f" --xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'}"
                 f" intra_op_parallelism_threads={threads}")
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + flags).strip()
    try:
        import jax as _jax
        import jax.numpy  # noqa: F401
    except ImportError:
        return None
    _jax.config.update("jax_platforms", "cpu")
    jax = _jax
    return jax


def jax_mlp_epoch(x, y, weights, steps, batch=64, lr=1e-3, b1=0.9, b2=0.999, eps=1e-7):
    """One epoch of the seed MLP with a ``jax.jit``-compiled train step (forward, grad, Adam)."""
    jnp = jax.numpy

    def loss_fn(params, xb, yb):
        w1, c1, w2, c2 = params
        z = jnp.maximum(xb @ w1 + c1, 0) @ w2 + c2
        logp = z - jax.scipy.special.logsumexp(z, axis=1, keepdims=True)
        return -jnp.mean(jnp.take_along_axis(logp, yb[:, None], axis=1))

    @jax.jit
    def step(params, m, v, t, xb, yb):
        loss, grads = jax.value_and_grad(loss_fn)(params, xb, yb)
        m = [b1 * mi + (1 - b1) * g for mi, g in zip(m, grads)]
        v = [b2 * vi + (1 - b2) * g * g for vi, g in zip(v, grads)]
        params = [p - lr * (mi / (1 - b1 ** t)) / (jnp.sqrt(vi / (1 - b2 ** t)) + eps)
                  for p, mi, vi in zip(params, m, v)]
        return params, m, v, loss

    xs = [jnp.asarray(x[i:i + batch]) for i in range(0, steps * batch, batch)]
    ys = [jnp.asarray(y[i:i + batch].astype(np.int32)) for i in range(0, steps * batch, batch)]

    def epoch():
        params = [jnp.asarray(w) for w in weights]
        m = [jnp.zeros_like(p) for p in params]
        v = [jnp.zeros_like(p) for p in params]
        losses = []
        for t in range(1, steps + 1):
            params, m, v, loss = step(params, m, v, float(t), xs[t - 1], ys[t - 1])
            losses.append(loss)
        return float(np.mean([float(v) for v in losses]))

    return epoch


# ------------------------------------------------------------------ predict latency ---

def case_predict(repeats, rows):
    from tinygrad_lite.layers import Dense
    from tinygrad_lite.models import Sequential

    w = _mlp_weights()
    w = (w[0], np.random.default_rng(3).uniform(-0.1, 0.1, 128).astype(np.float32), w[2],
         np.random.default_rng(4).uniform(-0.1, 0.1, 10).astype(np.float32))
    x = np.random.default_rng(5).random((rows, 784), dtype=np.float32)
    model = Sequential([Dense(128, activation="relu", input_shape=(784,)),
                        Dense(10, activation="softmax")])
    model.set_weights(list(w))
    net = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10), nn.Softmax(dim=1))
    net.load_state_dict({"0.weight": w[0].T, "0.bias": w[1], "2.weight": w[2].T, "2.bias": w[3]})
    net.eval()
    w1, c1, w2, c2 = w
    n = max(1, 400 // rows)

    def hand_once():
        h = np.maximum(x @ w1 + c1, 0)
        z = h @ w2 + c2
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    def keras_once():
        return model.predict(x, batch_size=rows)

    def nn_once():
        with tl.no_grad():
            return net(tl.Tensor(x)).numpy()

    once = {"tinygrad_lite": keras_once, "tl nn+no_grad": nn_once, "numpy by hand": hand_once}
    if torch is not None:
        tnet = torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(),
                                   torch.nn.Linear(128, 10), torch.nn.Softmax(dim=1))
        tnet.load_state_dict({"0.weight": torch.tensor(w1.T), "0.bias": torch.tensor(c1),
                              "2.weight": torch.tensor(w2.T), "2.bias": torch.tensor(c2)})
        tnet.eval()

        def torch_once():
            with torch.inference_mode():
                return tnet(torch.from_numpy(x)).numpy()

        once["torch"] = torch_once
    if jax is not None:
        jnp = jax.numpy
        jw = [jnp.asarray(a) for a in w]

        @jax.jit
        def jf(xb, w1, c1, w2, c2):
            return jax.nn.softmax(jnp.maximum(xb @ w1 + c1, 0) @ w2 + c2, axis=1)

        def jax_once():
            return np.asarray(jf(jnp.asarray(x), *jw))

        once["jax jit"] = jax_once
    want = hand_once()
    for k, f in once.items():   # every candidate gives the same probabilities first
        np.testing.assert_allclose(f(), want, rtol=1e-5, atol=1e-6, err_msg=k)
    assert "_plans" in model.__dict__ and "_plans" in net.__dict__, "the plans must be in use"

    def loop(f):
        def run():
            for _ in range(n):
                f()
        return run

    t = rotate({k: loop(f) for k, f in once.items()}, repeats, n)
    return {"case": f"seed MLP predict, {rows} row{'s' * (rows > 1)}", "unit": "us/call",
            "times": {k: v * 1e6 for k, v in t.items()}}


# ------------------------------------------------------------------ MLP through jit ---

def case_jit(repeats):
    try:
        from tinygrad_lite import jit
    except ImportError:
        print("jit: not available (tinygrad_lite has no jit in this build)", flush=True)
        return None
    rng = np.random.default_rng(1)
    steps, batch = 50, 64
    x = rng.random((steps * batch, 784), dtype=np.float32)
    y = rng.integers(0, 10, steps * batch)
    w = _mlp_weights()
    net = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    net.load_state_dict({"0.weight": w[0].T, "0.bias": w[1], "2.weight": w[2].T, "2.bias": w[3]})
    opt = Adam(net.parameters(), lr=1e-3, eps=1e-7)

    def fn(xb, yb):
        opt.zero_grad()
        loss = F.cross_entropy(net(xb), yb)
        loss.backward()
        opt.step()
        return loss

    step = jit(fn)
    batches = [(tl.Tensor(x[i:i + batch]), y[i:i + batch]) for i in range(0, len(x), batch)]

    def ours():
        return float(np.mean([float(step(xb, yb).item()) for xb, yb in batches]))

    def hand():
        return float(np.mean(numpy_mlp_loop(x, y, w, steps, batch)))

    first = ours()   # the first epoch from the shared start: its mean loss must match
    np.testing.assert_allclose(first, hand(), rtol=1e-4, err_msg="jit")
    cands = {"tinygrad_lite": ours, "numpy by hand": hand}
    if torch is not None:
        cands["torch"] = _torch_mlp_epoch(x, y, w, steps, batch)
    if jax is not None:
        cands["jax jit"] = jax_mlp_epoch(x, y, w, steps, batch)
        np.testing.assert_allclose(cands["jax jit"](), hand(), rtol=1e-4, err_msg="jax")
    t = rotate(cands, repeats, steps * batch)
    return {"case": "seed MLP nn loop through jit 784-128-10 Adam b64", "unit": "samples/s",
            "times": {k: 1.0 / v for k, v in t.items()}, "higher_is_better": True}


def _torch_mlp_epoch(x, y, w, steps, batch):
    tx, ty = torch.tensor(x), torch.tensor(y)

    def theirs():
        net = torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(),
                                  torch.nn.Linear(128, 10))
        with torch.no_grad():
            net[0].weight.copy_(torch.tensor(w[0].T))
            net[0].bias.zero_()
            net[2].weight.copy_(torch.tensor(w[2].T))
            net[2].bias.zero_()
        opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)
        total = 0.0
        for i in range(0, len(tx), batch):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(tx[i:i + batch]), ty[i:i + batch])
            loss.backward()
            opt.step()
            total += loss.item()
        return total / steps

    return theirs


# ------------------------------------------------------------------ recurrent (optional) ---

def case_recurrent(kind, repeats):
    try:
        from . import recurrent
    except ImportError:
        print(f"{kind}: the recurrent benchmark is not available in this build", flush=True)
        return None
    res = recurrent.case(kind, repeats, False)   # its losses are checked before timing
    res.pop("losses", None)                       # (checked there; not needed in the JSON)
    res["times"] = {k: float(v) for k, v in res["times"].items()}
    return res


# ------------------------------------------------------------------ CNN step ---

def cnn_steps(torch=None):
    """The small CNN's training step (batch 64 of 1x28x28, Conv2d(1, 8, 3, padding=1), ReLU,
    MaxPool2d(2), Flatten, Linear(1568, 10), cross-entropy, Adam): ``(ours, theirs)``, each a
    function that runs one step and returns the loss, both from the same weights and data.
    ``theirs`` (PyTorch) is None without ``torch``; with it the two first losses are checked
    equal. Also used by benchmarks/cnn_step.py."""
    rng = np.random.default_rng(2)
    x0 = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
    y0 = rng.integers(0, 10, 64)
    tl.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(8 * 14 * 14, 10))
    state = net.state_dict()
    opt = Adam(net.parameters())
    x = tl.Tensor(x0)

    def ours():
        opt.zero_grad()
        loss = F.cross_entropy(net(x), y0)
        loss.backward()
        opt.step()
        return loss.item()

    if torch is None:
        return ours, None
    tnet = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.MaxPool2d(2), torch.nn.Flatten(),
                               torch.nn.Linear(8 * 14 * 14, 10))
    tnet.load_state_dict({k: torch.tensor(v) for k, v in state.items()})
    topt = torch.optim.Adam(tnet.parameters())
    tx, ty = torch.tensor(x0), torch.tensor(y0)

    def theirs():
        topt.zero_grad()
        loss = torch.nn.functional.cross_entropy(tnet(tx), ty)
        loss.backward()
        topt.step()
        return loss.item()

    np.testing.assert_allclose(ours(), theirs(), rtol=1e-4)
    return ours, theirs


def case_cnn(repeats):
    ours, theirs = cnn_steps(torch)
    cands = {"tinygrad_lite": ours}
    if theirs is not None:
        cands["torch"] = theirs
    t = rotate(cands, repeats, 1)
    return {"case": "small CNN train step b64 1x28x28", "unit": "ms/step",
            "times": {k: v * 1e3 for k, v in t.items()}}


def report(res):
    if res is None:
        return None
    times = res["times"]
    hib = res.get("higher_is_better", False)
    ours = times["tinygrad_lite"]
    lines = [f"{res['case']}  [{res['unit']}]"]
    for k, v in times.items():
        ratio = "" if k == "tinygrad_lite" else \
            f"   ours vs {k}: {(ours / v if hib else v / ours):.2f}x (above 1: ours faster)"
        lines.append(f"  {k:<14} {v:12.1f}{ratio}")
    return "\n".join(lines)


def speedups(res):
    """{peer: ours-vs-peer speed ratio (above 1: ours faster)} of one case's result."""
    times, hib = res["times"], res.get("higher_is_better", False)
    ours = times["tinygrad_lite"]
    return {k: (ours / v if hib else v / ours) for k, v in times.items() if k != "tinygrad_lite"}


def plot(runs, path):
    """Bar chart of every case's speed ratios, one panel per thread count (``runs``: the JSON
    documents written with ``--json``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(runs), figsize=(7 * len(runs), 6), sharey=True, squeeze=False)
    for ax, run in zip(axes[0], runs):
        labels, vals = [], []
        for res in run["results"]:
            for peer, r in speedups(res).items():
                labels.append(f"{res['case']}\nvs {peer}")
                vals.append(r)
        ys = np.arange(len(labels))
        ax.barh(ys, vals, color=["tab:green" if v >= 1 else "tab:red" for v in vals])
        ax.axvline(1.0, color="k", lw=0.8)
        ax.set_xscale("log")
        ax.set_yticks(ys)
        ax.set_yticklabels(labels, fontsize=6)
        ax.invert_yaxis()
        ax.set_title(f"tinygrad_lite speed vs peer, {run.get('threads')} thread(s) "
                     "(above 1: ours faster)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


CASES = {"tiny": case_tiny, "mlp": case_mlp, "predict1": lambda r: case_predict(r, 1),
         "predict256": lambda r: case_predict(r, 256), "jit": case_jit, "cnn": case_cnn,
         "lstm": lambda r: case_recurrent("lstm", r), "gru": lambda r: case_recurrent("gru", r)}


_BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS")


def _hold_blas(t):
    """Hold NumPy's BLAS (the "numpy by hand" floor, the numpy backend) at ``t`` threads too:
    ``tl.set_num_threads`` sets only our kernels' threads (the BLAS cap is opt-in, issue 15), and
    an uncapped OpenBLAS would give the floor every core in a "1 thread" row. Each thread count
    runs in a child started with the BLAS variables set (``main``); threadpoolctl, when
    installed, holds it as well."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        if os.environ.get("OPENBLAS_NUM_THREADS") != str(t):
            print("note: threadpoolctl is not installed and OPENBLAS_NUM_THREADS is not "
                  f"{t}, so NumPy's BLAS threads are not held at {t}", flush=True)
        return
    threadpool_limits(limits=t, user_api="blas")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="tinygrad-lite bench training",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--backend", default=None, help="tinygrad_lite backend (default: best built)")
    ap.add_argument("--threads", default=None,
                    help="threads for every runtime; a list (1,2) runs the suite once per entry")
    ap.add_argument("--only", default=",".join(CASES))
    ap.add_argument("--json", default=None)
    ap.add_argument("--plot", default=None,
                    help="draw a PNG of the ratios from the JSON files of --json (no timing)")
    args = ap.parse_args(argv)
    if args.plot:
        runs = []
        for path in args.json.split(","):
            with open(path) as f:
                runs.append(json.load(f))
        plot(runs, args.plot)
        return 0
    threads = [int(t) for t in args.threads.split(",")] if args.threads else [None]
    child = os.environ.get("_TL_BENCH_CHILD") == "1"
    if threads[0] and not child:
        # one fresh process per thread count: XLA reads it at import, and OpenBLAS reads its
        # thread variables when NumPy loads it (the floor's threads without threadpoolctl)
        rc = 0
        for t in threads:
            rest = [a for a in (argv if argv is not None else sys.argv[1:])]
            i = rest.index("--threads") if "--threads" in rest else None
            if i is not None:
                del rest[i:i + 2]
            else:
                rest = [a for a in rest if not a.startswith("--threads=")]
            if args.json and len(threads) > 1:
                stem, ext = os.path.splitext(args.json)
                j = rest.index("--json") if "--json" in rest else None
                if j is not None:
                    rest[j + 1] = f"{stem}.{t}t{ext}"
            print(f"==== {t} thread{'s' * (t > 1)} ====", flush=True)
            env = {**os.environ, "_TL_BENCH_CHILD": "1", **{k: str(t) for k in _BLAS_ENV}}
            rc |= subprocess.call([sys.executable, "-m", "tinygrad_lite.bench.training",
                                   "--threads", str(t)] + rest, env=env)
        return rc
    t = threads[0]
    if t:
        tl.set_num_threads(t)
        if torch is not None:
            torch.set_num_threads(t)
        _hold_blas(t)
    _import_jax(t)
    if args.backend:
        backends.use(args.backend)
    print(f"backend: {backends.current().name}; threads: {tl.get_num_threads()}; torch: "
          f"{torch.__version__ if torch is not None else 'not installed'}; jax: "
          f"{jax.__version__ if jax is not None else 'not installed'}")
    results = []
    for name in args.only.split(","):
        res = CASES[name](args.repeats)
        if res is None:
            continue
        results.append(res)
        print(report(res), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"backend": backends.current().name, "threads": tl.get_num_threads(),
                       "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
