"""What the hub tests share: the served checkpoint, spec builders, the per-test cache fixture."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import socket
from pathlib import Path

import numpy as np
import pytest

from depthlite import pins
from depthlite.zoo import Artifact, ModelCard, Source, get_card
from httpserver import Route

OFFICIAL = "https://github.com/isl-org/MiDaS/releases/download"


def _checkpoint_bytes(seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.random.default_rng(seed).standard_normal(4096).astype(np.float32))
    return buffer.getvalue()


PAYLOAD = _checkpoint_bytes()
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


def route(**kwargs: object) -> Route:
    """A server route that serves the test checkpoint unless told otherwise."""
    return Route(**{"body": PAYLOAD, **kwargs})  # type: ignore[arg-type]


OTHER_DIGEST = hashlib.sha256(b"something else").hexdigest()


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh cache per test, with downloads allowed: the only server is the local one."""
    monkeypatch.setenv("DEPTHLITE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DEPTHLITE_OFFLINE", raising=False)
    monkeypatch.delenv("DEPTHLITE_MODEL_MIRROR", raising=False)
    # urllib honours *_proxy variables; a proxy must never see (or swallow) the local server.
    monkeypatch.setenv("no_proxy", "*")
    return tmp_path / "home"


def _artifact(url: str, name: str = "model-small-test.pt", **hashes: str) -> Artifact:
    fmt = ".onnx" if name.endswith(".onnx") else ".pt"
    return Artifact(filename=name, format=fmt, sources=(Source(url=url),), **hashes)  # type: ignore[arg-type]


def _spec(*checkpoints: Artifact, onnx: Artifact | None = None) -> ModelCard:
    return dataclasses.replace(
        get_card("midas_v21_small_256"), checkpoints=checkpoints, official_onnx=onnx
    )


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/model.pt"


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def _flip_last_byte_keeping_mtime(path: Path) -> None:
    """Tamper so that size and mtime both still match: only a full hash can tell."""
    stat = path.stat()
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)


def _count_hashes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Record every full-file hash the cache verification makes."""
    calls: list[Path] = []
    real = pins.file_sha256
    monkeypatch.setattr(pins, "file_sha256", lambda p: calls.append(p) or real(p))
    return calls
