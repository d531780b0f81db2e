"""A vendorable inference runtime: one file, NumPy and the standard library only.

Copy this file into an application to run a model saved by ``model.save(...)`` /
``io.save_model`` (a Keras-style ``Sequential``), or an ONNX file written by ``io.export_onnx``,
without installing tinygrad_lite::

    import runtime                                   # this file, copied as runtime.py
    model = runtime.load("model.safetensors")        # or a .npz model file
    probs = model.predict(X_raw)                     # the stored preprocessing is applied first
    names = model.predict_labels(X_raw)              # label names, if the file has them

Layers: InputLayer, Dense, Activation, Dropout (identity), Flatten, Reshape, Conv2D (valid/same,
strides, dilation, channels_last or channels_first), MaxPooling2D, AveragePooling2D and
BatchNormalization (moving statistics), with the activations of ``layers.ACTIVATIONS``.
Preprocessing: MinMaxScaler, StandardScaler, SimpleImputer and a Pipeline of them.

The file reader is strict like ``io.files``: every header entry, dtype, shape and offset is checked
before a byte is interpreted, sizes are capped, npz archives load with ``allow_pickle=False``, the
SHA-256 digests tinygrad_lite stores are checked (stdlib ``hashlib``), fitted preprocessing values
are checked by type, shape and finiteness, and a bad file raises ``ModelFormatError`` (a
``ValueError``) naming the file. The forward pass is the
library's float32 arithmetic with the same NumPy calls: Dense/activation/BatchNorm models give the
same bits as ``model.predict`` on the NumPy backend (``backends.use("numpy")``) and agree to one
float32 ulp (~6e-8) with the default Cython backend, whose GEMM sums in another order. Convolution
(``einsum`` here, im2col + GEMM there) and erf-based GELU (``math.erf`` here) agree to 1e-6.

ONNX: ``load("model.onnx")`` returns an ``OnnxModel`` (same ``predict`` / ``predict_classes`` /
``predict_labels``) for a file of the op subset ``io.export_onnx`` writes (``ONNX_OPS``; also what
PyTorch's exporter writes for MLPs, CNNs and LSTMs). The file is decoded by a minimal protobuf
wire-format reader (``_PB``) that knows only the ModelProto, GraphProto, NodeProto,
AttributeProto, TensorProto and ValueInfoProto fields it needs; every length is checked against
its enclosing message, a file holds at most ``ONNX_MAX_FIELDS`` fields, tensors are capped at
``ONNX_MAX_TENSOR_ELEMENTS``, every size computed inside the graph (broadcasts, MatMul/Gemm/Conv
outputs, Gather, padding, ConstantOfShape/Expand/Resize) at ``ONNX_MAX_RUNTIME_ELEMENTS`` before
it is allocated, recurrent ops at ``ONNX_MAX_STEPS`` steps; external data must be a relative
path inside the model's folder (no ``..``, no absolute path, no symlink out), and any malformed or
unsupported file raises ``ModelFormatError``. Label names and preprocessing come from the file's
``metadata_props`` (``tinygrad_lite.label_names``, ``tinygrad_lite.preprocessing``).

Command line: ``python runtime.py MODEL DATA.npy`` prints one predicted label per row.
"""

import json
import math
import os
import struct

import numpy as np

__all__ = ["load", "Model", "OnnxModel", "ModelFormatError", "read_model_file", "read_onnx"]

FORMAT = "tinygrad_lite.model"
FORMAT_VERSION = 1
META_KEY = "tinygrad_lite"
DIGEST_KEY = "tinygrad_lite.sha256"   # our SHA-256 digests (safetensors metadata key)
NPZ_DIGEST_MEMBER = "__sha256__"        # ... and the npz member holding the same document
MAX_FILE_BYTES = 2 * 2**30
MAX_HEADER_BYTES = 16 * 2**20
MAX_TENSORS = 100_000
MAX_NDIM = 8
_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64,
           "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


class ModelFormatError(ValueError):
    """A model file that is not a valid tinygrad_lite model (or one this runtime cannot run)."""


def _fail(path, problem):
    return ModelFormatError(f"runtime.load: {problem}, got file {os.fspath(path)!r}")


# ------------------------------------------------------------------ reading ---

def _read_safetensors(path, blob):
    if len(blob) < 8:
        raise _fail(path, "file is truncated (no safetensors header)")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > MAX_HEADER_BYTES or 8 + n > len(blob):
        raise _fail(path, f"header size {n} is over the cap or past the end of the file")
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _fail(path, "header is not valid UTF-8 JSON") from None
    if not isinstance(header, dict):
        raise _fail(path, "header is not a JSON object")
    meta = header.pop("__metadata__", None)
    if len(header) > MAX_TENSORS:
        raise _fail(path, f"{len(header)} tensors, over the cap of {MAX_TENSORS}")
    data = memoryview(blob)[8 + n:]
    arrays, spans = {}, []
    for name, info in header.items():
        if not (isinstance(info, dict) and set(info) == {"dtype", "shape", "data_offsets"}):
            raise _fail(path, f"tensor {name!r} has a malformed entry")
        dt, shape, offs = info["dtype"], info["shape"], info["data_offsets"]
        if dt not in _DTYPES:
            raise _fail(path, f"tensor {name!r} has unsupported dtype {dt!r}")
        if (not isinstance(shape, list) or len(shape) > MAX_NDIM
                or not all(type(d) is int and d >= 0 for d in shape)):
            raise _fail(path, f"tensor {name!r} has an invalid shape")
        if (not isinstance(offs, list) or len(offs) != 2
                or not all(type(o) is int and o >= 0 for o in offs) or offs[0] > offs[1]):
            raise _fail(path, f"tensor {name!r} has invalid data_offsets")
        dtype = np.dtype(_DTYPES[dt]).newbyteorder("<")
        if offs[1] - offs[0] != math.prod(shape) * dtype.itemsize or offs[1] > len(data):
            raise _fail(path, f"tensor {name!r}: its offsets do not fit its shape or the file")
        spans.append((offs[0], offs[1]))
        arrays[name] = np.frombuffer(data[offs[0]:offs[1]], dtype=dtype).reshape(shape) \
            .astype(dtype.newbyteorder("="))
    spans.sort()
    if any(b1 < e0 for (_, e0), (b1, _) in zip(spans, spans[1:])):
        raise _fail(path, "tensors overlap")
    if not (isinstance(meta, dict) and isinstance(meta.get(META_KEY), str)):
        raise _fail(path, "no tinygrad_lite metadata in the header")
    return arrays, meta[META_KEY], meta.get(DIGEST_KEY)


def _read_npz(path):
    import zipfile            # here, not at the top: it costs most of this file's import time

    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_TENSORS or sum(i.file_size for i in infos) > MAX_FILE_BYTES:
                raise _fail(path, "the archive is over the size caps")
            if any(not i.filename.endswith(".npy") for i in infos):
                raise _fail(path, "unexpected members in the npz archive")
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: np.array(f[k]) for k in f.files}
    except ModelFormatError:
        raise
    except Exception as e:          # zipfile/zlib/np.load raise many types on a corrupt file
        raise _fail(path, f"not a readable npz archive ({type(e).__name__})") from None
    meta = arrays.pop("__metadata__", None)
    if meta is None or meta.dtype != np.uint8 or meta.ndim != 1:
        raise _fail(path, "no tinygrad_lite metadata")
    digest = arrays.pop(NPZ_DIGEST_MEMBER, None)
    if digest is not None:
        if digest.dtype != np.uint8 or digest.ndim != 1:
            raise _fail(path, "the SHA-256 digest member is malformed")
        try:
            digest = digest.tobytes().decode("utf-8")
        except UnicodeDecodeError:
            raise _fail(path, "the SHA-256 digest member is not UTF-8") from None
    for k, a in arrays.items():
        if a.dtype.kind not in "fiub" or a.ndim > MAX_NDIM:
            raise _fail(path, f"array {k!r} has unsupported dtype {a.dtype}")
    try:
        return arrays, meta.tobytes().decode("utf-8"), digest
    except UnicodeDecodeError:
        raise _fail(path, "metadata is not UTF-8") from None


_CODES = {np.dtype(v): k for k, v in _DTYPES.items()}


