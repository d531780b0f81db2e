"""Plots of a training run, written straight to PNG files (matplotlib, optional extra).

matplotlib is imported inside each function and drawn on an off-screen Agg canvas (no pyplot,
no global backend switch, no window), so this works on a server and leaves the user's own
matplotlib setup alone. Each function returns the path it wrote.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from tinygrad_lite._arrays import as_numpy

__all__ = ["plot_confusion_matrix", "plot_history", "plot_misclassified"]


def _figure(width, height):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("tinygrad_lite.metrics.plots needs matplotlib, got no matplotlib "
                          "module; pip install tinygrad_lite[plot]") from None
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", bbox_inches="tight")
    return path


def plot_confusion_matrix(cm, labels=None, path="confusion_matrix.png", title="Confusion matrix",
                          cmap="Blues"):
    """Heatmap of a confusion matrix with the count (or fraction) written in every cell.

    Rows are true classes, columns predicted ones; text turns white on dark cells.

    Examples
    --------
    >>> cm = confusion_matrix([0, 1, 1], [0, 1, 0])                      # doctest: +SKIP
    >>> plot_confusion_matrix(cm, ["cat", "dog"], "cm.png")               # doctest: +SKIP
    """
    cm = as_numpy(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"plot_confusion_matrix: cm must be a square matrix, got shape "
                         f"{cm.shape}")
    n = cm.shape[0]
    labels = [str(i) for i in range(n)] if labels is None else [str(x) for x in labels]
    if len(labels) != n:
        raise ValueError(f"plot_confusion_matrix: {n} classes but {len(labels)} labels, got "
                         f"labels={labels[:10]}")
    size = max(4.0, 0.55 * n + 2)
    fig = _figure(size + 1, size)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(cm, cmap=cmap, interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set(xticks=range(n), yticks=range(n), xticklabels=labels, yticklabels=labels,
           xlabel="Predicted label", ylabel="True label", title=title)
    is_int = np.issubdtype(cm.dtype, np.integer) or np.all(cm == np.round(cm))
    top = cm.max() if cm.size else 0
    for i in range(n):
        for j in range(n):
            text = f"{int(cm[i, j])}" if is_int else f"{cm[i, j]:.2f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8 if n > 10 else 10,
                    color="white" if top and cm[i, j] > top / 2 else "black")
    return _save(fig, path)


def plot_history(history, path="curves.png", title=None):
    """Training curves: one panel per quantity (loss, accuracy, ...), train solid, val dashed.

    ``history`` is a dict of lists per epoch (``{'loss': [...], 'val_loss': [...], ...}``) or a
    Keras-style ``History`` object with such a ``.history`` dict.

    Examples
    --------
    >>> plot_history({"loss": [1.0, .5], "val_loss": [1.1, .7]}, "curves.png")  # doctest: +SKIP
    """
    h = getattr(history, "history", history)
    if not isinstance(h, dict) or not h:
        raise ValueError(f"plot_history: expected a dict of per-epoch lists (or a History), got "
                         f"{type(history).__name__}")
    bases = []
    for key in h:
        base = key.removeprefix("val_")
        if base not in bases and base != "lr":
            bases.append(base)
    if not bases:
        bases = list(h)
    cols = min(len(bases), 3)
    rows = math.ceil(len(bases) / cols)
    fig = _figure(4.2 * cols, 3.2 * rows)
    for k, base in enumerate(bases):
        ax = fig.add_subplot(rows, cols, k + 1)
        for key, style, name in ((base, "-o", "train"), (f"val_{base}", "--s", "val")):
            if key in h and len(h[key]):
                values = np.asarray(h[key], dtype=np.float64)
                ax.plot(np.arange(1, len(values) + 1), values, style, markersize=3, label=name)
        ax.set(xlabel="epoch", ylabel=base, title=base)
        ax.grid(True, alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def _as_image(img):
    img = np.asarray(img, dtype=np.float64)
    if img.ndim == 1:
        side = math.isqrt(img.size)
        if side * side != img.size:
            raise ValueError(f"plot_misclassified: cannot make a square image from a flat row, "
                             f"got {img.size} values; pass images shaped (N, H, W)")
        return img.reshape(side, side)
    if img.ndim == 3:
        if img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):   # CHW -> HWC
            img = np.moveaxis(img, 0, -1)
        if img.shape[-1] == 1:
            img = img[..., 0]
        elif img.shape[-1] == 3:
            lo, hi = img.min(), img.max()
            img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    return img


def plot_misclassified(images, y_true, y_pred, path="misclassified.png", max_images=25,
                       labels=None):
    """Grid of the first misclassified examples, each titled "true -> predicted".

    ``images`` may be (N, H, W), (N, C, H, W), (N, H, W, C) or flat square rows (N, H*W), like
    the 64-pixel digits. With no mistakes, the PNG says so.

    Examples
    --------
    >>> plot_misclassified(X_test, y_test, y_pred, "wrong.png")    # doctest: +SKIP
    """
    images = as_numpy(images)
    y_true, y_pred = as_numpy(y_true).ravel(), as_numpy(y_pred).ravel()
    if not len(images) == len(y_true) == len(y_pred):
        raise ValueError(f"plot_misclassified: images, y_true and y_pred have different lengths, "
                         f"got {len(images)}, {len(y_true)} and {len(y_pred)}")
    wrong = np.flatnonzero(y_true != y_pred)[:max_images]

    def name(v):
        return str(labels[int(v)]) if labels is not None else str(v.item() if hasattr(v, "item")
                                                                 else v)
    if len(wrong) == 0:
        fig = _figure(4, 1.5)
        fig.text(0.5, 0.5, "no misclassified examples", ha="center", va="center")
        return _save(fig, path)
    cols = min(len(wrong), 5)
    rows = math.ceil(len(wrong) / cols)
    fig = _figure(2.0 * cols, 2.2 * rows)
    for k, i in enumerate(wrong):
        ax = fig.add_subplot(rows, cols, k + 1)
        img = _as_image(images[i])
        ax.imshow(img, cmap="gray_r" if img.ndim == 2 else None, interpolation="nearest")
        ax.set_title(f"{name(y_true[i])} -> {name(y_pred[i])}", fontsize=9, color="crimson")
        ax.axis("off")
    fig.suptitle(f"misclassified: {len(np.flatnonzero(y_true != y_pred))} of {len(y_true)} "
                 "(true -> predicted)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)
