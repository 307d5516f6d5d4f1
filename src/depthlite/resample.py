"""The official float64 cubic resize (``cv2.resize(image / max, ..., INTER_CUBIC)``), cheaper.

cv2 resizes separably: a horizontal pass on every source row a destination row needs, then a
vertical 4-tap sum. A downscale needs only 4 source rows per output row, so a 1080-row photo
resized to 128 rows uses 512 of its rows: converting and resizing the other 568 horizontally
is wasted. Here only the rows the vertical taps touch are converted to float64 and resized
horizontally (by cv2 itself, in blocks), and the vertical sum is done in numpy with cv2's
coefficients and cv2's order of operations, so the result is the same to the last bit (tested
against ``cv2.resize`` over hundreds of random sizes, upscales included).

cv2's taps (``resize.cpp``, generic path for CV_64F): the source position of output row ``d``
is ``float((d + 0.5) * scale - 0.5)`` with ``scale = 1 / (dst / src)``; the row below it is
``floor``, the fraction goes through ``interpolateCubic`` (A = -0.75) in float32, the four
rows ``floor - 1 .. floor + 2`` are clamped to the image, and each output is
``((S0*b0 + S1*b1) + S2*b2) + S3*b3`` in float64.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from depthlite.parallel import run_split, usable_cores

__all__ = ["cubic_taps", "network_input", "resize_float32", "resize_float64"]

# Rows converted to float64 at a time: the whole photo in float64 would be 50 MB at 1080p and
# about 1 GB at the 40 MP cap.
ROW_BLOCK = 64

# x / 255 for every 8-bit value, computed once by numpy: a table lookup gives the very same
# float64 values as dividing, in one pass instead of two.
_UNIT_8BIT = np.arange(256, dtype=np.float64).reshape(1, 256) / 255.0
_UNIT_8BIT.flags.writeable = False

_F = np.float32
_BANDS = 2
# Output rows per vertical block of ``network_input`` (MiDaS small keep_aspect: one block). Fewer
# rows measured slower (16: +7 % CPU time, per-call overhead), no page-fault difference.
_OUT_ROWS = 128
# Row selection is used when 4 taps per output row cover at most this share of the rows.
_SELECT_SHARE = 0.75


def cubic_taps(src: int, dst: int) -> tuple[np.ndarray, np.ndarray]:
    """cv2's INTER_CUBIC taps along one axis: (dst, 4) clamped source indices and weights.

    The weights are cv2's float32 coefficients, widened to float64 as its float64 path does.
    """
    scale = 1.0 / (dst / src)
    pos = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    below = np.floor(pos)
    x = pos - below  # float32, as cv2's ``fx -= sx``
    a, one = _F(-0.75), _F(1)
    x1, rest = x + one, one - x
    c0 = ((a * x1 - _F(5) * a) * x1 + _F(8) * a) * x1 - _F(4) * a
    c1 = ((a + _F(2)) * x - (a + _F(3))) * x * x + one
    c2 = ((a + _F(2)) * rest - (a + _F(3))) * rest * rest + one
    c3 = one - c0 - c1 - c2
    taps = below.astype(np.int64)[:, None] + np.arange(-1, 3)
    weights = np.stack([c0, c1, c2, c3], axis=1).astype(np.float64)
    return np.clip(taps, 0, src - 1), weights


def _to_unit_float64(block: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Pixels / max value (255 or 65535) as float64 into ``out``, exactly as ``block / max``."""
    if block.dtype == np.uint8:
        return cv2.LUT(block, _UNIT_8BIT, dst=out)
    return np.divide(block, 65535.0, out=out, dtype=np.float64)


def _horizontal(image: np.ndarray, rows: np.ndarray, narrow: np.ndarray, unit: np.ndarray) -> None:
    """The horizontal cubic pass of ``image[rows]`` in float64, a block of rows at a time.

    A vertical scale of 1 has the exact taps 0, 1, 0, 0, so cv2 resizing a block of rows to
    the same height is its horizontal pass alone; rows are independent, so blocks need no
    overlap. ``unit`` holds one block in float64 (made by the caller: a helper thread that
    allocates gets its own malloc arena, about 1 MB of resident memory kept for good).
    """
    width = narrow.shape[1]
    # Sorted unique rows without a gap (every row is needed): slices instead of a gather.
    contiguous = rows[-1] - rows[0] + 1 == len(rows)
    for top in range(0, len(rows), ROW_BLOCK):
        bottom = min(top + ROW_BLOCK, len(rows))
        source = image[rows[0] + top : rows[0] + bottom] if contiguous else image[rows[top:bottom]]
        block = _to_unit_float64(source, unit[: bottom - top])
        dst = narrow[top:bottom]  # contiguous rows: cv2 writes in place, no copy
        out = cv2.resize(block, (width, bottom - top), dst=dst, interpolation=cv2.INTER_CUBIC)
        if out is not dst:  # cv2 reallocated (it should not): keep the values anyway
            dst[...] = out


