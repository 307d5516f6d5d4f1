"""Depth-to-levels scaling for streams: per-frame (official) or temporal (no flicker).

MiDaS predicts *relative* inverse depth: each frame's scale and shift are arbitrary, so scaling
every frame by its own min/max (the official ``write_depth``) makes colours jump from frame to
frame, and one hot pixel moves the whole frame. :class:`TemporalNormalizer` keeps per-stream
state instead:

* the range is taken at robust percentiles (default 2 and 98), not at min/max;
* it is smoothed over time with an exponential moving average (``smoothing`` is the weight of
  the past: 0.9 follows a change with a time constant of about 10 frames);
* a scene cut resets it at once. A cut is a frame whose percentiles leave the smoothed range by
  more than ``cut_threshold`` of its width, or whose depth *layout* (a 32x32 thumbnail scaled by
  its own percentiles) changed by more than half of ``cut_threshold`` on average;
* ``mode="per-frame"`` is exactly the official min/max scaling, for comparison.

Optionally the depth itself is smoothed over time (``depth_smoothing``, off by default: it
trails moving objects). Every stream (a video file, a WebSocket connection) makes its own
normaliser; there is no shared state.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from depthlite.errors import InvalidOptionError
from depthlite.options import check_choice
from depthlite.parallel import run_split, usable_cores

__all__ = [
    "DEFAULT_PERCENTILES",
    "DEFAULT_SMOOTHING",
    "NORMALIZER_MODES",
    "FrameRange",
    "NormalizerOptions",
    "TemporalNormalizer",
    "parse_percentiles",
    "scale_levels",
]

logger = logging.getLogger(__name__)

NORMALIZER_MODES = ("temporal", "per-frame")
DEFAULT_PERCENTILES = (2.0, 98.0)
DEFAULT_SMOOTHING = 0.9
DEFAULT_CUT_THRESHOLD = 0.5
# Percentiles are taken on at most about this many samples (a strided view): exact enough for
# a colour range, and 1080p frames cost well under a millisecond.
_MAX_SAMPLES = 1 << 16
_THUMB = 32
# Rows scaled at a time by ``scale_levels``.
_BLOCK_ROWS = 64
# Maps at least this large are scaled in two row bands (a 1080p map is 2 MP).
_SPLIT_PIXELS = 1 << 20
_BANDS_ON = True


def scale_levels(
    depth: np.ndarray, lo: float, hi: float, bits: int, *, clip: bool = True
) -> np.ndarray:
    """``depth`` scaled so ``lo`` -> 0 and ``hi`` -> the top of ``bits`` bytes, clipped.

    The arithmetic is the official ``write_depth``'s, ``max * (depth - lo) / (hi - lo)`` in the
    depth's own dtype with a truncating cast, so ``lo, hi = depth.min(), depth.max()``
    reproduces it bit for bit (and ``clip=False`` skips a pass that is a no-op then). A range
    narrower than float64's epsilon gives zeros, as there. Float maps are done a block of rows
    at a time: the same operations on every element, without two full-size float temporaries
    (16 MB at 1080p, once the peak of ``depthlite predict``).
    """
    if bits not in (1, 2):
        raise ValueError(f"bits must be 1 or 2, not {bits}")
    depth = np.asarray(depth)
    dtype = depth.dtype.type
    low, high = dtype(lo), dtype(hi)
    max_val = 2 ** (8 * bits) - 1
    out_type = np.uint8 if bits == 1 else np.uint16
    if not high - low > np.finfo("float").eps:
        return np.zeros(depth.shape, dtype=out_type)
    if depth.dtype not in (np.float32, np.float64) or depth.ndim != 2:
        # Integer maps promote to float64 in the official formula: keep it as written.
        whole = max_val * (depth - low) / (high - low)
        if clip:
            np.clip(whole, 0, max_val, out=whole)
        return whole.astype(out_type)
    out = np.empty(depth.shape, dtype=out_type)
    levels = (low, high - low, dtype(max_val), clip)
    block_shape = (min(_BLOCK_ROWS, depth.shape[0]), depth.shape[1])
    rows = depth.shape[0]
    if _BANDS_ON and depth.size >= _SPLIT_PIXELS and rows >= 2 * _BLOCK_ROWS and usable_cores() > 1:
        # Two row bands on two cores (numpy releases the GIL); the same operations per element.
        half = rows // 2 // _BLOCK_ROWS * _BLOCK_ROWS
        blocks = np.empty((2, *block_shape), depth.dtype)  # made here, not on the helper
        run_split(
            lambda: _scale_rows(depth[:half], out[:half], blocks[0], levels),
            [lambda: _scale_rows(depth[half:], out[half:], blocks[1], levels)],
        )
    else:
        _scale_rows(depth, out, np.empty(block_shape, depth.dtype), levels)
    return out


def _scale_rows(depth: np.ndarray, out: np.ndarray, block: np.ndarray, levels: tuple) -> None:
    """``scale_levels``'s formula a block of rows at a time; ``levels``: (low, span, top, clip)."""
    low, span, top, clip = levels
    for start in range(0, depth.shape[0], _BLOCK_ROWS):
        rows = depth[start : start + _BLOCK_ROWS]
        tmp = block[: rows.shape[0]]
        np.subtract(rows, low, out=tmp)
        np.multiply(top, tmp, out=tmp)
        np.divide(tmp, span, out=tmp)
        if clip:
            np.clip(tmp, 0, top, out=tmp)
        np.copyto(out[start : start + _BLOCK_ROWS], tmp, casting="unsafe")


