"""Start-up, overload and shutdown: readiness, bounded queue, queue timeout, draining, SIGTERM.

Slow or not-yet-loaded models are real DepthEstimators whose ``predict`` or ``load`` wait on
threading primitives, so every state is reached deterministically rather than by sleeping.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import pytest

pytest.importorskip("fastapi")

import httpx
from fastapi.testclient import TestClient

from conftest import loaded_estimator, test_image
from depthlite import DepthEstimator
from depthlite.runtime.base import Backend
from depthlite.server import Settings, create_app
from depthlite.server.service import Service

WAIT = 10.0
PNG = cv2.imencode(".png", test_image(5, 48, 64))[1].tobytes()


class GatedEstimator(DepthEstimator):
    """``load`` waits for ``loadable``; while ``gated``, ``predict`` waits for ``release``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loadable = threading.Event()
        self.loadable.set()
        self.gated = False
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()

    def load(self) -> Backend:
        assert self.loadable.wait(WAIT), "the test never let the model load"
        return super().load()

    def predict(self, image: Any, **kwargs: Any) -> Any:
        if self.gated:
            self.entered.release()
            assert self.release.wait(WAIT), "the test never released predict"
        return super().predict(image, **kwargs)

    def hold(self) -> None:
        """Make the next predictions block until :meth:`let_go`."""
        self.release.clear()
        self.gated = True

    def let_go(self) -> None:
        self.gated = False
        self.release.set()


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.005)


def error_code(response: Any) -> str:
    body = response.json()
    assert set(body) == {"error", "detail"}, body
    return str(body["error"])


def post(client: TestClient) -> Any:
    return client.post("/v1/depth", content=PNG)


def wait_ready(client: TestClient) -> None:
    wait_until(lambda: client.get("/readyz").status_code == 200, "the model is ready")


@contextmanager
def serving(estimator: DepthEstimator, **settings: Any) -> Iterator[tuple[TestClient, Service]]:
    app = create_app(Settings(**settings), estimator)
    with TestClient(app) as client:
        yield client, app.state.service


