"""Process-wide memory setting of ``edgemask-run`` (a program may set it; the core, a library, does not).

glibc serves big allocations, such as the runtimes' tensor arenas (MBs each), with ``mmap`` and gives
them back to the system when freed; but the first such free raises its mmap threshold to that size, so
later arenas come from the heap, whose freed space is seldom given back. An interpreter resized for a
new image shape then leaves its old arena behind. Pinning the threshold (what the environment variable
``MALLOC_MMAP_THRESHOLD_`` does) keeps big buffers on ``mmap``: on scenes_dev the peak RSS of
``edgemask-run`` dropped by 5-8 MB (benchmarks/memory.py). Elsewhere (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import sys

M_MMAP_THRESHOLD = -3
"""glibc's ``mallopt`` parameter number (malloc.h)."""
MMAP_THRESHOLD = 128 * 1024
"""glibc's own starting value: buffers from 128 KiB up are mapped, and unmapped when freed."""


def pin_mmap_threshold() -> bool:
    """Fix glibc's mmap threshold; True if it took effect."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