def _narrow(image: np.ndarray, height: int, width: int) -> tuple[np.ndarray, ...]:
    """The horizontal pass of the rows the vertical taps need: (narrow, where, weights).

    ``narrow[where[d, k]]`` is the horizontally resized source row of tap ``k`` of output row
    ``d``; ``weights[d, k]`` its vertical weight.
    """
    needed, where, weights = _row_plan(image.shape[0], height)
    return _horizontal_rows(image, needed, width), where, weights


@functools.lru_cache(maxsize=64)
def _row_plan(rows: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows needed, tap -> index into them, weights) for ``rows`` -> ``height``: the same
    few sizes come again and again (one camera, one network input), so it is kept."""
    taps, weights = cubic_taps(rows, height)
    needed, where = np.unique(taps, return_inverse=True)
    plan = (needed, where.reshape(taps.shape), weights)
    for part in plan:
        part.setflags(write=False)  # shared by every caller through the cache
    return plan


def _horizontal_rows(image: np.ndarray, needed: np.ndarray, width: int) -> np.ndarray:
    """``_horizontal`` of the rows ``needed``, in two bands on two cores when enabled."""
    narrow = np.empty((len(needed), width, image.shape[2]), dtype=np.float64)
    block = (min(ROW_BLOCK, len(needed)), *image.shape[1:])
    if _BANDS > 1 and len(needed) >= 2 * ROW_BLOCK and usable_cores() > 1:
        # Two row bands on two cores (cv2 releases the GIL); the bands share nothing.
        half = len(needed) // 2 // ROW_BLOCK * ROW_BLOCK
        units = np.empty((2, *block), dtype=np.float64)
        run_split(
            lambda: _horizontal(image, needed[:half], narrow[:half], units[0]),
            [lambda: _horizontal(image, needed[half:], narrow[half:], units[1])],
        )
    else:
        _horizontal(image, needed, narrow, np.empty(block, dtype=np.float64))
    return narrow


def _vertical(narrow: np.ndarray, where: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """cv2's vertical sum ``((S0*b0 + S1*b1) + S2*b2) + S3*b3`` for a few output rows."""
    out = np.take(narrow, where[:, 0], axis=0)
    out *= weights[:, 0, None, None]
    term = np.empty_like(out)
    for k in (1, 2, 3):
        np.take(narrow, where[:, k], axis=0, out=term)
        term *= weights[:, k, None, None]
        out += term
    return out


def resize_float64(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``cv2.resize(image / max, (width, height), interpolation=INTER_CUBIC)``, bit for bit.

    ``image`` is HxWxC uint8 or uint16 (max 255 or 65535); the result is float64.
    """
    if not _selects_rows(image.shape[0], height):
        narrow = _horizontal_rows(image, np.arange(image.shape[0]), width)
        return cv2.resize(narrow, (width, height), interpolation=cv2.INTER_CUBIC)
    narrow, where, weights = _narrow(image, height, width)
    return _vertical(narrow, where, weights)


def _selects_rows(rows: int, height: int) -> bool:
    """Whether the vertical taps leave out enough rows to pay for the numpy vertical pass.

    When they need (nearly) every row (1080 -> 256), cv2's own vertical pass is as fast, and
    the larger transients of the numpy one made glibc give the heap back and fault it in
    again on every call (1600 page faults per 1080p image, measured).
    """
    return 4 * height <= _SELECT_SHARE * rows


def network_input(
    image: np.ndarray,
    height: int,
    width: int,
    mean: tuple[float, float, float] | None = None,
    std: tuple[float, float, float] | None = None,
) -> np.ndarray:
    """float32 (1, 3, height, width): ``(resize_float64(image) - mean) / std``, transposed to
    channels first and cast, exactly as those steps one after the other.

    Done in blocks of output rows: the same elementwise operations on the same values, so the
    same bits, with one float64 temporary per block instead of four full-size ones.
    """
    shift = None if mean is None or std is None else (np.asarray(mean), np.asarray(std))
    if not _selects_rows(image.shape[0], height):
        img = resize_float64(image, height, width)
        if shift is not None:
            img = (img - shift[0]) / shift[1]
        return np.ascontiguousarray(np.transpose(img, (2, 0, 1))).astype(np.float32)[None]
    narrow, where, weights = _narrow(image, height, width)
    x = np.empty((1, image.shape[2], height, width), dtype=np.float32)
    for top in range(0, height, _OUT_ROWS):
        rows = slice(top, min(top + _OUT_ROWS, height))
        block = _vertical(narrow, where[rows], weights[rows])
        if shift is not None:
            block = (block - shift[0]) / shift[1]
        x[0, :, rows] = np.moveaxis(block, 2, 0)  # the float32 cast, as ``astype``
    return x


def resize_float32(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """The fast path's resize: the same cubic filter on float32 (not float64) pixels / max.

    About 1e-7 relative rounding instead of the official float64 arithmetic; after a reduced
    JPEG decode it samples an image the decoder already averaged down. Returns float32.
    """
    unit = image.astype(np.float32)
    unit *= np.float32(1.0 / 255.0 if image.dtype == np.uint8 else 1.0 / 65535.0)
    return cv2.resize(unit, (width, height), interpolation=cv2.INTER_CUBIC)
