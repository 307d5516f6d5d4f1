"""``WS /v1/live``: streaming answers, newest-frame-wins, isolation, limits, auth, cleanup."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from conftest import SlowEstimator, loaded_estimator, test_image
from depthlite import DepthEstimator
from depthlite.server import Settings, create_app
from depthlite.server.live import LiveFrame
from test_server import png_bytes, wait_ready

FRAMES = [png_bytes(test_image(seed, 48, 64)) for seed in range(4)]


@pytest.fixture(scope="module")
def estimator(converted_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> DepthEstimator:
    return loaded_estimator(converted_onnx, tmp_path_factory)


def _client(est: DepthEstimator, **settings: Any) -> TestClient:
    return TestClient(create_app(Settings(**settings), est))


@pytest.fixture(scope="module")
def client(estimator: DepthEstimator) -> Iterator[TestClient]:
    with _client(estimator, workers=1, queue_size=2) as test_client:
        wait_ready(test_client)
        yield test_client


def _answer(ws: Any) -> tuple[dict[str, Any], np.ndarray]:
    header, jpeg = LiveFrame.parse(ws.receive_bytes())
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return header, image


def _wait_closed(client: TestClient) -> None:
    service = client.app.state.service  # type: ignore[attr-defined]
    deadline = time.monotonic() + 5
    while service.live.active or service.pool.stats().busy:
        assert time.monotonic() < deadline, "the live connection was not cleaned up"
        time.sleep(0.01)


def test_frames_stream_back_as_colour_depth_and_close_frees_everything(
    client: TestClient,
) -> None:
    with client.websocket_connect("/v1/live") as ws:
        for index, frame in enumerate(FRAMES, start=1):
            ws.send_bytes(frame)
            header, image = _answer(ws)
            assert header["seq"] == index
            assert (header["width"], header["height"]) == (64, 48)
            assert image.shape == (48, 64, 3)
            assert set(header["timings"]) >= {"decode", "inference", "encode", "total"}
            assert header["dropped"] == 0
        assert client.app.state.service.live.active == 1  # type: ignore[attr-defined]
    _wait_closed(client)
    metrics = client.get("/metrics").text
    assert "depthlite_live_connections 0.0" in metrics
    assert 'depthlite_live_frames_total{outcome="answered"}' in metrics


def test_only_the_newest_pending_frame_is_kept(
    converted_onnx: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with _client(
        loaded_estimator(converted_onnx, tmp_path_factory, SlowEstimator), workers=1
    ) as client:
        wait_ready(client)
        with client.websocket_connect("/v1/live") as ws:
            for frame in FRAMES * 2:  # 8 frames while the first takes 0.3 s
                ws.send_bytes(frame)
            seqs = []
            while not seqs or seqs[-1] != 8:
                header, _ = _answer(ws)
                seqs.append(header["seq"])
            assert seqs[0] == 1
            assert len(seqs) <= 3, seqs  # the first, maybe one in between, the newest
            assert header["dropped"] == 8 - len(seqs)
        _wait_closed(client)


def test_each_connection_has_its_own_normaliser(client: TestClient) -> None:
    with client.websocket_connect("/v1/live") as first:
        for frame in FRAMES[:3]:
            first.send_bytes(frame)
            _answer(first)
        first.send_bytes(FRAMES[3])
        _, after_history = _answer(first)
        with client.websocket_connect("/v1/live") as second:
            second.send_bytes(FRAMES[3])
            _, fresh = _answer(second)
    with client.websocket_connect("/v1/live") as third:
        third.send_bytes(FRAMES[3])
        _, fresh_again = _answer(third)
    np.testing.assert_array_equal(fresh, fresh_again)
    assert not np.array_equal(fresh, after_history)  # the first stream's range was smoothed


def test_a_bad_frame_gets_an_error_and_the_stream_goes_on(client: TestClient) -> None:
    with client.websocket_connect("/v1/live") as ws:
        ws.send_bytes(b"definitely not an image")
        error = ws.receive_json()
        assert error["type"] == "error"
        assert error["code"] in {"unsupported_media_type", "corrupt_image"}
        assert error["seq"] == 1
        ws.send_text('{"colormap": "nope"}')
        assert "colormap" in ws.receive_json()["detail"]
        ws.send_text('{"colormap": "viridis"}')
        ws.send_bytes(FRAMES[0])
        header, _ = _answer(ws)
        assert header["seq"] == 2


def test_per_frame_mode_and_bad_options(client: TestClient) -> None:
    with client.websocket_connect("/v1/live?normalize=per-frame&colormap=magma") as ws:
        ws.send_bytes(FRAMES[0])
        _answer(ws)
    with client.websocket_connect("/v1/live?normalize=sometimes") as ws:
        assert ws.receive_json()["code"] == "invalid_option"
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
        assert closed.value.code == 1008


def test_api_key_is_required_when_configured(estimator: DepthEstimator) -> None:
    with _client(estimator, api_key="s3cret") as client:
        wait_ready(client)
        with client.websocket_connect("/v1/live?key=wrong") as ws:
            assert ws.receive_json()["code"] == "unauthorized"
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_text()
            assert closed.value.code == 1008
        with client.websocket_connect("/v1/live?key=s3cret") as ws:
            ws.send_bytes(FRAMES[0])
            assert _answer(ws)[0]["seq"] == 1


def test_connection_cap_and_busy_pool(
    converted_onnx: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    est = loaded_estimator(converted_onnx, tmp_path_factory, SlowEstimator)
    with _client(est, workers=1, queue_size=0, live_max_connections=2) as client:
        wait_ready(client)
        with (
            client.websocket_connect("/v1/live") as first,
            client.websocket_connect("/v1/live") as second,
        ):
            with client.websocket_connect("/v1/live") as third:
                assert third.receive_json()["code"] == "overloaded"
                with pytest.raises(WebSocketDisconnect) as closed:
                    third.receive_text()
                assert closed.value.code == 1013
            first.send_bytes(FRAMES[0])
            time.sleep(0.1)  # the only worker is now busy with it, and nothing may queue
            second.send_bytes(FRAMES[1])
            busy = second.receive_json()
            assert busy["type"] == "busy"
            assert busy["retry_after"] >= 1
            assert _answer(first)[0]["seq"] == 1
        _wait_closed(client)


def test_shutdown_closes_open_streams(estimator: DepthEstimator) -> None:
    with _client(estimator) as client:
        wait_ready(client)
        with client.websocket_connect("/v1/live") as ws:
            ws.send_bytes(FRAMES[0])
            _answer(ws)
            client.app.state.service.begin_shutdown()  # type: ignore[attr-defined]
            assert ws.receive_json()["code"] == "shutting_down"
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_text()
            assert closed.value.code == 1001


def test_a_busy_live_stream_does_not_starve_uploads(
    converted_onnx: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    import threading

    est = loaded_estimator(converted_onnx, tmp_path_factory, SlowEstimator, delay=0.1)
    stop = threading.Event()
    answered = []
    with _client(est, workers=1, queue_size=4) as client:
        wait_ready(client)

        def stream() -> None:
            with client.websocket_connect("/v1/live") as ws:
                while not stop.is_set():
                    ws.send_bytes(FRAMES[0])
                    message = ws.receive()
                    answered.append("bytes" in message and message["bytes"] is not None)

        streamer = threading.Thread(target=stream)
        streamer.start()
        try:
            deadline = time.monotonic() + 10
            while sum(answered) < 3:
                assert time.monotonic() < deadline, "the live stream never got going"
                time.sleep(0.01)
            for frame in FRAMES[:3]:  # while the stream keeps the single worker busy
                response = client.post("/v1/depth", content=frame)
                assert response.status_code == 200, response.text
        finally:
            stop.set()
            streamer.join(timeout=10)
    assert sum(answered) >= 3


def test_other_origins_are_refused_and_keys_never_logged(client: TestClient) -> None:
    import logging

    from depthlite.server.logs import RedactKeys

    with client.websocket_connect("/v1/live", headers={"origin": "http://evil.example"}) as ws:
        assert ws.receive_json()["code"] == "forbidden_origin"
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
        assert closed.value.code == 1008
    with client.websocket_connect("/v1/live", headers={"origin": "http://testserver"}) as ws:
        ws.send_bytes(FRAMES[0])
        assert _answer(ws)[0]["seq"] == 1
    record = logging.LogRecord(
        "uvicorn.error",
        logging.INFO,
        __file__,
        1,
        '%s - "WebSocket %s" [accepted]',
        ("127.0.0.1:5", "/v1/live?colormap=magma&key=s3cret&x=1"),
        None,
    )
    RedactKeys().filter(record)
    assert "s3cret" not in record.getMessage()
    assert "key=***&x=1" in record.getMessage()
