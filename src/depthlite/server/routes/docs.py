"""``/docs`` (Swagger UI) and ``/redoc`` with their scripts served from this server.

FastAPI's own pages load Swagger UI from a CDN, so they are blank offline. The assets come
from ``fastapi-offline`` (a maintained package that ships current Swagger UI and ReDoc
builds); only its files are used, not its app factory.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["ASSETS_URL", "mount_assets", "router"]

ASSETS_URL = "/static/docs"


def _assets_dir() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


def router(title: str, openapi_url: str = "/openapi.json") -> APIRouter:
    api = APIRouter(include_in_schema=False)

    @api.get("/docs")
    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - API",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
            oauth2_redirect_url=None,
        )

    @api.get("/redoc")
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} - API",
            redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )

    return api


def mount_assets(app: FastAPI) -> None:
    # Mounted before /static (the web UI), which would otherwise answer this prefix.
    app.mount(ASSETS_URL, StaticFiles(directory=_assets_dir()), name="docs-assets")
