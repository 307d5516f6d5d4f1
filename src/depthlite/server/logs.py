"""Server logging: plain text or JSON lines, and the access log record.

Access records carry their fields as ``extra`` attributes (method, path, status, duration_ms,
client, route) so the JSON formatter emits them as keys and the plain formatter as one line.
Native decoder output (libjpeg, libtiff, OpenCV) is captured off fd 2 into ``depthlite.decoder``
records (``depthlite.imageio.quiet``) whose ``source``, ``decoder_output`` (the lines) and
``decoder_lines`` fields are emitted the same way; it never reaches stderr raw.

Both formatters escape control characters (``\n``, ESC, DEL, C1 codes, Unicode line separators
and bidi overrides) in the message and in every string field: paths, queries, file names and
headers are the client's, and one raw newline would let it forge a log line.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timezone
from typing import Any

from depthlite.imageio.quiet import escape

__all__ = [
    "ACCESS_LOGGER",
    "JsonFormatter",
    "PlainFormatter",
    "RedactKeys",
    "access_log",
    "configure_logging",
    "escape_control",
]

ACCESS_LOGGER = "depthlite.server.access"
_ACCESS_FIELDS = ("method", "path", "route", "status", "duration_ms", "client")
_DECODER_FIELDS = ("source", "sources", "decoder_output", "decoder_lines")
_PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# One escaper for every logged value: the decoder capture's (depthlite.imageio.quiet).
escape_control = escape


def _escape_value(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_escape_value(item) for item in value]
    return escape_control(value) if isinstance(value, str) else value


_SECRET_QUERY = re.compile(r"([?&]key=)[^&\s\"']*")


class RedactKeys(logging.Filter):
    """Masks ``key=`` query values: browsers pass the API key so to ``WS /v1/live``, and
    uvicorn logs every WebSocket handshake with its full query string."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "key=" in message:
            record.msg = _SECRET_QUERY.sub(r"\1***", message)
            record.args = None
        return True


class PlainFormatter(logging.Formatter):
    """The plain one-line format, with the message's control characters escaped.

    Only the message: a traceback (``exc_info``) is ours and keeps its lines.
    """

    def __init__(self) -> None:
        super().__init__(_PLAIN_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        record.message = escape_control(record.message)
        return super().formatMessage(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, plus access/decoder fields.

    ``json.dumps`` escapes C0 controls already, not DEL, C1 (CSI) or bidi overrides.
    """

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": escape_control(record.getMessage()),
        }
        for key in _ACCESS_FIELDS:
            if key in record.__dict__:
                payload[key] = _escape_value(record.__dict__[key])
        for key in _DECODER_FIELDS:
            if record.__dict__.get(key) is not None:
                payload[key] = _escape_value(record.__dict__[key])
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        # default=str: a stray non-JSON value in a message argument must not lose the line.
        return json.dumps(payload, default=str, ensure_ascii=False)


def configure_logging(log_format: str, level: str) -> None:
    """Route every logger (ours, uvicorn's) through one stderr handler in the chosen format.

    Called by ``depthlite serve`` (or :func:`depthlite.server.app_from_env`), never by
    ``create_app``: an app factory must not reconfigure the logging of the process it is
    imported into.
    """
    from depthlite.imageio import quiet

    # Decoder output is captured from here on; the handler writes to a duplicate of stderr,
    # so that records logged while a decode has fd 2 redirected are not captured themselves.
    quiet.enable(detail_hint="--log-level debug shows them")
    handler = logging.StreamHandler(quiet.log_stream())
    handler.addFilter(RedactKeys())
    formatter = JsonFormatter() if log_format == "json" else PlainFormatter()
    handler.setFormatter(formatter)
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # uvicorn's own loggers propagate to the root once it is started with log_config=None;
    # its access log is off (ours has the timings and the route).
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True


def access_log(
    *, method: str, path: str, route: str, status: int, duration_ms: float, client: str | None
) -> None:
    """One access record; probes and scrapes go at DEBUG so they do not drown the log."""
    quiet = route in {"/healthz", "/readyz", "/metrics"} and status < 400
    logging.getLogger(ACCESS_LOGGER).log(
        logging.DEBUG if quiet else logging.INFO,
        '%s "%s %s" %d %.1f ms',
        client or "-",
        method,
        path,
        status,
        duration_ms,
        extra={
            "method": method,
            "path": path,
            "route": route,
            "status": status,
            "duration_ms": round(duration_ms, 3),
            "client": client,
        },
    )
