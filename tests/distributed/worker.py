"""Scenarios that run under ``mpiexec -n 2 python tests/distributed/worker.py SCENARIO``.

Each rank checks its own results (the one-process references are computed in the same process)
and prints ``CHECK <name> ok`` per passed check; test_distributed.py reads those lines. A failed
check raises, which aborts every rank and fails the launch.
"""

import os
import signal
import sys
import time

import numpy as np

import tinygrad_lite as tl
from tinygrad_lite import Tensor, nn, optim
from tinygrad_lite import distributed as dist
from tinygrad_lite.errors import ShapeError

F = nn.functional


def ok(name):
    print(f"CHECK {name} rank={dist.rank()} ok", flush=True)


def close(a, b, rtol, atol, what):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or not np.allclose(a, b, rtol=rtol, atol=atol):
        err = np.max(np.abs(a - b)) if a.shape == b.shape else "shape"
        raise AssertionError(f"{what}: rank {dist.rank()} max abs diff {err} "
                             f"(rtol={rtol}, atol={atol})")


# ------------------------------------------------------------------ collectives ---

def check_collectives():
    r, w = dist.rank(), dist.world_size()
    assert w == 2, w
    s = dist.all_reduce(np.array([1.0, r], np.float32))
    close(s, [2.0, 1.0], 0, 0, "all_reduce sum")
    assert s.dtype == np.float32
    m = dist.all_reduce(Tensor(np.array([[r * 2.0]], np.float64)), "mean")
    assert isinstance(m, Tensor) and m.shape == (1, 1)
    close(m.numpy(), [[1.0]], 0, 0, "all_reduce mean")
    close(dist.all_reduce(np.array([r + 1]), "mean"), [1.5], 0, 0, "all_reduce int mean")
    b = dist.broadcast(np.full(3, float(r + 5)), src=1)
    close(b, [6.0] * 3, 0, 0, "broadcast src=1")
    parts = dist.all_gather(np.arange(r + 2, dtype=np.int64) * (r + 1))
    assert [p.tolist() for p in parts] == [[0, 1], [0, 2, 4]], parts
    tparts = dist.all_gather(Tensor(np.ones((r + 1, 2), np.float32)))
    assert [t.shape for t in tparts] == [(1, 2), (2, 2)]
    try:
        dist.broadcast(np.zeros(3 + r), src=0)
    except ShapeError as e:
        assert "rank 1 passed shape (4,)" in str(e) and "rank 0, the source" in str(e), e
    else:
        raise AssertionError("broadcast with different shapes did not raise")
    dist.barrier()
    ok("collectives")


# ------------------------------------------------------------------ equivalence ---

def seed_mlp():
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))


def small_cnn():
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(16 * 2 * 2, 10))


