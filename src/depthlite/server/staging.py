"""Where job uploads wait while they arrive: one folder per request, swept when orphaned.

A request's folder is removed when the request ends, however it ends; only a killed process
(``kill -9``, power loss) leaves one behind. :meth:`UploadArea.sweep` removes every folder no
request of this process is using: the server runs it at start and then periodically.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["UploadArea"]

logger = logging.getLogger(__name__)


class UploadArea:
    """Upload folders under ``root``; the ones in use are known, so the rest can go."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._active: set[str] = set()
        self._lock = threading.Lock()

    @contextmanager
    def folder(self) -> Iterator[Path]:
        """A fresh folder for one request's files, removed on exit."""
        path = self.root / secrets.token_hex(8)
        # Registered before it exists, so a concurrent sweep can never see it unclaimed.
        with self._lock:
            self._active.add(path.name)
        try:
            path.mkdir(parents=True)
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
            with self._lock:
                self._active.discard(path.name)

    def sweep(self) -> int:
        """Remove the folders (and stray files) no request is using; how many went."""
        if not self.root.is_dir():
            return 0
        removed = 0
        for child in self.root.iterdir():
            with self._lock:
                if child.name in self._active:
                    continue
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
            removed += 1
        if removed:
            logger.info("removed %d orphaned upload folder(s) from %s", removed, self.root)
        return removed
