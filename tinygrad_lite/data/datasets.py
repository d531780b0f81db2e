"""Datasets: the handwritten digits shipped with the package, MNIST from its IDX files, and toy
sets for teaching. All random draws take a ``seed``.

``load_digits`` data: the "Optical Recognition of Handwritten Digits" set by E. Alpaydin and
C. Kaynak (1998), UCI Machine Learning Repository (CC BY 4.0), exactly as scikit-learn ships it in
``sklearn.datasets.load_digits`` (BSD-3-Clause): 1,797 images of 8x8 pixels with values 0..16, ten
classes. ``digits.npz`` was generated once from scikit-learn 1.9.1 (``data`` as uint8, ``target``
as uint8), so running needs no scikit-learn.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import zlib
from pathlib import Path

import numpy as np

from tinygrad_lite.errors import TinygradLiteError

__all__ = [
    "Bunch",
    "IDXFormatError",
    "load_digits",
    "load_mnist",
    "make_moons",
    "make_regression",
    "make_spirals",
    "make_xor",
    "read_idx",
]

_DIGITS = Path(__file__).with_name("digits.npz")


class Bunch(dict):
    """A dict whose keys are also attributes (``d.data == d["data"]``), like scikit-learn's."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


class IDXFormatError(TinygradLiteError, ValueError):
    """An IDX (MNIST) file that is truncated, has a bad header, or does not match its partner."""


# ------------------------------------------------------------------- digits ---

def load_digits(n_class=10, return_X_y=False):
    """The 8x8 handwritten digits (1,797 images, 10 classes), identical to scikit-learn's.

    Returns a ``Bunch`` with ``data`` (n, 64) float64 in 0..16, ``images`` (n, 8, 8), ``target``
    (n,) int64, ``target_names`` and ``DESCR``; or ``(data, target)`` with ``return_X_y=True``.
    ``n_class`` keeps only digits ``0..n_class-1``.

    Examples
    --------
    >>> X, y = load_digits(return_X_y=True)
    >>> X.shape, y.shape, int(X.max())
    ((1797, 64), (1797,), 16)
    """
    if not 1 <= int(n_class) <= 10:
        raise ValueError(f"load_digits: n_class must be in 1..10, got {n_class}")
    if not _DIGITS.exists():
        raise FileNotFoundError(f"load_digits: the embedded data file is missing, got no "
                                f"{_DIGITS}; reinstall tinygrad_lite")
    with np.load(_DIGITS, allow_pickle=False) as f:
        data, target = f["data"].astype(np.float64), f["target"].astype(np.int64)
    keep = target < n_class
    data, target = data[keep], target[keep]
    if return_X_y:
        return data, target
    return Bunch(data=data, images=data.reshape(-1, 8, 8), target=target,
                 target_names=np.arange(10)[:n_class], feature_names=[
                     f"pixel_{r}_{c}" for r in range(8) for c in range(8)],
                 DESCR=__doc__.split("\n\n")[1])


# -------------------------------------------------------------------- MNIST ---

# IDX type byte -> big-endian dtype (the format: http://yann.lecun.com/exdb/mnist/)
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path, expected_ndim=None):
    """Read one IDX file (raw or gzip, detected from its first bytes) into a NumPy array.

    The header is: two zero bytes, a type byte (0x08 uint8 ... 0x0E float64), a byte with the
    number of dimensions, then each dimension as a big-endian uint32; the data follow, big-endian.
    The file size must match the header exactly. A gzip stream is decompressed only up to the
    size its header announces (plus one byte, to detect trailing data), so a corrupt or malicious
    ``.gz`` raises ``IDXFormatError`` instead of filling memory.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "x.idx")
    >>> _ = open(p, "wb").write(bytes([0, 0, 8, 1, 0, 0, 0, 2, 7, 9]))
    >>> read_idx(p).tolist()
    [7, 9]
    """
    path = Path(path)
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = _gunzip_idx(raw, path)
    if len(raw) < 4:
        raise IDXFormatError(f"read_idx: {path}: file too short for an IDX header, got "
                             f"{len(raw)} bytes")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise IDXFormatError(f"read_idx: {path}: bad magic number, got 0x{raw[:4].hex()}; "
                             "expected 0x0000 + type byte 08/09/0B/0C/0D/0E + ndim "
                             "(is this an IDX/MNIST file?)")
    dtype, ndim = np.dtype(_IDX_TYPES[raw[2]]), raw[3]
    if expected_ndim is not None and ndim != expected_ndim:
        raise IDXFormatError(f"read_idx: {path}: expected {expected_ndim} dimensions, got {ndim} "
                             f"(magic 0x{raw[:4].hex()}); images and labels swapped?")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXFormatError(f"read_idx: {path}: truncated header, got {len(raw)} bytes for "
                             f"{ndim} dimensions (need {header})")
    shape, need = _idx_size(raw, dtype, ndim)
    if len(raw) != need:
        what = "truncated" if len(raw) < need else "has trailing bytes"
        raise IDXFormatError(f"read_idx: {path}: file {what}, got {len(raw)} bytes for shape "
                             f"{shape} of {dtype.str} (expected {need})")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _idx_size(raw, dtype, ndim):
    """(shape, total file size in bytes) announced by a complete IDX header."""
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    return shape, 4 + 4 * ndim + math.prod(shape) * dtype.itemsize   # Python ints: no overflow


