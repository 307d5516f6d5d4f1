"""Native decoder output (libjpeg, libtiff, OpenCV's logger) captured into log records.

libjpeg ("Corrupt JPEG data: ..."), libtiff (inside Pillow and inside OpenCV) and OpenCV's own
logger write straight to file descriptor 2 from C, so replacing ``sys.stderr`` catches none of
it: raw lines would land before depthlite's own message, and in the server's JSON log.

Design: while at least one decode is in flight, fd 2 points at a private pipe (a reference
count, not a lock: concurrent decodes still run in parallel). When a decode ends it drains the
pipe without blocking (what C wrote during the decode is in the pipe by then: ``write`` is
synchronous), restores fd 2 if it was the last one, and logs what it read on
``depthlite.decoder``: one WARNING naming the source (the captured text in the record's
``decoder_output`` field), the lines themselves at DEBUG. No reader thread, no round trip.

A line drained while several decodes overlap cannot be pinned on one of them (C output carries
no thread id); it is reported once, naming every source that was in flight. Anything else that
writes to fd 2 during a decode (another thread's native library) is reported the same way, not
lost. Log handlers must therefore not write to fd 2 itself: :func:`log_stream` is a stream on a
duplicate of the original stderr for them.

Off by default (a library must not take over its host's stderr): the CLI and the server turn
it on with :func:`enable`, where they configure logging. POSIX only (elsewhere a no-op).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TextIO

__all__ = ["DECODER_LOGGER", "capture", "enable", "enabled", "escape", "log_stream", "redirected"]

DECODER_LOGGER = "depthlite.decoder"
logger = logging.getLogger(DECODER_LOGGER)

_STDERR = 2
# Large enough for the worst file seen (235 lines) many times over; the write end is
# non-blocking, so a decode that writes more loses the excess instead of hanging on a full pipe.
_PIPE_SIZE = 1 << 20
_MAX_LINES = 1000  # per record
_SUMMARY_CHARS = 200
# Every control character a terminal or a log reader would act on; the server's log
# formatters (depthlite.server.logs) escape with this same function.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape(text: str) -> str:
    """``text`` on one line: control characters as ``\\xNN``/``\\uNNNN``."""
    return _CONTROL.sub(_escape_char, text)


@dataclass(eq=False)
class _Capture:
    source: str
    lines: list[str] = field(default_factory=list)


class _Redirect:
    """The pipe, fd 2's saved target, and the decodes in flight; all state under one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.read_fd, self.write_fd = os.pipe()
        import fcntl  # POSIX only, like this whole module (enable() is a no-op elsewhere)

        set_size = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux; the default 64 KiB also works
        if set_size is not None:
            with contextlib.suppress(OSError):
                fcntl.fcntl(self.write_fd, set_size, _PIPE_SIZE)
        for fd in (self.read_fd, self.write_fd):
            os.set_blocking(fd, False)
            os.set_inheritable(fd, False)
        self.saved_fd: int | None = None  # what fd 2 was before the first decode in flight
        self.active: list[_Capture] = []
        self.partial = b""

    def enter(self, capture: _Capture) -> None:
        with self.lock:
            if not self.active:
                self.saved_fd = os.dup(_STDERR)
                os.dup2(self.write_fd, _STDERR)  # inheritable, as fd 2 was
            self.active.append(capture)

    def exit(self, capture: _Capture) -> list[tuple[list[str], list[str]]]:
        """Drain, attribute, leave; returns the lines shared with other decodes, with sources."""
        with self.lock:
            shared = self._drain(final=len(self.active) == 1)
            self.active.remove(capture)
            if not self.active and self.saved_fd is not None:
                os.dup2(self.saved_fd, _STDERR)
                os.close(self.saved_fd)
                self.saved_fd = None
        return shared

    def _drain(self, *, final: bool) -> list[tuple[list[str], list[str]]]:
        chunks = [self.partial]
        while True:
            try:
                chunk = os.read(self.read_fd, _PIPE_SIZE)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        data = b"".join(chunks)
        if not data:
            return []
        if final:  # nobody else can finish a line that was cut short
            complete, self.partial = data, b""
        else:
            cut = data.rfind(b"\n") + 1
            complete, self.partial = data[:cut], data[cut:]
        text = complete.decode("utf-8", errors="backslashreplace")
        lines = [line.rstrip() for line in text.splitlines() if line.strip()]
        if not lines:
            return []
        if len(self.active) == 1:
            self.active[0].lines.extend(lines)
            return []
        return [(lines, [c.source for c in self.active])]


