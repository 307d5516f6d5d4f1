"""Run a model over a dataset and score every image; one bad sample never stops the others."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from depthlite.errors import InputError
from depthlite.estimator import DepthEstimator
from depthlite.evaluation.dataset import Dataset, Sample
from depthlite.evaluation.groundtruth import GroundTruth, read_ground_truth
from depthlite.evaluation.metrics import (
    AlignmentError,
    Scores,
    align_depth,
    depth_scores,
    prediction_disparity,
)

__all__ = [
    "PROTOCOL",
    "ImageResult",
    "PredictionScores",
    "Report",
    "evaluate",
    "evaluate_dataset",
    "evaluate_sample",
    "score_prediction",
]

logger = logging.getLogger(__name__)

_METRIC_KIND = "metric_depth"
# What the numbers mean, stated once: JSON reports carry it.
PROTOCOL = (
    "least-squares scale and shift of the prediction in disparity space (metric depth is "
    "inverted first) against 1/ground-truth depth over the valid pixels; aligned disparity "
    "clamped below at 1/depth_cap; inverted to depth; AbsRel, delta<1.25, RMSE per image, "
    "then averaged over images"
)
# Ground truth stored at another resolution than the image (half-size depth, say) is fine;
# another shape is a pairing mistake.
_ASPECT_TOLERANCE = 0.01


@dataclass(frozen=True)
class PredictionScores:
    """One image's scores: after alignment (always) and as predicted (metric models only)."""

    valid_pixels: int
    depth_cap: float
    scale: float
    shift: float
    aligned: Scores
    metric: Scores | None

    def to_json(self) -> dict[str, Any]:
        return {
            "valid_pixels": self.valid_pixels,
            "depth_cap": self.depth_cap,
            "scale": self.scale,
            "shift": self.shift,
            "aligned": self.aligned.to_json(),
            "metric": None if self.metric is None else self.metric.to_json(),
        }


def score_prediction(
    prediction: np.ndarray, kind: str, truth: GroundTruth, *, depth_cap: float | None = None
) -> PredictionScores:
    """Score a prediction (the model's output at the ground truth's size) against ``truth``.

    ``kind`` is the model's output kind (``DepthResult.kind``). ``depth_cap`` defaults to the
    largest valid ground-truth depth. Metric predictions are also scored as they are when the
    ground truth is in metres. Raises :class:`AlignmentError` when no fit exists.
    """
    pred = np.asarray(prediction)
    if pred.shape != truth.depth.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {truth.depth.shape} differ")
    gt = truth.depth[truth.valid]
    cap = float(gt.max()) if depth_cap is None else float(depth_cap)
    disparity = prediction_disparity(pred[truth.valid], kind)
    aligned_depth, scale, shift = align_depth(disparity, gt, cap)
    metric = None
    if kind == _METRIC_KIND and truth.unit == "m":
        metric = depth_scores(pred[truth.valid], gt)
    return PredictionScores(
        valid_pixels=int(gt.size),
        depth_cap=cap,
        scale=scale,
        shift=shift,
        aligned=depth_scores(aligned_depth, gt),
        metric=metric,
    )


@dataclass(frozen=True)
class ImageResult:
    """A sample and its scores."""

    sample: Sample
    unit: str
    scores: PredictionScores

    def to_json(self) -> dict[str, Any]:
        return {
            "image": self.sample.name,
            "image_path": str(self.sample.image),
            "gt_path": str(self.sample.gt),
            "unit": self.unit,
            **_finite_or_none(self.scores.to_json()),
        }


def _finite_or_none(data: Any) -> Any:
    """JSON has no NaN or infinity: they become null."""
    if isinstance(data, dict):
        return {key: _finite_or_none(value) for key, value in data.items()}
    if isinstance(data, float) and not math.isfinite(data):
        return None
    return data


def _mean(scores: Sequence[Scores], same_unit: bool) -> Scores:
    """The mean of per-image scores (as the MiDaS code averages); RMSE only in one unit."""
    return Scores(
        absrel=float(np.mean([s.absrel for s in scores])),
        delta1=float(np.mean([s.delta1 for s in scores])),
        rmse=float(np.mean([s.rmse for s in scores])) if same_unit else math.nan,
    )


