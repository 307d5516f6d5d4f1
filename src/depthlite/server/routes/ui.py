"""The web UI: ``GET /`` is ``static/index.html``; ``/static/*`` serves that folder."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from depthlite.server.errors import error_response

__all__ = ["STATIC_DIR", "mount_static", "router"]

# Shipped inside the package (package-data "server/static/*"), next to this package's modules.
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


def router(static_dir: Path = STATIC_DIR) -> APIRouter:
    api = APIRouter(tags=["ui"])

    @api.get("/", include_in_schema=False)
    async def index() -> Response:
        page = static_dir / "index.html"
        if not page.is_file():
            return error_response(404, "not_found", "the web UI is not installed; see /docs")
        return FileResponse(page, media_type="text/html")

    return api


def mount_static(app: FastAPI, static_dir: Path = STATIC_DIR) -> None:
    """Serve ``static_dir`` at /static, if it exists (a stripped install may lack it)."""
    if static_dir.is_dir():
        app.mount("/static", StaticFiles(directory=static_dir), name="static")
