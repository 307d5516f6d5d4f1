"""Scale-and-shift aligned agreement metrics."""

from __future__ import annotations

import numpy as np
import pytest

from depthlite.metrics import agreement, align_scale_shift


def test_identical_maps_agree_perfectly() -> None:
    ref = np.random.default_rng(0).uniform(0.5, 2.0, (40, 60)).astype(np.float32)
    score = agreement(ref, ref)
    assert score.absrel == pytest.approx(0.0, abs=1e-9)
    assert score.delta1 == 1.0


def test_scale_and_shift_are_removed() -> None:
    ref = np.random.default_rng(1).uniform(0.5, 2.0, (40, 60))
    candidate = (ref - 0.3) / 7.0
    scale, shift = align_scale_shift(candidate, ref)
    assert scale == pytest.approx(7.0)
    assert shift == pytest.approx(0.3)
    assert agreement(candidate, ref).absrel == pytest.approx(0.0, abs=1e-9)


def test_known_error_is_measured() -> None:
    ref = np.ones((10, 10))
    candidate = ref.copy()
    candidate[:, :5] = 2.0  # half the pixels off; alignment fits the mean: 1.5 -> 1
    score = agreement(candidate, ref)
    # Least squares maps both values to 1 (the line through the mean of ref): no error left.
    assert score.absrel == pytest.approx(0.0, abs=1e-9)
    ramp = np.linspace(1.0, 2.0, 100).reshape(10, 10)
    noisy = ramp + np.where(np.arange(100).reshape(10, 10) % 2, 0.2, -0.2)
    score = agreement(noisy, ramp)
    assert 0.05 < score.absrel < 0.2
    assert 0.0 < score.delta1 <= 1.0


def test_zero_reference_pixels_are_left_out() -> None:
    ref = np.zeros((4, 4))
    ref[:2] = 1.0
    score = agreement(ref.copy(), ref)
    assert score.absrel == pytest.approx(0.0, abs=1e-9)
    assert score.delta1 == 1.0


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="shape"):
        agreement(np.ones((2, 2)), np.ones((2, 3)))


def test_percentile_is_nearest_rank() -> None:
    from depthlite.bench.stats import percentile

    assert percentile([3.0, 1.0], 95) == 3.0
    assert percentile([5.0, 1.0, 2.0, 4.0, 3.0], 50) == 3.0
    assert percentile(list(map(float, range(1, 101))), 95) == 95.0
