"""Model files: safetensors (default), ``.npz`` or Keras-layout ``.h5`` (io/h5.py), never pickle.

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
half-written model under the final name, and the next save removes temp files of dead writers.
Loading raises ``ModelFormatError`` naming the file and the problem, and changes nothing on
failure.

Every file we write carries a SHA-256 digest document (of the metadata text and of each tensor's
name, dtype, shape and bytes) beside the metadata: ``__metadata__["tinygrad_lite.sha256"]`` in
safetensors, the ``__sha256__`` member in npz. Loading recomputes it; a file without one (another
safetensors writer, an older tinygrad_lite) loads with an ``UnverifiedFileWarning``. Tensors are
read straight into their final buffers; npz members are streamed, with the decompressed total
capped by ``max_bytes`` and by ``MAX_NPZ_RATIO`` times the file size (zip bombs).
"""

import hashlib
import json
import os
import struct
import tempfile
import warnings
import zipfile
import zlib

import numpy as np

from ..errors import ModelFormatError


class UnverifiedFileWarning(UserWarning):
    """A model file without our SHA-256 digest was loaded: its bytes could not be verified."""

FORMAT = "tinygrad_lite.model"
FORMAT_VERSION = 1
SPARSE_FORMAT_VERSION = 2            # only save_model(..., sparse=True) writes it (_sparse_pack)
READ_FORMAT_VERSION = 2              # the newest format_version this library reads
META_KEY = "tinygrad_lite"
MAX_HEADER_BYTES = 16 * 2**20        # a safetensors JSON header larger than this is refused
MAX_FILE_BYTES = 2 * 2**30           # default cap on a model file (override with max_bytes=)
MAX_TENSORS = 100_000
MAX_NDIM = 8
WEIGHTS_ONLY = "weights"             # metadata "content" of a save_weights file
DIGEST_KEY = "tinygrad_lite.sha256"  # safetensors __metadata__ key of the digest document
NPZ_DIGEST_MEMBER = "__sha256__"     # the same document as an npz member (uint8 JSON text)
MAX_NPZ_RATIO = 100                 # decompressed bytes per file byte an npz may expand to
NPZ_RATIO_FLOOR = 16 * 2**20         # ... but any file may expand to this many bytes

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
    if ext not in (".safetensors", ".npz", ".h5"):
        raise ModelFormatError(f"{op}: unknown model file type {ext or '(none)'!r}, got "
                               f"{os.fspath(path)!r}; use a .safetensors (default), .npz or .h5 "
                               "name")
    return ext


# ------------------------------------------------------------------ writing ---

_TMP_PREFIX = ".tmp-"


def _tmp_owner(name, base):
    """The writer PID embedded in a temp name ``.tmp-<pid>-<random>-<base>``, else None."""
    if not (name.startswith(_TMP_PREFIX) and name.endswith("-" + base)):
        return None
    pid = name[len(_TMP_PREFIX):-len(base) - 1].split("-", 1)[0]
    return int(pid) if pid.isdigit() else None


def _pid_alive(pid):
    if pid == os.getpid():
        return True   # another thread of this process may be writing it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:   # EPERM: it exists, owned by someone else
        return True
    return True


def _remove_stale_temps(folder, base):
    """Delete temp files that earlier writers to ``base`` left behind when they were killed.

    Only files whose embedded writer PID is no longer running are removed: a save in progress in
    another process keeps its file. (A recycled PID can keep a stale file one save longer.)
    """
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        pid = _tmp_owner(name, base)
        if pid is not None and not _pid_alive(pid):
            try:
                os.unlink(os.path.join(folder, name))
            except OSError:
                pass


