"""Embedded digits equal scikit-learn's; IDX/MNIST reader on files the tests write; toy sets."""

import gzip
import struct
import zlib

import numpy as np
import pytest

from tinygrad_lite import data
from tinygrad_lite.data import datasets as D


def test_package_reexports_the_datasets_module():
    """tinygrad_lite.data exports exactly the public names of data.datasets, as the same objects.

    Derived from ``datasets.__all__`` (not a copy of the import list in data/__init__.py), so a
    name added to the module but forgotten in the package fails here.
    """
    assert D.__all__, "datasets.__all__ is empty"
    for name in D.__all__:
        assert name in data.__all__, f"tinygrad_lite.data.__all__ lacks {name}"
        assert getattr(data, name) is getattr(D, name), name


def test_digits_equal_sklearn():
    skd = pytest.importorskip("sklearn.datasets")
    ref = skd.load_digits()
    d = D.load_digits()
    assert d.data.shape == (1797, 64) and d.images.shape == (1797, 8, 8)
    np.testing.assert_array_equal(d.data, ref.data)
    np.testing.assert_array_equal(d.images, ref.images)
    np.testing.assert_array_equal(d.target, ref.target)
    assert d.data.dtype == ref.data.dtype and d.target.dtype == np.int64
    assert d.data.min() == 0 and d.data.max() == 16
    X, _ = D.load_digits(return_X_y=True)
    np.testing.assert_array_equal(X, ref.data)
    X5, y5 = D.load_digits(n_class=5, return_X_y=True)
    Xr, yr = skd.load_digits(n_class=5, return_X_y=True)
    np.testing.assert_array_equal(X5, Xr)
    np.testing.assert_array_equal(y5, yr)
    assert "Alpaydin" in d.DESCR
    with pytest.raises(ValueError, match="n_class"):
        D.load_digits(n_class=11)


# ---------------------------------------------------------------------- IDX ---

def _idx_bytes(arr, type_byte=0x08, dtype=">u1"):
    header = bytes([0, 0, type_byte, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + np.asarray(arr, dtype=dtype).tobytes()


def _write_mnist(folder, n_img=5, n_lab=5, gz=False, kind="train", rows=4, cols=3):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n_img, rows, cols), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n_lab, dtype=np.uint8)
    prefix = "train" if kind == "train" else "t10k"
    for name, arr in ((f"{prefix}-images-idx3-ubyte", images),
                      (f"{prefix}-labels-idx1-ubyte", labels)):
        data = _idx_bytes(arr)
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return images, labels


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("kind", ["train", "test"])
def test_load_mnist_raw_and_gz(tmp_path, gz, kind):
    images, labels = _write_mnist(tmp_path, gz=gz, kind=kind)
    X, y = D.load_mnist(tmp_path, kind=kind)
    np.testing.assert_array_equal(X, images)
    np.testing.assert_array_equal(y, labels)
    assert X.dtype == np.uint8 and y.dtype == np.int64 and X.shape == (5, 4, 3)


def test_read_idx_other_types(tmp_path):
    a = np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5
    p = tmp_path / "f.idx"
    p.write_bytes(_idx_bytes(a, 0x0D, ">f4"))
    out = D.read_idx(p)
    np.testing.assert_array_equal(out, a)
    assert out.dtype == np.float32 and out.dtype.isnative
    b = np.array([-3, 1000, 7], dtype=np.int32)
    p.write_bytes(_idx_bytes(b, 0x0C, ">i4"))
    np.testing.assert_array_equal(D.read_idx(p), b)


def test_truncated_files(tmp_path):
    _write_mnist(tmp_path)
    p = tmp_path / "train-images-idx3-ubyte"
    p.write_bytes(p.read_bytes()[:-7])
    with pytest.raises(D.IDXFormatError, match="truncated.*expected"):
        D.load_mnist(tmp_path)
    p.write_bytes(p.read_bytes()[:9])
    with pytest.raises(D.IDXFormatError, match="truncated header"):
        D.load_mnist(tmp_path)
    p.write_bytes(b"\x00\x00")
    with pytest.raises(D.IDXFormatError, match="too short"):
        D.load_mnist(tmp_path)


