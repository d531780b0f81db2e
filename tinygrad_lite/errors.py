"""The exceptions tinygrad_lite raises.

Every error is a ``TinygradLiteError`` and also the matching built-in, so ``except ValueError``
keeps working. Messages follow one shape: ``<op>: <what is wrong>, got <values>[; <how to fix>]``.
"""


class TinygradLiteError(Exception):
    """Base class of every error raised by tinygrad_lite."""


class ShapeError(TinygradLiteError, ValueError):
    """Shapes that do not fit together (matmul inner dims, conv geometry, broadcasting)."""


class DTypeError(TinygradLiteError, TypeError):
    """A dtype an op cannot take (integer tensors asked for gradients, float16 to a kernel)."""


class DeviceError(TinygradLiteError, RuntimeError):
    """Tensors on different devices, or a device that is not there."""


class ModelFormatError(TinygradLiteError, ValueError):
    """A model file that is truncated, corrupted, malicious or of an unknown version."""


class BackendUnavailableError(TinygradLiteError, RuntimeError):
    """A kernel backend that is asked for but is not built or has no device."""


class GraphError(TinygradLiteError, RuntimeError):
    """Misuse of the autograd graph (backward through a freed graph, non-scalar backward)."""


class NotFittedError(TinygradLiteError, ValueError, AttributeError):
    """A preprocessing object used before ``fit``."""


class LabelError(TinygradLiteError, ValueError):
    """Class labels that are not integers or fall outside [0, num_classes)."""


class AxisError(ShapeError, IndexError):
    """An axis or index outside the valid range (both our ShapeError and an IndexError, as in
    PyTorch, so ``except IndexError`` written for PyTorch code keeps working)."""


class JitError(TinygradLiteError, RuntimeError):
    """A step that ``tinygrad_lite.jit`` cannot capture (reads a traced value in Python, differs
    between two recordings, uses create_graph or hooks)."""


class AnomalyError(TinygradLiteError, RuntimeError):
    """``detect_anomaly()`` found NaN or Inf in a forward output or a backward gradient."""
