"""The HTTP API in metres and 3-D: known= on /v1/depth, POST /v1/calibration, png16 facts,
PLY and normals, jobs; every bad input answered 422 with the reason."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import plyfile
import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient

from conftest import test_image
from depthlite import DepthEstimator, read_depth
from depthlite.geometry.intrinsics import CameraSpec, resolve_intrinsics
from depthlite.geometry.normals import normals_rgb, surface_normals
from depthlite.geometry.pointcloud import scene_depth
from depthlite.imageio.png import read_text
from test_server import assert_error, png_bytes

IMAGE = test_image(5, 48, 64)
PNG = png_bytes(IMAGE)
NEAR, FAR = 2.0, 9.0


@pytest.fixture(scope="module")
def client(app_client: TestClient) -> TestClient:
    return app_client


@pytest.fixture(scope="module")
def estimator(client: TestClient) -> DepthEstimator:
    return client.app.state.service.estimator  # type: ignore[attr-defined,no-any-return]


@pytest.fixture(scope="module")
def depth(estimator: DepthEstimator) -> np.ndarray:
    return estimator.predict(PNG).depth


def extremes(depth: np.ndarray) -> list[tuple[int, int]]:
    near = np.unravel_index(int(np.argmax(depth)), depth.shape)
    far = np.unravel_index(int(np.argmin(depth)), depth.shape)
    return [(int(near[1]), int(near[0])), (int(far[1]), int(far[0]))]


def known(depth: np.ndarray) -> list[str]:
    (nx, ny), (fx, fy) = extremes(depth)
    return [f"{nx},{ny}={NEAR}", f"{fx},{fy}={FAR}"]


def post(client: TestClient, **params: Any) -> Any:
    return client.post("/v1/depth", params=params, files={"file": ("room.png", PNG, "image/png")})


def test_metric_needs_known_points_or_a_metric_model(client: TestClient) -> None:
    body = assert_error(post(client, format="metric"), 422, "metric_unavailable")
    assert "known" in body["detail"] and "metric model" in body["detail"]


def test_metric_npy_with_known_points(client: TestClient, depth: np.ndarray) -> None:
    response = post(client, format="metric", known=known(depth))
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"] == 'attachment; filename="room_metric.npy"'
    metres = np.load(io.BytesIO(response.content))
    assert metres.dtype == np.float32 and metres.shape == depth.shape
    (nx, ny), (fx, fy) = extremes(depth)
    assert metres[ny, nx] == pytest.approx(NEAR, rel=1e-4)
    assert metres[fy, fx] == pytest.approx(FAR, rel=1e-4)


def test_png16_carries_its_facts_in_chunks_and_headers(
    client: TestClient, depth: np.ndarray, tmp_path: Path
) -> None:
    response = post(client, format="png16")
    assert response.status_code == 200
    chunks = read_text(response.content)
    headers = response.headers
    for key in ("Kind", "Unit", "Model", "Min", "Max", "Mapping"):
        assert headers[f"x-depth-{key.lower()}"] == chunks[f"Depth-{key}"]
    assert headers["x-depth-kind"] == "relative_inverse_depth"
    assert headers["x-depth-model"] == "midas_v21_small_256"
    assert float(headers["x-depth-min"]) == float(depth.min())
    assert float(headers["x-depth-max"]) == float(depth.max())
    (tmp_path / "d.png").write_bytes(response.content)
    values, _ = read_depth(tmp_path / "d.png")
    # One level, plus float32 rounding in the official formula (about 0.005 levels).
    assert np.abs(values - depth).max() <= float(np.ptp(depth)) / 65535 * 1.01
    calibrated = post(client, format="png16", known=known(depth))
    assert "Depth-Calibration" in read_text(calibrated.content)
    (tmp_path / "m.png").write_bytes(calibrated.content)
    metres, facts = read_depth(tmp_path / "m.png")
    assert facts["unit"] == "m"
    (nx, ny), _ = extremes(depth)
    assert metres[ny, nx] == pytest.approx(NEAR, rel=1e-3)


def test_ply_with_known_points_and_a_field_of_view(client: TestClient, depth: np.ndarray) -> None:
    response = post(client, format="ply", known=known(depth), fov="75", stride="2")
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"] == 'attachment; filename="room.ply"'
    ply = plyfile.PlyData.read(io.BytesIO(response.content))
    vertices = ply["vertex"].data
    assert any("units: metres" in c for c in ply.comments)
    assert any("fov 75 degrees" in c for c in ply.comments)
    assert 0 < len(vertices) <= 24 * 32  # every other row and column
    assert -vertices["z"].max() == pytest.approx(NEAR, rel=0.5)  # near the nearest point
    assert (-vertices["z"] <= FAR * 1.0001).all()


def test_normals_png_is_the_library_normals(client: TestClient, depth: np.ndarray) -> None:
    response = post(client, format="normals", focal_px="60")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    bgr = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_UNCHANGED)
    assert bgr.shape == (48, 64, 3) and bgr.dtype == np.uint8
    z, unit = scene_depth(depth, "relative_inverse_depth")
    intr = resolve_intrinsics(64, 48, CameraSpec(focal_px=60.0))
    np.testing.assert_array_equal(bgr[..., ::-1], normals_rgb(surface_normals(z, intr)))
    assert unit == "relative"


def test_json_says_near_is_larger_and_the_fit(client: TestClient, depth: np.ndarray) -> None:
    body = post(client, format="json").json()
    assert body["near_is_larger"] is True and body["calibration"] is None
    fitted = post(client, format="json", known=known(depth)).json()["calibration"]
    assert fitted["space"] == "inverse" and fitted["fit"] == "scale_shift"
    assert [p["distance"] for p in fitted["points"]] == [NEAR, FAR]
    assert all(abs(p["residual"]) < 1e-3 for p in fitted["points"])


@pytest.mark.parametrize(
    ("params", "code", "message"),
    [
        ({"known": ["412,300"]}, "calibration_failed", "X,Y=METRES"),
        ({"known": ["4,3=-1", "5,5=2"]}, "calibration_failed", "positive number of metres"),
        ({"known": ["4,3=1"]}, "invalid_option", "at least two"),
        ({"known": ["640,3=1", "5,5=2"]}, "calibration_failed", "outside the 64x48 image"),
        ({"known": ["7,7=1", "7,7=2"]}, "calibration_failed", "same model value"),
        ({"fov": "0"}, "invalid_parameter", "fov"),
        ({"stride": "0"}, "invalid_parameter", "stride"),
        ({"fov": "60", "focal_px": "500"}, "invalid_option", "not both"),
        ({"principal": "12"}, "invalid_option", "X,Y"),
        ({"fit": "cubic"}, "invalid_parameter", "fit"),
    ],
)
def test_bad_depth_parameters_are_422(
    client: TestClient, params: dict[str, Any], code: str, message: str
) -> None:
    body = assert_error(post(client, format="npy", **params), 422, code)
    assert message in body["detail"]


# ---------------------------------------------------------------- /v1/calibration


def calibrate(client: TestClient, points: list[dict[str, float]], **extra: Any) -> Any:
    payload = {"kind": "relative_inverse_depth", "points": points, **extra}
    return client.post("/v1/calibration", json=payload)


def test_calibration_endpoint_is_the_library_fit(client: TestClient, depth: np.ndarray) -> None:
    points = [
        {"x": x, "y": y, "value": float(depth[y, x]), "distance": d}
        for (x, y), d in zip(extremes(depth), (NEAR, FAR), strict=True)
    ]
    response = calibrate(client, points, model="midas_small", fit="auto")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) >= {"scale", "shift", "space", "method", "rms", "points"}
    assert body["model"] == "midas_v21_small_256"  # the alias, resolved
    assert (body["space"], body["method"]) == ("inverse", "least_squares")
    for point in body["points"]:
        assert set(point) >= {"x", "y", "value", "distance", "predicted", "residual"}
        assert point["predicted"] == pytest.approx(point["distance"], rel=1e-6)
    # The same numbers as known= on /v1/depth.
    fitted = post(client, format="json", known=known(depth)).json()["calibration"]
    assert body["scale"] == pytest.approx(fitted["scale"], rel=1e-6)
    assert body["shift"] == pytest.approx(fitted["shift"], rel=1e-6)


@pytest.mark.parametrize(
    ("points", "extra", "message"),
    [
        ([{"x": 1, "y": 1, "value": 3.0, "distance": 2.0}], {}, "at least 2 items"),
        (
            [{"x": 1, "y": 1, "value": 3.0, "distance": 2.0},
             {"x": 5, "y": 1, "value": 3.0, "distance": 4.0}],
            {}, "same model value",
        ),
        (
            [{"x": 1, "y": 1, "value": 3.0, "distance": 2.0},
             {"x": 5, "y": 1, "value": 1.0, "distance": 1.0}],
            {}, "negative scale",
        ),
        (
            [{"x": 1, "y": 1, "value": 4.0, "distance": 2.0},
             {"x": 5, "y": 1, "value": 0.0, "distance": 5.0}],
            {"fit": "scale"}, "depth <= 0",
        ),
        (
            [{"x": 1, "y": 1, "value": 4.0, "distance": 2.0},
             {"x": 5, "y": 1, "value": 1.0, "distance": 5.0}],
            {"model": "depth_anything_v2_metric_indoor_small"}, "gives metric_depth",
        ),
        (
            [{"x": 1, "y": 1, "value": 4.0, "distance": 2.0},
             {"x": 5, "y": 1, "value": 1.0, "distance": 5.0}],
            {"model": "no_such_model"}, "no_such_model",
        ),
    ],
)  # fmt: skip
def test_calibration_refusals_say_why(
    client: TestClient, points: list[dict[str, float]], extra: dict[str, str], message: str
) -> None:
    response = calibrate(client, points, **extra)
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]


@pytest.mark.parametrize(
    "point",
    [
        {"x": 1, "y": 1, "value": 1.0, "distance": 0.0},
        {"x": 1, "y": 1, "value": 1.0, "distance": -3.0},
        {"x": -1, "y": 1, "value": 1.0, "distance": 3.0},
        {"x": 1, "y": 1, "value": 1.0},
    ],
)
def test_calibration_body_is_validated(client: TestClient, point: dict[str, float]) -> None:
    good = {"x": 9, "y": 9, "value": 2.0, "distance": 1.0}
    assert_error(calibrate(client, [point, good]), 422, "invalid_parameter")


def test_calibration_is_documented(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/v1/calibration"]["post"]
    assert {"200", "422"} <= set(operation["responses"])
    assert "CalibrationRequest" in str(operation["requestBody"])
    params = {p["name"] for p in spec["paths"]["/v1/depth"]["post"]["parameters"]}
    assert {"known", "fit", "fov", "focal_px", "stride", "principal"} <= params
    summary = spec["paths"]["/v1/depth"]["post"]["responses"]["200"]["content"]
    ref = str(summary["application/json"]["schema"]["properties"]["calibration"])
    assert "#/components/schemas/CalibrationBody" in ref
    assert "CalibrationBody" in spec["components"]["schemas"]


# ---------------------------------------------------------------- jobs


def test_a_job_calibrates_each_image_and_writes_sidecars(
    client: TestClient, depth: np.ndarray
) -> None:
    files = [("file", ("a.png", PNG, "image/png")), ("file", ("b.png", PNG, "image/png"))]
    params = {"format": "metric,png16", "known": known(depth), "sidecar": "true"}
    response = client.post("/v1/jobs", params=params, files=files)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    deadline = time.monotonic() + 60
    while (state := client.get(f"/v1/jobs/{job_id}").json())["state"] != "done":
        assert state["state"] in {"queued", "running"}, state
        assert time.monotonic() < deadline
        time.sleep(0.05)
    archive = zipfile.ZipFile(io.BytesIO(client.get(f"/v1/jobs/{job_id}/result").content))
    assert sorted(archive.namelist()) == sorted(
        f"{s}{e}" for s in "ab" for e in (".json", "_depth16.png", "_metric.npy")
    )
    metres = np.load(io.BytesIO(archive.read("a_metric.npy")))
    (nx, ny), _ = extremes(depth)
    assert metres[ny, nx] == pytest.approx(NEAR, rel=1e-4)


def test_a_metric_job_without_known_points_is_refused_at_once(client: TestClient) -> None:
    files = [("file", ("a.png", PNG, "image/png"))]
    body = assert_error(
        client.post("/v1/jobs", params={"format": "metric"}, files=files), 422, "metric_unavailable"
    )
    assert "known" in body["detail"]
    bad = client.post("/v1/jobs", params={"format": "ply", "known": "1,1"}, files=files)
    assert_error(bad, 422, "calibration_failed")
