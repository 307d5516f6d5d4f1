"""The MiDaS evaluation protocol: align in disparity space, cap, invert, score in depth space.

Relative models are right only up to a scale and a shift of their output (inverse depth or
disparity). As the MiDaS evaluation code does (``BadPixelMetric`` in the NYU script a MiDaS
author shared, gist.github.com/dvdhfnr/732c26b61a0e63a0abc8a5d769dbebd0), the prediction is
fitted by least squares to the ground truth's inverse depth over the valid pixels, the aligned
disparity is clamped from below at ``1 / depth_cap`` (so no pixel is farther than the cap, and
a negative aligned value cannot flip sign), inverted to depth, and scored against the
ground-truth depth: AbsRel, the share of pixels with ``max(d / d*, d* / d) < 1.25`` and RMSE.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from depthlite.geometry.align import fit_scale_shift
from depthlite.metrics import DELTA_THRESHOLD, absrel_delta1

__all__ = [
    "DELTA_THRESHOLD",
    "METRIC_FLOOR",
    "AlignmentError",
    "Scores",
    "align_depth",
    "depth_scores",
    "prediction_disparity",
]

# Metric models' depths below this (metres) are taken as this before they are inverted: a
# zero would be an infinite disparity and wreck the fit.
METRIC_FLOOR = 1e-3
_METRIC_KIND = "metric_depth"


class AlignmentError(ValueError):
    """No scale and shift can be fitted (the prediction is constant over the valid pixels)."""


@dataclass(frozen=True)
class Scores:
    """Depth error over the valid pixels: AbsRel, delta<1.25 (a share, 0..1), RMSE."""

    absrel: float
    delta1: float
    rmse: float

    def to_json(self) -> dict[str, float]:
        return asdict(self)


def depth_scores(prediction: np.ndarray, truth: np.ndarray) -> Scores:
    """Scores of predicted depths against true depths (same-size arrays; truth > 0).

    A prediction <= 0 is never within 1.25 of a positive depth; it still counts in AbsRel and
    RMSE by its distance.
    """
    pred = np.asarray(prediction, dtype=np.float64).ravel()
    gt = np.asarray(truth, dtype=np.float64).ravel()
    if pred.shape != gt.shape or pred.size == 0:
        raise ValueError(f"need equal, non-empty arrays, got {pred.size} and {gt.size} values")
    absrel, delta1 = absrel_delta1(pred, gt)
    rmse = float(np.sqrt(np.mean((pred - gt) ** 2)))
    return Scores(absrel=absrel, delta1=delta1, rmse=rmse)


def prediction_disparity(prediction: np.ndarray, kind: str) -> np.ndarray:
    """The prediction in disparity space: relative outputs as they are, metric depth inverted."""
    values = np.asarray(prediction, dtype=np.float64)
    if kind == _METRIC_KIND:
        return 1.0 / np.maximum(values, METRIC_FLOOR)
    return values


def align_depth(
    disparity: np.ndarray, truth: np.ndarray, depth_cap: float
) -> tuple[np.ndarray, float, float]:
    """(aligned depth, scale, shift): ``disparity`` fitted to ``1 / truth``, capped, inverted.

    Both arrays hold the valid pixels only. Raises :class:`AlignmentError` when the fit has no
    unique answer or the prediction is not finite.
    """
    x = np.asarray(disparity, dtype=np.float64).ravel()
    gt = np.asarray(truth, dtype=np.float64).ravel()
    if depth_cap <= 0:
        raise ValueError(f"depth_cap must be > 0, got {depth_cap}")
    bad = np.count_nonzero(~np.isfinite(x))
    if bad:
        raise AlignmentError(f"the prediction is not finite at {bad} valid pixel(s)")
    try:
        scale, shift = fit_scale_shift(x, 1.0 / gt)
    except ValueError as exc:
        raise AlignmentError(f"no scale and shift fits the prediction: {exc}") from None
    aligned = np.maximum(scale * x + shift, 1.0 / depth_cap)
    return 1.0 / aligned, scale, shift
