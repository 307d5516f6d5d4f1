"""``WS /v1/live``: webcam frames in, colour depth frames out (see ``server/live.py``).

Browsers cannot set headers on a WebSocket, so the API key (when one is configured) comes as
the ``key`` query parameter. Refusals (bad key, bad option, too many connections, shutting
down) are sent as one text message ``{"type": "error", ...}`` and then a close code, so the
page can show why: 1008 policy, 1013 try again later, 1001 going away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from depthlite.colorize import DEFAULT_COLORMAP, colormap_id
from depthlite.errors import DepthliteError, InvalidOptionError
from depthlite.normalize import DEFAULT_SMOOTHING, NormalizerOptions
from depthlite.server.deps import matching_key
from depthlite.server.exceptions import QueueFullError, QueueTimeoutError, ShuttingDownError
from depthlite.server.hosts import HostPolicy
from depthlite.server.live import LiveOptions, LiveSession, render_live
from depthlite.server.service import Service

__all__ = ["router"]

logger = logging.getLogger(__name__)

POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013
GOING_AWAY = 1001
_DRAIN_POLL_SECONDS = 0.5


def _origin_ok(ws: WebSocket, service: Service) -> bool:
    """Browsers do not apply CORS to WebSockets: a page elsewhere could open streams here.

    Allowed: no Origin (not a browser), the server's own origin (same scheme, host and port;
    the Host itself was checked by the trusted-host middleware), or a configured CORS origin.
    """
    origin = ws.headers.get("origin")
    if not origin:
        return True
    return HostPolicy.same_origin(ws.scope, origin) or origin in service.settings.cors_origins


def _key_ok(service: Service, key: str | None) -> bool:
    keys = service.settings.api_keys
    return not keys or matching_key(keys, key) is not None


async def _refuse(ws: WebSocket, code: int, error: str, detail: str) -> None:
    await ws.send_json({"type": "error", "code": error, "detail": detail})
    await ws.close(code=code, reason=detail[:120])


async def _send(ws: WebSocket, session: LiveSession, message: bytes | dict[str, Any]) -> None:
    async with session.send_lock:
        if isinstance(message, bytes):
            await ws.send_bytes(message)
        else:
            await ws.send_json(message)


def _configure(session: LiveSession, text: str) -> None:
    """A text message changes the colour map or resets the normaliser: {"colormap": "..."}."""
    try:
        change = json.loads(text)
    except json.JSONDecodeError:
        raise InvalidOptionError('text messages must be JSON, e.g. {"colormap": "magma"}') from None
    if not isinstance(change, dict):
        raise InvalidOptionError("text messages must be a JSON object")
    if "colormap" in change:
        colormap_id(str(change["colormap"]))
        session.colormap = str(change["colormap"]).lower()
    if change.get("reset"):
        session.normalizer.reset()


async def _receive(ws: WebSocket, session: LiveSession, max_bytes: int) -> None:
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            data, text = message.get("bytes"), message.get("text")
            try:
                if data is not None:
                    if len(data) > max_bytes:
                        raise InvalidOptionError(f"frame of {len(data)} bytes > {max_bytes}")
                    session.offer(data)
                elif text is not None:
                    _configure(session, text)
            except DepthliteError as exc:
                await _send(ws, session, {"type": "error", "code": exc.code, "detail": str(exc)})
    except WebSocketDisconnect:
        return
    finally:
        session.close()


async def _answer(
    ws: WebSocket, service: Service, session: LiveSession, seq: int, data: bytes
) -> bool:
    """Process one frame and send the outcome; False when the stream must end."""
    try:
        frame = await service.pool.submit(render_live, session.estimator, session, seq, data)
    except (QueueFullError, QueueTimeoutError) as exc:
        service.metrics.live_frames.labels("busy").inc()
        await _send(
            ws, session, {"type": "busy", "detail": str(exc), "retry_after": exc.retry_after}
        )
        return True
    except ShuttingDownError as exc:
        await _refuse(ws, GOING_AWAY, exc.code, str(exc))
        return False
    except DepthliteError as exc:
        service.metrics.live_frames.labels("error").inc()
        await _send(
            ws, session, {"type": "error", "code": exc.code, "detail": str(exc), "seq": seq}
        )
        return True
    session.answered += 1
    service.metrics.live_frames.labels("answered").inc()
    await _send(ws, session, frame.message())
    return True


async def _serve(ws: WebSocket, service: Service, session: LiveSession) -> None:
    receiver = asyncio.create_task(_receive(ws, session, service.settings.max_body_bytes))
    try:
        while not session.closed:
            if service.draining:
                await _refuse(ws, GOING_AWAY, "shutting_down", "the server is shutting down")
                return
            try:
                item = await asyncio.wait_for(session.next_frame(), _DRAIN_POLL_SECONDS)
            except asyncio.TimeoutError:
                continue
            if item is None or not await _answer(ws, service, session, *item):
                return
    except (WebSocketDisconnect, RuntimeError):
        return  # the client went away while we were sending
    finally:
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await receiver
        service.metrics.live_frames.labels("dropped").inc(session.dropped)


def router() -> APIRouter:
    api = APIRouter(prefix="/v1", tags=["live"])

    @api.websocket("/live")
    async def live(
        ws: WebSocket,
        *,
        colormap: str = DEFAULT_COLORMAP,
        normalize: str = "temporal",
        smoothing: float = DEFAULT_SMOOTHING,
        key: str | None = None,
        model: str | None = None,
    ) -> None:
        service: Service = ws.app.state.service
        await ws.accept()
        if not _origin_ok(ws, service):
            detail = "this page's origin may not use the live stream (see --cors-origins)"
            await _refuse(ws, POLICY_VIOLATION, "forbidden_origin", detail)
            return
        if not _key_ok(service, key):
            await _refuse(ws, POLICY_VIOLATION, "unauthorized", "API key missing or not valid")
            return
        try:
            service.check_available()
            est = service.pick(model)
            normalizer = NormalizerOptions(mode=normalize, smoothing=smoothing)
            options = LiveOptions(colormap.lower(), normalizer, service.settings.max_pixels)
        except InvalidOptionError as exc:
            await _refuse(ws, POLICY_VIOLATION, exc.code, str(exc))
            return
        except DepthliteError as exc:
            await _refuse(ws, TRY_AGAIN_LATER, exc.code, str(exc))
            return
        if not service.live.try_acquire():
            detail = f"all {service.live.limit} live connection(s) are in use; try again later"
            await _refuse(ws, TRY_AGAIN_LATER, "overloaded", detail)
            return
        logger.info("live stream opened (%d open)", service.live.active)
        session = LiveSession(options, est)
        try:
            await _serve(ws, service, session)
        finally:
            service.live.release()
            logger.info(
                "live stream closed: %d frames answered, %d dropped (%d open)",
                session.answered,
                session.dropped,
                service.live.active,
            )

    return api
