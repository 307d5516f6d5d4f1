"""Evaluation against ground truth: datasets, the MiDaS alignment protocol, metrics, reports.

``depthlite eval`` is a thin layer over this package::

    from depthlite import DepthEstimator
    from depthlite.evaluation import evaluate_dataset, load_dataset

    report = evaluate_dataset(DepthEstimator("depth_anything_v2_small"), load_dataset("data/"))
    report.mean().absrel
"""

from __future__ import annotations

from depthlite.evaluation.dataset import (
    MANIFEST_NAME,
    Dataset,
    ManifestError,
    Sample,
    load_dataset,
)
from depthlite.evaluation.example import write_motorcycle
from depthlite.evaluation.groundtruth import GroundTruth, read_ground_truth
from depthlite.evaluation.metrics import (
    DELTA_THRESHOLD,
    AlignmentError,
    Scores,
    align_depth,
    depth_scores,
    prediction_disparity,
)
from depthlite.evaluation.runner import (
    PROTOCOL,
    ImageResult,
    PredictionScores,
    Report,
    evaluate,
    evaluate_dataset,
    evaluate_sample,
    score_prediction,
)

__all__ = [
    "DELTA_THRESHOLD",
    "MANIFEST_NAME",
    "PROTOCOL",
    "AlignmentError",
    "Dataset",
    "GroundTruth",
    "ImageResult",
    "ManifestError",
    "PredictionScores",
    "Report",
    "Sample",
    "Scores",
    "align_depth",
    "depth_scores",
    "evaluate",
    "evaluate_dataset",
    "evaluate_sample",
    "load_dataset",
    "prediction_disparity",
    "read_ground_truth",
    "score_prediction",
    "write_motorcycle",
]
