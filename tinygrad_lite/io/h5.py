"""``.h5`` model files in the Keras (2.x) layout (``pip install tinygrad_lite[h5]``: h5py).

Layout, as ``keras.Model.save("m.h5")`` writes it::

    /                      attrs: model_config (JSON: {"class_name": "Sequential", "config":
                                   {"name", "layers": [...], "input_shape"}}), backend,
                                   tinygrad_lite_metadata (JSON: format, preprocessing,
                                   label_names, compile, extra), tinygrad_lite.sha256
    /model_weights         attrs: layer_names = [b"dense", b"dropout", b"dense_1", ...]
    /model_weights/dense   attrs: weight_names = [b"dense/kernel:0", b"dense/bias:0"]
    /model_weights/dense/dense/kernel:0     the weight (Keras layout)
    /preprocessing/<name>  a fitted scaler's arrays (``data.preprocessing.split_state`` names)

``layer_names[i]`` is layer ``i`` of the config; every layer is listed, weightless ones with an
empty ``weight_names``. Conv2D kernels are stored in Keras' (kh, kw, in, out) layout and
transposed to ours (out, in, kh, kw) at the boundary; every other weight has the same layout in
both (Dense kernel (in, units), Conv1D (k, in, out)).

Reading is strict. Before libhdf5 reads a data byte: the size cap, the HDF5 signature, hard links
only (no soft/external links), every dataset's dtype (float/int/bool), rank, shape and byte size,
contiguous or compact storage with all of its bytes inside the file (no chunked/compressed, virtual
or external-file datasets), attribute sizes. Anything wrong, including whatever h5py raises on a
corrupted file, is a ``ModelFormatError`` naming the file. Files we write carry the same SHA-256
digest document as our other formats; a Keras-written file (no ``tinygrad_lite_metadata``) is
converted from its Keras config (Dense, Conv2D, pooling, Dropout, Flatten, Activation, ...) and
loads with an ``UnverifiedFileWarning``.

Writes build the file in memory and go through ``atomic_write_bytes``.
"""

import io as _io
import json
import os
import warnings

import numpy as np

from ..errors import ModelFormatError
from . import files

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
META_ATTR = "tinygrad_lite_metadata"
DIGEST_ATTR = files.DIGEST_KEY
MAX_ATTR_BYTES = files.MAX_HEADER_BYTES
MAX_LAYERS = 1000
MAX_WEIGHTS_PER_LAYER = 64
_DTYPES = {np.dtype(t) for t in (np.float16, np.float32, np.float64, np.int8, np.int16, np.int32,
                                 np.int64, np.uint8, np.bool_)}
# Keras constructor keys that do not change what a loaded (inference) layer computes
_KERAS_ONLY = {"trainable", "dtype", "batch_input_shape", "kernel_constraint", "bias_constraint",
               "activity_regularizer", "noise_shape", "sparse", "ragged", "batch_size",
               "recurrent_constraint", "unroll", "time_major", "stateful", "go_backwards",
               "return_state", "reset_after", "recurrent_dropout", "dropout", "implementation",
               "beta_constraint", "gamma_constraint", "moving_mean_initializer",
               "moving_variance_initializer", "beta_initializer", "gamma_initializer",
               "beta_regularizer", "gamma_regularizer", "embeddings_constraint",
               "embeddings_regularizer", "mask_zero", "groups", "seed"}


def _h5py(op):
    try:
        import h5py
    except ImportError:
        raise ImportError(f"{op}: .h5 files need the h5py package, got no h5py module; "
                          "pip install tinygrad_lite[h5]") from None
    return h5py


def _snake(name):
    out = "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
    return out.replace("2_d", "2d").replace("1_d", "1d")


def _layer_names(arch, n_layers):
    """Keras-style unique names: the config's ``name`` if set, else ``dense``, ``dense_1``..."""
    names, seen = [], {}
    layers = arch["layers"] if arch else [{"class_name": "layer", "config": {}}] * n_layers
    for entry in layers:
        given = entry.get("config", {}).get("name")
        base = given if isinstance(given, str) and given else _snake(entry["class_name"])
        base = base.replace("/", "_").replace(".", "_")
        n = seen.get(base, 0)
        name = base if n == 0 else f"{base}_{n}"
        while name in names:
            n += 1
            name = f"{base}_{n}"
        seen[base] = n + 1
        names.append(name)
    return names


