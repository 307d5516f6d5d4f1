"""Downloads of model files: one URL streamed, or one Hugging Face file, verified and pinned.

Both write next to the target under a private name, check the SHA-256 the card publishes, and
only then rename onto the final name and pin it (see :mod:`depthlite.pins`). Which sources to
try, in which order, and the offline rules are :mod:`depthlite.hub`'s.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import IO

from depthlite._version import __version__
from depthlite.errors import HashMismatchError
from depthlite.fsutil import atomic_path, make_parent, output_error
from depthlite.pins import file_sha256, published_mismatch, write_pin
from depthlite.zoo.cards import Artifact, Source

__all__ = ["TransferError", "download_hf", "download_url"]

logger = logging.getLogger("depthlite.hub")  # one logger name for everything about downloads

_CHUNK = 1 << 20
_USER_AGENT = f"depthlite/{__version__}"


class TransferError(Exception):
    """One URL failed (the message is the reason); callers add the URL and guidance."""


def download_url(
    url: str, final: Path, artifact: Artifact, *, progress: bool, timeout: float
) -> None:
    logger.info("downloading %s to %s", url, final)
    with atomic_path(final, cache=True) as tmp, tmp.open("wb") as out:
        digest = _stream(url, out, final.name, progress=progress, timeout=timeout)
        # On disk before the rename: a power cut must not leave an empty file under the name.
        out.flush()
        os.fsync(out.fileno())
        _check_published(digest, artifact, final, url)
    _pin_downloaded(final, digest)


def _check_published(digest: str, artifact: Artifact, final: Path, address: str) -> None:
    expected = published_mismatch(digest, artifact)
    if expected is not None:
        raise HashMismatchError(
            f"{final.name} downloaded from {address}: SHA-256 mismatch: expected {expected}, "
            f"got {digest}; the file was discarded"
        )


def _pin_downloaded(final: Path, digest: str) -> None:
    # Pin after the rename: a crash in between leaves an unpinned file, which the next load
    # verifies and pins; pinning first could leave a pin describing a file that never arrived.
    write_pin(final, digest)
    logger.info("saved %s (sha256 %s)", final, digest)


def download_hf(
    source: Source, final: Path, artifact: Artifact, *, progress: bool, timeout: float
) -> None:
    """One Hugging Face file via ``hf_hub_download``, verified and renamed like any download.

    It downloads into a private folder next to the target (``local_dir``: no second copy in
    the Hugging Face cache), so the same hash check, atomic rename and pin apply.
    """
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.utils import disable_progress_bars, enable_progress_bars
    except ImportError as exc:
        raise TransferError(
            "huggingface_hub is not installed: pip install huggingface_hub"
        ) from exc
    make_parent(final, cache=True)
    logger.info("downloading %s to %s", source.address, final)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent))
    except OSError as exc:
        raise output_error(final, exc, cache=True) from exc
    (enable_progress_bars if progress else disable_progress_bars)()
    try:
        try:
            got = hf_hub_download(
                str(source.hf_repo), str(source.hf_filename), revision=source.hf_revision,
                local_dir=staging, endpoint=os.environ.get("HF_ENDPOINT") or None,
                etag_timeout=timeout, library_name="depthlite", library_version=__version__,
            )  # fmt: skip
        except Exception as exc:  # HTTP, network and hub errors, each with its own type
            raise TransferError(_hf_reason(exc)) from exc
        digest = file_sha256(Path(str(got)))
        _check_published(digest, artifact, final, source.address)
        os.replace(str(got), final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _pin_downloaded(final, digest)


def _hf_reason(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _stream(url: str, out: IO[bytes], label: str, *, progress: bool, timeout: float) -> str:
    """Copy ``url`` into ``out``; return the SHA-256 of what arrived, complete or raise."""
    # Imported here, not at the top: urllib.request pulls in ssl and http.client, and tqdm
    # is heavy too (about 20 MB of RSS together), which every run would pay for a download
    # that happens once.
    import http.client
    import urllib.error
    import urllib.request

    from tqdm import tqdm

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
        raise TransferError(f"HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise TransferError(str(exc.reason)) from exc
    except (http.client.HTTPException, OSError) as exc:
        if expected is None and not received:
            raise TransferError(str(exc) or type(exc).__name__) from exc
        of = f" of {expected}" if expected is not None else ""
        raise TransferError(f"truncated: got {received}{of} bytes ({exc!r})") from exc
    # http.client returns a short body without complaint when the peer closes early.
    if expected is not None and received != expected:
        raise TransferError(f"truncated: got {received} of {expected} bytes")
    return hasher.hexdigest()
