"""One derivation scheme for every file made from another file.

A derived file lives at ``cache_dir()/derived/<recipe>/<key>/<name>`` with a ``manifest.json``
beside it. The key hashes everything the output depends on: the recipe and its version, the
input's SHA-256, the parameters and the versions of the tools that made it. Change any of them
and the key changes, so a stale file is never found. The folder is built under a temporary name
and renamed whole, manifest included, so a folder with a manifest is always complete.
``depthlite models`` lists derived files from their manifests, never from file names.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from depthlite import hub
from depthlite.fsutil import make_parent, output_error
from depthlite.pins import file_sha256, pinned_sha256

__all__ = [
    "MANIFEST",
    "Manifest",
    "derive",
    "derived_files",
    "digest_of",
    "discard",
]

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
_DERIVED = "derived"
# One maker at a time in this process: two threads asking for the same 1 GB export would
# otherwise both make it.
_make_lock = threading.Lock()


@dataclass(frozen=True)
class Manifest:
    """What made a derived file, as recorded beside it."""

    recipe: str
    version: int
    key: str
    model: str
    input_name: str
    input_sha256: str
    params: dict[str, Any]
    tools: dict[str, str]
    output: str
    output_sha256: str
    output_size: int
    created: float

    @property
    def path(self) -> Path:
        return _root() / self.recipe / self.key / self.output


def _root() -> Path:
    return hub.cache_dir() / _DERIVED


def _key(
    recipe: str,
    version: int,
    input_sha256: str,
    *,
    params: Mapping[str, Any],
    tools: Mapping[str, str],
    model: str,
) -> str:
    # The model is part of the key: the card's facts go into the file made (its metadata), and
    # two cards may share a checkpoint (Depth Anything V2 Small and its metric variants have
    # the same keys and shapes; generated weights are then the same bytes).
    text = json.dumps(
        {"recipe": recipe, "version": version, "input": input_sha256, "params": params,
         "tools": tools, "model": model},
        sort_keys=True, default=str,
    )  # fmt: skip
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def digest_of(path: Path) -> str:
    """The SHA-256 of a file, from its manifest or pin when it has one (no hashing then)."""
    path = Path(path)
    manifest = _read(path.parent / MANIFEST)
    if manifest is not None and manifest.output == path.name:
        return manifest.output_sha256
    pinned = pinned_sha256(path)
    if pinned is not None:
        return pinned
    stat = path.stat()
    return _hash_once(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _hash_once(path: str, size: int, mtime_ns: int) -> str:
    """A user's file (no pin, no manifest) is hashed once per process while it is unchanged."""
    return file_sha256(Path(path))


def _read(path: Path) -> Manifest | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Manifest(**data)
    except (OSError, ValueError, TypeError):
        return None


def derive(
    recipe: str,
    version: int,
    source: Path,
    *,
    model: str,
    output: str,
    params: Mapping[str, Any],
    tools: Mapping[str, str],
    make: Callable[[Path, Path], None],
    force: bool = False,
) -> tuple[Path, bool]:
    """The output of ``recipe`` on ``source``: cached, or made now by ``make(source, target)``.

    Returns the path and whether it was made now. ``make`` writes ``target`` (inside a private
    folder); it may raise, and then nothing is cached. ``force`` makes it again.
    """
    input_sha = digest_of(source)
    key = _key(recipe, version, input_sha, params=params, tools=tools, model=model)
    folder = _root() / recipe / key
    # Other processes may race; the last rename wins, and both made complete files.
    with _make_lock:
        manifest = None if force else _read(folder / MANIFEST)
        if manifest is not None and manifest.path.is_file():
            return manifest.path, False
        make_parent(folder, cache=True)
        try:
            staging = Path(tempfile.mkdtemp(prefix=f".{key}.", suffix=".part", dir=folder.parent))
        except OSError as exc:
            raise output_error(folder / output, exc, cache=True) from exc
        try:
            target = staging / output
            make(Path(source), target)
            made = Manifest(
                recipe=recipe, version=version, key=key, model=model, input_name=Path(source).name,
                input_sha256=input_sha, params=dict(params), tools=dict(tools), output=output,
                output_sha256=file_sha256(target), output_size=target.stat().st_size,
                created=time.time(),
            )  # fmt: skip
            (staging / MANIFEST).write_text(json.dumps(asdict(made), indent=2, default=str))
            if folder.exists():  # an incomplete folder from a crash: replace it
                shutil.rmtree(folder, ignore_errors=True)
            os.replace(staging, folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    logger.info("%s: made %s (%s)", recipe, folder / output, model)
    return folder / output, True


def derived_files(model: str | None = None) -> list[Manifest]:
    """Every complete derived file (optionally of one model), from the manifests."""
    root = _root()
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.glob(f"*/*/{MANIFEST}")):
        manifest = _read(path)
        if manifest is not None and (model is None or manifest.model == model):
            found.append(manifest)
    return found


def discard(path: Path) -> None:
    """Remove a derived file and its manifest (a damaged one: the next use makes it again)."""
    folder = Path(path).parent
    if folder.parent.parent == _root() and (folder / MANIFEST).exists():
        logger.warning("discarding the damaged derived file %s", path)
        shutil.rmtree(folder, ignore_errors=True)