def atomic_write_bytes(path, payload, op="save"):
    """Write ``payload`` to ``path`` through a temp file in the same folder, fsync, os.replace.

    The temp file is ``.tmp-<pid>-<random>-<name>``; a later save to the same path removes such
    files of writers that died (SIGKILL, power loss) and leaves live writers alone. An error
    (permission denied, disk full) names ``path``, not the temp file.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    tmp = None
    try:
        os.makedirs(folder, exist_ok=True)
        _remove_stale_temps(folder, base)
        fd, tmp = tempfile.mkstemp(prefix=f"{_TMP_PREFIX}{os.getpid()}-", suffix="-" + base,
                                   dir=folder)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)   # mkstemp makes 0600; give the file normal permissions
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise type(e)(e.errno, f"{op}: cannot write the file ({e.strerror or e})",
                          path) from None   # str(e) ends with ": '<path>'"
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


def _tensor_digest(name, dtype_code, shape, raw):
    h = hashlib.sha256(f"{name}\0{dtype_code}\0{list(shape)}\0".encode("utf-8"))
    h.update(raw)
    return h.hexdigest()


def _le_bytes(a):
    """C-order little-endian bytes of ``a`` (the bytes both formats store)."""
    a = _contiguous(a)
    return a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()


def _digest_doc(arrays, meta_json):
    """JSON text of SHA-256 digests: the metadata text and every tensor (name, dtype, shape,
    bytes). Stored beside the metadata; ``read_file`` recomputes and compares them."""
    tensors = {}
    for name in sorted(arrays):
        a = np.asarray(arrays[name])
        code = _NP_TO_ST.get(a.dtype)
        if code is None:
            raise TypeError(f"save_model: dtype {a.dtype} of {name!r} cannot be stored, got it; "
                            "use float32/float64/int/bool arrays")
        tensors[name] = _tensor_digest(name, code, a.shape, _le_bytes(a))
    doc = {"algorithm": "sha256",
           "metadata": hashlib.sha256(meta_json.encode("utf-8")).hexdigest(),
           "tensors": tensors}
    return json.dumps(doc, separators=(",", ":"))


def _safetensors_bytes(arrays, meta_json, digest_json):
    header = {"__metadata__": {META_KEY: meta_json, DIGEST_KEY: digest_json}}
    offset, chunks = 0, []
    for name in sorted(arrays):
        a = _contiguous(arrays[name])
        raw = _le_bytes(a)
        header[name] = {"dtype": _NP_TO_ST[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * (-len(hb) % 8)  # align the data to 8 bytes, as the reference writer does
    return struct.pack("<Q", len(hb)) + hb + b"".join(chunks)


def _npz_bytes(arrays, meta_json, digest_json):
    import io

    buf = io.BytesIO()
    payload = {k: _contiguous(v) for k, v in arrays.items()}
    payload["__metadata__"] = np.frombuffer(meta_json.encode("utf-8"), dtype=np.uint8)
    payload[NPZ_DIGEST_MEMBER] = np.frombuffer(digest_json.encode("utf-8"), dtype=np.uint8)
    np.savez(buf, **payload)
    return buf.getvalue()


def _check_finite_arrays(arrays, op):
    for name in sorted(arrays):
        a = np.asarray(arrays[name])
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            n = int(a.size - np.isfinite(a).sum())
            raise ModelFormatError(f"{op}: tensor {name!r} holds {n} NaN or Inf value(s), got "
                                   f"them in shape {a.shape}; fix the training (lower the "
                                   "learning rate), or pass allow_nonfinite=True here and to "
                                   "load_model")


# ------------------------------------------------------------------ sparse storage ---
# A pruned weight is mostly zeros. With sparse=True, a float weight matrix whose packed form is
# smaller is stored as ``<name>.__mask__`` (uint8, np.packbits of ``value != 0``; NaN counts as
# a value), ``<name>.__values__`` (those entries, 1-D, same dtype, C order) and, only when some
# zeros are -0.0 (``prune.remove`` makes them: a negative weight times a 0 mask),
# ``<name>.__negzero__`` (np.packbits of "this entry is -0.0"). Shape, dtype and whether
# ``__negzero__`` exists go in the metadata's ``sparse`` map. Such a file has format_version 2,
# which older readers (and runtime.py) refuse with "upgrade" instead of misreading it. Reading
# restores the dense array bit for bit after the digest check.

_SPARSE_MASK, _SPARSE_VALUES, _SPARSE_NEGZERO = ".__mask__", ".__values__", ".__negzero__"


def _sparse_pack(arrays):
    """``(stored arrays, sparse map)``: float ``weights.*`` matrices (ndim >= 2) packed where
    that saves bytes."""
    out, sparse = {}, {}
    for name, a in arrays.items():
        a = _contiguous(a)
        if name.startswith("weights.") and a.dtype.kind == "f" and a.ndim >= 2 and a.size:
            flat = a.reshape(-1)
            nz = flat != 0
            neg = (flat == 0) & np.signbit(flat)
            nnz, has_neg = int(nz.sum()), bool(neg.any())
            if (a.size + 7) // 8 * (1 + has_neg) + nnz * a.dtype.itemsize < a.nbytes:
                out[name + _SPARSE_MASK] = np.packbits(nz)
                out[name + _SPARSE_VALUES] = flat[nz]
                if has_neg:
                    out[name + _SPARSE_NEGZERO] = np.packbits(neg)
                sparse[name] = {"shape": list(a.shape), "dtype": _NP_TO_ST[a.dtype],
                                "negzero": has_neg}
                continue
        out[name] = a
    return out, sparse


def _sparse_unpack(path, arrays, sparse, max_bytes):
    """The dense arrays back from ``_sparse_pack``'s; every count and size checked first."""
    if not isinstance(sparse, dict) or len(sparse) > MAX_TENSORS:
        raise _fail(path, "the sparse map in the metadata is malformed")
    plan, total = [], 0
    for name, info in sparse.items():
        mk, vk, gk = name + _SPARSE_MASK, name + _SPARSE_VALUES, name + _SPARSE_NEGZERO
        if not (isinstance(info, dict) and set(info) == {"shape", "dtype", "negzero"}
                and isinstance(info["negzero"], bool)):
            raise _fail(path, f"sparse entry {name[:60]!r} is malformed")
        shape, code = info["shape"], info["dtype"]
        if (not isinstance(shape, list) or len(shape) > MAX_NDIM
                or not all(type(d) is int and d >= 0 for d in shape)):
            raise _fail(path, f"sparse tensor {name[:60]!r} has an invalid shape {str(shape)[:60]}")
        if code not in ("F16", "F32", "F64"):
            raise _fail(path, f"sparse tensor {name[:60]!r} has unsupported dtype {str(code)[:20]}")
        if name in arrays or mk not in arrays or vk not in arrays \
                or (gk in arrays) != info["negzero"]:
            raise _fail(path, f"sparse tensor {name[:60]!r} needs exactly its mask, values (and "
                              "negzero, when the map says so) arrays")
        dtype = np.dtype(_ST_DTYPES[code])
        n = int(np.prod(shape, dtype=object))
        mask, values = arrays[mk], arrays[vk]
        if mask.dtype != np.uint8 or mask.shape != ((n + 7) // 8,):
            raise _fail(path, f"sparse tensor {name[:60]!r}: its mask has shape {mask.shape} "
                              f"{mask.dtype}, need ({(n + 7) // 8},) uint8 for {n} entries")
        bits = np.unpackbits(mask, count=n).astype(bool)
        if mask.size and np.unpackbits(mask)[n:].any():
            raise _fail(path, f"sparse tensor {name[:60]!r}: its mask has bits past the end")
        neg = None
        if info["negzero"]:
            g = arrays[gk]
            if g.dtype != np.uint8 or g.shape != mask.shape or np.unpackbits(g)[n:].any():
                raise _fail(path, f"sparse tensor {name[:60]!r}: its negzero mask has shape "
                                  f"{g.shape} {g.dtype} or bits past the end, need "
                                  f"{mask.shape} uint8")
            neg = np.unpackbits(g, count=n).astype(bool)
            if (neg & bits).any():
                raise _fail(path, f"sparse tensor {name[:60]!r}: an entry is both a value and "
                                  "-0.0")
        nnz = int(bits.sum())
        if values.dtype != dtype or values.shape != (nnz,):
            raise _fail(path, f"sparse tensor {name[:60]!r}: {nnz} mask bits need ({nnz},) "
                              f"{dtype} values, got {values.shape} {values.dtype}")
        total += n * dtype.itemsize
        if total > max_bytes:
            raise _fail(path, f"sparse tensors expand past the cap of {max_bytes} bytes")
        plan.append((name, mk, vk, gk, dtype, shape, bits, neg))
    for name, mk, vk, gk, dtype, shape, bits, neg in plan:
        dense = np.zeros(int(np.prod(shape, dtype=object)), dtype=dtype)
        dense[bits] = arrays.pop(vk)
        if neg is not None:
            dense[neg] = -0.0
            del arrays[gk]
        del arrays[mk]
        arrays[name] = dense.reshape(shape)
    return arrays


def write_file(path, arrays, metadata, sparse=False):
    """Atomically write ``arrays`` (name -> ndarray) and ``metadata`` (JSON-able dict), with a
    SHA-256 digest of the metadata and of every tensor. ``sparse=True`` packs mostly-zero float
    weights (pruned ones) as a bitmask and their non-zero values (format_version 2)."""
    ext = _suffix(path, "save_model")
    if ext == ".h5":                       # Keras layout, through h5py (io/h5.py)
        if sparse:
            raise ValueError(f"save_model: sparse=True is for .safetensors and .npz files, got "
                             f"{os.fspath(path)!r}")
        from .h5 import write_h5

        return write_h5(path, arrays, metadata)
    if sparse:
        arrays, packed = _sparse_pack(arrays)
        if packed:
            metadata = {**metadata, "format_version": SPARSE_FORMAT_VERSION, "sparse": packed}
    meta_json = json.dumps(metadata, allow_nan=False)
    digest_json = _digest_doc(arrays, meta_json)
    payload = (_safetensors_bytes if ext == ".safetensors" else _npz_bytes)(
        arrays, meta_json, digest_json)
    atomic_write_bytes(path, payload, "save_model")


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


def _parse_json(path, text, what):
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        raise _fail(path, f"{what} is not valid JSON ({type(e).__name__}: {str(e)[:80]})") from None


def _read_into(f, arr):
    """Fill ``arr`` from the stream ``f`` in 1 MiB steps (no second full-size copy); the number
    of bytes read."""
    view = memoryview(arr.reshape(-1).view(np.uint8))
    got, step = 0, 2**20
    while got < len(view):
        n = f.readinto(view[got:got + step])
        if not n:
            break
        got += n
    return got


def _check_bool(path, name, arr):
    if arr.dtype == np.bool_ and arr.size and arr.view(np.uint8).max() > 1:
        raise _fail(path, f"tensor {name!r} holds bytes other than 0 and 1 in a BOOL tensor")


def _read_safetensors(path, max_bytes, require_meta=True):
    size = _check_size(path, max_bytes)
    try:
        with open(path, "rb") as f:
            return _parse_safetensors(path, f, size, require_meta)
    except OSError as e:
        raise _fail(path, f"cannot read the file ({e.strerror or e})") from None


def _parse_safetensors(path, f, size, require_meta=True):
    head = f.read(8)
    if len(head) < 8:
        raise _fail(path, f"file is truncated ({len(head)} bytes, no safetensors header)")
    (n,) = struct.unpack("<Q", head)
    if n > MAX_HEADER_BYTES:
        raise _fail(path, f"header size {n} bytes is over the cap of {MAX_HEADER_BYTES}")
    if 8 + n > size:
        raise _fail(path, f"file is truncated (header says {n} bytes, file has {size - 8})")
    try:
        text = f.read(n).decode("utf-8")
    except UnicodeDecodeError:
        raise _fail(path, "header is not UTF-8 text (corrupted file?)") from None
    header = _parse_json(path, text, "header")
    if not isinstance(header, dict):
        raise _fail(path, "header is not a JSON object")
    data_len = size - 8 - n
    meta = header.pop("__metadata__", None)
    if len(header) > MAX_TENSORS:
        raise _fail(path, f"{len(header)} tensors, over the cap of {MAX_TENSORS}")
    plan = []
    for name, info in header.items():
        if not (isinstance(info, dict) and set(info) == {"dtype", "shape", "data_offsets"}):
            raise _fail(path, f"tensor {name!r} has a malformed entry")
        dt, shape, offs = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(dt, str) or dt not in _ST_DTYPES:
            raise _fail(path, f"tensor {name!r} has unsupported dtype {str(dt)[:40]!r}")
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
        if offs[1] > data_len:
            raise _fail(path, f"file is truncated (tensor {name!r} ends at byte {offs[1]} of the "
                              f"data, which has {data_len})")
        plan.append((offs[0], offs[1], name, dtype, shape))
    plan.sort(key=lambda p: (p[0], p[1]))
    end = 0
    for b, e, name, _, _ in plan:
        if b < end:
            raise _fail(path, f"tensor {name!r} overlaps the one before it")
        if b > end:
            raise _fail(path, f"unused bytes before tensor {name!r} (corrupted file?)")
        end = e
    if end != data_len:
        raise _fail(path, "trailing bytes after the last tensor (corrupted file?)")
    ours = isinstance(meta, dict) and isinstance(meta.get(META_KEY), str)
    if not ours and require_meta:
        raise _fail(path, "no tinygrad_lite metadata in the header (not a tinygrad_lite model "
                          "file?)")
    digest = meta.get(DIGEST_KEY) if ours else None   # none: a plain safetensors file (tl.load)
    if digest is not None and not isinstance(digest, str):
        raise _fail(path, "the digest entry of the header is not a string")
    arrays = {}
    for b, e, name, dtype, shape in plan:   # in file order: one forward pass, one copy each
        arr = np.empty(shape, dtype=dtype)
        if _read_into(f, arr) != e - b:
            raise _fail(path, f"file is truncated (tensor {name!r} could not be read in full)")
        arr = arr.astype(dtype.newbyteorder("="), copy=False)
        _check_bool(path, name, arr)
        arrays[name] = arr
    return arrays, (meta[META_KEY] if ours else None), digest


# What a corrupted zip archive can raise from zipfile / zlib / np.lib.format: bad headers
# (BadZipFile, ValueError, KeyError, EOFError), "compression method is not supported" or "zip file
# version" (NotImplementedError), a broken deflate stream (zlib.error), "encrypted, password
# required" (RuntimeError), or an absurd size read from a flipped length field (MemoryError,
# OverflowError).
_NPZ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError, KeyError,
               NotImplementedError, zlib.error, RuntimeError, MemoryError, OverflowError,
               RecursionError, IndexError, struct.error, SyntaxError, TypeError)


