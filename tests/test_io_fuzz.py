"""Hypothesis fuzzing of model files (issue 10): mutate valid .safetensors and .npz files and
require that loading either gives exactly the saved model (same predictions through the loaded
preprocessing, same label names) or raises ``ModelFormatError`` naming the file. Any other
exception, or a silent change, fails.

Three families of mutation, each on both formats:

* bytes: truncation and bit flips anywhere in the file;
* rewrites: the header / metadata JSON edited (a value replaced or deleted, a tensor entry's dtype,
  shape or offsets changed, a tensor added or dropped, the digest dropped or edited) and the
  container rebuilt, as a tool that understands the format would;
* preprocessing swaps: a stored preprocessing array's dtype and shape reinterpreted (F64 read as
  I64, a (4,) array as (2, 2), ...) with the digest removed, so the checks behind the digest must
  catch it.

CI runs the ``ci`` profile (20 examples per test); ``HYPOTHESIS_PROFILE=thorough`` runs 300.
``--hypothesis-show-statistics`` prints how many files were refused and how many loaded intact.
"""

import io as _io
import json
import os
import struct
import tempfile
import warnings

import numpy as np
from hypothesis import event, given
from hypothesis import strategies as st

import tinygrad_lite as tl
from tinygrad_lite.data import MinMaxScaler, Pipeline, SimpleImputer, StandardScaler
from tinygrad_lite.errors import ModelFormatError
from tinygrad_lite.io import load_model
from tinygrad_lite.io.files import DIGEST_KEY, NPZ_DIGEST_MEMBER
from tinygrad_lite.layers import Dense
from tinygrad_lite.models import Sequential

LABELS = ["a", "b", "c"]
TMP = tempfile.mkdtemp(prefix="tgl-fuzz-")


def _build():
    tl.manual_seed(0)
    x = (np.random.default_rng(0).standard_normal((12, 4)) * 3 + 1).astype(np.float32)
    pre = Pipeline([("impute", SimpleImputer()), ("minmax", MinMaxScaler()),
                    ("std", StandardScaler())]).fit(x)
    m = Sequential([Dense(6, activation="relu", input_shape=(4,)),
                    Dense(3, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    blobs = {}
    for ext in ("safetensors", "npz"):
        path = os.path.join(TMP, f"good.{ext}")
        m.save(path, preprocessing=pre, label_names=LABELS)
        with open(path, "rb") as f:
            blobs[ext] = f.read()
    return x, m.predict(pre.transform(x)), blobs


X, REF, BLOBS = _build()
FORMATS = st.sampled_from(["safetensors", "npz"])


def check(ext, blob, note=event):
    """The property: exactly the saved model, or ModelFormatError naming the file."""
    path = os.path.join(TMP, f"mutant.{ext}")
    with open(path, "wb") as f:
        f.write(blob)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")    # unverified-file notes, unusable compile configs
        try:
            model = load_model(path)
        except ModelFormatError as e:
            assert path in str(e)
            note(f"{ext}: refused")
            return
        assert model.preprocessing is not None
        np.testing.assert_array_equal(model.predict(model.preprocessing.transform(X)), REF)
    assert model.label_names == LABELS
    note(f"{ext}: loaded, identical")


# ------------------------------------------------------------------ containers ---

def st_split(blob):
    (n,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8:8 + n]), blob[8 + n:]


def st_join(header, data):
    hb = json.dumps(header).encode()
    return struct.pack("<Q", len(hb)) + hb + data


def npz_split(blob):
    with np.load(_io.BytesIO(blob), allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def npz_join(arrays):
    buf = _io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _text(a):
    return a.tobytes().decode()


def _u8(text):
    return np.frombuffer(text.encode(), np.uint8)


# ------------------------------------------------------------------ 1. bytes ---

@given(ext=FORMATS, data=st.data())
def test_truncation_and_bit_flips(ext, data):
    blob = bytearray(BLOBS[ext])
    if data.draw(st.booleans(), label="truncate"):
        blob = blob[:data.draw(st.integers(0, len(blob) - 1), label="length")]
    else:
        # counted from the start (headers) or from the end (safetensors: the tensor data;
        # npz: the central directory and the last members), so both regions get hit
        from_end = data.draw(st.booleans(), label="from end")
        for _ in range(data.draw(st.integers(1, 4), label="flips")):
            i = data.draw(st.integers(0, len(blob) - 1), label="byte")
            blob[len(blob) - 1 - i if from_end else i] ^= 1 << data.draw(st.integers(0, 7),
                                                                       label="bit")
    check(ext, bytes(blob))


# ------------------------------------------------------------------ 2. rewrites ---

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False)
    | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                 max_size=3),
    max_leaves=6)


def _paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, prefix + (i,))


def edit_json(doc, data, label):
    """Replace or delete one value anywhere in ``doc`` (the root itself included)."""
    path = data.draw(st.sampled_from(list(_paths(doc))), label=f"{label} path")
    value = data.draw(JSON_VALUES, label=f"{label} value")
    if not path:
        return value
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    if data.draw(st.booleans(), label=f"{label} delete") and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