def parse_percentiles(text: str) -> tuple[float, float]:
    """``"2,98"`` -> ``(2.0, 98.0)``; InvalidOptionError with the expected form otherwise."""
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise InvalidOptionError(
            f"percentiles must be LOW,HIGH (e.g. 2,98), not {text!r}"
        ) from None
    return low, high


@dataclass(frozen=True)
class FrameRange:
    """What the normaliser decided for one frame: the range mapped to [0, top]."""

    lo: float
    hi: float
    cut: bool  # a scene cut was detected at this frame (the range was reset)


@dataclass(frozen=True)
class NormalizerOptions:
    """How a stream's depth is scaled for display; see the module docstring."""

    mode: str = "temporal"
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES
    smoothing: float = DEFAULT_SMOOTHING
    cut_threshold: float = DEFAULT_CUT_THRESHOLD
    depth_smoothing: float = 0.0

    def __post_init__(self) -> None:
        check_choice("normalizer mode", self.mode, NORMALIZER_MODES)
        low, high = self.percentiles
        if not 0.0 <= low < high <= 100.0:
            raise InvalidOptionError(
                f"percentiles must be two numbers with 0 <= low < high <= 100, got {low}, {high}"
            )
        for name in ("smoothing", "depth_smoothing"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise InvalidOptionError(
                    f"{name.replace('_', '-')} must be in [0, 1) (the weight of the past "
                    f"frames), got {value}"
                )
        if not self.cut_threshold > 0:
            raise InvalidOptionError(f"cut threshold must be > 0, got {self.cut_threshold}")


def _finite(depth: np.ndarray) -> np.ndarray:
    if np.isfinite(depth).all():
        return depth
    logger.debug("depth frame has non-finite values; they count as 0")
    return np.nan_to_num(depth, nan=0.0, posinf=0.0, neginf=0.0)


def _sample(depth: np.ndarray) -> np.ndarray:
    stride = max(1, int(np.ceil(np.sqrt(depth.size / _MAX_SAMPLES))))
    return depth[::stride, ::stride]


class TemporalNormalizer:
    """Per-stream scaling of depth frames to 8- or 16-bit levels; not shared between streams.

    Not thread-safe: one stream feeds its frames in order from one thread at a time.
    """

    def __init__(self, options: NormalizerOptions | None = None) -> None:
        self.options = options or NormalizerOptions()
        self.frames = 0
        self.cuts = 0
        self._range: tuple[float, float] | None = None
        self._thumb: np.ndarray | None = None
        self._depth: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the stream so far (the next frame is scaled on its own)."""
        self._range = None
        self._thumb = None
        self._depth = None

    def levels(self, depth: np.ndarray, bits: int = 1) -> np.ndarray:
        """The next frame as uint8 (``bits=1``) or uint16 (``bits=2``) levels."""
        depth = self.smooth_depth(depth)  # float32, non-finite values already replaced
        frame = self._next_range(depth)
        return scale_levels(depth, frame.lo, frame.hi, bits)

    def smooth_depth(self, depth: np.ndarray) -> np.ndarray:
        """``depth`` averaged with the past frames if ``depth_smoothing`` > 0, else as is.

        The average restarts at a new frame size; a scene cut restarts it on the next frame.
        """
        weight = self.options.depth_smoothing
        depth = _finite(np.asarray(depth, dtype=np.float32))
        if weight == 0.0 or self._depth is None or self._depth.shape != depth.shape:
            self._depth = depth.copy() if weight else None
            return depth
        self._depth *= weight
        self._depth += (1.0 - weight) * depth
        return self._depth.copy()

    def update(self, depth: np.ndarray) -> FrameRange:
        """Feed one frame; returns the range it is to be scaled with."""
        return self._next_range(_finite(np.asarray(depth)))

    def _next_range(self, depth: np.ndarray) -> FrameRange:
        self.frames += 1
        if self.options.mode == "per-frame":
            return FrameRange(float(depth.min()), float(depth.max()), cut=False)
        sample = _sample(depth)
        low, high = (float(v) for v in np.percentile(sample, self.options.percentiles))
        thumb = self._thumbnail(depth, low, high)
        cut = self._is_cut(low, high, thumb)
        if self._range is None or cut:
            self._range = (low, high)
            if cut:
                self.cuts += 1
                self._depth = None
                logger.debug("scene cut at frame %d: range reset", self.frames)
        else:
            past = self.options.smoothing
            old_low, old_high = self._range
            self._range = (
                past * old_low + (1.0 - past) * low,
                past * old_high + (1.0 - past) * high,
            )
        self._thumb = thumb
        return FrameRange(*self._range, cut=cut)

    @staticmethod
    def _thumbnail(depth: np.ndarray, low: float, high: float) -> np.ndarray:
        small = cv2.resize(depth.astype(np.float32), (_THUMB, _THUMB), interpolation=cv2.INTER_AREA)
        span = high - low if high - low > 1e-12 else 1.0
        return np.clip((small - low) / span, 0.0, 1.0)

    def _is_cut(self, low: float, high: float, thumb: np.ndarray) -> bool:
        if self._range is None or self._thumb is None:
            return False
        old_low, old_high = self._range
        width = max(old_high - old_low, 1e-12)
        jump = max(abs(low - old_low), abs(high - old_high)) / width
        change = float(np.abs(thumb - self._thumb).mean())
        threshold = self.options.cut_threshold
        return jump > threshold or change > threshold / 2