def _read_npz(path, max_bytes):
    """Stream the members of an npz archive, checking every size before reading.

    Decompressed bytes are capped in total (``max_bytes``) and per file byte (``MAX_NPZ_RATIO``
    beyond ``NPZ_RATIO_FLOOR``) from the sizes the archive declares; zipfile never inflates past
    a member's declared size, so a zip bomb is refused before any inflation, and each array is
    read straight into its final buffer.
    """
    size = _check_size(path, max_bytes)
    cap = min(max_bytes, max(NPZ_RATIO_FLOOR, MAX_NPZ_RATIO * size))
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_TENSORS:
                raise _fail(path, f"{len(infos)} members, over the cap of {MAX_TENSORS}")
            names = [i.filename for i in infos]
            if len(set(names)) != len(names):
                raise _fail(path, "the npz archive holds two members with the same name")
            bad = [n for n in names if not n.endswith(".npy")]
            if bad:
                raise _fail(path, f"unexpected members {bad[:3]} in the npz archive")
            total = sum(i.file_size for i in infos)
            if total > cap:
                raise _fail(path, f"uncompressed size {total} bytes is over the cap of {cap} "
                                  f"({MAX_NPZ_RATIO}x the file size of {size} bytes, at most "
                                  f"max_bytes={max_bytes}; a zip bomb?)")
            arrays = {}
            for info in infos:
                with zf.open(info) as f:
                    arrays[info.filename[:-4]] = _read_npy_member(path, f, info)
    except ModelFormatError:
        raise
    except _NPZ_ERRORS as e:
        raise _fail(path, f"not a readable npz archive ({type(e).__name__}: {str(e)[:80]})") \
            from None
    meta = arrays.pop("__metadata__", None)
    digest = arrays.pop(NPZ_DIGEST_MEMBER, None)
    texts = []
    for what, a in (("metadata", meta), ("digest", digest)):
        if a is None:
            texts.append(None)
            continue
        if a.dtype != np.uint8 or a.ndim != 1:
            raise _fail(path, f"the {what} member is not 1-D uint8 text")
        try:
            texts.append(a.tobytes().decode("utf-8"))
        except UnicodeDecodeError:
            raise _fail(path, f"{what} is not UTF-8 text") from None
    if texts[0] is None:
        raise _fail(path, "no tinygrad_lite metadata (not a tinygrad_lite model file?)")
    return arrays, texts[0], texts[1]


