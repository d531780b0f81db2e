"""Adam and AdamW: steps scaled per coordinate by running moments of the gradient.

Next: rmsprop.py and adagrad.py, the two ideas Adam combines.
"""

import math

from tinygrad_lite.optim import _fused
from tinygrad_lite.optim.optimizer import Optimizer, array_module

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    r"""Adam (Kingma & Ba, 2015) with bias correction and the AMSGrad option (PyTorch's).

    With gradient :math:`g_t` (step :math:`t = 1, 2, \dots`):

    .. math::
        g_t &\leftarrow g_t + \lambda \theta_{t-1}
            \quad \text{(L2 weight decay, Adam; AdamW decays } \theta \text{ directly)} \\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t \qquad
        v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        \hat m_t &= m_t / (1 - \beta_1^t) \qquad \hat v_t = v_t / (1 - \beta_2^t) \\
        \theta_t &= \theta_{t-1} - \alpha\, \hat m_t / (\sqrt{\hat v_t} + \epsilon)

    ``m`` and ``v`` start at zero, so early on they are biased towards zero; dividing by
    :math:`1 - \beta^t` removes that bias. With ``amsgrad=True`` the denominator uses the running
    maximum :math:`\max_{s \le t} v_s` (bias-corrected) so the step size never grows back.

    ``_update`` below is the update in NumPy, one parameter at a time -- the reference. With the
    Cython backend active (``tinygrad_lite.backends.current().name == "cython"``) and NumPy
    float32/float64 arrays, ``step`` instead updates the whole param group in one fused kernel
    call (``tinygrad_lite._cpu.adam_step_many``, optim/_fused.py): one pass over each parameter,
    the same operations in the same order.

    Parameters
    ----------
    params : iterable of parameters or of param-group dicts
    lr : float, default 1e-3
    betas : (float, float), default (0.9, 0.999)
        Decay rates of the first and second moment, each in [0, 1).
    eps : float, default 1e-8
        Added to the denominator for stability.
    weight_decay : float, default 0
    amsgrad : bool, default False
    maximize : bool, default False
    decoupled_weight_decay : bool, default False
        Decay the weights directly (AdamW) instead of adding an L2 term to the gradient.

    Examples
    --------
    >>> import numpy as np
    >>> class P:
    ...     def __init__(self, v): self.data, self.grad = np.array(v), None
    >>> p = P([1.0]); p.grad = P([3.0])
    >>> Adam([p], lr=0.1).step(); p.data.round(6)   # the first step has size lr, whatever |g|
    array([0.9])
    """

    def __init__(
        self,
        params,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0,
        amsgrad=False,
        *,
        maximize=False,
        decoupled_weight_decay=False,
    ):
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    def _check(self, group):
        self._check_lr(group)
        self._check_nonneg(group, "eps", "weight_decay")
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise self._bad("betas", betas, "betas must be a pair (beta1, beta2)")
        self._check_unit("betas[0]", betas[0])
        self._check_unit("betas[1]", betas[1])

    def _update(self, p, grad, state, group):
        xp = array_module(p.data)
        lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = xp.zeros_like(p.data)
            state["exp_avg_sq"] = xp.zeros_like(p.data)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = xp.zeros_like(p.data)
        state["step"] += 1
        t = state["step"]
        if wd != 0 and group["decoupled_weight_decay"]:
            p.data *= 1 - lr * wd  # AdamW: shrink theta itself, not through m and v
        m, v = state["exp_avg"], state["exp_avg_sq"]
        # In place, through one scratch array: the step costs a few passes over the parameter
        # and allocates nothing after the first call.
        tmp = state.get("_scratch")
        if tmp is None or tmp.shape != m.shape or tmp.dtype != m.dtype:
            tmp = state["_scratch"] = xp.empty_like(m)
        m *= b1
        xp.multiply(grad, 1 - b1, out=tmp)
        m += tmp                                   # m = b1 m + (1 - b1) g
        v *= b2
        xp.multiply(grad, grad, out=tmp)
        tmp *= 1 - b2
        v += tmp                                   # v = b2 v + (1 - b2) g^2
        if group["amsgrad"]:
            if "max_exp_avg_sq" not in state:  # amsgrad switched on mid-run (param group edit)
                state["max_exp_avg_sq"] = v.copy()
            vmax = state["max_exp_avg_sq"]
            xp.maximum(vmax, v, out=vmax)
            v = vmax
        step_size = lr / (1 - b1**t)
        xp.sqrt(v, out=tmp)
        tmp /= math.sqrt(1 - b2**t)
        tmp += eps                                 # denom = sqrt(v_hat) + eps
        xp.divide(m, tmp, out=tmp)
        tmp *= step_size
        p.data -= tmp                              # theta -= lr m_hat / denom

    def _update_group(self, items, group):
        # The fast path: the whole group in one fused Cython call (optim/_fused.py); whatever
        # it cannot take (NumPy backend active, other dtypes or layouts) runs _update above.
        for p, grad in _fused.adam_group(items, self.state, group):
            self._update(p, grad, self.state[p], group)


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter, 2019), PyTorch's defaults.

    The decay shrinks the weights directly before the Adam step,

    .. math:: \theta \leftarrow \theta (1 - \alpha \lambda), \qquad
              \theta \leftarrow \theta - \alpha\, \hat m_t / (\sqrt{\hat v_t} + \epsilon),

    instead of adding :math:`\lambda\theta` to the gradient. With Adam+L2 the penalty's gradient is
    divided by :math:`\sqrt{\hat v}` like any other, so weights with large gradients are hardly
    decayed; AdamW decays every weight at the same rate.

    Examples
    --------
    >>> import numpy as np
    >>> class P:
    ...     def __init__(self, v): self.data, self.grad = np.array(v), None
    >>> p = P([1.0]); p.grad = P([0.0])
    >>> AdamW([p], lr=0.1, weight_decay=0.5).step(); p.data   # 1 * (1 - 0.1 * 0.5)
    array([0.95])
    """

    def __init__(
        self,
        params,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=1e-2,
        amsgrad=False,
        *,
        maximize=False,
    ):
        super().__init__(
            params,
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
            decoupled_weight_decay=True,
        )
