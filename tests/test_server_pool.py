"""The bounded worker pool on its own: admission, queue timeout, failures, drain."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

pytest.importorskip("fastapi")

from depthlite.server.exceptions import QueueFullError, QueueTimeoutError, ShuttingDownError
from depthlite.server.pool import WorkerPool

WAIT = 5.0  # generous upper bound for events that should happen within milliseconds


def run(coro_fn: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return asyncio.run(coro_fn())


class Gate:
    """A job that signals when it starts and then blocks until released."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, value: Any = "done") -> Any:
        self.started.set()
        assert self.release.wait(WAIT), "the test never released the gate"
        return value


async def wait_until(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


def started_pool(workers: int = 1, queue_size: int = 1, queue_timeout: float = WAIT) -> WorkerPool:
    pool = WorkerPool(workers, queue_size, queue_timeout)
    pool.start()
    return pool


def test_submit_returns_the_result_and_failures_never_kill_a_worker() -> None:
    async def scenario() -> None:
        pool = started_pool()
        assert await pool.submit(sum, [1, 2, 3]) == 6

        def boom() -> None:
            raise ValueError("bad input")

        with pytest.raises(ValueError, match="bad input"):
            await pool.submit(boom)
        assert await pool.submit(str.upper, "still alive") == "STILL ALIVE"
        stats = pool.stats()
        assert (stats.completed, stats.failed, stats.alive) == (2, 1, 1)
        assert await pool.drain(WAIT)

    run(scenario)


def test_a_full_pool_refuses_at_once_with_a_retry_hint() -> None:
    async def scenario() -> None:
        pool = started_pool(workers=1, queue_size=1)
        gate = Gate()
        running = asyncio.ensure_future(pool.submit(gate, "first"))
        await wait_until(gate.started.is_set)
        queued = asyncio.ensure_future(pool.submit(str, "second"))
        await wait_until(lambda: pool.stats().queued == 1)

        start = time.perf_counter()
        with pytest.raises(QueueFullError) as info:
            await pool.submit(str, "third")
        assert time.perf_counter() - start < 0.5
        assert info.value.status == 503
        assert info.value.retry_after >= 1
        assert info.value.headers["Retry-After"].isdigit()

        gate.release.set()
        assert await running == "first"
        assert await queued == "second"
        assert pool.stats().rejected_full == 1
        assert await pool.drain(WAIT)

    run(scenario)


def test_a_job_waiting_past_the_queue_timeout_is_withdrawn() -> None:
    async def scenario() -> None:
        pool = started_pool(workers=1, queue_size=2, queue_timeout=0.2)
        gate = Gate()
        running = asyncio.ensure_future(pool.submit(gate))
        await wait_until(gate.started.is_set)
        ran = threading.Event()
        start = time.perf_counter()
        with pytest.raises(QueueTimeoutError):
            await pool.submit(ran.set)
        assert 0.15 < time.perf_counter() - start < 2
        stats = pool.stats()
        assert (stats.queued, stats.timed_out) == (0, 1)
        # The job that started in time runs to its end, even past the timeout.
        gate.release.set()
        assert await running == "done"
        assert await pool.submit(str, "next") == "next"
        assert not ran.is_set(), "a withdrawn job must never run"
        assert await pool.drain(WAIT)

    run(scenario)


def test_a_cancelled_waiter_frees_its_queue_slot() -> None:
    async def scenario() -> None:
        pool = started_pool(workers=1, queue_size=1)
        gate = Gate()
        running = asyncio.ensure_future(pool.submit(gate))
        await wait_until(gate.started.is_set)
        queued = asyncio.ensure_future(pool.submit(str, "never"))
        await wait_until(lambda: pool.stats().queued == 1)
        queued.cancel()
        await wait_until(lambda: pool.stats().queued == 0)
        again = asyncio.ensure_future(pool.submit(str, "room again"))
        gate.release.set()
        assert await running == "done"
        assert await again == "room again"
        assert await pool.drain(WAIT)

    run(scenario)


def test_drain_finishes_admitted_work_and_refuses_new_work() -> None:
    async def scenario() -> None:
        pool = started_pool(workers=1, queue_size=2)
        gate = Gate()
        running = asyncio.ensure_future(pool.submit(gate, "in flight"))
        await wait_until(gate.started.is_set)
        queued = asyncio.ensure_future(pool.submit(str, "queued"))
        await wait_until(lambda: pool.stats().queued == 1)

        draining = asyncio.ensure_future(pool.drain(WAIT))
        await wait_until(lambda: pool.stats().closing)
        with pytest.raises(ShuttingDownError):
            await pool.submit(str, "late")
        await asyncio.sleep(0.05)
        assert not draining.done(), "drain must wait for the running job"
        gate.release.set()
        assert await draining is True
        assert await running == "in flight"
        assert await queued == "queued"
        stats = pool.stats()
        assert (stats.alive, stats.rejected_closed) == (0, 1)

    run(scenario)


def test_drain_gives_up_after_its_timeout_and_refuses_the_queue() -> None:
    async def scenario() -> None:
        pool = started_pool(workers=1, queue_size=1)
        gate = Gate()
        running = asyncio.ensure_future(pool.submit(gate))
        await wait_until(gate.started.is_set)
        queued = asyncio.ensure_future(pool.submit(str, "never runs"))
        await wait_until(lambda: pool.stats().queued == 1)
        assert await pool.drain(0.1) is False
        with pytest.raises(ShuttingDownError):
            await queued
        gate.release.set()
        assert await running == "done"

    run(scenario)


@pytest.mark.parametrize(
    ("workers", "queue_size", "timeout"), [(0, 1, 1.0), (1, -1, 1.0), (1, 1, 0)]
)
def test_invalid_pool_sizes_are_refused(workers: int, queue_size: int, timeout: float) -> None:
    with pytest.raises(ValueError, match="workers >= 1"):
        WorkerPool(workers, queue_size, timeout)


def test_submit_before_start_is_a_programming_error() -> None:
    async def scenario() -> None:
        with pytest.raises(RuntimeError, match="start"):
            await WorkerPool(1, 1, 1.0).submit(str, "x")

    run(scenario)


def test_background_work_gets_its_share_of_the_turns() -> None:
    """While both lanes wait, turns alternate at share 0.5; background is never refused."""

    async def scenario() -> list[str]:
        pool = WorkerPool(1, 4, 10.0, background_share=0.5)
        pool.start()
        gate = threading.Event()
        order: list[str] = []
        blocker = asyncio.ensure_future(pool.submit(gate.wait))
        await asyncio.sleep(0.05)  # the worker is busy: everything below waits
        uploads = [asyncio.ensure_future(pool.submit(order.append, "u")) for _ in range(4)]
        await asyncio.sleep(0.05)
        with pytest.raises(QueueFullError):
            await pool.submit(order.append, "refused")  # the upload lane is full...
        background = asyncio.ensure_future(pool.submit_background(order.append, "b"))
        await asyncio.sleep(0.05)  # ...but background work is admitted
        gate.set()
        await asyncio.gather(blocker, *uploads, background)
        await pool.drain(5)
        return order

    assert asyncio.run(scenario()) == ["b", "u", "u", "u", "u"]
