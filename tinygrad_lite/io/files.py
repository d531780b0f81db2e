"""Model files: safetensors (default) or ``.npz``, never pickle.

A file holds named arrays and one JSON document of metadata:

* ``.safetensors`` -- the weights as tensors, the JSON under the ``"tinygrad_lite"`` key of the
  header's ``__metadata__``. Read by our own strict parser (below), so every offset, shape, dtype
  and size is checked before a byte is interpreted.
* ``.npz`` -- the same arrays plus ``__metadata__`` (the JSON as uint8), loaded with
  ``allow_pickle=False``.

Array names: ``weights.<name>`` for the model's tensors and ``preprocessing.<name>`` for a fitted
scaler's arrays (see ``data.preprocessing.split_state``). The JSON holds ``format``,
``format_version``, ``architecture`` (a list of layer configs from an allow-list),
``preprocessing``, ``label_names`` and ``compile`` (strings only).

Writes are atomic (a temp file in the same folder, fsync, ``os.replace``): a crash never leaves a
half-written model under the final name. Loading raises ``ModelFormatError`` naming the file and the
problem, and changes nothing on failure.
"""

import json
import os
import struct
import tempfile
import warnings
import zipfile
import zlib

import numpy as np

from ..errors import ModelFormatError

FORMAT = "tinygrad_lite.model"
FORMAT_VERSION = 1
META_KEY = "tinygrad_lite"
MAX_HEADER_BYTES = 16 * 2**20        # a safetensors JSON header larger than this is refused
MAX_FILE_BYTES = 2 * 2**30           # default cap on a model file (override with max_bytes=)
MAX_TENSORS = 100_000
MAX_NDIM = 8
WEIGHTS_ONLY = "weights"             # metadata "content" of a save_weights file

# safetensors dtype codes <-> NumPy (the ones a model file may hold)
_ST_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64,
              "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
_NP_TO_ST = {np.dtype(v): k for k, v in _ST_DTYPES.items()}


def _fail(path, problem):
    return ModelFormatError(f"load_model: {problem}, got file {os.fspath(path)!r}")


def _suffix(path, op):
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext == ".pb":
        raise ModelFormatError(
            f"{op}: TensorFlow .pb graphs are not supported, got {os.fspath(path)!r}; export the "
            "model to ONNX (e.g. tf2onnx) and run it with onnxruntime, or save a tinygrad_lite "
            "model as .safetensors")
    if ext in (".pkl", ".pickle", ".pt", ".pth", ".joblib"):
        raise ModelFormatError(
            f"{op}: pickle-based files are never loaded (they can run arbitrary code), got "
            f"{os.fspath(path)!r}; use a .safetensors or .npz model file")
    if ext not in (".safetensors", ".npz"):
        raise ModelFormatError(f"{op}: unknown model file type {ext or '(none)'!r}, got "
                               f"{os.fspath(path)!r}; use a .safetensors (default) or .npz name")
    return ext


# ------------------------------------------------------------------ writing ---

def atomic_write_bytes(path, payload):
    """Write ``payload`` to ``path`` through a temp file in the same folder, fsync, os.replace."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=folder)
    try:
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)   # mkstemp makes 0600; give the file normal permissions
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable where the OS allows it
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _contiguous(a):
    """C order without np.ascontiguousarray's promotion of 0-d arrays to 1-d."""
    a = np.asarray(a)
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


