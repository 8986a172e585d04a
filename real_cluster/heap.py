"""The controller's heap: large buffers go back to the kernel when freed.

glibc serves a request of 128 KiB or more with its own mmap, and frees it with munmap, until the first
such free: then it raises the threshold to that size (up to 32 MiB), and from there on large buffers
come from the heap, where a few live ones pin the freed ones between them. A controller relays results
of any size (a 1 MB result is read, stored and sent on, then freed), so under that rule its resident
memory grows by a good share of all it has relayed: 133 MiB after 300 results of 1 MB to a stopped
client, against 91 MiB with the threshold pinned (tests/cluster/test_memory_live.py). Pinning it also
stops the trim threshold's dynamic growth, so freed heap tops are returned too.
"""

from __future__ import annotations

import ctypes
import os

M_MMAP_THRESHOLD = -3          # mallopt parameter numbers, glibc's malloc.h
DEFAULT_MMAP_THRESHOLD = 128 * 1024


def pin_mmap_threshold(nbytes: int = DEFAULT_MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at `nbytes`; returns whether it was applied.

    Not applied (False): another C library (no mallopt), or MALLOC_MMAP_THRESHOLD_ set in the
    environment (the operator's own choice stands).
    """
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, nbytes) == 1
