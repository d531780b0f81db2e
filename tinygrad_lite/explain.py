"""Explanations by gradients: which input values moved the model's score for a class.

    >>> s = explain.saliency(model, x)                        # |d f_c / dx|
    >>> a, check = explain.integrated_gradients(model, x, return_check=True)
    >>> check["gap"]       # sum(a) - (f(x) - f(baseline)): near 0 (completeness)
    >>> g = explain.smoothgrad(model, x)                      # mean gradient over noisy copies
    >>> explain.plot_digits(x, {"saliency": s, "IG": a}, "why.png", shape=(8, 8))

``model`` is anything callable on a Tensor batch that returns (N, classes) scores: an
``nn.Module`` or a Keras-style ``models.Sequential``. The score f_c is the output for class c
(``target``; default: the predicted class), taken as the model returns it (logits, or
probabilities after a softmax layer). Gradients come from ``tl.grad``, so no parameter's
``.grad`` changes, and the model runs in eval mode (restored afterwards).

Integrated gradients (Sundararajan et al. 2017): a_i = (x_i - b_i) * integral_0^1
df_c/dx_i (b + t (x - b)) dt, computed with the trapezoid rule on ``steps`` intervals. Its
completeness axiom, sum_i a_i = f_c(x) - f_c(b), holds up to the quadrature error, which
``return_check=True`` reports. SmoothGrad (Smilkov et al. 2017) averages gradients at x plus
Gaussian noise of standard deviation ``sigma * (max x - min x)``.
"""

import numpy as np

from .autograd import grad
from .tensor import Tensor


class _EvalMode:
    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.was = getattr(self.model, "training", None)
        if hasattr(self.model, "eval"):
            self.model.eval()

    def __exit__(self, *exc):
        if self.was is not None and hasattr(self.model, "train"):
            self.model.train(self.was)
        return False


def _batch(x):
    x = np.asarray(x.data if isinstance(x, Tensor) else x)
    return x.astype(np.float32) if x.dtype.kind != "f" else x


def _dtype(model, x):
    for p in getattr(model, "parameters", lambda: [])():
        return p.dtype
    return x.dtype


def scores(model, x, target=None):
    """``(f_c(x) per sample, target)``: the model's output for class ``target`` (default: the
    argmax of the output)."""
    x = _batch(x)
    with _EvalMode(model):
        out = _forward(model, Tensor(x.astype(_dtype(model, x), copy=False)))
    out = out.data.reshape(len(x), -1)
    target = _targets(out, target, "scores")
    return out[np.arange(len(x)), target], target


def _forward(model, t):
    out = model(t)
    if not isinstance(out, Tensor):
        raise TypeError(f"explain: the model must return a Tensor of scores, got "
                        f"{type(out).__name__}")
    return out


def _targets(out, target, op):
    n, c = out.shape
    if target is None:
        return out.argmax(-1)
    t = np.broadcast_to(np.asarray(target, dtype=np.int64), (n,)).copy()
    if (t < 0).any() or (t >= c).any():
        raise ValueError(f"{op}: target must lie in [0, {c}), got {np.unique(t).tolist()}")
    return t


def gradients(model, x, target=None):
    """d f_c / dx for each sample of ``x`` (same shape as ``x``), and the targets used."""
    x = _batch(x).astype(_dtype(model, _batch(x)), copy=False)
    with _EvalMode(model):
        xt = Tensor(x, requires_grad=True)
        out = _forward(model, xt)
        out2 = out.reshape(len(x), -1)
        t = _targets(out2.data, target, "gradients")
        picked = out2[np.arange(len(x)), t].sum()   # samples are independent: one backward
        (g,) = grad(picked, xt)
    return g.data, t


def saliency(model, x, target=None):
    """Vanilla gradient saliency: |d f_c / dx| (Simonyan et al. 2014), shaped like ``x``."""
    g, _ = gradients(model, x, target)
    return np.abs(g)


