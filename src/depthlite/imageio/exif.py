"""The EXIF facts 3-D outputs need (focal length, sensor density), read apart from the pixels.

Only commands that make point clouds or normals call this, so decoding an image for a depth
map pays nothing for it. PIL parses just the header: no pixel is decoded. A file without EXIF,
or with an EXIF block PIL cannot parse, gives None (the intrinsics then fall back, with a
warning there).
"""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from depthlite.geometry.intrinsics import ExifFocal
from depthlite.imageio.decode import register_plugins

__all__ = ["read_exif_focal"]

logger = logging.getLogger(__name__)

_IFD_EXIF = 0x8769
_ORIENTATION = 0x0112
_FOCAL_LENGTH = 0x920A
_FOCAL_35MM = 0xA405
_PLANE_X_RESOLUTION = 0xA20E
_PLANE_UNIT = 0xA210
_PIXEL_X_DIMENSION = 0xA002


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if np.isfinite(number) else None


def _facts(im: Image.Image) -> ExifFocal | None:
    exif = im.getexif()
    sub = exif.get_ifd(_IFD_EXIF)
    if not sub:
        return None
    unit = _number(sub.get(_PLANE_UNIT))
    pixels = _number(sub.get(_PIXEL_X_DIMENSION))
    orientation = _number(exif.get(_ORIENTATION))
    return ExifFocal(
        focal_35mm=_number(sub.get(_FOCAL_35MM)),
        focal_mm=_number(sub.get(_FOCAL_LENGTH)),
        plane_x_resolution=_number(sub.get(_PLANE_X_RESOLUTION)),
        plane_unit=int(unit) if unit is not None else None,
        pixel_x_dimension=int(pixels) if pixels and pixels > 0 else None,
        orientation=int(orientation) if orientation is not None else 1,
    )


def read_exif_focal(src: object, source: str | None = None) -> ExifFocal | None:
    """The focal-length facts of an image path, encoded bytes or PIL image (None: none)."""
    register_plugins()
    try:
        if isinstance(src, Image.Image):
            return _facts(src)
        if isinstance(src, str | os.PathLike):
            with Image.open(Path(src)) as im:
                return _facts(im)
        if isinstance(src, bytes | bytearray | memoryview):
            with Image.open(io.BytesIO(src)) as im:
                return _facts(im)
    except Exception as exc:  # any parser error: the pixels were fine, the EXIF is not
        logger.debug("%s: no usable EXIF (%s)", source or "image", exc)
    return None