def _safetensors_bytes(arrays, meta_json):
    header = {"__metadata__": {META_KEY: meta_json}}
    offset, chunks = 0, []
    for name in sorted(arrays):
        a = _contiguous(arrays[name])
        if a.dtype not in _NP_TO_ST:
            raise TypeError(f"save_model: dtype {a.dtype} of {name!r} cannot be stored, got it; "
                            "use float32/float64/int/bool arrays")
        raw = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _NP_TO_ST[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * (-len(hb) % 8)  # align the data to 8 bytes, as the reference writer does
    return struct.pack("<Q", len(hb)) + hb + b"".join(chunks)


def _npz_bytes(arrays, meta_json):
    import io

    buf = io.BytesIO()
    payload = {k: _contiguous(v) for k, v in arrays.items()}
    for k, v in payload.items():
        if v.dtype.kind not in "fiub":
            raise TypeError(f"save_model: dtype {v.dtype} of {k!r} cannot be stored, got it")
    payload["__metadata__"] = np.frombuffer(meta_json.encode("utf-8"), dtype=np.uint8)
    np.savez(buf, **payload)
    return buf.getvalue()


def write_file(path, arrays, metadata):
    """Atomically write ``arrays`` (name -> ndarray) and ``metadata`` (JSON-able dict)."""
    ext = _suffix(path, "save_model")
    meta_json = json.dumps(metadata, allow_nan=False)
    payload = (_safetensors_bytes if ext == ".safetensors" else _npz_bytes)(arrays, meta_json)
    atomic_write_bytes(path, payload)


# ------------------------------------------------------------------ reading ---

def _check_size(path, max_bytes):
    """The file's size in bytes; ``ModelFormatError`` if it is unreadable or over ``max_bytes``."""
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise _fail(path, f"cannot read the file ({e.strerror or e})") from None
    if size > max_bytes:
        raise _fail(path, f"file is {size} bytes, over the cap of {max_bytes} "
                          "(pass max_bytes= to allow more)")
    return size


def _read_capped(path, max_bytes):
    _check_size(path, max_bytes)
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise _fail(path, f"cannot read the file ({e.strerror or e})") from None


def _parse_json(path, text, what):
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        raise _fail(path, f"{what} is not valid JSON ({type(e).__name__}: {str(e)[:80]})") from None


def _read_safetensors(path, max_bytes, require_meta=True):
    blob = _read_capped(path, max_bytes)
    if len(blob) < 8:
        raise _fail(path, f"file is truncated ({len(blob)} bytes, no safetensors header)")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > MAX_HEADER_BYTES:
        raise _fail(path, f"header size {n} bytes is over the cap of {MAX_HEADER_BYTES}")
    if 8 + n > len(blob):
        raise _fail(path, f"file is truncated (header says {n} bytes, file has {len(blob) - 8})")
    try:
        text = blob[8:8 + n].decode("utf-8")
    except UnicodeDecodeError:
        raise _fail(path, "header is not UTF-8 text (corrupted file?)") from None
    header = _parse_json(path, text, "header")
    if not isinstance(header, dict):
        raise _fail(path, "header is not a JSON object")
    data = memoryview(blob)[8 + n:]
    meta = header.pop("__metadata__", None)
    if len(header) > MAX_TENSORS:
        raise _fail(path, f"{len(header)} tensors, over the cap of {MAX_TENSORS}")
    arrays, spans = {}, []
    for name, info in header.items():
        if not (isinstance(info, dict) and set(info) == {"dtype", "shape", "data_offsets"}):
            raise _fail(path, f"tensor {name!r} has a malformed entry")
        dt, shape, offs = info["dtype"], info["shape"], info["data_offsets"]
        if dt not in _ST_DTYPES:
            raise _fail(path, f"tensor {name!r} has unsupported dtype {dt!r}")
        if (not isinstance(shape, list) or len(shape) > MAX_NDIM
                or not all(type(d) is int and d >= 0 for d in shape)):
            raise _fail(path, f"tensor {name!r} has an invalid shape {str(shape)[:60]}")
        if (not isinstance(offs, list) or len(offs) != 2
                or not all(type(o) is int and o >= 0 for o in offs) or offs[0] > offs[1]):
            raise _fail(path, f"tensor {name!r} has invalid data_offsets {str(offs)[:60]}")
        dtype = np.dtype(_ST_DTYPES[dt]).newbyteorder("<")
        nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if offs[1] - offs[0] != nbytes:
            raise _fail(path, f"tensor {name!r} needs {nbytes} bytes for shape {shape} {dt}, "
                              f"its offsets span {offs[1] - offs[0]}")
        if offs[1] > len(data):
            raise _fail(path, f"file is truncated (tensor {name!r} ends at byte {offs[1]} of the "
                              f"data, which has {len(data)})")
        spans.append((offs[0], offs[1], name))
        arr = np.frombuffer(data[offs[0]:offs[1]], dtype=dtype).reshape(shape)
        arrays[name] = arr.astype(dtype.newbyteorder("="), copy=True)
    spans.sort()
    for (b0, e0, n0), (b1, e1, n1) in zip(spans, spans[1:]):
        if b1 < e0:
            raise _fail(path, f"tensors {n0!r} and {n1!r} overlap")
    if spans and spans[-1][1] != len(data) or not spans and len(data):
        raise _fail(path, "trailing bytes after the last tensor (corrupted file?)")
    if not require_meta and not (isinstance(meta, dict) and isinstance(meta.get(META_KEY), str)):
        return arrays, None          # a plain safetensors file (tl.load)
    if not isinstance(meta, dict) or not isinstance(meta.get(META_KEY), str):
        raise _fail(path, "no tinygrad_lite metadata in the header (not a tinygrad_lite model "
                          "file?)")
    return arrays, _parse_json(path, meta[META_KEY], "metadata")


# What a corrupted zip archive can raise from zipfile / zlib / np.load: bad headers (BadZipFile,
# ValueError, KeyError, EOFError), "compression method is not supported" or "zip file version"
# (NotImplementedError), a broken deflate stream (zlib.error), "encrypted, password required"
# (RuntimeError), or an absurd size read from a flipped length field (MemoryError, OverflowError).
_NPZ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError, KeyError,
               NotImplementedError, zlib.error, RuntimeError, MemoryError, OverflowError,
               RecursionError, IndexError, struct.error)


