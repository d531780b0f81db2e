"""The Tensor itself: construction, dtypes, factories, NumPy interop, operators."""

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import Tensor
from tinygrad_lite.nn import functional as F


def test_default_dtypes():
    assert Tensor([1.0, 2.0]).dtype == np.float32
    assert Tensor(3.5).dtype == np.float32
    assert Tensor([1, 2]).dtype == np.int64
    assert Tensor(np.zeros(2)).dtype == np.float64            # arrays keep their dtype
    assert Tensor([1, 2], dtype=np.float64).dtype == np.float64


def test_attributes():
    x = Tensor(np.arange(6.0).reshape(2, 3))
    assert x.shape == (2, 3) and x.ndim == 2 and x.size == 6 and len(x) == 2
    assert x.T.shape == (3, 2)
    assert Tensor([[4.0]]).item() == 4.0
    assert x.detach().requires_grad is False
    assert x.requires_grad_().requires_grad
    assert x.numpy() is x.data


def test_item_needs_one_element():
    with pytest.raises(tl.ShapeError, match=r"item: only one-element.*\(2,\)"):
        Tensor([1.0, 2.0]).item()


def test_factories_and_seed():
    assert tl.zeros(2, 3).shape == (2, 3) and tl.zeros((2, 3)).dtype == np.float32
    assert tl.ones(4, dtype=np.float64).dtype == np.float64
    np.testing.assert_array_equal(tl.full((2,), 7.0).numpy(), [7.0, 7.0])
    np.testing.assert_array_equal(tl.arange(3).numpy(), [0, 1, 2])
    np.testing.assert_array_equal(tl.eye(2).numpy(), np.eye(2))
    assert tl.zeros_like(tl.ones(3)).numpy().sum() == 0
    assert tl.ones_like(tl.zeros(3)).numpy().sum() == 3
    tl.manual_seed(123)
    a = tl.randn(5).numpy()
    b = tl.rand(5).numpy()
    tl.manual_seed(123)
    np.testing.assert_array_equal(a, tl.randn(5).numpy())
    np.testing.assert_array_equal(b, tl.rand(5).numpy())
    assert ((b >= 0) & (b < 1)).all()


def test_numpy_interop_keeps_tensors():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = np.array([3.0, 4.0], dtype=np.float32) * x        # ndarray on the left
    assert isinstance(y, Tensor) and y.requires_grad
    np.testing.assert_allclose(np.asarray(y), [3.0, 8.0])
    np.testing.assert_allclose(np.array(x, dtype=np.float64), [1.0, 2.0])
    z = np.ones(2) + x
    assert isinstance(z, Tensor)


def test_scalar_operators_both_sides():
    x = Tensor([2.0, 4.0])
    np.testing.assert_allclose((1 - x).numpy(), [-1, -3])
    np.testing.assert_allclose((8 / x).numpy(), [4, 2])
    np.testing.assert_allclose((2 ** x).numpy(), [4, 16])
    np.testing.assert_allclose((x ** 0.5).numpy(), np.sqrt([2, 4]), rtol=1e-6)
    assert (x * 2).dtype == np.float32                      # python scalars are weak
    assert (x * np.float64(2)).dtype == np.float64          # NumPy promotion for arrays
    assert (Tensor(np.ones(2)) + Tensor(np.ones(2, np.float32))).dtype == np.float64


def test_repr():
    assert repr(Tensor([1.0, 2.0])) == "Tensor([1., 2.])"
    assert "requires_grad=True" in repr(Tensor([1.0], requires_grad=True))
    assert "grad_fn=<mul>" in repr(Tensor([1.0], requires_grad=True) * 2)
    assert "dtype=float64" in repr(Tensor(np.zeros(1)))


def test_getitem_repeated_indices_accumulate():
    x = Tensor(np.arange(4.0), requires_grad=True)
    x[np.array([0, 0, 3, 0])].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3, 0, 0, 1])


def test_boolean_mask_and_setitem():
    x = Tensor(np.array([1.0, -2.0, 3.0]))
    np.testing.assert_array_equal(x[x > 0].numpy(), [1.0, 3.0])
    x[0] = 5.0
    assert x.numpy()[0] == 5.0
    with pytest.raises(RuntimeError, match="setitem"):
        Tensor([1.0], requires_grad=True)[0] = 2.0


def test_movement_helpers():
    x = Tensor(np.arange(24.0).reshape(2, 3, 4))
    assert x.flatten().shape == (24,) and x.flatten(1).shape == (2, 12)
    assert x.transpose(0, 2).shape == (4, 3, 2) and x.transpose().shape == (4, 3, 2)
    assert x.unsqueeze(1).shape == (2, 1, 3, 4) and x.unsqueeze(1).squeeze(1).shape == x.shape
    assert x.view(6, -1).shape == (6, 4)
    assert [p.shape for p in x.split(2, axis=2)] == [(2, 3, 2), (2, 3, 2)]
    assert [p.shape for p in x.split([1, 2], axis=1)] == [(2, 1, 4), (2, 2, 4)]
    assert x.tile(2, 1, 1).shape == (4, 3, 4)
    assert x[0].expand(5, 3, 4).shape == (5, 3, 4)
    np.testing.assert_array_equal(tl.stack([x, x], axis=-1).numpy(), np.stack([x.data] * 2, -1))


def test_import_is_fast_and_silent():
    import subprocess
    import sys

    code = ("import time, warnings; warnings.simplefilter('error'); t = time.perf_counter(); "
            "import tinygrad_lite; print(time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stderr == ""
    assert float(out.stdout) < 2.0   # generous bound for a loaded CI box; measured ~0.1 s


def test_dropout_is_seeded_and_scales():
    x = tl.ones(1000)
    tl.manual_seed(1)
    a = F.dropout(x, 0.25).numpy()
    tl.manual_seed(1)
    b = F.dropout(x, 0.25).numpy()
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a)) <= {0.0, np.float32(1 / 0.75)}
    assert abs((a == 0).mean() - 0.25) < 0.06
    np.testing.assert_array_equal(F.dropout(x, 0.5, training=False).numpy(), 1)
