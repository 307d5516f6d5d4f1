"""Tests of depthlite.hub against a local HTTP server; nothing here touches the real network."""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import io
import json
import logging
import os
import shutil
import socket
import subprocess
import threading
from http import HTTPStatus
from pathlib import Path

import numpy as np
import pytest

from depthlite import hub, pins
from depthlite._version import __version__
from depthlite.errors import (
    DownloadError,
    HashMismatchError,
    InputNotFoundError,
    OfflineError,
)
from depthlite.specs import Artifact, ModelSpec, get_spec
from httpserver import Route, Server

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
    return Artifact(filename=name, url=url, kind="checkpoint", **hashes)


def _spec(*checkpoints: Artifact, onnx: Artifact | None = None) -> ModelSpec:
    return dataclasses.replace(
        get_spec("midas_v21_small_256"), checkpoints=checkpoints, official_onnx=onnx
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


# --- public API -----------------------------------------------------------------------------


def test_public_api_is_importable_from_hub() -> None:
    # Other modules import these from depthlite.hub; the pins split must not move them.
    for name in (
        "cache_dir",
        "model_dir",
        "offline_enabled",
        "file_sha256",
        "pinned_sha256",
        "pinned_checkpoint_sha256",
        "fetch",
        "resolve_checkpoint",
        "resolve_official_onnx",
        "cached_checkpoint",
        "cache_status",
        "derived_cache_status",
        "CachedFile",
    ):
        assert name in hub.__all__
        assert callable(getattr(hub, name))


def test_fetch_timeout_default_is_the_module_constant() -> None:
    assert inspect.signature(hub.fetch).parameters["timeout"].default == hub._TIMEOUT


# --- configuration ------------------------------------------------------------------------


def test_cache_dir_from_env_is_created(home: Path) -> None:
    assert not home.exists()
    assert hub.cache_dir() == home
    assert home.is_dir()
    assert hub.model_dir(_spec()) == home / "models" / "midas_v21_small_256"


def test_cache_dir_default_uses_platformdirs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEPTHLITE_HOME")
    monkeypatch.setattr(hub.platformdirs, "user_cache_dir", lambda name: str(tmp_path / name))
    assert hub.cache_dir() == tmp_path / "depthlite"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("TRUE", True), ("yes", True), (" On ", True), ("0", False), ("", False)],
)
def test_offline_env(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool) -> None:
    monkeypatch.setenv("DEPTHLITE_OFFLINE", value)
    assert hub.offline_enabled() is expected
    assert hub.offline_enabled(False) is False
    assert hub.offline_enabled(True) is True


