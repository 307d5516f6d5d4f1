"""A local HTTP server for download tests: routes are set per test, hits are recorded."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Route:
    """How the server answers one path: ok, truncated, status, redirect or hang."""

    kind: str = "ok"
    body: bytes = b""
    status: int = 200
    location: str = ""


@dataclass
class Server:
    url: str
    routes: dict[str, Route] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)
    user_agents: list[str] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


class _Handler(BaseHTTPRequestHandler):
    state: Server  # set on a per-server subclass

    def do_HEAD(self) -> None:
        """What a Hugging Face "resolve" URL answers: the commit, the LFS ETag, the size."""
        state = self.state
        state.hits.append(f"HEAD {self.path}")
        route = state.routes.get(self.path.split("?")[0], Route(kind="status", status=404))
        if route.kind == "status":
            self.send_response(route.status)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("X-Repo-Commit", "0" * 40)
        self.send_header("ETag", f'"{hashlib.sha256(route.body).hexdigest()}"')
        self.send_header("Content-Length", str(len(route.body)))
        self.end_headers()

    def do_GET(self) -> None:
        state = self.state
        state.hits.append(self.path)
        state.user_agents.append(self.headers.get("User-Agent", ""))
        route = state.routes.get(self.path.split("?")[0], Route(kind="status", status=404))
        if route.kind == "hang":
            state.release.wait(5)
            return
        if route.kind == "redirect":
            self.send_response(302)
            self.send_header("Location", route.location)
            self.end_headers()
            return
        if route.kind == "status":
            self.send_error(route.status)
            return
        self.send_response(200)
        # Truncated: promise more bytes than are sent, then close the connection.
        extra = 1000 if route.kind == "truncated" else 0
        self.send_header("Content-Length", str(len(route.body) + extra))
        self.end_headers()
        self.wfile.write(route.body)
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Server]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    state = Server(url=f"http://127.0.0.1:{httpd.server_address[1]}")
    httpd.RequestHandlerClass = type("Handler", (_Handler,), {"state": state})
    # A short poll interval: shutdown() waits for it, and the default 0.5 s per test adds up.
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