def _read_npy_member(path, f, info):
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise _fail(path, f"member {info.filename!r} has npy version {version}")
    name = info.filename[:-4]
    if dtype not in _NP_TO_ST and dtype.newbyteorder("=") not in _NP_TO_ST:
        raise _fail(path, f"array {name!r} has unsupported dtype {dtype}")
    if len(shape) > MAX_NDIM or not all(type(d) is int and d >= 0 for d in shape):
        raise _fail(path, f"array {name!r} has an invalid shape {str(shape)[:60]}")
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    remaining = info.file_size - f.tell()
    if nbytes != remaining:
        raise _fail(path, f"array {name!r} needs {nbytes} bytes for shape {shape}, its member "
                          f"holds {remaining}")
    flat = np.empty(int(np.prod(shape, dtype=object)), dtype=dtype)
    if _read_into(f, flat) != nbytes or f.read(1):   # the extra read makes zipfile check the CRC
        raise _fail(path, f"array {name!r} could not be read in full")
    arr = flat.reshape(shape, order="F" if fortran else "C")
    arr = arr.astype(dtype.newbyteorder("="), copy=False)
    _check_bool(path, name, arr)
    return arr


def _verify_digest(path, arrays, meta_text, digest_text):
    """Compare the stored SHA-256 digests with the file's metadata and tensors."""
    if digest_text is None:
        warnings.warn(f"load_model: the file has no tinygrad_lite SHA-256 digest (written by "
                      f"another safetensors tool or an older tinygrad_lite), so its bytes are "
                      f"unverified, got file {os.fspath(path)!r}; save it again to add one",
                      UnverifiedFileWarning, stacklevel=4)
        return False
    doc = _parse_json(path, digest_text, "digest")
    if not (isinstance(doc, dict) and doc.get("algorithm") == "sha256"
            and isinstance(doc.get("metadata"), str) and isinstance(doc.get("tensors"), dict)):
        raise _fail(path, "the SHA-256 digest entry is malformed")
    if hashlib.sha256(meta_text.encode("utf-8")).hexdigest() != doc["metadata"]:
        raise _fail(path, "SHA-256 mismatch in the metadata (corrupted or edited file)")
    want = doc["tensors"]
    if set(want) != set(arrays):
        extra, missing = sorted(set(arrays) - set(want)), sorted(set(want) - set(arrays))
        raise _fail(path, f"tensors differ from the SHA-256 digest list (unlisted {extra[:5]}, "
                          f"missing {missing[:5]})")
    for name in sorted(arrays):
        a = arrays[name]
        if _tensor_digest(name, _NP_TO_ST[a.dtype], a.shape, _le_bytes(a)) != want[name]:
            raise _fail(path, f"SHA-256 mismatch in tensor {name!r} (corrupted or edited file)")
    return True


