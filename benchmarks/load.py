"""Bounded load run against `depthlite serve` on loopback.

    python benchmarks/load.py --weights MODEL.onnx --workers 2 --queue-size 4 \
        --levels 1,2,4,8 --requests 200 --soak 2000

Starts the server as a subprocess on a free 127.0.0.1 port, waits for /readyz, then for each
concurrency level sends a fixed number of requests (a 640x480 JPEG, colour PNG back) and
prints p50/p99 latency, throughput and the count of each status. Finally a soak of --soak
requests at the highest level, with the server's RSS before and after. Every loop is bounded
in count and time; nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import cv2
import httpx

from depthlite.bench.runner import natural_looking_image
from depthlite.bench.stats import percentile

_REQUEST_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        return int(next(line.split()[1] for line in f if line.startswith("VmRSS"))) / 1024.0


async def _one(
    client: httpx.AsyncClient, body: bytes, latencies: list[float], codes: Counter[int]
) -> None:
    start = time.perf_counter()
    try:
        response = await client.post(
            "/v1/depth", content=body, headers={"Content-Type": "image/jpeg"}
        )
        codes[response.status_code] += 1
        if response.status_code == 200:
            latencies.append((time.perf_counter() - start) * 1000.0)
    except httpx.HTTPError as exc:
        codes[-1] += 1  # transport errors: counted as "other", never hidden
        print(f"transport error: {exc!r}", file=sys.stderr)


async def run_level(base: str, body: bytes, clients: int, total: int) -> dict[str, float]:
    """``total`` requests from ``clients`` concurrent clients (each waits for its answer)."""
    latencies: list[float] = []
    codes: Counter[int] = Counter()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(i)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=_REQUEST_TIMEOUT, limits=limits) as client:

        async def worker() -> None:
            while not queue.empty():
                queue.get_nowait()
                await _one(client, body, latencies, codes)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - start
    other = sum(n for code, n in codes.items() if code not in (200, 503))
    return {
        "clients": clients,
        "requests": total,
        "ok": codes[200],
        "503": codes[503],
        "other_errors": other,
        "p50_ms": statistics.median(latencies) if latencies else float("nan"),
        "p99_ms": percentile(latencies, 99) if latencies else float("nan"),
        "throughput_rps": codes[200] / elapsed,
    }


def start_server(args: argparse.Namespace, port: int) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable, "-m", "depthlite.cli.main", "serve", "--host", "127.0.0.1",
        "--port", str(port), "--weights", str(args.weights), "--workers", str(args.workers),
        "--queue-size", str(args.queue_size), "--threads", str(args.threads),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(
                f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}"
            )
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError("server not ready within 120 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--queue-size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--levels", default="1,2,4,8")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--soak", type=int, default=2000)
    args = parser.parse_args()

    _, jpeg = cv2.imencode(".jpg", natural_looking_image(480, 640)[..., ::-1])
    body = jpeg.tobytes()
    port = free_port()
    proc = start_server(args, port)
    base = f"http://127.0.0.1:{port}"
    try:
        print(f"server: {args.workers} workers x {args.threads} threads, queue {args.queue_size}; "
              f"640x480 JPEG -> colour PNG")  # fmt: skip
        print(f"{'clients':>8}{'requests':>9}{'ok':>6}{'503':>6}{'other':>6}{'p50 ms':>9}"
              f"{'p99 ms':>9}{'req/s':>8}")  # fmt: skip
        levels = [int(x) for x in args.levels.split(",")]
        for clients in levels:
            r = asyncio.run(run_level(base, body, clients, args.requests))
            print(f"{r['clients']:>8}{r['requests']:>9}{r['ok']:>6}{r['503']:>6}"
                  f"{r['other_errors']:>6}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}"
                  f"{r['throughput_rps']:>8.1f}")  # fmt: skip
        before = server_rss_mb(proc.pid)
        soak = asyncio.run(run_level(base, body, max(levels), args.soak))
        after = server_rss_mb(proc.pid)
        print(f"soak: {soak['requests']} requests at {max(levels)} clients: ok {soak['ok']}, "
              f"503 {soak['503']}, other {soak['other_errors']}; server RSS {before:.0f} MB -> "
              f"{after:.0f} MB ({(after / before - 1) * 100:+.1f}%)")  # fmt: skip
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()