# Deflate cannot expand data more than 1032-fold (a 258-byte match in at most 2 bits), so a
# header announcing more than this times the compressed size is a lie (or a gzip bomb).
_MAX_DEFLATE_RATIO = 1032


def _gunzip_idx(comp, path):
    """Decompress a gzipped IDX file, never producing more than its header announces.

    The 4-byte magic and the dimensions are decompressed first; they give the exact size of the
    data, so at most that many bytes plus one (and one 128 KiB read buffer) are decompressed:
    one more byte means trailing data, so a gzip bomb stops there instead of filling memory.
    """
    def fail(e):
        return IDXFormatError(f"read_idx: {path}: the gzip stream is truncated or corrupt, "
                              f"got {type(e).__name__}: {e}; download the file again")

    try:
        with gzip.GzipFile(fileobj=io.BytesIO(comp)) as g:
            raw = g.read(4)
            if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
                return raw                   # read_idx reports the short file / bad magic
            raw += g.read(4 * raw[3])
            if len(raw) < 4 + 4 * raw[3]:
                return raw                   # read_idx reports the truncated header
            shape, need = _idx_size(raw, np.dtype(_IDX_TYPES[raw[2]]), raw[3])
            if need > _MAX_DEFLATE_RATIO * len(comp) + 64:
                raise IDXFormatError(
                    f"read_idx: {path}: the header announces shape {shape} ({need} bytes), got "
                    f"only {len(comp)} compressed bytes, which cannot hold that much; the file "
                    "is corrupt (or a gzip bomb)")
            raw += g.read(need - len(raw))
            if len(raw) == need and g.read(1):   # b"" at the end of the stream (checks the CRC)
                raise IDXFormatError(
                    f"read_idx: {path}: the decompressed file has trailing bytes, got more than "
                    f"the {need} bytes its header announces for shape {shape}; the file is "
                    "corrupt (or a gzip bomb)")
    except (EOFError, OSError, zlib.error) as e:   # BadGzipFile is an OSError
        raise fail(e) from None
    return raw


def _find(directory, names):
    for name in names:
        for candidate in (name, name + ".gz"):
            p = Path(directory) / candidate
            if p.exists():
                return p
    found = sorted(os.listdir(directory))[:10] if Path(directory).is_dir() else "no such folder"
    raise FileNotFoundError(f"load_mnist: no file {names[0]}[.gz] in {directory}, got {found}; "
                            "download the four MNIST IDX files into that folder")


def load_mnist(path, kind="train"):
    """Read MNIST (or Fashion-MNIST) from its IDX files in folder ``path``.

    ``kind='train'`` reads ``train-images-idx3-ubyte`` + ``train-labels-idx1-ubyte``, ``'test'``
    reads the ``t10k-`` pair; each may be gzipped (``.gz``) and the ``images.idx3`` spelling also
    works. Checks the magic numbers, that each file is complete, and that the counts agree.

    Returns ``(images, labels)``: (n, rows, cols) uint8 and (n,) int64.

    Examples
    --------
    >>> X, y = load_mnist("~/data/mnist", kind="test")     # doctest: +SKIP
    >>> X.shape, y.shape                                    # doctest: +SKIP
    ((10000, 28, 28), (10000,))
    """
    if kind not in ("train", "test"):
        raise ValueError(f"load_mnist: kind must be 'train' or 'test', got {kind!r}")
    directory = Path(path).expanduser()
    prefix = "train" if kind == "train" else "t10k"
    img_path = _find(directory, [f"{prefix}-images-idx3-ubyte", f"{prefix}-images.idx3-ubyte"])
    lab_path = _find(directory, [f"{prefix}-labels-idx1-ubyte", f"{prefix}-labels.idx1-ubyte"])
    images = read_idx(img_path, expected_ndim=3)
    labels = read_idx(lab_path, expected_ndim=1)
    if images.dtype != np.uint8 or labels.dtype != np.uint8:
        raise IDXFormatError(f"load_mnist: expected unsigned byte (0x08) files, got images "
                             f"{images.dtype} and labels {labels.dtype}")
    if len(images) != len(labels):
        raise IDXFormatError(f"load_mnist: image and label counts differ, got {len(images)} "
                             f"images in {img_path.name} and {len(labels)} labels in "
                             f"{lab_path.name}; the files are from different sets")
    if labels.size and labels.max() > 9:
        raise IDXFormatError(f"load_mnist: labels must be 0..9, got max {labels.max()} in "
                             f"{lab_path.name}")
    return images, labels.astype(np.int64)