@pytest.fixture(scope="module")
def gated(converted_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> GatedEstimator:
    """One estimator for the module (loading is the slow part); each test resets its gates."""
    return loaded_estimator(converted_onnx, tmp_path_factory, GatedEstimator)


@pytest.fixture
def fresh(converted_onnx: Path) -> GatedEstimator:
    """An estimator that has not loaded yet."""
    return GatedEstimator(weights=converted_onnx, threads=1)


def test_not_ready_until_the_model_is_loaded_and_warmed_up(fresh: GatedEstimator) -> None:
    fresh.loadable.clear()
    with serving(fresh) as (client, service):
        assert client.get("/healthz").status_code == 200
        not_ready = client.get("/readyz")
        assert not_ready.status_code == 503
        assert error_code(not_ready) == "not_ready"
        refused = post(client)
        assert (refused.status_code, error_code(refused)) == (503, "not_ready")
        assert refused.headers["retry-after"].isdigit()
        (model,) = client.get("/v1/models").json()["models"]
        assert (model["loaded"], model["input_policy"]) == (False, None)

        fresh.loadable.set()
        wait_ready(client)
        assert service.is_ready()
        assert post(client).status_code == 200
        (model,) = client.get("/v1/models").json()["models"]
        assert model["loaded"] is True


def test_a_model_that_fails_to_load_is_reported(tmp_path: Path) -> None:
    broken = DepthEstimator(weights=tmp_path / "missing.onnx", threads=1)
    with serving(broken) as (client, _):
        wait_until(lambda: client.get("/readyz").json()["error"] == "model_unavailable", "failed")
        response = post(client)
        assert (response.status_code, error_code(response)) == (503, "model_unavailable")
        assert "missing.onnx" in response.json()["detail"]
        assert "retry-after" not in response.headers  # retrying will not help
        assert client.get("/healthz").status_code == 200


def test_overload_is_refused_at_once_and_the_server_recovers(gated: GatedEstimator) -> None:
    with (
        serving(gated, workers=1, queue_size=1, queue_timeout=WAIT) as (client, service),
        ThreadPoolExecutor(2) as threads,
    ):
        wait_ready(client)
        gated.hold()
        first = threads.submit(post, client)
        assert gated.entered.acquire(timeout=WAIT)
        second = threads.submit(post, client)
        wait_until(lambda: service.pool.stats().queued == 1, "the second request waits")

        start = time.perf_counter()
        third = post(client)
        assert time.perf_counter() - start < 1.0, "a full queue must refuse at once"
        assert (third.status_code, error_code(third)) == (503, "overloaded")
        assert int(third.headers["retry-after"]) >= 1

        gated.let_go()
        assert first.result(WAIT).status_code == 200
        assert second.result(WAIT).status_code == 200
        assert post(client).status_code == 200
        stats = service.pool.stats()
        assert (stats.alive, stats.rejected_full, stats.failed) == (1, 1, 0)
        metrics = client.get("/metrics").text
        assert 'depthlite_pool_rejections_total{reason="queue_full"} 1.0' in metrics


def test_a_request_waiting_past_the_queue_timeout_gets_503(gated: GatedEstimator) -> None:
    with (
        serving(gated, workers=1, queue_size=1, queue_timeout=0.3) as (client, service),
        ThreadPoolExecutor(1) as threads,
    ):
        wait_ready(client)
        gated.hold()
        first = threads.submit(post, client)
        assert gated.entered.acquire(timeout=WAIT)

        start = time.perf_counter()
        waited = post(client)
        assert time.perf_counter() - start >= 0.25
        assert (waited.status_code, error_code(waited)) == (503, "queue_timeout")
        assert waited.headers["retry-after"].isdigit()

        gated.let_go()
        assert first.result(WAIT).status_code == 200
        assert post(client).status_code == 200
        stats = service.pool.stats()
        assert (stats.alive, stats.timed_out, stats.queued) == (1, 1, 0)


def test_shutdown_finishes_in_flight_requests_and_refuses_new_ones(gated: GatedEstimator) -> None:
    # One event loop drives the lifespan and the requests (TestClient cannot exit while one of
    # its requests is in flight), so the order of events is exactly the server's.
    app = create_app(Settings(workers=1, queue_size=2), gated)
    service: Service = app.state.service

    async def scenario() -> None:
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            while (await client.get("/readyz")).status_code != 200:
                await asyncio.sleep(0.01)
            gated.hold()
            in_flight = asyncio.ensure_future(client.post("/v1/depth", content=PNG))
            assert await asyncio.to_thread(gated.entered.acquire, timeout=WAIT)

            service.begin_shutdown()  # what the first SIGTERM does (see server/runner.py)
            late = await client.post("/v1/depth", content=PNG)
            assert (late.status_code, error_code(late)) == (503, "shutting_down")
            assert late.headers["retry-after"].isdigit()
            assert error_code(await client.get("/readyz")) == "shutting_down"
            assert (await client.get("/healthz")).status_code == 200

            asyncio.get_running_loop().call_later(0.3, gated.let_go)
            start = time.perf_counter()
            await lifespan.__aexit__(None, None, None)  # drains the pool
            assert time.perf_counter() - start >= 0.2, "shutdown must wait for in-flight work"
            # Drained means its job ran to the end; the response follows on the loop.
            response = await asyncio.wait_for(in_flight, WAIT)
            assert response.status_code == 200
            assert response.headers["content-type"] == "image/png"
        assert service.pool.stats().alive == 0

    asyncio.run(scenario())


def test_a_stop_during_warm_up_waits_for_it_and_skips_the_rest(fresh: GatedEstimator) -> None:
    # A stop while the warm-up runs the network: the process must not exit under it (ONNX
    # Runtime's threads then abort it, exit 134), and the remaining warm-up steps are skipped.
    fresh.hold()
    calls: list[str] = []
    predict = fresh.predict

    def counted(image: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("source", ""))
        return predict(image, **kwargs)

    fresh.predict = counted  # type: ignore[method-assign]
    app = create_app(Settings(), fresh)
    service: Service = app.state.service

    async def scenario() -> None:
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        assert await asyncio.to_thread(fresh.entered.acquire, timeout=WAIT)  # first warm-up run
        service.begin_shutdown()  # what SIGTERM does
        asyncio.get_running_loop().call_later(0.3, fresh.let_go)
        start = time.perf_counter()
        await lifespan.__aexit__(None, None, None)
        assert time.perf_counter() - start >= 0.2, "the stop must wait for the warm-up"

    asyncio.run(scenario())
    assert service._warmup is not None and not service._warmup.is_alive()
    assert not service.is_ready()
    assert calls == ["<warm-up>"], "the later warm-up images must be skipped"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_depthlite_serve_serves_and_exits_cleanly_on_sigterm(
    converted_onnx: Path, tmp_path: Path
) -> None:
    port = _free_port()
    log = tmp_path / "serve.log"
    command = [
        *(sys.executable, "-m", "depthlite.cli.main", "serve"),
        *("--weights", str(converted_onnx), "--port", str(port)),
        *("--workers", "1", "--threads", "1", "--log-format", "json"),
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=os.environ)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        response = httpx.post(
            f"{base}/v1/depth?format=json", files={"file": ("a.png", PNG)}, timeout=30
        )
        assert response.status_code == 200, response.text
        assert response.json()["width"] == 64
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert lines, log.read_text()
    access = [line for line in lines if line.get("path") == "/v1/depth"]
    assert access and access[0]["status"] == 200 and access[0]["method"] == "POST"
    assert {"time", "level", "logger", "message", "duration_ms"} <= set(access[0])
