"""Jobs through Celery: recorded in this server's store, run by ``depthlite worker`` processes.

The server keeps each job's row (owner, options, inputs) in its SQLite store as in embedded
mode, so ownership, expiry and the API are the same; the task's state comes from Celery's
result store (Redis) whenever a client asks, and the result file is fetched from the shared
store once, into the job's folder.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

from celery.result import AsyncResult

from depthlite.fsutil import atomic_path
from depthlite.jobs.celery_app import make_celery
from depthlite.jobs.local import EstimatorPicker
from depthlite.jobs.protocol import (
    TASK_NAME,
    JobTaskCancelled,
    cancel_key,
    done_key,
    failures_key,
    job_payload,
)
from depthlite.jobs.shared import open_store
from depthlite.jobs.store import Job, JobStore
from depthlite.server.exceptions import QueueUnavailableError
from depthlite.server.jobs import JobBackend
from depthlite.server.pool import WorkerPool
from depthlite.server.settings import Settings

__all__ = ["CeleryJobBackend"]

logger = logging.getLogger(__name__)

_KEY_TTL = 7 * 24 * 3600
_EXPIRE_EVERY_SECONDS = 30.0


class CeleryJobBackend(JobBackend):
    def __init__(
        self,
        store: JobStore,
        pick: EstimatorPicker,
        pool: WorkerPool,
        settings: Settings,
        **limits: int,
    ) -> None:
        super().__init__(store, pick, pool, **limits)
        import redis

        config = settings.queue_config()
        self.celery = make_celery(config)
        self.shared = open_store(config.store)
        self.redis = redis.Redis.from_url(config.broker)
        self._stopping = threading.Event()
        self._collecting = threading.Lock()  # one thread moves a job's result at a time

    def start(self, loop: Any) -> None:
        threading.Thread(target=self._expire_loop, name="depthlite-expiry", daemon=True).start()
        logger.info("jobs go to Celery workers at %s", self.celery.conf.broker_url)

    def stop(self, timeout: float | None) -> None:
        self._stopping.set()
        self.redis.close()

    def _expire_loop(self) -> None:
        """Sync jobs nobody polls (so they finish and expire), then drop expired ones."""
        while not self._stopping.wait(_EXPIRE_EVERY_SECONDS):
            try:
                for job in self.store.unfinished():
                    self._sync(job)
                for job_id in self.store.expire():
                    self._forget_files(job_id)
            except Exception:
                logger.exception("job expiry failed; retrying in %g s", _EXPIRE_EVERY_SECONDS)

    def _failures(self, job_id: str) -> list[dict[str, str]] | None:
        """Each input's reason, which the worker left when every input failed."""
        key = failures_key(job_id)
        return json.loads(self.shared.get_bytes(key)) if self.shared.exists(key) else None

    def _forget_files(self, job_id: str) -> None:
        self.shared.delete_prefix(f"results/{job_id}")
        self.shared.delete_prefix(f"inputs/{job_id}")

    def submit(self, spec: Any, inputs: list[Path], owner: str) -> Job:
        job = self.store.create(spec, inputs, owner)
        try:
            payload = job_payload(job.id, spec, self.store.input_paths(job), self.shared)
            self.celery.send_task(TASK_NAME, args=[payload], task_id=job.id)
        except Exception as exc:
            # Nothing half-made stays behind: no row stuck "queued", no orphaned inputs.
            self.store.delete(job.id)
            self._forget_files(job.id)
            logger.exception("could not queue job %s", job.id)
            raise QueueUnavailableError(
                f"the job queue is unreachable ({type(exc).__name__}); try again later"
            ) from None
        return job

    def get(self, job_id: str, owner: str) -> Job:
        job = self.store.get(job_id, owner)
        return job if job.final else self._sync(job)

    def _sync(self, job: Job) -> Job:
        """Bring the row up to date with the task's state in Redis."""
        task = AsyncResult(job.id, app=self.celery)
        # One read of the task's record: `state` and `info` are separate backend reads, and a
        # task that fails between them hands back the exception where the progress dict was.
        meta = task.backend.get_task_meta(task.id)
        state = meta["status"]
        info = meta.get("result") if isinstance(meta.get("result"), dict) else {}
        if state in {"STARTED", "PROGRESS"}:
            if job.state == "queued":
                self.store.mark_running(job.id, int(info.get("attempts") or 1))
            if state == "PROGRESS":
                self.store.progress(job.id, int(info.get("done", 0)), info.get("total"))
        elif state == "SUCCESS":
            self._collect(job, meta["result"])
        elif state == "PENDING" and self.shared.exists(done_key(job.id)):
            # Done, but Celery's result expired (nobody polled for a long while): the marker
            # in the shared store still has the answer.
            self._collect(job, json.loads(self.shared.get_bytes(done_key(job.id))))
        elif state == "FAILURE":
            error = meta["result"]
            if isinstance(error, JobTaskCancelled):
                self.store.mark_cancelled(job.id)
            else:
                self.store.fail(job.id, str(error) or type(error).__name__, self._failures(job.id))
                self._forget_files(job.id)
            task.forget()
        return self.store.get(job.id)

    def _collect(self, job: Job, answer: dict[str, Any]) -> None:
        with self._collecting:
            if self.store.get(job.id).final:
                return  # another request collected it meanwhile
            key = answer["result_key"]
            target = self.store.folder(job.id) / Path(key).name
            with atomic_path(target) as tmp:
                self.shared.get_file(key, tmp)
            self.store.mark_running(job.id, int(answer.get("attempts", 1)))
            self.store.finish(job.id, target.name, list(answer.get("failures", [])))
        self._forget_files(job.id)

    def cancel(self, job_id: str, owner: str) -> Job | None:
        job = self.store.get(job_id, owner)
        if job.final:
            self.store.delete(job.id)
            self._forget_files(job.id)
            return None
        # The task checks this flag before it starts and between images or frames.
        self.redis.set(cancel_key(job_id), b"1", ex=_KEY_TTL)
        if job.state == "queued":
            self.celery.control.revoke(job_id)
        return self.store.cancel(job_id, owner)
