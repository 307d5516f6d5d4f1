"""Live depth over a WebSocket: per-connection state and the CPU work of one frame.

Framework-free apart from asyncio, like ``render.py``; ``routes/live.py`` wires it to
Starlette's WebSocket.

Backpressure, both ways: the browser sends a frame only when the previous answer arrived, and
the server keeps only the *newest* pending frame per connection (older ones are dropped and
counted), so nothing queues without bound however fast a client sends. Each connection has at
most one frame on the shared worker pool, the same pool as ``POST /v1/depth``: live streams
cannot starve uploads (they wait their turn in the same FIFO), and a full pool answers a live
frame with ``busy`` instead of queueing it, so uploads cannot starve a stream either.

An answer is one binary message: a 4-byte big-endian length, a JSON header of that length
(``seq``, ``width``, ``height``, ``timings`` in ms, ``dropped``, ``cut``), then a JPEG.
Problems are text messages ``{"type": "error" | "busy", ...}``; the connection stays open.
"""

from __future__ import annotations

import asyncio
import json
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from depthlite.colorize import apply_palette, colormap_id
from depthlite.estimator import DepthEstimator
from depthlite.imageio import encode_jpeg, load_image
from depthlite.normalize import NormalizerOptions, TemporalNormalizer

__all__ = ["LiveFrame", "LiveOptions", "LiveRegistry", "LiveSession", "render_live"]

_HEADER = struct.Struct(">I")
_JPEG_QUALITY = 80


@dataclass(frozen=True)
class LiveOptions:
    colormap: str = "inferno"
    normalizer: NormalizerOptions = field(default_factory=NormalizerOptions)
    max_pixels: int = 4_000_000

    def __post_init__(self) -> None:
        colormap_id(self.colormap)


@dataclass(frozen=True)
class LiveFrame:
    header: dict[str, Any]
    jpeg: bytes

    def message(self) -> bytes:
        head = json.dumps(self.header, separators=(",", ":")).encode()
        return _HEADER.pack(len(head)) + head + self.jpeg

    @staticmethod
    def parse(message: bytes) -> tuple[dict[str, Any], bytes]:
        """The inverse of :meth:`message` (for clients and tests)."""
        (size,) = _HEADER.unpack_from(message)
        end = _HEADER.size + size
        return json.loads(message[_HEADER.size : end]), message[end:]


class LiveSession:
    """One connection: its normaliser, colour map, newest pending frame and counters."""

    def __init__(self, options: LiveOptions, estimator: DepthEstimator) -> None:
        self.options = options
        self.estimator = estimator  # the model this stream chose (?model=)
        self.colormap = options.colormap
        self.normalizer = TemporalNormalizer(options.normalizer)
        self.received = 0
        self.dropped = 0
        self.answered = 0
        self.closed = False
        self.send_lock = asyncio.Lock()
        self._pending: tuple[int, bytes] | None = None
        self._wake = asyncio.Event()

    def offer(self, data: bytes) -> None:
        """A new frame from the client; replaces (and counts as dropped) one still waiting."""
        if self._pending is not None:
            self.dropped += 1
        self.received += 1
        self._pending = (self.received, data)
        self._wake.set()

    def close(self) -> None:
        self.closed = True
        self._pending = None
        self._wake.set()

    async def next_frame(self) -> tuple[int, bytes] | None:
        """The newest pending frame, waiting for one; None once the connection closed."""
        while self._pending is None and not self.closed:
            self._wake.clear()
            await self._wake.wait()
        item, self._pending = self._pending, None
        return None if self.closed else item


def render_live(est: DepthEstimator, session: LiveSession, seq: int, data: bytes) -> LiveFrame:
    """Decode, predict, normalise with the session's state, colour, JPEG (on a pool worker)."""
    start = time.perf_counter()
    rgb = load_image(data, max_pixels=session.options.max_pixels, source=f"frame {seq}")
    decode = time.perf_counter()
    result = est.predict(rgb)
    predicted = time.perf_counter()
    # One frame per session at a time (see the module docstring): the normaliser is not shared.
    levels = session.normalizer.levels(result.display_depth)
    cut = session.normalizer.cuts
    jpeg = encode_jpeg(apply_palette(levels, session.colormap), quality=_JPEG_QUALITY)
    done = time.perf_counter()
    timings = {
        "decode": (decode - start) * 1000.0,
        "inference": result.timings["inference"],
        "predict": (predicted - decode) * 1000.0,
        "encode": (done - predicted) * 1000.0,
        "total": (done - start) * 1000.0,
    }
    header = {
        "seq": seq,
        "width": int(levels.shape[1]),
        "height": int(levels.shape[0]),
        "timings": {name: round(ms, 2) for name, ms in timings.items()},
        "dropped": session.dropped,
        "cuts": cut,
    }
    return LiveFrame(header, jpeg)


class LiveRegistry:
    """How many live connections are open, against the configured cap (thread-safe)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._active = 0
        self._lock = threading.Lock()

    @property
    def active(self) -> int:
        return self._active

    def try_acquire(self) -> bool:
        with self._lock:
            if self._active >= self.limit:
                return False
            self._active += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._active -= 1