def read_file(path, max_bytes=MAX_FILE_BYTES):
    """``(arrays, metadata)`` from a model file, every byte checked; ``ModelFormatError`` else.

    A file with our SHA-256 digests is verified against them; one without (another tool's
    safetensors file, an older tinygrad_lite) loads with an ``UnverifiedFileWarning``.
    """
    ext = _suffix(path, "load_model")
    if ext == ".h5":
        from .h5 import read_h5

        return read_h5(path, max_bytes)
    arrays, meta_text, digest = (_read_safetensors if ext == ".safetensors" else _read_npz)(
        path, max_bytes)
    meta = _parse_json(path, meta_text, "metadata")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _fail(path, f"metadata format is not {FORMAT!r}")
    version = meta.get("format_version")
    if type(version) is not int or version < 1:
        raise _fail(path, f"invalid format_version {version!r}")
    if version > READ_FORMAT_VERSION:
        raise _fail(path, f"format_version {version} is newer than this library reads "
                          f"({READ_FORMAT_VERSION}); upgrade tinygrad_lite")
    _verify_digest(path, arrays, meta_text, digest)
    if "sparse" in meta:
        if version < SPARSE_FORMAT_VERSION:
            raise _fail(path, f"a sparse map needs format_version {SPARSE_FORMAT_VERSION}, got "
                              f"{version}")
        arrays = _sparse_unpack(path, arrays, meta.pop("sparse"), max_bytes)
    return arrays, meta