def test_trailing_bytes(tmp_path):
    _write_mnist(tmp_path)
    p = tmp_path / "train-labels-idx1-ubyte"
    p.write_bytes(p.read_bytes() + b"\x00")
    with pytest.raises(D.IDXFormatError, match="trailing bytes"):
        D.load_mnist(tmp_path)


def test_truncated_gzip(tmp_path):
    _write_mnist(tmp_path, gz=True)
    p = tmp_path / "train-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:20])
    with pytest.raises(D.IDXFormatError, match="gzip stream is truncated"):
        D.load_mnist(tmp_path)


def test_bad_magic_and_swapped_files(tmp_path):
    _write_mnist(tmp_path)
    p = tmp_path / "train-images-idx3-ubyte"
    data = bytearray(p.read_bytes())
    data[0] = 0x12
    p.write_bytes(bytes(data))
    with pytest.raises(D.IDXFormatError, match="bad magic"):
        D.load_mnist(tmp_path)
    data[0], data[2] = 0, 0x42
    p.write_bytes(bytes(data))
    with pytest.raises(D.IDXFormatError, match="bad magic"):
        D.load_mnist(tmp_path)
    labels = (tmp_path / "train-labels-idx1-ubyte").read_bytes()
    p.write_bytes(labels)
    with pytest.raises(D.IDXFormatError, match="expected 3 dimensions, got 1"):
        D.load_mnist(tmp_path)


def test_count_mismatch_and_bad_labels(tmp_path):
    _write_mnist(tmp_path, n_img=5, n_lab=4)
    with pytest.raises(D.IDXFormatError, match="counts differ, got 5 images.*4 labels"):
        D.load_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(np.array([1, 2, 3, 4, 12])))
    with pytest.raises(D.IDXFormatError, match="0..9"):
        D.load_mnist(tmp_path)


def test_missing_files_and_bad_kind(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        D.load_mnist(tmp_path)
    with pytest.raises(ValueError, match="kind"):
        D.load_mnist(tmp_path, kind="val")


def test_dot_spelling(tmp_path):
    images, _ = _write_mnist(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").rename(tmp_path / "train-images.idx3-ubyte")
    X, _ = D.load_mnist(tmp_path)
    np.testing.assert_array_equal(X, images)


# ----------------------------------------------------------------- toy sets ---

def test_moons_like_sklearn_without_noise():
    skd = pytest.importorskip("sklearn.datasets")
    X, y = D.make_moons(20, shuffle=False)
    Xr, yr = skd.make_moons(20, shuffle=False)
    np.testing.assert_allclose(X, Xr, atol=1e-12)
    np.testing.assert_array_equal(y, yr)


@pytest.mark.parametrize("make", [
    lambda s: D.make_moons(50, noise=0.1, seed=s), lambda s: D.make_spirals(60, seed=s),
    lambda s: D.make_xor(40, seed=s), lambda s: D.make_regression(30, 3, seed=s)])
def test_toy_sets_seeded(make):
    a, b, c = make(0), make(0), make(1)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])
    assert np.isfinite(a[0]).all()


def test_toy_shapes_and_labels():
    X, y = D.make_spirals(100, n_classes=4, seed=0, dtype=np.float32)
    assert X.shape == (100, 2) and X.dtype == np.float32
    assert np.bincount(y).tolist() == [25, 25, 25, 25]
    X, y = D.make_xor(100, noise=0.0, seed=0)
    assert ((X[:, 0] * X[:, 1] < 0) == (y == 1)).all() and set(y.tolist()) == {0, 1}
    X, y, w = D.make_regression(200, 2, noise=0.0, bias=3.0, seed=0, return_coef=True)
    np.testing.assert_allclose(X @ w + 3.0, y)
    X, y = D.make_regression(2000, 1, noise=0.5, coef=[2.0], seed=0)
    assert np.std(y - 2.0 * X[:, 0]) == pytest.approx(0.5, rel=0.1)
    with pytest.raises(ValueError, match="coef"):
        D.make_regression(10, 2, coef=[1.0])
    with pytest.raises(ValueError, match="noise"):
        D.make_moons(10, noise=-1)
    with pytest.raises(ValueError, match="n_samples"):
        D.make_xor(0)


