"""``depthlite serve`` as a child process on a free 127.0.0.1 port, for tests that need a
real server (sockets, browsers, schemathesis, memory): started, waited for, stopped."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

SERVER_START = 90.0
# The opener never uses a proxy: the only host these tests talk to is 127.0.0.1.
_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class Served:
    base: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with _LOCAL.open(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _wait_ready(served: Served, headers: dict[str, str]) -> None:
    deadline = time.monotonic() + SERVER_START
    while True:
        if served.proc.poll() is not None:
            pytest.fail(f"depthlite serve exited ({served.proc.returncode}):\n{served.tail()}")
        try:
            # Ready means the model is loaded and warmed up, not only listening.
            status, _ = get(f"{served.base}/readyz", headers)
        except OSError:
            status = 0
        if status == 200:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"depthlite serve did not answer in time:\n{served.tail()}")
        time.sleep(0.2)


@contextmanager
def serve(
    weights: Path, home: Path, *args: str, api_key: str | None = None, **env: str
) -> Iterator[Served]:
    """``depthlite serve --weights WEIGHTS ARGS...``; yields once the model is ready."""
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DEPTHLITE_")}
    environ.update(DEPTHLITE_HOME=str(home), DEPTHLITE_OFFLINE="1", **env)
    if api_key:
        environ["DEPTHLITE_API_KEY"] = api_key
    command = [sys.executable, "-m", "depthlite.cli.main", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--weights", str(weights), *args]
    log = home / "server.log"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=environ)
        served = Served(f"http://127.0.0.1:{port}", port, proc, log)
        try:
            _wait_ready(served, headers)
            yield served
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
