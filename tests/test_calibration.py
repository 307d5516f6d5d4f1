"""Calibration from known distances: exact recovery on synthetic scenes, robustness, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from depthlite.errors import CalibrationError, InputError, InvalidOptionError
from depthlite.geometry.align import fit_huber, fit_scale_shift
from depthlite.geometry.calibration import (
    Calibration,
    KnownPoint,
    fit_calibration,
    fit_values,
    resolve_fit,
)

H, W = 48, 64
FOCAL = 40.0


def tilted_plane(d0: float = 3.0, slope: float = 0.4) -> np.ndarray:
    """Depth (metres, along the axis) of a plane that recedes to the right: d = d0 + slope*X."""
    u = np.arange(W, dtype=np.float64)[None, :] - (W - 1) / 2
    return np.repeat(d0 / (1 - slope * u / FOCAL), H, axis=0)


def as_inverse_output(metres: np.ndarray, scale: float, shift: float) -> np.ndarray:
    """What a relative model "sees": 1/d = scale * y + shift solved for y."""
    return ((1.0 / metres - shift) / scale).astype(np.float32)


PIXELS = [(2, 3), (60, 40), (31, 20), (10, 44), (50, 5), (25, 30)]


def known(metres: np.ndarray, pixels: list[tuple[int, int]] = PIXELS) -> list[KnownPoint]:
    return [KnownPoint(x, y, float(metres[y, x])) for x, y in pixels]


@pytest.mark.parametrize("scene", ["fronto_parallel_steps", "tilted_plane"])
@pytest.mark.parametrize("count", [2, 3])
def test_two_or_three_points_recover_scale_and_shift_exactly(scene: str, count: int) -> None:
    if scene == "tilted_plane":
        metres = tilted_plane()
    else:  # three walls facing the camera at 2, 4 and 8 m
        metres = np.repeat(np.repeat([[2.0, 4.0, 8.0]], H, axis=0), W // 3 + 1, axis=1)[:, :W]
    output = as_inverse_output(metres, scale=0.013, shift=0.21)
    pixels = [(2, 3), (60, 40), (31, 20)][:count]
    cal = fit_calibration(output, "relative_inverse_depth", known(metres, pixels), model="m")
    assert (cal.space, cal.fit, cal.method) == ("inverse", "scale_shift", "least_squares")
    assert cal.scale == pytest.approx(0.013, rel=1e-5)
    assert cal.shift == pytest.approx(0.21, rel=1e-5)
    assert cal.rms < 1e-5
    # The whole map comes back in metres, not only the known pixels.
    np.testing.assert_allclose(cal.apply(output), metres, rtol=1e-5)
    for point in cal.points:
        assert point.residual == pytest.approx(0.0, abs=1e-5)
        assert point.value == float(output[point.y, point.x])


def test_more_points_with_one_wrong_measurement_use_a_robust_fit() -> None:
    metres = tilted_plane()
    output = as_inverse_output(metres, scale=0.05, shift=0.02)
    points = known(metres)
    points[2] = KnownPoint(points[2].x, points[2].y, points[2].distance * 3)  # a typo
    cal = fit_calibration(output, "relative_disparity", points)
    assert cal.method == "huber"
    assert cal.scale == pytest.approx(0.05, rel=1e-6)
    assert cal.shift == pytest.approx(0.02, rel=1e-6)
    residuals = [abs(p.residual) for p in cal.points]
    assert residuals[2] == pytest.approx(points[2].distance - metres[20, 31], rel=1e-4)
    assert max(residuals[:2] + residuals[3:]) < 1e-6
    assert cal.points[2].weight < 0.5 and "(outlier)" in "\n".join(cal.table())
    # Least squares on the same points would be dragged by the typo.
    xs = [p.value for p in cal.points]
    s, _ = fit_scale_shift(np.array(xs), 1 / np.array([p.distance for p in points]))
    assert abs(s - 0.05) > 0.001


def test_huber_equals_least_squares_on_clean_noisy_data() -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 10, 200)
    y = 2.0 * x + 1.0 + rng.normal(0, 0.01, 200)
    s, t, weights = fit_huber(x, y)
    ls, lt = fit_scale_shift(x, y)
    assert s == pytest.approx(ls, rel=1e-3) and t == pytest.approx(lt, abs=1e-2)
    assert np.mean(weights == 1.0) > 0.8  # most points fully trusted


def test_metric_models_are_refined_in_metres() -> None:
    metres = tilted_plane()
    predicted = (metres / 1.25).astype(np.float32)  # a metric model 20 % short
    cal = fit_calibration(predicted, "metric_depth", known(metres, PIXELS[:2]))
    assert (cal.space, cal.fit, cal.shift) == ("linear", "scale", 0.0)
    assert cal.scale == pytest.approx(1.25, rel=1e-6)
    np.testing.assert_allclose(cal.apply(predicted), metres, rtol=1e-5)
    offset = (metres / 1.25 - 0.3).astype(np.float32)
    both = fit_calibration(offset, "metric_depth", known(metres, PIXELS[:3]), fit="scale_shift")
    assert both.scale == pytest.approx(1.25, rel=1e-5)
    assert both.shift == pytest.approx(0.375, rel=1e-4)


def test_auto_fit_depends_on_the_kind() -> None:
    assert resolve_fit("auto", "relative_inverse_depth") == "scale_shift"
    assert resolve_fit("auto", "relative_disparity") == "scale_shift"
    assert resolve_fit("auto", "metric_depth") == "scale"
    assert resolve_fit("scale", "relative_disparity") == "scale"
    with pytest.raises(InvalidOptionError, match="scale_shift"):
        resolve_fit("cubic", "metric_depth")


def test_pixels_beyond_infinity_become_nan_never_inf() -> None:
    cal = fit_values(
        "relative_inverse_depth",
        [(KnownPoint(0, 0, 1.0), 10.0), (KnownPoint(1, 0, 2.0), 5.0)],
    )  # 1/d = 0.1 * v: 0 -> infinity, negative -> beyond
    out = cal.apply(np.array([[10.0, 0.0, -3.0, np.nan, np.inf]], np.float32))
    assert out.dtype == np.float32
    assert out[0, 0] == pytest.approx(1.0)
    assert np.isnan(out[0, 1:]).all()
    assert not np.isinf(out).any()


# ---------------------------------------------------------------- bad input


def test_points_all_at_one_distance_say_so_and_how_to_fit_them() -> None:
    same = [(KnownPoint(0, 0, 3.0), 10.0), (KnownPoint(5, 0, 3.0), 5.0)]
    with pytest.raises(CalibrationError, match=r"every known point is at 3 m.*--fit scale"):
        fit_values("relative_inverse_depth", same, fit="scale_shift")
    assert fit_values("relative_inverse_depth", same, fit="scale").scale > 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("412,300", "X,Y=METRES"),
        ("412=2", "X,Y=METRES"),
        ("a,b=2", "X,Y=METRES"),
        ("1,2,3=4", "X,Y=METRES"),
        ("412,300=zero", "X,Y=METRES"),
        ("412,300=0", "positive number of metres"),
        ("412,300=-2.5", "positive number of metres"),
        ("412,300=nan", "positive number of metres"),
        ("-1,300=2", "outside the image"),
    ],
)
def test_malformed_known_points_say_the_form(text: str, message: str) -> None:
    with pytest.raises(CalibrationError, match=message) as info:
        KnownPoint.parse(text)
    assert "\n" not in str(info.value)


def test_fractional_pixels_are_rounded() -> None:
    assert KnownPoint.parse("412.4,299.6=2.5") == KnownPoint(412, 300, 2.5)


def test_points_outside_the_image_name_the_valid_range() -> None:
    depth = np.ones((H, W), np.float32)
    with pytest.raises(CalibrationError, match=r"64x48 image: x must be in 0\.\.63"):
        fit_calibration(
            depth, "relative_inverse_depth", [KnownPoint(64, 0, 1), KnownPoint(0, 0, 2)]
        )
    with pytest.raises(CalibrationError, match="outside"):
        fit_calibration(
            depth, "relative_inverse_depth", [KnownPoint(0, 48, 1), KnownPoint(0, 0, 2)]
        )


def test_fewer_than_two_points_are_refused() -> None:
    depth = np.ones((H, W), np.float32)
    for points in ([], [KnownPoint(1, 1, 2.0)]):
        with pytest.raises(CalibrationError, match="at least two known points"):
            fit_calibration(depth, "relative_inverse_depth", points)


def test_points_at_the_same_model_value_are_degenerate() -> None:
    depth = np.full((H, W), 0.5, np.float32)
    with pytest.raises(CalibrationError, match="same model value") as info:
        fit_calibration(depth, "relative_inverse_depth", [KnownPoint(1, 1, 2), KnownPoint(9, 9, 5)])
    assert "different depths" in str(info.value) and "scale only" in str(info.value)


def test_a_negative_scale_says_which_points_disagree() -> None:
    depth = np.zeros((H, W), np.float32)
    depth[5, 5], depth[7, 7] = 10.0, 2.0  # the model: (5,5) is the nearer one
    points = [KnownPoint(5, 5, 8.0), KnownPoint(7, 7, 1.0)]  # the user: it is the farther
    with pytest.raises(CalibrationError, match="negative scale") as info:
        fit_calibration(depth, "relative_inverse_depth", points)
    assert "5,5 looks nearer than 7,7" in str(info.value)


def test_a_fit_giving_depth_at_or_below_zero_at_a_point_is_refused() -> None:
    # Scale only through the origin: 1/d = s*v cannot match both, and one ends up beyond
    # infinity (value 0 at a finite distance).
    depth = np.zeros((H, W), np.float32)
    depth[1, 1], depth[2, 2] = 4.0, 0.0
    with pytest.raises(CalibrationError, match="depth <= 0 or beyond infinity"):
        fit_calibration(
            depth, "relative_inverse_depth", [KnownPoint(1, 1, 2), KnownPoint(2, 2, 5)], fit="scale"
        )


def test_no_valid_model_value_at_a_point() -> None:
    depth = np.ones((H, W), np.float32)
    depth[3, 3] = np.nan
    with pytest.raises(CalibrationError, match="no valid value at 3,3"):
        fit_calibration(depth, "relative_inverse_depth", [KnownPoint(3, 3, 2), KnownPoint(0, 0, 5)])


# ---------------------------------------------------------------- files


def test_save_load_roundtrip_and_use_checks(tmp_path: Path) -> None:
    metres = tilted_plane()
    output = as_inverse_output(metres, 0.3, 0.1)
    cal = fit_calibration(
        output, "relative_disparity", known(metres, PIXELS[:2]), model="da", input_size=(518, 700)
    )
    path = tmp_path / "cam.json"
    cal.save(path)
    data = json.loads(path.read_text())
    assert data["format"] == "depthlite-calibration" and data["input_size"] == [518, 700]
    assert {"x", "y", "value", "distance", "predicted", "residual"} <= set(data["points"][0])
    again = Calibration.load(path)
    assert again == cal
    again.check_use("da", "relative_disparity")
    with pytest.raises(InvalidOptionError, match="fitted for model da"):
        again.check_use("other", "relative_disparity")
    with pytest.raises(InvalidOptionError, match="fitted on relative_disparity"):
        again.check_use("da", "metric_depth")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read calibration"),
        ("not json", "not JSON"),
        ('{"scale": 1}', "not a depthlite calibration"),
        ('{"format": "depthlite-calibration", "kind": "x"}', "malformed calibration"),
    ],
)
def test_bad_calibration_files(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "cam.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InvalidOptionError, match=message) as info:
        Calibration.load(path)
    assert not isinstance(info.value, InputError)  # a usage error (exit 2), not a bad image
