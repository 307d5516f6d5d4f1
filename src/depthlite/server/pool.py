"""A bounded pool of worker threads for CPU work, awaited from asyncio.

Why not ``loop.run_in_executor``: a ``ThreadPoolExecutor`` queue is unbounded, cannot refuse
work when full, and cannot take back a job that waited too long. Here:

* ``workers`` threads run jobs; at most ``queue_size`` more jobs wait for them. A job submitted
  when both are full is refused at once (:class:`QueueFullError`), never queued.
* A job that has not *started* within ``queue_timeout`` seconds is taken out of the queue and
  its caller gets :class:`QueueTimeoutError`; once started, a job always runs to its end.
* A failing job never kills its worker: the exception goes to the caller.
* ``close`` stops admissions (:class:`ShuttingDownError`); workers finish what was admitted,
  then exit. ``drain`` waits for that, with a deadline.
* Background work (``submit_background``: the job runner's images and frames) has its own
  lane: never refused because uploads filled the queue, never timed out, and, whenever both
  lanes wait, given ``background_share`` of the workers' turns. Without it a job loses every
  race for a free slot against clients that post without backing off, and starves.

Nothing here knows about HTTP: ``submit(fn, *args)`` runs any callable, for the HTTP API, a
WebSocket stream or a job queue alike. Counters are read with :meth:`stats` (for metrics).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from depthlite.server.exceptions import QueueFullError, QueueTimeoutError, ShuttingDownError

__all__ = ["PoolStats", "WorkerPool"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Weight of the newest job in the running average used for Retry-After estimates.
_EWMA_WEIGHT = 0.2
_MAX_RETRY_AFTER = 60


@dataclass(frozen=True)
class PoolStats:
    """A consistent snapshot of the pool's state and counters (counters only ever grow)."""

    workers: int
    alive: int  # worker threads running: below ``workers`` only after close() or a bug
    queue_size: int
    busy: int
    queued: int
    completed: int
    failed: int
    rejected_full: int
    timed_out: int
    rejected_closed: int
    closing: bool


class _Job:
    """One submitted call; ``future`` lives on the submitter's event loop."""

    __slots__ = ("args", "background", "fn", "future", "loop")

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        loop: asyncio.AbstractEventLoop,
        background: bool = False,
    ) -> None:
        self.fn = fn
        self.args = args
        self.loop = loop
        self.background = background
        self.future: asyncio.Future[Any] = loop.create_future()


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    # Runs on the loop. The waiter may be gone (cancelled): then nobody wants the outcome.
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def _consume(future: asyncio.Future[Any]) -> None:
    # Marks an abandoned job's exception as retrieved, so asyncio does not log it as lost.
    if not future.cancelled():
        future.exception()


