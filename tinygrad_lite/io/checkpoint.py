"""``tl.save(obj, path)`` / ``tl.load(path)``: state dicts and training checkpoints, never pickle.

* ``*.safetensors`` -- a flat ``{name: Tensor or array}`` dict (a model's ``state_dict()``), in the
  standard safetensors layout, so other safetensors readers open it (and ``tl.load`` opens
  safetensors files written elsewhere).
* ``*.npz`` -- any nesting of dicts, lists and tuples whose leaves are Tensors, arrays, numbers,
  strings, booleans or None: ``{"model": model.state_dict(), "optimizer": opt.state_dict(),
  "epoch": 3}``. The arrays are stored as ``.npy`` members; the structure is a JSON skeleton that
  points at them (``allow_pickle=False`` on load).

Writes are atomic (``io.files.atomic_write_bytes``). Loading checks every byte as
``load_model`` does and raises ``ModelFormatError`` on a bad file. Leaves saved as Tensors load as
Tensors, arrays as arrays.

>>> tl.save({"model": net.state_dict(), "optim": opt.state_dict()}, "ckpt.npz")  # doctest: +SKIP
>>> ckpt = tl.load("ckpt.npz")                                                    # doctest: +SKIP
>>> net.load_state_dict(ckpt["model"]); opt.load_state_dict(ckpt["optim"])        # doctest: +SKIP
"""

import json
import math
import os

import numpy as np

from ..errors import ModelFormatError
from . import files

CHECKPOINT_FORMAT = "tinygrad_lite.checkpoint"
CHECKPOINT_VERSION = 1
_MAX_DEPTH = 64


def _is_tensor(v):
    from ..tensor import Tensor

    return isinstance(v, Tensor)


def _host(v):
    from ..nn.module import _to_numpy

    return files._contiguous(_to_numpy(v))


def _encode(obj, arrays, path, depth=0):
    """The JSON skeleton of ``obj``; arrays go into ``arrays`` under a generated name."""
    if depth > _MAX_DEPTH:
        raise ValueError(f"save: nesting deeper than {_MAX_DEPTH} levels, got at {path!r}")
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)) and not isinstance(obj, np.bool_):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        obj = float(obj)
        return obj if math.isfinite(obj) else {"__float__": repr(obj)}
    if isinstance(obj, np.bool_):
        return bool(obj)
    if _is_tensor(obj) or isinstance(obj, np.ndarray) or hasattr(obj, "__array__") and \
            hasattr(obj, "shape"):
        name = f"a{len(arrays)}"
        a = _host(obj)
        if a.dtype not in files._NP_TO_ST:
            raise TypeError(f"save: dtype {a.dtype} at {path!r} cannot be stored, got it; use "
                            "float/int/bool arrays")
        arrays[name] = a
        return {"__tensor__" if _is_tensor(obj) else "__array__": name}
    if isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise TypeError(f"save: dict keys must be str or int, got {k!r} at {path!r}")
            items.append([k, _encode(v, arrays, f"{path}.{k}", depth + 1)])
        return {"__dict__": items}
    if isinstance(obj, (list, tuple)):
        enc = [_encode(v, arrays, f"{path}[{i}]", depth + 1) for i, v in enumerate(obj)]
        return enc if isinstance(obj, list) else {"__tuple__": enc}
    raise TypeError(f"save: cannot store a {type(obj).__name__} at {path!r} (no pickle); use "
                    "Tensors, arrays, numbers, strings, None and dicts/lists/tuples of them")


def _decode(node, arrays, fail, depth=0):
    from ..tensor import Tensor

    if depth > _MAX_DEPTH:
        raise fail(f"structure nested deeper than {_MAX_DEPTH} levels")
    if node is None or isinstance(node, (bool, str, int, float)):
        return node
    if isinstance(node, list):
        return [_decode(v, arrays, fail, depth + 1) for v in node]
    if isinstance(node, dict) and len(node) == 1:
        (tag, val), = node.items()
        if tag in ("__tensor__", "__array__"):
            if not isinstance(val, str) or val not in arrays:
                raise fail(f"the structure points at a missing array {str(val)[:40]!r}")
            a = arrays[val]
            return Tensor(a) if tag == "__tensor__" else a
        if tag == "__float__" and val in ("nan", "inf", "-inf"):
            return float(val)
        if tag == "__tuple__" and isinstance(val, list):
            return tuple(_decode(v, arrays, fail, depth + 1) for v in val)
        if tag == "__dict__" and isinstance(val, list):
            out = {}
            for item in val:
                if not (isinstance(item, list) and len(item) == 2
                        and isinstance(item[0], (str, int)) and not isinstance(item[0], bool)):
                    raise fail("a dict entry in the structure is malformed")
                out[item[0]] = _decode(item[1], arrays, fail, depth + 1)
            return out
    raise fail(f"unknown node in the structure: {str(node)[:60]}")


