"""The HTTP API and web UI (``pip install 'depthlite[server]'``; run with ``depthlite serve``).

``create_app(settings, estimator=None)`` builds an app; :class:`Settings` reads
``DEPTHLITE_*`` environment variables; :class:`WorkerPool` is the bounded inference pool.
"""

from __future__ import annotations

from depthlite.server.app import app_from_env, create_app
from depthlite.server.pool import WorkerPool
from depthlite.server.settings import Settings, load_settings

__all__ = ["Settings", "WorkerPool", "app_from_env", "create_app", "load_settings"]
