"""Write depth maps to disk: colour PNG, 16-bit PNG, npy, PFM and an input | depth preview.

Every file is written atomically (:func:`depthlite.fsutil.atomic_path`), so an interrupted run
never leaves a half-written file under a final name and a re-run can trust whatever outputs
already exist. PNGs come from :mod:`depthlite.imageio.png`: the colour map is stored as a
palette PNG, about 3 times faster to write and smaller than cv2's RGB PNG, with the same pixels.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from depthlite.colorize import (
    DEFAULT_COLORMAP,
    apply_palette,
    colormap_id,
    normalize_minmax,
    palette,
)
from depthlite.fsutil import atomic_path
from depthlite.imageio.encode import to_uint8
from depthlite.imageio.png import encode_gray, encode_indexed, encode_rgb
from depthlite.options import check_choice

__all__ = [
    "OUTPUT_FORMATS",
    "OUTPUT_SUFFIX",
    "atomic_write_bytes",
    "encode_outputs",
    "output_path",
    "read_pfm",
    "side_by_side",
    "to_png16",
    "write_outputs",
    "write_pfm",
]

logger = logging.getLogger(__name__)

OUTPUT_FORMATS: tuple[str, ...] = ("color", "png16", "npy", "pfm", "side")
# The single source of truth for output names; inputs.py skips files ending with these when it
# expands a folder, so re-running over a folder never processes its own outputs.
OUTPUT_SUFFIX: dict[str, str] = {
    "color": "_color.png",
    "png16": "_depth16.png",
    "npy": ".npy",
    "pfm": ".pfm",
    "side": "_side.png",
}

_PFM_DIMS = re.compile(rb"^(\d+)\s+(\d+)\s*$")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`depthlite.fsutil.atomic_path`)."""
    with atomic_path(Path(path)) as tmp, tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        # Without fsync a power cut after the rename can leave an empty file in its place.
        os.fsync(fh.fileno())


def to_png16(depth: np.ndarray) -> np.ndarray:
    """The official 16-bit depth PNG pixels (``write_depth(bits=2)``)."""
    return normalize_minmax(_check_depth(depth), bits=2)


def _pfm_bytes(depth: np.ndarray) -> bytes:
    arr = np.asarray(depth)
    if arr.ndim == 3 and arr.shape[2] in (1, 3):
        colour = arr.shape[2] == 3
    elif arr.ndim == 2:
        colour = False
    else:
        raise ValueError(f"PFM needs HxW, HxWx1 or HxWx3 data, got shape {arr.shape}")
    height, width = arr.shape[:2]
    # Always little-endian, announced by the negative scale; "%f" matches the official header.
    header = b"PF\n" if colour else b"Pf\n"
    header += b"%d %d\n" % (width, height)
    header += b"%f\n" % -1.0
    return header + np.flipud(arr).astype("<f4").tobytes()


def write_pfm(path: Path, depth: np.ndarray) -> None:
    """Write a PFM exactly as the official ``write_pfm`` lays it out (bottom row first)."""
    atomic_write_bytes(Path(path), _pfm_bytes(depth))


def read_pfm(path: Path) -> np.ndarray:
    """Read a PFM into a float32 array (HxW or HxWx3), top row first; the scale is ignored."""
    with Path(path).open("rb") as fh:
        kind = fh.readline().rstrip()
        if kind not in (b"PF", b"Pf"):
            raise ValueError(f"{path}: not a PFM file")
        dims = _PFM_DIMS.match(fh.readline())
        if dims is None:
            raise ValueError(f"{path}: malformed PFM header")
        width, height = int(dims.group(1)), int(dims.group(2))
        scale = float(fh.readline().strip())
        data = fh.read()
    channels = 3 if kind == b"PF" else 1
    dtype = np.dtype("<f4" if scale < 0 else ">f4")
    expected = width * height * channels
    if len(data) != expected * dtype.itemsize:
        raise ValueError(f"{path}: PFM data has {len(data)} bytes, expected {expected * 4}")
    arr = np.frombuffer(data, dtype=dtype).astype(np.float32)
    shape = (height, width, 3) if channels == 3 else (height, width)
    return np.ascontiguousarray(np.flipud(arr.reshape(shape)))


