"""tinygrad_lite._arrays.as_numpy: the one array coercion data/ and metrics/ share."""

import numpy as np
import pytest

from tinygrad_lite._arrays import as_numpy
from tinygrad_lite.data import TensorDataset
from tinygrad_lite.metrics import accuracy_score, mean_squared_error
from tinygrad_lite.tensor import Tensor


def _fake_cupy_array(values):
    """Looks like a CuPy ndarray: lives in module 'cupy', copies to the host with .get()."""
    class ndarray:
        def __init__(self, a):
            self._a = np.asarray(a)

        def get(self):
            return self._a.copy()

        def __array__(self, *args, **kwargs):   # CuPy refuses implicit conversion
            raise TypeError("Implicit conversion to a NumPy array is not allowed")

    ndarray.__module__ = "cupy"
    return ndarray(values)


def test_ndarray_returned_as_is():
    a = np.arange(6.0).reshape(2, 3)
    assert as_numpy(a) is a
    f32 = np.zeros(3, np.float32)
    assert as_numpy(f32).dtype == np.float32


@pytest.mark.parametrize("x, expected", [
    ([1, 2, 3], np.array([1, 2, 3])),
    ((1.5, 2.5), np.array([1.5, 2.5])),
    ([[1, 2], [3, 4]], np.array([[1, 2], [3, 4]])),
    (3.0, np.array(3.0)),
    (["a", "b"], np.array(["a", "b"])),
])
def test_lists_tuples_scalars(x, expected):
    out = as_numpy(x)
    assert isinstance(out, np.ndarray) and out.dtype == expected.dtype
    np.testing.assert_array_equal(out, expected)


def test_tensor_and_numpy_method():
    t = Tensor(np.arange(4, dtype=np.float32))
    out = as_numpy(t)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    np.testing.assert_array_equal(out, [0, 1, 2, 3])

    class TorchLike:
        def numpy(self):
            return [1, 2]

    np.testing.assert_array_equal(as_numpy(TorchLike()), [1, 2])


def test_cupy_array_copied_to_host():
    x = _fake_cupy_array([[1.0, 2.0]])
    out = as_numpy(x)
    assert isinstance(out, np.ndarray) and out.shape == (1, 2)
    np.testing.assert_array_equal(out, [[1.0, 2.0]])


def test_users_of_as_numpy_take_cupy_arrays():
    """data and metrics accept the same inputs because they share as_numpy."""
    ds = TensorDataset(_fake_cupy_array(np.eye(3)), _fake_cupy_array([0, 1, 2]))
    assert len(ds) == 3 and ds[1][1] == 1
    assert accuracy_score(_fake_cupy_array([0, 1, 1]), [0, 1, 0]) == pytest.approx(2 / 3)
    assert mean_squared_error(_fake_cupy_array([0.0, 2.0]), [1.0, 2.0]) == 0.5