def _verify_digest(path, arrays, text, digest):
    """Check the SHA-256 digests tinygrad_lite stores beside the metadata and every tensor (a
    file without them, from another tool, is taken as it is: nothing to check)."""
    if digest is None:
        return
    import hashlib

    try:
        doc = json.loads(digest)
    except (TypeError, ValueError, RecursionError):
        raise _fail(path, "the SHA-256 digest entry is not valid JSON") from None
    if not (isinstance(doc, dict) and doc.get("algorithm") == "sha256"
            and isinstance(doc.get("metadata"), str) and isinstance(doc.get("tensors"), dict)):
        raise _fail(path, "the SHA-256 digest entry is malformed")
    if hashlib.sha256(text.encode("utf-8")).hexdigest() != doc["metadata"]:
        raise _fail(path, "SHA-256 mismatch in the metadata (corrupted or edited file)")
    if set(doc["tensors"]) != set(arrays):
        raise _fail(path, "the tensors differ from the SHA-256 digest list")
    for name, a in arrays.items():
        h = hashlib.sha256(f"{name}\0{_CODES.get(a.dtype)}\0{list(a.shape)}\0".encode("utf-8"))
        h.update(np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<"), copy=False).tobytes())
        if h.hexdigest() != doc["tensors"][name]:
            raise _fail(path, f"SHA-256 mismatch in tensor {name!r} (corrupted or edited file)")


def read_model_file(path, max_bytes=MAX_FILE_BYTES):
    """``(arrays, metadata)`` of a ``.safetensors`` or ``.npz`` model file, every byte checked."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in (".safetensors", ".npz"):
        raise _fail(path, f"unknown model file type {ext!r}; use .safetensors or .npz")
    _check_size(path, max_bytes)
    if ext == ".safetensors":
        with open(path, "rb") as f:
            arrays, text, digest = _read_safetensors(path, f.read())
    else:
        arrays, text, digest = _read_npz(path)
    _verify_digest(path, arrays, text, digest)
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError):
        raise _fail(path, "metadata is not valid JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _fail(path, f"metadata format is not {FORMAT!r}")
    version = meta.get("format_version")
    if type(version) is not int or not 1 <= version <= FORMAT_VERSION:
        raise _fail(path, f"unsupported format_version {version!r}")
    if meta.get("content") is not None:
        raise _fail(path, f"the file holds {meta.get('content')!r} weights without a "
                          "Sequential architecture; save the model with model.save(path)")
    return arrays, meta


# ------------------------------------------------------------ activations ---

def _erf(x):
    return np.vectorize(math.erf, otypes=[np.float64])(x)


def _sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _log_softmax(x):
    s = x - x.max(axis=-1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))


ACTIVATIONS = {
    None: lambda x: x, "linear": lambda x: x, "relu": lambda x: np.maximum(x, 0),
    "sigmoid": _sigmoid, "tanh": np.tanh, "softmax": _softmax, "log_softmax": _log_softmax,
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
    "gelu": lambda x: 0.5 * x * (1 + _erf(x * 0.7071067811865476).astype(x.dtype)),
    "softplus": lambda x: np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x))),
    "leaky_relu": lambda x: x * np.where(x > 0, 1.0, 0.2).astype(x.dtype),
    "swish": lambda x: x * _sigmoid(x), "silu": lambda x: x * _sigmoid(x),
}


def _activation(name):
    if name not in ACTIVATIONS:
        raise ModelFormatError(f"runtime: unknown activation {name!r}")
    return ACTIVATIONS[name]


# ------------------------------------------------------------------ layers ---

def _same_pads(size, k, s, d):
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def _pad_nchw(x, padding, k, s, d=(1, 1), value=0.0):
    if padding == "valid":
        return x
    ph = _same_pads(x.shape[2], k[0], s[0], d[0])
    pw = _same_pads(x.shape[3], k[1], s[1], d[1])
    return np.pad(x, ((0, 0), (0, 0), ph, pw), constant_values=value)


def _windows(x, k, s, d=(1, 1)):
    """(N, C, OH, OW, kh, kw) strided view of an NCHW array."""
    span = ((k[0] - 1) * d[0] + 1, (k[1] - 1) * d[1] + 1)
    v = np.lib.stride_tricks.sliding_window_view(x, span, axis=(2, 3))
    return v[:, :, ::s[0], ::s[1], ::d[0], ::d[1]]


def _to_nchw(x, cfg):
    if x.ndim != 4:
        raise ValueError(f"runtime: a 2-D layer needs 4-D input (batch, h, w, c), got shape "
                         f"{x.shape}")
    return x.transpose(0, 3, 1, 2) if cfg.get("data_format", "channels_last") == \
        "channels_last" else x


def _from_nchw(y, cfg):
    return y.transpose(0, 2, 3, 1) if cfg.get("data_format", "channels_last") == \
        "channels_last" else y


def _dense(cfg, w):
    act = _activation(cfg.get("activation"))

    def run(x):
        y = x @ w["kernel"]
        return act(y + w["bias"] if "bias" in w else y)
    return run


def _conv2d(cfg, w):
    act = _activation(cfg.get("activation"))
    k, s = tuple(cfg["kernel_size"]), tuple(cfg["strides"])
    d = tuple(cfg.get("dilation_rate", (1, 1)))
    kernel = w["kernel"]

    def run(x):
        x = _pad_nchw(_to_nchw(x, cfg), cfg["padding"], k, s, d)
        cols = _windows(x, k, s, d)                                   # N C OH OW kh kw
        y = np.einsum("ncijab,fcab->nfij", cols, kernel, optimize=True).astype(x.dtype)
        if "bias" in w:
            y = y + w["bias"].reshape(1, -1, 1, 1)
        return _from_nchw(act(y), cfg)
    return run


def _pool(is_max):
    def make(cfg, w):
        k, s = tuple(cfg["pool_size"]), tuple(cfg["strides"])

        def run(x):
            x = _to_nchw(x, cfg)
            if is_max:
                v = _windows(_pad_nchw(x, cfg["padding"], k, s, value=-np.inf), k, s)
                return _from_nchw(v.max(axis=(4, 5)), cfg)
            num = _windows(_pad_nchw(x, cfg["padding"], k, s), k, s).mean(axis=(4, 5))
            if cfg["padding"] == "same":      # TF divides by the real pixels at the border
                ones = np.ones((1, 1) + x.shape[2:], dtype=x.dtype)
                num = num / _windows(_pad_nchw(ones, "same", k, s), k, s).mean(axis=(4, 5))
            return _from_nchw(num.astype(x.dtype), cfg)
        return run
    return make


def _batchnorm(cfg, w):
    eps = np.float32(cfg.get("epsilon", 1e-3))

    def run(x):
        y = (x - w["moving_mean"]) / np.sqrt(w["moving_variance"] + eps)
        if "gamma" in w:
            y = y * w["gamma"]
        return y + w["beta"] if "beta" in w else y
    return run


def _reshape(cfg, w):
    target = tuple(int(d) for d in cfg["target_shape"])
    return lambda x: x.reshape((x.shape[0],) + target)


LAYERS = {
    "InputLayer": lambda cfg, w: (lambda x: x),
    "Dropout": lambda cfg, w: (lambda x: x),
    "Activation": lambda cfg, w: _activation(cfg.get("activation")),
    "Flatten": lambda cfg, w: (lambda x: x.reshape(x.shape[0], -1)),
    "Reshape": _reshape, "Dense": _dense, "Conv2D": _conv2d,
    "MaxPooling2D": _pool(True), "AveragePooling2D": _pool(False),
    "BatchNormalization": _batchnorm,
}


# ----------------------------------------------------------- preprocessing ---

def _merge(meta, arrays):
    if isinstance(meta, dict):
        if set(meta) == {"__array__"}:
            if meta["__array__"] not in arrays:
                raise ModelFormatError(f"runtime: preprocessing array {meta['__array__']!r} "
                                       "is missing")
            return arrays[meta["__array__"]]
        return {k: _merge(v, arrays) for k, v in meta.items()}
    if isinstance(meta, list):
        return [_merge(v, arrays) for v in meta]
    return meta


def _vec(state, key, cls, allow_nan=False):
    """A fitted 1-D float array of the preprocessing state, checked (type, shape, values)."""
    v = state.get(key)
    ok = isinstance(v, np.ndarray) and v.dtype.kind == "f" and v.ndim == 1
    if not ok or not (np.isfinite(v) | (allow_nan & np.isnan(v))).all():
        raise ModelFormatError(f"runtime: preprocessing {cls}.{key} must be a finite 1-D float "
                               f"array, got {type(v).__name__}")
    return v


def _flag(state, key, cls):
    v = state.get(key)
    if not isinstance(v, bool):
        raise ModelFormatError(f"runtime: preprocessing {cls}.{key} must be true or false, got "
                               f"{str(v)[:40]!r}")
    return v


def _transformer(state):
    cls = state.get("class") if isinstance(state, dict) else None
    if cls == "Pipeline":
        if not isinstance(state.get("steps"), list):
            raise ModelFormatError("runtime: preprocessing Pipeline.steps must be a list")
        steps = [_transformer(s) for s in state["steps"]]

        def pipeline(X):
            for step in steps:
                X = step(X)
            return X
        return pipeline
    if cls == "MinMaxScaler":
        scale, mn = _vec(state, "scale_", cls), _vec(state, "min_", cls)
        rng = state.get("feature_range")
        if not (isinstance(rng, list) and len(rng) == 2 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in rng)
                and len(scale) == len(mn)):
            raise ModelFormatError("runtime: preprocessing MinMaxScaler state is malformed")
        lo, hi = rng
        if "clip" in state:
            _flag(state, "clip", cls)

        def minmax(X):
            out = (X * scale + mn).astype(X.dtype)
            return np.clip(out, lo, hi, out=out) if state.get("clip") else out
        return minmax
    if cls == "StandardScaler":
        scale = _vec(state, "scale_", cls)
        mean = _vec(state, "mean_", cls) if _flag(state, "with_mean", cls) else 0.0
        return lambda X: ((X - mean if state["with_mean"] else X) / scale).astype(X.dtype)
    if cls == "SimpleImputer":
        stats = _vec(state, "statistics_", cls, allow_nan=True)
        missing = state.get("missing_values")
        if missing is not None and (isinstance(missing, bool)
                                    or not isinstance(missing, (int, float))):
            raise ModelFormatError("runtime: preprocessing SimpleImputer.missing_values must be "
                                   f"null or a number, got {str(missing)[:40]!r}")

        def impute(X):
            X = X.copy()
            mask = np.isnan(X) if missing is None else X == missing
            rows, cols = np.nonzero(mask)
            X[rows, cols] = stats[cols]
            return X[:, ~np.isnan(stats)]
        return impute
    raise ModelFormatError(f"runtime: preprocessing {cls!r} is not supported here; use "
                           "MinMaxScaler, StandardScaler, SimpleImputer or a Pipeline of them")


# ------------------------------------------------------------------- model ---

class Model:
    """A loaded model: ``predict`` / ``predict_classes`` / ``predict_labels`` on raw features."""

    def __init__(self, arrays, meta, path="<memory>"):
        arch = meta.get("architecture")
        if not (isinstance(arch, dict) and arch.get("class_name") == "Sequential"
                and isinstance(arch.get("layers"), list)):
            raise _fail(path, "the architecture is not a Sequential config")
        self.input_shape = tuple(arch.get("input_shape") or ())
        self.layers, self.layer_names = [], []
        used = set()
        for i, entry in enumerate(arch["layers"]):
            name = entry.get("class_name") if isinstance(entry, dict) else None
            if name not in LAYERS:
                raise _fail(path, f"layer {i} ({str(name)[:40]}) is not supported by the "
                                  f"runtime; supported: {sorted(LAYERS)}")
            prefix = f"weights.layers.{i}."
            w = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
            used.update(prefix + k for k in w)
            try:
                self.layers.append(LAYERS[name](entry.get("config") or {}, w))
            except (KeyError, TypeError, ValueError) as e:
                raise _fail(path, f"layer {i} ({name}) has an invalid config or weights "
                                  f"({type(e).__name__}: {str(e)[:80]})") from None
            self.layer_names.append(name)
        extra = sorted(k for k in arrays if k.startswith("weights.") and k not in used)
        if extra:
            raise _fail(path, f"weights {extra[:3]} belong to no layer")
        try:
            pre = meta.get("preprocessing")
            self.preprocess = None if pre is None else _transformer(_merge(pre, arrays))
            names = meta.get("label_names")
            self.label_names = None if names is None else [str(s) for s in names]
            if not self.input_shape or not all(type(d) is int and d >= 1
                                               for d in self.input_shape):
                raise ValueError(f"invalid input_shape {str(arch.get('input_shape'))[:40]}")
            if math.prod(self.input_shape) > 2**24:
                raise ValueError(f"input_shape {self.input_shape} is too large")
            y = np.zeros((1,) + self.input_shape, np.float32)   # the weights fit the layers
            for layer in self.layers:
                y = layer(y)
        except ModelFormatError as e:
            raise _fail(path, str(e)) from None
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            raise _fail(path, f"the architecture, weights or preprocessing do not fit together "
                              f"({type(e).__name__}: {str(e)[:100]})") from None

    def _prepare(self, X):
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == len(self.input_shape):          # one sample without the batch axis
            X = X[None]
        n = X.shape[0]
        if self.preprocess is not None:
            X = self.preprocess(X.reshape(n, -1))
        if self.input_shape:
            X = X.reshape((n,) + self.input_shape)
        return X.astype(np.float32)

    def predict(self, X, batch_size=32):
        """Outputs (probabilities for a softmax/sigmoid last layer) for raw ``X``, as float32."""
        X = self._prepare(X)
        outs = []
        for s in range(0, len(X), batch_size):
            y = X[s:s + batch_size]
            for layer in self.layers:
                y = layer(y)
            outs.append(y)
        return np.concatenate(outs, axis=0)

    def predict_classes(self, X, batch_size=32):
        p = self.predict(X, batch_size)
        if p.ndim == 2 and p.shape[1] == 1:
            return (p[:, 0] > 0.5).astype(np.int64)
        return p.argmax(axis=-1)

    def predict_labels(self, X, batch_size=32):
        idx = self.predict_classes(X, batch_size)
        return idx if self.label_names is None else np.asarray(self.label_names)[idx]


# -------------------------------------------------------------------- ONNX ---
# A minimal protobuf wire-format reader for the ONNX messages this runtime needs (ModelProto,
# GraphProto, NodeProto, AttributeProto, TensorProto, ValueInfoProto), then a NumPy interpreter
# of the op subset tinygrad_lite exports (and PyTorch's exporter writes for MLPs, CNNs, LSTMs).
# Every length, count, dtype, shape and external-data path is checked before it is used.

ONNX_MAX_NODES = 100_000
ONNX_MAX_TENSOR_ELEMENTS = 2**28          # per tensor (1 GiB of float32)
ONNX_MAX_RUNTIME_ELEMENTS = 2**26         # a shape computed inside the graph (ConstantOfShape...)
ONNX_MAX_STEPS = 100_000                  # recurrent time steps (a Python loop per step)
ONNX_MAX_FIELDS = 2**23                   # protobuf fields and packed values in one file
ONNX_OPSETS = (13, 21)                    # the default-domain opsets whose op semantics we run
_ONNX_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16, 6: np.int32,
                7: np.int64, 9: np.bool_, 10: np.float16, 11: np.float64, 12: np.uint32,
                13: np.uint64}
_ONNX_LIST_FIELD = {1: 4, 2: 5, 3: 5, 4: 5, 5: 5, 6: 5, 9: 5, 10: 5, 7: 7, 11: 10, 12: 11,
                    13: 11}   # data_type -> the TensorProto field of its typed list
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


class _PB:
    """Fields of one protobuf message: ``fields(start, end)`` yields (number, wire type, value)
    with value an int (varint), bytes (fixed 32/64-bit) or a (start, end) span (length-
    delimited), every length checked against the enclosing message."""

    def __init__(self, buf):
        self.buf, self.budget = buf, ONNX_MAX_FIELDS

    def spend(self, n=1):
        """Count decoded fields/values: a file of millions of tiny fields is refused, not
        parsed for minutes."""
        self.budget -= n
        if self.budget < 0:
            raise ModelFormatError(f"over {ONNX_MAX_FIELDS} protobuf fields")

    def varint(self, i, end):
        buf, shift, v = self.buf, 0, 0
        for _ in range(10):
            if i >= end:
                raise ModelFormatError("truncated varint")
            b = buf[i]
            i += 1
            v |= (b & 0x7F) << shift
            if b < 0x80:
                return v, i
            shift += 7
        raise ModelFormatError("varint longer than 10 bytes")

    def fields(self, i, end):
        while i < end:
            self.spend()
            key, i = self.varint(i, end)
            num, wire = key >> 3, key & 7
            if num == 0:
                raise ModelFormatError("field number 0")
            if wire == _VARINT:
                v, i = self.varint(i, end)
            elif wire == _I64 or wire == _I32:
                n = 8 if wire == _I64 else 4
                if i + n > end:
                    raise ModelFormatError("truncated fixed-width field")
                v, i = self.buf[i:i + n], i + n
            elif wire == _LEN:
                n, i = self.varint(i, end)
                if n > end - i:
                    raise ModelFormatError(f"length {n} runs past its message")
                v, i = (i, i + n), i + n
            else:
                raise ModelFormatError(f"unsupported protobuf wire type {wire}")
            yield num, wire, v

    def text(self, span):
        return bytes(self.buf[span[0]:span[1]]).decode("utf-8")

    def ints(self, wire, v, out, signed=True):
        """Append a repeated integer field (packed or not) to ``out``."""
        if wire == _VARINT:
            vals = [v]
        elif wire == _LEN:
            vals, i = [], v[0]
            self.spend((v[1] - v[0]) // 2)          # at least one byte per value
            while i < v[1]:
                x, i = self.varint(i, v[1])
                vals.append(x)
        else:
            raise ModelFormatError("an integer list has a fixed-width wire type")
        out.extend(x - (1 << 64) if signed and x >= 1 << 63 else x for x in vals)

    def fixed(self, wire, v, out, code):
        """Append a repeated float/double field (packed or not)."""
        size = struct.calcsize(code)
        if wire == _LEN:
            if (v[1] - v[0]) % size:
                raise ModelFormatError("a packed float list has a partial element")
            out.append(np.frombuffer(self.buf[v[0]:v[1]], dtype="<" + code))
        elif wire in (_I64, _I32) and len(v) == size:
            out.append(np.frombuffer(v, dtype="<" + code))
        else:
            raise ModelFormatError("a float list has the wrong wire type")


def _signed(v):
    return v - (1 << 64) if v >= 1 << 63 else v


def _string_entry(pb, span):
    """A StringStringEntryProto: (key, value), either None when absent."""
    key = val = None
    for num, wire, v in pb.fields(*span):
        if num == 1 and wire == _LEN:
            key = pb.text(v)
        elif num == 2 and wire == _LEN:
            val = pb.text(v)
    return key, val


def _onnx_tensor(pb, span, ctx):
    dims, dtype, name, raw, lists, ext, location = [], None, "", None, [], {}, 0
    ints = []
    for num, wire, v in pb.fields(*span):
        if num == 1:
            pb.ints(wire, v, dims)
        elif num == 2 and wire == _VARINT:
            dtype = v
        elif num == 8 and wire == _LEN:
            name = pb.text(v)
        elif num == 9 and wire == _LEN:
            raw = v
        elif num == 13 and wire == _LEN:
            key, val = _string_entry(pb, v)
            ext[key] = val
        elif num == 14 and wire == _VARINT:
            location = v
        elif num in (4, 10):
            pb.fixed(wire, v, lists, "f" if num == 4 else "d")
            lists_field = num
        elif num in (5, 7, 11):
            pb.ints(wire, v, ints, signed=num != 11)
            lists_field = num
        elif num in (3, 6):
            raise ModelFormatError(f"tensor {name!r}: segments and string tensors are not "
                                   "supported")
    if dtype not in _ONNX_DTYPES:
        raise ModelFormatError(f"tensor {name!r} has unsupported data type {dtype}")
    if len(dims) > MAX_NDIM or any(d < 0 for d in dims):
        raise ModelFormatError(f"tensor {name!r} has an invalid shape {dims[:10]}")
    n = 1
    for d in dims:
        n *= d
        if n > ONNX_MAX_TENSOR_ELEMENTS:
            raise ModelFormatError(f"tensor {name!r} of shape {dims} is over the cap of "
                                   f"{ONNX_MAX_TENSOR_ELEMENTS} elements")
    dt = np.dtype(_ONNX_DTYPES[dtype])
    nbytes = n * dt.itemsize
    if location == 1 or ext:
        data = _onnx_external(name, ext, nbytes, ctx)
    elif raw is not None:
        if raw[1] - raw[0] != nbytes:
            raise ModelFormatError(f"tensor {name!r}: raw_data has {raw[1] - raw[0]} bytes, its "
                                   f"shape {dims} and type need {nbytes}")
        data = pb.buf[raw[0]:raw[1]]
    else:
        want = _ONNX_LIST_FIELD[dtype]
        if n and (lists_field if (lists or ints) else None) != want:
            raise ModelFormatError(f"tensor {name!r}: no data for its {n} elements")
        if want in (4, 10):
            vals = np.concatenate(lists) if lists else np.zeros(0, dt)
        else:
            vals = np.asarray(ints, dtype=np.int64 if want != 11 else np.uint64)
        if vals.size != n:
            raise ModelFormatError(f"tensor {name!r}: {vals.size} values for shape {dims}")
        if dtype == 10:                                   # float16 stored as uint16 bits
            return name, vals.astype(np.uint16).view(np.float16).reshape(dims)
        return name, vals.astype(dt).reshape(dims)
    return name, np.frombuffer(data, dtype=dt.newbyteorder("<")).astype(dt).reshape(dims)


def _onnx_external(name, ext, nbytes, ctx):
    """Bytes of a tensor kept in a file beside the model: the path must stay inside the model's
    folder (no absolute paths, no '..', no symlink out), and offset/length must fit the file."""
    loc = ext.get("location")
    base = ctx["dir"]
    if not loc or "\0" in loc or os.path.isabs(loc) or os.path.splitdrive(loc)[0]:
        raise ModelFormatError(f"tensor {name!r}: external data location {str(loc)[:80]!r} must "
                               "be a relative path inside the model's folder")
    full = os.path.realpath(os.path.join(base, loc))
    if os.path.commonpath([full, os.path.realpath(base)]) != os.path.realpath(base) \
            or ".." in loc.replace("\\", "/").split("/"):
        raise ModelFormatError(f"tensor {name!r}: external data location {loc[:80]!r} points "
                               "outside the model's folder")
    try:
        offset = int(ext.get("offset") or 0)
        length = int(ext["length"]) if ext.get("length") is not None else nbytes
    except ValueError:
        raise ModelFormatError(f"tensor {name!r}: external data offset/length are not "
                               "integers") from None
    if offset < 0 or length != nbytes:
        raise ModelFormatError(f"tensor {name!r}: external data length {length} does not match "
                               f"its shape ({nbytes} bytes)")
    ctx["external"] += nbytes
    if ctx["external"] > ctx["max_bytes"]:
        raise ModelFormatError("external data is over the size cap")
    if not os.path.isfile(full):                   # a FIFO or device would block or never end
        raise ModelFormatError(f"tensor {name!r}: cannot read external data {loc!r} (not a "
                               "regular file)")
    try:
        size = os.path.getsize(full)
        if offset + nbytes > size:
            raise ModelFormatError(f"tensor {name!r}: external data runs past the end of "
                                   f"{loc!r}")
        with open(full, "rb") as f:
            f.seek(offset)
            return f.read(nbytes)
    except OSError as e:
        raise ModelFormatError(f"tensor {name!r}: cannot read external data {loc!r} "
                               f"({e.strerror or e})") from None


_ATTR_FIELDS = {2: "f", 3: "i", 4: "s", 5: "t", 7: "floats", 8: "ints", 9: "strings"}


def _onnx_attr(pb, span, ctx):
    name, vals, kind = None, {}, None
    for num, wire, v in pb.fields(*span):
        if num == 1 and wire == _LEN:
            name = pb.text(v)
        elif num == 20 and wire == _VARINT:
            kind = v
        elif num == 2 and wire == _I32:
            vals["f"] = float(np.frombuffer(v, "<f4")[0])
        elif num == 3 and wire == _VARINT:
            vals["i"] = _signed(v)
        elif num == 4 and wire == _LEN:
            vals["s"] = bytes(pb.buf[v[0]:v[1]])
        elif num == 5 and wire == _LEN:
            vals["t"] = _onnx_tensor(pb, v, ctx)[1]
        elif num == 7:
            out = vals.setdefault("floats", [])
            pb.fixed(wire, v, out, "f")
        elif num == 8:
            pb.ints(wire, v, vals.setdefault("ints", []))
        elif num == 9 and wire == _LEN:
            vals.setdefault("strings", []).append(bytes(pb.buf[v[0]:v[1]]))
        elif num in (6, 10, 11, 22, 23):
            raise ModelFormatError(f"attribute {name!r}: graph/tensor-list attributes are not "
                                   "supported")
    kinds = {1: "f", 2: "i", 3: "s", 4: "t", 6: "floats", 7: "ints", 8: "strings"}
    key = kinds.get(kind) if kind else (next(iter(vals)) if len(vals) == 1 else None)
    if name is None or key is None:
        raise ModelFormatError(f"attribute {name!r} has no usable value")
    val = vals.get(key, [] if key in ("floats", "ints", "strings") else None)
    if val is None:
        raise ModelFormatError(f"attribute {name!r} has no value of its type")
    if key == "floats":
        val = [float(x) for x in (np.concatenate(val) if val else [])]
    return name, val


def _onnx_value_info(pb, span):
    name, elem, dims = None, None, None
    for num, wire, v in pb.fields(*span):
        if num == 1 and wire == _LEN:
            name = pb.text(v)
        elif num == 2 and wire == _LEN:
            for n2, w2, v2 in pb.fields(*v):
                if n2 == 1 and w2 == _LEN:                       # tensor_type
                    for n3, w3, v3 in pb.fields(*v2):
                        if n3 == 1 and w3 == _VARINT:
                            elem = v3
                        elif n3 == 2 and w3 == _LEN:            # shape
                            dims = []
                            for n4, w4, v4 in pb.fields(*v3):
                                if n4 == 1 and w4 == _LEN:
                                    d = None
                                    for n5, w5, v5 in pb.fields(*v4):
                                        if n5 == 1 and w5 == _VARINT:
                                            d = _signed(v5)
                                    dims.append(d)
    return name, elem, dims


def _onnx_node(pb, span, ctx):
    node = {"inputs": [], "outputs": [], "attrs": {}, "op": None, "domain": "", "name": ""}
    for num, wire, v in pb.fields(*span):
        if wire != _LEN:
            continue
        if num == 1:
            node["inputs"].append(pb.text(v))
        elif num == 2:
            node["outputs"].append(pb.text(v))
        elif num == 3:
            node["name"] = pb.text(v)
        elif num == 4:
            node["op"] = pb.text(v)
        elif num == 7:
            node["domain"] = pb.text(v)
        elif num == 5:
            k, val = _onnx_attr(pb, v, ctx)
            node["attrs"][k] = val
    if not node["op"]:
        raise ModelFormatError("a node has no op_type")
    return node


def _onnx_graph(pb, span, ctx):
    g = {"nodes": [], "inits": {}, "inputs": [], "outputs": []}
    for num, wire, v in pb.fields(*span):
        if wire != _LEN:
            continue
        if num == 1:
            g["nodes"].append(_onnx_node(pb, v, ctx))
            if len(g["nodes"]) > ONNX_MAX_NODES:
                raise ModelFormatError(f"over {ONNX_MAX_NODES} nodes")
        elif num == 5:
            name, arr = _onnx_tensor(pb, v, ctx)
            g["inits"][name] = arr
            if len(g["inits"]) > MAX_TENSORS:
                raise ModelFormatError(f"over {MAX_TENSORS} initializers")
        elif num == 15:
            raise ModelFormatError("sparse initializers are not supported")
        elif num == 11:
            g["inputs"].append(_onnx_value_info(pb, v))
        elif num == 12:
            g["outputs"].append(_onnx_value_info(pb, v))
    return g


def _check_size(path, max_bytes):
    """A model file that exists, can be read and is at most ``max_bytes`` long."""
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise _fail(path, f"cannot read the file ({e.strerror or e})") from None
    if size > max_bytes:
        raise _fail(path, f"file is {size} bytes, over the cap of {max_bytes}")


def read_onnx(path, max_bytes=MAX_FILE_BYTES):
    """Parse an ONNX file into ``{"ir_version", "opset", "graph": {nodes, inits, inputs,
    outputs}, "metadata"}`` with every field checked; ``ModelFormatError`` on anything else."""
    _check_size(path, max_bytes)
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError as e:
        raise _fail(path, f"cannot read the file ({e.strerror or e})") from None
    ctx = {"dir": os.path.dirname(os.path.abspath(os.fspath(path))), "external": 0,
           "max_bytes": max_bytes}
    try:
        pb = _PB(blob)
        model = {"ir_version": None, "opset": {}, "graph": None, "metadata": {}}
        for num, wire, v in pb.fields(0, len(blob)):
            if num == 1 and wire == _VARINT:
                model["ir_version"] = v
            elif num == 8 and wire == _LEN:
                dom, ver = "", None
                for n2, w2, v2 in pb.fields(*v):
                    if n2 == 1 and w2 == _LEN:
                        dom = pb.text(v2)
                    elif n2 == 2 and w2 == _VARINT:
                        ver = v2
                model["opset"][dom] = ver
            elif num == 7 and wire == _LEN:
                model["graph"] = _onnx_graph(pb, v, ctx)
            elif num == 14 and wire == _LEN:
                key, val = _string_entry(pb, v)
                model["metadata"][key] = val
    except ModelFormatError as e:
        raise _fail(path, f"not a valid ONNX file ({e})") from None
    except (UnicodeDecodeError, ValueError, TypeError, IndexError, KeyError, OverflowError,
            struct.error, RecursionError, MemoryError) as e:
        raise _fail(path, f"not a valid ONNX file ({type(e).__name__}: {str(e)[:80]})") \
            from None
    if model["graph"] is None or model["ir_version"] is None:
        raise _fail(path, "not an ONNX model (no graph or no ir_version)")
    if not 3 <= model["ir_version"] <= 11:
        raise _fail(path, f"unsupported ONNX IR version {model['ir_version']}")
    extra = sorted(d for d in model["opset"] if d not in ("", "ai.onnx"))
    if extra:
        raise _fail(path, f"custom op domains {extra[:3]} are not supported")
    ver = model["opset"].get("", model["opset"].get("ai.onnx"))
    if ver is None or not ONNX_OPSETS[0] <= ver <= ONNX_OPSETS[1]:
        raise _fail(path, f"default-domain opset {ver} is outside the supported range "
                          f"{ONNX_OPSETS[0]}..{ONNX_OPSETS[1]}")
    model["opset_version"] = ver
    return model


def _cap_shape(op, shape):
    shape = [int(d) for d in np.asarray(shape).reshape(-1)]
    if any(d < 0 for d in shape) or math.prod(shape) > ONNX_MAX_RUNTIME_ELEMENTS:
        raise ModelFormatError(f"{op}: shape {shape[:8]} is negative or over the cap of "
                               f"{ONNX_MAX_RUNTIME_ELEMENTS} elements")
    return shape


def _broadcast_capped(op, arrays):
    """The arrays broadcast together, the result size checked against the cap first."""
    arrays = [np.asarray(v) for v in arrays]
    _cap_shape(op, np.broadcast_shapes(*(v.shape for v in arrays)))
    return np.broadcast_arrays(*arrays)


def _capped(op, fn):
    """A NumPy binary op whose broadcast result is checked against the runtime cap first."""
    def run(ins, a):
        p, q = np.asarray(ins[0]), np.asarray(ins[1])
        if p.size * q.size > ONNX_MAX_RUNTIME_ELEMENTS:      # else the result is small anyway
            shape = np.broadcast_shapes(p.shape, q.shape) if op != "MatMul" else \
                p.shape[:-1] + q.shape[-1:] + np.broadcast_shapes(p.shape[:-2], q.shape[:-2])
            _cap_shape(op, shape)
        return [fn(p, q)]
    return run


def _np_pool_geometry(x, a, nd):
    k = tuple(a["kernel_shape"])
    s = tuple(a.get("strides", (1,) * nd))
    d = tuple(a.get("dilations", (1,) * nd))
    pads = tuple(a.get("pads", (0,) * (2 * nd)))
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise ModelFormatError("auto_pad is not supported; export with explicit pads")
    if len(k) != nd or len(s) != nd or len(d) != nd or len(pads) != 2 * nd or nd not in (1, 2):
        raise ModelFormatError(f"pooling/conv attributes do not fit a {nd}-D input")
    return k, s, d, pads


def _np_windows(x, k, s, d, pads, value, ceil=False):
    """(N, C, *out, *k) windows of x (N, C, *spatial) after padding (nd = 1 or 2)."""
    nd = len(k)
    widths = [(0, 0), (0, 0)]
    for i in range(nd):
        lo, hi = pads[i], pads[i + nd]
        span = (k[i] - 1) * d[i] + 1
        total = x.shape[2 + i] + lo + hi - span
        if total < 0:
            raise ValueError(f"window {span} is larger than the padded input")
        if ceil and total % s[i]:
            extra = s[i] - total % s[i]
            if (total + extra) // s[i] * s[i] >= x.shape[2 + i] + lo:   # ONNX/PyTorch rule
                extra = 0
            hi += extra
        widths.append((lo, hi))
    _cap_shape("padding", [n + lo + hi for n, (lo, hi) in zip(x.shape, widths)])
    xp = np.pad(x, widths, constant_values=value)
    spans = tuple((k[i] - 1) * d[i] + 1 for i in range(nd))
    v = np.lib.stride_tricks.sliding_window_view(xp, spans, axis=tuple(range(2, 2 + nd)))
    idx = (slice(None), slice(None)) + tuple(slice(None, None, si) for si in s) + \
        tuple(slice(None, None, di) for di in d)
    return v[idx], widths


def _gather_index(shape, idx, a):
    """Gather's indices as int64, its output size checked against the cap first."""
    idx = np.asarray(idx).astype(np.int64)
    axis = int(a.get("axis", 0)) % max(len(shape), 1)
    _cap_shape("Gather", list(shape[:axis]) + list(idx.shape) + list(shape[axis + 1:]))
    return idx


def _conv_out(x_shape, w_shape, k, s, d, pads):
    """A convolution's output shape, checked against the cap before anything is computed."""
    nd = len(k)
    out = [x_shape[0], w_shape[0]] + [
        (x_shape[2 + i] + pads[i] + pads[i + nd] - (k[i] - 1) * d[i] - 1) // s[i] + 1
        for i in range(nd)]
    return _cap_shape("Conv", [max(o, 0) for o in out])


def _np_conv(ins, a):
    x, w = ins[0], ins[1]
    nd = x.ndim - 2
    a = dict(a)
    a.setdefault("kernel_shape", list(w.shape[2:]))
    k, s, d, pads = _np_pool_geometry(x, a, nd)
    g = int(a.get("group", 1))
    if tuple(w.shape[2:]) != k or x.shape[1] != w.shape[1] * g or w.shape[0] % g:
        raise ValueError(f"Conv: weight {w.shape} does not fit input {x.shape}, group {g}")
    _conv_out(x.shape, w.shape, k, s, d, pads)
    cols, _ = _np_windows(x, k, s, d, pads, 0.0)
    letters = "hw"[:nd]
    spec = f"nc{'ij'[:nd]}{letters},fc{letters}->nf{'ij'[:nd]}"
    cg, fg = x.shape[1] // g, w.shape[0] // g
    ys = [np.einsum(spec, cols[:, i * cg:(i + 1) * cg], w[i * fg:(i + 1) * fg], optimize=True)
          for i in range(g)]
    y = (ys[0] if g == 1 else np.concatenate(ys, axis=1)).astype(x.dtype)
    if len(ins) > 2 and ins[2] is not None:
        y = y + ins[2].reshape((1, -1) + (1,) * nd)
    return [y]


def _np_conv_transpose(ins, a):
    """ConvTranspose: each input pixel scatters its kernel-weighted values (a sum over kernel
    positions of strided slices), then the pads are cropped."""
    x, w = ins[0], ins[1]
    nd = x.ndim - 2
    if nd not in (1, 2) or w.ndim != nd + 2:
        raise ModelFormatError(f"ConvTranspose: {nd}-D input is not supported (1-D and 2-D are)")
    if "output_shape" in a or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise ModelFormatError("ConvTranspose: output_shape/auto_pad are not supported; export "
                               "with explicit pads")
    k = tuple(w.shape[2:])
    s = tuple(a.get("strides", (1,) * nd))
    d = tuple(a.get("dilations", (1,) * nd))
    pads = tuple(a.get("pads", (0,) * (2 * nd)))
    op = tuple(a.get("output_padding", (0,) * nd))
    g = int(a.get("group", 1))
    if x.shape[1] != w.shape[0] or x.shape[1] % g or min(s + d) < 1 or len(pads) != 2 * nd:
        raise ValueError(f"ConvTranspose: weight {w.shape} does not fit input {x.shape}")
    full = [(x.shape[2 + i] - 1) * s[i] + (k[i] - 1) * d[i] + 1 + op[i] for i in range(nd)]
    out = [full[i] - pads[i] - pads[i + nd] for i in range(nd)]
    n_out = w.shape[1] * g
    _cap_shape("ConvTranspose", [x.shape[0], n_out] + full)
    if min(out) < 1:
        raise ValueError(f"ConvTranspose: empty output {out}")
    y = np.zeros([x.shape[0], n_out] + full, x.dtype)
    cg, og = x.shape[1] // g, w.shape[1]
    for gi in range(g):
        xg, wg = x[:, gi * cg:(gi + 1) * cg], w[gi * cg:(gi + 1) * cg]
        for pos in np.ndindex(*k):
            contrib = np.tensordot(xg, wg[(slice(None), slice(None)) + pos], axes=([1], [0]))
            contrib = np.moveaxis(contrib, -1, 1)                      # (N, og, *in)
            idx = (slice(None), slice(gi * og, (gi + 1) * og)) + tuple(
                slice(pos[i] * d[i], pos[i] * d[i] + (x.shape[2 + i] - 1) * s[i] + 1, s[i])
                for i in range(nd))
            y[idx] += contrib
    y = y[(slice(None), slice(None)) + tuple(slice(pads[i], pads[i] + out[i])
                                              for i in range(nd))]
    if len(ins) > 2 and ins[2] is not None:
        y = y + ins[2].reshape((1, -1) + (1,) * nd)
    return [y]


def _np_maxpool(ins, a):
    x = ins[0]
    k, s, d, pads = _np_pool_geometry(x, a, x.ndim - 2)
    v, _ = _np_windows(x, k, s, d, pads, -np.inf, bool(a.get("ceil_mode", 0)))
    return [v.max(axis=tuple(range(-len(k), 0))).astype(x.dtype)]


def _np_avgpool(ins, a):
    x = ins[0]
    nd = x.ndim - 2
    k, s, d, pads = _np_pool_geometry(x, a, nd)
    ceil = bool(a.get("ceil_mode", 0))
    axes = tuple(range(-nd, 0))
    v, widths = _np_windows(x, k, s, d, pads, 0.0, ceil)
    total = v.sum(axis=axes)
    ones = np.ones((1, 1) + x.shape[2:], x.dtype)
    if a.get("count_include_pad", 0):     # the explicit pads count, ceil_mode's extra does not
        inner = np.pad(ones, [(0, 0), (0, 0)] + [(pads[i], pads[i + nd]) for i in range(nd)],
                       constant_values=1)
        cnt, _ = _np_windows(inner, k, s, d, (0,) * (2 * nd), 0.0, False)
        cnt = cnt.sum(axis=axes)
        if cnt.shape[2:] != total.shape[2:]:       # ceil windows past the padded end
            cnt = np.pad(cnt, [(0, 0), (0, 0)] + [(0, t - c) for t, c in
                                                   zip(total.shape[2:], cnt.shape[2:])],
                         mode="edge")
            cv, _ = _np_windows(inner, k, s, d, [0] * nd + [w[1] - p for w, p in
                                                            zip(widths[2:], pads[nd:])], 0.0)
            cnt = cv.sum(axis=axes)
    else:
        cnt, _ = _np_windows(ones, k, s, d, pads, 0.0, ceil)
        cnt = cnt.sum(axis=axes)
    return [(total / cnt).astype(x.dtype)]


def _np_act(name, a):
    alpha = a.get("alpha")
    if name == "Elu":
        al = 1.0 if alpha is None else alpha
        return lambda x: np.where(x > 0, x, al * np.expm1(np.minimum(x, 0))).astype(x.dtype)
    if name == "LeakyRelu":
        al = 0.01 if alpha is None else alpha
        return lambda x: np.where(x > 0, x, x * np.float32(al)).astype(x.dtype)
    if name == "HardSigmoid":
        al, be = (0.2 if alpha is None else alpha), a.get("beta", 0.5)
        return lambda x: np.clip(x * np.float32(al) + np.float32(be), 0, 1).astype(x.dtype)
    if name == "Selu":
        al = a.get("alpha", 1.67326319217681884765625)
        ga = a.get("gamma", 1.05070102214813232421875)
        return lambda x: (np.float32(ga) * np.where(x > 0, x, np.float32(al) * np.expm1(
            np.minimum(x, 0)))).astype(x.dtype)
    return {"Relu": lambda x: np.maximum(x, 0), "Sigmoid": _sigmoid, "Tanh": np.tanh,
            "Softplus": lambda x: np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x))),
            "Softsign": lambda x: x / (1 + np.abs(x)), "Exp": np.exp, "Log": np.log,
            "Sqrt": np.sqrt, "Neg": np.negative, "Abs": np.abs, "Reciprocal": np.reciprocal,
            "Erf": lambda x: _erf(x).astype(x.dtype), "Not": np.logical_not,
            "HardSwish": lambda x: x * np.clip(x / 6 + 0.5, 0, 1).astype(x.dtype),
            "Floor": np.floor, "Ceil": np.ceil}[name]


