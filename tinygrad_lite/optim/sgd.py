"""Stochastic gradient descent: the seed's update and its momentum variants.

Next: adam.py, per-coordinate step sizes from running moments of the gradient.
"""

from tinygrad_lite.optim import _fused
from tinygrad_lite.optim.optimizer import Optimizer, array_module

__all__ = ["SGD"]


class SGD(Optimizer):
    r"""Gradient descent with optional momentum, dampening, Nesterov and weight decay (PyTorch's).

    With ``momentum=0`` this is the seed's plain update, one line:

    .. math:: \theta \leftarrow \theta - \alpha \nabla J(\theta)

    In general, with gradient :math:`g_t` (negated when ``maximize``), weight decay :math:`\lambda`,
    momentum :math:`\mu` and dampening :math:`\tau`:

    .. math::
        g_t &\leftarrow g_t + \lambda \theta_{t-1} \\
        b_t &= g_t \ \text{(first step)}, \qquad b_t = \mu b_{t-1} + (1 - \tau) g_t \\
        d_t &= g_t + \mu b_t \ \text{(Nesterov)}, \qquad d_t = b_t \ \text{(classical)} \\
        \theta_t &= \theta_{t-1} - \alpha d_t

    Momentum keeps a running direction ``b`` so steps build up along consistent slopes and
    oscillations across a narrow valley cancel; Nesterov looks one momentum step ahead.

    ``_update`` below is that update in NumPy, one parameter at a time -- the reference. With the
    Cython backend active and NumPy float32/float64 arrays, ``step`` instead updates the whole
    param group in one fused kernel call (``tinygrad_lite._cpu.sgd_step_many``, optim/_fused.py),
    with the same per-element operations in the same order.

    Parameters
    ----------
    params : iterable of parameters or of param-group dicts
    lr : float, default 1e-3
    momentum : float, default 0
    dampening : float, default 0
    weight_decay : float, default 0
        L2 penalty added to the gradient.
    nesterov : bool, default False
        Needs ``momentum > 0`` and ``dampening == 0``.
    maximize : bool, default False
        Ascend instead of descend.

    Examples
    --------
    >>> import numpy as np
    >>> class P:  # anything with .data and .grad works; normally nn.Parameter
    ...     def __init__(self, v): self.data, self.grad = np.array(v), None
    >>> p = P([1.0, 2.0]); p.grad = P([0.5, -1.0])
    >>> SGD([p], lr=0.1).step(); p.data
    array([0.95, 2.1 ])
    """

    def _update(self, p, grad, state, group):
        """One parameter, in NumPy: the reference the fused kernel is tested against."""
        lr, mu = group["lr"], group["momentum"]
        if mu == 0:
            p.data -= lr * grad           # the seed's update: theta <- theta - alpha grad J(theta)
            return
        buf = state.get("momentum_buffer")
        if buf is None:
            buf = state["momentum_buffer"] = array_module(p.data).array(grad, dtype=p.data.dtype)
        else:
            buf *= mu
            buf += (1 - group["dampening"]) * grad
        grad = grad + mu * buf if group["nesterov"] else buf
        p.data -= lr * grad

    def _update_group(self, items, group):
        # The fast path: the whole group in one fused Cython call (optim/_fused.py); whatever
        # it cannot take (NumPy backend active, other dtypes or layouts) runs _update above.
        for p, grad in _fused.sgd_group(items, self.state, group):
            self._update(p, grad, self.state[p], group)

    def __init__(
        self,
        params,
        lr=1e-3,
        momentum=0,
        dampening=0,
        weight_decay=0,
        nesterov=False,
        *,
        maximize=False,
    ):
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _check(self, group):
        self._check_lr(group)
        self._check_nonneg(group, "momentum", "dampening", "weight_decay")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise self._bad(
                "nesterov",
                group["nesterov"],
                f"Nesterov momentum needs momentum > 0 and dampening = 0, got "
                f"momentum={group['momentum']!r} and dampening={group['dampening']!r}",
            )