# ------------------------------------------------------------------ models ---

MODULE_WEIGHTS = "module"            # metadata "content" of a save_model file from an nn.Module


def _state_arrays(model):
    """name -> array: a Keras-style model's ``weights_dict()``, else any nn.Module's
    ``state_dict()`` (PyTorch key names)."""
    from .._arrays import as_numpy   # GPU weights are copied to the host

    if hasattr(model, "weights_dict"):
        return {k: as_numpy(v) for k, v in model.weights_dict().items()}
    if hasattr(model, "state_dict") and hasattr(model, "load_state_dict"):
        return {k: as_numpy(v) for k, v in model.state_dict().items()}
    raise TypeError(f"save_model: expected a models.Sequential or an nn.Module, got "
                    f"{type(model).__name__}")


def _assign(model, weights):
    if hasattr(model, "set_weights_dict"):
        model.set_weights_dict(weights)
    else:
        model.load_state_dict(weights, strict=True)


def save_model(model, path, preprocessing=None, label_names=None, extra=None,
               allow_nonfinite=False, sparse=False):
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
    allow_nonfinite : store NaN/Inf weights instead of refusing them (``load_model`` then needs
        ``allow_nonfinite=True`` too)
    sparse : store mostly-zero float weights (pruned) as a bitmask plus their non-zero values,
        so the file shrinks with sparsity (``.safetensors``/``.npz``; format_version 2, which
        ``runtime.py`` and tinygrad_lite before this option do not read)

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
        write_file(path, arrays, meta, sparse)
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
    if not allow_nonfinite:
        _check_finite_arrays(arrays, "save_model")
    write_file(path, arrays, meta, sparse)
    return os.fspath(path)


