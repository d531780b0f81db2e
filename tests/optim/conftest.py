"""Shared helpers for the optimizer, scheduler and clipping tests.

Parameters are real ``tinygrad_lite.nn.Parameter`` objects; gradients are set by hand (a Tensor in
``p.grad``) so every test controls exactly what the optimizer sees.
"""

import numpy as np
import pytest

from tinygrad_lite.nn import Parameter
from tinygrad_lite.tensor import Tensor


def _make_param(values, dtype=np.float64):
    return Parameter(np.array(values, dtype=dtype))  # np.array copies: the test keeps its own


def _set_grad(p, g):
    p.grad = Tensor(np.array(g, dtype=p.data.dtype))


@pytest.fixture(scope="session")
def make_param():
    """``make_param(values, dtype=float64)`` -> a Parameter owning a copy of ``values``."""
    return _make_param


@pytest.fixture(scope="session")
def set_grad():
    """``set_grad(p, g)`` -> puts ``Tensor(g)`` (in p's dtype) into ``p.grad``."""
    return _set_grad
