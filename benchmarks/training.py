"""Moved to ``tinygrad_lite/bench/training.py`` (shipped with the package, so ``tinygrad-lite bench``
works from any install). This shim keeps ``python -m benchmarks.training`` and
``import benchmarks.training`` working in a checkout."""

import sys

from tinygrad_lite.bench import training as _impl

if __name__ == "__main__":
    sys.exit(_impl.main())
sys.modules[__name__] = _impl     # ``from benchmarks.training import x`` sees the real module
