"""device="cuda" without a GPU: what is testable on the CPU.

- ``import tinygrad_lite`` never imports CuPy, and CPU work never turns the device check on;
- asking for "cuda" without CuPy, a driver or a device raises ``BackendUnavailableError`` naming
  which is missing (CuPy's failure modes are simulated as measured with cupy-cuda13x on a
  machine without a GPU: ``import cupy`` works, ``getDeviceCount`` raises CUDARuntimeError);
- the host logic of CUDA tensors -- ``.device``, ``.to``, ``.cpu``, ``np.asarray`` refused,
  ``.numpy()`` copies, the DeviceError of an op mixing devices, GPU weights saved and loaded on
  the CPU -- with a stand-in ``cupy`` module whose arrays live in module "cupy" and copy to the
  host with ``.get()`` (the interface tinygrad_lite uses). No kernel runs here: the GPU tests are
  tests/gpu/, which skip without a device.
"""

import importlib.machinery
import subprocess
import sys
import types

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import autograd, cuda
from tinygrad_lite.backends import _gpu_unavailable_reason

tensor_mod = sys.modules["tinygrad_lite.tensor"]   # (tl.tensor is the factory function)


class CUDARuntimeError(RuntimeError):
    pass


class _FakeArray:
    """Stands for cupy.ndarray: the data stays in ``_a``; the host copy is ``.get()``."""

    def __init__(self, a):
        self._a = np.array(a)

    dtype = property(lambda self: self._a.dtype)
    shape = property(lambda self: self._a.shape)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)

    def get(self):
        return self._a.copy()

    def astype(self, dtype, copy=True):
        return _FakeArray(self._a.astype(dtype))

    def __array__(self, *args, **kwargs):   # what CuPy does
        raise TypeError("Implicit conversion to a NumPy array is not allowed.")


_FakeArray.__module__ = "cupy"


def _fake_cupy(count=1, error=None):
    cp = types.ModuleType("cupy")
    cp.__spec__ = importlib.machinery.ModuleSpec("cupy", None)
    cp.__version__ = "0-fake"
    cp.ndarray = _FakeArray

    def get_device_count():
        if error is not None:
            raise CUDARuntimeError(error)
        return count

    cp.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=get_device_count))

    def asarray(data, dtype=None):
        data = data._a if isinstance(data, _FakeArray) else data
        return _FakeArray(np.asarray(data, dtype=dtype))

    cp.asarray = asarray
    cp.ascontiguousarray = asarray
    return cp


@pytest.fixture
def fresh_flags(monkeypatch):
    """Whatever a test does, the process goes back to 'no CUDA tensor ever made' after it."""
    monkeypatch.setattr(tensor_mod, "CUDA_SEEN", False)
    monkeypatch.setattr(autograd, "_cuda_seen", False)
    monkeypatch.setattr(cuda, "_cupy", None)          # require()'s memo of a usable CuPy


@pytest.fixture
def fake_gpu(monkeypatch, fresh_flags):
    cp = _fake_cupy()
    monkeypatch.setitem(sys.modules, "cupy", cp)
    return cp


# ---- imports and the CPU path -------------------------------------------------------------


def test_import_and_cpu_work_never_import_cupy_or_enable_device_checks(tmp_path):
    """A cupy that records being imported sits on the path; importing tinygrad_lite and training
    a step on the CPU must not import it, nor switch the per-op device check on."""
    pkg = tmp_path / "cupy"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("import os\nopen(os.environ['MARK'], 'w').close()\n")
    mark = tmp_path / "imported"
    code = ("import sys, tinygrad_lite as tl\n"
            "from tinygrad_lite import autograd\n"
            "m = tl.nn.Linear(3, 2)\n"
            "opt = tl.optim.Adam(m.parameters())\n"
            "loss = m(tl.Tensor([[1.0, 2.0, 3.0]])).sum(); loss.backward(); opt.step()\n"
            "print('cupy' in sys.modules, autograd._cuda_seen)\n")
    env = {"PYTHONPATH": f"{tmp_path}:{tl.__path__[0]}/..", "MARK": str(mark),
           "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]
    assert not mark.exists()


def test_cpu_tensors_say_cpu_and_stay_put():
    t = tl.Tensor([1.0, 2.0])
    assert t.device == "cpu"
    assert t.cpu() is t and t.to("cpu") is t
    assert np.asarray(t).tolist() == [1.0, 2.0]          # CPU: the implicit conversion works
    m = tl.nn.Linear(2, 2)
    assert {p.device for p in m.parameters()} == {"cpu"}


# ---- what is missing ----------------------------------------------------------------------


def _no_cupy(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "cupy" else real(name, *a))
    monkeypatch.delitem(sys.modules, "cupy", raising=False)


MISSING = {
    "cupy": (None, "CuPy is not installed"),
    "driver": (dict(error="cudaErrorInsufficientDriver: CUDA driver version is insufficient for "
                          "CUDA runtime version"), "no usable CUDA driver"),
    "no device (error)": (dict(error="cudaErrorNoDevice: no CUDA-capable device is detected"),
                          "no CUDA device found"),
    "no device (count 0)": (dict(count=0), "no CUDA device found"),
}


@pytest.mark.parametrize("case", list(MISSING))
def test_asking_for_cuda_names_what_is_missing(case, monkeypatch, fresh_flags):
    fake, words = MISSING[case]
    if fake is None:
        _no_cupy(monkeypatch)
    else:
        monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(**fake))
    assert cuda.unavailable_reason().startswith(words)
    assert _gpu_unavailable_reason().startswith(words)     # what backends.available() reports
    assert not cuda.is_available() or fake is not None
    cpu = tl.Tensor([1.0, 2.0])
    for make in (lambda: tl.Tensor([1.0], device="cuda"), lambda: cpu.to("cuda"),
                 lambda: cpu.cuda(), lambda: tl.zeros(2, device="cuda"),
                 lambda: tl.nn.Linear(2, 2).to("cuda")):
        with pytest.raises(tl.BackendUnavailableError, match=words):
            make()
    assert tensor_mod.CUDA_SEEN is False and autograd._cuda_seen is False