def _to_keras(cls, wname, a):
    return np.ascontiguousarray(a.transpose(2, 3, 1, 0)) if (cls == "Conv2D" and wname == "kernel"
                                                            and a.ndim == 4) else a


def _from_keras(cls, wname, a):
    return np.ascontiguousarray(a.transpose(3, 2, 0, 1)) if (cls == "Conv2D" and wname == "kernel"
                                                            and a.ndim == 4) else a


def write_h5(path, arrays, metadata):
    """Atomically write ``arrays`` (``weights.layers.<i>.<name>`` and ``preprocessing.<name>``)
    and ``metadata`` (``save_model``'s document) as a Keras-layout ``.h5`` file."""
    h5py = _h5py("save_model")
    meta = dict(metadata)
    arch = meta.pop("architecture", None)
    weights = {k[len("weights."):]: v for k, v in arrays.items() if k.startswith("weights.")}
    pre = {k[len("preprocessing."):]: v for k, v in arrays.items()
           if k.startswith("preprocessing.")}
    other = sorted(set(arrays) - {"weights." + k for k in weights}
                   - {"preprocessing." + k for k in pre})
    if other:
        raise ValueError(f"save_model: .h5 files hold weights and preprocessing arrays only, got "
                         f"{other[:3]}")
    per_layer = {}
    for key, a in weights.items():
        parts = key.split(".")
        if len(parts) != 3 or parts[0] != "layers" or not parts[1].isdigit():
            raise ValueError(f"save_model: .h5 needs weight names 'layers.<i>.<name>', got "
                             f"{key!r}; save an nn.Module as .safetensors or .npz")
        per_layer.setdefault(int(parts[1]), []).append((parts[2], a))
    n_layers = len(arch["layers"]) if arch else (max(per_layer) + 1 if per_layer else 0)
    lnames = _layer_names(arch, n_layers)
    classes = [e["class_name"] for e in arch["layers"]] if arch else ["layer"] * n_layers
    model_config = None if arch is None else json.dumps(
        {"class_name": arch.get("class_name", "Sequential"),
         "config": {k: v for k, v in arch.items() if k != "class_name"}}, allow_nan=False)
    meta_json = json.dumps(meta, allow_nan=False)
    digest = files._digest_doc(arrays, _digest_text(model_config, meta_json))
    buf = _io.BytesIO()
    with h5py.File(buf, "w") as f:
        if model_config is not None:
            f.attrs["model_config"] = np.bytes_(model_config.encode("utf-8"))
        f.attrs["backend"] = np.bytes_(b"tinygrad_lite")
        f.attrs[META_ATTR] = np.bytes_(meta_json.encode("utf-8"))
        f.attrs[DIGEST_ATTR] = np.bytes_(digest.encode("utf-8"))
        mw = f.create_group("model_weights")
        mw.attrs["layer_names"] = np.array([n.encode("utf-8") for n in lnames], dtype="S")
        mw.attrs["backend"] = np.bytes_(b"tinygrad_lite")
        for i, lname in enumerate(lnames):
            g = mw.create_group(lname)
            wnames = []
            for wname, a in per_layer.get(i, []):
                full = f"{lname}/{wname}:0"
                g.create_dataset(full, data=_to_keras(classes[i], wname,
                                                      files._contiguous(a)))
                wnames.append(full.encode("utf-8"))
            g.attrs["weight_names"] = np.array(wnames, dtype="S") if wnames else \
                np.zeros((0,), dtype="S1")
        if pre:
            pg = f.create_group("preprocessing")
            for name, a in pre.items():
                if "/" in name or name in (".", ""):
                    raise ValueError(f"save_model: preprocessing array name {name!r} cannot be "
                                     "an HDF5 dataset name")
                pg.create_dataset(name, data=files._contiguous(a))
    files.atomic_write_bytes(path, buf.getvalue(), "save_model")


def _digest_text(model_config, meta_json):
    return f"{model_config or ''}\n{meta_json}"


# ------------------------------------------------------------------ reading ---

