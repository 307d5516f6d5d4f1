"""The outer middleware: access log, request counts and latency, in-flight gauge; Host check.

Pure ASGI rather than ``BaseHTTPMiddleware``: that one buffers streaming responses and runs
the app in a separate task, which changes cancellation and error propagation.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from depthlite.errors import clip
from depthlite.memory import trim_heap
from depthlite.server.errors import error_response
from depthlite.server.hosts import HostPolicy
from depthlite.server.logs import access_log
from depthlite.server.metrics import ServerMetrics

__all__ = ["AccessMiddleware", "TrimMemoryMiddleware", "TrustedHostMiddleware"]

logger = logging.getLogger(__name__)
_POLICY_VIOLATION = 1008
# Seconds after the last response: at once, and again once a large body surely left the
# transport's buffer (a 144 MB .npy takes a while even on loopback).
_TRIM_DELAYS = (0.5, 3.0)

# Label for requests no route matched: raw paths would give unbounded label cardinality.
UNMATCHED = "unmatched"


def route_label(scope: Scope) -> str:
    """The matched route's path template ("/v1/depth", "/static"), never the raw path."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


class AccessMiddleware:
    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        # If the app raises before answering, Starlette's outer error middleware sends a 500.
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_status)
        finally:
            self.metrics.in_flight.dec()
            seconds = time.perf_counter() - start
            route = route_label(scope)
            method = scope["method"]
            self.metrics.observe_request(route, method, status, seconds)
            client = scope.get("client")
            access_log(
                method=method,
                path=scope["path"],
                route=route,
                status=status,
                duration_ms=seconds * 1000.0,
                client=f"{client[0]}:{client[1]}" if client else None,
            )


class TrustedHostMiddleware:
    """Refuses requests and WebSocket handshakes naming a Host this server does not serve."""

    def __init__(self, app: ASGIApp, policy: HostPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.policy.accepts(scope):
            await self.app(scope, receive, send)
            return
        host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
        logger.warning("refused a request for host %r (see --allowed-hosts)", clip(host))
        if scope["type"] == "websocket":
            # Closing before accepting makes the server answer the handshake with 403.
            await send({"type": "websocket.close", "code": _POLICY_VIOLATION})
            return
        detail = f"this server does not serve the host {clip(host)!r}; see --allowed-hosts"
        await error_response(400, "invalid_host", detail)(scope, receive, send)


class TrimMemoryMiddleware:
    """Gives freed memory back to the OS once the server is idle after a request.

    Why after the response and not when the workers finish: a large answer is copied into
    the transport's buffer on the event loop, and that is freed only once it is sent. One
    trim is pending at most (twice: see _TRIM_DELAYS) after the last response, off the loop.
    """

    def __init__(self, app: ASGIApp, idle: Callable[[], bool]) -> None:
        self.app = app
        self.idle = idle
        self._pending: list[asyncio.TimerHandle] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            if scope["type"] == "http" and scope.get("method") == "POST":
                self._schedule(asyncio.get_running_loop())

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        for handle in self._pending:
            handle.cancel()
        self._pending = [loop.call_later(delay, self._trim, loop) for delay in _TRIM_DELAYS]

    def _trim(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.idle():
            loop.run_in_executor(None, trim_heap)
