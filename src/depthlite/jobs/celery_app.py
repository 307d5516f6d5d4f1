"""Distributed jobs: Celery with Redis as broker and result store (extra ``queue``).

Delivery guarantees, and why:

* ``acks_late`` + ``reject_on_worker_lost``: a job's message is acknowledged only after it
  finished, so a worker killed mid-job (SIGKILL, OOM) does not lose it: Redis hands it to
  another worker once the visibility timeout has passed (``queue_visibility_timeout``; keep it
  above your longest job, or a slow job is delivered twice).
* Attempts are counted in Redis *when a job starts*: a job that keeps killing its workers is
  failed, with the reason, at the start of attempt ``max_tries + 1``, instead of looping.
* Results are idempotent: a job writes its result under keys derived from its id, then a
  ``done.json`` marker; a redelivered job that finds the marker returns it without running.
* Files travel by reference through the shared store (``jobs/shared.py``), never through Redis
  (inputs under ``INLINE_LIMIT`` excepted).

Celery is imported here only; the rest of depthlite works without it.
"""

from __future__ import annotations

import base64
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from celery import Celery, Task

from depthlite.errors import DepthliteError
from depthlite.estimator import DepthEstimator
from depthlite.jobs.execute import execute_job
from depthlite.jobs.protocol import (
    TASK_NAME,
    JobTaskCancelled,
    JobTaskError,
    QueueConfig,
    attempts_key,
    cancel_key,
    done_key,
    failures_key,
)
from depthlite.jobs.shared import SharedStore, open_store
from depthlite.jobs.spec import JobCancelledError, JobSpec

__all__ = ["TASK_NAME", "WorkerContext", "make_celery"]

logger = logging.getLogger(__name__)

_KEY_TTL = 7 * 24 * 3600


class WorkerContext:
    """What a worker process holds: the store, a Redis client and the estimator (loaded once)."""

    def __init__(self, config: QueueConfig, estimator: DepthEstimator | None = None) -> None:
        import redis

        self.config = config
        self.store: SharedStore = open_store(config.store)
        self.redis = redis.Redis.from_url(config.broker)
        self.estimator = estimator


def _fetch_inputs(store: SharedStore, items: list[dict[str, str]], folder: Path) -> list[Path]:
    folder.mkdir(parents=True)
    paths = []
    for item in items:
        path = folder / Path(item["name"]).name
        if "data" in item:
            path.write_bytes(base64.b64decode(item["data"]))
        else:
            store.get_file(item["key"], path)
        paths.append(path)
    return paths


def _run_job(task: Task, ctx: WorkerContext, payload: dict[str, Any]) -> dict[str, Any]:
    job_id = payload["job_id"]
    attempts = int(ctx.redis.incr(attempts_key(job_id)))
    ctx.redis.expire(attempts_key(job_id), _KEY_TTL)
    if ctx.store.exists(done_key(job_id)):
        logger.info("job %s was already done (redelivered): returning its result", job_id)
        return dict(json.loads(ctx.store.get_bytes(done_key(job_id))))
    if attempts > ctx.config.max_tries:
        raise JobTaskError(
            f"gave up after {ctx.config.max_tries} attempts: the worker running this job died "
            "each time (killed, or out of memory?)"
        )

    def cancelled() -> bool:
        return bool(ctx.redis.exists(cancel_key(job_id)))

    if cancelled():
        raise JobTaskCancelled("the job was cancelled")
    assert ctx.estimator is not None, "the worker has no estimator"
    spec = JobSpec.from_json(payload["spec"])
    if spec.precision is not None and spec.precision != ctx.estimator.precision:
        raise JobTaskError(
            f"this job asks for {spec.precision} but the worker runs {ctx.estimator.precision}; "
            f"start workers with --precision {spec.precision}"
        )
    if spec.model is not None and spec.model != ctx.estimator.card.name:
        raise JobTaskError(
            f"this job asks for model {spec.model} but the worker runs "
            f"{ctx.estimator.card.name}; start workers with --model {spec.model}"
        )
    with tempfile.TemporaryDirectory(prefix="depthlite-job-") as tmp:
        inputs = _fetch_inputs(ctx.store, payload["inputs"], Path(tmp) / "in")
        try:
            outcome = execute_job(
                spec,
                inputs,
                Path(tmp),
                ctx.estimator,
                cancelled=cancelled,
                progress=lambda done, total: task.update_state(
                    state="PROGRESS", meta={"done": done, "total": total, "attempts": attempts}
                ),
            )
        except JobCancelledError:
            raise JobTaskCancelled("the job was cancelled") from None
        except DepthliteError as exc:
            failures = getattr(exc, "failures", None)
            if failures:
                ctx.store.put_bytes(failures_key(job_id), json.dumps(failures).encode())
            raise JobTaskError(str(exc)) from None
        result_key = f"results/{job_id}/{outcome.result.name}"
        ctx.store.put_file(result_key, outcome.result)
    answer = {"result_key": result_key, "failures": outcome.failures, "attempts": attempts}
    ctx.store.put_bytes(done_key(job_id), json.dumps(answer).encode())
    return answer


def make_celery(config: QueueConfig, context: WorkerContext | None = None) -> Celery:
    """The Celery app for ``config``; workers pass their ``context`` (estimator, store)."""
    app = Celery("depthlite", broker=config.broker, backend=config.broker)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_track_started=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=int(config.result_ttl),
        broker_transport_options={
            "visibility_timeout": config.visibility_timeout,
            # Sweep for dead workers' messages every few seconds, not kombu's ~100 s default.
            "unacked_restore_interval": max(1, min(10, int(config.visibility_timeout / 2))),
            "unacked_restore_throttle": 1,
        },
        result_backend_transport_options={"visibility_timeout": config.visibility_timeout},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )

    @app.task(name=TASK_NAME, bind=True)
    def run_job(self: Task, payload: dict[str, Any]) -> dict[str, Any]:
        if context is None:
            raise RuntimeError("this Celery app has no worker context (not a depthlite worker)")
        return _run_job(self, context, payload)

    return app
