"""Deadlines for slow clients, and a cap on open connections.

uvicorn times out idle keep-alive connections only after a first response, and never a
request head or body that trickles in, so a few hundred sockets sending a byte a second
would hold the server's memory and file descriptors forever. Two layers close that:

* :class:`GuardedH11Protocol` (the HTTP/1.1 protocol, uvicorn's h11 one with a timer): a
  connection must deliver a complete request head within ``header_timeout`` of opening or of
  its previous response, else it is closed (with a 408 if part of a head came). Connections
  beyond ``max_connections`` are closed as soon as they are accepted.
* :class:`BodyDeadlineMiddleware` (ASGI): while an app reads a body, a pause longer than
  ``body_timeout`` or an average rate below ``min_upload_rate`` (after the first
  ``body_timeout`` seconds) ends the request with 408 and closes the connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from depthlite.server.exceptions import RequestTimeoutError

__all__ = ["BodyDeadlineMiddleware", "GuardedH11Protocol", "guarded_protocol"]

logger = logging.getLogger(__name__)

_REFUSAL_LOG_EVERY = 1.0  # seconds: a flood of refused connections logs one line a second


def _timeout_answer(detail: str) -> bytes:
    body = json.dumps({"error": RequestTimeoutError.code, "detail": detail}).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"connection: close\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


class _RefusalLog:
    """Counts refused connections; logs at most one line per interval."""

    def __init__(self) -> None:
        self.count = 0
        self.last = 0.0

    def note(self, limit: int) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self.last >= _REFUSAL_LOG_EVERY:
            logger.warning(
                "closed %d new connection(s): %d are open already (--max-connections)",
                self.count,
                limit,
            )
            self.count, self.last = 0, now


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a request-head deadline and a connection cap.

    Subclassed per server by :func:`guarded_protocol`, which sets the two limits.
    """

    header_timeout: float = 10.0
    max_connections: int = 500
    refusals: _RefusalLog = _RefusalLog()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._waiting_after: Any = None
        if len(self.connections) > self.max_connections:
            self.refusals.note(self.max_connections)
            transport.close()
            return
        self._arm()

    def _arm(self) -> None:
        """Start waiting for the next request head (the current cycle is then the last one)."""
        self._disarm()
        self._waiting_after = self.cycle
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_expired)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._head_timer is not None and self.cycle is not self._waiting_after:
            self._disarm()  # a new request's head is complete

    def handle_websocket_upgrade(self, event: Any) -> None:
        self._disarm()  # the WebSocket protocol takes the connection over
        super().handle_websocket_upgrade(event)

    def on_response_complete(self) -> None:
        finished = self.cycle
        super().on_response_complete()
        # A pipelined request may have started inside; then its head is already here.
        if not self.transport.is_closing() and self.cycle is finished:
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _head_expired(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        partial = bool(self.conn.trailing_data[0])
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "-"
        logger.info(
            "closed the connection of %s: %s within %g s",
            client,
            "an incomplete request head" if partial else "no request",
            self.header_timeout,
        )
        if partial:
            detail = f"the request head did not arrive within {self.header_timeout:g} s"
            self.transport.write(_timeout_answer(detail))
        self.transport.close()


def guarded_protocol(header_timeout: float, max_connections: int) -> type[GuardedH11Protocol]:
    """The protocol class for one server (uvicorn's ``http=`` takes a class)."""
    limits = {
        "header_timeout": header_timeout,
        "max_connections": max_connections,
        "refusals": _RefusalLog(),
    }
    return type("GuardedH11Protocol", (GuardedH11Protocol,), limits)


class BodyDeadlineMiddleware:
    """A request body must keep coming: see the module docstring."""

    def __init__(self, app: ASGIApp, body_timeout: float, min_rate: float) -> None:
        self.app = app
        self.body_timeout = body_timeout
        self.min_rate = min_rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.app(scope, self._guarded(receive), send)

    def _guarded(self, receive: Receive) -> Receive:
        start = time.monotonic()
        last = start
        received = 0
        complete = False

        async def receive_in_time() -> Message:
            nonlocal last, received, complete
            if complete:  # after the body: e.g. waiting for a disconnect, no deadline
                return await receive()
            # The later of "no byte for body_timeout" and "average below min_rate".
            by_rate = start + max(self.body_timeout, received / self.min_rate)
            deadline = min(last + self.body_timeout, by_rate)
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                raise self._too_slow(received, time.monotonic() - start) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                last = time.monotonic()
                complete = not message.get("more_body", False)
            return message

        return receive_in_time

    def _too_slow(self, received: int, seconds: float) -> RequestTimeoutError:
        logger.info(
            "request body too slow: %d bytes in %.1f s (limits: %g s pause, %g bytes/s)",
            received,
            seconds,
            self.body_timeout,
            self.min_rate,
        )
        return RequestTimeoutError(
            f"the request body came too slowly ({received} bytes in {seconds:.1f} s); the "
            f"server needs a byte at least every {self.body_timeout:g} s and "
            f"{self.min_rate:g} bytes/s on average"
        )
