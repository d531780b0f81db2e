"""Moved to ``tinygrad_lite/bench/kernels.py`` (shipped with the package, so ``tinygrad-lite bench``
works from any install). This shim keeps ``python -m benchmarks.kernels`` and
``import benchmarks.kernels`` working in a checkout."""

import sys

from tinygrad_lite.bench import kernels as _impl

if __name__ == "__main__":
    sys.exit(_impl.main())
sys.modules[__name__] = _impl     # ``from benchmarks.kernels import x`` sees the real module
