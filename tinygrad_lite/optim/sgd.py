"""Stochastic gradient descent: the seed's update and its momentum variants.

Next: adam.py, per-coordinate step sizes from running moments of the gradient.
"""

import numpy as np

from tinygrad_lite import backends as _backends
from tinygrad_lite.backends import threads as _threads
from tinygrad_lite.optim.optimizer import Optimizer, array_module

from tinygrad_lite.backends._ext import load_cpu_kernels

_cpu, _ = load_cpu_kernels()   # None: the extension is not built (or disabled); NumPy updates

__all__ = ["SGD"]

# ---- the fused path (shared with adam.py) ----------------------------------------------------
# tinygrad_lite._cpu.sgd_step / adam_step (kernels/cpu/optim.pxi) do a whole update in one pass
# over each parameter. They trust their inputs, so every check happens here; whatever does not
# pass runs the NumPy code, which stays the reference.

_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)
_KERNELS = {}
if _cpu is not None:
    for _name in ("sgd_step", "adam_step"):
        # the float/double specializations, picked by dtype (skips Cython's fused dispatch)
        _sig = getattr(_cpu, _name).__signatures__
        _KERNELS[_name] = {_F32: _sig["float"], _F64: _sig["double"]}


def _fused_kernel(name, data, grad):
    """The fused kernel ``name`` specialized for ``data``'s dtype, or None when the NumPy path
    must run: extension not built, a backend other than ``cython`` active (so
    ``TINYGRAD_LITE_BACKEND=numpy`` and ``backends.use("numpy")`` give the NumPy path), not a
    NumPy float32/float64 array, or a gradient of another dtype."""
    if (
        not _KERNELS
        or type(data) is not np.ndarray
        or type(grad) is not np.ndarray
        or grad.dtype != data.dtype
        or data.dtype not in (_F32, _F64)
        or _backends.current().name != "cython"
    ):
        return None
    return _KERNELS[name][data.dtype]


def _fused_arrays(data, grad, *state):
    """1-D C-contiguous views ``[param, grad, *state]`` for a fused kernel, or None when the
    parameter or a state array (None entries pass through) has another dtype, shape or layout.
    A non-contiguous gradient is copied (it is only read)."""
    dt, shape = data.dtype, data.shape
    if not data.flags.c_contiguous:
        return None
    for a in state:
        if a is not None and (
            type(a) is not np.ndarray or a.dtype != dt or a.shape != shape
            or not a.flags.c_contiguous
        ):
            return None
    if not grad.flags.c_contiguous:
        grad = np.ascontiguousarray(grad)
    return [data.reshape(-1), grad.reshape(-1)] + [
        None if a is None else a.reshape(-1) for a in state
    ]


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

    With the Cython backend active and NumPy float32/float64 arrays the update runs as one fused
    pass (``tinygrad_lite._cpu.sgd_step``, kernels/cpu/optim.pxi); otherwise the NumPy code in
    ``_update`` runs -- the reference the fused kernel is tested against.

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

    def _update(self, p, grad, state, group):
        lr, mu = group["lr"], group["momentum"]
        kernel = _fused_kernel("sgd_step", p.data, grad)
        if kernel is not None:
            buf = state.get("momentum_buffer") if mu != 0 else None
            first = mu != 0 and buf is None
            if first:  # the kernel fills it with g on the first step
                buf = np.empty_like(p.data)
            flat = _fused_arrays(p.data, grad, buf)
            if flat is not None:
                if first:
                    state["momentum_buffer"] = buf
                kernel(*flat, lr, mu, group["dampening"], group["nesterov"], first,
                       _threads._num_threads)
                return
        if mu != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = array_module(p.data).array(
                    grad, dtype=p.data.dtype
                )
            else:
                buf *= mu
                buf += (1 - group["dampening"]) * grad
            grad = grad + mu * buf if group["nesterov"] else buf
        p.data -= lr * grad
