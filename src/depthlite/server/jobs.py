"""The server's job backend: embedded (SQLite + folder + the worker pool) or Celery.

``Service`` owns one; the routes only call :class:`JobBackend`'s methods. The embedded backend
runs jobs in this process on the same bounded pool as ``/v1/depth``; with ``DEPTHLITE_QUEUE``
set, jobs are recorded here but run on ``depthlite worker`` processes (``jobs/celery_app.py``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from depthlite.hub import cache_dir
from depthlite.jobs.local import EmbeddedRunner, EstimatorPicker
from depthlite.jobs.spec import JobSpec, JobStateError
from depthlite.jobs.store import Job, JobStore
from depthlite.server.exceptions import JobsFullError
from depthlite.server.pool import WorkerPool
from depthlite.server.settings import Settings
from depthlite.server.staging import UploadArea

__all__ = ["JobBackend", "build_job_backend", "jobs_root"]

logger = logging.getLogger(__name__)


def jobs_root(settings: Settings) -> Path:
    return settings.jobs_dir if settings.jobs_dir is not None else cache_dir() / "jobs"


class JobBackend:
    """Embedded jobs: state in ``store``, run by an :class:`EmbeddedRunner` on the pool."""

    def __init__(
        self,
        store: JobStore,
        pick: EstimatorPicker,
        pool: WorkerPool,
        *,
        max_tries: int = 3,
        max_jobs: int = 100,
    ) -> None:
        self.store = store
        self.max_tries = max_tries
        self.max_jobs = max_jobs
        self.pick = pick
        self.pool = pool
        self.runner: EmbeddedRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()  # start (warm-up thread) vs stop (shutdown)
        self._stopped = False
        self.uploads = UploadArea(self.store.root / "uploads")

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start running jobs (after the model is ready); ``loop`` runs the pool's futures."""
        with self._lock:
            if self._stopped:  # shut down before the model was ready: nothing to start
                return
            self._loop = loop
            self.runner = EmbeddedRunner(
                self.store, self.pick, self._run_on_pool, max_tries=self.max_tries
            )
            self.runner.start()

    def stop(self, timeout: float | None) -> None:
        with self._lock:
            self._stopped = True
            runner = self.runner
        if runner is not None:
            runner.stop(timeout)

    def _run_on_pool(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on the worker pool's background lane, from the runner's thread.

        That lane is never refused for uploads filling the queue and gets its share of the
        workers' turns (``--job-share``), so a job progresses however busy uploads keep it.
        """
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(
            self.pool.submit_background(fn, *args), self._loop
        )
        return future.result()

    # ------------------------------------------------------------------ the API's verbs
    def check_capacity(self) -> None:
        """Refuse a new job when ``max_jobs`` are queued or running (disk and time are finite)."""
        counts = self.store.counts()
        if counts.get("queued", 0) + counts.get("running", 0) >= self.max_jobs:
            raise JobsFullError(
                f"{self.max_jobs} job(s) are already queued or running; try again later"
            )

    def submit(self, spec: JobSpec, inputs: list[Path], owner: str) -> Job:
        job = self.store.create(spec, inputs, owner)
        if self.runner is not None:
            self.runner.wake()
        return job

    def get(self, job_id: str, owner: str) -> Job:
        return self.store.get(job_id, owner)

    def result_path(self, job: Job) -> Path:
        if job.state != "done" or job.result is None:
            reason = f": {job.error}" if job.error else ""
            raise JobStateError(f"job {job.id} is {job.state}{reason}; no result to fetch")
        return self.store.folder(job.id) / job.result

    def cancel(self, job_id: str, owner: str) -> Job | None:
        """Cancel a queued or running job; delete a finished one (then None)."""
        job = self.store.get(job_id, owner)
        if job.final:
            self.store.delete(job.id)
            return None
        job = self.store.cancel(job_id, owner)
        if self.runner is not None:
            self.runner.wake()
        return job


def build_job_backend(settings: Settings, pick: EstimatorPicker, pool: WorkerPool) -> JobBackend:
    store = JobStore(jobs_root(settings), ttl=settings.job_ttl)
    limits = {"max_tries": settings.queue_max_tries, "max_jobs": settings.max_jobs}
    if settings.queue:
        from depthlite.server.celery_jobs import CeleryJobBackend

        return CeleryJobBackend(store, pick, pool, settings, **limits)
    return JobBackend(store, pick, pool, **limits)
