"""Generated clips for the temporal-normaliser measurements (tests and ``benchmarks/``).

``depth_clip`` is a depth *sequence* (what the network would output), made to show what makes
per-frame min/max scaling flicker in real MiDaS videos: a slow pan over a smooth scene, a little
noise, and a few outlier pixels that come and go (specular highlights, sky, edges), which move
each frame's min and max. Halfway through, a scene cut jumps to a scene with a much wider and
shifted depth range. ``flicker`` and ``readaptation`` are the two figures the issue asks for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from depthlite.colorize import apply_palette

__all__ = ["DepthClip", "depth_clip", "flicker", "readaptation"]


@dataclass(frozen=True)
class DepthClip:
    frames: list[np.ndarray]
    cut: int  # index of the first frame of the second scene


def _scene(height: int, width: int, offset: float, lo: float, hi: float) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    xs = xs + offset
    field = 0.6 * ys / height + 0.25 * np.sin(xs / 23.0) * np.cos(ys / 17.0)
    field += 0.15 * np.exp(-(((xs % 160) - 80) ** 2 + (ys - height / 2) ** 2) / 600.0)
    field = (field - field.min()) / (field.max() - field.min())
    return (lo + (hi - lo) * field).astype(np.float32)


def depth_clip(
    frames: int = 90,
    cut: int = 45,
    size: tuple[int, int] = (120, 160),
    outliers: int = 6,
    seed: int = 0,
) -> DepthClip:
    """``frames`` depth maps; scene 1 spans ~[1, 3], scene 2 (from ``cut``) ~[4, 12]."""
    rng = np.random.default_rng(seed)
    height, width = size
    out = []
    for index in range(frames):
        lo, hi = (1.0, 3.0) if index < cut else (4.0, 12.0)
        depth = _scene(height, width, offset=0.5 * index, lo=lo, hi=hi)
        depth += rng.normal(0.0, 0.003 * (hi - lo), depth.shape).astype(np.float32)
        ys = rng.integers(0, height, outliers)
        xs = rng.integers(0, width, outliers)
        depth[ys, xs] = hi + rng.uniform(-0.5, 1.5, outliers).astype(np.float32) * (hi - lo)
        out.append(depth)
    return DepthClip(out, cut)


def flicker(levels: list[np.ndarray], colormap: str, skip: tuple[int, ...] = ()) -> float:
    """Mean absolute frame-to-frame change of the colour-mapped frames (0-255 scale).

    ``skip`` lists frame indices whose change from the previous frame is not counted (a cut,
    where every mapping must change).
    """
    colors = [apply_palette(level, colormap).astype(np.int16) for level in levels]
    changes = [
        float(np.abs(colors[i] - colors[i - 1]).mean())
        for i in range(1, len(colors))
        if i not in skip
    ]
    return float(np.mean(changes))


def readaptation(
    ranges: list[tuple[float, float]],
    clip: DepthClip,
    reference: Callable[[np.ndarray], tuple[float, float]],
    tolerance: float = 0.05,
) -> int | None:
    """Frames after the cut until the mapping stays within ``tolerance`` of the new scene's.

    ``reference`` gives a frame's own range (the robust percentiles); the mapping has
    re-adapted from the first frame after which every (lo, hi) is within ``tolerance`` of the
    reference range's width. None if it never does.
    """
    settled = None
    for index in range(clip.cut, len(ranges)):
        ref_lo, ref_hi = reference(clip.frames[index])
        width = ref_hi - ref_lo
        lo, hi = ranges[index]
        close = abs(lo - ref_lo) <= tolerance * width and abs(hi - ref_hi) <= tolerance * width
        if close and settled is None:
            settled = index - clip.cut
        elif not close:
            settled = None
    return settled
