"""Atomic file creation: a reader never sees a half-written file under its final name."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["FILE_MODE", "atomic_path"]

# mkstemp creates 0600 files; a cache filled by root (say in a Docker build) must stay readable
# by the unprivileged user that serves the model.
FILE_MODE = 0o644


@contextmanager
def atomic_path(final: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``final``; on success it replaces ``final`` atomically.

    The temporary name ends in ``.part`` + ``suffix`` (some writers pick the format from the
    extension, e.g. ONNX Runtime's ``.onnx`` vs ``.ort``). On any error it is removed.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=final.parent, prefix=f"{final.name}.", suffix=f".part{suffix}")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        tmp.chmod(FILE_MODE)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
