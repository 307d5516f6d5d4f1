"""One small thread pool per process for the stages around the network (resize, PNG deflate).

cv2, numpy and ISA-L release the GIL on large arrays, so row bands of one image run on two
cores at once. Every stage shares this pool (as many workers as usable cores), so callers that
overlap images (the batch and video pipelines, the server's workers) never multiply threads:
at most ``cores`` helper threads exist, whoever asks. The pool is kept per process id: a pool
inherited through ``fork()`` has no threads and would never run anything.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

__all__ = [
    "bands_stay_on_one_core",
    "get_unless_stopped",
    "idle_core",
    "one_core_per_image",
    "run_split",
    "runs_bands_itself",
    "shared_pool",
    "usable_cores",
]

T = TypeVar("T")

_lock = threading.Lock()
_pools: dict[int, ThreadPoolExecutor] = {}
_PREFIX = "depthlite-helper"
_local = threading.local()  # .whole: this thread runs every band itself


def usable_cores() -> int:
    """The CPUs this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def idle_core() -> bool:
    """Whether another core is likely free: the 1-minute load average, which counts this
    thread too, leaves at least half a core unused."""
    try:
        load = os.getloadavg()[0]
    except OSError:  # not available: assume a free core, as before this check
        return True
    return load <= usable_cores() - 0.5


def shared_pool() -> ThreadPoolExecutor:
    """The process's helper pool, made on first use (and again in a forked child)."""
    pid = os.getpid()
    with _lock:
        pool = _pools.get(pid)
        if pool is None:
            _pools.clear()  # the parent's pool, if forked: its threads do not exist here
            pool = ThreadPoolExecutor(usable_cores(), thread_name_prefix=_PREFIX)
            _pools[pid] = pool
        return pool


def bands_stay_on_one_core(threads: int | None, workers: int) -> bool:
    """Whether each image (or frame) should run its row bands on its own thread: when every
    core has an image of its own, and when the user asked for one thread per image
    (``--threads 1``: one core, not one for the network and the idle ones around it)."""
    return threads == 1 or workers >= usable_cores() > 1


@contextmanager
def one_core_per_image(enabled: bool = True) -> Iterator[None]:
    """In this thread, ``run_split`` runs every part itself (when ``enabled``): for a worker
    that is one of several images in flight, one per core, where the other cores are already
    busy with the other images (the load average, which ``idle_core`` reads, lags by a
    minute); see :func:`bands_stay_on_one_core`.

    MiDaS small INT8, 96 1080p JPEGs to colour PNGs, two workers on two cores, Xeon with AMX,
    two runs each (docs/benchmarks.md, session 10): 37.3-37.7 images/s with bands split
    across cores, 39.5-40.2 without; 1.78 -> 1.86 cores busy; peak RSS 213 -> 198 MB.
    """
    before = getattr(_local, "whole", False)
    _local.whole = before or enabled
    try:
        yield
    finally:
        _local.whole = before


def get_unless_stopped(
    q: queue.Queue[Any], stop: threading.Event, poll: float, stopped: Any = None
) -> Any:
    """The next item of ``q``, waiting in ``poll``-second steps so that a set ``stop`` ends
    the wait (a blocking ``get`` would hang a stage whose producer died); ``stopped`` then."""
    while not stop.is_set():
        try:
            return q.get(timeout=poll)
        except queue.Empty:
            continue
    return stopped


def runs_bands_itself() -> bool:
    """Whether this thread is inside :func:`one_core_per_image`."""
    return bool(getattr(_local, "whole", False))


def run_split(first: Callable[[], T], others: Sequence[Callable[[], T]]) -> list[T]:
    """``others`` on the shared pool while ``first`` runs on the calling thread; all results.

    The caller always does a share itself, and then any part no helper has begun, so a busy
    pool (its workers taken by other callers, or no core free to run them) costs nothing.
    """
    if (
        runs_bands_itself()
        or threading.current_thread().name.startswith(_PREFIX)
        or not idle_core()
    ):
        # From a helper itself, waiting on the pool could deadlock; with no idle core, a
        # helper only competes with this thread (bands measured 8-12 % slower at load 7).
        return [first(), *(job() for job in others)]
    futures: list[Future[T]] = [shared_pool().submit(job) for job in others]
    results = [first()]
    for job, future in zip(others, futures, strict=True):
        # A part no helper has started yet (the other cores are busy: a loaded machine) is
        # taken back and run here, so splitting is never slower than not splitting by more
        # than a hand-off; waiting for a helper to be scheduled cost 10-20 ms under load.
        results.append(job() if future.cancel() else future.result())
    return results