def train(make, opt_name, x, y, steps, ddp):
    tl.manual_seed(123 if not ddp else 1000 + dist.rank())   # ddp: broadcast must fix this
    model = make()
    net = dist.DistributedDataParallel(model) if ddp else model
    opt = (optim.SGD(model.parameters(), lr=0.1, momentum=0.9) if opt_name == "sgd"
           else optim.Adam(model.parameters(), lr=1e-3))
    if ddp:   # rank 0 must have the reference's init
        ref = make_init(make)
        for (n, p), q in zip(model.named_parameters(), ref):
            if dist.rank() == 0:
                p.data = q.copy()
        for p in model.parameters():
            p.data = dist.broadcast(p.data, 0)
    for s in range(steps):
        xb, yb = x[s * 128:(s + 1) * 128], y[s * 128:(s + 1) * 128]
        if ddp:
            lo = dist.rank() * 64
            xb, yb = xb[lo:lo + 64], yb[lo:lo + 64]
        loss = F.cross_entropy(net(Tensor(xb)), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return [p.numpy().copy() for p in model.parameters()]


def make_init(make):
    tl.manual_seed(123)
    return [p.numpy().copy() for p in make().parameters()]


def check_equivalence():
    rng = np.random.default_rng(7)
    steps = 20
    y = rng.integers(0, 10, steps * 128)
    xs = {"mlp": rng.standard_normal((steps * 128, 64)).astype(np.float32),
          "cnn": rng.standard_normal((steps * 128, 1, 8, 8)).astype(np.float32)}
    for name, make in (("mlp", seed_mlp), ("cnn", small_cnn)):
        for opt_name in ("sgd", "adam"):
            one = train(make, opt_name, xs[name], y, steps, ddp=False)
            two = train(make, opt_name, xs[name], y, steps, ddp=True)
            moved = max(np.abs(a - b).max() for a, b in zip(one, make_init(make)))
            assert moved > 1e-2, f"{name}/{opt_name}: the weights hardly moved ({moved})"
            for k, (a, b) in enumerate(zip(one, two)):
                close(b, a, 1e-5, 1e-6, f"{name}/{opt_name} parameter {k}")
            diff = max(float(np.abs(a - b).max()) for a, b in zip(one, two))
            print(f"INFO {name}/{opt_name} max |w_2ranks - w_1process| = {diff:.3g} "
                  f"(weights moved {moved:.3g})", flush=True)
            other = dist.all_gather(np.concatenate([p.ravel() for p in two]))
            close(other[0], other[1], 0, 0, f"{name}/{opt_name} ranks agree")
            ok(f"equivalence_{name}_{opt_name}")


# ------------------------------------------------------------------ DDP ---

def check_ddp():
    r = dist.rank()
    tl.manual_seed(50 + r)              # different init per rank
    model = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3))
    model[1].running_mean.data[...] = r + 1.0
    before = [p.numpy().copy() for p in model.parameters()]
    ddp = dist.DistributedDataParallel(model)
    after = dist.all_gather(np.concatenate([p.numpy().ravel() for p in model.parameters()]
                                           + [model[1].running_mean.numpy()]))
    close(after[0], after[1], 0, 0, "weights after wrap")
    if r == 0:
        close(after[0][:-5], np.concatenate([b.ravel() for b in before]), 0, 0, "rank 0's")
    close(model[1].running_mean.numpy(), np.ones(5), 0, 0, "buffer broadcast")
    ok("broadcast_at_wrap")

    # no_sync: two local backward passes, then one synced: grads = average of the sums
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((2, 8, 6)).astype(np.float32) for _ in range(3)]
    model.eval()   # BatchNorm by running stats: the per-sample losses are independent
    with ddp.no_sync():
        for k in range(2):
            ddp(Tensor(xs[k][r])).sum().backward()
    local = dist.all_gather(model[0].weight.grad.numpy())
    assert not np.allclose(local[0], local[1]), "no_sync must not average"
    ddp(Tensor(xs[2][r])).sum().backward()
    got = model[0].weight.grad.numpy()
    ref = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3))
    ref.load_state_dict(model.state_dict())
    ref.eval()
    for k in range(3):
        for rr in range(2):
            ref(Tensor(xs[k][rr])).sum().backward()
    close(got, ref[0].weight.grad.numpy() / 2, 1e-5, 1e-6, "no_sync accumulation")
    ok("no_sync")

    # a parameter shape that differs between ranks is caught at wrap time
    try:
        dist.DistributedDataParallel(nn.Sequential(nn.Linear(4, 8 + r)))
    except ShapeError as e:
        msg = str(e)
        assert "rank 1" in msg and "0.weight" in msg and "(9, 4)" in msg, msg
    else:
        raise AssertionError("mismatched parameter shapes were not detected")
    ok("shape_mismatch_at_wrap")

    # unused parameter: an error at the next forward, or handled by find_unused_parameters
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 2), nn.Linear(3, 2)

        def forward(self, x):
            return self.a(x)
    m2 = dist.DistributedDataParallel(TwoHeads(), find_unused_parameters=True)
    m2(Tensor(np.full((4, 3), r + 1.0, np.float32))).sum().backward()
    close(m2.module.a.weight.grad.numpy(), np.full((2, 3), 6.0), 0, 0, "used grads averaged")
    close(m2.module.b.weight.grad.numpy(), np.zeros((2, 3)), 0, 0, "unused grads zero")
    ok("find_unused_parameters")

    # small buckets: several all-reduces, each started while backward still has work to do
    tl.manual_seed(0)
    big = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
                        nn.Linear(128, 10))
    ref = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
                        nn.Linear(128, 10))
    ddp3 = dist.DistributedDataParallel(big, bucket_cap_mb=0.05)   # ~50 KB buckets
    ref.load_state_dict(big.state_dict())
    xb = np.random.default_rng(4).standard_normal((2, 16, 64)).astype(np.float32)
    ddp3(Tensor(xb[r])).sum().backward()
    nb, npar = len(ddp3.sync.buckets), len(ddp3.sync.params)
    log = ddp3.sync.launch_log
    assert nb >= 3 and len(log) == nb, (nb, log)
    assert log[0] < npar and log == sorted(log), f"buckets must start during backward: {log}"
    ref(Tensor(xb.reshape(32, 64))).sum().backward()
    for p, q in zip(big.parameters(), ref.parameters()):
        close(p.grad.numpy(), q.grad.numpy() / 2, 1e-5, 1e-6, "bucketed gradient average")
    ok("buckets_overlap_backward")