def _np_softmax(log):
    def run(ins, a):
        x = ins[0]
        axis = int(a.get("axis", -1))
        s = x - x.max(axis=axis, keepdims=True)
        if log:
            return [s - np.log(np.exp(s).sum(axis=axis, keepdims=True))]
        e = np.exp(s)
        return [e / e.sum(axis=axis, keepdims=True)]
    return run


def _np_gemm(ins, a):
    A, B = ins[0], ins[1]
    A = A.T if a.get("transA", 0) else A
    B = B.T if a.get("transB", 0) else B
    _cap_shape("Gemm", A.shape[:-1] + B.shape[-1:])
    y = A @ B
    if a.get("alpha", 1.0) != 1.0:
        y = y * np.float32(a["alpha"])
    if len(ins) > 2 and ins[2] is not None:
        c = ins[2]
        y = y + (c if a.get("beta", 1.0) == 1.0 else c * np.float32(a["beta"]))
    return [y]


def _np_batchnorm(ins, a):
    x, scale, bias, mean, var = ins[:5]
    if x.ndim < 2 or any(v.size != x.shape[1] for v in (scale, bias, mean, var)):
        raise ValueError(f"BatchNormalization: parameters do not fit {x.shape[1:2]} channels")
    shape = (1, -1) + (1,) * (x.ndim - 2)
    eps = np.float32(a.get("epsilon", 1e-5))
    y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    return [(y * scale.reshape(shape) + bias.reshape(shape)).astype(x.dtype)]