def integrated_gradients(model, x, target=None, baseline=None, steps=64, batch_size=512,
                         return_check=False):
    """Integrated-gradient attributions of ``x`` (shaped like ``x``).

    ``baseline`` defaults to zeros (a black image); ``target`` to the class predicted at x.
    With ``return_check``, also returns a dict: ``total`` (sum of attributions per sample),
    ``delta`` (f_c(x) - f_c(baseline)) and ``gap`` (their difference; the completeness check).
    """
    if steps < 1:
        raise ValueError(f"integrated_gradients: steps must be >= 1, got {steps}")
    x = _batch(x)
    b = np.zeros_like(x) if baseline is None else np.broadcast_to(
        np.asarray(baseline, dtype=x.dtype), x.shape)
    fx, target = scores(model, x, target)
    alphas = np.linspace(0.0, 1.0, steps + 1)
    w = np.full(steps + 1, 1.0 / steps)
    w[0] = w[-1] = 0.5 / steps                       # the trapezoid rule
    total = np.zeros(x.shape, dtype=np.float64)
    n = len(x)
    per = max(1, batch_size // max(n, 1))            # path points per batch
    for k in range(0, steps + 1, per):
        a = alphas[k:k + per]
        path = (b[None] + a.reshape((-1,) + (1,) * x.ndim) * (x - b)[None]).reshape(
            (-1,) + x.shape[1:])
        g, _ = gradients(model, path, np.tile(target, len(a)))
        g = g.reshape((len(a),) + x.shape).astype(np.float64)
        total += np.tensordot(w[k:k + per], g, axes=1)
    attr = (x - b).astype(np.float64) * total
    if not return_check:
        return attr
    fb, _ = scores(model, b, target)
    s = attr.reshape(n, -1).sum(-1)
    delta = fx.astype(np.float64) - fb.astype(np.float64)
    return attr, {"total": s, "delta": delta, "gap": s - delta}


def smoothgrad(model, x, target=None, samples=32, sigma=0.15, seed=0, absolute=True):
    """SmoothGrad: the mean gradient over ``samples`` noisy copies of ``x`` (noise std
    ``sigma`` times each sample's value range); its absolute value unless ``absolute=False``."""
    x = _batch(x)
    _, target = scores(model, x, target)
    rng = np.random.default_rng(seed)
    span = (x.reshape(len(x), -1).max(-1) - x.reshape(len(x), -1).min(-1)).reshape(
        (-1,) + (1,) * (x.ndim - 1))
    noisy = x[None] + rng.normal(size=(samples,) + x.shape).astype(x.dtype) * \
        (sigma * span).astype(x.dtype)
    g, _ = gradients(model, noisy.reshape((-1,) + x.shape[1:]), np.tile(target, samples))
    g = g.reshape((samples,) + x.shape).mean(0)
    return np.abs(g) if absolute else g


def plot_digits(images, maps, path, shape=None, titles=None):
    """Draw each image (row) next to its attribution maps (columns, ``maps``: name -> array
    shaped like ``images``) and save the figure to ``path``. Needs matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError("explain.plot_digits needs matplotlib: pip install "
                          "'tinygrad-lite[plot]'") from e
    images = np.asarray(images)
    n = len(images)
    shape = shape or images.shape[1:]
    cols = 1 + len(maps)
    fig, axes = plt.subplots(n, cols, figsize=(2.2 * cols, 2.2 * n), squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(images[i].reshape(shape), cmap="gray_r")
        axes[i, 0].set_title(titles[i] if titles else "input", fontsize=9)
        for j, (name, m) in enumerate(maps.items(), start=1):
            m = np.asarray(m[i]).reshape(shape)
            if m.min() < 0:
                lim = np.abs(m).max() or 1.0
                axes[i, j].imshow(m, cmap="RdBu_r", vmin=-lim, vmax=lim)
            else:
                axes[i, j].imshow(m, cmap="hot")
            axes[i, j].set_title(name, fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