@dataclass
class Report:
    """Every image's result and every failure of one evaluation run."""

    model: str
    kind: str
    dataset: Path
    results: list[ImageResult] = field(default_factory=list)
    failures: list[InputError] = field(default_factory=list)

    @property
    def unit(self) -> str | None:
        """The depth unit shared by every result, None when they differ (or none succeeded)."""
        units = {result.unit for result in self.results}
        return units.pop() if len(units) == 1 else None

    def mean(self, which: str = "aligned") -> Scores | None:
        """Mean ``"aligned"`` or ``"metric"`` scores over the images that have them."""
        scores = [getattr(r.scores, which) for r in self.results]
        present = [s for s in scores if s is not None]
        return _mean(present, self.unit is not None) if present else None

    def to_json(self) -> dict[str, Any]:
        aligned, metric = self.mean("aligned"), self.mean("metric")
        return _finite_or_none(
            {
                "model": self.model,
                "kind": self.kind,
                "dataset": str(self.dataset),
                "protocol": PROTOCOL,
                "images": [result.to_json() for result in self.results],
                "failures": [{"source": exc.source, "error": str(exc)} for exc in self.failures],
                "mean": {
                    "images": len(self.results),
                    "unit": self.unit,
                    "aligned": None if aligned is None else aligned.to_json(),
                    "metric": None if metric is None else metric.to_json(),
                },
            }
        )


def _depth_cap(sample: Sample, override: float | None) -> float | None:
    """--depth-cap, else the sample's depth_cap, else its max_depth, else None (its max)."""
    if override is not None:
        return override
    if sample.depth_cap is not None:
        return sample.depth_cap
    return sample.max_depth if math.isfinite(sample.max_depth) else None


def _at_size(depth: np.ndarray, shape: tuple[int, ...], source: str) -> np.ndarray:
    """The prediction resampled to the ground truth's grid (bilinear, pixel centres)."""
    if depth.shape == shape:
        return depth
    (h, w), (gh, gw) = depth.shape, shape
    if abs((gw / gh) / (w / h) - 1.0) > _ASPECT_TOLERANCE:
        raise InputError(
            f"the image is {w}x{h} but its ground truth {gw}x{gh}: another aspect ratio, so "
            "they cannot be paired; check the manifest",
            source,
        )
    return cv2.resize(depth, (gw, gh), interpolation=cv2.INTER_LINEAR)


def evaluate_sample(
    estimator: DepthEstimator, sample: Sample, *, depth_cap: float | None = None
) -> ImageResult:
    """Predict one sample's image and score it; every failure is an :class:`InputError`."""
    source = str(sample.image)
    truth = read_ground_truth(sample)
    result = estimator.predict(sample.image)
    prediction = _at_size(result.depth, truth.depth.shape, source)
    try:
        scores = score_prediction(
            prediction, result.kind, truth, depth_cap=_depth_cap(sample, depth_cap)
        )
    except AlignmentError as exc:
        raise InputError(str(exc), source) from None
    if scores.scale < 0:
        # Scored all the same (the protocol has no such rule), but it usually means a pairing
        # or "kind" mistake rather than a bad model.
        logger.warning(
            "%s: the best fit has a negative scale: the prediction orders near and far the "
            'other way round; check the sample\'s "kind" (depth or disparity)',
            source,
        )
    return ImageResult(sample=sample, unit=truth.unit, scores=scores)


def evaluate(
    estimator: DepthEstimator, dataset: Dataset, *, depth_cap: float | None = None
) -> Iterator[ImageResult | InputError]:
    """Each sample's result, or the error that stopped it, in dataset order.

    The dataset's own problems (entries that are not samples) come first.
    """
    yield from dataset.problems
    for sample in dataset.samples:
        try:
            yield evaluate_sample(estimator, sample, depth_cap=depth_cap)
        except InputError as exc:
            yield exc
        except OSError as exc:
            yield InputError(str(exc), str(sample.image))


def evaluate_dataset(
    estimator: DepthEstimator, dataset: Dataset, *, depth_cap: float | None = None
) -> Report:
    """The whole report at once (the library's one-call form of :func:`evaluate`)."""
    card = estimator.card
    report = Report(model=card.name, kind=card.output.kind, dataset=dataset.root)
    for item in evaluate(estimator, dataset, depth_cap=depth_cap):
        if isinstance(item, ImageResult):
            report.results.append(item)
        else:
            report.failures.append(item)
    return report
