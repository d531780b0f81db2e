"""Adagrad: per-coordinate step sizes that shrink with the sum of past squared gradients.

Next: lr_scheduler.py, changing ``lr`` over the course of training.
"""

from tinygrad_lite.optim.optimizer import Optimizer, array_module

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    r"""Adagrad (Duchi, Hazan & Singer, 2011), PyTorch's variant with lr decay.

    With gradient :math:`g_t` at step :math:`t = 1, 2, \dots`:

    .. math::
        g_t &\leftarrow g_t + \lambda \theta_{t-1} \\
        \eta_t &= \alpha / (1 + (t - 1)\, \delta) \\
        s_t &= s_{t-1} + g_t^2, \qquad s_0 = \text{initial\_accumulator\_value} \\
        \theta_t &= \theta_{t-1} - \eta_t\, g_t / (\sqrt{s_t} + \epsilon)

    Coordinates that have seen large gradients take small steps, rarely-updated ones large steps;
    since ``s`` only grows, the step size decays on its own.

    Parameters
    ----------
    params : iterable of parameters or of param-group dicts
    lr : float, default 1e-2
    lr_decay : float, default 0
        :math:`\delta` above.
    weight_decay : float, default 0
    initial_accumulator_value : float, default 0
    eps : float, default 1e-10
    maximize : bool, default False

    Examples
    --------
    >>> import numpy as np
    >>> class P:
    ...     def __init__(self, v): self.data, self.grad = np.array(v), None
    >>> p = P([1.0]); p.grad = P([4.0])
    >>> Adagrad([p], lr=0.5).step(); p.data.round(6)   # 1 - 0.5 * 4 / sqrt(16)
    array([0.5])
    """

    def __init__(
        self,
        params,
        lr=1e-2,
        lr_decay=0,
        weight_decay=0,
        initial_accumulator_value=0,
        eps=1e-10,
        *,
        maximize=False,
    ):
        defaults = {
            "lr": lr,
            "lr_decay": lr_decay,
            "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value,
            "eps": eps,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _check(self, group):
        self._check_lr(group)
        self._check_nonneg(group, "lr_decay", "weight_decay", "initial_accumulator_value", "eps")

    def _update(self, p, grad, state, group):
        xp = array_module(p.data)
        if not state:
            state["step"] = 0
            state["sum"] = xp.full_like(p.data, group["initial_accumulator_value"])
        state["step"] += 1
        clr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
        s = state["sum"]
        s += grad * grad
        p.data -= clr * grad / (xp.sqrt(s) + group["eps"])
