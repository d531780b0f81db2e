"""Model files: ``save_model``/``load_model`` (safetensors default, ``.npz`` alternative).

Never pickle. Loading checks every shape, dtype and size and raises ``ModelFormatError`` naming the
file; saving is atomic.

>>> from tinygrad_lite.io import save_model, load_model          # doctest: +SKIP
>>> save_model(model, "model.safetensors", preprocessing=scaler)  # doctest: +SKIP
>>> model = load_model("model.safetensors")                       # doctest: +SKIP
"""

from .files import (
                    UnverifiedFileWarning,
                    FORMAT,
                    FORMAT_VERSION,
                    atomic_write_bytes,
                    load_model,
                    load_weights,
                    read_file,
                    save_model,
                    save_weights,
                    write_file,
)
from .onnx import export_onnx, load_onnx
from .training import load_checkpoint, save_checkpoint

__all__ = ["save_model", "load_model", "save_weights", "load_weights", "read_file", "write_file",
           "atomic_write_bytes", "FORMAT", "FORMAT_VERSION", "UnverifiedFileWarning"]
__all__ += ["save_checkpoint", "load_checkpoint", "export_onnx", "load_onnx"]