def _np_layernorm(ins, a):
    x, scale = ins[0], ins[1]
    axis = int(a.get("axis", -1)) % x.ndim
    if any(np.broadcast_shapes(x.shape, np.shape(v)) != x.shape for v in ins[1:3]
           if v is not None):
        raise ValueError(f"LayerNormalization: scale/bias do not fit the input {x.shape}")
    axes = tuple(range(axis, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mean) / np.sqrt(var + np.float32(a.get("epsilon", 1e-5))) * scale
    if len(ins) > 2 and ins[2] is not None:
        y = y + ins[2]
    return [y.astype(x.dtype)]


def _axes_arg(ins, a, i=1):
    if len(ins) > i and ins[i] is not None:
        return [int(v) for v in np.asarray(ins[i]).reshape(-1)]
    return [int(v) for v in a["axes"]] if "axes" in a else None


def _np_reshape(ins, a):
    x, shape = ins[0], [int(v) for v in np.asarray(ins[1]).reshape(-1)]
    if not a.get("allowzero", 0):
        shape = [x.shape[i] if v == 0 else v for i, v in enumerate(shape)]
    return [x.reshape(shape)]


def _np_slice(ins, a):
    x = ins[0]
    starts, ends = [np.asarray(v).reshape(-1) for v in ins[1:3]]
    axes = _axes_arg(ins, a, 3) or list(range(len(starts)))
    steps = np.asarray(ins[4]).reshape(-1) if len(ins) > 4 and ins[4] is not None \
        else [1] * len(starts)
    idx = [slice(None)] * x.ndim
    for st, en, ax, sp in zip(starts, ends, axes, steps):
        if sp == 0:
            raise ValueError("Slice: step 0")
        big = 2**62
        idx[int(ax)] = slice(int(max(min(st, big), -big)), int(max(min(en, big), -big)),
                             int(sp))
    return [x[tuple(idx)]]


def _text(v):
    return v.decode() if isinstance(v, bytes) else v


def _np_rnn_weights(kind, ins, a):
    """An ONNX LSTM/GRU/RNN node's input as (T, N, F) and its per-direction weights
    ``[(W, R, Wb, Rb, reverse)]`` in ONNX gate order, checked; plus H, the number of
    directions and the layout."""
    direction = _text(a.get("direction", "forward"))
    if direction not in ("forward", "reverse", "bidirectional"):
        raise ModelFormatError(f"{kind}: unknown direction {direction!r}")
    D = 2 if direction == "bidirectional" else 1
    acts = [_text(v) for v in a.get("activations", [])]
    default = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"],
               "RNN": ["Tanh"]}[kind]
    if acts and acts != default * D and not (kind == "RNN" and acts == ["Relu"] * D):
        raise ModelFormatError(f"{kind}: activations {acts[:3]} are not supported")
    if a.get("clip") is not None or a.get("input_forget", 0):
        raise ModelFormatError(f"{kind}: clip and input_forget are not supported")
    if len(ins) > 4 and ins[4] is not None:
        raise ModelFormatError(f"{kind}: sequence_lens is not supported")
    x, W, R = ins[0], ins[1], ins[2]
    layout = int(a.get("layout", 0))
    if layout:
        x = x.swapaxes(0, 1)
    H = int(a["hidden_size"])
    G = {"LSTM": 4, "GRU": 3, "RNN": 1}[kind]
    B = ins[3] if len(ins) > 3 and ins[3] is not None else np.zeros((D, 2 * G * H), x.dtype)
    if x.ndim != 3 or W.shape != (D, G * H, x.shape[2]) or R.shape != (D, G * H, H) \
            or B.shape != (D, 2 * G * H):
        raise ValueError(f"{kind}: weights W {W.shape}, R {R.shape}, B {B.shape} do not fit "
                         f"hidden_size {H}, {D} direction(s) and input {x.shape}")
    if x.shape[0] > ONNX_MAX_STEPS or x.shape[0] * x.shape[1] * G * H > ONNX_MAX_RUNTIME_ELEMENTS:
        raise ModelFormatError(f"{kind}: {x.shape[0]} steps x {x.shape[1]} sequences x {G * H} "
                               f"gates are over the caps ({ONNX_MAX_STEPS} steps, "
                               f"{ONNX_MAX_RUNTIME_ELEMENTS} elements)")
    dirs = [(W[d], R[d], B[d, :G * H], B[d, G * H:], direction == "reverse" or d == 1)
            for d in range(D)]
    return x, dirs, H, D, layout


