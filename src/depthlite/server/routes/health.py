"""``/healthz`` (the process is up) and ``/readyz`` (the model is loaded and warmed up)."""

from __future__ import annotations

from fastapi import APIRouter

from depthlite.server.deps import ServiceDep
from depthlite.server.schemas import ErrorBody, HealthBody, ReadyBody

__all__ = ["router"]


def router() -> APIRouter:
    api = APIRouter(tags=["health"])

    @api.get("/healthz", summary="Liveness: the process is up")
    async def healthz() -> HealthBody:
        # Always open (no API key) and always 200 while the process serves HTTP at all.
        return HealthBody()

    @api.get(
        "/readyz",
        summary="Readiness: the model is loaded and warmed up",
        responses={503: {"model": ErrorBody, "description": "loading, failed or shutting down"}},
    )
    async def readyz(service: ServiceDep) -> ReadyBody:
        service.check_available()
        return ReadyBody(model=service.estimator.card.name, warmup_ms=round(service.warmup_ms, 1))

    return api