class WorkerPool:
    """``workers`` threads and a wait queue of ``queue_size`` jobs; see the module docstring."""

    def __init__(
        self,
        workers: int,
        queue_size: int,
        queue_timeout: float,
        *,
        background_share: float = 0.5,
        name: str = "depthlite-worker",
    ) -> None:
        if workers < 1 or queue_size < 0 or not queue_timeout > 0:
            raise ValueError(
                f"need workers >= 1, queue_size >= 0, queue_timeout > 0; got "
                f"{workers}, {queue_size}, {queue_timeout}"
            )
        if not 0 < background_share <= 1:
            raise ValueError(f"need 0 < background_share <= 1, got {background_share}")
        self.background_share = background_share
        self.workers = workers
        self.queue_size = queue_size
        self.queue_timeout = queue_timeout
        self.name = name
        self._cond = threading.Condition()
        self._jobs: deque[_Job] = deque()
        self._background: deque[_Job] = deque()
        # Turns given to (uploads, background) while both lanes were waiting.
        self._turns = [0, 0]
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._closing = False
        self._completed = 0
        self._failed = 0
        self._rejected_full = 0
        self._timed_out = 0
        self._rejected_closed = 0
        self._avg_seconds = 0.0

    def start(self) -> None:
        """Start the worker threads (idempotent)."""
        with self._cond:
            if self._threads or self._closing:
                return
            for index in range(self.workers):
                # Daemon threads: a job stuck forever must not keep the process alive after
                # drain() gave up on it.
                thread = threading.Thread(
                    target=self._work, name=f"{self.name}-{index}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    async def submit(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on a worker and return its result (or raise its exception).

        Raises :class:`QueueFullError` at once when the pool is full, :class:`QueueTimeoutError`
        when no worker took the job within ``queue_timeout``, :class:`ShuttingDownError` after
        :meth:`close`.
        """
        job = _Job(fn, args, asyncio.get_running_loop())
        self._admit(job)
        try:
            return await asyncio.wait_for(asyncio.shield(job.future), self.queue_timeout)
        except asyncio.TimeoutError:
            if self._withdraw(job, timed_out=True):
                raise QueueTimeoutError(
                    f"no worker was free within {self.queue_timeout:g} s; try again later",
                    retry_after=self.retry_after(),
                ) from None
            # It started in time: from then on it runs to its end.
            return await job.future
        except asyncio.CancelledError:
            if not self._withdraw(job, timed_out=False):
                job.future.add_done_callback(_consume)
            raise

    async def submit_background(self, fn: Callable[..., T], *args: Any) -> T:
        """Like :meth:`submit`, for background work: see the module docstring.

        Not bounded here: its callers are the job runner's threads (a video job infers from
        one per core), each waiting for its call, so they bound the lane themselves.
        """
        job = _Job(fn, args, asyncio.get_running_loop(), background=True)
        self._admit(job)
        try:
            return await asyncio.shield(job.future)
        except asyncio.CancelledError:
            if not self._withdraw(job, timed_out=False):
                job.future.add_done_callback(_consume)
            raise

    def _admit(self, job: _Job) -> None:
        with self._cond:
            if self._closing:
                self._rejected_closed += 1
                raise ShuttingDownError("the server is shutting down")
            if not self._threads:
                raise RuntimeError("WorkerPool.start() was not called")
            if job.background:
                self._background.append(job)
                self._cond.notify()
                return
            if self._busy + len(self._jobs) >= self.workers + self.queue_size:
                self._rejected_full += 1
                raise QueueFullError(
                    f"all {self.workers} worker(s) are busy and {len(self._jobs)} request(s) "
                    "are waiting; try again later",
                    retry_after=self._retry_after_locked(),
                )
            self._jobs.append(job)
            self._cond.notify()

    def _withdraw(self, job: _Job, *, timed_out: bool) -> bool:
        """Take a job that has not started out of the queue; False if a worker has it."""
        with self._cond:
            try:
                (self._background if job.background else self._jobs).remove(job)
            except ValueError:
                return False
            if timed_out:
                self._timed_out += 1
            return True

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._background and not self._closing:
                    self._cond.wait()
                if not self._jobs and not self._background:
                    return  # closing and nothing left: admitted work is done
                job = self._next_locked()
                self._busy += 1
            self._run(job)
            # An idle worker must not keep its last job (and the result in its future) alive:
            # a 144 MB answer stayed in memory until the next request.
            del job

    def _next_locked(self) -> _Job:
        """The next job: when both lanes wait, background gets its share of the turns."""
        if not (self._jobs and self._background):
            return (self._jobs or self._background).popleft()
        uploads, background = self._turns
        share = self.background_share
        take_background = background * (1 - share) <= uploads * share
        self._turns[take_background] += 1
        return (self._background if take_background else self._jobs).popleft()

    def _run(self, job: _Job) -> None:
        start = time.perf_counter()
        ok, value = False, None
        try:
            value, ok = job.fn(*job.args), True
        except BaseException as exc:  # the caller gets it; the worker lives on
            value = exc
            if not isinstance(exc, Exception):
                raise
        finally:
            elapsed = time.perf_counter() - start
            with self._cond:
                self._busy -= 1
                self._completed += ok
                self._failed += not ok
                avg = self._avg_seconds
                self._avg_seconds = elapsed if avg == 0 else avg + _EWMA_WEIGHT * (elapsed - avg)
                self._cond.notify_all()
            self._deliver(job, ok, value)

    @staticmethod
    def _deliver(job: _Job, ok: bool, value: Any) -> None:
        try:
            job.loop.call_soon_threadsafe(_settle, job.future, ok, value)
        except RuntimeError:
            logger.debug("a job finished after its event loop closed; result dropped")

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the backlog times the average job time."""
        with self._cond:
            return self._retry_after_locked()

    def _retry_after_locked(self) -> int:
        backlog = self._busy + len(self._jobs)
        estimate = self._avg_seconds * max(backlog, 1) / self.workers
        return min(_MAX_RETRY_AFTER, max(1, math.ceil(estimate)))

    def stats(self) -> PoolStats:
        with self._cond:
            return PoolStats(
                workers=self.workers,
                alive=sum(thread.is_alive() for thread in self._threads),
                queue_size=self.queue_size,
                busy=self._busy,
                queued=len(self._jobs) + len(self._background),
                completed=self._completed,
                failed=self._failed,
                rejected_full=self._rejected_full,
                timed_out=self._timed_out,
                rejected_closed=self._rejected_closed,
                closing=self._closing,
            )

    def close(self) -> None:
        """Refuse new jobs from now on; admitted jobs still run."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the workers to finish the admitted jobs (after :meth:`close`).

        Returns False if ``timeout`` passed first; the jobs still waiting then are refused
        with :class:`ShuttingDownError` (running ones cannot be interrupted).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in list(self._threads):
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(remaining)
        if not any(thread.is_alive() for thread in self._threads):
            return True
        with self._cond:
            abandoned = [*self._jobs, *self._background]
            self._jobs.clear()
            self._background.clear()
        for job in abandoned:
            self._deliver(job, False, ShuttingDownError("the server shut down before this ran"))
        return False

    async def drain(self, timeout: float | None = None) -> bool:
        """:meth:`close`, then wait (off the event loop) for admitted work; see :meth:`join`."""
        self.close()
        # A plain thread, not the loop's default executor: that one is joined at interpreter
        # exit, so a stuck job would hang the process there instead of being abandoned here.
        done = asyncio.get_running_loop().create_future()
        loop = asyncio.get_running_loop()

        def wait() -> None:
            result = self.join(timeout)
            # RuntimeError: the loop closed meanwhile; nobody awaits the answer any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, done, True, result)

        threading.Thread(target=wait, name=f"{self.name}-drain", daemon=True).start()
        return bool(await done)