def _np_states(ins, i, layout, D, N, H, dtype):
    """Initial state input ``i`` as (D, N, H) (zeros when absent)."""
    if len(ins) <= i or ins[i] is None:
        return np.zeros((D, N, H), dtype)
    s = ins[i].swapaxes(0, 1) if layout else ins[i]
    if s.shape != (D, N, H):
        raise ValueError(f"initial state {ins[i].shape} does not fit ({D}, {N}, {H})")
    return s


def _np_recurrent(kind, ins, a, n_states, project, step):
    """Run every direction of an ONNX recurrent node: ``project`` the whole sequence at once,
    then ``step`` per time step (reversed for the backward direction)."""
    x, dirs, H, D, layout = _np_rnn_weights(kind, ins, a)
    T, N = x.shape[:2]
    inits = [_np_states(ins, 5 + j, layout, D, N, H, x.dtype) for j in range(n_states)]
    ys, finals = [], [[] for _ in range(n_states)]
    for d, (W, R, Wb, Rb, reverse) in enumerate(dirs):
        xs = project(x, W, Wb, Rb)
        state = tuple(s[d] for s in inits)
        out = [None] * T
        for t in (range(T - 1, -1, -1) if reverse else range(T)):
            state = step(xs[t], state, R, Rb, H)
            out[t] = state[0]
        ys.append(np.stack(out))
        for j in range(n_states):
            finals[j].append(state[j])
    y = np.stack(ys, axis=1)                                       # (T, D, N, H)
    finals = [np.stack(f) for f in finals]                         # (D, N, H)
    if layout:
        return [y.transpose(2, 0, 1, 3)] + [f.swapaxes(0, 1) for f in finals]
    return [y] + finals


