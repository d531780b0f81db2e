"""One way to turn user input into a NumPy array, shared by data/ and metrics/.

``as_numpy`` accepts what a learner is likely to pass: an ndarray (returned as is, no copy), a
list or tuple (``np.asarray``), a tinygrad_lite ``Tensor`` or anything else with a ``.numpy()``
method (PyTorch tensors included; CUDA tensors are copied to the host), or a CuPy array
(copied to the host with ``.get()``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["as_numpy"]


def _is_cupy(x):
    return type(x).__module__.split(".")[0] == "cupy" and callable(getattr(x, "get", None))


def as_numpy(x):
    """The NumPy array behind ``x``: an ndarray, list, scalar, Tensor or CuPy array.

    An ndarray comes back unchanged (same object, no copy); nothing is cast.

    Examples
    --------
    >>> as_numpy([1, 2, 3])
    array([1, 2, 3])
    >>> a = np.zeros(2)
    >>> as_numpy(a) is a
    True
    """
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, (list, tuple)):
        return np.asarray(x)
    if _is_cupy(x):
        return np.asarray(x.get())
    if callable(getattr(x, "numpy", None)):        # tinygrad_lite / PyTorch tensors
        return np.asarray(x.numpy())
    return np.asarray(x)
