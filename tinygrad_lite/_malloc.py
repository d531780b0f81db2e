"""Keep glibc's malloc from giving a training step's arrays back to the OS between steps.

A training step allocates and frees the same large arrays on every step: activations, masks,
pooling indices, gradients. glibc serves a request above its mmap threshold (128 KiB at start,
raised on the fly to the largest block freed so far) with fresh pages from mmap, and gives the
top of its heap back to the OS once more than its trim threshold (twice the mmap threshold) lies
free there. The next step then touches new pages again and pays a page fault for every 4 KiB.
For the small CNN of ``benchmarks.training`` (batch 64, Conv2d(1, 8, 3), ReLU, MaxPool2d(2),
Linear, Adam), measured alone in a process on a 2-core AMD EPYC: 2,026 page faults and 6.9 ms a
step before, none and 2.1 ms after, with the same peak RSS (49 MB).

``tune()`` fixes both thresholds: M_MMAP_THRESHOLD at 32 MiB (the ceiling glibc's own dynamic
threshold stops at) and M_TRIM_THRESHOLD at 64 MiB. The cost: up to 64 MiB of freed heap can stay
with the process instead of going back to the OS. Blocks of 32 MiB and more are still mapped
and unmapped one by one.

It is a process-wide setting, so the library makes it only where a process trains: the first
``Optimizer`` calls ``tune()`` (``Sequential.fit`` makes one). Inference never does: ``predict``
runs on preallocated buffers (plan.py) and needs no help. ``TINYGRAD_LITE_MALLOC=system`` leaves
malloc as it is; so does any C library but glibc (on macOS and Windows this is a no-op).
"""

import os
import sys

MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 64 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3   # glibc's malloc.h

_done = None   # None: not tried yet; else what tune() returned


def tune():
    """Set glibc's mmap and trim thresholds (above) once per process; True when they are set.

    False when ``TINYGRAD_LITE_MALLOC=system`` asks to leave malloc alone, or the C library is
    not glibc."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if os.environ.get("TINYGRAD_LITE_MALLOC", "").strip().lower() == "system":
        return False
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version                     # only glibc has it (musl does not)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                 and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _done


def tuned():
    """True when ``tune()`` has set the thresholds in this process."""
    return bool(_done)