def _rewrite_safetensors(data):
    header, body = st_split(BLOBS["safetensors"])
    meta = header["__metadata__"]
    names = sorted(k for k in header if k != "__metadata__")
    kind = data.draw(st.sampled_from(["metadata", "tensor entry", "add tensor", "drop tensor",
                                      "drop digest", "edit digest"]), label="rewrite")
    if kind == "metadata":
        doc = edit_json(json.loads(meta["tinygrad_lite"]), data, "metadata")
        meta["tinygrad_lite"] = json.dumps(doc)
    elif kind == "tensor entry":
        name = data.draw(st.sampled_from(names), label="tensor")
        field = data.draw(st.sampled_from(["dtype", "shape", "data_offsets"]), label="field")
        other = header[data.draw(st.sampled_from(names), label="from tensor")][field]
        header[name][field] = data.draw(st.just(other) | JSON_VALUES, label="new value")
    elif kind == "add tensor":
        header[data.draw(st.text(min_size=1, max_size=8), label="name")] = {
            "dtype": "F32", "shape": [0], "data_offsets": [len(body), len(body)]}
    elif kind == "drop tensor":
        del header[data.draw(st.sampled_from(names), label="tensor")]
    elif kind == "drop digest":
        del meta[DIGEST_KEY]
    else:
        meta[DIGEST_KEY] = json.dumps(edit_json(json.loads(meta[DIGEST_KEY]), data, "digest"))
    return st_join(header, body)


def _rewrite_npz(data):
    arrays = npz_split(BLOBS["npz"])
    names = sorted(k for k in arrays if not k.startswith("__"))
    kind = data.draw(st.sampled_from(["metadata", "swap arrays", "add array", "drop array",
                                      "drop digest", "edit digest"]), label="rewrite")
    if kind == "metadata":
        doc = edit_json(json.loads(_text(arrays["__metadata__"])), data, "metadata")
        arrays["__metadata__"] = _u8(json.dumps(doc))
    elif kind == "swap arrays":
        a, b = (data.draw(st.sampled_from(names), label=f"array {i}") for i in range(2))
        arrays[a], arrays[b] = arrays[b], arrays[a]
    elif kind == "add array":
        arrays[data.draw(st.from_regex(r"[a-z.]{1,8}", fullmatch=True), label="name")] = \
            np.zeros(2, np.float32)
    elif kind == "drop array":
        del arrays[data.draw(st.sampled_from(names), label="array")]
    elif kind == "drop digest":
        del arrays[NPZ_DIGEST_MEMBER]
    else:
        doc = edit_json(json.loads(_text(arrays[NPZ_DIGEST_MEMBER])), data, "digest")
        arrays[NPZ_DIGEST_MEMBER] = _u8(json.dumps(doc))
    return npz_join(arrays)


@given(ext=FORMATS, data=st.data())
def test_header_and_metadata_rewrites(ext, data):
    check(ext, (_rewrite_safetensors if ext == "safetensors" else _rewrite_npz)(data))


# ------------------------------------------------------------------ 3. preprocessing swaps ---

ST_CODES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64,
            "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def _shapes(n):
    """Shapes with ``n`` elements (consistent with the bytes) and a few that are not."""
    out = [[n], [1, n], [n, 1], [0], [n + 1]]
    out += [[d, n // d] for d in range(2, n) if n % d == 0]
    return st.sampled_from(out)


@given(ext=FORMATS, data=st.data())
def test_preprocessing_dtype_and_shape_swaps(ext, data):
    code = data.draw(st.sampled_from(sorted(ST_CODES)), label="dtype")
    itemsize = np.dtype(ST_CODES[code]).itemsize
    if ext == "safetensors":
        header, body = st_split(BLOBS["safetensors"])
        del header["__metadata__"][DIGEST_KEY]
        names = sorted(k for k in header if k.startswith("preprocessing."))
        name = data.draw(st.sampled_from(names), label="array")
        b, e = header[name]["data_offsets"]
        shape = data.draw(_shapes((e - b) // itemsize), label="shape")
        header[name]["dtype"], header[name]["shape"] = code, shape
        blob = st_join(header, body)
    else:
        arrays = npz_split(BLOBS["npz"])
        del arrays[NPZ_DIGEST_MEMBER]
        names = sorted(k for k in arrays if k.startswith("preprocessing."))
        name = data.draw(st.sampled_from(names), label="array")
        raw = arrays[name].tobytes()
        n = len(raw) // itemsize
        shape = data.draw(_shapes(n), label="shape")
        if int(np.prod(shape)) == n:     # the same bytes, read as another dtype and shape
            arrays[name] = np.frombuffer(raw, ST_CODES[code]).reshape(shape)
        else:                            # another size altogether
            arrays[name] = np.zeros(shape, ST_CODES[code])
        blob = npz_join(arrays)
    event(f"{ext}: swap to {code}")
    check(ext, blob)


def test_the_unmutated_files_load_intact():
    """The property's positive side is reachable: the saved files themselves pass ``check``."""
    seen = []
    for ext, blob in BLOBS.items():
        check(ext, blob, note=seen.append)
    assert seen == ["safetensors: loaded, identical", "npz: loaded, identical"]
