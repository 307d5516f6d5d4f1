"""Hash pins and the cache listing (``depthlite models``): how verified files are remembered."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import subprocess
from pathlib import Path

import pytest

from depthlite import hub, pins
from depthlite.errors import (
    HashMismatchError,
    InputNotFoundError,
)
from depthlite.zoo import get_card as get_spec
from httpserver import Server
from hubkit import (
    DIGEST,
    OTHER_DIGEST,
    PAYLOAD,
    _artifact,
    _closed_port_url,
    _count_hashes,
    _flip_last_byte_keeping_mtime,
    _spec,
    home,
    route,
)

__all__ = ["home"]  # the autouse fixture, shared through hubkit


def test_pin_is_sha256sum_format(server: Server, tmp_path: Path) -> None:
    server.routes["/m.pt"] = route()
    artifact = _artifact(f"{server.url}/m.pt")
    path = hub.fetch(artifact, tmp_path, progress=False)
    pin = tmp_path / f"{artifact.filename}.sha256"
    assert pin.read_text() == f"{DIGEST}  {artifact.filename}\n"
    assert pin.stat().st_mode & 0o777 == 0o644
    if shutil.which("sha256sum"):  # the documented way to check a cached file by hand
        assert _sha256sum_accepts(pin)
        _flip_last_byte_keeping_mtime(path)
        assert not _sha256sum_accepts(pin)


def _sha256sum_accepts(pin: Path) -> bool:
    command = ["sha256sum", "-c", "--quiet", pin.name]
    return subprocess.run(command, cwd=pin.parent, capture_output=True, check=False).returncode == 0


def test_legacy_json_pin_is_read_and_only_its_digest_counts(tmp_path: Path) -> None:
    path = tmp_path / "a.pt"
    path.write_bytes(PAYLOAD)
    stat = path.stat()
    # Written by the previous version: size and mtime match, so it used to skip the hash.
    legacy = {"sha256": DIGEST.upper(), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    (tmp_path / "a.pt.sha256").write_text(json.dumps(legacy) + "\n")
    assert hub.pinned_sha256(path) == DIGEST
    artifact = _artifact("http://unused.invalid/a.pt", name="a.pt")
    assert hub.fetch(artifact, tmp_path, progress=False) == path
    _flip_last_byte_keeping_mtime(path)
    with pytest.raises(HashMismatchError, match=DIGEST):
        hub.fetch(artifact, tmp_path, progress=False)


def test_unwritable_pin_still_loads_a_verified_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A read-only cache (root filled it, another user serves): chmod cannot simulate that
    # when the tests run as root, so make the pin write fail directly.
    def refuse(path: Path, digest: str) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(pins, "write_pin", refuse)
    path = tmp_path / "a.pt"
    path.write_bytes(PAYLOAD)
    artifact = _artifact("http://unused.invalid/a.pt", name="a.pt", sha256=DIGEST)
    with caplog.at_level(logging.WARNING, logger="depthlite.pins"):
        assert hub.fetch(artifact, tmp_path, progress=False) == path
    assert "could not pin" in caplog.text
    assert hub.pinned_sha256(path) is None


def test_unreadable_pin_is_reverified(tmp_path: Path) -> None:
    path = tmp_path / "a.pt"
    path.write_bytes(PAYLOAD)
    (tmp_path / "a.pt.sha256").write_text("not json")
    assert hub.pinned_sha256(path) is None
    artifact = _artifact("http://unused.invalid/a.pt", name="a.pt", sha256=DIGEST)
    assert hub.fetch(artifact, tmp_path) == path
    assert hub.pinned_sha256(path) == DIGEST


def test_pin_contradicting_published_digest(tmp_path: Path) -> None:
    path = tmp_path / "a.pt"
    path.write_bytes(PAYLOAD)
    artifact = _artifact("http://unused.invalid/a.pt", name="a.pt")
    hub.fetch(artifact, tmp_path)  # unpinned, no published digest: trusted and pinned
    stricter = dataclasses.replace(artifact, sha256_prefix=OTHER_DIGEST[:8])
    with pytest.raises(HashMismatchError, match="download --force"):
        hub.fetch(stricter, tmp_path)


def test_weights_path_used_as_is(tmp_path: Path) -> None:
    mine = tmp_path / "mine.pt"
    mine.write_bytes(b"not even a checkpoint")
    spec = _spec(_artifact(_closed_port_url(), sha256=OTHER_DIGEST))
    assert hub.resolve_checkpoint(spec, weights=mine) == mine
    assert hub.resolve_checkpoint(spec, weights=str(mine)) == mine
    assert hub.resolve_official_onnx(spec, weights=mine) == mine
    missing = tmp_path / "missing.pt"
    with pytest.raises(InputNotFoundError, match=r"missing\.pt"):
        hub.resolve_checkpoint(spec, weights=missing)


def test_hand_placed_official_onnx_is_accepted_and_pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    # The real spec: model-small.onnx has no published digest, so the first file is trusted.
    monkeypatch.setenv("DEPTHLITE_OFFLINE", "1")
    spec = get_spec("midas_v21_small_256")
    assert spec.official_onnx is not None
    assert (spec.official_onnx.sha256, spec.official_onnx.sha256_prefix) == (None, None)
    path = hub.model_dir(spec) / spec.official_onnx.filename
    path.parent.mkdir(parents=True)
    path.write_bytes(b"hand-placed onnx")
    assert hub.resolve_official_onnx(spec, progress=False) == path
    assert hub.pinned_sha256(path) == hashlib.sha256(b"hand-placed onnx").hexdigest()
    assert hub.resolve_official_onnx(spec, progress=False) == path
    _flip_last_byte_keeping_mtime(path)
    with pytest.raises(HashMismatchError, match="depthlite download --force"):
        hub.resolve_official_onnx(spec, progress=False)


def test_resolve_official_onnx(server: Server) -> None:
    server.routes["/m.onnx"] = route(body=b"onnx bytes")
    onnx = _artifact(f"{server.url}/m.onnx", name="m.onnx")
    spec = _spec(_artifact(f"{server.url}/a.pt", name="a.pt"), onnx=onnx)
    path = hub.resolve_official_onnx(spec, progress=False)
    assert path.read_bytes() == b"onnx bytes"
    assert hub.pinned_sha256(path) == hashlib.sha256(b"onnx bytes").hexdigest()


# --- pinned_checkpoint_sha256 ----------------------------------------------------------------


def test_pinned_checkpoint_sha256_reads_the_pin_without_hashing(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.routes["/b.pt"] = route()
    spec = _spec(
        _artifact(f"{server.url}/a.pt", name="a.pt"),
        _artifact(f"{server.url}/b.pt", name="b.pt"),
    )
    assert hub.pinned_checkpoint_sha256(spec) is None
    path = hub.resolve_checkpoint(spec, progress=False)  # a.pt 404s: b.pt is the cached one
    calls = _count_hashes(monkeypatch)
    assert hub.pinned_checkpoint_sha256(spec) == DIGEST
    # A lookup only: it does not verify, so even a tampered file reports its pin.
    _flip_last_byte_keeping_mtime(path)
    assert hub.pinned_checkpoint_sha256(spec) == DIGEST
    assert calls == []


def test_pinned_checkpoint_sha256_of_an_unpinned_file_is_none() -> None:
    spec = _spec(
        _artifact("http://unused.invalid/a.pt", name="a.pt"),
        _artifact("http://unused.invalid/b.pt", name="b.pt"),
    )
    dest = hub.model_dir(spec)
    dest.mkdir(parents=True)
    # b.pt is pinned, but a.pt comes first and is what cached_checkpoint would load.
    (dest / "b.pt").write_bytes(PAYLOAD)
    pins.write_pin(dest / "b.pt", DIGEST)
    (dest / "a.pt").write_bytes(PAYLOAD)
    assert hub.pinned_checkpoint_sha256(spec) is None
    assert hub.cached_checkpoint(spec) == dest / "a.pt"  # verifies and pins it
    assert hub.pinned_checkpoint_sha256(spec) == DIGEST


# --- cache_status -------------------------------------------------------------------------


def test_cache_status(server: Server) -> None:
    server.routes["/a.pt"] = route()
    onnx = _artifact(f"{server.url}/m.onnx", name="m.onnx")
    spec = _spec(
        _artifact(f"{server.url}/a.pt", name="a.pt"),
        _artifact(f"{server.url}/b.pt", name="b.pt"),
        onnx=onnx,
    )
    hub.resolve_checkpoint(spec, progress=False)
    status = {entry.name: entry for entry in hub.cache_status(spec)}
    assert list(status) == ["a.pt", "b.pt", "m.onnx"]
    assert status["a.pt"] == hub.CachedFile(
        name="a.pt",
        path=hub.model_dir(spec) / "a.pt",
        size=len(PAYLOAD),
        sha256=DIGEST,
        kind="checkpoint",
    )
    assert (status["b.pt"].size, status["b.pt"].sha256) == (None, None)
    assert (status["m.onnx"].kind, status["m.onnx"].size) == ("onnx", None)