def read_h5(path, max_bytes=files.MAX_FILE_BYTES):
    """``(arrays, metadata)`` from a ``.h5`` model file, checked as ``read_file`` checks ours;
    ``ModelFormatError`` on anything wrong."""
    h5py = _h5py("load_model")
    size = files._check_size(path, max_bytes)
    try:
        with open(path, "rb") as fh:
            sig = fh.read(8)
    except OSError as e:
        raise files._fail(path, f"cannot read the file ({e.strerror or e})") from None
    if sig != HDF5_SIGNATURE:
        raise files._fail(path, "not an HDF5 file (no HDF5 signature at byte 0)")
    try:
        with h5py.File(path, "r", locking=False) as f:
            return _read_open(h5py, path, f, size, max_bytes)
    except ModelFormatError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, AttributeError, IndexError,
            OverflowError, UnicodeDecodeError, RecursionError, MemoryError) as e:
        raise files._fail(path, f"corrupted HDF5 file ({type(e).__name__}: "
                                f"{str(e)[:120]})") from None


def _attr_text(h5py, path, obj, name, required=True):
    """A scalar string attribute, its size checked before it is read; None when absent."""
    if name not in obj.attrs:
        if required:
            raise files._fail(path, f"attribute {name!r} is missing")
        return None
    aid = obj.attrs.get_id(name)
    if aid.shape not in ((), None) or h5py.check_string_dtype(aid.dtype) is None:
        raise files._fail(path, f"attribute {name!r} is not a scalar string")
    if aid.get_storage_size() > MAX_ATTR_BYTES or aid.dtype.itemsize > MAX_ATTR_BYTES:
        raise files._fail(path, f"attribute {name!r} is over the cap of {MAX_ATTR_BYTES} bytes")
    v = obj.attrs[name]
    if isinstance(v, bytes):
        v = v.decode("utf-8")
    if not isinstance(v, str) or len(v) > MAX_ATTR_BYTES:
        raise files._fail(path, f"attribute {name!r} is not a string")
    return v


def _attr_names(h5py, path, obj, name, cap):
    """A 1-D attribute of strings (Keras' ``layer_names``/``weight_names``), capped."""
    if name not in obj.attrs:
        raise files._fail(path, f"attribute {name!r} is missing in {obj.name!r}")
    aid = obj.attrs.get_id(name)
    shape = aid.shape
    if shape == (0,):                    # Keras writes an empty list as a float64 array
        return []
    if shape is None or len(shape) != 1 or shape[0] > cap \
            or h5py.check_string_dtype(aid.dtype) is None:
        raise files._fail(path, f"attribute {name!r} of {obj.name!r} is not a list of at most "
                                f"{cap} strings")
    if shape[0] and aid.get_storage_size() > MAX_ATTR_BYTES:   # (h5py raises on size 0)
        raise files._fail(path, f"attribute {name!r} is over the cap of {MAX_ATTR_BYTES} bytes")
    out = []
    for v in obj.attrs[name]:
        v = v.decode("utf-8") if isinstance(v, bytes) else v
        if not isinstance(v, str) or not v or len(v) > 256:
            raise files._fail(path, f"attribute {name!r} of {obj.name!r} holds an invalid name")
        out.append(v)
    return out


def _hard(h5py, path, group, name, kind):
    """``group[name]`` if it is a hard link to a ``kind`` (Group or Dataset), else refused."""
    link = group.get(name, getlink=True)
    if link is None:
        raise files._fail(path, f"{group.name.rstrip('/')}/{name} is missing")
    if not isinstance(link, h5py.HardLink):
        raise files._fail(path, f"{group.name.rstrip('/')}/{name} is a {type(link).__name__} "
                                "(only hard links are followed)")
    obj = group[name]
    if not isinstance(obj, kind):
        raise files._fail(path, f"{obj.name} is not a {kind.__name__}")
    return obj


