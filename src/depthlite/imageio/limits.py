"""The pixel cap that guards every decode against decompression bombs, and PIL's own limit.

The cap is checked from the header, before any pixel is decoded; PIL's process-wide
``MAX_IMAGE_PIXELS`` is only raised, for one decode and under a lock, when a caller asks for
a cap above it.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from PIL import Image

from depthlite.errors import ImageTooLargeError

__all__ = ["DEFAULT_MAX_PIXELS", "check_pixels", "pil_limits", "too_large"]

DEFAULT_MAX_PIXELS = 40_000_000

# Serialises the rare calls that must raise PIL's process-wide pixel limit (see pil_limits).
_PIL_LIMIT_LOCK = threading.Lock()


def too_large(width: int | None, height: int | None, pixels: int, max_pixels: int) -> str:
    size = f"{width} x {height} = {pixels}" if width is not None else f"{pixels}"
    return (
        f"image is {size} pixels, above the limit of {max_pixels} pixels; "
        "raise it with --max-pixels"
    )


def check_pixels(width: int, height: int, max_pixels: int, source: str) -> None:
    pixels = width * height
    if pixels > max_pixels:
        raise ImageTooLargeError(too_large(width, height, pixels, max_pixels), source=source)


@contextmanager
def pil_limits(max_pixels: int) -> Iterator[None]:
    """Make our cap, not PIL's global ``MAX_IMAGE_PIXELS``, the authority for one decode.

    PIL warns above its limit and fails above twice it, before we see the header. Its warning
    is noise (our own check reports the same image with a better message), so it is silenced
    here; ``catch_warnings`` is not thread-safe before Python 3.14, but the worst a race can do
    is leak this one narrow filter. PIL's limit is only raised, under a lock and restored
    afterwards, when the caller asked for a cap above it; nothing is changed at import time.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        current = Image.MAX_IMAGE_PIXELS
        if current is None or max_pixels <= current:
            yield
            return
        with _PIL_LIMIT_LOCK:
            saved = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = max_pixels
            try:
                yield
            finally:
                Image.MAX_IMAGE_PIXELS = saved
