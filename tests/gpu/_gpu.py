"""Shared by the GPU test modules: skip (with the reason) without CuPy, a driver or a device;
fresh random inputs (seed from GPU_CHECK_SEED, else random and printed); NaN-poisoned outputs."""

import os

import numpy as np
import pytest

from tinygrad_lite import cuda

REASON = cuda.unavailable_reason()
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(REASON is not None, reason=f"needs a CUDA GPU: {REASON}")]

SEED = int(os.environ.get("GPU_CHECK_SEED") or np.random.SeedSequence().entropy % 2 ** 32)
print(f"tests/gpu: random inputs from seed {SEED} (GPU_CHECK_SEED={SEED} repeats them)")


def rng(salt=0):
    return np.random.default_rng([SEED, salt])


class Poisoned:
    """An array module whose ``empty`` hands out NaN-filled float arrays (int arrays get -7), so
    a kernel that leaves any output element unwritten fails the comparison."""

    def __init__(self, xp):
        self._xp = xp

    def __getattr__(self, name):
        return getattr(self._xp, name)

    def empty(self, shape, dtype=float, *args, **kwargs):
        out = self._xp.empty(shape, dtype, *args, **kwargs)
        out.fill(np.nan if np.dtype(dtype).kind == "f" else -7)
        return out
