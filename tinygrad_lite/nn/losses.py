"""Loss functions: the seed's formulas, PyTorch's names, Keras' categorical losses.

Every loss compares a prediction with a target of the *same shape* (class labels: the shape
without the class axis). A mismatch raises instead of broadcasting: (N, 1) - (N,) would
silently become an (N, N) matrix of errors. ``reduction`` is ``'mean'`` (default), ``'sum'`` or
``'none'`` (the per-element losses).

Regression, with m predictions h and targets y:

* ``mse_loss``       (1/m)  sum (h - y)^2            -- PyTorch / Keras "mse"
* ``half_mse``       1/(2m) sum (h - y)^2            -- the seed's cost J; its gradient (h - y)/m
* ``l1_loss``        (1/m)  sum |h - y|              -- "mae"
* ``huber_loss``     (1/m)  sum [ |d| <= delta ? d^2/2 : delta (|d| - delta/2) ]

Classification:

* ``binary_cross_entropy``  -(1/m) sum [y log h + (1 - y) log(1 - h)] on probabilities h, clipped
  to [eps, 1 - eps] so log(0) never happens (the seed's logistic-regression cost);
* ``binary_cross_entropy_with_logits`` the same on logits z, as softplus(z) - y z (stable);
* ``cross_entropy``  -(1/m) sum_i log softmax(z_i)[y_i] on logits, labels or probabilities;
* ``nll_loss``       the same on log-probabilities;
* Keras' ``sparse_categorical_crossentropy`` / ``categorical_crossentropy`` on probabilities
  (or logits with ``from_logits=True``), arguments in Keras order (y_true, y_pred).

Next: module.py.
"""

import numpy as np

from ..errors import LabelError, ShapeError
from ..tensor import Tensor

_REDUCTIONS = ("mean", "sum", "none")


def _as_tensor(x, like=None):
    if isinstance(x, Tensor):
        return x
    a = np.asarray(x)
    if (
        like is not None
        and a.dtype.kind in "fiub"
        and like.dtype.kind == "f"
        and a.dtype.kind != "f"
        or like is not None
        and a.dtype.kind == "f"
    ):
        a = a.astype(like.dtype)
    return Tensor(a)


def _pair(op, input, target):
    input = _as_tensor(input)
    target = _as_tensor(target, input)
    if target.shape != input.shape and target.ndim != 0:
        hint = ""
        if input.size == target.size:
            hint = f"; reshape one of them, e.g. target.reshape{tuple(input.shape)}"
        raise ShapeError(
            f"{op}: prediction and target shapes differ, got input {input.shape} "
            f"and target {target.shape} (no broadcasting in losses){hint}"
        )
    return input, target