def _dataset(h5py, path, ds, size, budget):
    """Check a dataset's dtype, shape and storage, then read it; ``budget`` is [bytes left]."""
    where = ds.name
    dt = ds.dtype
    if dt.fields is not None or dt.subdtype is not None or dt.newbyteorder("=") not in _DTYPES \
            or dt.kind not in "fiub":
        raise files._fail(path, f"dataset {where!r} has unsupported dtype {str(dt)[:40]}")
    shape = ds.shape
    if shape is None or len(shape) > files.MAX_NDIM:
        raise files._fail(path, f"dataset {where!r} has an invalid shape {shape}")
    nbytes = int(np.prod(shape, dtype=object)) * dt.itemsize
    if nbytes > budget[0]:
        raise files._fail(path, f"dataset {where!r} needs {nbytes} bytes, over what is left of "
                                f"the cap ({budget[0]})")
    if ds.is_virtual:
        raise files._fail(path, f"dataset {where!r} is virtual (refers to other files)")
    dcpl = ds.id.get_create_plist()
    if dcpl.get_external_count():
        raise files._fail(path, f"dataset {where!r} keeps its data in an external file")
    layout = dcpl.get_layout()
    if layout not in (h5py.h5d.CONTIGUOUS, h5py.h5d.COMPACT) or dcpl.get_nfilters():
        raise files._fail(path, f"dataset {where!r} is chunked or filtered (compressed); "
                                "only contiguous or compact storage is read")
    if nbytes:
        stored = ds.id.get_storage_size()
        if stored != nbytes:
            raise files._fail(path, f"dataset {where!r} needs {nbytes} bytes for shape {shape} "
                                    f"{dt}, its storage holds {stored} (truncated?)")
        if layout == h5py.h5d.CONTIGUOUS:
            off = ds.id.get_offset()
            if off is None or off + nbytes > size:
                raise files._fail(path, f"dataset {where!r} lies outside the file (truncated?)")
    budget[0] -= nbytes
    arr = np.empty(shape, dtype=dt.newbyteorder("="))
    if arr.size:
        ds.read_direct(arr)
    if arr.dtype == np.bool_ and arr.size and arr.view(np.uint8).max() > 1:
        raise files._fail(path, f"dataset {where!r} holds bytes other than 0 and 1")
    return arr


def _read_open(h5py, path, f, size, max_bytes):
    budget = [max_bytes]
    meta_text = _attr_text(h5py, path, f, META_ATTR, required=False)
    config_text = _attr_text(h5py, path, f, "model_config", required=meta_text is None)
    config = None if config_text is None else files._parse_json(path, config_text,
                                                               "model_config")
    ours = meta_text is not None
    if ours:
        meta = files._parse_json(path, meta_text, "metadata")
        if not isinstance(meta, dict) or meta.get("format") != files.FORMAT:
            raise files._fail(path, f"metadata format is not {files.FORMAT!r}")
        version = meta.get("format_version")
        if type(version) is not int or not 1 <= version <= files.FORMAT_VERSION:
            raise files._fail(path, f"unsupported format_version {version!r}")
        if config is not None:
            if not (isinstance(config, dict) and isinstance(config.get("config"), dict)):
                raise files._fail(path, "model_config is not a {class_name, config} object")
            meta["architecture"] = {"class_name": config.get("class_name"), **config["config"]}
    else:
        meta = {"format": files.FORMAT, "format_version": files.FORMAT_VERSION,
                "architecture": _from_keras_config(path, config), "preprocessing": None,
                "label_names": None, "compile": None, "extra": {"source": "keras .h5"}}
    arch = meta.get("architecture")
    classes = None
    if isinstance(arch, dict) and isinstance(arch.get("layers"), list):
        classes = [e.get("class_name") if isinstance(e, dict) else None for e in arch["layers"]]
    mw = _hard(h5py, path, f, "model_weights", h5py.Group)
    lnames = _attr_names(h5py, path, mw, "layer_names", MAX_LAYERS)
    if classes is not None and len(lnames) != len(classes):
        raise files._fail(path, f"model_weights lists {len(lnames)} layers, the model_config "
                                f"has {len(classes)}")
    if len(set(lnames)) != len(lnames):
        raise files._fail(path, "model_weights lists a layer name twice")
    arrays = {}
    for i, lname in enumerate(lnames):
        g = _hard(h5py, path, mw, lname, h5py.Group)
        for wfull in _attr_names(h5py, path, g, "weight_names", MAX_WEIGHTS_PER_LAYER):
            parts = wfull.split("/")
            if any(p in ("", ".", "..") for p in parts) or len(parts) > 4:
                raise files._fail(path, f"weight name {wfull[:80]!r} of layer {lname!r} is "
                                        "invalid")
            node = g
            for p in parts[:-1]:
                node = _hard(h5py, path, node, p, h5py.Group)
            ds = _hard(h5py, path, node, parts[-1], h5py.Dataset)
            wname = parts[-1][:-2] if parts[-1].endswith(":0") else parts[-1]
            key = f"weights.layers.{i}.{wname}"
            if key in arrays:
                raise files._fail(path, f"layer {lname!r} lists weight {wname!r} twice")
            a = _dataset(h5py, path, ds, size, budget)
            arrays[key] = _from_keras(classes[i] if classes else None, wname, a)
    if "preprocessing" in f:
        pg = _hard(h5py, path, f, "preprocessing", h5py.Group)
        if len(pg) > files.MAX_TENSORS:
            raise files._fail(path, f"{len(pg)} preprocessing arrays, over the cap")
        for name in pg:
            arrays["preprocessing." + name] = _dataset(
                h5py, path, _hard(h5py, path, pg, name, h5py.Dataset), size, budget)
    if ours:
        digest = _attr_text(h5py, path, f, DIGEST_ATTR, required=False)
        files._verify_digest(path, arrays, _digest_text(config_text, meta_text), digest)
    else:
        warnings.warn(f"load_model: a Keras .h5 file has no tinygrad_lite SHA-256 digest, so its "
                      f"bytes are unverified, got file {os.fspath(path)!r}; save it again to add "
                      "one", files.UnverifiedFileWarning, stacklevel=5)
    return arrays, meta