def _lstm_step(xt, state, R, Rb, H):
    h, c = state
    g = xt + h @ R.T
    i, o, f, cc = (g[:, j * H:(j + 1) * H] for j in range(4))          # ONNX order i, o, f, c
    c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(cc)
    return _sigmoid(o) * np.tanh(c), c


def _gru_step(xt, state, R, Rb, H):
    (h,) = state
    hr = h @ R.T + Rb
    z = _sigmoid(xt[:, :H] + hr[:, :H])
    r = _sigmoid(xt[:, H:2 * H] + hr[:, H:2 * H])
    n = np.tanh(xt[:, 2 * H:] + r * hr[:, 2 * H:])
    return ((1 - z) * n + z * h,)


def _np_lstm(ins, a):
    if len(ins) > 7 and ins[7] is not None:
        raise ModelFormatError("LSTM: peepholes are not supported")
    return _np_recurrent("LSTM", ins, a, 2, lambda x, W, Wb, Rb: x @ W.T + Wb + Rb, _lstm_step)


def _np_gru(ins, a):
    if not a.get("linear_before_reset", 0):
        raise ModelFormatError("GRU: only linear_before_reset=1 (PyTorch/Keras) is supported")
    return _np_recurrent("GRU", ins, a, 1, lambda x, W, Wb, Rb: x @ W.T + Wb, _gru_step)