def _read_npz(path, max_bytes):
    _check_size(path, max_bytes)
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_TENSORS:
                raise _fail(path, f"{len(infos)} members, over the cap of {MAX_TENSORS}")
            total = sum(i.file_size for i in infos)
            if total > max_bytes:
                raise _fail(path, f"uncompressed size {total} bytes is over the cap of {max_bytes}")
            bad = [i.filename for i in infos if not i.filename.endswith(".npy")]
            if bad:
                raise _fail(path, f"unexpected members {bad[:3]} in the npz archive")
        arrays = {}
        with np.load(path, allow_pickle=False) as f:
            for k in f.files:
                arrays[k] = np.array(f[k], copy=True)
    except ModelFormatError:
        raise
    except _NPZ_ERRORS as e:
        raise _fail(path, f"not a readable npz archive ({type(e).__name__}: {str(e)[:80]})") \
            from None
    for k, a in arrays.items():
        if a.dtype not in _NP_TO_ST or a.ndim > MAX_NDIM:
            raise _fail(path, f"array {k!r} has unsupported dtype {a.dtype} or ndim {a.ndim}")
    meta = arrays.pop("__metadata__", None)
    if meta is None or meta.dtype != np.uint8 or meta.ndim != 1:
        raise _fail(path, "no tinygrad_lite metadata (not a tinygrad_lite model file?)")
    try:
        text = meta.tobytes().decode("utf-8")
    except UnicodeDecodeError:
        raise _fail(path, "metadata is not UTF-8 text") from None
    return arrays, _parse_json(path, text, "metadata")


def read_file(path, max_bytes=MAX_FILE_BYTES):
    """``(arrays, metadata)`` from a model file, every byte checked; ``ModelFormatError`` else."""
    ext = _suffix(path, "load_model")
    arrays, meta = (_read_safetensors if ext == ".safetensors" else _read_npz)(path, max_bytes)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _fail(path, f"metadata format is not {FORMAT!r}")
    version = meta.get("format_version")
    if type(version) is not int or version < 1:
        raise _fail(path, f"invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise _fail(path, f"format_version {version} is newer than this library reads "
                          f"({FORMAT_VERSION}); upgrade tinygrad_lite")
    return arrays, meta


# ------------------------------------------------------------------ models ---

MODULE_WEIGHTS = "module"            # metadata "content" of a save_model file from an nn.Module


def _state_arrays(model):
    """name -> array: a Keras-style model's ``weights_dict()``, else any nn.Module's
    ``state_dict()`` (PyTorch key names)."""
    if hasattr(model, "weights_dict"):
        return {k: np.asarray(v) for k, v in model.weights_dict().items()}
    if hasattr(model, "state_dict") and hasattr(model, "load_state_dict"):
        return {k: np.asarray(v) for k, v in model.state_dict().items()}
    raise TypeError(f"save_model: expected a models.Sequential or an nn.Module, got "
                    f"{type(model).__name__}")


