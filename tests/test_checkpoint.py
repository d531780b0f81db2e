"""tl.save / tl.load (state dicts and checkpoints, never pickle) and io.save_model for nn.Module."""

import os

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import io, nn, optim
from tinygrad_lite.errors import ModelFormatError


def _net():
    tl.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 2))


def _step(net, opt, x, y):
    opt.zero_grad()
    loss = nn.functional.cross_entropy(net(x), y)
    loss.backward()
    opt.step()
    return loss.item()


def test_state_dict_round_trip_as_safetensors(tmp_path):
    net = _net()
    sd = net.state_dict()
    sd["extra_tensor"] = tl.Tensor([1.0, 2.0])
    path = tl.save(sd, tmp_path / "sd.safetensors")
    back = tl.load(path)
    assert set(back) == set(sd)
    for k, v in sd.items():
        np.testing.assert_array_equal(np.asarray(back[k]), np.asarray(v))
        assert type(back[k]) is (tl.Tensor if k == "extra_tensor" else np.ndarray)
        assert back[k].dtype == v.dtype
    assert back["1.num_batches_tracked"].shape == ()          # 0-d stays 0-d
    st = pytest.importorskip("safetensors.numpy")              # the standard layout
    ref = st.load_file(str(path))
    for k in sd:
        np.testing.assert_array_equal(ref[k], np.asarray(sd[k]))


def test_load_reads_a_safetensors_file_written_elsewhere(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    st.save_file({"w": w}, str(tmp_path / "x.safetensors"))
    back = tl.load(tmp_path / "x.safetensors")
    assert isinstance(back["w"], tl.Tensor) and back["w"].shape == (2, 3)


def test_checkpoint_with_optimizer_resumes_exactly(tmp_path):
    rng = np.random.default_rng(1)
    x = tl.Tensor(rng.standard_normal((8, 3)).astype(np.float32))
    y = tl.Tensor(rng.integers(0, 2, 8))
    net = _net()
    opt = optim.Adam(net.parameters(), lr=0.01, weight_decay=1e-3)
    sched = optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    for _ in range(3):
        _step(net, opt, x, y)
        sched.step()
    tl.save({"model": net.state_dict(), "optim": opt.state_dict(), "sched": sched.state_dict(),
             "epoch": 3, "note": "ok", "best": float("inf"), "shape": (2, 3)},
            tmp_path / "ckpt.npz")
    uninterrupted = [_step(net, opt, x, y) for _ in range(3)]

    ck = tl.load(tmp_path / "ckpt.npz")
    assert ck["epoch"] == 3 and ck["note"] == "ok" and ck["best"] == float("inf")
    assert ck["shape"] == (2, 3) and 0 in ck["optim"]["state"]    # int keys survive
    net2 = _net()
    opt2 = optim.Adam(net2.parameters(), lr=0.01, weight_decay=1e-3)
    sched2 = optim.lr_scheduler.StepLR(opt2, step_size=2, gamma=0.5)
    net2.load_state_dict(ck["model"])
    opt2.load_state_dict(ck["optim"])
    sched2.load_state_dict(ck["sched"])
    assert opt2.param_groups[0]["lr"] == 0.005                  # StepLR halved it after 2
    resumed = [_step(net2, opt2, x, y) for _ in range(3)]
    np.testing.assert_array_equal(resumed, uninterrupted)


def test_npz_checkpoint_loads_without_pickle(tmp_path):
    tl.save({"a": {"b": [np.ones(2), tl.Tensor([3.0])]}}, tmp_path / "c.npz")
    with np.load(tmp_path / "c.npz", allow_pickle=False) as f:       # plain arrays only
        assert "__metadata__" in f.files
    back = tl.load(tmp_path / "c.npz")
    assert isinstance(back["a"]["b"][0], np.ndarray) and isinstance(back["a"]["b"][1], tl.Tensor)


def test_save_refuses_pickle_names_and_unstorable_objects(tmp_path):
    with pytest.raises(ModelFormatError, match="pickle"):
        tl.save({"w": np.ones(2)}, tmp_path / "model.pt")
    with pytest.raises(TypeError, match="save: cannot store a object"):
        tl.save({"w": object()}, tmp_path / "x.npz")
    with pytest.raises(TypeError, match=r"flat \{name: tensor\} dict.*x\.npz"):
        tl.save({"w": {"nested": np.ones(2)}}, tmp_path / "x.safetensors")


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "sd.safetensors"
    tl.save({"w": np.ones(3)}, path)
    before = path.read_bytes()

    def boom(*a):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        tl.save({"w": np.zeros(3)}, path)
    assert path.read_bytes() == before                          # the old file is intact
    assert os.listdir(tmp_path) == ["sd.safetensors"]           # no temp file left behind


def test_load_refuses_corrupt_files(tmp_path):
    p = tmp_path / "c.npz"
    tl.save({"a": np.ones(2)}, p)
    p.write_bytes(p.read_bytes()[:40])
    with pytest.raises(ModelFormatError, match="load: "):
        tl.load(p)


def test_state_dict_values_have_numpy():
    sd = _net().state_dict()
    w = sd["0.weight"]
    assert isinstance(w, np.ndarray) and type(w.numpy()) is np.ndarray
    np.testing.assert_array_equal(w.numpy(), w)


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_io_save_model_and_weights_accept_any_module(tmp_path, suffix):
    net = _net()
    io.save_weights(net, tmp_path / f"w{suffix}")
    io.save_model(net, tmp_path / f"m{suffix}")
    for name in ("w", "m"):
        net2 = nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 2))
        io.load_weights(net2, tmp_path / f"{name}{suffix}")
        for (k, a), b in zip(net.state_dict().items(), net2.state_dict().values()):
            np.testing.assert_array_equal(a, b, err_msg=k)
    with pytest.raises(ModelFormatError, match=r"nn.Module \(Sequential\).*load_weights"):
        io.load_model(tmp_path / f"m{suffix}")
    wrong = nn.Sequential(nn.Linear(3, 4))
    with pytest.raises(ModelFormatError, match="do not match"):
        io.load_weights(wrong, tmp_path / f"w{suffix}")
