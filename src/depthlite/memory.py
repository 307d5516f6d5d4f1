"""glibc heap controls: giving freed pages back, mapped allocations for large model loads,
fewer arenas for worker threads. Elsewhere (musl, macOS, Windows) each is a no-op.

A 36 MP image allocates some hundred MB of short-lived arrays. glibc frees them into its
arenas but keeps the pages (its mmap threshold grows after large frees, so later large
arrays come from the heap), and a long-running server then stays hundreds of MB above its
idle size. ``malloc_trim(0)`` returns every free page; it takes a few milliseconds, so the
server calls it when its workers go idle, and the runtimes once per session load, never
per image.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = [
    "LARGE_MODEL_BYTES",
    "PIPELINE_TRIM_THRESHOLD",
    "SERVER_TRIM_THRESHOLD",
    "bound_heap_retention",
    "large_allocations_mapped",
    "limit_heap_arenas",
    "one_image_heap",
    "trim_heap",
]

logger = logging.getLogger(__name__)

# mallopt's parameter numbers (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
# While a large model loads, every allocation from 128 KiB up gets its own mapping, so what
# the load frees goes straight back to the kernel. Afterwards the threshold is glibc's
# dynamic ceiling (32 MiB on 64-bit): per-image buffers (a few MB) then come from the heap,
# which is where glibc's dynamic threshold would have put them after the first image anyway.
_LOAD_THRESHOLD = 128 * 1024
_AFTER_LOAD_THRESHOLD = 32 * 1024 * 1024
# An arena gives the free memory at its top back from this size (bound_heap_retention): for
# a process running the pipeline (above a 1080p request's per-call top, measured 16-32 MiB),
# and for the server, where what a worker thread keeps matters more than its page faults.
PIPELINE_TRIM_THRESHOLD = 64 * 1024 * 1024
SERVER_TRIM_THRESHOLD = 16 * 1024 * 1024
_trim_threshold: list[int] = []  # the one in force (the smallest asked for), once set
_one_image: list[bool] = []  # [True] once one_image_heap() was called
# Model files from this size up load with mapped allocations (see large_allocations_mapped).
LARGE_MODEL_BYTES = 256 * 1024 * 1024

_mallopt_lock = threading.Lock()


@functools.cache
def _libc() -> Any | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None:
            libc.malloc_trim.argtypes = [ctypes.c_size_t]
            libc.malloc_trim.restype = ctypes.c_int
            libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            libc.mallopt.restype = ctypes.c_int
    except (OSError, AttributeError):  # not glibc
        return None
    return libc


def trim_heap() -> bool:
    """Return free heap pages to the OS (glibc); True if the C library supports it.

    After a session load this matters too: parsing the model file frees 10+ MB below memory
    that stays in use, and glibc only trims the top of the heap (measured 6-7 MB off the INT8
    peak of ``depthlite predict`` on a 1080p photo).
    """
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


@contextmanager
def large_allocations_mapped(enabled: bool = True) -> Iterator[None]:
    """Load a large model with every allocation >= 128 KiB in its own mapping.

    With glibc's dynamic mmap threshold, the first large buffer freed during ONNX Runtime's
    session creation raises the threshold, later weight-sized buffers come from the heap,
    and whether the freed ones can be reused depends on where the address-space layout put
    things: DPT-Hybrid's session load peaked at 543 or 734 MB at random (ASLR: 543 every time
    with ``setarch -R``); with mapped allocations, 543 every time. Not for small models:
    MiDaS small's INT8 peak grew 3 MB with it (heap-served image buffers fragment more).
    """
    libc = _libc() if enabled else None
    if libc is None:
        yield
        return
    with _mallopt_lock:
        libc.mallopt(_M_MMAP_THRESHOLD, _LOAD_THRESHOLD)
        try:
            yield
        finally:
            libc.mallopt(_M_MMAP_THRESHOLD, _after_load_threshold())


def _after_load_threshold() -> int:
    return _LOAD_THRESHOLD if _one_image else _AFTER_LOAD_THRESHOLD


def one_image_heap() -> bool:
    """For a process that runs one image: every allocation from 128 KiB in its own mapping,
    given back when freed; True if glibc took it. Stays for the process's life.

    Heap reuse (``bound_heap_retention``) pays from the second image on; for one image it
    only keeps what decoding and preprocessing freed resident while the network runs, and
    the network's buffers then add to it. ``depthlite predict`` on one 1080p JPEG, peak RSS,
    two runs each, with the photo also dropped before the network (docs/benchmarks.md,
    session 10): MiDaS small INT8 154 -> 145 MiB, FP32 203 -> 190, DPT-Hybrid INT8 405 ->
    391, FP32 700 -> 695; wall time the same or lower.
    """
    if _libc() is None:
        return False
    _one_image[:] = [True]  # the mmap threshold bound_heap_retention (and a load) now set
    done = bound_heap_retention(_LOAD_THRESHOLD)
    trim_heap()  # what the heap holds free now would serve the next buffers
    return done


@functools.cache
def limit_heap_arenas(count: int) -> bool:
    """At most ``count`` (at least 2) malloc arenas in this process; True if glibc took it.

    glibc gives a thread that allocates while another holds an arena a new one, up to 8 per
    core, and keeps each arena's freed pages: image-sized arrays allocated by several workers
    then stay resident several times over. Measured, 2 workers, MiDaS small FP32, ten 1080p
    JPEGs to colour PNGs, 3 runs each: peak RSS 256 MB with the default, 224-241 MB with 2
    arenas (the sequential loop: 200 MB); CPU time per image the same (each image makes a few
    dozen large allocations, so the arenas' locks are not contended). Once per count.
    """
    libc = _libc()
    if libc is None:
        return False
    done = bool(libc.mallopt(_M_ARENA_MAX, max(2, count)))
    logger.debug("malloc arenas limited to %d: %s", max(2, count), done)
    return done


def bound_heap_retention(trim_threshold: int = PIPELINE_TRIM_THRESHOLD) -> bool:
    """Fixed heap thresholds for a process that runs the pipeline; True if glibc took them.

    Large buffers are mapped from 32 MiB (smaller ones come from the heap and are reused),
    and an arena's free top is given back above ``trim_threshold``; of several callers, the
    smallest threshold asked for stays. Estimators set it when made, the server (with
    ``SERVER_TRIM_THRESHOLD``) before its workers start. Measured reasons:

    - speed: with glibc's dynamic thresholds, a 1080p request's arrays larger than the
      biggest block freed so far get fresh mappings; with a trim threshold below the
      request's free top (16 MiB), that top is returned and faulted in again on every call.
      MiDaS small INT8, 1080p JPEG to colour PNG, 2 threads, Xeon with AMX (session 7):
      3,000-3,500 page faults and 41-47 ms a call with the dynamic thresholds or a 16 MiB
      trim, about none and 33-35 ms from 32 MiB; peak RSS the same (157-162 MB);
    - memory, in the server: ``malloc_trim`` returns the main arena's free pages, but not the
      free top of the arenas other threads (its workers, the helper pool) allocate from: glibc
      shrinks those only on ``free``, once the top exceeds the trim threshold, and the dynamic
      threshold reaches 64 MiB after the first large image. MiDaS small, 16 MP JPEG to colour,
      16-bit PNG and .npy in a worker thread, trimmed after each: RSS 42 MB above idle with
      the defaults, at idle with a 16 MiB trim; 1080p request time within the run-to-run noise
      (48-55 ms either way).
    """
    libc = _libc()
    if libc is None:
        return False
    with _mallopt_lock:
        trim = min([trim_threshold, *_trim_threshold])
        mapped = _after_load_threshold()
        done = bool(libc.mallopt(_M_MMAP_THRESHOLD, mapped)) and bool(
            libc.mallopt(_M_TRIM_THRESHOLD, trim)
        )
        if done:
            _trim_threshold[:] = [trim]
    logger.debug(
        "heap thresholds fixed (mmap %d KiB, trim %d KiB): %s", mapped >> 10, trim >> 10, done
    )
    return done
