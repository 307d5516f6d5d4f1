"""Distributed jobs against a real ``redis-server`` and real ``depthlite worker`` processes.

The fixtures start Debian's ``redis-server`` on a free loopback port (``.ci/run`` installs it)
and workers as subprocesses with a short visibility timeout, so a killed worker's job comes
back within seconds. Every process is stopped at the end.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from conftest import test_image
from depthlite.jobs.protocol import QueueConfig, attempts_key, job_payload
from depthlite.jobs.spec import JobSpec

pytestmark = pytest.mark.redis

REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"
VISIBILITY = 4.0
WAIT = 60.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not os.access(REDIS, os.X_OK):
        pytest.fail("needs Debian's redis-server: apt-get install redis-server (.ci/run does)")
    import redis

    port = _free_port()
    folder = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [
            REDIS,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def config(redis_url: str, tmp_path: Path) -> QueueConfig:
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    return QueueConfig(
        broker=redis_url, store=str(tmp_path / "store"), max_tries=2, visibility_timeout=VISIBILITY
    )


def _env(config: QueueConfig, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEPTHLITE_")}
    env.update(
        DEPTHLITE_HOME=str(home),
        DEPTHLITE_OFFLINE="1",
        DEPTHLITE_QUEUE=config.broker,
        DEPTHLITE_STORE=config.store,
        DEPTHLITE_QUEUE_MAX_TRIES=str(config.max_tries),
        DEPTHLITE_QUEUE_VISIBILITY_TIMEOUT=str(config.visibility_timeout),
    )
    return env


@pytest.fixture
def start_worker(
    config: QueueConfig, converted_onnx: Path, tmp_path: Path
) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        log = tmp_path / f"worker{len(procs)}.log"
        command = [sys.executable, "-m", "depthlite.cli.main", "worker"]
        command += ["--weights", str(converted_onnx), "--threads", "1"]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=_env(config, tmp_path / "home")
            )
        procs.append(proc)
        deadline = time.monotonic() + WAIT
        while b"ready." not in log.read_bytes():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _images(folder: Path, count: int, size: tuple[int, int] = (48, 64)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        image = test_image(index, *size)
        cv2.imwrite(str(folder / f"img{index:03d}.png"), image[..., ::-1])
    return folder


def _batch(config: QueueConfig, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "depthlite.cli.main", "batch", *args]
    return subprocess.run(
        command,
        check=False,
        capture_output=True,
        text=True,
        timeout=WAIT * 2,
        env=_env(config, tmp_path / "home"),
    )


def _wait_task(celery: Any, task_id: str, states: set[str]) -> Any:
    from celery.result import AsyncResult

    result = AsyncResult(task_id, app=celery)
    deadline = time.monotonic() + WAIT
    while result.state not in states:
        assert time.monotonic() < deadline, f"task {task_id} stuck in {result.state}"
        time.sleep(0.05)
    return result


def test_batch_through_two_workers_matches_local_and_resumes(
    config: QueueConfig, start_worker: Callable[[], Any], converted_onnx: Path, tmp_path: Path
) -> None:
    start_worker()
    start_worker()
    inputs = _images(tmp_path / "in" / "sub", 10).parent
    queued = _batch(
        config,
        tmp_path,
        str(inputs),
        "-r",
        "-o",
        str(tmp_path / "q"),
        "--chunk",
        "3",
        "-f",
        "color,npy",
    )
    assert queued.returncode == 0, queued.stderr
    assert "10 image(s) done through the queue" in queued.stderr
    local = _batch(
        config,
        tmp_path,
        str(inputs),
        "-r",
        "-o",
        str(tmp_path / "l"),
        "--local",
        "-f",
        "color,npy",
        "--weights",
        str(converted_onnx),
        "--threads",
        "1",
    )
    assert local.returncode == 0, local.stderr
    names = sorted(p.relative_to(tmp_path / "l").as_posix() for p in (tmp_path / "l").rglob("*.*"))
    assert len(names) == 20
    assert (
        sorted(p.relative_to(tmp_path / "q").as_posix() for p in (tmp_path / "q").rglob("*.*"))
        == names
    )
    for name in names:
        if name.endswith(".npy"):
            np.testing.assert_allclose(
                np.load(tmp_path / "q" / name), np.load(tmp_path / "l" / name), rtol=1e-5, atol=1e-6
            )
    again = _batch(
        config, tmp_path, str(inputs), "-r", "-o", str(tmp_path / "q"), "-f", "color,npy"
    )
    assert again.returncode == 0, again.stderr
    assert "0 image(s) done through the queue, 10 already done" in again.stderr


def test_sigkill_mid_job_completes_exactly_once(
    config: QueueConfig, start_worker: Callable[[], Any], tmp_path: Path
) -> None:
    import redis

    from depthlite.jobs.celery_app import make_celery
    from depthlite.jobs.protocol import TASK_NAME
    from depthlite.jobs.shared import open_store

    celery, store = make_celery(config), open_store(config.store)
    first = start_worker()
    images = sorted(_images(tmp_path / "big", 40, size=(240, 320)).iterdir())
    named = []
    for index, path in enumerate(images):
        target = path.with_name(f"{index:06d}_{path.name}")
        path.rename(target)
        named.append(target)
    payload = job_payload("job-kill", JobSpec(formats=("color",)), named, store)
    celery.send_task(TASK_NAME, args=[payload], task_id="job-kill")
    progress = _wait_task(celery, "job-kill", {"PROGRESS", "SUCCESS"})
    assert progress.state == "PROGRESS", "the job finished before the worker could be killed"
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    start_worker()
    done = _wait_task(celery, "job-kill", {"SUCCESS", "FAILURE"})
    assert done.state == "SUCCESS", done.result
    answer = done.result
    assert answer["attempts"] == 2
    result_files = sorted(p.name for p in (Path(config.store) / "results" / "job-kill").iterdir())
    assert result_files == ["done.json", "result.zip"]
    assert len(zipfile.ZipFile(Path(config.store) / answer["result_key"]).namelist()) == 40
    # Delivered again after it finished (a worker dying before its ack): no second result.
    stamp = (Path(config.store) / answer["result_key"]).stat().st_mtime_ns
    done.forget()
    celery.send_task(TASK_NAME, args=[payload], task_id="job-kill")
    again = _wait_task(celery, "job-kill", {"SUCCESS", "FAILURE"})
    assert again.result == answer
    assert (Path(config.store) / answer["result_key"]).stat().st_mtime_ns == stamp
    assert int(redis.Redis.from_url(config.broker).get(attempts_key("job-kill"))) == 3


def test_a_job_that_keeps_killing_workers_fails_with_the_reason(
    config: QueueConfig, start_worker: Callable[[], Any], tmp_path: Path
) -> None:
    import redis

    from depthlite.jobs.celery_app import make_celery
    from depthlite.jobs.protocol import TASK_NAME
    from depthlite.jobs.shared import open_store

    celery, store = make_celery(config), open_store(config.store)
    client = redis.Redis.from_url(config.broker)
    images = sorted(_images(tmp_path / "poison", 40, size=(240, 320)).iterdir())
    named = [p.rename(p.with_name(f"{i:06d}_{p.name}")) for i, p in enumerate(images)]
    payload = job_payload("job-poison", JobSpec(), named, store)
    celery.send_task(TASK_NAME, args=[payload], task_id="job-poison")
    for attempt in range(1, config.max_tries + 1):
        worker = start_worker()
        deadline = time.monotonic() + WAIT
        while int(client.get(attempts_key("job-poison")) or 0) < attempt:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        worker.send_signal(signal.SIGKILL)  # as if the job crashed its worker
        worker.wait(timeout=10)
    start_worker()
    failed = _wait_task(celery, "job-poison", {"SUCCESS", "FAILURE"})
    assert failed.state == "FAILURE"
    assert f"gave up after {config.max_tries} attempts" in str(failed.result)


def test_server_jobs_run_on_celery_workers(
    config: QueueConfig, start_worker: Callable[[], Any], converted_onnx: Path, tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    from depthlite import DepthEstimator
    from depthlite.server import Settings, create_app
    from test_jobs import _files, _submit, _wait
    from test_server import wait_ready

    settings = Settings(
        queue=config.broker,
        store=config.store,
        jobs_dir=tmp_path / "jobs",
        queue_visibility_timeout=VISIBILITY,
    )
    start_worker()
    est = DepthEstimator(weights=converted_onnx, threads=1, progress=False)
    with TestClient(create_app(settings, est)) as client:
        wait_ready(client)
        small = [(p.name, p.read_bytes()) for p in sorted(_images(tmp_path / "s", 3).iterdir())]
        job = _submit(client, _files(*small), format="color,png16")
        done = _wait(client, job["id"])
        assert done["attempts"] == 1
        archive = zipfile.ZipFile(io.BytesIO(client.get(done["links"]["result"]).content))
        assert len(archive.namelist()) == 6
        wrong = _submit(client, _files(*small[:1]), precision="int8")
        failed = _wait(client, wrong["id"], states=("failed",))
        assert "start workers with --precision int8" in failed["error"]
        bad = _submit(client, _files(("x.png", b"not an image"), ("y.png", b"")))
        failed = _wait(client, bad["id"], states=("failed",))
        assert "every input failed (2)" in failed["error"]
        assert [f["input"] for f in failed["failures"]] == ["x.png", "y.png"]
        big = [
            (p.name, p.read_bytes())
            for p in sorted(_images(tmp_path / "b", 40, (240, 320)).iterdir())
        ]
        long_job = _submit(client, _files(*big))
        _wait(client, long_job["id"], states=("running",))
        assert client.delete(f"/v1/jobs/{long_job['id']}").status_code == 202
        cancelled = _wait(client, long_job["id"], states=("cancelled",))
        assert cancelled["progress"]["done"] < 40
