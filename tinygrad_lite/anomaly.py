"""Anomaly mode (as PyTorch's ``detect_anomaly``): find the op that first made a NaN or Inf.

Off, it costs ``Function.apply`` and the backward walk one global read each
(``autograd._anomaly``). On, every forward output and every gradient a backward returns is
checked, and each recorded op keeps the stack of the call that created it, so the error points at
the line of user code.
"""

import traceback
from contextlib import ContextDecorator

from . import autograd
from .errors import AnomalyError


class detect_anomaly(ContextDecorator):
    """Raise ``AnomalyError`` at the first op whose output, or whose backward's gradient, holds
    NaN or Inf, naming the op and showing where it was created.

    >>> with detect_anomaly():
    ...     loss = model(x).sum()      # doctest: +SKIP
    ...     loss.backward()            # doctest: +SKIP
    """

    def __enter__(self):
        autograd._anomaly += 1
        return self

    def __exit__(self, *exc):
        autograd._anomaly -= 1
        return False


def is_anomaly_enabled():
    return autograd._anomaly > 0


def _nonfinite(xp, a):
    return getattr(a, "dtype", None) is not None and a.dtype.kind in "fc" and \
        not bool(xp.isfinite(a).all())


def check_forward(cls, ctx, arrays, out):
    """Called by ``Function.apply`` in anomaly mode: keep the creation stack, check the output."""
    ctx.creation_stack = traceback.format_stack()[:-3]   # without apply and the hook
    if _nonfinite(ctx.xp, out):
        bad_in = [i for i, a in enumerate(arrays) if _nonfinite(ctx.xp, a)]
        why = (f"its input(s) {bad_in} already held NaN/Inf (they came from outside the graph)"
               if bad_in else "its inputs were finite")
        raise _error(f"detect_anomaly: op {cls.op_name!r} produced NaN or Inf in its forward "
                     f"output, got {why}", ctx)


def checked_backward(node, g, run):
    """Called by the backward walk in anomaly mode: run one node's backward (``run(fn, ctx, g)``,
    the walk's own call), check its result."""
    depth, autograd._anomaly = autograd._anomaly, 0   # its own ops are checked as one unit
    try:
        in_grads = run(node.fn, node.ctx, g)
    finally:
        autograd._anomaly = depth
    for i, gi in enumerate(in_grads if isinstance(in_grads, tuple) else (in_grads,)):
        data = gi.data if isinstance(gi, autograd._Tensor) else gi   # lean walk: arrays
        if gi is not None and _nonfinite(node.ctx.xp, data):
            g_arr = g.data if isinstance(g, autograd._Tensor) else g
            up = ("the incoming gradient already held NaN/Inf" if _nonfinite(node.ctx.xp, g_arr)
                  else "the incoming gradient was finite")
            raise _error(f"detect_anomaly: the backward of op {node.fn.op_name!r} returned NaN "
                         f"or Inf for input {i}, got it where {up}", node.ctx)
    return in_grads


def _error(msg, ctx):
    stack = getattr(ctx, "creation_stack", None)
    if stack:
        msg += ("; the forward op was created at (most recent call last):\n"
                + "".join(stack[-10:]).rstrip())
    return AnomalyError(msg)
