"""The threads of a video's stages: bounded hand-offs, one stop flag, the first error."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

from depthlite.parallel import get_unless_stopped, one_core_per_image

__all__ = ["END", "Stages", "on_one_core"]

_POLL_SECONDS = 0.1
END = object()  # no more items: one per consumer


def on_one_core(target: Callable[[], None], one_core: bool) -> Callable[[], None]:
    """``target``, run with every row band on its own thread when ``one_core``: when each core
    already has a frame in the network, splitting the others' stages across cores only adds
    hand-offs (the same rule as ``depth_files``, docs/benchmarks.md, session 10)."""

    def run() -> None:
        with one_core_per_image() if one_core else nullcontext():
            target()

    return run


class Stages:
    """The shared stop flag and first error of the three threads."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self._lock = threading.Lock()

    def fail(self, exc: BaseException) -> None:
        with self._lock:
            if self.error is None:
                self.error = exc
        self.stop.set()

    def put(self, q: queue.Queue[Any], item: Any) -> bool:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def get(self, q: queue.Queue[Any]) -> Any:
        return get_unless_stopped(q, self.stop, _POLL_SECONDS, END)

    def thread(
        self, target: Callable[[], None], name: str, *, one_core: bool = False
    ) -> threading.Thread:
        """``target`` on a new thread; ``one_core``: see :func:`on_one_core`."""

        def run() -> None:
            try:
                on_one_core(target, one_core)()
            except BaseException as exc:  # handed to the caller's thread
                self.fail(exc)

        worker = threading.Thread(target=run, name=name, daemon=True)
        worker.start()
        return worker
