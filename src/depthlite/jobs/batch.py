"""``depthlite batch``: a folder of images through the job machinery, resumable.

Local (default): the images run in this process with the same per-image step as every job
(``execute_job``'s), written where ``depthlite predict -o OUT`` would write them. Through the
queue (``queue`` configured): the images go in chunks as Celery jobs, any number of workers
take them, and results come back through the shared store into ``OUT``. Either way, an image
whose outputs all exist already is skipped, so re-running after an interruption resumes.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from depthlite.errors import InputError
from depthlite.estimator import DepthEstimator
from depthlite.imageio import (
    SIDECAR,
    InputItem,
    OutputRequest,
    file_suffix,
    output_path,
)
from depthlite.jobs.protocol import QueueConfig
from depthlite.jobs.shared import SharedStore
from depthlite.jobs.spec import JobSpec
from depthlite.pipeline import ImageTask, Layout, depth_files

if TYPE_CHECKING:
    from celery import Celery
    from celery.result import AsyncResult

__all__ = ["BatchReport", "pending_items", "run_local", "run_queued"]

logger = logging.getLogger(__name__)

Progress = Callable[[int], None]  # images finished so far
_POLL_SECONDS = 0.2


@dataclass
class BatchReport:
    done: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)


def pending_items(
    items: list[InputItem], out_dir: Path, formats: tuple[str, ...]
) -> tuple[list[InputItem], int]:
    """The items that still lack an output, and how many are complete already."""
    pending = [
        item
        for item in items
        if not all(output_path(out_dir, item.relative, fmt).is_file() for fmt in formats)
    ]
    return pending, len(items) - len(pending)


def run_local(
    est: DepthEstimator,
    items: list[InputItem],
    out_dir: Path,
    *,
    request: OutputRequest,
    progress: Progress,
    layout: Layout | None = None,
) -> BatchReport:
    """Every item's outputs into ``out_dir``, overlapped as ``layout`` says (default: one image
    after another); one bad image is reported and the others still run."""
    report = BatchReport()
    tasks = (
        ImageTask(item.source, item.path if item.path is not None else b"", out_dir, item.relative)
        for item in items
    )
    with depth_files(est, tasks, request, layout or Layout(est.threads, 1)) as outcomes:
        for outcome in outcomes:
            exc = outcome.error
            if exc is None:
                report.done += 1
            else:
                item = items[outcome.index]
                report.failures.append(
                    str(exc) if isinstance(exc, InputError) else f"{item.source}: {exc}"
                )
            progress(report.done + len(report.failures))
    return report


@dataclass
class _Chunk:
    job_id: str
    items: list[InputItem]
    stems: dict[str, Path]  # flat output stem -> the item's relative output stem
    formats: tuple[str, ...] = ()
    task: AsyncResult | None = None
    finished: bool = False
    progress: int = 0


def _flat(relative: Path) -> str:
    return "__".join(relative.parts)


def _submit(
    celery: Celery, store: SharedStore, chunk_items: list[InputItem], spec: JobSpec
) -> _Chunk:
    from depthlite.jobs.protocol import TASK_NAME, job_payload

    job_id = f"batch-{uuid.uuid4().hex}"
    stems, paths, names = {}, [], []
    for index, item in enumerate(chunk_items):
        assert item.path is not None
        flat = _flat(item.relative)
        stems[flat] = item.relative
        paths.append(item.path)
        names.append(f"{index:06d}_{flat}{item.path.suffix}")
    payload = job_payload(job_id, spec, paths, store, names)
    task = celery.send_task(TASK_NAME, args=[payload], task_id=job_id)
    files = (*spec.formats, SIDECAR) if spec.output_request().wants_sidecar else spec.formats
    return _Chunk(job_id, chunk_items, stems, files, task)


def _unpack(local: Path, chunk: _Chunk, out_dir: Path, formats: tuple[str, ...]) -> None:
    """Put a chunk's result (one file or a zip) where ``predict -o OUT`` would."""
    archive = zipfile.ZipFile(local) if local.suffix == ".zip" else None
    names = set(archive.namelist()) if archive is not None else {local.name}
    for flat, relative in chunk.stems.items():
        for fmt in formats:
            name = f"{flat}{file_suffix(fmt)}"  # exact names: no prefix guessing
            if name not in names:
                continue  # that image failed; the failure is reported separately
            target = output_path(out_dir, relative, fmt)
            target.parent.mkdir(parents=True, exist_ok=True)
            if archive is not None:
                target.write_bytes(archive.read(name))
            else:
                shutil.copyfile(local, target)


def _collect(
    chunk: _Chunk, answer: dict[str, Any], store: SharedStore, out_dir: Path, report: BatchReport
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / Path(answer["result_key"]).name
        store.get_file(answer["result_key"], local)
        _unpack(local, chunk, out_dir, chunk.formats)
    failures = answer.get("failures", [])
    report.failures += [f"{f['input']}: {f['detail']}" for f in failures]
    report.done += len(chunk.items) - len(failures)
    store.delete_prefix(f"results/{chunk.job_id}")
    store.delete_prefix(f"inputs/{chunk.job_id}")


def _check_reachable(broker: str) -> None:
    """Fail in seconds, with the fix, when Redis is not there: Celery would retry for about
    20 s and then raise its own error from deep inside its result backend."""
    import redis

    from depthlite.server.exceptions import QueueUnavailableError

    try:
        redis.Redis.from_url(broker, socket_connect_timeout=5, socket_timeout=5).ping()
    except redis.RedisError as exc:
        where = urlsplit(broker)
        host = where.hostname or where.path  # a unix:// socket has a path, not a host
        raise QueueUnavailableError(
            f"cannot reach the job queue ({where.scheme}://{host}"
            f"{f':{where.port}' if where.port else ''}): {exc}; start Redis there, fix "
            "--queue (DEPTHLITE_QUEUE), or run here with --local"
        ) from None


def run_queued(
    config: QueueConfig,
    items: list[InputItem],
    out_dir: Path,
    *,
    spec: JobSpec,
    progress: Progress,
    chunk_size: int = 8,
) -> BatchReport:
    """Send ``items`` as Celery jobs of ``chunk_size`` images; wait and collect the results.

    ``spec`` (an images job) should name its model, so a worker serving another refuses the
    jobs (with the fix) instead of answering with the wrong network.
    """
    from depthlite.jobs.celery_app import make_celery
    from depthlite.jobs.shared import open_store

    _check_reachable(config.broker)
    celery, store = make_celery(config), open_store(config.store)
    chunks = [
        _submit(celery, store, items[i : i + chunk_size], spec)
        for i in range(0, len(items), chunk_size)
    ]
    report = BatchReport()
    while not all(chunk.finished for chunk in chunks):
        for chunk in (c for c in chunks if not c.finished):
            _poll(chunk, store, out_dir, report)
        progress(
            report.done + len(report.failures) + sum(c.progress for c in chunks if not c.finished)
        )
        time.sleep(_POLL_SECONDS)
    return report


def _poll(chunk: _Chunk, store: SharedStore, out_dir: Path, report: BatchReport) -> None:
    task = chunk.task
    assert task is not None
    state = task.state
    if state == "PROGRESS" and isinstance(task.info, dict):
        chunk.progress = int(task.info.get("done", 0))
    elif state == "SUCCESS":
        chunk.finished = True
        _collect(chunk, task.result, store, out_dir, report)
        task.forget()
    elif state == "FAILURE":
        chunk.finished = True
        report.failures += [f"{item.source}: {task.result}" for item in chunk.items]
        store.delete_prefix(f"inputs/{chunk.job_id}")
        task.forget()
