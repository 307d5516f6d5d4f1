"""What the server, ``depthlite batch`` and the workers agree on; no Celery import here.

The message of a job (``job_payload``), the Redis keys beside it, the task's name, and the two
exceptions a task ends with (plain ``Exception`` subclasses taking one message, so Celery's JSON
result backend rebuilds them on any client).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

from depthlite.jobs.shared import INLINE_LIMIT, SharedStore
from depthlite.jobs.spec import JobSpec

__all__ = [
    "TASK_NAME",
    "JobTaskCancelled",
    "JobTaskError",
    "QueueConfig",
    "attempts_key",
    "cancel_key",
    "done_key",
    "failures_key",
    "job_payload",
]

TASK_NAME = "depthlite.run_job"


class JobTaskError(Exception):
    """A job failed; the message is the reason (plain, so any client can rebuild it)."""


class JobTaskCancelled(Exception):  # noqa: N818 - the job was cancelled; not an error
    """The job was cancelled before or while it ran."""


@dataclass(frozen=True)
class QueueConfig:
    broker: str
    store: str
    max_tries: int = 3
    visibility_timeout: float = 3600.0
    result_ttl: float = 86400.0


def attempts_key(job_id: str) -> str:
    return f"depthlite:attempts:{job_id}"


def cancel_key(job_id: str) -> str:
    return f"depthlite:cancel:{job_id}"


def done_key(job_id: str) -> str:
    return f"results/{job_id}/done.json"


def failures_key(job_id: str) -> str:
    """Where a failed job's per-input reasons wait for the server (a task error is a string)."""
    return f"results/{job_id}/failures.json"


def job_payload(
    job_id: str,
    spec: JobSpec,
    inputs: list[Path],
    store: SharedStore,
    names: list[str] | None = None,
) -> dict:
    """The message for ``job_id``: small inputs inline, the others uploaded to ``store``.

    ``names`` are what the worker calls the inputs (default: their file names), so callers
    need not copy files just to rename them.
    """
    items = []
    for path, name in zip(inputs, names or [p.name for p in inputs], strict=True):
        if path.stat().st_size <= INLINE_LIMIT:
            items.append({"name": name, "data": base64.b64encode(path.read_bytes()).decode()})
        else:
            key = f"inputs/{job_id}/{name}"
            store.put_file(key, path)
            items.append({"name": name, "key": key})
    return {"job_id": job_id, "spec": spec.to_json(), "inputs": items}
