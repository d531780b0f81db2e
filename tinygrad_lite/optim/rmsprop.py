"""RMSprop: divide each coordinate's step by a running RMS of its gradient.

Next: adagrad.py, the same idea with a sum over all steps instead of a running average.
"""

from tinygrad_lite.optim.optimizer import Optimizer, array_module

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    r"""RMSprop (Hinton's lecture notes; PyTorch's variant with momentum and centering).

    With gradient :math:`g_t`, smoothing :math:`\alpha_s` (the ``alpha`` argument):

    .. math::
        g_t &\leftarrow g_t + \lambda \theta_{t-1} \\
        v_t &= \alpha_s v_{t-1} + (1 - \alpha_s) g_t^2 \\
        \bar g_t &= \alpha_s \bar g_{t-1} + (1 - \alpha_s) g_t, \quad
            \tilde v_t = v_t - \bar g_t^2 \quad \text{(centered)}, \qquad
            \tilde v_t = v_t \quad \text{(plain)} \\
        b_t &= \mu b_{t-1} + g_t / (\sqrt{\tilde v_t} + \epsilon), \quad
            \theta_t = \theta_{t-1} - \alpha b_t \quad \text{(momentum } \mu > 0) \\
        \theta_t &= \theta_{t-1} - \alpha\, g_t / (\sqrt{\tilde v_t} + \epsilon)
            \quad \text{(no momentum)}

    ``centered`` normalizes by an estimate of the gradient's variance instead of its raw second
    moment. All buffers start at zero (no bias correction, unlike Adam).

    Parameters
    ----------
    params : iterable of parameters or of param-group dicts
    lr : float, default 1e-2
    alpha : float, default 0.99
        Smoothing constant of the running averages, in [0, 1).
    eps : float, default 1e-8
    weight_decay : float, default 0
    momentum : float, default 0
    centered : bool, default False
    maximize : bool, default False

    Examples
    --------
    >>> import numpy as np
    >>> class P:
    ...     def __init__(self, v): self.data, self.grad = np.array(v), None
    >>> p = P([1.0]); p.grad = P([2.0])
    >>> RMSprop([p], lr=0.01, alpha=0.75).step(); p.data.round(6)  # 1 - 0.01 * 2 / sqrt(0.25 * 4)
    array([0.98])
    """

    def __init__(
        self,
        params,
        lr=1e-2,
        alpha=0.99,
        eps=1e-8,
        weight_decay=0,
        momentum=0,
        centered=False,
        *,
        maximize=False,
    ):
        defaults = {
            "lr": lr,
            "alpha": alpha,
            "eps": eps,
            "weight_decay": weight_decay,
            "momentum": momentum,
            "centered": centered,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _check(self, group):
        self._check_lr(group)
        self._check_nonneg(group, "eps", "weight_decay", "momentum")
        self._check_unit("alpha", group["alpha"])

    def _update(self, p, grad, state, group):
        xp = array_module(p.data)
        lr, a, eps, mu = (group[k] for k in ("lr", "alpha", "eps", "momentum"))
        if not state:
            state["step"] = 0
            state["square_avg"] = xp.zeros_like(p.data)
        state["step"] += 1
        v = state["square_avg"]
        v *= a
        v += (1 - a) * grad * grad
        if group["centered"]:
            gbar = state.setdefault("grad_avg", xp.zeros_like(p.data))
            gbar *= a
            gbar += (1 - a) * grad
            # v - gbar^2 >= 0 in exact arithmetic; clamp so rounding cannot give sqrt(-1e-20)
            denom = xp.sqrt(xp.maximum(v - gbar * gbar, 0)) + eps
        else:
            denom = xp.sqrt(v) + eps
        if mu > 0:
            buf = state.setdefault("momentum_buffer", xp.zeros_like(p.data))
            buf *= mu
            buf += grad / denom
            p.data -= lr * buf
        else:
            p.data -= lr * grad / denom