def side_by_side(image_rgb: np.ndarray, color_rgb: np.ndarray) -> np.ndarray:
    """The input and its colour map next to each other, as one 8-bit RGB image.

    The colour map is resized (keeping its aspect) if its height differs from the image's.
    """
    image = to_uint8(np.asarray(image_rgb))
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    color = np.asarray(color_rgb)
    if image.ndim != 3 or image.shape[2] != 3 or color.ndim != 3 or color.shape[2] != 3:
        raise ValueError(f"expected RGB images, got shapes {image.shape} and {color.shape}")
    color = to_uint8(color)
    height = image.shape[0]
    if color.shape[0] != height:
        width = max(1, round(color.shape[1] * height / color.shape[0]))
        color = cv2.resize(color, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(np.hstack([image, color]))


def output_path(out_dir: Path, relative: Path, fmt: str) -> Path:
    """Where format ``fmt`` of the input with output stem ``relative`` is written."""
    check_choice("output format", fmt, OUTPUT_FORMATS)
    relative = Path(relative)
    # Appending, not with_suffix: stems such as "scan.v2" must keep their dots.
    return Path(out_dir) / relative.parent / f"{relative.name}{OUTPUT_SUFFIX[fmt]}"


def _check_depth(depth: np.ndarray) -> np.ndarray:
    arr = np.asarray(depth)
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"depth must be a non-empty HxW array, got shape {arr.shape}")
    return arr


def _npy_bytes(depth: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(depth, dtype=np.float32))
    return buf.getvalue()


def encode_outputs(
    depth: np.ndarray,
    image_rgb: np.ndarray | None,
    formats: Sequence[str],
    colormap: str = DEFAULT_COLORMAP,
    *,
    near_is_larger: bool = True,
) -> dict[str, bytes]:
    """The bytes of each output format, in ``formats`` order (the files' and the API's content).

    Options are validated before anything is encoded. ``image_rgb`` is only needed for "side".
    Colour maps and 16-bit PNGs are "near is bright" for every output kind: metric depth
    (``near_is_larger=False``) is mapped negated; npy and pfm keep the raw values.
    """
    # Every output derives from the same float32 values the npy/pfm files store; the official
    # 8/16-bit maps are defined on float32 depth, and float64 can round one level differently.
    depth = _check_depth(depth).astype(np.float32, copy=False)
    wanted = list(dict.fromkeys(check_choice("output format", f, OUTPUT_FORMATS) for f in formats))
    colormap_id(colormap)
    if "side" in wanted and image_rgb is None:
        raise ValueError('the "side" output needs the input image')
    # Computed at most once, and only when a format needs it.
    visual = depth if near_is_larger else np.negative(depth)
    gray8 = functools.cache(lambda: normalize_minmax(visual, bits=1))
    encoded: dict[str, bytes] = {}
    for fmt in wanted:
        if fmt == "color":
            encoded[fmt] = encode_indexed(gray8(), palette(colormap))
        elif fmt == "png16":
            encoded[fmt] = encode_gray(to_png16(visual))
        elif fmt == "npy":
            encoded[fmt] = _npy_bytes(depth)
        elif fmt == "pfm":
            encoded[fmt] = _pfm_bytes(depth)
        else:
            # colorize(depth), reusing the one normalisation.
            color = apply_palette(gray8(), colormap)
            encoded[fmt] = encode_rgb(side_by_side(image_rgb, color))  # type: ignore[arg-type]
    return encoded


def write_outputs(  # noqa: PLR0917 - positional signature is the agreed cross-module API
    depth: np.ndarray,
    image_rgb: np.ndarray | None,
    out_dir: Path,
    relative: Path,
    formats: Sequence[str],
    colormap: str = DEFAULT_COLORMAP,
    *,
    near_is_larger: bool = True,
) -> list[Path]:
    """Write ``depth`` in each of ``formats``; return the paths written, in ``formats`` order.

    Everything is encoded before the first file is written, so a bad format or colour map never
    leaves a partial set of outputs.
    """
    written: list[Path] = []
    encoded = encode_outputs(depth, image_rgb, formats, colormap, near_is_larger=near_is_larger)
    for fmt, data in encoded.items():
        path = output_path(out_dir, relative, fmt)
        atomic_write_bytes(path, data)
        logger.debug("wrote %s", path)
        written.append(path)
    return written
