"""Padding layers (PyTorch names): ZeroPad, ConstantPad, ReflectionPad, ReplicationPad and
CircularPad over 1, 2 or 3 trailing axes; all call ``functional.pad``.

``padding`` is an int (every side) or PyTorch's tuple: (left, right) for 1-D,
(left, right, top, bottom) for 2-D, plus (front, back) for 3-D -- sides may differ.

Next: pooling.py.
"""

from . import functional as F
from .module import Module


class _PadNd(Module):
    nd, mode = 1, "constant"

    def __init__(self, padding, value=0.0):
        super().__init__()
        n = 2 * self.nd
        if isinstance(padding, int):
            padding = (padding,) * n
        padding = tuple(int(p) for p in padding)
        if len(padding) != n:
            raise ValueError(f"{type(self).__name__}: padding must be an int or {n} ints, got "
                             f"{padding!r}")
        self.padding, self.value = padding, float(value)

    def forward(self, x):
        if self.mode == "constant":
            return F.pad(x, self.padding, "constant", self.value)
        return F.pad(x, self.padding, self.mode)

    def extra_repr(self):
        return f"{self.padding}" + (f", value={self.value}" if self.value else "")


def _make(name, nd, mode, doc):
    return type(name, (_PadNd,), {"nd": nd, "mode": mode, "__doc__": doc})


_DOCS = {"constant": "pads with ``value``", "reflect": "mirrors without repeating the edge",
         "replicate": "repeats the edge value", "circular": "wraps around"}
_KINDS = (("ConstantPad", "constant"), ("ReflectionPad", "reflect"),
          ("ReplicationPad", "replicate"), ("CircularPad", "circular"))

ConstantPad1d, ConstantPad2d, ConstantPad3d = (
    _make(f"ConstantPad{n}d", n, "constant", f"{n}-D padding that {_DOCS['constant']}.")
    for n in (1, 2, 3))
ReflectionPad1d, ReflectionPad2d, ReflectionPad3d = (
    _make(f"ReflectionPad{n}d", n, "reflect", f"{n}-D padding that {_DOCS['reflect']}.")
    for n in (1, 2, 3))
ReplicationPad1d, ReplicationPad2d, ReplicationPad3d = (
    _make(f"ReplicationPad{n}d", n, "replicate", f"{n}-D padding that {_DOCS['replicate']}.")
    for n in (1, 2, 3))
CircularPad1d, CircularPad2d, CircularPad3d = (
    _make(f"CircularPad{n}d", n, "circular", f"{n}-D padding that {_DOCS['circular']}.")
    for n in (1, 2, 3))


class ZeroPad1d(ConstantPad1d):
    """1-D zero padding."""

    def __init__(self, padding):
        super().__init__(padding, 0.0)


class ZeroPad2d(ConstantPad2d):
    """2-D zero padding: ``ZeroPad2d((left, right, top, bottom))``."""

    def __init__(self, padding):
        super().__init__(padding, 0.0)


class ZeroPad3d(ConstantPad3d):
    """3-D zero padding."""

    def __init__(self, padding):
        super().__init__(padding, 0.0)


__all__ = [f"{k}{n}d" for k, _ in _KINDS for n in (1, 2, 3)] + \
    [f"ZeroPad{n}d" for n in (1, 2, 3)]
