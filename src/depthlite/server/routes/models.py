"""``/v1/models``: what is loaded and what the API accepts."""

from __future__ import annotations

from fastapi import APIRouter

from depthlite.colorize import DEFAULT_COLORMAP
from depthlite.options import RESIZE_MODES
from depthlite.server.deps import ApiKey, ServiceDep
from depthlite.server.schemas import API_FORMATS, COLORMAP_NAMES, ErrorBody, ModelsBody

__all__ = ["router"]


def router() -> APIRouter:
    api = APIRouter(
        prefix="/v1",
        tags=["models"],
        dependencies=[ApiKey],
        responses={401: {"model": ErrorBody}},
    )

    @api.get("/models", summary="The served models, their cards and the API's options")
    async def models(service: ServiceDep) -> ModelsBody:
        settings = service.settings
        return ModelsBody(
            version=service.version,
            models=service.model_info(),
            formats=list(API_FORMATS),
            colormaps=list(COLORMAP_NAMES),
            default_colormap=DEFAULT_COLORMAP,
            resize_modes=list(RESIZE_MODES),
            workers=settings.workers,
            queue_size=settings.queue_size,
            max_body_bytes=settings.max_body_bytes,
            max_pixels=settings.max_pixels,
        )

    return api
