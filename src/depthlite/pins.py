"""Hash pins: the SHA-256 recorded next to each verified cached file, and the checks against it.

A pin is ``<file>.sha256`` next to ``<file>``, written in the ``sha256sum`` format
(``<hex digest>  <file name>``), so ``cd <dir> && sha256sum -c <file>.sha256`` checks a cached
file by hand. It holds the digest only: every load of a cached file hashes it in full and
compares (about 50-200 ms for an 80 MB checkpoint), because size and mtime prove nothing
against a same-size edit with the mtime restored. Pins written by earlier versions (JSON with
``sha256``, ``size`` and ``mtime_ns``) are still read; only their digest is used.

The pin is what makes artifacts without a published digest (the official ONNX export)
verifiable after their first download: trust on first use, then every later load must match.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path
from typing import NoReturn

from depthlite.errors import HashMismatchError, OutputError
from depthlite.fsutil import atomic_path
from depthlite.zoo.cards import Artifact

__all__ = [
    "PIN_SUFFIX",
    "file_sha256",
    "pin_path",
    "pinned_sha256",
    "published_mismatch",
    "verify_cached",
    "write_pin",
]

logger = logging.getLogger(__name__)

PIN_SUFFIX = ".sha256"
_CHUNK = 1 << 20
_HEX64 = re.compile(r"[0-9a-f]{64}")
_FORCE_HINT = "run `depthlite download --force`"


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks so large checkpoints do not fill memory."""
    hasher = hashlib.sha256()
    with Path(path).open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


def pin_path(path: Path) -> Path:
    """Where the pin of ``path`` lives."""
    path = Path(path)
    return path.with_name(path.name + PIN_SUFFIX)


def pinned_sha256(path: Path) -> str | None:
    """The digest pinned for a cached file, or None; reads the pin only, never hashes."""
    pin_file = pin_path(path)
    try:
        text = pin_file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    digest = _parse_pin(text)
    if digest is None:
        logger.warning("ignoring unreadable pin %s; the file will be verified again", pin_file)
    return digest


def _parse_pin(text: str) -> str | None:
    if text.startswith("{"):  # the JSON pins of earlier versions
        try:
            candidate = str(json.loads(text)["sha256"])
        except (ValueError, KeyError, TypeError):
            return None
    else:
        candidate = text.split(maxsplit=1)[0] if text else ""
    candidate = candidate.lower()
    return candidate if _HEX64.fullmatch(candidate) else None


def write_pin(path: Path, digest: str) -> None:
    """Pin ``digest`` for ``path`` (atomically: a reader never sees half a pin)."""
    path = Path(path)
    with atomic_path(pin_path(path), cache=True) as tmp:
        tmp.write_text(f"{digest}  {path.name}\n", encoding="utf-8")


def published_mismatch(digest: str, artifact: Artifact) -> str | None:
    """The published value ``digest`` violates, or None when it satisfies every one."""
    if artifact.sha256 and digest != artifact.sha256.lower():
        return artifact.sha256.lower()
    prefix = (artifact.sha256_prefix or "").lower()
    if prefix and not digest.startswith(prefix):
        return f"{prefix}... (prefix)"
    return None


def verify_cached(path: Path, artifact: Artifact) -> Path:
    """Hash the cached ``path`` in full and check it against its pin and the published digest.

    An unpinned file (placed by hand, or the process died between rename and pin) that passes
    the published check is pinned now. Raises :class:`HashMismatchError` on any mismatch.
    """
    path = Path(path)
    digest = file_sha256(path)
    pinned = pinned_sha256(path)
    if pinned is not None and digest != pinned:
        _raise_mismatch(path, digest, pinned)
    # Checked even when the pin matches: a pin that contradicts the published digest is wrong
    # whatever the file holds (say, pinned before the spec learned the digest).
    expected = published_mismatch(digest, artifact)
    if expected is not None:
        _raise_mismatch(path, digest, expected)
    if pinned is None:
        _pin_quietly(path, digest)
    return path


def _pin_quietly(path: Path, digest: str) -> None:
    # A read-only cache (filled by root in a Docker build, served by another user) must still
    # load: the file was just verified, and without a pin it is simply verified again next time.
    try:
        write_pin(path, digest)
    except (OSError, OutputError) as exc:
        logger.warning("verified %s but could not pin it: %s", path, exc)
        return
    logger.info("verified and pinned %s (sha256 %s)", path, digest)


def _raise_mismatch(path: Path, digest: str, expected: str) -> NoReturn:
    raise HashMismatchError(
        f"{path}: SHA-256 mismatch: expected {expected}, got {digest}. The cached file is "
        f"corrupt or was modified: delete {path} or {_FORCE_HINT}."
    )
