"""glibc allocator settings for a server that moves large buffers.

Measured on Linux (benchmarks/README.md): every 1 MiB message a server builds is a fresh
allocation above glibc's mmap threshold, so each one is mmap'ed, page-faulted in and unmapped
again; a loop that sends freshly joined 1 MiB buffers ran at ~0.7 GB/s, and at ~3.4 GB/s
once such buffers came from the heap. Raising the mmap threshold keeps them on the heap;
raising the trim threshold stops the heap from being given back to the kernel (and faulted
in again) after every message. The cost is that up to ``TRIM_THRESHOLD`` bytes of freed
memory may stay mapped.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "tune_malloc"]

MMAP_THRESHOLD = 16 * 1024 * 1024
TRIM_THRESHOLD = 64 * 1024 * 1024
_M_TRIM_THRESHOLD = -1  # from glibc's <malloc.h>
_M_MMAP_THRESHOLD = -3


def tune_malloc() -> bool:
    """Apply the thresholds when the C library is glibc; return whether it was applied.

    A no-op elsewhere (macOS, musl): their allocators have no such knob, or need none.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
