"""Evaluation: metrics with known answers and ground-truth reading (test_eval_cli.py: datasets,
the command line)."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import random_depth
from depthlite.errors import InputError
from depthlite.evaluation import (
    AlignmentError,
    GroundTruth,
    Sample,
    align_depth,
    depth_scores,
    read_ground_truth,
    score_prediction,
)
from depthlite.imageio import write_pfm

RELATIVE = "relative_inverse_depth"
METRIC = "metric_depth"


def truth(depth: np.ndarray, unit: str = "m") -> GroundTruth:
    depth = np.asarray(depth, dtype=np.float64)
    return GroundTruth(depth=depth, valid=np.isfinite(depth) & (depth > 0), unit=unit)


# --- metrics -------------------------------------------------------------------------------


def test_scores_of_hand_computed_arrays() -> None:
    scores = depth_scores(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.0, 4.0, 5.0]))
    # |p - g| / g = 0, 0, 1/4, 1/5; ratios 1, 1, 4/3, 5/4 (not < 1.25); squared errors 0, 0, 1, 1
    assert scores.absrel == pytest.approx((0.25 + 0.2) / 4, abs=1e-12)
    assert scores.delta1 == 0.5
    assert scores.rmse == pytest.approx(math.sqrt(0.5), abs=1e-12)
    # A prediction <= 0 is never within 1.25 of a depth, and counts in AbsRel by its distance.
    scores = depth_scores(np.array([0.0, -1.0, 2.0]), np.array([1.0, 1.0, 2.0]))
    assert (scores.delta1, scores.absrel) == (pytest.approx(1 / 3), pytest.approx(1.0))


def test_a_perfect_prediction_scores_zero_error() -> None:
    gt = random_depth(0)
    result = score_prediction(1.0 / gt, RELATIVE, truth(gt))
    assert result.aligned.absrel == pytest.approx(0.0, abs=1e-12)
    assert result.aligned.delta1 == 1.0
    assert result.aligned.rmse == pytest.approx(0.0, abs=1e-10)
    assert (result.scale, result.shift) == (pytest.approx(1.0), pytest.approx(0.0, abs=1e-12))
    assert result.valid_pixels == gt.size
    assert result.metric is None  # a relative model has no unaligned error


def test_a_known_scale_and_shift_in_disparity_is_removed() -> None:
    gt = random_depth(1)
    scale, shift = 3.5, -0.02
    prediction = (1.0 / gt - shift) / scale  # scale * prediction + shift == 1 / gt
    result = score_prediction(prediction, "relative_disparity", truth(gt))
    assert result.scale == pytest.approx(scale, rel=1e-9)
    assert result.shift == pytest.approx(shift, rel=1e-9)
    assert result.aligned.absrel < 1e-9
    assert result.aligned.delta1 == 1.0


def test_hand_computed_alignment_with_the_depth_cap() -> None:
    # Disparity x = 0..3 against 1 / depth = 1, 2, 2, 5: least squares gives s = 1.2, t = 0.7,
    # aligned disparity 0.7, 1.9, 3.1, 4.3; the default cap (largest depth, 1) lifts 0.7 to 1.
    gt = truth(np.array([[1.0, 0.5, 0.5, 0.2]]))
    prediction = np.array([[0.0, 1.0, 2.0, 3.0]])
    result = score_prediction(prediction, RELATIVE, gt)
    assert (result.scale, result.shift) == (pytest.approx(1.2), pytest.approx(0.7))
    assert result.depth_cap == 1.0
    assert result.aligned.absrel == pytest.approx((0 + 1 / 19 + 11 / 31 + 7 / 43) / 4, abs=1e-12)
    assert result.aligned.delta1 == 0.75  # 3.1 against 2 is 1.55 off
    errors = [0.0, 1 / 1.9 - 0.5, 1 / 3.1 - 0.5, 1 / 4.3 - 0.2]
    rmse = math.sqrt(sum(e * e for e in errors) / 4)
    assert result.aligned.rmse == pytest.approx(rmse, abs=1e-12)
    # A farther cap keeps 0.7: the first pixel is then 1 / 0.7 = 1.43 m, more than 1.25 off.
    uncapped = score_prediction(prediction, RELATIVE, gt, depth_cap=10.0)
    assert uncapped.aligned.delta1 == 0.5
    assert uncapped.aligned.absrel == pytest.approx((3 / 7 + 1 / 19 + 11 / 31 + 7 / 43) / 4)


def test_a_negative_aligned_disparity_is_capped_not_flipped() -> None:
    # x = 0..3 against 1 / depth = 1, 1, 1, 10: s = 2.7, t = -0.8, so pixel 0 aligns to -0.8,
    # "beyond infinity"; the cap (1, the farthest depth) puts it at 1 instead of -1.25.
    depth, scale, shift = align_depth(np.arange(4.0), np.array([1.0, 1.0, 1.0, 0.1]), 1.0)
    assert (scale, shift) == (pytest.approx(2.7), pytest.approx(-0.8))
    assert depth.tolist() == pytest.approx([1.0, 1 / 1.9, 1 / 4.6, 1 / 7.3])


def test_a_metric_model_is_also_scored_without_alignment() -> None:
    gt = random_depth(2)
    result = score_prediction(1.1 * gt, METRIC, truth(gt))
    assert result.metric is not None
    assert result.metric.absrel == pytest.approx(0.1, abs=1e-12)
    assert result.metric.delta1 == 1.0
    assert result.metric.rmse == pytest.approx(0.1 * math.sqrt(np.mean(gt**2)), rel=1e-9)
    # Aligned in disparity space: 1 / (1.1 d) times 1.1 is 1 / d exactly.
    assert result.scale == pytest.approx(1.1)
    assert result.aligned.absrel < 1e-9
    # Ground truth in relative units cannot judge metres.
    assert score_prediction(1.1 * gt, METRIC, truth(gt, unit="relative")).metric is None


def test_invalid_pixels_are_masked_and_not_counted() -> None:
    gt = random_depth(3, (20, 20))
    prediction = 1.0 / gt + np.random.default_rng(4).normal(0, 0.02, gt.shape)
    clean = score_prediction(prediction[5:], RELATIVE, truth(gt[5:]))
    dirty_gt = gt.copy()
    dirty_gt[:5] = np.array([np.nan, np.inf, 0.0, -1.0, np.nan])[:, None]
    dirty_prediction = prediction.copy()
    dirty_prediction[:5] = 1e6  # wild values where there is no ground truth change nothing
    dirty = score_prediction(dirty_prediction, RELATIVE, truth(dirty_gt))
    assert dirty.valid_pixels == clean.valid_pixels == 15 * 20
    assert dirty.aligned == clean.aligned
    assert (dirty.scale, dirty.shift) == (clean.scale, clean.shift)


def test_a_constant_prediction_has_no_fit() -> None:
    with pytest.raises(AlignmentError, match="no scale and shift"):
        score_prediction(np.ones((4, 4)), RELATIVE, truth(random_depth(5, (4, 4))))
    nan = np.full((4, 4), np.nan)
    with pytest.raises(AlignmentError, match="not finite at 16"):
        score_prediction(nan, RELATIVE, truth(random_depth(5, (4, 4))))


# --- ground truth files --------------------------------------------------------------------


def sample(tmp_path: Path, gt: Path, **fields: object) -> Sample:
    return Sample(name="x.png", image=tmp_path / "x.png", gt=gt, **fields)  # type: ignore[arg-type]


def test_png16_ground_truth_is_scaled_and_zero_is_invalid(tmp_path: Path) -> None:
    stored = np.array([[0, 1000, 2500], [65535, 1, 300]], dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "d.png"), stored)
    gt = read_ground_truth(sample(tmp_path, tmp_path / "d.png", scale=0.001))
    assert gt.valid.tolist() == [[False, True, True], [True, True, True]]
    assert gt.depth[gt.valid].tolist() == pytest.approx([1.0, 2.5, 65.535, 0.001, 0.3])
    marked = read_ground_truth(sample(tmp_path, tmp_path / "d.png", scale=0.001, invalid=65535))
    # An explicit marker replaces the default 0 (depth 0 is still no depth).
    assert marked.valid.tolist() == [[False, True, True], [False, True, True]]


def test_disparity_becomes_depth_with_focal_baseline_and_doffs(tmp_path: Path) -> None:
    disparity = np.array([[10.0, 30.0], [np.inf, -5.0]], dtype=np.float32)
    write_pfm(tmp_path / "d.pfm", disparity)
    fields = {"kind": "disparity", "focal_baseline": 200.0, "doffs": 10.0}
    gt = read_ground_truth(sample(tmp_path, tmp_path / "d.pfm", **fields))
    # 200 / (10 + 10), 200 / (30 + 10); inf is unknown; -5 + 10 gives 40 m (valid)
    assert gt.depth[gt.valid].tolist() == pytest.approx([10.0, 5.0, 40.0])
    assert gt.unit == "m"
    relative = read_ground_truth(sample(tmp_path, tmp_path / "d.pfm", kind="disparity"))
    assert relative.unit == "relative"
    assert relative.depth[relative.valid].tolist() == pytest.approx([0.1, 1 / 30])


def test_range_and_mask_file_leave_pixels_out(tmp_path: Path) -> None:
    np.save(tmp_path / "d.npy", np.array([[0.5, 2.0, 9.0, 11.0]]))
    cv2.imwrite(str(tmp_path / "m.png"), np.array([[255, 0, 255, 255]], dtype=np.uint8))
    fields = {"min_depth": 1.0, "max_depth": 10.0, "mask": tmp_path / "m.png"}
    gt = read_ground_truth(sample(tmp_path, tmp_path / "d.npy", **fields))
    assert gt.valid.tolist() == [[False, False, True, False]]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("rgb.png", np.zeros((4, 4, 3), np.uint16), "one HxW channel"),
        ("cube.npy", np.zeros((2, 2, 2)), "one HxW channel"),
        ("zero.npy", np.zeros((3, 3)), "no valid ground-truth pixels"),
        ("text.npy", np.array([["a", "b"]]), "must hold numbers"),
        ("broken.pfm", b"Pf\n2 2\n-1\n\x00", "cannot read the ground truth"),
        ("missing.npy", None, "no such ground truth file"),
    ],
)
def test_bad_ground_truth_files(
    tmp_path: Path, name: str, content: np.ndarray | bytes | None, message: str
) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None and name.endswith(".png"):
        cv2.imwrite(str(path), content)
    elif content is not None:
        np.save(path, content)
    with pytest.raises(InputError, match=message) as info:
        read_ground_truth(sample(tmp_path, path, scale=1.0))
    assert info.value.source == str(path)


def test_a_mask_of_another_size_is_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "d.npy", np.ones((4, 4)))
    np.save(tmp_path / "m.npy", np.ones((4, 5)))
    with pytest.raises(InputError, match="must be the same size"):
        read_ground_truth(sample(tmp_path, tmp_path / "d.npy", mask=tmp_path / "m.npy"))
