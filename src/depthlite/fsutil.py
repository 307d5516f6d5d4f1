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


_HINTS = {
    errno.EROFS: "the file system is read-only; choose another folder",
    errno.EACCES: "permission denied; choose a folder you can write to",
    errno.EPERM: "permission denied; choose a folder you can write to",
    errno.ENOSPC: "no space left on the device; free some space or choose another folder",
    errno.EDQUOT: "disk quota exceeded; free some space or choose another folder",
    errno.EEXIST: "a file is in the way where a folder should be; choose another path",
    errno.ENOTDIR: "a file is in the way where a folder should be; choose another path",
    errno.ENOENT: "that path cannot be created; choose another folder",
}


def output_error(final: Path, exc: OSError) -> OutputError:
    """What went wrong writing ``final``, named by the file the user asked for (never the
    temporary one), with the way out."""
    hint = _HINTS.get(exc.errno or 0, exc.strerror or str(exc))
    return OutputError(f"cannot write {final}: {hint}")


def make_parent(final: Path) -> None:
    """``final``'s folder, created if needed; an :class:`OutputError` if it cannot be."""
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(final, exc) from exc


@contextmanager
def atomic_path(final: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``final``; on success it replaces ``final`` atomically.

    The temporary name ends in ``.part`` + ``suffix`` (some writers pick the format from the
    extension, e.g. ONNX Runtime's ``.onnx`` vs ``.ort``). On any error it is removed.
    """
    final = Path(final)
    make_parent(final)
    try:
        fd, name = tempfile.mkstemp(
            dir=final.parent, prefix=f"{final.name}.", suffix=f".part{suffix}"
        )
    except OSError as exc:
        raise output_error(final, exc) from exc
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        try:
            tmp.chmod(FILE_MODE)
            os.replace(tmp, final)
        except OSError as exc:  # say, a folder now where the file goes
            raise output_error(final, exc) from exc
    finally:
        tmp.unlink(missing_ok=True)
