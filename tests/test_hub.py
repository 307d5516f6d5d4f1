"""Tests of depthlite.hub against a local HTTP server; nothing here touches the real network."""

from __future__ import annotations

import inspect
import threading
from http import HTTPStatus
from pathlib import Path

import pytest

from depthlite import hub
from depthlite._version import __version__
from depthlite.errors import (
    DownloadError,
    HashMismatchError,
    OfflineError,
)
from httpserver import Server
from hubkit import (
    DIGEST,
    OFFICIAL,
    OTHER_DIGEST,
    PAYLOAD,
    _artifact,
    _closed_port_url,
    _count_hashes,
    _flip_last_byte_keeping_mtime,
    _leftovers,
    _spec,
    home,
    route,
)

__all__ = ["home"]  # the autouse fixture, shared through hubkit

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
