"""Model artifacts: download, cache, hash pinning and offline errors.

Layout: ``cache_dir()/models/<model>/<filename>``, a pin ``<filename>.sha256`` next to every
verified file, and ``converted/`` for files other modules derive from the checkpoint.

Environment: ``DEPTHLITE_HOME`` is the cache root (default: the platform user cache directory).
``DEPTHLITE_OFFLINE=1`` (or true/yes/on) disables downloads; a missing file then raises
:class:`OfflineError` saying where to put it by hand. ``DEPTHLITE_MODEL_MIRROR`` replaces the
``https://github.com/isl-org/MiDaS/releases/download`` prefix of official URLs for corporate
mirrors: with ``https://mirror.example.com/midas`` the checkpoint comes from
``https://mirror.example.com/midas/v2_1/model-small-70d6b9c8.pt``; published digests still apply.
The standard ``https_proxy``/``no_proxy`` variables are honoured (urllib reads them).

Downloads stream into ``<name>.<random>.part`` next to the target while being hashed; only a
complete, verified file is renamed onto the final name. Each process writes its own temp file
and ``os.replace`` is atomic, so two processes downloading the same file cannot corrupt it: the
last rename wins and both wrote identical verified bytes.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import re
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import platformdirs
from tqdm import tqdm

from depthlite._version import __version__
from depthlite.errors import (
    DownloadError,
    HashMismatchError,
    InputNotFoundError,
    OfflineError,
    WeightsError,
)

# The prefix lives in specs so no URL is restated here; it is what DEPTHLITE_MODEL_MIRROR replaces.
from depthlite.specs import OFFICIAL_RELEASES, Artifact, ModelSpec

__all__ = [
    "CachedFile",
    "cache_dir",
    "cache_status",
    "cached_checkpoint",
    "fetch",
    "file_sha256",
    "model_dir",
    "offline_enabled",
    "pinned_sha256",
    "resolve_checkpoint",
    "resolve_official_onnx",
]

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20
_TIMEOUT = 30.0
_TRUE = frozenset({"1", "true", "yes", "on"})
_PIN_SUFFIX = ".sha256"
_PART_SUFFIX = ".part"
# mkstemp creates 0600 files; a cache filled by root in a Docker build must stay readable by the
# unprivileged user that serves the model.
_FILE_MODE = 0o644
_HEX64 = re.compile(r"[0-9a-f]{64}")
_FORCE_HINT = "run `depthlite download --force`"
_USER_AGENT = f"depthlite/{__version__}"


@dataclass(frozen=True)
class CachedFile:
    """One file of a model's cache as ``depthlite models`` reports it."""

    name: str
    path: Path
    size: int | None
    sha256: str | None
    kind: str


@dataclass(frozen=True)
class _Pin:
    sha256: str
    size: int | None = None
    mtime_ns: int | None = None


class _TransferError(Exception):
    """One URL failed (the message is the reason); callers add the URL and guidance."""