def test_file_sha256(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(PAYLOAD)
    assert hub.file_sha256(path) == DIGEST


# --- downloads ----------------------------------------------------------------------------


def test_full_hash_match_caches_pins_and_reuses(server: Server, tmp_path: Path) -> None:
    server.routes["/m.pt"] = route()
    artifact = _artifact(f"{server.url}/m.pt", sha256=DIGEST)
    path = hub.fetch(artifact, tmp_path / "d", progress=False)
    assert path == tmp_path / "d" / artifact.filename
    assert path.read_bytes() == PAYLOAD
    assert hub.pinned_sha256(path) == DIGEST
    assert _leftovers(path.parent) == [artifact.filename, artifact.filename + ".sha256"]
    assert server.user_agents == [f"depthlite/{__version__}"]
    assert hub.fetch(artifact, tmp_path / "d", progress=False) == path
    assert server.hits == ["/m.pt"]


def test_prefix_match(server: Server, tmp_path: Path) -> None:
    server.routes["/m.pt"] = route()
    artifact = _artifact(f"{server.url}/m.pt", sha256_prefix=DIGEST[:8].upper())
    assert hub.fetch(artifact, tmp_path, progress=False).read_bytes() == PAYLOAD


@pytest.mark.parametrize(
    "hashes",
    [{"sha256": OTHER_DIGEST}, {"sha256_prefix": OTHER_DIGEST[:8]}],
    ids=["full", "prefix"],
)
def test_hash_mismatch_caches_nothing(
    server: Server, tmp_path: Path, hashes: dict[str, str]
) -> None:
    server.routes["/m.pt"] = route()
    artifact = _artifact(f"{server.url}/m.pt", **hashes)
    with pytest.raises(HashMismatchError) as info:
        hub.fetch(artifact, tmp_path, progress=False)
    message = str(info.value)
    assert artifact.filename in message
    assert OTHER_DIGEST[:8] in message
    assert DIGEST in message
    assert _leftovers(tmp_path) == []


def test_truncated_transfer(server: Server, tmp_path: Path) -> None:
    server.routes["/m.pt"] = route(kind="truncated")
    artifact = _artifact(f"{server.url}/m.pt")
    with pytest.raises(DownloadError, match=rf"truncated: got {len(PAYLOAD)} of"):
        hub.fetch(artifact, tmp_path, progress=False)
    assert _leftovers(tmp_path) == []


def test_redirect_is_followed(server: Server, tmp_path: Path) -> None:
    server.routes["/release/m.pt"] = route(kind="redirect", location="/cdn/m.pt")
    server.routes["/cdn/m.pt"] = route()
    artifact = _artifact(f"{server.url}/release/m.pt", sha256=DIGEST)
    assert hub.fetch(artifact, tmp_path, progress=False).read_bytes() == PAYLOAD
    assert server.hits == ["/release/m.pt", "/cdn/m.pt"]


@pytest.mark.parametrize("status", [404, 500])
def test_http_error(server: Server, tmp_path: Path, status: int) -> None:
    server.routes["/m.pt"] = route(kind="status", status=status)
    artifact = _artifact(f"{server.url}/m.pt")
    with pytest.raises(DownloadError, match=f"HTTP {status} {HTTPStatus(status).phrase}") as info:
        hub.fetch(artifact, tmp_path, progress=False)
    assert str(tmp_path / artifact.filename) in str(info.value)
    assert "--weights" in str(info.value)
    assert _leftovers(tmp_path) == []


def test_connection_refused(tmp_path: Path) -> None:
    artifact = _artifact(_closed_port_url())
    with pytest.raises(DownloadError, match="could not download") as info:
        hub.fetch(artifact, tmp_path, progress=False)
    assert artifact.url in str(info.value)
    assert _leftovers(tmp_path) == []


def test_timeout(server: Server, tmp_path: Path) -> None:
    server.routes["/m.pt"] = route(kind="hang")
    with pytest.raises(DownloadError, match="timed out"):
        hub.fetch(_artifact(f"{server.url}/m.pt"), tmp_path, progress=False, timeout=0.2)
    assert _leftovers(tmp_path) == []


def test_progress_bar_goes_to_stderr_only_when_enabled(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.routes["/m.pt"] = route()
    artifact = _artifact(f"{server.url}/m.pt")
    hub.fetch(artifact, tmp_path / "quiet", progress=False)
    assert capsys.readouterr() == ("", "")
    hub.fetch(artifact, tmp_path / "loud", progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert artifact.filename in captured.err


def test_concurrent_downloads_of_the_same_file(server: Server, tmp_path: Path) -> None:
    server.routes["/m.pt"] = route()
    artifact = _artifact(f"{server.url}/m.pt", sha256=DIGEST)
    results: list[Path] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(hub.fetch(artifact, tmp_path, progress=False))
        )
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert len(results) == 4
    assert results[0].read_bytes() == PAYLOAD
    assert hub.pinned_sha256(results[0]) == DIGEST
    assert _leftovers(tmp_path) == [artifact.filename, artifact.filename + ".sha256"]


def test_mirror_rewrites_official_prefix(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.routes["/mirror/v2_1/m.pt"] = route()
    monkeypatch.setenv("DEPTHLITE_MODEL_MIRROR", f"{server.url}/mirror/")
    artifact = _artifact(f"{OFFICIAL}/v2_1/m.pt", sha256=DIGEST)
    assert hub.fetch(artifact, tmp_path, progress=False).read_bytes() == PAYLOAD
    assert server.hits == ["/mirror/v2_1/m.pt"]


def test_mirror_leaves_other_urls_alone(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPTHLITE_MODEL_MIRROR", "https://mirror.invalid")
    assert hub._mirrored(f"{server.url}/m.pt") == f"{server.url}/m.pt"
    assert hub._mirrored(f"{OFFICIAL}/v2_1/x.pt") == "https://mirror.invalid/v2_1/x.pt"


# --- resolve: fallback, offline, cache verification ---------------------------------------


def test_first_url_404_falls_back_to_second(server: Server) -> None:
    server.routes["/b.pt"] = route()
    spec = _spec(
        _artifact(f"{server.url}/a.pt", name="a.pt", sha256_prefix=DIGEST[:8]),
        _artifact(f"{server.url}/b.pt", name="b.pt", sha256_prefix=DIGEST[:8]),
    )
    path = hub.resolve_checkpoint(spec, progress=False)
    assert path == hub.model_dir(spec) / "b.pt"
    assert server.hits == ["/a.pt", "/b.pt"]
    assert hub.cached_checkpoint(spec) == path
    assert hub.resolve_checkpoint(spec, progress=False) == path
    assert len(server.hits) == 2


def test_all_urls_fail(server: Server) -> None:
    refused = _closed_port_url()
    spec = _spec(_artifact(f"{server.url}/a.pt", name="a.pt"), _artifact(refused, name="b.pt"))
    with pytest.raises(DownloadError) as info:
        hub.resolve_checkpoint(spec, progress=False)
    message = str(info.value)
    assert f"{server.url}/a.pt (HTTP 404" in message
    assert refused in message
    assert str(hub.model_dir(spec) / "a.pt") in message
    assert "--weights" in message
    assert _leftovers(hub.model_dir(spec)) == []


def test_offline_without_cache(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPTHLITE_OFFLINE", "1")
    server.routes["/a.pt"] = route()
    spec = _spec(_artifact(f"{server.url}/a.pt", name="a.pt"))
    with pytest.raises(OfflineError) as info:
        hub.resolve_checkpoint(spec, progress=False)
    message = str(info.value)
    assert message.startswith("midas_v21_small_256: weights not cached")
    assert "DEPTHLITE_OFFLINE=1" in message
    assert f"{server.url}/a.pt" in message
    assert str(hub.model_dir(spec) / "a.pt") in message
    assert "--weights" in message
    with pytest.raises(OfflineError, match="offline mode"):
        hub.fetch(spec.checkpoints[0], hub.model_dir(spec), offline=True, progress=False)
    assert server.hits == []


def test_offline_with_cache(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    server.routes["/a.pt"] = route()
    spec = _spec(_artifact(f"{server.url}/a.pt", name="a.pt", sha256=DIGEST))
    path = hub.resolve_checkpoint(spec, progress=False)
    monkeypatch.setenv("DEPTHLITE_OFFLINE", "yes")
    assert hub.resolve_checkpoint(spec, progress=False) == path
    assert hub.fetch(spec.checkpoints[0], path.parent, progress=False) == path
    assert server.hits == ["/a.pt"]


def test_tampered_cached_file(server: Server) -> None:
    server.routes["/a.pt"] = route()
    spec = _spec(_artifact(f"{server.url}/a.pt", name="a.pt"))
    path = hub.resolve_checkpoint(spec, progress=False)
    path.write_bytes(PAYLOAD[:-1] + b"\x00")
    for load in (hub.cached_checkpoint, lambda s: hub.resolve_checkpoint(s, progress=False)):
        with pytest.raises(HashMismatchError) as info:
            load(spec)
        assert str(path) in str(info.value)
        assert "depthlite download --force" in str(info.value)
    assert len(server.hits) == 1


def test_force_redownloads_over_tampered_file(server: Server) -> None:
    server.routes["/a.pt"] = route()
    spec = _spec(_artifact(f"{server.url}/a.pt", name="a.pt"))
    path = hub.resolve_checkpoint(spec, progress=False)
    path.write_bytes(b"garbage")
    assert hub.resolve_checkpoint(spec, progress=False, force=True) == path
    assert path.read_bytes() == PAYLOAD
    assert hub.cached_checkpoint(spec) == path


def test_hand_placed_file_is_verified_and_pinned(server: Server) -> None:
    spec = _spec(_artifact(f"{server.url}/a.pt", name="a.pt", sha256_prefix=DIGEST[:8]))
    path = hub.model_dir(spec) / "a.pt"
    path.parent.mkdir(parents=True)
    path.write_bytes(PAYLOAD)
    assert hub.pinned_sha256(path) is None
    assert hub.cached_checkpoint(spec) == path
    assert hub.pinned_sha256(path) == DIGEST
    assert server.hits == []


def test_hand_placed_wrong_file_is_rejected(server: Server) -> None:
    spec = _spec(_artifact(f"{server.url}/a.pt", name="a.pt", sha256_prefix=OTHER_DIGEST[:8]))
    path = hub.model_dir(spec) / "a.pt"
    path.parent.mkdir(parents=True)
    path.write_bytes(PAYLOAD)
    with pytest.raises(HashMismatchError, match=OTHER_DIGEST[:8]):
        hub.cached_checkpoint(spec)
    assert hub.pinned_sha256(path) is None


def test_every_cached_load_hashes_the_whole_file(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.routes["/m.pt"] = route()
    artifact = _artifact(f"{server.url}/m.pt")
    path = hub.fetch(artifact, tmp_path, progress=False)
    calls = _count_hashes(monkeypatch)
    hub.fetch(artifact, tmp_path, progress=False)
    hub.fetch(artifact, tmp_path, progress=False)
    assert calls == [path, path]


def test_same_size_same_mtime_tampering_is_caught(server: Server) -> None:
    server.routes["/a.pt"] = route()
    artifact = _artifact(f"{server.url}/a.pt", name="a.pt")
    spec = _spec(artifact)
    path = hub.resolve_checkpoint(spec, progress=False)
    _flip_last_byte_keeping_mtime(path)
    loads = (
        hub.cached_checkpoint,
        lambda s: hub.resolve_checkpoint(s, progress=False),  # what `depthlite download` runs
        lambda s: hub.fetch(artifact, hub.model_dir(s), progress=False),
    )
    for load in loads:
        with pytest.raises(HashMismatchError, match=DIGEST):
            load(spec)
    assert hub.pinned_sha256(path) == DIGEST  # the pin is evidence, never rewritten to match
    assert server.hits == ["/a.pt"]


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
    onnx = Artifact(filename="m.onnx", url=f"{server.url}/m.onnx", kind="onnx")
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
    onnx = Artifact(filename="m.onnx", url=f"{server.url}/m.onnx", kind="onnx")
    spec = _spec(
        _artifact(f"{server.url}/a.pt", name="a.pt"),
        _artifact(f"{server.url}/b.pt", name="b.pt"),
        onnx=onnx,
    )
    hub.resolve_checkpoint(spec, progress=False)
    converted = hub.model_dir(spec) / "converted"
    converted.mkdir()
    (converted / "model.onnx").write_bytes(b"12345")
    (converted / "model.onnx.abc.part").write_bytes(b"1")
    (converted / "model.onnx.def.part.onnx").write_bytes(b"1")  # atomic_path(suffix=".onnx")
    quantized = hub.model_dir(spec) / "quantized"
    quantized.mkdir()
    (quantized / "model-int8-default.onnx").write_bytes(b"123")
    (quantized / "model-int8-default.onnx.xyz.part.onnx").write_bytes(b"1")
    (quantized / "model-int8-default.onnx.sha256").write_text(f"{DIGEST}  x\n")
    status = {entry.name: entry for entry in hub.cache_status(spec)}
    assert list(status) == [
        "a.pt",
        "b.pt",
        "m.onnx",
        "converted/model.onnx",
        "quantized/model-int8-default.onnx",
    ]
    assert status["a.pt"] == hub.CachedFile(
        name="a.pt",
        path=hub.model_dir(spec) / "a.pt",
        size=len(PAYLOAD),
        sha256=DIGEST,
        kind="checkpoint",
    )
    assert (status["b.pt"].size, status["b.pt"].sha256) == (None, None)
    assert (status["m.onnx"].kind, status["m.onnx"].size) == ("onnx", None)
    assert (status["converted/model.onnx"].size, status["converted/model.onnx"].kind) == (
        5,
        "converted",
    )
    assert status["quantized/model-int8-default.onnx"] == hub.CachedFile(
        name="quantized/model-int8-default.onnx",
        path=quantized / "model-int8-default.onnx",
        size=3,
        sha256=DIGEST,
        kind="quantized",
    )


def test_cache_status_without_derived_folders() -> None:
    spec = _spec(_artifact("http://unused.invalid/a.pt", name="a.pt"))
    assert [entry.name for entry in hub.cache_status(spec)] == ["a.pt"]
    assert hub.derived_cache_status() == []


def test_derived_cache_status_lists_optimized_graphs(home: Path) -> None:
    optimized = home / "optimized"
    optimized.mkdir(parents=True)
    (optimized / "model-small-0123456789abcdef.onnx").write_bytes(b"1234")
    (optimized / "converted-fedcba9876543210.onnx").write_bytes(b"12")
    (optimized / "model-small-0123456789abcdefk2j3.part.onnx").write_bytes(b"1")  # in progress
    (optimized / "converted-fedcba9876543210.onnx.sha256").write_text(f"{DIGEST}  x\n")
    (optimized / "subdir").mkdir()
    assert hub.derived_cache_status() == [
        hub.CachedFile(
            name="optimized/converted-fedcba9876543210.onnx",
            path=optimized / "converted-fedcba9876543210.onnx",
            size=2,
            sha256=DIGEST,
            kind="optimized",
        ),
        hub.CachedFile(
            name="optimized/model-small-0123456789abcdef.onnx",
            path=optimized / "model-small-0123456789abcdef.onnx",
            size=4,
            sha256=None,
            kind="optimized",
        ),
    ]
    # Per machine, not per model: no model's listing shows them.
    spec = _spec(_artifact("http://unused.invalid/a.pt", name="a.pt"))
    assert all(entry.kind != "optimized" for entry in hub.cache_status(spec))
