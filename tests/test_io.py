"""Model files: round trips, and bad files raise ModelFormatError without touching the model."""

import json
import os
import struct

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import io
from tinygrad_lite.data import MinMaxScaler
from tinygrad_lite.errors import ModelFormatError
from tinygrad_lite.layers import LSTM, BatchNormalization, Conv2D, Dense, Flatten, Reshape
from tinygrad_lite.models import Sequential


def trained(seed=0):
    tl.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x = rng.random((40, 16)).astype(np.float32) * 10
    y = rng.integers(0, 3, 40)
    sc = MinMaxScaler().fit(x)
    m = Sequential([Reshape((4, 4, 1), input_shape=(16,)), Conv2D(2, 3, padding="same"),
                    BatchNormalization(), Flatten(), Dense(8, activation="relu"),
                    Dense(3, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    m.fit(sc.transform(x), y, epochs=2, verbose=0)
    return m, sc, x


@pytest.mark.parametrize("ext", ["safetensors", "npz"])
def test_round_trip_predictions_identical(tmp_path, ext):
    m, sc, x = trained()
    path = tmp_path / f"model.{ext}"
    m.save(path, preprocessing=sc, label_names=["a", "b", "c"])
    m2 = io.load_model(path)
    np.testing.assert_array_equal(m.predict(sc.transform(x)),
                                  m2.predict(m2.preprocessing.transform(x)))
    assert m2.label_names == ["a", "b", "c"]
    assert m2.compile_config()["loss"] == "sparse_categorical_crossentropy"
    assert [n for n in m2.weights_dict()] == [n for n in m.weights_dict()]
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp")]


def test_safetensors_file_is_standard(tmp_path):
    from safetensors.numpy import load_file

    m, _, _ = trained()
    m.save(tmp_path / "m.safetensors")
    arrays = load_file(str(tmp_path / "m.safetensors"))
    for k, v in m.weights_dict().items():
        np.testing.assert_array_equal(arrays["weights." + k], v)


def test_recurrent_model_round_trip(tmp_path):
    m = Sequential([LSTM(4, input_shape=(5, 3)), Dense(2)])
    x = np.random.default_rng(0).random((3, 5, 3)).astype(np.float32)
    m.save(tmp_path / "r.npz")
    np.testing.assert_array_equal(m.predict(x), io.load_model(tmp_path / "r.npz").predict(x))


# ------------------------------------------------------------------ bad files ---

@pytest.fixture
def saved(tmp_path):
    m, _, _ = trained()
    path = tmp_path / "m.safetensors"
    m.save(path)
    target, _, _ = trained(seed=1)
    return path, path.read_bytes(), target


def assert_refused(path, target, match):
    before = target.get_weights()
    with pytest.raises(ModelFormatError, match=match) as e:
        io.load_weights(target, path)
    assert str(path) in str(e.value)
    for a, b in zip(before, target.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ModelFormatError):
        io.load_model(path)


def rewrite_header(path, blob, edit):
    """Edit the header as a hostile tool would: without our SHA-256 digest (an unverified file),
    so the checks behind the digest are what must catch it."""
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    header["__metadata__"].pop(io.files.DIGEST_KEY, None)
    edit(header)
    hb = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(hb)) + hb + blob[8 + n:])


def test_truncated_file(saved):
    path, blob, target = saved
    path.write_bytes(blob[:-10])
    assert_refused(path, target, "truncated")
    path.write_bytes(blob[:5])
    assert_refused(path, target, "truncated")


def test_corrupted_header(saved):
    path, blob, target = saved
    path.write_bytes(blob[:8] + b"\xff" * 20 + blob[28:])
    assert_refused(path, target, "UTF-8|JSON")


def test_oversized_header(saved):
    path, blob, target = saved
    path.write_bytes(struct.pack("<Q", 2**40) + blob[8:])
    assert_refused(path, target, "header size .* over the cap")


def test_offsets_out_of_bounds_and_overlapping(saved):
    path, blob, target = saved
    first = sorted(k for k in json.loads(blob[8:8 + struct.unpack("<Q", blob[:8])[0]])
                   if k != "__metadata__")

    def grow(h):
        b, e = h[first[0]]["data_offsets"]
        h[first[0]]["data_offsets"] = [b + 10**9, e + 10**9]
    rewrite_header(path, blob, grow)
    assert_refused(path, target, "truncated")

    def overlap(h):
        h[first[1]]["data_offsets"] = list(h[first[0]]["data_offsets"])
        h[first[1]]["shape"] = list(h[first[0]]["shape"])
        h[first[1]]["dtype"] = h[first[0]]["dtype"]
    rewrite_header(path, blob, overlap)
    assert_refused(path, target, "overlap|shape|trailing")


def test_wrong_dtype_and_shape(saved):
    path, blob, target = saved
    name = "weights.layers.4.kernel"

    def bad_dtype(h):
        h[name]["dtype"] = "OBJ"
    rewrite_header(path, blob, bad_dtype)
    assert_refused(path, target, "unsupported dtype")

    m, _, _ = trained()
    m.layers[4].kernel.data = np.zeros((32, 8), np.float64)   # right shape, wrong dtype
    m.save(path)
    assert_refused(path, target, "dtype float64, the model needs float32")


def test_malicious_architecture(saved):
    path, blob, target = saved

    def evil(h):
        meta = json.loads(h["__metadata__"]["tinygrad_lite"])
        meta["architecture"]["layers"][0] = {"class_name": "os.system",
                                             "config": {"command": "rm -rf /"}}
        h["__metadata__"]["tinygrad_lite"] = json.dumps(meta)
    rewrite_header(path, blob, evil)
    with pytest.raises(ModelFormatError, match="not in the allow-list"):
        io.load_model(path)

    def evil_kwargs(h):
        meta = json.loads(h["__metadata__"]["tinygrad_lite"])
        meta["architecture"]["layers"][4]["config"]["__class__"] = "x"
        h["__metadata__"]["tinygrad_lite"] = json.dumps(meta)
    rewrite_header(path, blob, evil_kwargs)
    with pytest.raises(ModelFormatError, match="unknown or non-plain"):
        io.load_model(path)


def test_newer_version_and_not_ours(saved, tmp_path):
    path, blob, target = saved

    def newer(h):
        meta = json.loads(h["__metadata__"]["tinygrad_lite"])
        meta["format_version"] = 99
        h["__metadata__"]["tinygrad_lite"] = json.dumps(meta)
    rewrite_header(path, blob, newer)
    assert_refused(path, target, "newer than this library")
    from safetensors.numpy import save_file

    other = tmp_path / "other.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, str(other))
    assert_refused(other, target, "no tinygrad_lite metadata")


def test_size_cap(saved):
    path, _, target = saved
    with pytest.raises(ModelFormatError, match="over the cap"):
        io.load_model(path, max_bytes=100)


def test_npz_with_pickled_object_is_refused(tmp_path):
    m, _, _ = trained()
    target, _, _ = trained(seed=1)
    path = tmp_path / "evil.npz"
    np.savez(path, __metadata__=np.frombuffer(b"{}", np.uint8),
             payload=np.array([{"a": 1}], dtype=object))
    assert_refused(path, target, "npz")
    path.write_bytes(b"PK\x03\x04 not really a zip")
    assert_refused(path, target, "npz")


@pytest.mark.parametrize("name, match", [("m.pb", "ONNX"), ("m.pkl", "pickle"),
                                         ("m.h5x", "unknown model file type")])
def test_refused_suffixes(tmp_path, name, match):
    (tmp_path / name).write_bytes(b"x")
    with pytest.raises(ModelFormatError, match=match):
        io.load_model(tmp_path / name)


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    m, _, _ = trained()
    path = tmp_path / "m.safetensors"
    m.save(path)
    old = path.read_bytes()

    def boom(*a):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        trained(seed=2)[0].save(path)
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["m.safetensors"]


def test_mismatched_architecture(tmp_path):
    a = Sequential([Dense(3, input_shape=(4,))])
    b = Sequential([Dense(5, input_shape=(4,))])
    a.save(tmp_path / "a.safetensors")
    before = b.get_weights()
    with pytest.raises(ModelFormatError, match="shape"):
        b.load_weights(tmp_path / "a.safetensors")
    np.testing.assert_array_equal(before[0], b.get_weights()[0])


# ------------------------------------------------------------------ fuzzing ---

def small_model():
    from tinygrad_lite.data import StandardScaler

    tl.manual_seed(0)
    x = np.random.default_rng(0).standard_normal((20, 4)).astype(np.float32)
    m = Sequential([Dense(8, activation="relu", input_shape=(4,)),
                    Dense(3, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return m, StandardScaler().fit(x), x


def _zip_field(blob, signature, offset, value, fmt):
    """Overwrite a little-endian field at ``offset`` after every ``signature`` in a zip archive."""
    b, i = bytearray(blob), blob.find(signature)
    while i >= 0:
        struct.pack_into(fmt, b, i + offset, value)
        i = blob.find(signature, i + 1)
    return bytes(b)


def _mutations(blob, ext, n, seed):
    """Deterministic corruptions: truncations, random byte flips, header-area flips, and (npz)
    zip fields that make zipfile raise NotImplementedError/RuntimeError/zlib.error."""
    rng = np.random.default_rng(seed)
    if ext == "npz":
        yield _zip_field(blob, b"PK\x01\x02", 10, 99, "<H")     # unsupported compression method
        yield _zip_field(blob, b"PK\x03\x04", 8, 99, "<H")
        yield _zip_field(blob, b"PK\x01\x02", 8, 1, "<H")       # "encrypted" flag
        yield _zip_field(blob, b"PK\x01\x02", 6, 0x3F, "<H")    # needs zip version 6.3
        deflated = _zip_field(_zip_field(blob, b"PK\x01\x02", 10, 8, "<H"),
                              b"PK\x03\x04", 8, 8, "<H")       # stored bytes read as deflate
        yield deflated
    for trial in range(n):
        b = bytearray(blob)
        kind = trial % 3
        if kind == 0:
            b = b[:int(rng.integers(len(b)))]
        elif kind == 1:
            for _ in range(int(rng.integers(1, 5))):
                b[int(rng.integers(len(b)))] = int(rng.integers(256))
        else:
            b[int(rng.integers(min(len(b), 400)))] = int(rng.integers(256))
        yield bytes(b)


@pytest.mark.filterwarnings("ignore:load_model. the stored compile config")
@pytest.mark.parametrize("ext", ["safetensors", "npz"])
def test_fuzzed_files_raise_model_format_error(tmp_path, ext):
    """Every corrupted file either loads (a flipped weight byte can still be a valid float) or
    raises ModelFormatError naming the file; a failed load_weights leaves the target as it was."""
    m, sc, x = small_model()
    good = tmp_path / f"m.{ext}"
    m.save(good, preprocessing=sc, label_names=["a", "b", "c"])
    blob = good.read_bytes()
    target, _, _ = small_model()
    before = target.get_weights()
    path = tmp_path / f"c.{ext}"
    refused = 0
    for b in _mutations(blob, ext, 300, seed=1234):
        path.write_bytes(b)
        try:
            io.load_model(path).predict(x[:2])
        except ModelFormatError as e:
            assert str(path) in str(e)
            refused += 1
        try:
            io.load_weights(target, path)
        except ModelFormatError as e:
            assert str(path) in str(e)
            for a, w in zip(before, target.get_weights()):
                np.testing.assert_array_equal(a, w)
        else:
            target.set_weights(before)
    assert refused > 100


# ------------------------------------------------------------------ architecture sizes ---

def _rewrite_meta(path, edit, arrays_edit=None):
    from tinygrad_lite.io import read_file, write_file

    arrays, meta = read_file(path)
    edit(meta)
    if arrays_edit is not None:
        arrays_edit(arrays)
    write_file(path, arrays, meta)


def test_absurd_layer_sizes_refused_before_allocating(tmp_path, monkeypatch):
    m, _, _ = small_model()
    path = tmp_path / "m.safetensors"
    built = []
    orig = Dense.build
    monkeypatch.setattr(Dense, "build", lambda self, s: (built.append(self.units), orig(self, s)))
    for units in (10**12, 10**6):
        m.save(path)

        def huge(meta, units=units):
            meta["architecture"]["layers"][0]["config"]["units"] = units
        _rewrite_meta(path, huge)
        with pytest.raises(ModelFormatError, match=str(path)):
            io.load_model(path)
        assert built == [], "a layer was built (allocated) before the sizes were checked"


def test_shape_plan_matches_built_weights():
    from tinygrad_lite.layers import (
        GRU,
        AveragePooling2D,
        Dropout,
        Embedding,
        MaxPooling2D,
        SimpleRNN,
    )

    models_ = [
        Sequential([Reshape((6, 5, 2), input_shape=(60,)),
                    Conv2D(3, (3, 2), strides=2, padding="same", dilation_rate=1),
                    BatchNormalization(scale=False), MaxPooling2D(2, padding="same"),
                    Conv2D(2, 2, data_format="channels_last", use_bias=False),
                    AveragePooling2D((1, 1)), Flatten(), Dropout(0.1), Dense(4)]),
        Sequential([Embedding(11, 3, input_shape=(5,)), GRU(4, return_sequences=True),
                    SimpleRNN(2, return_sequences=True), LSTM(3), Dense(2)]),
    ]
    for model in models_:
        plan = model.shape_plan()
        model.build()
        assert plan == {k: v.shape for k, v in model.weights_dict().items()}
        assert list(plan) == list(model.weights_dict())


# ------------------------------------------------------------------ preprocessing / labels ---

def _pre_arrays(fn):
    def edit(arrays):
        for k in list(arrays):
            if k.startswith("preprocessing."):
                arrays[k] = fn(arrays[k])
    return edit


@pytest.mark.parametrize("what, edit, arrays_edit, match", [
    ("wrong length", lambda meta: None, _pre_arrays(lambda a: np.zeros(7, a.dtype)),
     r"shape \(4,\)"),
    ("NaN", lambda meta: None, _pre_arrays(lambda a: np.full_like(a, np.nan)), "finite"),
    ("Inf", lambda meta: None, _pre_arrays(lambda a: np.full_like(a, np.inf)), "finite"),
    ("n_features_in_", lambda meta: meta["preprocessing"].update(n_features_in_=-1), None,
     "n_features_in_"),
    ("label_names", lambda meta: meta.update(label_names=["a"]), None,
     "1 names for a model with 3 outputs"),
])
def test_bad_preprocessing_and_label_names(tmp_path, what, edit, arrays_edit, match):
    m, sc, _ = small_model()
    path = tmp_path / "m.safetensors"
    m.save(path, preprocessing=sc, label_names=["a", "b", "c"])
    _rewrite_meta(path, edit, arrays_edit)
    with pytest.raises(ModelFormatError, match=match) as e:
        io.load_model(path)
    assert str(path) in str(e.value)


def test_invalid_compile_config_warns_naming_file(tmp_path):
    import warnings

    m, _, _ = small_model()
    path = tmp_path / "m.safetensors"
    m.save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert io.load_model(path).compile_config()["loss"] == "sparse_categorical_crossentropy"
    _rewrite_meta(path, lambda meta: meta["compile"].update(optimizer="nope"))
    with pytest.warns(UserWarning, match="compile config.*unknown optimizer") as rec:
        loaded = io.load_model(path)
    assert str(path) in str(rec[0].message)
    assert loaded.compile_config() is None


def test_optimizer_instance_compile_config_round_trips(tmp_path):
    import warnings

    from tinygrad_lite import optim

    m, _, _ = small_model()
    m.compile(optim.RMSprop(list(m.parameters()), lr=0.01), "mse")
    m.save(tmp_path / "m.npz")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = io.load_model(tmp_path / "m.npz")
    assert loaded.compile_config()["optimizer"] == "rmsprop"
