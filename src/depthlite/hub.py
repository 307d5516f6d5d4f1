"""Model artifacts: download, cache, hash pinning and offline errors.

Layout: ``cache_dir()/models/<model>/<filename>``, a pin ``<filename>.sha256`` next to every
verified file (see :mod:`depthlite.pins`: every load of a cached file hashes it in full against
its pin). Files made from other files live under ``cache_dir()/derived/`` (see
:mod:`depthlite.zoo.derive`).

Sources: a URL (the MiDaS GitHub releases) or a Hugging Face repository file, fetched with
``huggingface_hub.hf_hub_download`` into the same cache, with the same pins and offline errors
(``HF_ENDPOINT`` points it at a mirror, as for every Hugging Face tool).

Environment: ``DEPTHLITE_HOME`` is the cache root (default: the platform user cache directory).
``DEPTHLITE_OFFLINE=1`` (or true/yes/on) disables downloads; a missing file then raises
:class:`OfflineError` saying where to put it by hand. ``DEPTHLITE_MODEL_MIRROR`` replaces the
``https://github.com/isl-org/MiDaS/releases/download`` prefix of official URLs for corporate
mirrors: with ``https://mirror.example.com/midas`` the checkpoint comes from
``https://mirror.example.com/midas/v2_1/model-small-70d6b9c8.pt``; published digests still apply.
The standard ``https_proxy``/``no_proxy`` variables are honoured (urllib reads them).

Downloads stream into ``<name>.<random>.part`` next to the target (via
:func:`depthlite.fsutil.atomic_path`) while being hashed; only a complete, verified file is
renamed onto the final name. Each process writes its own temp file and ``os.replace`` is atomic,
so two processes downloading the same file cannot corrupt it: the last rename wins and both
wrote identical verified bytes.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from depthlite.downloads import TransferError, download_hf, download_url
from depthlite.errors import (
    DownloadError,
    InputNotFoundError,
    OfflineError,
    WeightsError,
)
from depthlite.pins import file_sha256, pinned_sha256, verify_cached

# The prefix lives in the catalog so no URL is restated here; DEPTHLITE_MODEL_MIRROR replaces it.
from depthlite.zoo.cards import Artifact, ModelCard
from depthlite.zoo.catalog import MIDAS_RELEASES

__all__ = [
    "CachedFile",
    "cache_dir",
    "cache_status",
    "cached_checkpoint",
    "fetch",
    "file_sha256",
    "model_dir",
    "offline_enabled",
    "pinned_checkpoint_sha256",
    "pinned_sha256",
    "resolve_checkpoint",
    "resolve_official_onnx",
]

logger = logging.getLogger(__name__)

_TIMEOUT = 30.0
_TRUE = frozenset({"1", "true", "yes", "on"})


@dataclass(frozen=True)
class CachedFile:
    """One file of a model's cache as ``depthlite models`` reports it."""

    name: str
    path: Path
    size: int | None
    sha256: str | None
    kind: str


