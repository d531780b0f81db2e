"""Gradient clipping (PyTorch's ``torch.nn.utils`` names): call it between backward() and step().

Exploding gradients (deep stacks, RNNs through many time steps) make a single step jump far out of
the region where the loss's linear approximation holds. Clipping bounds the step:

* ``clip_grad_norm_`` rescales *all* gradients together so their joint norm is at most
  ``max_norm`` -- the direction of the update is kept, only its length shrinks;
* ``clip_grad_value_`` clamps every gradient entry to ``[-clip_value, clip_value]`` -- simpler,
  but it changes the direction.

Both work in place on ``p.grad.data`` and skip parameters without a gradient.

Next: ../optim/, which consumes the clipped gradients.
"""

import math
import numbers

import numpy as np

__all__ = ["clip_grad_norm_", "clip_grad_value_"]


def _grads(parameters):
    if hasattr(parameters, "grad") and hasattr(parameters, "data"):
        parameters = [parameters]
    grads = []
    for p in parameters:
        g = getattr(p, "grad", None)
        if g is not None:
            grads.append(g.data if hasattr(g, "data") else g)
    return grads


def _xp(a):
    from tinygrad_lite.optim.optimizer import array_module

    return array_module(a)


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    r"""Scale all gradients in place so that their joint ``norm_type``-norm is at most ``max_norm``.

    The total norm treats every gradient as one long vector,

    .. math:: \|g\|_p = \Big(\sum_i \|g_i\|_p^p\Big)^{1/p}, \qquad \|g\|_\infty = \max_i \max |g_i|,

    and each gradient is multiplied by :math:`c = \min(1, \text{max\_norm} / (\|g\|_p + 10^{-6}))`.

    Parameters
    ----------
    parameters : parameter or iterable of parameters
        Parameters whose ``.grad`` is ``None`` are skipped.
    max_norm : float
        The largest allowed total norm.
    norm_type : float, default 2.0
        Any ``p > 0``, or ``float('inf')`` for the max norm.
    error_if_nonfinite : bool, default False
        Raise ``RuntimeError`` when the total norm is ``nan`` or ``inf`` instead of scaling by it
        (which turns the gradients into zeros and nans).
    foreach : None
        Accepted for PyTorch compatibility; ignored.

    Returns
    -------
    float
        The total norm *before* clipping (PyTorch returns it as a 0-d tensor). 0.0 when no
        parameter has a gradient.

    Examples
    --------
    >>> import numpy as np
    >>> class P:
    ...     def __init__(self, v): self.data, self.grad = np.array(v), None
    >>> p = P([0.0, 0.0]); p.grad = P([3.0, 4.0])
    >>> clip_grad_norm_([p], max_norm=1.0)
    5.0
    >>> p.grad.data.round(4)
    array([0.6, 0.8])
    """
    if isinstance(norm_type, str) and norm_type.lower() == "inf":
        norm_type = math.inf
    if isinstance(norm_type, bool) or not isinstance(norm_type, numbers.Real) or not norm_type > 0:
        raise ValueError(
            f"clip_grad_norm_: norm_type must be a number > 0 or inf, got norm_type={norm_type!r}"
        )
    if isinstance(max_norm, bool) or not isinstance(max_norm, numbers.Real) or math.isnan(max_norm):
        raise ValueError(f"clip_grad_norm_: max_norm must be a number, got max_norm={max_norm!r}")
    grads = _grads(parameters)
    if not grads:
        return 0.0
    p = float(norm_type)
    with np.errstate(over="ignore", invalid="ignore"):
        norms = []
        for g in grads:
            xp = _xp(g)
            a = xp.abs(g.astype(xp.float64).ravel())
            if a.size == 0:
                norms.append(0.0)
            elif p == math.inf:
                norms.append(float(a.max()))
            else:
                norms.append(float(xp.linalg.norm(a, ord=p)))
        v = np.asarray(norms, dtype=np.float64)
        total = float(v.max()) if p == math.inf else float(np.linalg.norm(v, ord=p))
        if error_if_nonfinite and not math.isfinite(total):
            raise RuntimeError(
                f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is "
                f"non-finite, got {total}; fix the nan/inf gradients (check the loss and the "
                "learning rate) or pass error_if_nonfinite=False to scale by it anyway"
            )
        coef = max_norm / (total + 1e-6)
        if coef < 1 or math.isnan(coef):
            for g in grads:
                g *= coef
    return total


def clip_grad_value_(parameters, clip_value, foreach=None):
    r"""Clamp every gradient entry in place to :math:`[-\text{clip\_value}, \text{clip\_value}]`.

    Parameters
    ----------
    parameters : parameter or iterable of parameters
    clip_value : float
        Must be >= 0.
    foreach : None
        Accepted for PyTorch compatibility; ignored.

    Examples
    --------
    >>> import numpy as np
    >>> class P:
    ...     def __init__(self, v): self.data, self.grad = np.array(v), None
    >>> p = P([0.0, 0.0, 0.0]); p.grad = P([-3.0, 0.5, 9.0])
    >>> clip_grad_value_([p], 1.0); p.grad.data
    array([-1. ,  0.5,  1. ])
    """
    if (
        isinstance(clip_value, bool)
        or not isinstance(clip_value, numbers.Real)
        or not clip_value >= 0
    ):
        raise ValueError(
            f"clip_grad_value_: clip_value must be a number >= 0, got clip_value={clip_value!r}"
        )
    for g in _grads(parameters):
        _xp(g).clip(g, -clip_value, clip_value, out=g)


from . import prune  # noqa: E402  (nn.utils.prune, as torch.nn.utils.prune)

__all__ += ["prune"]
