"""Helpers for the nn tests: float64 tensors, a seeded RNG, small Hypothesis settings."""

import numpy as np
from hypothesis import HealthCheck, settings

import tinygrad_lite as tl

# Gradchecks cost 2 forward passes per input element: few, small examples.
SMALL = settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def dbl(a, requires_grad=True):
    """A float64 leaf Tensor (a copy of ``a``)."""
    return tl.Tensor(np.array(a, dtype=np.float64), requires_grad=requires_grad)


def rng(seed=0):
    return np.random.default_rng(seed)