# ------------------------------------------------------------------ sampler ---

def check_sampler():
    from tinygrad_lite.data import DataLoader, TensorDataset

    w = dist.world_size()
    for n, drop_last in ((64, False), (101, False), (101, True)):
        ds = TensorDataset(np.arange(n, dtype=np.float32).reshape(n, 1), np.arange(n))
        sampler = dist.DistributedSampler(ds, shuffle=True, seed=5, drop_last=drop_last)
        loader = DataLoader(ds, batch_size=8, sampler=sampler, collate_fn=None)
        epochs = []
        for epoch in range(2):
            loader.set_epoch(epoch)
            mine = np.concatenate([yb.numpy() for _, yb in loader])
            assert len(mine) == len(sampler), (len(mine), len(sampler))
            seen = np.concatenate(dist.all_gather(mine))
            counts = np.bincount(seen, minlength=n)
            if n % w == 0:
                assert (counts == 1).all(), "every sample exactly once per epoch"
            elif drop_last:
                assert counts.max() == 1 and counts.sum() == n - n % w
            else:
                assert counts.min() == 1 and counts.sum() == n + (w - n % w)
            epochs.append(seen)
        assert not np.array_equal(epochs[0], epochs[1]), "set_epoch must reshuffle"
    ok("sampler")


# ------------------------------------------------------------------ SyncBatchNorm ---

def check_syncbn():
    r = dist.rank()
    rng = np.random.default_rng(11)
    x_all = (rng.standard_normal((16, 4, 3, 3)) * 3 + 2).astype(np.float64)
    wup = rng.standard_normal((16, 4, 3, 3))

    def build(sync):
        tl.manual_seed(0)
        bn = nn.BatchNorm2d(4, dtype=np.float64)
        bn.weight.data = np.linspace(0.5, 2, 4)
        bn.bias.data = np.linspace(-1, 1, 4)
        return dist.SyncBatchNorm.convert_sync_batchnorm(bn) if sync else bn

    ref = build(False)
    x = Tensor(x_all.copy(), requires_grad=True)
    y_ref = ref(x)
    (y_ref * Tensor(wup)).sum().backward()
    sbn = build(True)
    assert isinstance(sbn, dist.SyncBatchNorm)
    ddp = dist.DistributedDataParallel(sbn)
    rows = slice(r * 8, (r + 1) * 8)
    xr = Tensor(x_all[rows].copy(), requires_grad=True)
    y = ddp(xr)
    (y * Tensor(wup[rows])).sum().backward()
    close(y.numpy(), y_ref.numpy()[rows], 1e-10, 1e-12, "SyncBatchNorm output")
    close(sbn.running_mean.numpy(), ref.running_mean.numpy(), 1e-10, 1e-12, "running_mean")
    close(sbn.running_var.numpy(), ref.running_var.numpy(), 1e-10, 1e-12, "running_var")
    close(xr.grad.numpy(), x.grad.numpy()[rows], 1e-9, 1e-12, "input gradient")
    for a, b in ((sbn.weight, ref.weight), (sbn.bias, ref.bias)):
        close(a.grad.numpy() * 2, b.grad.numpy(), 1e-9, 1e-12, "parameter gradient")
    # plain per-rank BatchNorm would differ: the check above is not vacuous
    local = build(False)(Tensor(x_all[rows])).numpy()
    assert not np.allclose(local, y_ref.numpy()[rows], atol=1e-3)
    ok("syncbn")


# ------------------------------------------------------------------ Sequential.fit ---

