"""Stages of many independent items overlapped on a few threads; results in input order.

Each item goes through the same stages (say decode, network, encode + write); every stage has
its own threads, so the next item is decoded while the network runs on this one and the last
one is encoded. Three promises:

* memory stays flat: at most ``in_flight`` items are between admission and the caller, however
  many there are (a folder of 10,000 photos holds a handful of images at a time);
* results come back in input order, each with its value or its own error: an exception of
  ``item_errors`` fails that item only (later stages skip it), anything else stops every stage
  and is raised in the caller's thread;
* leaving the ``with`` block (the end, an error, Ctrl-C) stops the stages and joins every
  thread: a thread in the middle of an item finishes that item and exits.

With ``in_flight=1`` and one worker per stage the stages simply run in the caller's thread, one
item after another: no thread at all (the one-image command, and the sequential baseline).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, TypeVar

from depthlite.parallel import get_unless_stopped

__all__ = ["Outcome", "Overlap", "Stage"]

T = TypeVar("T")

# How often a blocked thread looks at the stop flag: only the shutdown waits for it.
_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class Stage:
    """One step: ``fn(item, value)`` gets the previous stage's value (the item itself for the
    first stage) and returns this stage's; ``workers`` threads run it."""

    name: str
    fn: Callable[[Any, Any], Any]
    workers: int = 1

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"stage {self.name!r} needs at least one worker, got {self.workers}")


@dataclass
class Outcome(Generic[T]):
    """One item's result: the last stage's ``value``, or the ``error`` that failed it."""

    index: int
    item: T
    value: Any = None
    error: BaseException | None = None


@dataclass(frozen=True)
class _Total:
    """The feeder's last word: how many items there were."""

    count: int


class Overlap(Generic[T]):
    """``with Overlap(items, stages, in_flight=4) as outcomes: for o in outcomes: ...``"""

    def __init__(
        self,
        items: Iterable[T],
        stages: Sequence[Stage],
        *,
        in_flight: int = 1,
        item_errors: tuple[type[BaseException], ...] = (),
    ) -> None:
        if not stages:
            raise ValueError("an overlap needs at least one stage")
        if in_flight < 1:
            raise ValueError(f"in_flight must be >= 1, got {in_flight}")
        self._items = items
        self._stages = tuple(stages)
        self._in_flight = in_flight
        self._item_errors = item_errors
        self._stop = threading.Event()
        self._fatal: BaseException | None = None
        self._lock = threading.Lock()
        self._slots = threading.Semaphore(in_flight)
        self._queues: list[queue.Queue[Any]] = [queue.Queue() for _ in range(len(stages) + 1)]
        self._threads: list[threading.Thread] = []

    @property
    def sequential(self) -> bool:
        return self._in_flight == 1 and all(stage.workers == 1 for stage in self._stages)

    def __enter__(self) -> Iterator[Outcome[T]]:
        if self.sequential:
            return self._inline()
        self._start()
        return self._collect()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop every stage and wait for its threads (each finishes the item it holds)."""
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self._threads.clear()

    # -- one thread ---------------------------------------------------------------------------

    def _inline(self) -> Iterator[Outcome[T]]:
        for index, item in enumerate(self._items):
            outcome: Outcome[T] = Outcome(index, item, item)
            for stage in self._stages:
                self._apply(stage, outcome)
                if outcome.error is not None:
                    break
            yield outcome

    def _apply(self, stage: Stage, outcome: Outcome[T]) -> None:
        try:
            outcome.value = stage.fn(outcome.item, outcome.value)
        except self._item_errors as exc:
            outcome.value, outcome.error = None, exc

    # -- threads ------------------------------------------------------------------------------

    def _start(self) -> None:
        self._spawn(self._feed, "feed")
        for number, stage in enumerate(self._stages):
            for worker in range(stage.workers):
                self._spawn(lambda n=number: self._work(n), f"{stage.name}-{worker}")

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        def run() -> None:
            try:
                target()
            except BaseException as exc:  # handed to the caller's thread
                self._fail(exc)

        thread = threading.Thread(target=run, name=f"depthlite-overlap-{name}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _fail(self, exc: BaseException) -> None:
        with self._lock:
            if self._fatal is None:
                self._fatal = exc
        self._stop.set()

    def _feed(self) -> None:
        count = 0
        for item in self._items:
            while not self._slots.acquire(timeout=_POLL_SECONDS):
                if self._stop.is_set():
                    return
            if self._stop.is_set():
                return
            self._queues[0].put(Outcome(count, item, item))
            count += 1
        self._queues[-1].put(_Total(count))

    def _work(self, number: int) -> None:
        stage, inbox, outbox = self._stages[number], self._queues[number], self._queues[number + 1]
        while (outcome := self._get(inbox)) is not None:
            if outcome.error is None:
                self._apply(stage, outcome)
            outbox.put(outcome)

    def _get(self, inbox: queue.Queue[Any]) -> Any:
        """The next entry, or None once stopped."""
        return get_unless_stopped(inbox, self._stop, _POLL_SECONDS)

    def _collect(self) -> Iterator[Outcome[T]]:
        # Workers of one stage finish out of order; ``waiting`` holds at most ``in_flight``.
        waiting: dict[int, Outcome[T]] = {}
        total: int | None = None
        done = 0
        while total is None or done < total:
            entry = self._get(self._queues[-1])
            if entry is None:
                break
            if isinstance(entry, _Total):
                total = entry.count
                continue
            waiting[entry.index] = entry
            while done in waiting:
                outcome = waiting.pop(done)
                done += 1
                self._slots.release()  # the next item may start while the caller handles this
                yield outcome
        self.close()
        if self._fatal is not None:
            raise self._fatal
