"""Moved to ``tinygrad_lite/bench/recurrent.py`` (shipped with the package, so ``tinygrad-lite bench``
works from any install). This shim keeps ``python -m benchmarks.recurrent`` and
``import benchmarks.recurrent`` working in a checkout."""

import sys

from tinygrad_lite.bench import recurrent as _impl

if __name__ == "__main__":
    sys.exit(_impl.main())
sys.modules[__name__] = _impl     # ``from benchmarks.recurrent import x`` sees the real module
