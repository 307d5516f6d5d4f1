"""What one app instance owns: settings, the shared estimators, the pool, metrics, lifecycle.

Several models may be served (``--models a,b``): each is loaded and warmed once, and requests
choose with ``?model=`` (default: the first). Lifecycle: ``start`` (lifespan start-up) starts
the workers and loads + warms the models in a background thread, so ``/healthz`` answers at
once and ``/readyz`` says when they are ready; requests before that get 503 ``not_ready`` and
never pay for the load. ``begin_shutdown`` (the first SIGTERM) makes new requests 503
``shutting_down``; ``stop`` (lifespan shutdown) lets the admitted work finish, up to
``shutdown_timeout``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from depthlite._version import __version__
from depthlite.errors import DepthliteError, InvalidOptionError
from depthlite.estimator import DepthEstimator
from depthlite.memory import SERVER_TRIM_THRESHOLD, bound_heap_retention
from depthlite.server.exceptions import (
    ModelUnavailableError,
    NotReadyError,
    ShuttingDownError,
)
from depthlite.server.jobs import build_job_backend
from depthlite.server.live import LiveRegistry
from depthlite.server.metrics import ServerMetrics
from depthlite.server.pool import WorkerPool
from depthlite.server.schemas import InputPolicyInfo, LicenceInfo, ModelFileInfo, ModelInfo
from depthlite.server.settings import Settings
from depthlite.zoo import get_card

__all__ = ["Service", "build_estimators"]

logger = logging.getLogger(__name__)

# Warm-up inputs (height, width): landscape, portrait and square photos give the three network
# shapes keep_aspect produces most (for MiDaS small 192x256, 256x192, 256x256); ONNX Runtime's
# first run of each shape is the slow one.
_WARMUP_SHAPES = ((480, 640), (640, 480), (256, 256))


def build_estimators(settings: Settings) -> list[DepthEstimator]:
    """One estimator per served model, as ``settings`` describe; nothing is loaded yet."""
    return [
        DepthEstimator.from_options(_ModelOptions(settings, name), progress=False)
        for name in settings.models
    ]


class _ModelOptions:
    """The settings seen as one model's estimator options (``model`` is one of ``models``)."""

    def __init__(self, settings: Settings, model: str) -> None:
        self._settings = settings
        self.model = model

    @property
    def weights(self) -> Path | None:
        return self._settings.weights_for(self.model)

    def __getattr__(self, name: str) -> object:
        return getattr(self._settings, name)


def _warmup_image(height: int, width: int) -> np.ndarray:
    # A smooth gradient: deterministic, and closer to a photo than noise or a flat grey.
    ys = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    xs = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    grey = (ys + xs) / 2
    rgb = np.stack([grey, xs.repeat(height, 0), ys.repeat(width, 1)], axis=-1)
    return np.ascontiguousarray(rgb.astype(np.uint8))


