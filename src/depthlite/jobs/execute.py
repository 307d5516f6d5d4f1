"""The work of one job, wherever it runs: the embedded runner, a Celery worker, ``batch``.

Inputs are files, outputs go to a folder, and ``run(fn, *args)`` decides where the CPU work
happens (directly, or on the server's bounded worker pool so jobs share it fairly with
uploads). One bad image is recorded and skipped, like ``depthlite predict``; a job fails only
if every input failed, or its video did.
"""

from __future__ import annotations

import logging
import re
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from depthlite.errors import DepthliteError, InputError
from depthlite.estimator import DepthEstimator
from depthlite.fsutil import atomic_path
from depthlite.jobs.spec import JobCancelledError, JobSpec
from depthlite.pipeline import ImageTask, Layout, RunFn, depth_files, run_directly, workers_for
from depthlite.video.pipeline import process_video

__all__ = ["JobFailedError", "JobOutcome", "RunFn", "execute_job", "input_name", "run_directly"]

logger = logging.getLogger(__name__)

_INDEX_PREFIX = re.compile(r"^\d{6}_")
_VIDEO_SUFFIX = {"mp4": "_depth.mp4", "npz": "_depth.npz", "png16": "_frames"}


class JobFailedError(DepthliteError):
    """Nothing could be produced (every input failed, or the video did)."""

    code = "job_failed"
    status = 422

    def __init__(self, message: str, failures: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.failures = failures or []  # each input's reason, kept with the failed job


@dataclass
class JobOutcome:
    result: Path  # one file, or result.zip
    failures: list[dict[str, str]] = field(default_factory=list)


def input_name(stored: str) -> str:
    """The name the client gave (stored inputs carry an index prefix to stay unique)."""
    return _INDEX_PREFIX.sub("", stored)


def _stems(inputs: list[Path]) -> list[str]:
    """One output stem per input, unique within the job (a.jpg, a.png -> a, a_2)."""
    taken: set[str] = set()
    stems = []
    for index, path in enumerate(inputs):
        base = Path(input_name(path.name)).stem or "image"
        stem, suffix = base, index + 1
        while stem in taken:
            stem = f"{base}_{suffix}"
            suffix += 1
        taken.add(stem)
        stems.append(stem)
    return stems


@dataclass(frozen=True)
class _Context:
    spec: JobSpec
    out_dir: Path
    est: DepthEstimator
    run: RunFn
    progress: Callable[[int, int | None], None]


def _images(ctx: _Context, inputs: list[Path]) -> list[dict[str, str]]:
    spec, est = ctx.spec, ctx.est
    request = spec.output_request()
    # A job queued for another model (or before a change of model) fails here, whole.
    request.check(est.card.output.kind, est.card.name)
    tasks = [
        ImageTask(input_name(path.name), path, ctx.out_dir, Path(stem))
        for path, stem in zip(inputs, _stems(inputs), strict=True)
    ]
    # Images overlap (the next decoded while the network runs) when the session leaves cores.
    layout = Layout(est.threads, workers_for(est.threads))
    failures = []
    with depth_files(
        est, tasks, request, layout, resize=spec.resize, run=ctx.run, item_errors=(InputError,)
    ) as outcomes:
        for done, outcome in enumerate(outcomes, start=1):
            exc = outcome.error
            if isinstance(exc, InputError):
                failures.append(
                    {"input": outcome.item.source, "error": exc.code, "detail": str(exc)}
                )
            ctx.progress(done, len(inputs))
    if failures and len(failures) == len(inputs):
        raise JobFailedError(
            f"every input failed ({len(failures)}); first: {failures[0]['detail']}", failures
        )
    return failures


def _video(ctx: _Context, source: Path) -> None:
    spec, est, run = ctx.spec, ctx.est, ctx.run
    stem = Path(input_name(source.name)).stem or "video"
    target = ctx.out_dir / f"{stem}{_VIDEO_SUFFIX[spec.formats[0]]}"

    def infer(x: np.ndarray) -> np.ndarray:
        return run(est.infer, x)  # type: ignore[no-any-return]

    try:
        process_video(est, source, target, spec.video_options(), ctx.progress, infer=infer)
    except InputError as exc:
        exc.source = input_name(source.name)  # the client's name, not this server's path
        raise


def _package(out_dir: Path, result_dir: Path) -> Path:
    files = sorted(p for p in out_dir.rglob("*") if p.is_file())
    if len(files) == 1:
        return files[0]
    result = result_dir / "result.zip"
    # PNG, MP4 and npz are compressed already: storing is as small and much faster.
    with (
        atomic_path(result, ".zip") as tmp,
        zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as archive,
    ):
        for path in files:
            archive.write(path, path.relative_to(out_dir).as_posix())
    return result


def execute_job(
    spec: JobSpec,
    inputs: list[Path],
    work_dir: Path,
    est: DepthEstimator,
    *,
    run: RunFn = run_directly,
    progress: Callable[[int, int | None], None] | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> JobOutcome:
    """Run ``spec`` on ``inputs``; outputs go to ``work_dir/out``, the result next to it."""
    out_dir = work_dir / "out"
    shutil.rmtree(out_dir, ignore_errors=True)  # a restarted job starts clean
    out_dir.mkdir(parents=True)

    def report(done: int, total: int | None) -> None:
        if cancelled():
            raise JobCancelledError("the job was cancelled")
        if progress is not None:
            progress(done, total)

    report(0, len(inputs) if spec.kind == "images" else None)
    ctx = _Context(spec, out_dir, est, run, report)
    if spec.kind == "video":
        _video(ctx, inputs[0])
        failures: list[dict[str, str]] = []
    else:
        failures = _images(ctx, inputs)
    return JobOutcome(_package(out_dir, work_dir), failures)