def check_fit():
    from tinygrad_lite.callbacks import LambdaCallback, ModelCheckpoint
    from tinygrad_lite.layers import Dense
    from tinygrad_lite.models import Sequential

    r = dist.rank()
    rng = np.random.default_rng(2)
    n = 129                       # last global batch of 1: rank 1 joins with nothing to add
    x = rng.standard_normal((n, 10)).astype(np.float32)
    y = rng.integers(0, 3, n)
    xv, yv = rng.standard_normal((31, 10)).astype(np.float32), rng.integers(0, 3, 31)

    def run(distributed, cbs):
        tl.manual_seed(9)
        m = Sequential([Dense(16, activation="relu", input_shape=(10,)),
                        Dense(3, activation="softmax")])
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy", "f1"])
        h = m.fit(x, y, batch_size=64, epochs=4, validation_data=(xv, yv), seed=3, verbose=0,
                  callbacks=cbs, distributed=distributed)
        return m, h

    calls = []
    ckpt = os.path.join(os.environ["WORKER_TMP"], "ckpt.safetensors")

    def stop_at_2(epoch, logs):
        calls.append(epoch)
        if epoch == 2:
            m2.stop_training = True

    m1, one = run(False, None)
    m2 = None
    tl.manual_seed(9)
    cbs = [LambdaCallback(on_epoch_end=stop_at_2), ModelCheckpoint(ckpt, monitor="val_loss")]
    # the callback needs the model: build it the same way, then fit it
    m2 = Sequential([Dense(16, activation="relu", input_shape=(10,)),
                     Dense(3, activation="softmax")])
    m2.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
               metrics=["accuracy", "f1"])
    two = m2.fit(x, y, batch_size=64, epochs=4, validation_data=(xv, yv), seed=3, verbose=0,
                 callbacks=cbs)          # distributed: detected from the mpiexec launch
    assert two.epoch == [0, 1, 2], f"rank 0's stop decision must reach rank {r}: {two.epoch}"
    assert calls == ([0, 1, 2] if r == 0 else []), f"callbacks ran on rank {r}: {calls}"
    if os.environ.get("WORKER_DEBUG"):
        print(r, one.history, two.history)
    for k in one.history:
        close(two.history[k], one.history[k][:3], 1e-4, 1e-5, f"fit history {k}")
    w = dist.all_gather(np.concatenate([p.numpy().ravel() for p in m2.parameters()]))
    close(w[0], w[1], 0, 0, "fit weights agree")
    dist.barrier()
    assert os.path.exists(ckpt), "rank 0 writes the checkpoint"
    assert m2._dist_sync is None and all(p._hooks is None for p in m2.parameters())
    ok("fit")


# ------------------------------------------------------------------ faults ---

def fault_raise():
    dist.init()
    dist.barrier()
    if dist.rank() == 1:
        raise ValueError("boom on purpose")
    dist.all_reduce(np.ones(3))      # rank 0 waits here; rank 1's note must end it
    time.sleep(60)


def fault_kill():
    dist.init()
    dist.barrier()
    if dist.rank() == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    dist.all_reduce(np.ones(3))
    time.sleep(60)


def fault_timeout():
    dist.init(timeout=2.0)
    dist.barrier()
    if dist.rank() == 1:
        time.sleep(60)               # never arrives
    dist.all_reduce(np.ones(3))


def nccl_check():
    """GPU check (owed; needs CuPy with NCCL and one GPU per rank): the NCCL path must give
    the MPI path's sums. Run: mpiexec -n 2 python tests/distributed/worker.py nccl"""
    import cupy

    from tinygrad_lite.distributed import collectives

    cupy.cuda.Device(dist.rank() % cupy.cuda.runtime.getDeviceCount()).use()
    a = cupy.arange(1000, dtype=cupy.float32) * (dist.rank() + 1)
    assert collectives.select_transport(a) == "nccl", collectives.nccl_available()
    got = cupy.asnumpy(dist.all_reduce(a))
    close(got, np.arange(1000) * 3.0, 0, 0, "nccl all_reduce")
    ok("nccl")


SCENARIOS = {"nccl": (nccl_check,),
             "core": (check_collectives, check_equivalence, check_ddp, check_sampler,
                      check_syncbn, check_fit),
             "fault_raise": (fault_raise,), "fault_kill": (fault_kill,),
             "fault_timeout": (fault_timeout,)}

if __name__ == "__main__":
    dist.init(timeout=60.0)
    for fn in SCENARIOS[sys.argv[1]]:
        fn()
    dist.barrier()
    print(f"DONE rank={dist.rank()}", flush=True)
