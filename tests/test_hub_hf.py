"""Hugging Face artifacts: hf_hub_download against a local endpoint, inside our cache and pins."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest

from depthlite import hub, zoo
from depthlite.errors import DownloadError, HashMismatchError, OfflineError
from depthlite.zoo import ModelCard
from httpserver import Route, Server
from hubkit import _flip_last_byte_keeping_mtime, home

__all__ = ["home"]  # the autouse fixture, shared through hubkit

BODY = b"depth anything weights " * 512
RESOLVE = "/depth-anything/Depth-Anything-V2-Small/resolve/main/depth_anything_v2_vits.pth"


@pytest.fixture(autouse=True)
def _endpoint(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")


def _card(sha256: str | None) -> ModelCard:
    card = zoo.get_card("depth_anything_v2_small")
    artifact = dataclasses.replace(card.checkpoints[0], sha256=sha256, size=None)
    return dataclasses.replace(card, checkpoints=(artifact,))


def test_the_real_card_names_the_official_repo_file_and_digest() -> None:
    artifact = zoo.get_card("depth_anything_v2_small").checkpoints[0]
    assert artifact.url == f"https://huggingface.co{RESOLVE}"
    assert artifact.sha256 == "715fade13be8f229f8a70cc02066f656f2423a59effd0579197bbf57860e1378"
    # Published nowhere we could read: pinned on first download, never invented.
    assert zoo.get_card("depth_anything_v2_large").checkpoints[0].sha256 is None


def test_published_digest_verified_then_pinned(server: Server) -> None:
    server.routes[RESOLVE] = Route(body=BODY)
    path = hub.resolve_checkpoint(_card(hashlib.sha256(BODY).hexdigest()), progress=False)
    assert path.read_bytes() == BODY
    assert path == hub.model_dir(_card(None)) / "depth_anything_v2_vits.pth"
    assert hub.pinned_sha256(path) == hashlib.sha256(BODY).hexdigest()
    # The download staging folder is gone; nothing of the Hugging Face cache is kept.
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name, path.name + ".sha256"]
    assert f"HEAD {RESOLVE}" in server.hits and RESOLVE in server.hits


def test_wrong_bytes_are_discarded(server: Server) -> None:
    server.routes[RESOLVE] = Route(body=BODY + b"x")
    card = _card(hashlib.sha256(BODY).hexdigest())
    with pytest.raises(HashMismatchError, match="SHA-256 mismatch"):
        hub.resolve_checkpoint(card, progress=False)
    folder = hub.model_dir(card)
    assert not folder.exists() or list(folder.iterdir()) == []


def test_unpublished_digest_is_trusted_on_first_use_then_enforced(server: Server) -> None:
    server.routes[RESOLVE] = Route(body=BODY)
    card = _card(None)
    path = hub.resolve_checkpoint(card, progress=False)
    assert hub.pinned_sha256(path) == hashlib.sha256(BODY).hexdigest()
    _flip_last_byte_keeping_mtime(path)
    with pytest.raises(HashMismatchError, match="depthlite download --force"):
        hub.resolve_checkpoint(card, progress=False)


def test_missing_file_names_the_address_and_the_fix(server: Server) -> None:
    with pytest.raises(DownloadError) as info:
        hub.resolve_checkpoint(_card(None), progress=False)
    message = str(info.value)
    assert f"tried: https://huggingface.co{RESOLVE} (" in message
    assert "--weights" in message and "depth_anything_v2_vits.pth" in message


def test_offline_names_the_hugging_face_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPTHLITE_OFFLINE", "1")
    with pytest.raises(OfflineError) as info:
        hub.resolve_checkpoint(_card(None), progress=False)
    message = str(info.value)
    assert f"https://huggingface.co{RESOLVE}" in message
    assert str(Path("models") / "depth_anything_v2_small" / "depth_anything_v2_vits.pth") in message
