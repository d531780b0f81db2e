"""Image augmentation as plain functions: ``out = f(images, rng, ...)``.

Augmentation shows the network a slightly different picture every epoch (shifted by a pixel,
mirrored), so it learns the digit and not its exact pixels. Each function takes a batch
``(N, H, W)``, ``(N, C, H, W)`` (channels first, the core layout) or, with
``channels_last=True``, ``(N, H, W, C)`` (Keras), and a ``numpy.random.Generator`` so a seeded run
repeats exactly. Every image gets its own random draw. Inputs are never modified.
"""

from __future__ import annotations

import numpy as np

from tinygrad_lite.errors import ShapeError

__all__ = ["compose", "random_flip", "random_shift"]


def _hw_axes(images, channels_last, op):
    x = np.asarray(images.numpy() if hasattr(images, "numpy") and
                   not isinstance(images, np.ndarray) else images)
    if x.ndim < 3:
        raise ShapeError(f"{op}: expected a batch (N, H, W), (N, C, H, W) or (N, H, W, C), got "
                         f"shape {x.shape}; add a batch axis with x[None]")
    return x, ((1, 2) if channels_last else (x.ndim - 2, x.ndim - 1))


def _check_rng(rng, op):
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{op}: rng must be a numpy.random.Generator, got {type(rng).__name__}; "
                        "use np.random.default_rng(seed)")


def random_shift(images, rng, max_shift=2, fill=0, channels_last=False):
    """Shift each image by a random whole number of pixels in ``[-max_shift, max_shift]`` along
    height and width; pixels that enter are ``fill``, pixels that leave are lost.

    Examples
    --------
    >>> x = np.arange(9.0).reshape(1, 3, 3)
    >>> random_shift(x, np.random.default_rng(0), max_shift=1).shape
    (1, 3, 3)
    """
    op = "random_shift"
    _check_rng(rng, op)
    x, (ah, aw) = _hw_axes(images, channels_last, op)
    if max_shift < 0:
        raise ValueError(f"{op}: max_shift must be >= 0, got {max_shift}")
    out = np.full_like(x, fill)
    H, W = x.shape[ah], x.shape[aw]
    shifts = rng.integers(-max_shift, max_shift + 1, size=(x.shape[0], 2))
    for i, (dy, dx) in enumerate(shifts):
        dy, dx = int(dy), int(dx)
        if abs(dy) >= H or abs(dx) >= W:
            continue
        src = [slice(None)] * (x.ndim - 1)
        dst = [slice(None)] * (x.ndim - 1)
        src[ah - 1], dst[ah - 1] = slice(max(0, -dy), H - max(0, dy)), slice(max(0, dy),
                                                                             H - max(0, -dy))
        src[aw - 1], dst[aw - 1] = slice(max(0, -dx), W - max(0, dx)), slice(max(0, dx),
                                                                             W - max(0, -dx))
        out[i][tuple(dst)] = x[i][tuple(src)]
    return out


def random_flip(images, rng, p=0.5, horizontal=True, vertical=False, channels_last=False):
    """Mirror each image left-right (``horizontal``) and/or up-down (``vertical``), each with
    probability ``p``. Careful with digits: a mirrored 2 is not a 2; this suits natural images.

    Examples
    --------
    >>> x = np.array([[[1, 2], [3, 4]]])
    >>> random_flip(x, np.random.default_rng(0), p=1.0).tolist()
    [[[2, 1], [4, 3]]]
    """
    op = "random_flip"
    _check_rng(rng, op)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: p must be a probability in [0, 1], got {p}")
    x, (ah, aw) = _hw_axes(images, channels_last, op)
    out = x.copy()
    for flag, axis in ((horizontal, aw), (vertical, ah)):
        if flag:
            pick = rng.random(x.shape[0]) < p
            out[pick] = np.flip(out[pick], axis=axis)
    return out


def compose(*fns):
    """Chain augmentations of ``(images, rng)``: ``compose(f, g)(x, rng) == g(f(x, rng), rng)``.

    Examples
    --------
    >>> aug = compose(random_shift, random_flip)
    >>> aug(np.zeros((2, 4, 4)), np.random.default_rng(0)).shape
    (2, 4, 4)
    """
    def run(images, rng):
        for f in fns:
            images = f(images, rng)
        return images
    return run
