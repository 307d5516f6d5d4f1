"""Give freed heap memory back to the operating system after a big image.

A 36 MP image allocates some hundred MB of short-lived arrays. glibc frees them into its
arenas but keeps the pages (its mmap threshold grows after large frees, so later large
arrays come from the heap), and a long-running server then stays hundreds of MB above its
idle size. ``malloc_trim(0)`` returns every free page; it takes a few milliseconds, so the
server calls it when its workers go idle, not after every allocation. Elsewhere (musl,
macOS, Windows) this is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

__all__ = ["trim_heap"]

logger = logging.getLogger(__name__)


@functools.cache
def _malloc_trim() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None
    if trim is not None:
        trim.argtypes = [ctypes.c_size_t]
        trim.restype = ctypes.c_int
    return trim


def trim_heap() -> bool:
    """Return free heap pages to the OS (glibc); True if the C library supports it."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