def test_corrupt_gzip_fuzz(tmp_path):
    """Random byte flips in a gzipped IDX file: the array or IDXFormatError, nothing else.

    Before D.read_idx caught zlib.error, a corrupt deflate block ("invalid stored block lengths",
    "invalid distance too far back") escaped in about 1 of 12 of these cases.
    """
    import random

    a = np.random.default_rng(0).integers(0, 256, size=(6, 5, 4), dtype=np.uint8)
    blob = gzip.compress(_idx_bytes(a), mtime=0)
    p = tmp_path / "x-idx3-ubyte.gz"
    rng = random.Random(0)
    outcomes = {"ok": 0, "error": 0}
    for _ in range(300):
        b = bytearray(blob)
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(10, len(b))     # past the 10-byte gzip header
            b[i] = rng.randrange(256)
        p.write_bytes(bytes(b))
        try:
            out = D.read_idx(p)
        except D.IDXFormatError as e:
            assert str(e).startswith("read_idx: ") and str(p) in str(e)
            outcomes["error"] += 1
        else:   # a flip that only hit the data would fail the CRC, so this must be unchanged
            np.testing.assert_array_equal(out, a)
            outcomes["ok"] += 1
    assert outcomes["error"] > 250


def _gzip_stream(chunks):
    z = zlib.compressobj(9, zlib.DEFLATED, 31)     # wbits 31: gzip container
    return b"".join(z.compress(c) for c in chunks) + z.flush()


def test_gzip_bomb_is_not_decompressed(tmp_path):
    """A .gz whose header announces 10 bytes but that inflates to 64 MiB stops early."""
    import tracemalloc

    header = _idx_bytes(np.arange(10, dtype=np.uint8))
    zeros = bytes(1 << 20)
    p = tmp_path / "bomb-idx1-ubyte.gz"
    p.write_bytes(_gzip_stream([header] + [zeros] * 64))
    assert p.stat().st_size < 200_000
    tracemalloc.start()
    try:
        with pytest.raises(D.IDXFormatError, match="trailing bytes"):
            D.read_idx(p)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"decompressed far past the announced size: peak {peak} bytes"


def test_gzip_header_announcing_more_than_deflate_can_hold(tmp_path):
    """A header claiming 2^32 x 2^32 bytes in a 60-byte .gz is rejected before decompressing."""
    header = bytes([0, 0, 8, 2]) + struct.pack(">2I", 2**32 - 1, 2**32 - 1)
    p = tmp_path / "liar-idx2-ubyte.gz"
    p.write_bytes(gzip.compress(header + bytes(100)))
    with pytest.raises(D.IDXFormatError, match="cannot hold that much"):
        D.read_idx(p)


def test_gzip_valid_stream_still_reads_exactly(tmp_path):
    """The capped reader returns the same array as plain gzip.decompress, multi-member too."""
    a = np.arange(3 * 300 * 7, dtype=np.uint8).reshape(3, 300, 7)
    data = _idx_bytes(a)
    p = tmp_path / "ok-idx3-ubyte.gz"
    p.write_bytes(gzip.compress(data[:50]) + gzip.compress(data[50:]))   # two gzip members
    np.testing.assert_array_equal(D.read_idx(p), a)
    p.write_bytes(gzip.compress(data[:-1]))
    with pytest.raises(D.IDXFormatError, match="truncated"):
        D.read_idx(p)
