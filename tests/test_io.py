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
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
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
