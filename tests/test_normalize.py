"""The temporal normaliser: official per-frame mode, robustness, flicker, cut re-adaptation."""

from __future__ import annotations

import numpy as np
import pytest

from depthlite.bench.clips import depth_clip, flicker, readaptation
from depthlite.colorize import apply_palette
from depthlite.errors import InvalidOptionError
from depthlite.normalize import NormalizerOptions, TemporalNormalizer, scale_levels

PER_FRAME = NormalizerOptions(mode="per-frame")


def _run(options: NormalizerOptions, frames: list[np.ndarray]) -> tuple[list, list, int]:
    norm = TemporalNormalizer(options)
    levels, ranges = [], []
    for depth in frames:
        frame = norm.update(depth)
        ranges.append((frame.lo, frame.hi))
        levels.append(scale_levels(depth, frame.lo, frame.hi, 1))
    return levels, ranges, norm.cuts


def _percentiles(depth: np.ndarray) -> tuple[float, float]:
    low, high = np.percentile(depth, (2, 98))
    return float(low), float(high)


def test_per_frame_mode_is_the_official_png16_and_colour_map(
    pipeline_reference: dict[str, np.ndarray],
) -> None:
    depth = pipeline_reference["depth"]
    norm = TemporalNormalizer(PER_FRAME)
    np.testing.assert_array_equal(norm.levels(depth, bits=2), pipeline_reference["png16"])
    color = apply_palette(norm.levels(depth, bits=1), "inferno")
    np.testing.assert_array_equal(color, pipeline_reference["color_inferno_bgr"][..., ::-1])


def test_per_frame_mode_has_no_memory() -> None:
    rng = np.random.default_rng(1)
    first, second = (rng.normal(size=(40, 50)).astype(np.float32) for _ in range(2))
    norm = TemporalNormalizer(PER_FRAME)
    norm.levels(first * 100)
    np.testing.assert_array_equal(norm.levels(second), TemporalNormalizer(PER_FRAME).levels(second))


def test_one_hot_pixel_does_not_move_the_temporal_range() -> None:
    depth = np.linspace(1.0, 2.0, 100 * 120, dtype=np.float32).reshape(100, 120)
    hot = depth.copy()
    hot[5, 7] = 1000.0
    plain = TemporalNormalizer().update(depth)
    robust = TemporalNormalizer().update(hot)
    assert robust.hi == pytest.approx(plain.hi, rel=1e-3)
    assert TemporalNormalizer(PER_FRAME).update(hot).hi == 1000.0


def test_values_outside_the_range_are_clipped_not_wrapped() -> None:
    depth = np.array([[0.0, 1.0, 2.0, 3.0]], dtype=np.float32)
    out = scale_levels(depth, 1.0, 2.0, 1)
    np.testing.assert_array_equal(out, [[0, 0, 255, 255]])


def test_smoothed_mode_flickers_at_least_3x_less_on_the_clip() -> None:
    clip = depth_clip()
    per_frame, _, _ = _run(PER_FRAME, clip.frames)
    smooth, _, _ = _run(NormalizerOptions(), clip.frames)
    skip = (clip.cut,)
    ratio = flicker(per_frame, "inferno", skip) / flicker(smooth, "inferno", skip)
    assert ratio >= 3.0, ratio


def test_cut_is_detected_and_mapping_readapts_within_15_frames() -> None:
    clip = depth_clip()
    _, ranges, cuts = _run(NormalizerOptions(), clip.frames)
    assert cuts == 1
    settled = readaptation(ranges, clip, _percentiles)
    assert settled is not None
    assert settled <= 15


def test_without_cut_detection_the_average_alone_is_slow() -> None:
    # Shows what the detector buys: the moving average alone takes ~30 frames at 0.9.
    clip = depth_clip()
    _, ranges, cuts = _run(NormalizerOptions(cut_threshold=1e9), clip.frames)
    assert cuts == 0
    settled = readaptation(ranges, clip, _percentiles)
    assert settled is None or settled > 15


def test_smoothing_zero_follows_each_frame_percentiles() -> None:
    clip = depth_clip(frames=10, cut=5)
    _, ranges, _ = _run(NormalizerOptions(smoothing=0.0), clip.frames)
    for frame, (low, high) in zip(clip.frames, ranges, strict=True):
        assert (low, high) == pytest.approx(_percentiles(frame))


def test_streams_do_not_share_state() -> None:
    clip = depth_clip(frames=4, cut=10)
    a, b = TemporalNormalizer(), TemporalNormalizer()
    for frame in clip.frames:
        a.update(frame * 10)
    first_b = b.update(clip.frames[0])
    assert (first_b.lo, first_b.hi) == pytest.approx(_percentiles(clip.frames[0]))
    a.reset()
    again = a.update(clip.frames[0])
    assert (again.lo, again.hi) == pytest.approx((first_b.lo, first_b.hi))


def test_depth_smoothing_is_off_by_default_and_averages_when_on() -> None:
    rng = np.random.default_rng(2)
    frames = [np.full((8, 8), 5.0, np.float32) + rng.normal(size=(8, 8)).astype(np.float32)]
    frames += [np.full((8, 8), 5.0, np.float32) + rng.normal(size=(8, 8)).astype(np.float32)]
    off = TemporalNormalizer()
    assert np.array_equal(off.smooth_depth(frames[1]), frames[1])
    on = TemporalNormalizer(NormalizerOptions(depth_smoothing=0.5))
    on.smooth_depth(frames[0])
    np.testing.assert_allclose(on.smooth_depth(frames[1]), (frames[0] + frames[1]) / 2, rtol=1e-6)
    # A new frame size restarts the average instead of failing.
    small = np.ones((4, 4), np.float32)
    np.testing.assert_array_equal(on.smooth_depth(small), small)


def test_non_finite_values_count_as_zero() -> None:
    depth = np.array([[np.nan, 1.0], [2.0, np.inf]], dtype=np.float32)
    out = TemporalNormalizer(PER_FRAME).levels(depth)
    np.testing.assert_array_equal(out, [[0, 127], [255, 0]])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mode": "minmax"}, "normalizer mode"),
        ({"percentiles": (98.0, 2.0)}, "percentiles"),
        ({"percentiles": (-1.0, 50.0)}, "percentiles"),
        ({"smoothing": 1.0}, "smoothing"),
        ({"depth_smoothing": -0.1}, "depth-smoothing"),
        ({"cut_threshold": 0.0}, "cut threshold"),
    ],
)
def test_bad_options_say_what_is_allowed(options: dict, message: str) -> None:
    with pytest.raises(InvalidOptionError, match=message):
        NormalizerOptions(**options)
