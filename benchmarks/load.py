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
import http.client
import queue
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
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


def _client(
    port: int, body: bytes, jobs: queue.SimpleQueue[int], results: list[tuple[int, float]]
) -> None:
    """One client: a persistent connection, one request at a time, until the jobs run out."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=_REQUEST_TIMEOUT)
    headers = {"Content-Type": "image/jpeg"}
    while True:
        try:
            jobs.get_nowait()
        except queue.Empty:
            break
        start = time.perf_counter()
        try:
            conn.request("POST", "/v1/depth", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            results.append((response.status, (time.perf_counter() - start) * 1000.0))
        except (OSError, http.client.HTTPException) as exc:
            results.append((-1, 0.0))  # transport errors: counted as "other", never hidden
            print(f"transport error: {exc!r}", file=sys.stderr)
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=_REQUEST_TIMEOUT)
    conn.close()


def run_level(port: int, body: bytes, clients: int, total: int) -> dict[str, float]:
    """``total`` requests from ``clients`` concurrent clients (each waits for its answer)."""
    jobs: queue.SimpleQueue[int] = queue.SimpleQueue()
    for i in range(total):
        jobs.put(i)
    results: list[tuple[int, float]] = []
    threads = [
        threading.Thread(target=_client, args=(port, body, jobs, results)) for _ in range(clients)
    ]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    codes = Counter(code for code, _ in results)
    latencies = [ms for code, ms in results if code == 200]
    return {
        "clients": clients,
        "requests": total,
        "ok": codes[200],
        "503": codes[503],
        "other_errors": sum(n for code, n in codes.items() if code not in (200, 503)),
        "p50_ms": statistics.median(latencies) if latencies else float("nan"),
        "p99_ms": percentile(latencies, 99) if latencies else float("nan"),
        "throughput_rps": codes[200] / elapsed,
    }


def start_server(args: argparse.Namespace, port: int) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "depthlite.cli.main",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--weights",
        str(args.weights),
        "--workers",
        str(args.workers),
        "--queue-size",
        str(args.queue_size),
        "--threads",
        str(args.threads),
    ]
    # The access log goes to a file: a pipe nobody reads fills after ~600 lines and then
    # blocks the server's logging (which is how this benchmark first "found" a hang).
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - it must outlive this function
        prefix="depthlite-serve-", suffix=".log", delete=False
    )
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {Path(log.name).read_text()[-2000:]}")
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError("server not ready within 120 s")


def run_soak(port: int, body: bytes, clients: int, total: int, *, samples: int, pid: int) -> None:
    """``total`` requests in ``samples`` equal parts, the server's RSS read after each part."""
    series = [server_rss_mb(pid)]
    counts = {"requests": 0, "ok": 0, "503": 0, "other_errors": 0}
    for index in range(samples):
        part = total // samples + (1 if index < total % samples else 0)
        result = run_level(port, body, clients, part)
        for key in counts:
            counts[key] += result[key]
        series.append(server_rss_mb(pid))
    before, after = series[0], series[-1]
    print(
        f"soak: {counts['requests']} requests at {clients} clients: ok {counts['ok']}, "
        f"503 {counts['503']}, other {counts['other_errors']}; server RSS {before:.0f} MB -> "
        f"{after:.0f} MB ({(after / before - 1) * 100:+.1f}%)"
    )
    print("RSS MB after each part: " + " ".join(f"{mb:.0f}" for mb in series))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--queue-size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--levels", default="1,2,4,8")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--soak", type=int, default=2000)
    parser.add_argument(
        "--soak-clients", type=int, default=0, help="clients of the soak (default: workers x 4)"
    )
    parser.add_argument("--soak-samples", type=int, default=10, help="RSS readings in the soak")
    args = parser.parse_args()

    _, jpeg = cv2.imencode(".jpg", natural_looking_image(480, 640)[..., ::-1])
    body = jpeg.tobytes()
    port = free_port()
    proc = start_server(args, port)
    try:
        print(
            f"server: {args.workers} workers x {args.threads} threads, queue {args.queue_size}; "
            f"640x480 JPEG -> colour PNG"
        )
        print(
            f"{'clients':>8}{'requests':>9}{'ok':>6}{'503':>6}{'other':>6}{'p50 ms':>9}"
            f"{'p99 ms':>9}{'req/s':>8}"
        )
        levels = [int(x) for x in args.levels.split(",")]
        for clients in levels:
            r = run_level(port, body, clients, args.requests)
            print(
                f"{r['clients']:>8}{r['requests']:>9}{r['ok']:>6}{r['503']:>6}"
                f"{r['other_errors']:>6}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}"
                f"{r['throughput_rps']:>8.1f}"
            )
        soak_clients = args.soak_clients or 4 * args.workers
        run_soak(port, body, soak_clients, args.soak, samples=args.soak_samples, pid=proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()
