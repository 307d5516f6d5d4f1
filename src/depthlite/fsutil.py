"""Atomic file creation: a reader never sees a half-written file under its final name."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from depthlite.errors import OutputError

__all__ = ["FILE_MODE", "atomic_path", "make_parent", "output_error"]

# mkstemp creates 0600 files; a cache filled by root (say in a Docker build) must stay readable
# by the unprivileged user that serves the model.
FILE_MODE = 0o644


_REASONS = {
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EEXIST: "a file is in the way where a folder should be",
    errno.ENOTDIR: "a file is in the way where a folder should be",
    errno.ENOENT: "that path cannot be created",
}


def output_error(final: Path, exc: OSError, *, cache: bool = False) -> OutputError:
    """What went wrong writing ``final``, named by the file the user asked for (never the
    temporary one), with the way out: another folder, or for the cache, DEPTHLITE_HOME."""
    reason = _REASONS.get(exc.errno or 0, exc.strerror or str(exc))
    if cache:
        return OutputError(
            f"cannot write the cache file {final}: {reason}; set DEPTHLITE_HOME to a folder "
            "you can write to, with space"
        )
    space = exc.errno in (errno.ENOSPC, errno.EDQUOT)
    advice = "free some space or choose another folder" if space else "choose another folder"
    return OutputError(f"cannot write {final}: {reason}; {advice}")


def make_parent(final: Path, *, cache: bool = False) -> None:
    """``final``'s folder, created if needed; an :class:`OutputError` if it cannot be."""
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(final, exc, cache=cache) from exc


@contextmanager
def atomic_path(final: Path, suffix: str = "", *, cache: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; on success it replaces ``final`` atomically.

    The temporary name ends in ``.part`` + ``suffix`` (some writers pick the format from the
    extension, e.g. ONNX Runtime's ``.onnx`` vs ``.ort``). On any error it is removed.
    ``cache``: ``final`` is in depthlite's cache, so a failure points to DEPTHLITE_HOME.
    """
    final = Path(final)
    make_parent(final, cache=cache)
    try:
        fd, name = tempfile.mkstemp(
            dir=final.parent, prefix=f"{final.name}.", suffix=f".part{suffix}"
        )
    except OSError as exc:
        raise output_error(final, exc, cache=cache) from exc
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        try:
            tmp.chmod(FILE_MODE)
            os.replace(tmp, final)
        except OSError as exc:  # say, a folder now where the file goes
            raise output_error(final, exc, cache=cache) from exc
    finally:
        tmp.unlink(missing_ok=True)