class _Module:
    """This module's process-wide state (one instance, ``_state``)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.redirect: _Redirect | None = None
        self.log_stream: TextIO | None = None
        self.detail_hint = "debug logging shows them"


_state = _Module()
_decode_turn = threading.Lock()


def enabled() -> bool:
    return _state.redirect is not None


@contextlib.contextmanager
def one_decode_at_a_time() -> Iterator[None]:
    """While decoder output is captured, let one decode run at a time.

    C output carries no thread id, so overlapping decodes can only be reported as "one of a,
    b" (see :func:`capture`). Callers that decode many files on several threads (the workers
    of ``depthlite.pipeline``, through ``DepthEstimator.prepare``) wrap the decode in this, so
    each message names its own file; a decode is a few ms of an image's ~100.
    """
    if _state.redirect is None:
        yield
        return
    with _decode_turn:
        yield


def redirected() -> bool:
    """Whether fd 2 is the capture pipe right now (a decode is in flight)."""
    redirect = _state.redirect
    return redirect is not None and redirect.saved_fd is not None


def enable(*, detail_hint: str | None = None) -> None:
    """Capture native decoder output from now on (idempotent; for the CLI and the server).

    ``detail_hint``: how the summary line tells its reader to see every line (``-v`` in the
    CLI, the debug log level in the server).
    """
    if detail_hint is not None:
        _state.detail_hint = detail_hint
    if os.name != "posix":
        return
    with _state.lock:
        if _state.redirect is None:
            log_stream()  # duplicate the real stderr before any decode can redirect it
            _state.redirect = _Redirect()


def log_stream() -> TextIO:
    """Where log handlers should write: ``sys.stderr``, unless it is fd 2 itself.

    Then a stream on a duplicate of fd 2, made once, so a record logged during a decode (by
    that decode or another thread) reaches the terminal instead of the capture pipe.
    """
    stream = sys.stderr
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # replaced (pytest's capsys, an IDE)
        return stream
    if fd != _STDERR:
        return stream
    if _state.log_stream is not None and not _state.log_stream.closed:
        return _state.log_stream
    if redirected():
        return stream  # a decode is in flight: fd 2 is the pipe now; never duplicate that
    encoding = getattr(stream, "encoding", None) or "utf-8"
    _state.log_stream = io.TextIOWrapper(
        io.FileIO(os.dup(_STDERR), "w"),
        encoding=encoding,
        errors="backslashreplace",
        line_buffering=True,
        write_through=True,
    )
    return _state.log_stream


@contextlib.contextmanager
def capture(source: str) -> Iterator[None]:
    """Around one decode: its native output becomes ``depthlite.decoder`` records.

    Reported when the block ends, also when it raises, so the records come before the caller's
    own error message. A no-op unless :func:`enable` was called.
    """
    redirect = _state.redirect
    if redirect is None:
        yield
        return
    mine = _Capture(source)
    redirect.enter(mine)
    try:
        yield
    finally:
        shared = redirect.exit(mine)
        if mine.lines:
            _report(mine.lines, [source])
        for lines, sources in shared:
            _report(lines, sources)


def _report(lines: list[str], sources: list[str]) -> None:
    dropped = max(0, len(lines) - _MAX_LINES)
    lines = [escape(line) for line in lines[:_MAX_LINES]]
    who = sources[0] if len(sources) == 1 else f"one of {', '.join(sources)}"
    first = lines[0]
    if len(first) > _SUMMARY_CHARS:
        first = first[: _SUMMARY_CHARS - 3] + "..."
    more = len(lines) - 1 + dropped
    details = logger.isEnabledFor(logging.DEBUG)
    tail = f" (+{more} more line{'s' if more != 1 else ''}" if more else ""
    if more:
        tail += ")" if details else f"; {_state.detail_hint})"
    extra = {
        "source": sources[0] if len(sources) == 1 else None,
        "sources": sources if len(sources) > 1 else None,
        "decoder_output": lines,
        "decoder_lines": len(lines) + dropped,
    }
    logger.warning("%s: decoder said: %s%s", who, first, tail, extra=extra)
    if details:
        for line in lines:
            logger.debug("%s: decoder: %s", who, line, extra={"source": extra["source"]})
        if dropped:
            logger.debug("%s: decoder: (%d more lines not kept)", who, dropped)