def cache_dir() -> Path:
    """The cache root: ``$DEPTHLITE_HOME`` or the user cache directory, created on demand."""
    home = os.environ.get("DEPTHLITE_HOME")
    root = Path(home).expanduser() if home else Path(platformdirs.user_cache_dir("depthlite"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def model_dir(card: ModelCard) -> Path:
    """Where one model's artifacts are cached."""
    return cache_dir() / "models" / card.name


def offline_enabled(offline: bool | None = None) -> bool:
    """An explicit ``offline`` wins; otherwise ``DEPTHLITE_OFFLINE`` decides."""
    if offline is not None:
        return offline
    return os.environ.get("DEPTHLITE_OFFLINE", "").strip().lower() in _TRUE


def fetch(
    artifact: Artifact,
    dest_dir: Path,
    *,
    offline: bool | None = None,
    progress: bool = True,
    timeout: float = _TIMEOUT,
    force: bool = False,
) -> Path:
    """Return the verified file ``dest_dir/artifact.filename``, downloading it if missing.

    ``force`` downloads again even when a cached copy exists (``depthlite download --force``);
    the old file stays in place until the new one is verified.
    """
    final = Path(dest_dir) / artifact.filename
    if final.is_file() and not force:
        return verify_cached(final, artifact)
    if offline_enabled(offline):
        raise OfflineError(_offline_message(artifact.filename, artifact, final, offline))
    tried = _download_any(artifact, final, progress=progress, timeout=timeout)
    if tried:
        raise DownloadError(
            f"{artifact.filename}: could not download it; tried: {'; '.join(tried)}. "
            + _guidance(artifact, final)
        )
    return final


def resolve_checkpoint(
    card: ModelCard,
    *,
    weights: str | Path | None = None,
    offline: bool | None = None,
    progress: bool = True,
    force: bool = False,
) -> Path:
    """The checkpoint to load: ``weights`` as given, else a verified cached or downloaded file.

    ``card.checkpoints`` are alternative URLs of the same file; on a network or HTTP error the
    next one is tried. A hash mismatch is not retried elsewhere: it means wrong bytes, not an
    unreachable host.
    """
    return _resolve(
        card, card.checkpoints, weights=weights, offline=offline, progress=progress, force=force
    )


def resolve_official_onnx(
    card: ModelCard,
    *,
    weights: str | Path | None = None,
    offline: bool | None = None,
    progress: bool = True,
    force: bool = False,
) -> Path:
    """Like :func:`resolve_checkpoint`, for the model's official ONNX export."""
    if card.official_onnx is None and weights is None:
        raise WeightsError(f"{card.name}: no official ONNX export is published for this model")
    artifacts = (card.official_onnx,) if card.official_onnx else ()
    return _resolve(
        card, artifacts, weights=weights, offline=offline, progress=progress, force=force
    )


def cached_checkpoint(card: ModelCard) -> Path | None:
    """The first verified cached checkpoint, or None; never downloads.

    The file is hashed in full; one that no longer matches its pin raises
    :class:`HashMismatchError`.
    """
    return _first_cached(model_dir(card), card.checkpoints)


def pinned_checkpoint_sha256(card: ModelCard) -> str | None:
    """The pinned digest of the checkpoint :func:`cached_checkpoint` would return; no hashing.

    For finding files derived from the checkpoint and cached under its digest (a converted
    ONNX model) without hashing 80 MB: the checkpoint itself is verified whenever it is loaded.
    None when no checkpoint is cached or the cached one is not pinned yet (placed by hand and
    never loaded): :func:`cached_checkpoint` verifies and pins it.
    """
    dest = model_dir(card)
    for artifact in card.checkpoints:
        path = dest / artifact.filename
        if path.is_file():
            return pinned_sha256(path)
    return None


def _first_cached(dest: Path, artifacts: tuple[Artifact, ...]) -> Path | None:
    for artifact in artifacts:
        path = dest / artifact.filename
        if path.is_file():
            return verify_cached(path, artifact)
    return None


def cache_status(card: ModelCard) -> list[CachedFile]:
    """Every artifact of ``card``, present or not. Reads pins, never hashes: listing the
    cache must stay instant. Derived files are listed by :mod:`depthlite.zoo.derive`."""
    dest = model_dir(card)
    return [
        _status(artifact.filename, dest / artifact.filename, artifact.kind)
        for artifact in card.artifacts
    ]


def _status(name: str, path: Path, kind: str) -> CachedFile:
    try:
        size: int | None = path.stat().st_size
    except FileNotFoundError:
        size = None
    sha256 = pinned_sha256(path) if size is not None else None
    return CachedFile(name=name, path=path, size=size, sha256=sha256, kind=kind)


def _resolve(
    card: ModelCard,
    artifacts: tuple[Artifact, ...],
    *,
    weights: str | Path | None,
    offline: bool | None,
    progress: bool,
    force: bool,
) -> Path:
    if weights is not None:
        return _user_weights(weights)
    dest = model_dir(card)
    cached = None if force else _first_cached(dest, artifacts)
    if cached is not None:
        return cached
    first = artifacts[0]
    if offline_enabled(offline):
        raise OfflineError(_offline_message(card.name, first, dest / first.filename, offline))
    tried: list[str] = []
    for artifact in artifacts:
        failures = _download_any(artifact, dest / artifact.filename, progress=progress)
        if not failures:
            return dest / artifact.filename
        tried.extend(failures)
    raise DownloadError(
        f"{card.name}: could not download the weights; tried: {'; '.join(tried)}. "
        + _guidance(first, dest / first.filename)
    )


def _download_any(
    artifact: Artifact, final: Path, *, progress: bool, timeout: float = _TIMEOUT
) -> list[str]:
    """Try each source in turn; return the failures ("address (reason)"), empty on success.

    A hash mismatch is raised, not retried elsewhere: it means wrong bytes, not an
    unreachable host.
    """
    tried: list[str] = []
    for source in artifact.sources:
        address = _mirrored(source.address)
        try:
            if source.is_hf:
                download_hf(source, final, artifact, progress=progress, timeout=timeout)
            else:
                download_url(address, final, artifact, progress=progress, timeout=timeout)
            return []
        except TransferError as exc:
            logger.warning("download failed, %s: %s", address, exc)
            tried.append(f"{address} ({exc})")
    return tried


def _user_weights(weights: str | Path) -> Path:
    # The user's own file: no hash check, since there is nothing to check it against.
    path = Path(weights).expanduser()
    if not path.is_file():
        raise InputNotFoundError("weights file not found", source=str(path))
    return path


def _mirrored(url: str) -> str:
    mirror = os.environ.get("DEPTHLITE_MODEL_MIRROR", "").strip()
    if mirror and url.startswith(MIDAS_RELEASES + "/"):
        return mirror.rstrip("/") + url[len(MIDAS_RELEASES) :]
    return url


def _guidance(artifact: Artifact, path: Path) -> str:
    return (
        f"Download {artifact.url} on a machine with network access and save it as {path}, "
        "or pass --weights PATH."
    )


def _offline_message(subject: str, artifact: Artifact, path: Path, offline: bool | None) -> str:
    reason = "DEPTHLITE_OFFLINE=1" if offline is None else "offline mode"
    return f"{subject}: weights not cached and downloads are disabled ({reason}). " + _guidance(
        artifact, path
    )
