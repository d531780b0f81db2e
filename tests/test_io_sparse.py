"""save_model(..., sparse=True): pruned weights stored as a bitmask plus their non-zero values
(io/files.py, format_version 2). Bitwise round trips (-0.0 and NaN stay values), the size drop,
and hostile sparse maps: only ModelFormatError, nothing allocated past the cap."""

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import io
from tinygrad_lite.errors import ModelFormatError
from tinygrad_lite.io.files import FORMAT, write_file
from tinygrad_lite.layers import Dense
from tinygrad_lite.models import Sequential


def _pruned(frac, seed=0):
    tl.manual_seed(seed)
    m = Sequential([Dense(40, activation="relu", input_shape=(30,)), Dense(7)])
    m.build((30,))
    rng = np.random.default_rng(seed)
    for layer in m.layers:
        k = layer.kernel.data
        k[rng.random(k.shape) < frac] = 0.0
    return m, rng.standard_normal((9, 30)).astype(np.float32)


@pytest.mark.parametrize("ext", ["safetensors", "npz"])
def test_sparse_round_trip_is_bitwise_and_smaller(tmp_path, ext):
    m, x = _pruned(0.9)
    k = m.layers[0].kernel.data
    k[0, :3] = [-0.0, np.float32(1e-45), -3.0]          # a negative zero and a denormal stay
    k[5, k[5] == 0] = -0.0                              # prune.remove leaves -0.0 entries
    dense, sparse = tmp_path / f"d.{ext}", tmp_path / f"s.{ext}"
    m.save(dense)
    m.save(sparse, sparse=True)
    kernel_bytes = sum(layer.kernel.data.nbytes for layer in m.layers)
    # 90% zeros: 1/8 byte of mask + 10% of 4 bytes per entry, about 13% of the dense bytes
    assert sparse.stat().st_size < dense.stat().st_size - 0.6 * kernel_bytes
    back = io.load_model(sparse)
    for (name, a), b in zip(m.weights_dict().items(), back.weights_dict().values()):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), name
    np.testing.assert_array_equal(back.predict(x), m.predict(x))
    arrays, meta = io.read_file(sparse)
    assert meta["format_version"] == 2 and "sparse" not in meta
    assert sorted(arrays) == sorted("weights." + k for k in m.weights_dict())


def test_dense_weights_stay_dense_and_version_1(tmp_path):
    m, _ = _pruned(0.0)
    m.save(tmp_path / "m.safetensors", sparse=True)          # nothing to gain: unchanged format
    from tinygrad_lite.io.files import _read_safetensors

    arrays, meta_text, _ = _read_safetensors(tmp_path / "m.safetensors", 2**30)
    assert '"format_version": 1' in meta_text and not any("__mask__" in k for k in arrays)
    with pytest.raises(ValueError, match="sparse=True is for"):
        pytest.importorskip("h5py")
        m.save(tmp_path / "m.h5", sparse=True)


def _hostile(tmp_path, mutate):
    """A sparse model file whose packed arrays / map were edited, with a fresh valid digest (a
    tool that understands the format), so only the sparse checks can catch it."""
    m, _ = _pruned(0.9)
    m.save(tmp_path / "ok.safetensors", sparse=True)
    from tinygrad_lite.io.files import _read_safetensors
    import json

    arrays, meta_text, _ = _read_safetensors(tmp_path / "ok.safetensors", 2**30)
    meta = json.loads(meta_text)
    mutate(arrays, meta)
    path = tmp_path / "bad.safetensors"
    write_file(path, arrays, meta)
    return path


K = "weights.layers.0.kernel"
CASES = {
    "values one short": (lambda a, m: a.__setitem__(K + ".__values__", a[K + ".__values__"][:-1]),
                         "mask bits need"),
    "values wrong dtype": (lambda a, m: a.__setitem__(
        K + ".__values__", a[K + ".__values__"].astype(np.float64)), "mask bits need"),
    "mask too short": (lambda a, m: a.__setitem__(K + ".__mask__", a[K + ".__mask__"][:-1]),
                       "its mask has shape"),
    "bits past the end": (lambda a, m: m["sparse"][K].__setitem__("shape", [30, 39]),
                          "bits past the end|mask has shape"),
    "huge shape": (lambda a, m: m["sparse"][K].__setitem__("shape", [2**20, 2**20]),
                   "mask has shape|cap"),
    "int dtype": (lambda a, m: m["sparse"][K].__setitem__("dtype", "I32"), "unsupported dtype"),
    "missing values": (lambda a, m: a.pop(K + ".__values__"), "mask, values"),
    "dense copy too": (lambda a, m: a.__setitem__(K, np.zeros((30, 40), np.float32)),
                       "mask, values"),
    "undeclared negzero": (lambda a, m: a.__setitem__(K + ".__negzero__",
                                                      np.zeros_like(a[K + ".__mask__"])),
                           "mask, values"),
    "negzero overlaps a value": (lambda a, m: (a.__setitem__(K + ".__negzero__",
                                                             a[K + ".__mask__"].copy()),
                                               m["sparse"][K].__setitem__("negzero", True)),
                                 "both a value and -0.0"),
    "version 1": (lambda a, m: m.__setitem__("format_version", 1), "needs format_version 2"),
    "malformed entry": (lambda a, m: m["sparse"].__setitem__(K, [30, 40]), "malformed"),
    "bad shape": (lambda a, m: m["sparse"][K].__setitem__("shape", [30, -40]), "invalid shape"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_sparse_maps_are_refused(tmp_path, case):
    mutate, match = CASES[case]
    path = _hostile(tmp_path, mutate)
    with pytest.raises(ModelFormatError, match=match):
        io.load_model(path)


def test_sparse_file_is_refused_by_a_version_1_reader(tmp_path, monkeypatch):
    from tinygrad_lite.io import files

    m, _ = _pruned(0.9)
    m.save(tmp_path / "s.npz", sparse=True)
    monkeypatch.setattr(files, "READ_FORMAT_VERSION", 1)
    with pytest.raises(ModelFormatError, match="newer than this library reads"):
        io.load_model(tmp_path / "s.npz")
    assert FORMAT == "tinygrad_lite.model"
