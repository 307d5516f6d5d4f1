"""How many images run at once and how many threads each session gets: one source of truth."""

from __future__ import annotations

import os
from dataclasses import dataclass

from depthlite.runtime.base import default_threads

__all__ = ["Layout", "plan_layout", "workers_for"]


@dataclass(frozen=True)
class Layout:
    """``workers`` images in flight at once, each on a session with ``threads`` intra-op threads
    (None: the runtime's default, one per core). One worker is today's sequential loop."""

    threads: int | None
    workers: int

    @property
    def in_flight(self) -> int:
        """Images between admission and the caller: one per worker, and one more with several
        (1: the caller's thread).

        A folder of 10,000 photos then holds ``workers`` decoded images at a time (no more
        threads work on them). The one more is for a worker that finished out of order: its
        image waits to be reported in input order, holding only its written paths, and without
        a free slot that worker would idle until the slower one finished (1:2 INT8 MiDaS small
        on 96 1080p JPEGs, alternated in one process: 37.7-38.0 images/s without it,
        39.0-39.8 with it; docs/benchmarks.md, session 9).
        """
        return self.workers + 1 if self.workers > 1 else 1


def plan_layout(threads: int | None, workers: int | None, count: int) -> Layout:
    """The layout for ``count`` images from the user's ``--threads`` / ``--workers`` (None: not
    given), filling every core.

    Measured (docs/benchmarks.md, "Throughput"): for many images, one single-threaded session
    run by one worker per core beats one session spreading each image over every core: the
    stages around the network (decode, upsample, colour map, PNG deflate) are serial and the
    network's parallel sections stall whenever another stage takes a core. One image keeps
    every core for its network (latency). ``OMP_NUM_THREADS`` counts as ``--threads``.
    """
    cores = default_threads()
    if count <= 1:
        return Layout(threads, 1)
    if threads is None and workers is None and os.environ.get("OMP_NUM_THREADS", "").strip():
        return Layout(None, 1)  # the user sized the session: it has every core it was given
    if workers is None:
        workers = workers_for(threads) if threads is not None else cores
    if threads is None:
        threads = max(1, cores // workers)
    return Layout(threads, workers)


def workers_for(threads: int | None) -> int:
    """Images at once for a session of ``threads`` intra-op threads: one per core it leaves."""
    cores = default_threads()
    return max(1, cores // (threads or cores))
