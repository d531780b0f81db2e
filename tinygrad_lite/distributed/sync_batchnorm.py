"""SyncBatchNorm: batch statistics over the global batch, all ranks together.

With plain BatchNorm under data parallelism each rank normalizes by the statistics of its own
shard, so 2 ranks x 64 samples is not the same model as 1 x 128. SyncBatchNorm sums the
per-channel statistics over the ranks:

    mean_c = (sum over ranks of sum_c x) / N,   var_c = (sum over ranks of sum_c (x - mean_c)^2) / N

(two passes: as exact as the single-process formula). The sums go through ``all_reduce_sum``, a
differentiable op: y_r = sum_s x_s on every rank, so dL/dx_r = sum_s dL/dy_s -- its backward is
again an all-reduce of the incoming gradients, which carries every rank's share of d(loss)/d(mean)
and d(loss)/d(var) back to every rank's inputs.
"""

from ..autograd import Function, no_grad, register
from ..errors import ShapeError
from ..nn.normalization import _BatchNorm
from . import comm


def _active():
    return comm.is_initialized() or comm.launched_with_mpi()


@register("all_reduce_sum")
class AllReduceSum(Function):
    """y = sum over ranks of x (the same y on every rank);  dL/dx = all_reduce_sum(dL/dy).

    With one process it is the identity (and so is its derivative).
    """

    @staticmethod
    def forward(ctx, x):
        if not _active() or comm.world_size() == 1:
            return x.copy()
        from .collectives import all_reduce

        return ctx.xp.asarray(all_reduce(x, "sum"), dtype=x.dtype)

    @staticmethod
    def backward(ctx, grad_y):
        return (AllReduceSum.apply(grad_y),)


def all_reduce_sum(x):
    """Differentiable sum of the Tensor ``x`` over all ranks."""
    return AllReduceSum.apply(x)


class SyncBatchNorm(_BatchNorm):
    """BatchNorm whose training statistics cover the batch of every rank (any input rank >= 2,
    channels on axis 1). Outside training, and on one process, it is a plain BatchNorm.

    >>> model = SyncBatchNorm.convert_sync_batchnorm(model)   # every BatchNorm1d/2d replaced
    """

    _ndims = (2, 3, 4, 5)

    def forward(self, x):
        if not self.training or not _active() or comm.world_size() == 1:
            return super().forward(x)
        if x.ndim not in self._ndims or x.shape[1] != self.num_features:
            raise ShapeError(f"SyncBatchNorm: expected input of 2 to 5 dimensions with "
                             f"{self.num_features} channels on axis 1, got shape {x.shape}")
        axes = tuple(i for i in range(x.ndim) if i != 1)
        shape = (1, -1) + (1,) * (x.ndim - 2)
        from .collectives import all_reduce

        n = int(all_reduce(x.xp.asarray([x.size // self.num_features], dtype="int64"))[0])
        if n <= 1:
            raise ShapeError(f"SyncBatchNorm: expected more than 1 value per channel over all "
                             f"ranks when training, got {n}")
        mean = all_reduce_sum(x.sum(axis=axes)) / n
        xc = x - mean.reshape(shape)
        var = all_reduce_sum((xc * xc).sum(axis=axes)) / n
        if self.track_running_stats:
            m = self.momentum
            with no_grad():
                nbt = self.num_batches_tracked
                nbt.data = nbt.xp.asarray(nbt.data + 1)
                if m is None:
                    m = 1.0 / float(nbt.data)
                rm, rv = self.running_mean, self.running_var
                rm.data = (1 - m) * rm.data + m * mean.data.astype(rm.dtype)
                rv.data = (1 - m) * rv.data + m * (var.data * (n / (n - 1))).astype(rv.dtype)
        y = xc / (var.reshape(shape) + self.eps).sqrt()
        if self.weight is not None:
            y = y * self.weight.reshape(shape)
        if self.bias is not None:
            y = y + self.bias.reshape(shape)
        return y

    @classmethod
    def convert_sync_batchnorm(cls, module):
        """Replace every BatchNorm1d/2d inside ``module`` (or ``module`` itself) by a
        SyncBatchNorm with the same settings, parameters and buffers."""
        if isinstance(module, _BatchNorm) and not isinstance(module, cls):
            new = cls(module.num_features, module.eps, module.momentum, module.affine,
                      module.track_running_stats)
            for name in ("weight", "bias"):
                if getattr(module, name, None) is not None:
                    setattr(new, name, getattr(module, name))
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                if getattr(module, name, None) is not None:
                    new.register_buffer(name, getattr(module, name))
            new.train(module.training)
            return new
        for name, child in list(module._modules.items()):
            if child is not None:
                new = cls.convert_sync_batchnorm(child)
                if new is not child:
                    module._modules[name] = new
        return module


__all__ = ["SyncBatchNorm", "AllReduceSum", "all_reduce_sum"]
