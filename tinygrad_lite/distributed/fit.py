"""What ``Sequential.fit`` does differently on several ranks (used by models.py).

The arithmetic is the one-process run's: ``batch_size`` stays the *global* batch; every rank
draws the same permutation, takes its contiguous share of each global batch, and scales its mean
loss by ``n_local * world / n_global`` so that the averaged gradient is exactly the gradient of
the global batch's mean loss (also for a short last batch). Loss, metrics and validation numbers
are summed over the ranks, so ``History`` holds the same numbers as a one-process run, up to
float32 summation order. Rank 0 alone runs the callbacks (progress, files, ModelCheckpoint,
EarlyStopping, LR schedules); its decisions (stop, learning rates, restored weights) are
broadcast to the others.
"""

import numpy as np

from .collectives import all_reduce, broadcast
from .comm import group, init
from .ddp import GradientSync, sync_module_state


class FitSync:
    def __init__(self, model):
        init()
        self.g = group()
        self.rank, self.size = self.g.rank, self.g.size
        self.main = self.rank == 0
        old = getattr(model, "_dist_sync", None)
        if old is not None:           # a previous fit that raised: its hooks must go
            old.close()
        sync_module_state(model, "fit (distributed)")
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.sync = GradientSync([p for _, p in named], [n for n, _ in named])
        object.__setattr__(model, "_dist_sync", self.sync)

    # ---- data ---------------------------------------------------------------------------
    def rng(self, rng, seed):
        """The same shuffling generator on every rank."""
        if seed is not None:
            return rng
        s = np.array([int(rng.integers(2**62))], np.int64)
        return np.random.default_rng(int(broadcast(s, 0)[0]))

    def shard(self, idx):
        """This rank's contiguous part of one global batch (sizes differ by at most one)."""
        return np.array_split(idx, self.size)[self.rank]

    # ---- one step -----------------------------------------------------------------------
    def global_loss(self, loss, reg, n_local, n_global):
        """(Tensor to backpropagate, the global batch's loss value)."""
        s = float(all_reduce(np.array([float(loss.item()) * n_local]))[0])
        value = s / n_global + (float(reg.item()) if reg is not None else 0.0)
        scale = n_local * self.size / n_global
        total = loss if scale == 1.0 else loss * scale
        return (total if reg is None else total + reg), value

    def idle_value(self, n_global):
        """A rank with no samples in this step still joins the loss sum (adding 0)."""
        return float(all_reduce(np.array([0.0]))[0]) / n_global

    def idle_backward(self, model):
        """... and the gradient all-reduce (adding zeros), then steps like the others."""
        model.optimizer.zero_grad()
        self.sync.finish()
        model.optimizer.step()

    # ---- epoch --------------------------------------------------------------------------
    def reduce_metrics(self, mets, classes):
        """Sum the metric accumulators (numerator, denominator, confusion matrix) over ranks."""
        for m in mets:
            c = classes if m.cm is None else m.cm.shape[0]
            cm = np.zeros((c, c)) if m.cm is None else m.cm.astype(np.float64)
            v = all_reduce(np.concatenate([[m.num, m.den], cm.reshape(-1)]))
            m.num, m.den = float(v[0]), float(v[1])
            if m.cm is not None or v[2:].any():
                m.cm = v[2:].reshape(c, c).astype(np.int64)

    def eval_shard(self, x, y, sw):
        part = np.array_split(np.arange(len(x)), self.size)[self.rank]
        return x[part], y[part], (None if sw is None else sw[part])

    def reduce_eval(self, classes):
        def reduce(total, n, mets):
            v = all_reduce(np.array([total, float(n)]))
            self.reduce_metrics(mets, classes)
            return float(v[0]), int(v[1])
        return reduce

    def sync_buffers(self, model):
        """Rank 0's buffers (BatchNorm moving statistics) everywhere."""
        for _, b in model.named_buffers():
            if b is not None:
                b.data = b.xp.asarray(broadcast(b.data, 0))

    def sync_decisions(self, model):
        """Rank 0's callbacks decided: stop or not, and the learning rates."""
        lrs = [float(gr["lr"]) for gr in model.optimizer.param_groups if "lr" in gr]
        v = broadcast(np.array([float(bool(model.stop_training))] + lrs), 0)
        model.stop_training = bool(v[0])
        k = 1
        for gr in model.optimizer.param_groups:
            if "lr" in gr:
                gr["lr"] = float(v[k])
                k += 1

    def close(self, model):
        """After on_train_end (EarlyStopping may restore weights on rank 0): rank 0's state."""
        sync_module_state(model, "fit (distributed)")
        self.sync.close()
        object.__setattr__(model, "_dist_sync", None)