def _check_weights(path, model, weights, allow_nonfinite=False):
    """Every name present, nothing extra, every shape and dtype equal to the model's."""
    want = _state_arrays(model)
    _check_plan(path, {k: a.shape for k, a in want.items()}, weights)   # names and shapes
    for k, a in want.items():
        w = weights[k]
        if w.dtype != a.dtype:
            raise _fail(path, f"weight {k!r} has dtype {w.dtype}, the model needs {a.dtype}")
        if not allow_nonfinite and w.dtype.kind == "f" and not np.all(np.isfinite(w)):
            raise _fail(path, f"weight {k!r} holds NaN or Inf values (pass "
                              "allow_nonfinite=True to load them anyway)")


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


def _array_refs(meta):
    """Array keys a (preprocessing) meta document points at with ``{"__array__": key}``."""
    refs, stack = set(), [meta]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            if set(v) == {"__array__"} and isinstance(v["__array__"], str):
                refs.add(v["__array__"])
            else:
                stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return refs


# Model classes register how they are rebuilt from a stored architecture (``models`` registers
# ``Sequential`` when it is imported), so ``io`` never imports ``models``: the dependency points
# one way only (models -> io).
_ARCHITECTURES = {}


def register_architecture(class_name, builder):
    """Register ``builder(config, build=False) -> model`` for architectures whose config has
    ``"class_name": class_name``. ``tinygrad_lite.models`` registers ``Sequential`` on import."""
    if not isinstance(class_name, str) or not callable(builder):
        raise TypeError(f"register_architecture: expected a class name and a callable, got "
                        f"{class_name!r} and {type(builder).__name__}")
    _ARCHITECTURES[class_name] = builder


