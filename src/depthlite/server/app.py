"""The app factory: ``create_app(settings, estimator=None)``.

No module-level state: everything an app needs (estimator, worker pool, metrics registry,
readiness) is created here and kept on ``app.state.service``, so several apps can live in one
process (the tests do) and nothing happens at import time.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from depthlite._version import __version__
from depthlite.estimator import DepthEstimator
from depthlite.server.deadlines import BodyDeadlineMiddleware
from depthlite.server.errors import install_error_handlers
from depthlite.server.hosts import HostPolicy
from depthlite.server.logs import configure_logging
from depthlite.server.middleware import (
    AccessMiddleware,
    TrimMemoryMiddleware,
    TrustedHostMiddleware,
)
from depthlite.server.openapi import install_openapi
from depthlite.server.routes import (
    calibration,
    depth,
    docs,
    health,
    jobs,
    live,
    metrics,
    models,
    ui,
)
from depthlite.server.service import Service, build_estimators
from depthlite.server.settings import Settings, load_settings

__all__ = ["app_from_env", "create_app"]

logger = logging.getLogger(__name__)

_DESCRIPTION = """\
Monocular depth on the CPU: the MiDaS family and Depth Anything V2 (`GET /v1/models` lists
what this server loaded; requests choose with `?model=`).

`POST /v1/depth` with an image (multipart field `file`, or the raw bytes) returns its depth map:
a colour PNG by default, or `format=jpeg|png16|npy|pfm|side|json`; in metres with
`known=X,Y=METRES` points (two or more) or a metric model: `format=metric|metric_pfm`, and in
3-D: `format=ply|normals|normals_npy`. `POST /v1/calibration` fits metres to known points of
values a client already has. Errors are JSON `{"error": code, "detail": sentence}`; 503
answers carry `Retry-After`.
"""
# Headers a browser page on another origin may read (the web UI shows timings and retries).
_EXPOSED_HEADERS = [
    "Retry-After",
    "Server-Timing",
    "X-Depth-Width",
    "X-Depth-Height",
    "X-Depth-Kind",
    "X-Depth-Unit",
    "X-Depth-Model",
    "X-Depth-Min",
    "X-Depth-Max",
    "X-Depth-Mapping",
    "Content-Disposition",
]


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    service: Service = app.state.service
    service.start()
    logger.info(
        "serving %s with %d worker(s), queue %d",
        ", ".join(map(repr, service.estimators.values())),
        service.settings.workers,
        service.settings.queue_size,
    )
    try:
        yield
    finally:
        await service.stop()


def create_app(
    settings: Settings | None = None,
    estimator: DepthEstimator | Sequence[DepthEstimator] | None = None,
) -> FastAPI:
    """A new app. ``estimator`` (one, or one per model) replaces those ``settings`` describe
    (tests inject theirs); the first is the default model.

    Nothing is loaded here: the lifespan start-up starts the workers and loads and warms the
    model in the background (``/readyz`` turns 200 when done).
    """
    settings = settings if settings is not None else Settings()
    if estimator is None:
        estimators = build_estimators(settings)
    elif isinstance(estimator, DepthEstimator):
        estimators = [estimator]
    else:
        estimators = list(estimator)
    service = Service(settings, estimators)
    app = FastAPI(
        title="depthlite",
        version=__version__,
        description=_DESCRIPTION,
        lifespan=_lifespan,
        docs_url=None,  # served offline by routes/docs.py
        redoc_url=None,
    )
    app.state.service = service
    install_error_handlers(app)
    # A request may only ask for what was loaded: the schema's enums say exactly that.
    precisions = sorted({est.precision for est in service.estimators.values()})
    choices = {"precision": precisions, "model": list(service.estimators)}
    install_openapi(app, keyed=bool(settings.api_keys), choices=choices)
    for module in (depth, calibration, jobs, live, models, health, metrics):
        app.include_router(module.router())
    app.include_router(docs.router(app.title))
    app.include_router(ui.router())
    docs.mount_assets(app)
    ui.mount_static(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=_EXPOSED_HEADERS,
        )
    app.add_middleware(TrimMemoryMiddleware, idle=service.idle)
    app.add_middleware(
        BodyDeadlineMiddleware,
        body_timeout=settings.body_timeout,
        min_rate=settings.min_upload_rate,
    )
    app.add_middleware(TrustedHostMiddleware, policy=HostPolicy(settings.allowed_hosts))
    # Added last, so it is the outermost: it sees every request, CORS preflights included.
    app.add_middleware(AccessMiddleware, metrics=service.metrics)
    return app


def app_from_env() -> FastAPI:
    """For ``uvicorn --factory depthlite.server:app_from_env``: settings from the environment.

    Configures logging too, since no ``depthlite serve`` does it in that case.
    """
    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    return create_app(settings)
