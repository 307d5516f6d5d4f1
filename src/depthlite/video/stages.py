"""The threads of a video's stages: bounded hand-offs, one stop flag, the first error."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

from depthlite.parallel import get_unless_stopped, one_core_per_image

__all__ = ["END", "Stages"]

_POLL_SECONDS = 0.1
END = object()  # no more items: one per consumer


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
        """``target`` on a new thread; ``one_core``: its row bands stay on it
        (``parallel.one_core_per_image``)."""

        def run() -> None:
            try:
                with one_core_per_image(one_core):
                    target()
            except BaseException as exc:  # handed to the caller's thread
                self.fail(exc)

        worker = threading.Thread(target=run, name=name, daemon=True)
        worker.start()
        return worker