def _assign(model, weights):
    if hasattr(model, "set_weights_dict"):
        model.set_weights_dict(weights)
    else:
        model.load_state_dict(weights, strict=True)


def save_model(model, path, preprocessing=None, label_names=None, extra=None):
    """Save a ``models.Sequential`` (architecture + weights) and optional preprocessing state.

    Any ``nn.Module`` is accepted too: its ``state_dict()`` is saved with the class name; its
    architecture is Python code, so restore it with ``load_weights(module, path)`` into a module
    built in code (``load_model`` says so).

    Parameters
    ----------
    model : models.Sequential (built) or nn.Module
    path : ``*.safetensors`` (default format) or ``*.npz``
    preprocessing : a fitted scaler/Pipeline from ``data.preprocessing`` (its ``state_dict``)
    label_names : list of class names, index i for output i
    extra : JSON-able dict stored as-is (e.g. training settings)

    Examples
    --------
    >>> save_model(model, "runs/model.safetensors", preprocessing=scaler)   # doctest: +SKIP
    >>> model2 = load_model("runs/model.safetensors")                      # doctest: +SKIP
    """
    arrays = {f"weights.{k}": v for k, v in _state_arrays(model).items()}
    if not hasattr(model, "get_config"):      # an nn.Module: its architecture is Python code
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "content": MODULE_WEIGHTS,
                "module_class": type(model).__name__,
                "label_names": None if label_names is None else [str(s) for s in label_names],
                "extra": extra}
        if preprocessing is not None:
            raise TypeError("save_model: preprocessing is stored with a models.Sequential only, "
                            f"got an nn.Module ({type(model).__name__}); save the scaler's "
                            "state_dict() with tl.save")
        write_file(path, arrays, meta)
        return os.fspath(path)
    pre_meta = None
    if preprocessing is not None:
        from ..data.preprocessing import split_state

        state = preprocessing.state_dict() if hasattr(preprocessing, "state_dict") \
            else preprocessing
        pre_meta, pre_arrays = split_state(state, "preprocessing.")
        arrays.update(pre_arrays)
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "architecture": model.get_config(),
        "preprocessing": pre_meta,
        "label_names": None if label_names is None else [str(s) for s in label_names],
        "compile": model.compile_config() if hasattr(model, "compile_config") else None,
        "extra": extra,
    }
    write_file(path, arrays, meta)
    return os.fspath(path)


def _check_weights(path, model, weights):
    """Every name present, nothing extra, every shape and dtype equal to the model's."""
    want = _state_arrays(model)
    _check_plan(path, {k: a.shape for k, a in want.items()}, weights)   # names and shapes
    for k, a in want.items():
        w = weights[k]
        if w.dtype != a.dtype:
            raise _fail(path, f"weight {k!r} has dtype {w.dtype}, the model needs {a.dtype}")
        if w.dtype.kind == "f" and not np.all(np.isfinite(w)):
            raise _fail(path, f"weight {k!r} holds NaN or Inf values")


# What a hostile or corrupted config can raise while the layers are constructed and planned
_CONFIG_ERRORS = (TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError,
                  MemoryError, RecursionError)


def _check_plan(path, plan, weights):
    """The file's weight names and shapes against the shapes the architecture will build."""
    missing = sorted(set(plan) - set(weights))
    unexpected = sorted(set(weights) - set(plan))
    if missing or unexpected:
        raise _fail(path, f"weights do not match the architecture (missing {missing[:5]}, "
                          f"unexpected {unexpected[:5]})")
    for k, shape in plan.items():
        if weights[k].shape != shape:
            raise _fail(path, f"weight {k!r} has shape {weights[k].shape}, the architecture "
                              f"needs {shape}")


def _split(arrays, prefix):
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


