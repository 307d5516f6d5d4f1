"""JPEG decoded at 1/2, 1/4 or 1/8 of its size in the DCT domain, for the fast preprocess path.

libjpeg-turbo can skip most of the inverse DCT and the colour upsampling by decoding straight
to a smaller size (``cv2.IMREAD_REDUCED_COLOR_k``): a 1080p JPEG at 1/4 decodes in about a
third of the time. The network input is far smaller than a photo, so the largest factor that
still leaves the decoded image at least as large as the network input on both sides loses
nothing the network would see. The pixels differ from a full decode followed by the official
resize (a different filter), which is why this is only used with ``fast_preprocess``; the
depth map is still made at the image's full size, read from the header.

Anything that is not a complete 8-bit JPEG from a path or bytes (arrays, PIL images, PNGs,
damaged files) goes through :func:`~depthlite.imageio.decode.load_image` unchanged.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from depthlite.imageio import quiet
from depthlite.imageio.decode import ImageSource, load_image
from depthlite.imageio.limits import DEFAULT_MAX_PIXELS, check_pixels, pil_limits
from depthlite.imageio.pixels import complete_jpeg, exif_orientation, orient

__all__ = ["REDUCTIONS", "load_reduced"]

# Factor -> cv2 flag, largest first (the first that fits wins).
REDUCTIONS: tuple[tuple[int, int], ...] = (
    (8, cv2.IMREAD_REDUCED_COLOR_8),
    (4, cv2.IMREAD_REDUCED_COLOR_4),
    (2, cv2.IMREAD_REDUCED_COLOR_2),
)
_RGB = getattr(cv2, "IMREAD_COLOR_RGB", None)
_JPEG_MAGIC = b"\xff\xd8\xff"

# (oriented height, width) of the full image -> the network input (height, width) it gets.
NetworkSize = Callable[[int, int], tuple[int, int]]


def _flags(reduced: int) -> int:
    # The reduced flags include IMREAD_COLOR (BGR); cv2 refuses BGR and RGB together.
    colour = reduced if _RGB is None else (reduced & ~cv2.IMREAD_COLOR) | _RGB
    return colour | cv2.IMREAD_IGNORE_ORIENTATION


def _factor(height: int, width: int, target: tuple[int, int]) -> tuple[int, int] | None:
    """The largest (factor, flag) whose decoded size is still >= ``target`` on both sides."""
    for factor, flag in REDUCTIONS:
        if math.ceil(height / factor) >= target[0] and math.ceil(width / factor) >= target[1]:
            return factor, flag
    return None


def _read_jpeg(src: ImageSource) -> bytes | None:
    if isinstance(src, bytes | bytearray | memoryview):
        data = bytes(src)
    elif isinstance(src, str | os.PathLike) and Path(src).is_file():
        with Path(src).open("rb") as f:  # only a JPEG is read whole here
            head = f.read(3)
            data = head + f.read() if head == _JPEG_MAGIC else b""
    else:
        return None
    return data if data[:3] == _JPEG_MAGIC and complete_jpeg(data) else None


def _decode(data: bytes, target: NetworkSize, max_pixels: int, name: str) -> tuple | None:
    """(reduced RGB, full (height, width)) or None when a reduced decode does not apply."""
    with pil_limits(max_pixels), Image.open(io.BytesIO(data), formats=("JPEG",)) as im:
        if im.mode not in ("RGB", "L"):
            return None
        check_pixels(im.width, im.height, max_pixels, name)
        orientation = exif_orientation(im, name)
        stored = (im.height, im.width)
    full = stored[::-1] if orientation in (5, 6, 7, 8) else stored
    choice = _factor(*full, target(*full))
    if choice is None:
        return None
    factor, flag = choice
    arr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), _flags(flag))
    expected = (math.ceil(stored[0] / factor), math.ceil(stored[1] / factor))
    if arr is None or arr.shape[:2] != expected:
        return None
    if _RGB is None:
        cv2.cvtColor(arr, cv2.COLOR_BGR2RGB, dst=arr)
    return np.ascontiguousarray(orient(arr, orientation)), full


def load_reduced(
    src: ImageSource,
    target: NetworkSize,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    source: str | None = None,
) -> tuple[np.ndarray, tuple[int, int]]:
    """(RGB image, full (height, width)): a JPEG decoded reduced when that still covers the
    network input ``target(height, width)`` asks for, anything else by ``load_image``.

    The pixel cap and EXIF orientation apply as in ``load_image``; damaged or unusual files
    fall back to it, so its errors are the ones raised.
    """
    data = _read_jpeg(src)
    if data is not None:
        name = source or (str(src) if isinstance(src, str | os.PathLike) else "<bytes>")
        try:
            with quiet.capture(name):
                done = _decode(data, target, max_pixels, name)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
            done = None  # load_image decodes it again and reports the problem properly
        if done is not None:
            return done
        src, source = data, name
    rgb = load_image(src, max_pixels=max_pixels, source=source)
    return rgb, (rgb.shape[0], rgb.shape[1])