def test_cli_train_on_cuda_without_cuda_says_why(monkeypatch, capsys):
    from tinygrad_lite import cli

    monkeypatch.setattr(cuda, "unavailable_reason", lambda: "no usable CUDA driver (test)")
    assert cli.main(["train", "--device", "cuda", "--quiet", "--epochs", "1"]) != 0
    err = capsys.readouterr().err
    assert "--device cuda: CUDA is not available: no usable CUDA driver (test)" in err


# ---- host logic of CUDA tensors (stand-in cupy) ---------------------------------------------


def test_cuda_tensor_device_moves_and_copies(fake_gpu):
    g = tl.Tensor(np.array([1.5, 2.5], np.float32), device="cuda", requires_grad=True)
    assert isinstance(g.data, _FakeArray) and g.device == "cuda"
    assert g.cuda() is g and g.to("cuda") is g
    with pytest.raises(TypeError, match=r"\.numpy\(\)"):
        np.asarray(g)
    host = g.numpy()
    assert isinstance(host, np.ndarray) and host.tolist() == [1.5, 2.5]
    host[0] = 99.0                                       # a copy: the device data is untouched
    assert g.numpy().tolist() == [1.5, 2.5]
    c = g.to("cpu")
    assert c.device == "cpu" and c.requires_grad and c.is_leaf and c.tolist() == [1.5, 2.5]
    assert c.cuda().device == "cuda"
    assert tl.Tensor([1.0, 2.0], device="cuda").dtype == np.float32   # lists: default float


def test_an_op_mixing_devices_names_both(fake_gpu):
    g = tl.Tensor(np.ones(3, np.float32), device="cuda")
    c = tl.Tensor(np.ones(3, np.float32))
    g2 = tl.Tensor(np.ones((3, 1), np.float32), device="cuda")
    c2 = tl.Tensor(np.ones((1, 3), np.float32))
    for op, name in ((lambda: c + g, "add"), (lambda: g * c, "mul"),
                     (lambda: c2 @ g2, "matmul")):
        with pytest.raises(tl.DeviceError) as e:
            op()
        msg = str(e.value)
        assert msg.startswith(name) and "cpu" in msg and "cuda" in msg, msg
        assert ".to('cuda')" in msg


def test_no_device_check_until_a_cuda_tensor_exists(fresh_flags, monkeypatch):
    calls = []
    monkeypatch.setattr(autograd, "_check_devices", lambda *a: calls.append(a))
    (tl.Tensor([1.0]) + tl.Tensor([2.0])).sum()
    assert calls == []


def test_gpu_weights_saved_load_on_the_cpu_and_back(fake_gpu, tmp_path):
    src = tl.nn.Linear(3, 2)
    want = {k: v.numpy().copy() for k, v in src.state_dict().items()}
    src.to("cuda")
    assert {p.device for p in src.parameters()} == {"cuda"}
    path = tmp_path / "m.safetensors"
    from tinygrad_lite.io import load_weights, save_model

    save_model(src, str(path))
    dst = tl.nn.Linear(3, 2)
    load_weights(dst, str(path))
    got = {k: v.numpy() for k, v in dst.state_dict().items()}
    assert got.keys() == want.keys()
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])
    back = tl.nn.Linear(3, 2).to("cuda")
    load_weights(back, str(path))
    assert {p.device for p in back.parameters()} == {"cuda"}
    for k, v in back.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), want[k])