def cache_dir() -> Path:
    """The cache root: ``$DEPTHLITE_HOME`` or the user cache directory, created on demand."""
    home = os.environ.get("DEPTHLITE_HOME")
    root = Path(home).expanduser() if home else Path(platformdirs.user_cache_dir("depthlite"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def model_dir(spec: ModelSpec) -> Path:
    """Where one model's artifacts are cached."""
    return cache_dir() / "models" / spec.name


def offline_enabled(offline: bool | None = None) -> bool:
    """An explicit ``offline`` wins; otherwise ``DEPTHLITE_OFFLINE`` decides."""
    if offline is not None:
        return offline
    return os.environ.get("DEPTHLITE_OFFLINE", "").strip().lower() in _TRUE


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks so large checkpoints do not fill memory."""
    hasher = hashlib.sha256()
    with Path(path).open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


def pinned_sha256(path: Path) -> str | None:
    """The digest pinned for a cached file, or None; reads the pin only, never hashes."""
    pin = _read_pin(Path(path))
    return pin.sha256 if pin else None


def fetch(
    artifact: Artifact,
    dest_dir: Path,
    *,
    offline: bool | None = None,
    progress: bool = True,
    timeout: float = 30.0,
    force: bool = False,
) -> Path:
    """Return the verified file ``dest_dir/artifact.filename``, downloading it if missing.

    ``force`` downloads again even when a cached copy exists (``depthlite download --force``);
    the old file stays in place until the new one is verified.
    """
    final = Path(dest_dir) / artifact.filename
    if final.is_file() and not force:
        return _verify_cached(final, artifact)
    if offline_enabled(offline):
        raise OfflineError(_offline_message(artifact.filename, artifact, final, offline))
    url = _mirrored(artifact.url)
    try:
        _download(url, final, artifact, progress=progress, timeout=timeout)
    except _TransferError as exc:
        raise DownloadError(
            f"{artifact.filename}: could not download {url}: {exc}. " + _guidance(artifact, final)
        ) from exc
    return final


def resolve_checkpoint(
    spec: ModelSpec,
    *,
    weights: str | Path | None = None,
    offline: bool | None = None,
    progress: bool = True,
    force: bool = False,
) -> Path:
    """The checkpoint to load: ``weights`` as given, else a verified cached or downloaded file.

    ``spec.checkpoints`` are alternative URLs of the same file; on a network or HTTP error the
    next one is tried. A hash mismatch is not retried elsewhere: it means wrong bytes, not an
    unreachable host.
    """
    return _resolve(
        spec, spec.checkpoints, weights=weights, offline=offline, progress=progress, force=force
    )


def resolve_official_onnx(
    spec: ModelSpec,
    *,
    weights: str | Path | None = None,
    offline: bool | None = None,
    progress: bool = True,
    force: bool = False,
) -> Path:
    """Like :func:`resolve_checkpoint`, for the model's official ONNX export."""
    if spec.official_onnx is None and weights is None:
        raise WeightsError(f"{spec.name}: no official ONNX export is published for this model")
    artifacts = (spec.official_onnx,) if spec.official_onnx else ()
    return _resolve(
        spec, artifacts, weights=weights, offline=offline, progress=progress, force=force
    )


def cached_checkpoint(spec: ModelSpec) -> Path | None:
    """The first verified cached checkpoint, or None; never downloads.

    A cached file that no longer matches its pin raises :class:`HashMismatchError`.
    """
    return _first_cached(model_dir(spec), spec.checkpoints)


def _first_cached(dest: Path, artifacts: tuple[Artifact, ...]) -> Path | None:
    for artifact in artifacts:
        path = dest / artifact.filename
        if path.is_file():
            return _verify_cached(path, artifact)
    return None


def cache_status(spec: ModelSpec) -> list[CachedFile]:
    """Every artifact of ``spec`` (present or not) and every file under ``converted/``."""
    dest = model_dir(spec)
    artifacts = [*spec.checkpoints, *([spec.official_onnx] if spec.official_onnx else [])]
    files = [
        _status(artifact.filename, dest / artifact.filename, artifact.kind)
        for artifact in artifacts
    ]
    converted = dest / "converted"
    if converted.is_dir():
        files += [
            _status(f"converted/{path.name}", path, "converted")
            for path in sorted(converted.iterdir())
            if path.is_file() and not path.name.endswith((_PIN_SUFFIX, _PART_SUFFIX))
        ]
    return files


def _status(name: str, path: Path, kind: str) -> CachedFile:
    try:
        size: int | None = path.stat().st_size
    except FileNotFoundError:
        size = None
    sha256 = pinned_sha256(path) if size is not None else None
    return CachedFile(name=name, path=path, size=size, sha256=sha256, kind=kind)


def _resolve(
    spec: ModelSpec,
    artifacts: tuple[Artifact, ...],
    *,
    weights: str | Path | None,
    offline: bool | None,
    progress: bool,
    force: bool,
) -> Path:
    if weights is not None:
        return _user_weights(weights)
    dest = model_dir(spec)
    cached = None if force else _first_cached(dest, artifacts)
    if cached is not None:
        return cached
    first = artifacts[0]
    if offline_enabled(offline):
        raise OfflineError(_offline_message(spec.name, first, dest / first.filename, offline))
    tried: list[str] = []
    for artifact in artifacts:
        url = _mirrored(artifact.url)
        try:
            _download(url, dest / artifact.filename, artifact, progress=progress, timeout=_TIMEOUT)
            return dest / artifact.filename
        except _TransferError as exc:
            logger.warning("download failed, %s: %s", url, exc)
            tried.append(f"{url} ({exc})")
    raise DownloadError(
        f"{spec.name}: could not download the weights; tried: {'; '.join(tried)}. "
        + _guidance(first, dest / first.filename)
    )


def _user_weights(weights: str | Path) -> Path:
    # The user's own file: no hash check, since there is nothing to check it against.
    path = Path(weights).expanduser()
    if not path.is_file():
        raise InputNotFoundError("weights file not found", source=str(path))
    return path


def _mirrored(url: str) -> str:
    mirror = os.environ.get("DEPTHLITE_MODEL_MIRROR", "").strip()
    if mirror and url.startswith(OFFICIAL_RELEASES + "/"):
        return mirror.rstrip("/") + url[len(OFFICIAL_RELEASES) :]
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


def _download(url: str, final: Path, artifact: Artifact, *, progress: bool, timeout: float) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    logger.info("downloading %s to %s", url, final)
    with _atomic_file(final) as out:
        digest = _stream(url, out, final.name, progress=progress, timeout=timeout)
        expected = _unexpected(digest, artifact)
        if expected is not None:
            raise HashMismatchError(
                f"{final.name} downloaded from {url}: SHA-256 mismatch: expected {expected}, "
                f"got {digest}; the file was discarded"
            )
    # Pin after the rename: a crash in between leaves an unpinned file, which the next load
    # verifies and pins; pinning first could leave a pin describing a file that never arrived.
    _write_pin(final, digest)
    logger.info("saved %s (sha256 %s)", final, digest)


@contextmanager
def _atomic_file(final: Path) -> Iterator[IO[bytes]]:
    """A temp file next to ``final``, renamed onto it only if the block completes."""
    fd, tmp_name = tempfile.mkstemp(prefix=f"{final.name}.", suffix=_PART_SUFFIX, dir=final.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        tmp.chmod(_FILE_MODE)
        os.replace(tmp, final)
    except BaseException:
        # BaseException too: a Ctrl-C mid-download must not leave a .part behind.
        tmp.unlink(missing_ok=True)
        raise


def _stream(url: str, out: IO[bytes], label: str, *, progress: bool, timeout: float) -> str:
    """Copy ``url`` into ``out``; return the SHA-256 of what arrived, complete or raise."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    hasher = hashlib.sha256()
    received = 0
    expected: int | None = None
    try:
        # urlopen follows redirects itself (GitHub release assets answer 302 to a CDN).
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length", "")
            expected = int(length) if length.isdigit() else None
            with tqdm(
                total=expected,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=label,
                file=sys.stderr,
                disable=not progress,
            ) as bar:
                while chunk := response.read(_CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as exc:
        raise _TransferError(f"HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise _TransferError(str(exc.reason)) from exc
    except (http.client.HTTPException, OSError) as exc:
        if expected is None and not received:
            raise _TransferError(str(exc) or type(exc).__name__) from exc
        of = f" of {expected}" if expected is not None else ""
        raise _TransferError(f"truncated: got {received}{of} bytes ({exc!r})") from exc
    # http.client returns a short body without complaint when the peer closes early.
    if expected is not None and received != expected:
        raise _TransferError(f"truncated: got {received} of {expected} bytes")
    return hasher.hexdigest()


def _unexpected(digest: str, artifact: Artifact) -> str | None:
    """The expected value ``digest`` violates, or None when it satisfies every published one."""
    if artifact.sha256 and digest != artifact.sha256.lower():
        return artifact.sha256.lower()
    prefix = (artifact.sha256_prefix or "").lower()
    if prefix and not digest.startswith(prefix):
        return f"{prefix}... (prefix)"
    return None


def _verify_cached(path: Path, artifact: Artifact) -> Path:
    pin = _read_pin(path)
    if pin is None:
        # Placed by hand (or the process died before pinning): check what is published, then pin.
        digest = file_sha256(path)
        _raise_if_bad(path, digest, _unexpected(digest, artifact))
        _write_pin(path, digest)
        logger.info("verified and pinned %s (sha256 %s)", path, digest)
        return path
    # A pin that contradicts the spec's published digest is wrong whatever the file holds.
    _raise_if_bad(path, pin.sha256, _unexpected(pin.sha256, artifact))
    stat = path.stat()
    # Re-hashing an ~80 MB checkpoint on every CLI run costs a noticeable fraction of a second,
    # so the pin records size and mtime_ns: any ordinary rewrite changes them and forces a
    # re-hash. Someone who can forge the mtime can rewrite the pin too, so that is no new hole.
    if (pin.size, pin.mtime_ns) == (stat.st_size, stat.st_mtime_ns):
        return path
    digest = file_sha256(path)
    _raise_if_bad(path, digest, pin.sha256 if digest != pin.sha256 else None)
    _write_pin(path, digest)
    return path


def _raise_if_bad(path: Path, digest: str, expected: str | None) -> None:
    if expected is not None:
        raise HashMismatchError(
            f"{path}: SHA-256 mismatch: expected {expected}, got {digest}. The cached file is "
            f"corrupt or was modified: delete {path} or {_FORCE_HINT}."
        )


def _pin_path(path: Path) -> Path:
    return path.with_name(path.name + _PIN_SUFFIX)


def _read_pin(path: Path) -> _Pin | None:
    pin_file = _pin_path(path)
    try:
        text = pin_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
        digest = str(data["sha256"]).lower()
        if _HEX64.fullmatch(digest):
            return _Pin(digest, data.get("size"), data.get("mtime_ns"))
    except (ValueError, KeyError, TypeError):
        pass
    logger.warning("ignoring unreadable pin %s; the file will be verified again", pin_file)
    return None


def _write_pin(path: Path, digest: str) -> None:
    stat = path.stat()
    payload = {"sha256": digest, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    with _atomic_file(_pin_path(path)) as out:
        out.write(json.dumps(payload).encode() + b"\n")