def _from_keras_config(path, config):
    """Our Sequential architecture from a Keras 2 ``model_config`` (Sequential only)."""
    if not (isinstance(config, dict) and config.get("class_name") == "Sequential"
            and isinstance(config.get("config"), dict)):
        raise files._fail(path, "model_config is not a Keras Sequential config (only Sequential "
                                "models are rebuilt)")
    inner = config["config"]
    entries = inner.get("layers")
    if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_LAYERS:
        raise files._fail(path, "model_config has no list of layers")
    layers, input_shape, rank = [], None, None    # rank: of the batch (with the batch axis)
    for e in entries:
        if not (isinstance(e, dict) and isinstance(e.get("config"), dict)):
            raise files._fail(path, "model_config holds a malformed layer entry")
        cls, cfg = e.get("class_name"), dict(e["config"])
        bis = cfg.get("batch_input_shape", cfg.get("batch_shape"))
        if input_shape is None and isinstance(bis, list) and len(bis) >= 2:
            input_shape, rank = bis[1:], len(bis)
        if cls == "InputLayer":
            continue            # Keras lists it in the config, not in model.layers
        if cfg.get("groups", 1) != 1:
            raise files._fail(path, f"{cls} with groups={cfg['groups']!r} is not supported")
        for k in ("kernel_initializer", "bias_initializer", "recurrent_initializer",
                  "embeddings_initializer", "kernel_regularizer", "bias_regularizer"):
            if k in cfg and cfg[k] is None or isinstance(cfg.get(k), dict):
                cfg.pop(k)      # training-time settings; the weights come from the file
        if cls == "Flatten" and cfg.get("data_format", "channels_last") == "channels_last":
            cfg.pop("data_format", None)    # ours flattens channels_last order, as Keras
        cfg = {k: v for k, v in cfg.items() if k not in _KERAS_ONLY}
        if cls in ("BatchNormalization", "LayerNormalization") and "axis" in cfg:
            axis = cfg["axis"]                    # Keras writes [3] for the last axis of 4-D
            axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
            if rank is not None and axis == rank - 1:
                axis = -1
            if axis != -1:
                raise files._fail(path, f"{cls} over axis {cfg['axis']!r} (of a rank-{rank} "
                                        "input) is not supported; only the last axis is")
            cfg["axis"] = -1
        if rank is not None:                      # the rank after this layer
            if cls == "Flatten" or (cls in ("LSTM", "GRU", "SimpleRNN")
                                    and not cfg.get("return_sequences")):
                rank = 2
            elif cls == "Reshape" and isinstance(cfg.get("target_shape"), list):
                rank = len(cfg["target_shape"]) + 1
            elif cls == "Embedding":
                rank += 1
        layers.append({"class_name": cls, "config": cfg})
    if input_shape is None:
        raise files._fail(path, "model_config has no batch_input_shape (the input shape)")
    return {"class_name": "Sequential", "name": inner.get("name"), "layers": layers,
            "input_shape": input_shape}