def _np_rnn(ins, a):
    relu = [_text(v) for v in a.get("activations", [])][:1] == ["Relu"]
    act = (lambda v: np.maximum(v, 0)) if relu else np.tanh
    return _np_recurrent("RNN", ins, a, 1, lambda x, W, Wb, Rb: x @ W.T + Wb + Rb,
                         lambda xt, st, R, Rb, H: (act(xt + st[0] @ R.T),))


def _np_constant(ins, a):
    if len(a) != 1:
        raise ModelFormatError("Constant: expected exactly one value attribute")
    (k, v), = a.items()
    if k == "value":
        return [v]
    if k in ("value_float", "value_int"):
        return [np.array(v, np.float32 if k == "value_float" else np.int64)]
    if k in ("value_floats", "value_ints"):
        return [np.array(v, np.float32 if k == "value_floats" else np.int64)]
    raise ModelFormatError(f"Constant: attribute {k!r} is not supported")


def _np_cast(ins, a):
    to = int(a["to"])
    if to not in _ONNX_DTYPES:
        raise ModelFormatError(f"Cast: unsupported target type {to}")
    return [ins[0].astype(_ONNX_DTYPES[to])]


def _np_binary(fn):
    return lambda ins, a: [fn(ins[0], ins[1])]


def _np_unary(name):
    if name in ("Elu", "LeakyRelu", "HardSigmoid", "Selu"):   # attribute-dependent
        return lambda ins, a: [_np_act(name, a)(ins[0])]
    fn = _np_act(name, {})
    return lambda ins, a: [fn(ins[0])]


