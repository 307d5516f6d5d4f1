"""Slow clients against a real ``depthlite serve``: stalled connections are closed within the
deadlines, with 408 where a request had begun, while real requests keep getting 200."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import httpx
import pytest

pytest.importorskip("uvicorn")

from servekit import Served, serve
from test_server import PNG

DEADLINE = 1.5  # seconds: header and body timeouts of the server under test
# Each kind of stall, 75 connections of each: 300 in all.
PER_KIND = 75
STALLS = ("idle", "slow_head", "slow_body", "short_body")


async def _stall(port: int, kind: str) -> tuple[float, bytes]:
    """One stalled connection; (seconds until the server closed it, what it answered)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    start = time.monotonic()
    host = f"Host: 127.0.0.1:{port}\r\n"
    head = {
        "slow_body": f"POST /v1/depth HTTP/1.1\r\n{host}Content-Length: 100000\r\n\r\n",
        "short_body": f"POST /v1/jobs HTTP/1.1\r\n{host}Content-Length: 2000000000\r\n"
        "Content-Type: application/octet-stream\r\n\r\n",
    }

    async def trickle() -> None:
        if kind == "slow_head":  # a header at 1 byte per 0.2 s: never complete in time
            for byte in f"GET /healthz HTTP/1.1\r\n{host}X-Slow: ".encode() + b"a" * 100:
                writer.write(bytes([byte]))
                await asyncio.sleep(0.2)
        elif kind == "slow_body":  # 10 bytes/s
            writer.write(head[kind].encode())
            for _ in range(100):
                writer.write(b"x" * 10)
                await asyncio.sleep(1.0)
        elif kind == "short_body":  # 1 KiB of the 2 GB announced, then nothing
            writer.write(head[kind].encode() + b"y" * 1024)
            await asyncio.sleep(60)

    sender = asyncio.ensure_future(trickle())
    answer = b""
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), 4 * DEADLINE + 10):
            answer += chunk
    except (ConnectionError, asyncio.TimeoutError):
        pass
    finally:
        sender.cancel()
        writer.close()
    return time.monotonic() - start, answer


async def _stall_all(port: int) -> list[tuple[str, float, bytes]]:
    kinds = [kind for kind in STALLS for _ in range(PER_KIND)]
    results = await asyncio.gather(*(_stall(port, kind) for kind in kinds))
    return [(kind, seconds, answer) for kind, (seconds, answer) in zip(kinds, results, strict=True)]


def _real_requests(served: Served, stop: threading.Event, statuses: list[int]) -> None:
    with httpx.Client(base_url=served.base, timeout=30) as client:
        while not stop.is_set():
            statuses.append(client.get("/healthz").status_code)
            response = client.post("/v1/depth?format=json", content=PNG)
            statuses.append(response.status_code)
            time.sleep(0.1)


@pytest.mark.slow
def test_stalled_connections_are_closed_while_real_requests_get_200(
    converted_onnx: Path, tmp_path: Path
) -> None:
    args = ["--threads", "1", "--jobs-dir", str(tmp_path / "jobs"), "--max-connections", "1000"]
    args += ["--header-timeout", str(DEADLINE), "--body-timeout", str(DEADLINE)]
    args += ["--min-upload-rate", "10000"]
    with serve(converted_onnx, tmp_path, *args) as served:
        statuses: list[int] = []
        stop = threading.Event()
        real = threading.Thread(target=_real_requests, args=(served, stop, statuses))
        real.start()
        try:
            results = asyncio.run(_stall_all(served.port))
        finally:
            stop.set()
            real.join(30)
        log = served.log.read_text()
    for kind, seconds, answer in results:
        # The deadline, plus scheduling slack on a loaded machine; never the test's timeout.
        assert seconds < 3 * DEADLINE + 2, (kind, seconds)
        if kind != "idle":
            assert answer.startswith(b"HTTP/1.1 408"), (kind, answer[:200])
        else:
            assert answer == b"", answer[:200]
    assert statuses and set(statuses) == {200}, sorted(set(statuses))
    assert log.count("request body too slow") == 2 * PER_KIND, log[-3000:]
    assert log.count("incomplete request head") == PER_KIND
    assert log.count(": no request within") == PER_KIND


def test_connections_above_the_cap_are_closed_at_once(converted_onnx: Path, tmp_path: Path) -> None:
    with serve(converted_onnx, tmp_path, "--threads", "1", "--max-connections", "5") as served:

        async def scenario() -> list[bytes]:
            held = [await asyncio.open_connection("127.0.0.1", served.port) for _ in range(5)]
            extra = [await asyncio.open_connection("127.0.0.1", served.port) for _ in range(3)]
            answers = [await asyncio.wait_for(r.read(), 5) for r, _ in extra]
            for _, writer in held + extra:
                writer.close()
            return answers

        assert asyncio.run(scenario()) == [b"", b"", b""]
        assert httpx.get(f"{served.base}/healthz").status_code == 200
        assert "--max-connections" in served.log.read_text()