def _ext(path, op):
    ext = files._suffix(path, op)   # refuses pickle names (.pt, .pth, .pkl) and .pb
    if ext == ".h5":
        raise ModelFormatError(f"{op}: .h5 holds whole models (io.save_model), got "
                               f"{os.fspath(path)!r}; save state dicts and checkpoints as "
                               ".safetensors or .npz")
    return ext


def save(obj, path):
    """Save a state dict or a nested checkpoint to ``path`` (``.safetensors`` or ``.npz``),
    atomically.

    Parameters
    ----------
    obj : a flat ``{str: Tensor/array}`` dict (either suffix), or nested dicts/lists/tuples of
        Tensors, arrays, numbers, strings and None (``.npz`` only)
    path : str or PathLike ending in ``.safetensors`` or ``.npz``
    """
    ext = _ext(path, "save")
    arrays = {}
    skeleton = _encode(obj, arrays, "obj")
    meta = {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION}
    if ext == ".safetensors":
        flat = isinstance(obj, dict) and all(isinstance(k, str) for k in obj) and all(
            isinstance(v, dict) and len(v) == 1 and next(iter(v)) in ("__tensor__", "__array__")
            for v in (e[1] for e in skeleton["__dict__"]))
        if not flat:
            raise TypeError(f"save: a .safetensors file holds a flat {{name: tensor}} dict, got a "
                            f"{type(obj).__name__} with nested or non-tensor values; save it as "
                            f"{os.path.splitext(os.fspath(path))[0]}.npz")
        named = {k: arrays[v[next(iter(v))]] for k, v in skeleton["__dict__"]}
        meta["arrays"] = sorted(k for k, v in skeleton["__dict__"] if "__array__" in v)
        meta_json = json.dumps(meta)
        payload = files._safetensors_bytes(named, meta_json, files._digest_doc(named, meta_json))
    else:
        meta["structure"] = skeleton
        meta_json = json.dumps(meta, allow_nan=False)
        payload = files._npz_bytes(arrays, meta_json, files._digest_doc(arrays, meta_json))
    files.atomic_write_bytes(path, payload)
    return os.fspath(path)


def load(path, max_bytes=files.MAX_FILE_BYTES):
    """Load what ``save`` wrote (or any safetensors file: a dict of Tensors); never unpickles."""
    from ..tensor import Tensor

    ext = _ext(path, "load")

    def fail(problem):
        return ModelFormatError(f"load: {problem}, got file {os.fspath(path)!r}")

    try:
        if ext == ".safetensors":
            arrays, meta_text, digest = files._read_safetensors(path, max_bytes,
                                                                require_meta=False)
        else:
            arrays, meta_text, digest = files._read_npz(path, max_bytes)
        meta = None
        if meta_text is not None:         # ours: parse, and check the SHA-256 digests
            meta = files._parse_json(path, meta_text, "metadata")
            files._verify_digest(path, arrays, meta_text, digest)
    except ModelFormatError as e:
        raise ModelFormatError(str(e).replace("load_model:", "load:", 1)) from None
    if ext == ".safetensors":      # ours, a model file's weights, or written elsewhere
        plain = ()
        if isinstance(meta, dict) and meta.get("format") == CHECKPOINT_FORMAT:
            plain = meta.get("arrays", ())
            if not (isinstance(plain, list) and all(isinstance(k, str) for k in plain)):
                raise fail("the list of plain arrays in the metadata is malformed")
        return {k: a if k in plain else Tensor(a) for k, a in arrays.items()}
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise fail(f"metadata format is not {CHECKPOINT_FORMAT!r} (a model file? use "
                   "io.load_model)")
    version = meta.get("format_version")
    if type(version) is not int or not 1 <= version <= CHECKPOINT_VERSION:
        raise fail(f"unsupported format_version {version!r}")
    return _decode(meta.get("structure"), arrays, fail)
