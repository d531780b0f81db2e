"""Numerical gradient checks: compare autograd against central differences in float64.

The check contracts the op's output with a *random* weight W and differentiates the scalar
L(x) = sum(W * f(x)). With ``.sum()`` (W = 1) a backward rule that forgets to multiply by the
upstream gradient would still pass; a random W catches it.

Central difference: dL/dx_i ~ (L(x + eps e_i) - L(x - eps e_i)) / (2 eps), error O(eps^2).

Second order (``gradgradcheck``): with a second random weight V on the gradients,
M(x) = sum_k <V_k, dL/dx_k(x)>; its gradient needs backward through the backward pass
(``create_graph=True``) and is compared with central differences of M, where M itself is computed
with first-order autograd.
"""

import numpy as np

from ..autograd import grad as autograd_grad
from ..tensor import Tensor


class GradcheckError(AssertionError):
    """Analytic and numerical gradients disagree."""


def _as_inputs(inputs):
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor):
            raise TypeError(f"gradcheck: input {i} must be a Tensor, got {type(t).__name__}")
        if t.requires_grad and t.dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} must be float64 for a meaningful check, got "
                            f"{t.dtype}; build it with dtype=np.float64")
    return inputs


def _numeric_grad(scalar_fn, inputs, eps):
    """Central differences of scalar_fn() over every element of every input needing grad."""
    grads = []
    for t in inputs:
        if not t.requires_grad:
            grads.append(None)
            continue
        if not t.data.flags.c_contiguous:
            raise ValueError("gradcheck: inputs must be C-contiguous arrays, got a strided view; "
                             "pass np.ascontiguousarray(...)")
        g = np.zeros(t.shape, dtype=np.float64)
        flat, gflat = t.data.reshape(-1), g.reshape(-1)   # views: writing flat perturbs t
        for i in range(flat.size):
            orig = flat[i]
            flat[i] = orig + eps
            hi = scalar_fn()
            flat[i] = orig - eps
            lo = scalar_fn()
            flat[i] = orig
            gflat[i] = (hi - lo) / (2 * eps)
        grads.append(g)
    return grads


def assert_gradients_close(analytic, numeric, names=None, atol=1e-5, rtol=1e-3, op="op",
                           order="first"):
    """Raise ``GradcheckError`` naming the op, the input, the worst element and both values."""
    for k, (a, n) in enumerate(zip(analytic, numeric)):
        if n is None:
            continue
        name = names[k] if names else f"input {k}"
        a = np.zeros_like(n) if a is None else np.asarray(a, dtype=np.float64)
        if a.shape != n.shape:
            raise GradcheckError(f"{op}: {order}-order gradient of {name} has shape {a.shape}, "
                                 f"expected {n.shape}")
        err = np.abs(a - n) - (atol + rtol * np.abs(n))
        if err.size and (err.max() > 0 or not np.all(np.isfinite(a))):
            worst = np.unravel_index(int(np.nanargmax(np.where(np.isfinite(err), err, np.inf))),
                                     n.shape)
            raise GradcheckError(
                f"{op}: {order}-order gradient of {name} is wrong at index {tuple(map(int, worst))}"
                f": analytic {a[worst]:.8g} vs numeric {n[worst]:.8g} (atol={atol}, rtol={rtol}); "
                f"max abs difference {np.nanmax(np.abs(a - n)):.3g}")


def _numpy_or_none(g):
    return None if g is None else g.numpy()


def _weights(shape, rng):
    return rng.standard_normal(shape)


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0, op=None, names=None):
    """Check first derivatives of ``fn(*inputs)`` against central differences.

    Parameters
    ----------
    fn : callable taking Tensors and returning a Tensor
    inputs : Tensors (float64 where ``requires_grad``); the others are held constant
    eps, atol, rtol : step and tolerances: |analytic - numeric| <= atol + rtol * |numeric|
    seed : seeds the random upstream weight

    Returns True or raises ``GradcheckError``.

    Examples
    --------
    >>> x = Tensor(np.random.rand(3, 4), requires_grad=True)
    >>> gradcheck(lambda x: x.tanh(), [x])
    True
    """
    inputs = _as_inputs(inputs)
    op = op or getattr(fn, "__name__", "fn")
    rng = np.random.default_rng(seed)
    out = fn(*inputs)
    w = Tensor(_weights(out.shape, rng))
    diff = [t for t in inputs if t.requires_grad]
    if not out.requires_grad:
        raise GradcheckError(f"{op}: the output does not require grad; nothing to check")
    got = autograd_grad((out * w).sum(), diff, allow_unused=True)
    it = iter(got)
    analytic = [_numpy_or_none(next(it)) if t.requires_grad else None for t in inputs]

    def loss():
        return float((fn(*inputs).data * w.data).sum())

    numeric = _numeric_grad(loss, inputs, eps)
    assert_gradients_close(analytic, numeric, names, atol, rtol, op, "first")
    return True


def gradgradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0, op=None, names=None):
    """Check second derivatives: differentiate <V, dL/dx> (L = sum(W * fn(x))) by autograd
    through ``create_graph=True`` and compare with central differences of it."""
    inputs = _as_inputs(inputs)
    op = op or getattr(fn, "__name__", "fn")
    rng = np.random.default_rng(seed)
    diff = [t for t in inputs if t.requires_grad]
    out = fn(*inputs)
    w = Tensor(_weights(out.shape, rng))
    vs = [Tensor(_weights(t.shape, rng)) for t in diff]

    def first(create_graph):
        o = fn(*inputs)
        gs = autograd_grad((o * w).sum(), diff, create_graph=create_graph, allow_unused=True)
        return gs

    gs = first(True)
    m = None
    for g, v in zip(gs, vs):
        if g is not None and g.requires_grad:
            term = (g * v).sum()
            m = term if m is None else m + term
    if m is None:
        analytic_diff = [np.zeros(t.shape) for t in diff]   # gradient is constant in x
    else:
        got = autograd_grad(m, diff, allow_unused=True)
        analytic_diff = [np.zeros(t.shape) if g is None else g.numpy() for g, t in zip(got, diff)]
    it = iter(analytic_diff)
    analytic = [next(it) if t.requires_grad else None for t in inputs]

    def loss():
        total = 0.0
        for g, v in zip(first(False), vs):
            if g is not None:
                total += float((g.data * v.data).sum())
        return total

    numeric = _numeric_grad(loss, inputs, eps)
    assert_gradients_close(analytic, numeric, names, atol, rtol, op, "second")
    return True
