"""How many threads our own CPU kernels (the cython backend) use.

The default is the number of CPUs this process may run on, or ``TINYGRAD_LITE_NUM_THREADS`` when
set. This is separate from OpenBLAS's thread count, which belongs to the application: importing
the package, loading a model or predicting never changes it. ``limit_blas_threads(n)`` is the
opt-in for a training loop that wants OpenBLAS out of the way of our OpenMP threads, restored
when the ``with`` block ends (or set ``TINYGRAD_LITE_LIMIT_BLAS=1`` to limit it while the cython
backend is active).
"""

import os

from ..errors import TinygradLiteError


class ThreadCountError(TinygradLiteError, ValueError):
    """A thread count that is not a positive integer."""


def _default():
    env = os.environ.get("TINYGRAD_LITE_NUM_THREADS", "").strip()
    if env:
        try:
            return _check(int(env), "TINYGRAD_LITE_NUM_THREADS")
        except ValueError:
            import warnings

            warnings.warn(f"TINYGRAD_LITE_NUM_THREADS: expected a positive integer, got {env!r}; "
                          "using the CPU count", RuntimeWarning, stacklevel=3)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


MAX_THREADS = 256   # each thread gets its own GEMM workspace; beyond this it is a typo


def _check(n, where="set_num_threads"):
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ThreadCountError(f"{where}: thread count must be a positive integer, got {n!r}")
    if n > MAX_THREADS:
        raise ThreadCountError(f"{where}: thread count must be at most {MAX_THREADS} (each "
                               f"thread has its own kernel workspace), got {n}; this machine has "
                               f"{os.cpu_count()} CPUs")
    return n


_num_threads = _default()


def set_num_threads(n):
    """Set the number of threads our CPU kernels use (GEMM, conv, pooling).

    Parameters
    ----------
    n : int
        A thread count from 1 to ``MAX_THREADS`` (256); larger values are refused, as each
        thread holds its own kernel workspace. More threads than cores only adds contention.

    Examples
    --------
    >>> from tinygrad_lite.backends.threads import set_num_threads, get_num_threads
    >>> set_num_threads(1); get_num_threads()
    1
    """
    global _num_threads
    _num_threads = _check(n)


def get_num_threads():
    """The number of threads our CPU kernels use (see ``set_num_threads``)."""
    return _num_threads


def limit_blas_threads(n=1):
    """Opt-in: hold BLAS (OpenBLAS, MKL) at ``n`` threads inside a ``with`` block, then restore
    the application's own setting.

    >>> from tinygrad_lite.backends import limit_blas_threads
    >>> with limit_blas_threads(1):
    ...     pass                      # train here: our kernels get the cores
    """
    _check(n, "limit_blas_threads")
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        from ..errors import BackendUnavailableError

        raise BackendUnavailableError("limit_blas_threads: needs threadpoolctl, got no "
                                      "threadpoolctl module; pip install "
                                      "tinygrad_lite[threads]") from None
    return threadpool_limits(limits=n, user_api="blas")