class Service:
    """State shared by every request of one app (``app.state.service``)."""

    def __init__(self, settings: Settings, estimators: Sequence[DepthEstimator]) -> None:
        if not estimators:
            raise InvalidOptionError("a server needs at least one model")
        self.settings = settings
        # Canonical name -> estimator, in --models order; the first is the default.
        self.estimators = {est.card.name: est for est in estimators}
        self.estimator = estimators[0]
        self.pool = WorkerPool(
            settings.workers,
            settings.queue_size,
            settings.queue_timeout,
            background_share=settings.job_share,
        )
        self.metrics = ServerMetrics(self.pool.stats, self.is_ready)
        self.live = LiveRegistry(settings.live_max_connections)
        self.jobs = build_job_backend(settings, self.pick, self.pool)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.metrics.live_connections.set_function(lambda: self.live.active)
        self._ready = threading.Event()
        self._draining = threading.Event()
        self._load_error: BaseException | None = None
        self._warmup_ms = 0.0
        self._model_info: dict[str, ModelInfo] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._warmup: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the workers and the background load + warm-up (returns at once).

        Called on the event loop (the lifespan start-up); jobs start once the model is ready.
        """
        # Before any worker thread allocates: their arenas then give freed image memory back.
        bound_heap_retention(SERVER_TRIM_THRESHOLD)
        self._loop = asyncio.get_running_loop()
        self._sweeper = self._loop.create_task(self._sweep_uploads())
        self.pool.start()
        # Daemon: an estimator stuck in load() must not block interpreter exit.
        self._warmup = threading.Thread(target=self._warm_up, name="depthlite-warmup", daemon=True)
        self._warmup.start()

    async def _sweep_uploads(self) -> None:
        """Folders of uploads a killed server left: once now, then every interval."""
        while True:
            try:
                await asyncio.to_thread(self.jobs.uploads.sweep)
            except OSError as exc:  # a full or read-only disk must not end the sweeps
                logger.warning("could not sweep orphaned uploads: %s", exc)
            await asyncio.sleep(self.settings.upload_sweep_interval)

    def _warm_up(self) -> None:
        start = time.perf_counter()
        try:
            for name, est in self.estimators.items():
                if self._draining.is_set():
                    logger.info("warm-up stopped: the server is shutting down")
                    return
                est.load()
                for height, width in _WARMUP_SHAPES:
                    if self._draining.is_set():
                        logger.info("warm-up stopped: the server is shutting down")
                        return
                    est.predict(_warmup_image(height, width), source="<warm-up>")
                self._model_info[name] = self._describe(est, loaded=True)
        except BaseException as exc:  # reported by /readyz and every request, never raised
            self._load_error = exc
            logger.error(
                "model failed to load: %s", exc, exc_info=not isinstance(exc, DepthliteError)
            )
            return
        self._warmup_ms = (time.perf_counter() - start) * 1000.0
        self._ready.set()
        if not self._draining.is_set():
            assert self._loop is not None
            self.jobs.start(self._loop)
        logger.info(
            "models %s ready (load + warm-up %.0f ms)", ", ".join(self.estimators), self._warmup_ms
        )

    def begin_shutdown(self) -> None:
        """From now on new requests get 503; safe from a signal handler or any thread."""
        if not self._draining.is_set():
            logger.info("shutting down: finishing in-flight requests, refusing new ones")
        self._draining.set()

    async def stop(self) -> None:
        """Refuse new work and wait for admitted work, up to ``shutdown_timeout``."""
        self.begin_shutdown()
        if self._sweeper is not None:
            self._sweeper.cancel()
        # A warm-up still running stops at its next step; the process must not exit while
        # it is inside the runtime (ONNX Runtime's threads then abort the process: exit 134).
        if self._warmup is not None and self._warmup.is_alive():
            await asyncio.to_thread(self._warmup.join, self.settings.shutdown_timeout)
        # Off the loop: the job runner may be waiting for a pool result the loop delivers.
        await asyncio.to_thread(self.jobs.stop, self.settings.shutdown_timeout)
        stats = self.pool.stats()
        if stats.busy or stats.queued:
            logger.info("waiting for %d running and %d queued job(s)", stats.busy, stats.queued)
        if not await self.pool.drain(self.settings.shutdown_timeout):
            logger.warning(
                "shutdown timeout (%g s) reached with work still running",
                self.settings.shutdown_timeout,
            )

    # ------------------------------------------------------------------ state
    def is_ready(self) -> bool:
        return self._ready.is_set()

    def idle(self) -> bool:
        """No request or job work running or waiting on the workers."""
        stats = self.pool.stats()
        return not (stats.busy or stats.queued)

    @property
    def draining(self) -> bool:
        return self._draining.is_set()

    @property
    def warmup_ms(self) -> float:
        return self._warmup_ms

    def check_available(self) -> None:
        """Raise the 503 that explains why requests cannot be served now, if any."""
        if self._draining.is_set():
            raise ShuttingDownError("the server is shutting down")
        if self._load_error is not None:
            raise ModelUnavailableError(f"the model failed to load: {self._load_error}")
        if not self._ready.is_set():
            raise NotReadyError("the model is loading or warming up; try again shortly")

    def pick(self, model: str | None) -> DepthEstimator:
        """The estimator of ``model`` (a name or alias; None: the default); 422 otherwise."""
        if model is None:
            return self.estimator
        found = self.estimators.get(get_card(model).name)
        if found is None:
            raise InvalidOptionError(
                f"model {model!r} is not loaded on this server; loaded: "
                f"{', '.join(self.estimators)} (start it with --models to change that)"
            )
        return found

    def check_precision(self, precision: str | None, est: DepthEstimator | None = None) -> None:
        """A request's ``precision`` must be the one this server loaded."""
        loaded = (est or self.estimator).precision
        if precision is not None and precision != loaded:
            raise InvalidOptionError(
                f"precision {precision!r} is not available on this server; it runs "
                f"{loaded!r} (start it with --precision to change that)"
            )

    def model_info(self) -> list[ModelInfo]:
        """What /v1/models shows; never loads a model (that would block the event loop)."""
        return [
            self._model_info.get(name) or self._describe(est, loaded=False)
            for name, est in self.estimators.items()
        ]

    def _describe(self, est: DepthEstimator, *, loaded: bool) -> ModelInfo:
        card = est.card
        policy = file = None
        if loaded:
            # Only called from the warm-up thread, once the session exists.
            policy = InputPolicyInfo(**dataclasses.asdict(est.input_policy()))
            resolved = est.model_file
            file = ModelFileInfo(
                name=resolved.path.name, origin=resolved.origin, steps=list(resolved.steps)
            )
        return ModelInfo(
            name=card.name,
            aliases=list(card.aliases),
            family=card.family,
            description=card.description,
            params=card.params,
            output=card.output.description,
            kind=card.output.kind,
            unit=card.output.unit,
            licence=LicenceInfo(**dataclasses.asdict(card.licence)),
            default=est is self.estimator,
            backend=est.backend_name,
            precision=est.precision,
            precision_auto=est.auto_choice.summary() if est.auto_choice else None,
            precisions=[est.precision],
            resize=est.resize,
            threads=est.threads,
            loaded=loaded,
            ready=loaded,
            input_policy=policy,
            model_file=file,
        )

    @property
    def version(self) -> str:
        return __version__
