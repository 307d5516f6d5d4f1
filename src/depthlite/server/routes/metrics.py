"""``/metrics``: Prometheus text exposition of this app's registry."""

from __future__ import annotations

from fastapi import APIRouter, Response

from depthlite.server.deps import ApiKey, ServiceDep
from depthlite.server.metrics import CONTENT_TYPE_LATEST

__all__ = ["router"]


def router() -> APIRouter:
    api = APIRouter(tags=["metrics"], dependencies=[ApiKey])

    @api.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
    )
    async def metrics(service: ServiceDep) -> Response:
        return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return api
