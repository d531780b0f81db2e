"""How many threads our own CPU kernels (the cython backend) use.

The default is the number of CPUs this process may run on, or ``TINYGRAD_LITE_NUM_THREADS`` when
set. This is separate from OpenBLAS's thread count, which the cython backend holds at 1 while it
is active so the two thread pools never fight over the same cores.
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
