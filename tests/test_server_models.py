"""A server with two models: ?model= on every route, the cards in /v1/models, 422s that list."""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from conftest import loaded_estimator, test_image
from depthlite import DepthEstimator
from depthlite.server import Settings, create_app
from test_server import PNG, assert_error, wait_ready

SMALL, DA2 = "midas_v21_small_256", "depth_anything_v2_small"


@pytest.fixture(scope="module")
def estimators(
    converted_onnx: Path,
    exported_model: Callable[[str], Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> list[DepthEstimator]:
    return [
        loaded_estimator(converted_onnx, tmp_path_factory),
        loaded_estimator(exported_model(DA2), tmp_path_factory, model=DA2),
    ]


@pytest.fixture
def client(estimators: list[DepthEstimator], tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(models=f"{SMALL},{DA2}", jobs_dir=tmp_path / "jobs")
    with TestClient(create_app(settings, estimators)) as client:
        wait_ready(client)
        yield client


def test_models_lists_each_loaded_card_with_its_licence(client: TestClient) -> None:
    body = client.get("/v1/models").json()
    models = {m["name"]: m for m in body["models"]}
    assert list(models) == [SMALL, DA2]
    assert [m["default"] for m in body["models"]] == [True, False]
    da2 = models[DA2]
    assert (da2["kind"], da2["unit"], da2["family"]) == (
        "relative_disparity",
        None,
        "depth_anything_v2",
    )
    assert da2["licence"]["spdx"] == "Apache-2.0" and da2["licence"]["commercial"] is True
    assert da2["input_policy"]["multiple_of"] == 14 and da2["input_policy"]["rule"] == "lower_bound"
    assert da2["params"] == 24_785_089 and "da2_small" in da2["aliases"]
    assert models[SMALL]["licence"]["spdx"] == "MIT"


def test_depth_uses_the_requested_model_and_says_which(
    client: TestClient, estimators: list[DepthEstimator]
) -> None:
    default = client.post("/v1/depth?format=json", content=PNG).json()
    chosen = client.post(f"/v1/depth?format=json&model={DA2}", content=PNG).json()
    alias = client.post("/v1/depth?format=json&model=da2_small", content=PNG).json()
    assert (default["model"], default["kind"]) == (SMALL, "relative_inverse_depth")
    assert (chosen["model"], chosen["kind"]) == (DA2, "relative_disparity")
    assert alias["model"] == DA2
    # 60x80 image: lower_bound at 518 with sides multiples of 14 -> 518x686.
    assert chosen["network_input"] == [518, 686]
    npy = client.post(f"/v1/depth?format=npy&model={DA2}", content=PNG)
    got = np.load(io.BytesIO(npy.content))
    expected = estimators[1].predict(test_image(3, 60, 80)).depth
    np.testing.assert_array_equal(got, expected)


def test_a_model_not_loaded_or_unknown_is_a_422_that_lists_the_loaded(client: TestClient) -> None:
    body = assert_error(
        client.post("/v1/depth?model=dpt_large_384", content=PNG), 422, "invalid_option"
    )
    assert f"loaded: {SMALL}, {DA2}" in body["detail"]
    body = assert_error(client.post("/v1/depth?model=nope", content=PNG), 422, "unknown_model")
    assert "known models:" in body["detail"] and "depth_anything_v2_large" in body["detail"]


def test_jobs_run_on_the_requested_model(client: TestClient) -> None:
    files = [("file", ("a.png", PNG, "image/png"))]
    response = client.post(f"/v1/jobs?model={DA2}&format=npy", files=files)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    deadline = time.monotonic() + 60
    while (state := client.get(f"/v1/jobs/{job_id}").json()["state"]) != "done":
        assert state in {"queued", "running"} and time.monotonic() < deadline, state
        time.sleep(0.05)
    result = client.get(f"/v1/jobs/{job_id}/result")
    data = result.content
    if result.headers["content-type"] == "application/zip":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            data = archive.read(archive.namelist()[0])
    assert np.load(io.BytesIO(data)).shape == (60, 80)
    assert_error(client.post("/v1/jobs?model=dpt_large_384", files=files), 422, "invalid_option")


def test_live_streams_choose_their_model(client: TestClient) -> None:
    with client.websocket_connect(f"/v1/live?model={DA2}") as ws:
        ws.send_bytes(PNG)
        message = ws.receive_bytes()
        size = int.from_bytes(message[:4], "big")
        header = json.loads(message[4 : 4 + size])
        assert (header["width"], header["height"]) == (80, 60)
    with client.websocket_connect("/v1/live?model=dpt_large_384") as ws:
        refusal = ws.receive_json()
        assert (
            refusal["code"] == "invalid_option" and f"loaded: {SMALL}, {DA2}" in refusal["detail"]
        )