# ---------------------------------------------------------------- toy sets ---

def _noise(rng, shape, noise):
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    return rng.normal(scale=noise, size=shape) if noise else np.zeros(shape)


def _check_n(n, op, minimum=1):
    if int(n) < minimum:
        raise ValueError(f"{op}: n_samples must be >= {minimum}, got {n}")
    return int(n)


def make_moons(n_samples=100, noise=0.0, seed=None, shuffle=True, dtype=np.float64):
    """Two interleaving half circles (scikit-learn's ``make_moons``): not linearly separable.

    Class 0: ``(cos t, sin t)``, class 1: ``(1 - cos t, 1/2 - sin t)``, t in [0, pi]; then
    Gaussian noise of std ``noise``.

    Examples
    --------
    >>> X, y = make_moons(10, noise=0.1, seed=0)
    >>> X.shape, sorted(set(y.tolist()))
    ((10, 2), [0, 1])
    """
    n = _check_n(n_samples, "make_moons", 2)
    rng = np.random.default_rng(seed)
    n_out, n_in = n // 2, n - n // 2
    t_out, t_in = np.linspace(0, np.pi, n_out), np.linspace(0, np.pi, n_in)
    X = np.vstack([np.c_[np.cos(t_out), np.sin(t_out)],
                   np.c_[1 - np.cos(t_in), 0.5 - np.sin(t_in)]])
    y = np.r_[np.zeros(n_out, np.int64), np.ones(n_in, np.int64)]
    X = X + _noise(rng, X.shape, noise)
    if shuffle:
        p = rng.permutation(n)
        X, y = X[p], y[p]
    return X.astype(dtype), y


def make_spirals(n_samples=300, n_classes=3, noise=0.2, seed=None, dtype=np.float64):
    """Interleaved spiral arms, one per class (the CS231n toy set).

    Arm k: radius r in [0, 1], angle ``4 r + 2 pi k / n_classes`` plus noise on the angle.

    Examples
    --------
    >>> X, y = make_spirals(30, n_classes=3, seed=0)
    >>> X.shape, np.bincount(y).tolist()
    ((30, 2), [10, 10, 10])
    """
    n = _check_n(n_samples, "make_spirals", n_classes)
    if n_classes < 2:
        raise ValueError(f"make_spirals: n_classes must be >= 2, got {n_classes}")
    rng = np.random.default_rng(seed)
    y = np.arange(n) * n_classes // n
    counts = np.bincount(y, minlength=n_classes)
    r = np.concatenate([np.linspace(0.0, 1.0, c) for c in counts])
    t = 4 * r + 2 * np.pi * y / n_classes + _noise(rng, n, noise)
    X = np.c_[r * np.sin(t), r * np.cos(t)]
    p = rng.permutation(n)
    return X[p].astype(dtype), y[p].astype(np.int64)


def make_xor(n_samples=200, noise=0.1, seed=None, dtype=np.float64):
    """XOR: points around the four corners of [-1, 1]^2, label 1 where the signs differ.

    The classic example that no single linear unit can learn and one hidden layer can.

    Examples
    --------
    >>> X, y = make_xor(8, noise=0.0, seed=0)
    >>> bool(((X[:, 0] * X[:, 1] < 0) == (y == 1)).all())
    True
    """
    n = _check_n(n_samples, "make_xor")
    rng = np.random.default_rng(seed)
    corners = np.array([[-1, -1], [-1, 1], [1, -1], [1, 1]], dtype=np.float64)
    c = rng.integers(0, 4, size=n)
    X = corners[c] + _noise(rng, (n, 2), noise)
    y = (corners[c, 0] * corners[c, 1] < 0).astype(np.int64)
    return X.astype(dtype), y


def make_regression(n_samples=100, n_features=1, noise=0.1, bias=0.0, coef=None, seed=None,
                    return_coef=False, dtype=np.float64):
    """Linear data with Gaussian noise: ``y = X @ w + bias + noise * eps``, X ~ N(0, 1).

    ``coef`` fixes w (default: drawn uniformly from [-3, 3]). With ``return_coef=True`` returns
    ``(X, y, w)`` so a fitted model can be compared with the truth.

    Examples
    --------
    >>> X, y, w = make_regression(50, n_features=2, noise=0.0, bias=1.0, seed=0, return_coef=True)
    >>> bool(np.allclose(X @ w + 1.0, y))
    True
    """
    n = _check_n(n_samples, "make_regression")
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features))
    w = rng.uniform(-3, 3, size=n_features) if coef is None else np.asarray(coef, np.float64)
    if w.shape != (n_features,):
        raise ValueError(f"make_regression: coef must have shape ({n_features},), got {w.shape}")
    y = X @ w + bias + _noise(rng, n, noise)
    X, y = X.astype(dtype), y.astype(dtype)
    return (X, y, w) if return_coef else (X, y)
