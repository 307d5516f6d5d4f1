"""Depth-to-image conversions: the official min-max normalisation and cv2 colour maps.

``normalize_minmax`` reproduces ``write_depth`` of the reference MiDaS ``utils.py`` bit for
bit (arithmetic in the depth's own dtype, truncating casts), so 16-bit PNGs and colour maps
match files written by the official code exactly.

A cv2 colour map of an 8-bit image is a 256-entry lookup table: :func:`palette` exposes that
table, so writers can store a colour map as a palette PNG (the 8-bit image plus 256 colours)
and every colour image here is that palette indexed by the 8-bit image.
"""

from __future__ import annotations

import functools
import logging

import cv2
import numpy as np

from depthlite.normalize import scale_levels
from depthlite.options import check_choice

__all__ = [
    "COLORMAPS",
    "DEFAULT_COLORMAP",
    "apply_palette",
    "colorize",
    "colorize_normalized",
    "colormap_id",
    "display_depth",
    "normalize_minmax",
    "palette",
]

logger = logging.getLogger(__name__)

_PREFIX = "COLORMAP_"

# Built from whatever this cv2 build ships, so the CLI never offers a map cv2 lacks.
COLORMAPS: dict[str, int] = {
    name[len(_PREFIX) :].lower(): int(getattr(cv2, name))
    for name in sorted(dir(cv2))
    if name.startswith(_PREFIX) and isinstance(getattr(cv2, name), int)
}
DEFAULT_COLORMAP = "inferno"


def colormap_id(colormap: str) -> int:
    """The cv2 constant of a colour map name (case-insensitive); InvalidOptionError if unknown."""
    name = check_choice("colormap", colormap.lower(), tuple(COLORMAPS))
    return COLORMAPS[name]


def display_depth(
    depth: np.ndarray, near_is_larger: bool, *, out: np.ndarray | None = None
) -> np.ndarray:
    """The values every "near is bright" image is drawn from: the depth itself where nearer
    is larger (inverse depth, disparity), negated where farther is larger (metric depth).

    The one place that negation happens (colour maps, 16-bit PNGs, video, live frames).
    ``out`` (e.g. ``depth`` itself) receives the negation instead of a new array.
    """
    if near_is_larger:
        if out is not None and out is not depth:
            np.copyto(out, depth)
            return out
        return depth
    return np.negative(depth, out=out)


def normalize_minmax(depth: np.ndarray, bits: int) -> np.ndarray:
    """Scale ``depth`` to the full unsigned range of ``bits`` bytes (1 -> uint8, 2 -> uint16).

    A constant map becomes zeros. Non-finite values are replaced by 0 first, as the newer
    official ``write_depth`` does, instead of poisoning the min and max.
    """
    depth = np.asarray(depth)
    if depth.size == 0:
        raise ValueError("cannot normalise an empty depth map")
    lo, hi = depth.min(), depth.max()
    # NaN propagates to the min and max, and an infinity is one of them: no separate pass.
    if not (np.isfinite(lo) and np.isfinite(hi)):
        logger.warning("depth map has non-finite values; they are written as 0")
        depth = np.nan_to_num(depth, nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = depth.min(), depth.max()
    return scale_levels(depth, lo, hi, bits, clip=False)


def _check_2d(arr: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim != 2:
        raise ValueError(f"{what} must be a 2-D HxW array, got shape {arr.shape}")
    return arr


@functools.cache
def _palette(cv2_id: int) -> np.ndarray:
    levels = np.arange(256, dtype=np.uint8).reshape(256, 1)
    # cv2 returns BGR; the palette is RGB like every other array in depthlite.
    table = np.ascontiguousarray(cv2.applyColorMap(levels, cv2_id)[:, 0, ::-1])
    table.setflags(write=False)  # shared by every caller through the cache
    return table


def palette(colormap: str = DEFAULT_COLORMAP) -> np.ndarray:
    """The 256 RGB colours of a colour map: level ``i`` of an 8-bit image becomes row ``i``.

    The (256, 3) uint8 array is cached per map and read-only; copy it to modify it.
    """
    return _palette(colormap_id(colormap))


def apply_palette(gray8: np.ndarray, colormap: str = DEFAULT_COLORMAP) -> np.ndarray:
    """HxWx3 uint8 RGB ``palette(colormap)[gray8]`` of an HxW uint8 image, bit for bit.

    cv2 with the palette as a user colour map does the lookup about 20 times faster than numpy
    fancy indexing (1 ms instead of 25 ms at 1080p), and yields RGB directly.
    """
    gray8 = _check_2d(gray8, "gray8")
    if gray8.dtype != np.uint8:
        raise ValueError(f"gray8 must be uint8, got {gray8.dtype}")
    table = palette(colormap).reshape(256, 1, 3)
    return cv2.applyColorMap(np.ascontiguousarray(gray8), table)


def colorize(depth: np.ndarray, colormap: str = DEFAULT_COLORMAP) -> np.ndarray:
    """HxWx3 uint8 RGB colour map of a depth map, min-max normalised like the official code."""
    colormap_id(colormap)  # fail on a bad name before doing any work
    return apply_palette(normalize_minmax(_check_2d(depth, "depth"), bits=1), colormap)


def colorize_normalized(norm01: np.ndarray, colormap: str = DEFAULT_COLORMAP) -> np.ndarray:
    """Colour map of values already scaled to [0, 1] by the caller (e.g. a video normaliser).

    Values are clipped to [0, 1], NaN counts as 0, and the 8-bit level is truncated like the
    official code's ``np.uint8(out)``, so ``colorize`` and this agree on the same scaling.
    """
    colormap_id(colormap)
    norm = np.nan_to_num(_check_2d(norm01, "norm01").astype(np.float32), nan=0.0)
    gray8 = (np.clip(norm, 0.0, 1.0) * 255).astype(np.uint8)
    return apply_palette(gray8, colormap)