def _split_sizes(shape, ins, a):
    """The section sizes of a Split node (input ``split``, attribute ``split``, or equal parts
    for each output, ``_n_out`` being set by ``_onnx_plan``)."""
    axis = int(a.get("axis", 0)) % len(shape)
    sizes = _axes_arg(ins, a, 1) if len(ins) > 1 and ins[1] is not None else a.get("split")
    if sizes is None:
        n = int(a.get("num_outputs", a["_n_out"]))
        sizes = [-(-shape[axis] // n)] * (n - 1)
        sizes.append(shape[axis] - sum(sizes))
    if sum(sizes) != shape[axis] or min(sizes) < 0:
        raise ValueError(f"Split: sizes {sizes} do not add up to axis {axis} of {shape}")
    return axis, sizes


def _np_split(ins, a):
    axis, sizes = _split_sizes(ins[0].shape, ins, a)
    return np.split(ins[0], np.cumsum(sizes)[:-1], axis=axis)


def _pad_widths(shape, ins, a):
    """((before, after) per axis, mode, value) of a Pad node (opset 11+: pads as an input)."""
    pads = [int(v) for v in np.asarray(ins[1]).reshape(-1)]
    axes = _axes_arg(ins, a, 3) or list(range(len(shape)))
    n = len(axes)
    if len(pads) != 2 * n or min(pads, default=0) < 0:
        raise ValueError(f"Pad: pads {pads[:8]} must be 2 non-negative values per axis")
    widths = [(0, 0)] * len(shape)
    for i, ax in enumerate(axes):
        widths[int(ax) % len(shape)] = (pads[i], pads[i + n])
    mode = a.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode not in ("constant", "reflect", "edge"):
        raise ModelFormatError(f"Pad: mode {mode!r} is not supported")
    value = ins[2] if len(ins) > 2 and ins[2] is not None else 0
    _cap_shape("Pad", [d + lo + hi for d, (lo, hi) in zip(shape, widths)])
    return widths, mode, float(np.asarray(value).reshape(-1)[0]) if np.size(value) else 0.0


def _resize_index(in_shape, ins, a):
    """Per-axis source indices of a nearest-neighbour Resize (asymmetric coordinates, floor
    rounding: PyTorch's ``mode='nearest'`` export), from ``scales`` or ``sizes``."""
    def text(k, default):
        v = a.get(k, default)
        return v.decode() if isinstance(v, bytes) else v
    if (text("mode", "nearest"), text("coordinate_transformation_mode", "half_pixel"),
            text("nearest_mode", "round_prefer_floor")) != ("nearest", "asymmetric", "floor"):
        raise ModelFormatError("Resize: only mode 'nearest' with 'asymmetric' coordinates and "
                               "'floor' rounding is supported (PyTorch's nearest upsampling)")
    sizes = ins[3] if len(ins) > 3 and ins[3] is not None and np.size(ins[3]) else None
    scales = ins[2] if len(ins) > 2 and ins[2] is not None and np.size(ins[2]) else None
    if sizes is not None:
        out = [int(v) for v in np.asarray(sizes).reshape(-1)]
        scales = [o / max(i, 1) for o, i in zip(out, in_shape)]
    elif scales is not None:
        scales = [float(v) for v in np.asarray(scales).reshape(-1)]
        out = [int(math.floor(i * sc)) for i, sc in zip(in_shape, scales)]
    else:
        raise ModelFormatError("Resize: needs scales or sizes")
    if len(out) != len(in_shape) or min(scales) <= 0:
        raise ValueError(f"Resize: scales/sizes do not fit the input shape {in_shape}")
    _cap_shape("Resize", out)
    return [None if o == i else np.minimum((np.arange(o) / sc).astype(np.int64), i - 1)
            for i, o, sc in zip(in_shape, out, scales)]


def _np_resize(ins, a):
    x = ins[0]
    for axis, idx in enumerate(_resize_index(x.shape, ins, a)):
        if idx is not None:
            x = np.take(x, idx, axis=axis)
    return [x]


def _np_pad(ins, a):
    widths, mode, value = _pad_widths(ins[0].shape, ins, a)
    if mode == "constant":
        return [np.pad(ins[0], widths, constant_values=value)]
    return [np.pad(ins[0], widths, mode=mode)]


def _np_reduce(fn):
    def run(ins, a):
        axes = _axes_arg(ins, a)
        keep = bool(a.get("keepdims", 1))
        return [fn(ins[0], axis=None if axes is None else tuple(axes), keepdims=keep)]
    return run


ONNX_OPS = {
    "Identity": lambda ins, a: [ins[0]], "Dropout": lambda ins, a: [ins[0]],
    "Constant": _np_constant, "Cast": _np_cast,
    "Add": _capped("Add", np.add), "Sub": _capped("Sub", np.subtract),
    "Mul": _capped("Mul", np.multiply),
    "Div": _capped("Div", lambda p, q: (p // q) if p.dtype.kind in "iu" else p / q),
    "Pow": _capped("Pow", lambda p, q: np.power(p, q).astype(p.dtype)),
    "Equal": _capped("Equal", np.equal),
    "Where": lambda ins, a: [np.where(*_broadcast_capped("Where", ins[:3]))],
    "MatMul": _capped("MatMul", np.matmul), "Gemm": _np_gemm,
    "Max": lambda ins, a: [np.maximum.reduce(_broadcast_capped("Max", ins))],
    "Min": lambda ins, a: [np.minimum.reduce(_broadcast_capped("Min", ins))],
    "Clip": lambda ins, a: [np.clip(ins[0], ins[1] if len(ins) > 1 and ins[1] is not None
                                    else -np.inf, ins[2] if len(ins) > 2 and ins[2] is not None
                                    else np.inf).astype(ins[0].dtype)],
    "Softmax": _np_softmax(False), "LogSoftmax": _np_softmax(True),
    "Conv": _np_conv, "ConvTranspose": _np_conv_transpose, "MaxPool": _np_maxpool,
    "AveragePool": _np_avgpool,
    "GlobalAveragePool": lambda ins, a: [ins[0].mean(axis=tuple(range(2, ins[0].ndim)),
                                                     keepdims=True)],
    "GlobalMaxPool": lambda ins, a: [ins[0].max(axis=tuple(range(2, ins[0].ndim)),
                                                keepdims=True)],
    "BatchNormalization": _np_batchnorm, "LayerNormalization": _np_layernorm,
    "Flatten": lambda ins, a: [ins[0].reshape(
        (math.prod(ins[0].shape[:int(a.get("axis", 1)) % max(ins[0].ndim, 1)]), -1)
        if int(a.get("axis", 1)) % max(ins[0].ndim, 1) else (1, -1))],
    "Reshape": _np_reshape,
    "Transpose": lambda ins, a: [ins[0].transpose(a.get("perm"))],
    "Squeeze": lambda ins, a: [np.squeeze(ins[0], axis=None if _axes_arg(ins, a) is None
                                          else tuple(_axes_arg(ins, a)))],
    "Unsqueeze": lambda ins, a: [np.expand_dims(ins[0], tuple(_axes_arg(ins, a)))],
    "Concat": lambda ins, a: [np.concatenate([np.asarray(v) for v in ins],
                                             axis=int(a["axis"]))],
    "Gather": lambda ins, a: [np.take(ins[0], _gather_index(ins[0].shape, ins[1], a),
                                      axis=int(a.get("axis", 0)), mode="raise")],
    "Shape": lambda ins, a: [np.array(ins[0].shape[a.get("start", 0):a.get("end")],
                                      np.int64)],
    "ConstantOfShape": lambda ins, a: [np.full(_cap_shape("ConstantOfShape", ins[0]),
                                               a["value"].reshape(-1)[0] if "value" in a
                                               else np.float32(0))],
    "Expand": lambda ins, a: [ins[0] * np.ones(_cap_shape("Expand", np.broadcast_shapes(
        ins[0].shape, tuple(int(v) for v in np.asarray(ins[1]).reshape(-1)))),
        ins[0].dtype)],
    "Slice": _np_slice, "Split": _np_split, "Pad": _np_pad, "Resize": _np_resize,
    "ReduceMean": _np_reduce(np.mean), "ReduceSum": _np_reduce(np.sum),
    "ReduceMax": _np_reduce(np.max),
    "LSTM": _np_lstm, "GRU": _np_gru, "RNN": _np_rnn,
}
for _name in ("Relu", "Sigmoid", "Tanh", "Softplus", "Softsign", "Exp", "Log", "Sqrt", "Neg",
              "Abs", "Reciprocal", "Erf", "Not", "HardSwish", "Floor", "Ceil", "Elu",
              "LeakyRelu", "HardSigmoid", "Selu"):
    ONNX_OPS[_name] = _np_unary(_name)


def _onnx_plan(model, path, supported):
    """Check the graph (ops known, inputs defined before use, one data input) and return
    ``(nodes, initializers, input (name, elem, dims), output names)``."""
    g = model["graph"]
    inits = g["inits"]
    inputs = [i for i in g["inputs"] if i[0] not in inits]
    if len(inputs) != 1 or not g["outputs"]:
        raise _fail(path, f"expected one graph input and at least one output, got "
                          f"{len(inputs)} inputs and {len(g['outputs'])} outputs")
    unknown = sorted({n["op"] for n in g["nodes"] if n["op"] not in supported
                      or n["domain"] not in ("", "ai.onnx")})
    if unknown:
        raise _fail(path, f"ONNX ops {unknown[:5]} are not supported; supported: "
                          f"{sorted(supported)}")
    known = set(inits) | {inputs[0][0], ""}
    for n in g["nodes"]:
        if n["op"] == "Split":
            n["attrs"]["_n_out"] = len(n["outputs"])
        missing = [i for i in n["inputs"] if i not in known]
        if missing:
            raise _fail(path, f"node {n['name'] or n['op']!r} reads {missing[0]!r} before any "
                              "node writes it")
        known.update(n["outputs"])
    outs = [o[0] for o in g["outputs"]]
    if any(o not in known for o in outs):
        raise _fail(path, "a graph output is never written")
    elem = inputs[0][1]
    if elem not in (1, 7, 11):
        raise _fail(path, f"the input's element type {elem} is not float32, float64 or int64")
    return g["nodes"], inits, inputs[0], outs


def _onnx_preprocessing(text):
    """The preprocessing ``export_onnx`` stored as JSON (arrays as typed lists), checked."""
    if text is None:
        return None
    doc = json.loads(text)
    if not (isinstance(doc, dict) and isinstance(doc.get("arrays"), dict)):
        raise ValueError("the preprocessing metadata is malformed")
    arrays = {}
    for k, v in doc["arrays"].items():
        if not (isinstance(v, dict) and v.get("dtype") in ("<f8", "<f4", "<i8", "|b1")
                and isinstance(v.get("shape"), list) and len(v["shape"]) <= 2
                and all(type(d) is int and 0 <= d <= 2**24 for d in v["shape"])
                and isinstance(v.get("data"), list) and len(v["data"]) == math.prod(v["shape"])
                and all(isinstance(x, (int, float)) for x in v["data"])):
            raise ValueError(f"preprocessing array {str(k)[:40]!r} is malformed")
        arrays[k] = np.array(v["data"], dtype=v["dtype"]).reshape(v["shape"])
    return _transformer(_merge(doc.get("state"), arrays))


class OnnxModel:
    """An ONNX graph run with NumPy: ``predict`` / ``predict_classes`` / ``predict_labels``."""

    def __init__(self, model, path="<memory>"):
        self.nodes, self.inits, (self.input_name, elem, dims), self.outputs = \
            _onnx_plan(model, path, ONNX_OPS)
        self.input_dtype = np.dtype(_ONNX_DTYPES[elem])
        self.input_shape = tuple(dims[1:]) if dims else ()
        batch = dims[0] if dims and type(dims[0]) is int and dims[0] >= 1 else 1   # static
        self._steps = [(ONNX_OPS[n["op"]], n["inputs"], n["outputs"], n["attrs"])
                       for n in self.nodes]
        names = model["metadata"].get("tinygrad_lite.label_names")
        try:
            self.label_names = None if names is None else [str(s) for s in json.loads(names)]
            self.preprocess = _onnx_preprocessing(model["metadata"].get(
                "tinygrad_lite.preprocessing"))
            if self.input_shape and all(type(d) is int and d >= 1 for d in self.input_shape) \
                    and batch * math.prod(self.input_shape) <= 2**20:     # else checked later
                with np.errstate(all="ignore"):                           # weights fit
                    self.run(np.zeros((batch,) + self.input_shape, self.input_dtype))
        except ModelFormatError as e:
            raise _fail(path, str(e)) from None
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, ArithmeticError,
                RuntimeError, MemoryError, RecursionError) as e:
            raise _fail(path, f"the graph and its weights do not fit together "
                              f"({type(e).__name__}: {str(e)[:100]})") from None

    def run(self, x):
        """All graph outputs for the input batch ``x``."""
        env = dict(self.inits)
        env[self.input_name] = x
        env[""] = None
        for fn, inputs, outputs, attrs in self._steps:
            outs = fn([env[i] for i in inputs], attrs)
            for name, v in zip(outputs, outs):
                env[name] = v if type(v) is np.ndarray else np.asarray(v)
        return [env[o] for o in self.outputs]

    def predict(self, X, batch_size=32):
        """The first graph output for raw ``X`` (the stored preprocessing applied first)."""
        if self.preprocess is not None:
            X = np.asarray(X, dtype=np.float64)
            if self.input_shape and X.ndim == len(self.input_shape):
                X = X[None]
            X = self.preprocess(X.reshape(X.shape[0], -1)).reshape(X.shape)
        X = np.asarray(X)
        if self.input_shape and X.ndim == len(self.input_shape):
            X = X[None]
        X = X.astype(self.input_dtype)
        return np.concatenate([self.run(X[s:s + batch_size])[0]
                               for s in range(0, len(X), batch_size)], axis=0)

    predict_classes = Model.predict_classes
    predict_labels = Model.predict_labels


def load(path, max_bytes=MAX_FILE_BYTES):
    """Load a model file written by ``model.save`` / ``io.save_model`` (a ``Model``) or an ONNX
    file of the supported op subset (an ``OnnxModel``); ``ModelFormatError`` on a bad or
    unsupported file."""
    if os.path.splitext(os.fspath(path))[1].lower() == ".onnx":
        return OnnxModel(read_onnx(path, max_bytes), path)
    arrays, meta = read_model_file(path, max_bytes)
    return Model(arrays, meta, path)


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 3:
        sys.exit("usage: python runtime.py MODEL(.safetensors|.npz|.onnx) DATA.npy")
    for label in load(sys.argv[1]).predict_labels(np.load(sys.argv[2], allow_pickle=False)):
        print(label)