def _reduce(op, loss, reduction, count=None):
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean() if count is None else loss.sum() / count
    raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _check_reduction(op, reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


# ------------------------------------------------------------------ regression ---


def mse_loss(input, target, reduction="mean", half=False):
    """Mean squared error (1/m) sum (h - y)^2; ``half=True`` gives the seed's 1/(2m) form.

    >>> round(mse_loss(Tensor([1., 2., 3.]), Tensor([0., 0., 0.])).item(), 4)  # (1 + 4 + 9) / 3
    4.6667
    """
    input, target = _pair("mse_loss", input, target)
    d = input - target
    loss = d * d
    if half:
        loss = loss * 0.5
    return _reduce("mse_loss", loss, reduction)


def half_mse(input, target, reduction="mean"):
    """The seed's cost J = 1/(2m) sum (h - y)^2 (the 1/2 cancels the 2 of the derivative)."""
    return mse_loss(input, target, reduction, half=True)


def l1_loss(input, target, reduction="mean"):
    """Mean absolute error (1/m) sum |h - y| ("mae"); robust to outliers, gradient sign(h - y)."""
    input, target = _pair("l1_loss", input, target)
    return _reduce("l1_loss", (input - target).abs(), reduction)


mae = mean_absolute_error = l1_loss
mean_squared_error = mse_loss


def huber_loss(input, target, reduction="mean", delta=1.0):
    """Quadratic for small errors, linear for large: d^2/2 if |d| <= delta else
    delta (|d| - delta/2). Its gradient is the error clipped to [-delta, delta]."""
    if delta <= 0:
        raise ValueError(f"huber_loss: delta must be > 0, got {delta}")
    input, target = _pair("huber_loss", input, target)
    d = input - target
    a = d.abs()
    small = Tensor._wrap(a.data <= delta, False)
    loss = small.where(d * d * 0.5, (a - 0.5 * delta) * delta)
    return _reduce("huber_loss", loss, reduction)


def smooth_l1_loss(input, target, reduction="mean", beta=1.0):
    """PyTorch's SmoothL1: huber_loss(delta=beta) / beta."""
    return huber_loss(input, target, reduction, beta) * (1.0 / beta)


# ------------------------------------------------------------------ binary ---


def _check_range(op, t, what, hint):
    a = t.numpy()
    bad = a[~((a >= 0) & (a <= 1))]
    if bad.size:
        raise ValueError(f"{op}: {what} must be in [0, 1], got {bad[:5].tolist()}{hint}")


def binary_cross_entropy(input, target, weight=None, reduction="mean", eps=1e-7):
    """-(1/m) sum [y log h + (1 - y) log(1 - h)] on probabilities h (the seed's formula).

    h is clipped to [eps, 1 - eps] first, so a confident wrong answer costs -log(eps) ~ 16
    instead of infinity (inside the clip the gradient is (h - y) / (h (1 - h))).

    >>> round(binary_cross_entropy(Tensor([0.9, 0.2]), Tensor([1., 0.])).item(), 4)
    0.1643
    """
    input, target = _pair("binary_cross_entropy", input, target)
    _check_range(
        "binary_cross_entropy",
        input,
        "probabilities",
        "; pass logits to binary_cross_entropy_with_logits",
    )
    _check_range("binary_cross_entropy", target, "targets", "")
    h = input.clip(eps, 1 - eps)
    loss = -(target * h.log() + (1 - target) * (1 - h).log())
    if weight is not None:
        loss = loss * _as_tensor(weight, loss)
    return _reduce("binary_cross_entropy", loss, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):
    """Binary cross-entropy on logits z (h = sigmoid(z)), computed stably as
    softplus(z) - y z = max(z, 0) - y z + log(1 + e^-|z|); gradient sigmoid(z) - y.
    ``pos_weight`` p weighs the positive term: p y softplus(-z) + (1 - y) softplus(z)."""
    input, target = _pair("binary_cross_entropy_with_logits", input, target)
    _check_range("binary_cross_entropy_with_logits", target, "targets", "")
    if pos_weight is None:
        loss = input.softplus() - target * input
    else:
        p = _as_tensor(pos_weight, input)
        loss = p * target * (-input).softplus() + (1 - target) * input.softplus()
    if weight is not None:
        loss = loss * _as_tensor(weight, loss)
    return _reduce("binary_cross_entropy_with_logits", loss, reduction)


# ------------------------------------------------------------------ categorical ---


def _labels(op, target, num_classes, ignore_index=None):
    """Integer class labels as an int64 array; raises naming non-integer or out-of-range ones."""
    a = target.numpy() if isinstance(target, Tensor) else np.asarray(target)
    if a.dtype.kind == "f":
        bad = a[~np.isfinite(a) | (np.mod(np.nan_to_num(a), 1) != 0)]
        if bad.size:
            raise LabelError(
                f"{op}: class labels must be integers, got {bad[:5].tolist()}; "
                "pass integer class indices (or probabilities of the prediction's "
                "shape)"
            )
    elif a.dtype.kind not in "iub":
        raise LabelError(f"{op}: class labels must be integers, got dtype {a.dtype}")
    a = a.astype(np.int64, copy=False)   # no copy for int64 labels (a jit step binds them)
    valid = a != ignore_index if ignore_index is not None else np.ones(a.shape, bool)
    bad = a[valid & ((a < 0) | (a >= num_classes))]
    if bad.size:
        raise LabelError(
            f"{op}: class labels must be in [0, {num_classes}), got {np.unique(bad)[:5].tolist()}"
        )
    return a, valid


def _class_last(x):
    """(N, C, d1, ...) -> (N * d1 * ..., C)."""
    if x.ndim == 2:
        return x
    perm = (0,) + tuple(range(2, x.ndim)) + (1,)
    return x.permute(perm).reshape(-1, x.shape[1])


def _nll(op, logp, target, weight, ignore_index, reduction, label_smoothing=0.0):
    """Shared by nll_loss and cross_entropy: logp (N, C, ...) log-probabilities, integer target
    (N, ...). loss_i = -w[y_i] logp_i[y_i], mean = sum / sum_i w[y_i] (PyTorch)."""
    _check_reduction(op, reduction)
    if logp.ndim == 1:
        logp, target = (
            logp.unsqueeze(0),
            np.asarray(target.numpy() if isinstance(target, Tensor) else target).reshape(1),
        )
    t_shape = tuple(np.shape(target.numpy() if isinstance(target, Tensor) else target))
    want = (logp.shape[0],) + tuple(logp.shape[2:])
    if t_shape != want:
        raise ShapeError(
            f"{op}: target shape must be the input's without the class axis 1, got "
            f"input {logp.shape} and target {t_shape} (expected {want})"
        )
    c = logp.shape[1]
    labels, valid = _labels(op, target, c, ignore_index)
    flat_lab, flat_valid = labels.reshape(-1), valid.reshape(-1)
    lp = _class_last(logp)
    safe = np.where(flat_valid, flat_lab, 0)
    picked = lp[np.arange(lp.shape[0]), safe]
    w = np.ones(c) if weight is None else np.asarray(_as_tensor(weight).numpy(), np.float64)
    if w.shape != (c,):
        raise ShapeError(f"{op}: weight must have one entry per class ({c},), got {w.shape}")
    wi = (w[safe] * flat_valid).astype(lp.dtype)
    wi_t = Tensor._wrap(lp.xp.asarray(wi), False)
    loss = -(picked * wi_t)
    if label_smoothing:
        wrow = Tensor._wrap(lp.xp.asarray(w.astype(lp.dtype)), False)
        vmask = Tensor._wrap(lp.xp.asarray(flat_valid.astype(lp.dtype)), False)
        smooth = -(lp * wrow).sum(axis=1) * vmask * (1.0 / c)
        loss = loss * (1 - label_smoothing) + smooth * label_smoothing
    if reduction == "none":
        return loss.reshape(t_shape)
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / float(wi.sum())


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """Negative log-likelihood of integer labels given log-probabilities (N, C) or
    (N, C, d1, ...): -(1/m) sum_i logp_i[y_i] (weighted mean with ``weight``)."""
    return _nll("nll_loss", _as_tensor(input), target, weight, ignore_index, reduction)


def cross_entropy(
    input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0
):
    """Cross-entropy of logits (N, C) or (N, C, d1, ...) against integer labels (N, d1, ...) or
    class probabilities of the input's shape: -sum_c t_c log softmax(z)_c (PyTorch semantics).

    ``label_smoothing`` eps mixes the target with the uniform distribution: t = (1 - eps) t + eps/C.
    Softmax and log are fused (log_softmax), so large logits do not overflow.

    >>> round(cross_entropy(Tensor([[2., 0., 0.]]), [0]).item(), 4)   # -log(e^2 / (e^2 + 2))
    0.2395
    """
    op = "cross_entropy"
    _check_reduction(op, reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be in [0, 1], got {label_smoothing}")
    input = _as_tensor(input)
    tshape = tuple(np.shape(target.numpy() if isinstance(target, Tensor) else target))
    tkind = (target.dtype if isinstance(target, Tensor) else np.asarray(target).dtype).kind
    if tkind == "f" and tshape == tuple(input.shape):
        return _soft_ce(op, input, target, weight, reduction, label_smoothing, axis=1)
    if (input.ndim == 2 and weight is None and reduction == "mean" and not label_smoothing
            and input.dtype.kind == "f" and tshape == (input.shape[0],) and input.shape[0]):
        labels, valid = _labels(op, target, input.shape[1], ignore_index)
        if valid.all():   # the common case: one fused Function (ops/nn.py)
            if isinstance(target, Tensor) and target.data is labels:
                labels = target
            return softmax_cross_entropy(input, labels)
    logp = input.log_softmax(axis=1 if input.ndim > 1 else 0)
    return _nll(op, logp, target, weight, ignore_index, reduction, label_smoothing)


def softmax_cross_entropy(logits, labels):
    """Mean cross-entropy of logits (N, C) and int64 labels (N,) in [0, C), as one fused
    Function: -(1/N) sum_i log softmax(z_i)[y_i] (``cross_entropy``'s common case).

    >>> round(softmax_cross_entropy(Tensor([[2., 0., 0.]]), np.array([0])).item(), 4)
    0.2395
    """
    from ..ops.nn import SoftmaxCrossEntropy

    # the labels go in as a (non-differentiable) input, not an attribute, so that a captured
    # step (tinygrad_lite.jit) wires them to its argument instead of freezing one batch's labels
    logits = _as_tensor(logits)
    if not isinstance(labels, Tensor):   # labels follow the logits to the GPU
        labels = Tensor._wrap(np.asarray(labels, np.int64) if logits.xp is np else
                              logits.xp.asarray(labels, logits.xp.int64), False)
    return SoftmaxCrossEntropy.apply(logits, labels)


def _soft_ce(op, logits, target, weight, reduction, label_smoothing, axis, logp=None):
    target = _as_tensor(target, logits)
    axis = axis % max(logits.ndim, 1)
    c = logits.shape[axis]
    if label_smoothing:
        target = target * (1 - label_smoothing) + label_smoothing / c
    if logp is None:
        logp = logits.log_softmax(axis=axis)
    if weight is not None:
        wshape = [1] * logits.ndim
        wshape[axis] = c
        logp = logp * _as_tensor(weight, logits).reshape(wshape)
    loss = -(target * logp).sum(axis=axis)
    return _reduce(op, loss, reduction)


def _keras_logp(op, y_pred, from_logits, axis, eps=1e-7):
    if from_logits:
        return y_pred.log_softmax(axis=axis)
    _check_range(
        op, y_pred, "predicted probabilities", " (these look like logits); pass from_logits=True"
    )
    p = y_pred / y_pred.sum(axis=axis, keepdims=True)
    return p.clip(eps, 1 - eps).log()


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, axis=-1, reduction="mean"):
    """Keras' loss for integer labels: -(1/m) sum_i log p_i[y_i], with y_pred probabilities
    (N, C) (renormalized and clipped to [1e-7, 1 - 1e-7], as Keras) or logits with
    ``from_logits=True``. Arguments in Keras order: (y_true, y_pred). y_true may be (N,) or (N, 1).
    """
    op = "sparse_categorical_crossentropy"
    y_pred = _as_tensor(y_pred)
    y = y_true.numpy() if isinstance(y_true, Tensor) else np.asarray(y_true)
    axis = axis % y_pred.ndim
    want = tuple(s for i, s in enumerate(y_pred.shape) if i != axis)
    if y.shape == want + (1,):
        y = y.reshape(want)
    if y.shape != want:
        raise ShapeError(
            f"{op}: y_true must be y_pred's shape without the class axis, got "
            f"y_true {y.shape} and y_pred {y_pred.shape} (expected {want})"
        )
    logp = _keras_logp(op, y_pred, from_logits, axis)
    if axis != 1 and logp.ndim > 1:
        logp = (
            logp.swapaxes(axis, 1)
            if logp.ndim == 2
            else logp.permute((0, axis) + tuple(i for i in range(1, logp.ndim) if i != axis))
        )
    return _nll(op, logp, y, None, None, reduction)


def categorical_crossentropy(
    y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1, reduction="mean"
):
    """Keras' loss for one-hot (or soft) targets: -(1/m) sum_i sum_c y_ic log p_ic, arguments in
    Keras order (y_true, y_pred); y_pred probabilities unless ``from_logits=True``."""
    op = "categorical_crossentropy"
    y_pred = _as_tensor(y_pred)
    y_true, y_pred = _pair(op, y_pred, y_true)[::-1]
    logp = _keras_logp(op, y_pred, from_logits, axis)
    return _soft_ce(op, y_pred, y_true, None, reduction, label_smoothing, axis, logp=logp)


def binary_crossentropy(y_true, y_pred, from_logits=False, reduction="mean"):
    """Keras' name and argument order for binary cross-entropy."""
    if from_logits:
        return binary_cross_entropy_with_logits(y_pred, y_true, reduction=reduction)
    return binary_cross_entropy(y_pred, y_true, reduction=reduction)


# ------------------------------------------------------------------ regularization ---


def _params(parameters):
    if hasattr(parameters, "parameters") and callable(parameters.parameters):
        parameters = parameters.parameters()
    return [parameters] if isinstance(parameters, Tensor) else list(parameters)


def l1_penalty(parameters, lam=0.01):
    """lam * sum |w| over the given parameters (or a Module's): add it to the loss. Its gradient
    lam * sign(w) pushes weights to exactly zero (sparse models)."""
    ps = _params(parameters)
    return sum((p.abs().sum() for p in ps[1:]), ps[0].abs().sum()) * lam


def l2_penalty(parameters, lam=0.01, half=False):
    """lam * sum w^2 (Keras' l2), or lam/2 sum w^2 with ``half=True`` (then its gradient lam w
    equals SGD's ``weight_decay=lam``). Shrinks all weights toward zero (weight decay).

    Pass only the weights to leave biases alone:
    ``l2_penalty([p for n, p in model.named_parameters() if n.endswith("weight")], 1e-4)``.
    """
    ps = _params(parameters)
    total = sum(((p * p).sum() for p in ps[1:]), (ps[0] * ps[0]).sum())
    return total * (lam * (0.5 if half else 1.0))
