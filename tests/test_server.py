"""The HTTP API: every route, every output format, every error, auth, CORS, metrics, OpenAPI.

One app (with small size limits) serves most tests: its estimator is a real DepthEstimator on
the synthetic converted model, loaded once for the module.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient

from conftest import loaded_estimator, test_image, wait_ready
from depthlite import DepthEstimator
from depthlite.colorize import COLORMAPS, colorize
from depthlite.imageio import read_pfm, to_png16
from depthlite.server import Settings, create_app
from depthlite.server.logs import JsonFormatter
from depthlite.server.routes.ui import STATIC_DIR
from depthlite.server.schemas import API_FORMATS

MAX_BODY = 100_000
MAX_PIXELS = 200 * 200
IMAGE = test_image(3, 60, 80)


def png_bytes(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    assert ok
    return buf.tobytes()


def jpeg_bytes(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]))
    assert ok
    return buf.tobytes()


PNG = png_bytes(IMAGE)


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "detail"}, body
    assert body["error"] == code, body
    assert isinstance(body["detail"], str) and body["detail"], body
    return body


@pytest.fixture(scope="module")
def estimator(converted_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> DepthEstimator:
    return loaded_estimator(converted_onnx, tmp_path_factory)


@pytest.fixture(scope="module")
def client(estimator: DepthEstimator) -> Iterator[TestClient]:
    settings = Settings(workers=2, queue_size=4, max_body_bytes=MAX_BODY, max_pixels=MAX_PIXELS)
    with TestClient(create_app(settings, estimator)) as test_client:
        wait_ready(test_client)
        yield test_client


@pytest.fixture(scope="module")
def expected(estimator: DepthEstimator) -> np.ndarray:
    """The library's depth for IMAGE, to compare the API's outputs with."""
    return estimator.predict(PNG).depth


def depth_request(client: TestClient, **params: str) -> Any:
    return client.post("/v1/depth", params=params, files={"file": ("photo.png", PNG, "image/png")})


# ------------------------------------------------------------------ outputs


def test_default_is_a_colour_png_equal_to_the_library_colour_map(
    client: TestClient, expected: np.ndarray
) -> None:
    response = client.post("/v1/depth", files={"file": ("photo.png", PNG, "image/png")})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-depth-width"] == "80"
    assert response.headers["x-depth-height"] == "60"
    assert response.headers["content-disposition"] == 'inline; filename="photo_color.png"'
    rgb = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))
    np.testing.assert_array_equal(rgb, colorize(expected, "inferno"))


def test_server_timing_names_every_stage(client: TestClient) -> None:
    timing = depth_request(client).headers["server-timing"]
    stages = {part.split(";")[0].strip(): part for part in timing.split(",")}
    for stage in ("decode", "preprocess", "inference", "postprocess", "encode", "queue", "total"):
        assert stage in stages, timing
        assert float(stages[stage].split("dur=")[1]) >= 0


def test_npy_is_the_library_depth_as_a_download(client: TestClient, expected: np.ndarray) -> None:
    response = depth_request(client, format="npy")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"] == 'attachment; filename="photo.npy"'
    depth = np.load(io.BytesIO(response.content))
    assert depth.dtype == np.float32
    assert depth.shape == (60, 80)
    np.testing.assert_array_equal(depth, expected)


def test_raw_body_and_multipart_give_the_same_depth(client: TestClient) -> None:
    raw = client.post(
        "/v1/depth?format=npy", content=PNG, headers={"content-type": "application/octet-stream"}
    )
    assert raw.status_code == 200
    # Without a multipart file name the download has a generic name.
    assert raw.headers["content-disposition"] == 'attachment; filename="depth.npy"'
    multipart = depth_request(client, format="npy")
    np.testing.assert_array_equal(
        np.load(io.BytesIO(raw.content)), np.load(io.BytesIO(multipart.content))
    )


def test_png16_is_the_official_16_bit_map(client: TestClient, expected: np.ndarray) -> None:
    response = depth_request(client, format="png16")
    assert response.headers["content-type"] == "image/png"
    depth16 = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_UNCHANGED)
    assert depth16.dtype == np.uint16
    np.testing.assert_array_equal(depth16, to_png16(expected))


def test_pfm_side_and_jpeg(client: TestClient, expected: np.ndarray, tmp_path: Path) -> None:
    pfm = depth_request(client, format="pfm")
    assert pfm.headers["content-disposition"] == 'attachment; filename="photo.pfm"'
    (tmp_path / "d.pfm").write_bytes(pfm.content)
    np.testing.assert_array_equal(read_pfm(tmp_path / "d.pfm"), expected)

    side = depth_request(client, format="side")
    assert side.headers["content-type"] == "image/png"
    assert np.asarray(Image.open(io.BytesIO(side.content))).shape == (60, 160, 3)

    jpeg = depth_request(client, format="jpeg")
    assert jpeg.headers["content-type"] == "image/jpeg"
    image = Image.open(io.BytesIO(jpeg.content))
    assert (image.format, image.size, image.mode) == ("JPEG", (80, 60), "RGB")


def test_json_has_statistics_and_timings(client: TestClient, expected: np.ndarray) -> None:
    response = depth_request(client, format="json")
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert (body["width"], body["height"]) == (80, 60)
    assert body["min"] == pytest.approx(float(expected.min()))
    assert body["max"] == pytest.approx(float(expected.max()))
    assert body["mean"] == pytest.approx(float(expected.mean()), rel=1e-5)
    assert set(body["percentiles"]) == {"1", "5", "50", "95", "99"}
    assert body["percentiles"]["50"] == pytest.approx(float(np.percentile(expected, 50)))
    assert body["network_input"] == [192, 256]
    assert (body["backend"], body["precision"], body["resize"]) == (
        "onnxruntime",
        "fp32",
        "keep_aspect",
    )
    assert body["model"] == "midas_v21_small_256"
    assert set(body["timings_ms"]) == {
        "decode",
        "preprocess",
        "inference",
        "postprocess",
        "encode",
        "queue",
    }


# ------------------------------------------------------------------ parameters


def test_colormap_resize_and_precision_parameters(client: TestClient, expected: np.ndarray) -> None:
    magma = depth_request(client, colormap="magma")
    rgb = np.asarray(Image.open(io.BytesIO(magma.content)).convert("RGB"))
    np.testing.assert_array_equal(rgb, colorize(expected, "magma"))

    square = depth_request(client, format="json", resize="square").json()
    assert (square["resize"], square["network_input"]) == ("square", [256, 256])

    assert depth_request(client, precision="fp32").status_code == 200
    # A known precision this server did not load: the library's InvalidOptionError.
    body = assert_error(depth_request(client, precision="int8"), 422, "invalid_option")
    assert "fp32" in body["detail"]


@pytest.mark.parametrize(
    "params",
    [
        {"format": "gif"},
        {"colormap": "rainbowish"},
        {"resize": "stretch"},
        {"precision": "fp64"},
    ],
)
def test_unknown_parameter_values_are_422(client: TestClient, params: dict[str, str]) -> None:
    body = assert_error(depth_request(client, **params), 422, "invalid_parameter")
    assert next(iter(params)) in body["detail"]


# ------------------------------------------------------------------ bad input


def test_body_over_the_limit_is_413_from_content_length(client: TestClient) -> None:
    body = assert_error(
        client.post("/v1/depth", content=b"x" * (MAX_BODY + 1)), 413, "body_too_large"
    )
    assert str(MAX_BODY) in body["detail"]
    big = ("big.png", b"x" * (MAX_BODY + 1), "image/png")
    assert_error(client.post("/v1/depth", files={"file": big}), 413, "body_too_large")


def test_body_over_the_limit_is_413_while_streaming(client: TestClient) -> None:
    # A generator body is sent chunked, with no Content-Length: the limit is counted as read.
    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b"x" * 10_000

    assert_error(client.post("/v1/depth", content=chunks()), 413, "body_too_large")


def test_too_many_pixels_is_413(client: TestClient) -> None:
    large = png_bytes(np.zeros((250, 250, 3), np.uint8))  # compresses far below the byte limit
    assert len(large) < MAX_BODY
    body = assert_error(client.post("/v1/depth", content=large), 413, "image_too_large")
    assert str(MAX_PIXELS) in body["detail"]


def test_text_and_icons_are_415(client: TestClient) -> None:
    assert_error(
        client.post("/v1/depth", content=b"hello, world\n" * 10), 415, "unsupported_media_type"
    )
    icon = io.BytesIO()
    Image.fromarray(IMAGE).save(icon, format="ICO")  # an image, but never a photo
    body = assert_error(
        client.post("/v1/depth", files={"file": ("a.ico", icon.getvalue(), "image/x-icon")}),
        415,
        "unsupported_media_type",
    )
    assert "ICO" in body["detail"] and "HEIF" in body["detail"]


def test_truncated_jpeg_is_422(client: TestClient) -> None:
    data = jpeg_bytes(IMAGE)
    assert_error(client.post("/v1/depth", content=data[: len(data) // 2]), 422, "corrupt_image")


def test_missing_image_is_422(client: TestClient) -> None:
    assert_error(client.post("/v1/depth"), 422, "missing_image")
    body = assert_error(
        client.post("/v1/depth", files={"image": ("a.png", PNG, "image/png")}), 422, "missing_image"
    )
    assert "'file'" in body["detail"]


def test_bad_requests_never_hurt_the_workers(client: TestClient) -> None:
    for _ in range(3):
        client.post("/v1/depth", content=b"not an image")
        client.post("/v1/depth", content=jpeg_bytes(IMAGE)[:500])
    stats = client.app.state.service.pool.stats()  # type: ignore[attr-defined]
    assert stats.alive == stats.workers == 2
    assert depth_request(client).status_code == 200


def test_unknown_route_and_method_are_json(client: TestClient) -> None:
    assert_error(client.get("/v2/nothing"), 404, "not_found")
    assert_error(client.get("/v1/depth"), 405, "method_not_allowed")


# ------------------------------------------------------------------ other routes


def test_models_describes_the_loaded_model(client: TestClient) -> None:
    body = client.get("/v1/models").json()
    (model,) = body["models"]
    assert model["name"] == "midas_v21_small_256"
    assert (model["backend"], model["precision"], model["precisions"]) == (
        "onnxruntime",
        "fp32",
        ["fp32"],
    )
    assert model["loaded"] is True and model["ready"] is True
    assert model["input_policy"] == {
        "size": 256,
        "multiple_of": 32,
        "resize": "keep_aspect",
        "rule": "upper_bound",
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
    }
    assert model["model_file"]["origin"] == "user"
    assert model["model_file"]["steps"][0].startswith("user file")
    assert (model["licence"]["spdx"], model["kind"], model["default"]) == (
        "MIT",
        "relative_inverse_depth",
        True,
    )
    assert body["formats"] == list(API_FORMATS)
    assert body["colormaps"] == sorted(COLORMAPS)
    assert (body["max_body_bytes"], body["max_pixels"]) == (MAX_BODY, MAX_PIXELS)


def test_health_and_ready(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


def test_metrics_after_requests(client: TestClient) -> None:
    depth_request(client)
    client.post("/v1/depth", content=b"not an image")
    text = client.get("/metrics").text
    assert 'depthlite_http_requests_total{method="POST",route="/v1/depth",status="200"}' in text
    assert 'depthlite_http_requests_total{method="POST",route="/v1/depth",status="415"}' in text
    assert 'depthlite_http_request_duration_seconds_bucket{le="0.005",method="POST"' in text
    for stage in ("queue", "decode", "preprocess", "inference", "postprocess", "encode"):
        assert f'depthlite_stage_duration_seconds_count{{stage="{stage}"}}' in text
    for name in (
        "depthlite_http_requests_in_flight",
        "depthlite_pool_queue_depth 0.0",
        "depthlite_pool_busy_workers",
        "depthlite_pool_workers 2.0",
        'depthlite_pool_rejections_total{reason="queue_full"}',
        'depthlite_pool_rejections_total{reason="queue_timeout"}',
        "depthlite_model_ready 1.0",
    ):
        assert name in text


def test_openapi_enums_come_from_the_library_tables(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/v1/depth"]["post"]
    params = {p["name"]: p["schema"] for p in operation["parameters"]}
    assert params["format"]["enum"] == list(API_FORMATS)
    assert params["colormap"]["enum"] == sorted(COLORMAPS)
    assert "multipart/form-data" in operation["requestBody"]["content"]
    assert client.get("/docs").status_code == 200


def test_web_ui_index(client: TestClient) -> None:
    response = client.get("/")
    if (STATIC_DIR / "index.html").is_file():
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
    else:
        assert_error(response, 404, "not_found")


# ------------------------------------------------------------------ configuration


def test_api_key_guards_the_api_but_not_healthz(estimator: DepthEstimator) -> None:
    # No lifespan: none of these requests needs the model.
    client = TestClient(create_app(Settings(api_key="s3cret"), estimator))
    assert client.get("/healthz").status_code == 200
    for path in ("/v1/models", "/metrics"):
        response = client.get(path)
        assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"
        wrong = client.get(path, headers={"Authorization": "Bearer guess"})
        assert_error(wrong, 401, "unauthorized")
        assert client.get(path, headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert_error(client.post("/v1/depth", content=PNG), 401, "unauthorized")
    basic = client.post("/v1/depth", content=PNG, headers={"Authorization": "Basic czNjcmV0"})
    assert_error(basic, 401, "unauthorized")


def test_cors_exposes_timing_and_retry_headers(estimator: DepthEstimator) -> None:
    client = TestClient(create_app(Settings(cors_origins="https://ui.example"), estimator))
    preflight = client.options(
        "/v1/depth",
        headers={"Origin": "https://ui.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://ui.example"
    response = client.get("/healthz", headers={"Origin": "https://ui.example"})
    exposed = response.headers["access-control-expose-headers"]
    for header in ("Retry-After", "Server-Timing", "X-Depth-Width"):
        assert header in exposed
    other = client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_two_apps_have_separate_metrics(estimator: DepthEstimator) -> None:
    first = TestClient(create_app(Settings(), estimator))
    second = TestClient(create_app(Settings(), estimator))
    first.get("/healthz")
    first.get("/healthz")
    line = 'depthlite_http_requests_total{method="GET",route="/healthz",status="200"}'
    assert f"{line} 2.0" in first.get("/metrics").text
    assert line not in second.get("/metrics").text


def test_access_log_records_and_json_lines(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="depthlite.server.access"):
        depth_request(client)
    (record,) = [r for r in caplog.records if r.name == "depthlite.server.access"]
    line = json.loads(JsonFormatter().format(record))
    assert line["logger"] == "depthlite.server.access"
    assert line["level"] == "info"
    assert (line["method"], line["path"], line["status"]) == ("POST", "/v1/depth", 200)
    assert line["duration_ms"] > 0
    assert {"time", "message"} <= set(line)