def load_model(path, max_bytes=MAX_FILE_BYTES):
    """Rebuild a model saved by ``save_model``: architecture from the allow-list, then weights.

    The returned model has ``.preprocessing`` (a fitted transformer or None) and ``.label_names``.
    Raises ``ModelFormatError`` (naming the file and the problem) on a bad file.
    """
    from .. import models

    arrays, meta = read_file(path, max_bytes)
    weights = _split(arrays, "weights.")
    if meta.get("content") == MODULE_WEIGHTS:
        raise _fail(path, f"the file holds the weights of an nn.Module "
                          f"({str(meta.get('module_class'))[:60]}), whose architecture is Python "
                          "code; build the module in code and call io.load_weights(module, path)")
    if meta.get("content") == WEIGHTS_ONLY:
        raise _fail(path, "the file holds weights only (save_weights), no architecture; build the "
                          "model in code and call model.load_weights(path)")
    try:
        # 1. the layers from the allow-list, no weights allocated yet; 2. every weight's shape
        # from the configs alone
        model = models.Sequential.from_config(meta.get("architecture"), build=False)
        if model._input_shape is None:
            raise ModelFormatError("from_config: the architecture has no input_shape")
        plan = model.shape_plan()
    except ModelFormatError as e:
        raise _fail(path, str(e)) from None
    except _CONFIG_ERRORS as e:
        raise _fail(path, f"invalid architecture ({type(e).__name__}: {str(e)[:160]})") from None
    # 3. the plan against the file's arrays before allocating: the parameter count is then
    # bounded by the bytes actually in the file
    _check_plan(path, plan, weights)
    try:
        model.build()
    except _CONFIG_ERRORS as e:
        raise _fail(path, f"invalid architecture ({type(e).__name__}: {str(e)[:160]})") from None
    _check_weights(path, model, weights)   # names, shapes and dtypes of the built model, finite
    model.set_weights_dict(weights)
    model.preprocessing = None
    if meta.get("preprocessing") is not None:
        from ..data.preprocessing import from_state_dict, merge_state

        try:
            model.preprocessing = from_state_dict(merge_state(meta["preprocessing"], arrays))
        except _CONFIG_ERRORS as e:
            raise _fail(path, f"invalid preprocessing state ({str(e)[:160]})") from None
    names = meta.get("label_names")
    if names is not None:
        if not (isinstance(names, list) and all(isinstance(s, str) for s in names)):
            raise _fail(path, "label_names must be a list of strings")
        n_out = model.output_shape[-1]
        if len(names) != n_out:
            raise _fail(path, f"label_names has {len(names)} names for a model with {n_out} "
                              "outputs (one name per output is needed)")
    model.label_names = names
    comp = meta.get("compile")
    if comp is not None and hasattr(model, "_compile_from_config"):
        problem = model._compile_from_config(comp) if isinstance(comp, dict) else \
            f"it is a {type(comp).__name__}, not an object"
        if problem:
            warnings.warn(f"load_model: the stored compile config is not usable ({problem}), got "
                          f"file {os.fspath(path)!r}; the model loads uncompiled, call "
                          "model.compile(...) before fit/evaluate", UserWarning, stacklevel=2)
    model.file_metadata = meta
    return model


def save_weights(model, path):
    """Save only the weights of ``model`` (a models.Sequential or any nn.Module: its
    ``state_dict()``), with no architecture, preprocessing or compile config.

    The file restores into a model of the same architecture with ``load_weights``; every name,
    shape and dtype is checked then. ``load_model`` refuses it (there is nothing to rebuild from).

    Examples
    --------
    >>> save_weights(model, "ckpt.safetensors")   # doctest: +SKIP
    >>> load_weights(model, "ckpt.safetensors")   # doctest: +SKIP
    """
    arrays = {f"weights.{k}": v for k, v in _state_arrays(model).items()}
    write_file(path, arrays, {"format": FORMAT, "format_version": FORMAT_VERSION,
                              "content": WEIGHTS_ONLY})
    return os.fspath(path)


def load_weights(model, path, max_bytes=MAX_FILE_BYTES):
    """Load weights from ``path`` into an existing, built ``model`` (a models.Sequential, or any
    nn.Module for a file saved from one with ``save_weights`` or ``save_model``).

    Every name, shape and dtype is checked before anything is assigned, so on any error the model is
    exactly as it was.
    """
    arrays, _ = read_file(path, max_bytes)
    weights = _split(arrays, "weights.")
    _check_weights(path, model, weights)
    _assign(model, weights)
    return model
