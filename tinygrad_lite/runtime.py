"""A vendorable inference runtime: one file, NumPy and the standard library only.

Copy this file into an application to run a model saved by ``model.save(...)`` /
``io.save_model`` (a Keras-style ``Sequential``) without installing tinygrad_lite::

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

Command line: ``python runtime.py MODEL DATA.npy`` prints one predicted label per row.
"""

import json
import math
import os
import struct

import numpy as np

__all__ = ["load", "Model", "ModelFormatError", "read_model_file"]

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
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise _fail(path, f"cannot read the file ({e.strerror or e})") from None
    if size > max_bytes:
        raise _fail(path, f"file is {size} bytes, over the cap of {max_bytes}")
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


def load(path, max_bytes=MAX_FILE_BYTES):
    """Load a model file written by ``model.save`` / ``io.save_model``; ``ModelFormatError`` on
    a bad or unsupported file."""
    arrays, meta = read_model_file(path, max_bytes)
    return Model(arrays, meta, path)


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 3:
        sys.exit("usage: python runtime.py MODEL(.safetensors|.npz) DATA.npy")
    for label in load(sys.argv[1]).predict_labels(np.load(sys.argv[2], allow_pickle=False)):
        print(label)
