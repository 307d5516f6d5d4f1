"""What an outside review found: forged log lines, echoed ids, rebinding, trusted hosts."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from depthlite.server import Settings, create_app
from depthlite.server.logs import ACCESS_LOGGER, configure_logging
from test_server import wait_ready

FORGED = "1999-12-01 18:00:00,000 INFO depthlite.server.access: forged"
# Newline, ESC (a terminal escape), DEL, a C1 CSI and a Unicode line separator.
INJECTION = f"/v1/jobs/abc%0A{FORGED}%1B[31m%7F%C2%9B%E2%80%A8end"


@pytest.fixture(scope="module")
def client(app_client: TestClient) -> TestClient:
    return app_client


@pytest.fixture
def server_logging() -> Iterator[None]:
    """Lets a test call the server's own logging setup; the test run's logging is restored."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def _logger_of(line: str, log_format: str) -> str:
    if log_format == "json":
        return str(json.loads(line)["logger"])
    return line.split(" ")[3].rstrip(":")


def _control_free(text: str) -> bool:
    return not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c == "\u2028" for c in text)


@pytest.mark.parametrize("log_format", ["plain", "json"])
def test_a_client_cannot_forge_log_lines(
    client: TestClient, capsys: pytest.CaptureFixture[str], server_logging: None, log_format: str
) -> None:
    configure_logging(log_format, "info")  # on the stderr capsys captures
    response = client.get(INJECTION)
    assert response.status_code == 404
    lines = capsys.readouterr().err.splitlines()
    access = [line for line in lines if _logger_of(line, log_format) == ACCESS_LOGGER]
    assert len(access) == 1, lines  # one request, one line
    assert not any(line.startswith("1999-12-01") for line in lines), lines
    assert _control_free(access[0]), access
    if log_format == "json":
        record = json.loads(access[0])
        assert _control_free(record["path"]) and "\\x0a" in record["path"], record
    else:
        assert "\\x0a1999-12-01" in access[0] and "\\x1b[31m" in access[0], access


def test_a_404_does_not_echo_a_huge_id(client: TestClient) -> None:
    huge = "x" * 10_000
    for path in (f"/v1/jobs/{huge}", f"/v1/jobs/{huge}/result", f"/nowhere/{huge}"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert len(response.text) < 300, response.text[:300]


def _on_loopback(client: TestClient, **settings: Any) -> TestClient:
    """A client whose requests arrive on 127.0.0.1:8000, as a browser's would locally."""
    app = create_app(Settings(**settings), client.app.state.service.estimator)  # type: ignore[attr-defined]
    return TestClient(app, base_url="http://127.0.0.1:8000")


def _live_refusal(client: TestClient, host: str, origin: str) -> str | None:
    """The live stream's refusal code for this Host and Origin, None if it was accepted."""
    headers = {"host": host, "origin": origin}
    try:
        with client.websocket_connect("ws://127.0.0.1:8000/v1/live", headers=headers) as ws:
            ws.send_text("not json")  # an accepted stream answers: invalid_option
            code = ws.receive_json().get("code")
            return None if code == "invalid_option" else str(code)
    except WebSocketDisconnect as exc:
        return f"closed {exc.code}"


def test_a_loopback_server_serves_only_loopback_host_names(client: TestClient) -> None:
    local = _on_loopback(client)
    for host in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000", "app.localhost"):
        assert local.get("/healthz", headers={"host": host}).status_code == 200, host
    refused = local.get("/healthz", headers={"host": "attacker.example:8000"})
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_host"
    # The other interfaces of a server bound to 0.0.0.0: any name, as before.
    assert client.get("/healthz", headers={"host": "box.lan:8000"}).status_code == 200


def test_allowed_hosts_extend_the_loopback_names(client: TestClient) -> None:
    local = _on_loopback(client, allowed_hosts="depth.example,*.corp.example")
    for host in ("depth.example", "a.corp.example:8000", "localhost"):
        assert local.get("/healthz", headers={"host": host}).status_code == 200, host
    assert local.get("/healthz", headers={"host": "evil.example"}).status_code == 400
    listed = TestClient(local.app)  # a non-loopback address: the list applies there too
    assert listed.get("/healthz", headers={"host": "evil.example"}).status_code == 400


def test_live_stream_refuses_dns_rebinding_and_other_schemes(client: TestClient) -> None:
    local = _on_loopback(client)
    with local:
        wait_ready(local)
        rebinding = "attacker.example:8000"
        assert _live_refusal(local, rebinding, f"http://{rebinding}") is not None
        assert _live_refusal(local, "127.0.0.1:8000", "https://127.0.0.1:8000") is not None
        assert _live_refusal(local, "127.0.0.1:8000", "http://127.0.0.1:9999") is not None
        assert _live_refusal(local, "127.0.0.1:8000", "http://127.0.0.1:8000") is None
        assert _live_refusal(local, "localhost", "http://localhost:80") is None