def _builder_for(path, arch, builder):
    if builder is not None:
        return builder
    name = arch.get("class_name") if isinstance(arch, dict) else None
    if name in _ARCHITECTURES:
        return _ARCHITECTURES[name]
    raise _fail(path, f"no model class is registered for the architecture "
                      f"{str(name)[:40]!r} (registered: {sorted(_ARCHITECTURES)}); import "
                      "tinygrad_lite.models first (it registers Sequential), or call "
                      "tinygrad_lite.models.load_model(path)")


def load_model(path, max_bytes=MAX_FILE_BYTES, allow_nonfinite=False, builder=None):
    """Rebuild a model saved by ``save_model``: architecture from the allow-list, then weights.

    The returned model has ``.preprocessing`` (a fitted transformer or None) and ``.label_names``.
    Raises ``ModelFormatError`` (naming the file and the problem) on a bad file, also for tensors
    that neither the architecture nor the preprocessing state uses. NaN/Inf weights are refused
    unless ``allow_nonfinite=True`` (they were saved with it). ``builder`` (default: the class
    registered for the file's architecture, see ``register_architecture``) rebuilds the model
    from its config without allocating weights. ``.h5`` files go through ``io.h5``.
    """
    arrays, meta = read_file(path, max_bytes)
    return _model_from(path, arrays, meta, allow_nonfinite, builder)


def _model_from(path, arrays, meta, allow_nonfinite=False, builder=None):
    """The model a checked ``(arrays, meta)`` pair describes; nothing outside it is touched."""
    weights = _split(arrays, "weights.")
    if meta.get("content") == MODULE_WEIGHTS:
        raise _fail(path, f"the file holds the weights of an nn.Module "
                          f"({str(meta.get('module_class'))[:60]}), whose architecture is Python "
                          "code; build the module in code and call io.load_weights(module, path)")
    unused = sorted(set(arrays) - {"weights." + k for k in weights}
                    - _array_refs(meta.get("preprocessing")))
    if unused:
        raise _fail(path, f"{len(unused)} tensor(s) that nothing in the model uses, e.g. "
                          f"{unused[:3]}")
    if meta.get("content") == WEIGHTS_ONLY:
        raise _fail(path, "the file holds weights only (save_weights), no architecture; build the "
                          "model in code and call model.load_weights(path)")
    build_from = _builder_for(path, meta.get("architecture"), builder)
    try:
        # 1. the layers from the allow-list, no weights allocated yet; 2. every weight's shape
        # from the configs alone
        model = build_from(meta.get("architecture"), build=False)
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
    _check_weights(path, model, weights, allow_nonfinite)   # names, shapes, dtypes, finite
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


def save_weights(model, path, allow_nonfinite=False, sparse=False):
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
    if not allow_nonfinite:
        _check_finite_arrays(arrays, "save_weights")
    write_file(path, arrays, {"format": FORMAT, "format_version": FORMAT_VERSION,
                              "content": WEIGHTS_ONLY}, sparse)
    return os.fspath(path)


def load_weights(model, path, max_bytes=MAX_FILE_BYTES, allow_nonfinite=False):
    """Load weights from ``path`` into an existing, built ``model`` (a models.Sequential, or any
    nn.Module for a file saved from one with ``save_weights`` or ``save_model``).

    Every name, shape and dtype is checked before anything is assigned, so on any error the model is
    exactly as it was.
    """
    arrays, _ = read_file(path, max_bytes)
    weights = _split(arrays, "weights.")
    other = sorted(k for k in arrays if not k.startswith(("weights.", "preprocessing.")))
    if other:
        raise _fail(path, f"{len(other)} tensor(s) that are not weights, e.g. {other[:3]}")
    _check_weights(path, model, weights, allow_nonfinite)
    _assign(model, weights)
    return model
