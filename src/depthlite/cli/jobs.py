"""``depthlite batch`` (a folder of images, resumable, local or queued) and ``depthlite worker``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from depthlite.cli.common import (
    add_colormap_option,
    add_formats_option,
    add_max_pixels_option,
    add_model_options,
    build_estimator,
    check_output_folder,
    error,
    positive_int,
)
from depthlite.cli.metres import (
    add_calibration_options,
    add_camera_options,
    output_request,
)
from depthlite.cli.workers import add_workers_option, estimator_for
from depthlite.errors import EXIT_FAILURE, EXIT_OK, InvalidOptionError
from depthlite.imageio import OutputRequest, expand_inputs

if TYPE_CHECKING:
    from depthlite.jobs.protocol import QueueConfig
    from depthlite.jobs.spec import JobSpec

__all__ = ["register"]


def _queue_options(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("queue (extra 'queue'; default from DEPTHLITE_* variables)")
    group.add_argument("--queue", metavar="URL", help="Redis URL (DEPTHLITE_QUEUE)")
    group.add_argument("--store", metavar="DIR|s3://B/P", help="shared store (DEPTHLITE_STORE)")
    group.add_argument("--max-tries", type=positive_int, help="attempts before a job fails")
    group.add_argument(
        "--visibility-timeout",
        type=float,
        metavar="SEC",
        help="seconds before a dead worker's job is delivered again (default 3600)",
    )


def _queue_config(args: argparse.Namespace) -> QueueConfig:
    """The queue the flags and DEPTHLITE_* variables describe (validated like the server's)."""
    from depthlite.server.settings import load_settings

    return load_settings(
        queue=args.queue,
        store=args.store,
        queue_max_tries=args.max_tries,
        queue_visibility_timeout=args.visibility_timeout,
    ).queue_config()


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "batch",
        help="a folder of images, resumable; locally or through the job queue",
        description="Depth outputs for every image under the inputs, into OUT (sub-folders "
        "mirrored). Images whose outputs all exist are skipped, so a re-run resumes. With a "
        "queue (--queue or DEPTHLITE_QUEUE) the images go to `depthlite worker` processes.",
    )
    p.add_argument("inputs", nargs="+", metavar="DIR", help="folders, files or globs")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT")
    add_formats_option(p, ("color",))
    add_colormap_option(p)
    p.add_argument("-r", "--recursive", action="store_true", help="descend into sub-folders")
    p.add_argument("--local", action="store_true", help="run here even if a queue is set")
    p.add_argument("--chunk", type=positive_int, default=8, help="images per queued job")
    add_max_pixels_option(p, "; through a queue, the workers' own --max-pixels applies")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("-v", "--verbose", action="count", default=0)
    add_calibration_options(p)
    add_camera_options(p)
    _queue_options(p)
    add_model_options(p)
    add_workers_option(p)
    p.set_defaults(handler=run_batch)

    w = sub.add_parser(
        "worker",
        help="run queued jobs (Celery + Redis); start any number, anywhere",
        description="Load the model once, then take jobs from the queue until stopped. Jobs "
        "are acknowledged only when finished: a killed worker's job goes to another worker.",
    )
    w.add_argument("-v", "--verbose", action="count", default=0)
    add_max_pixels_option(w)
    _queue_options(w)
    add_model_options(w)
    w.set_defaults(handler=run_worker, quiet=False)


def run_batch(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from depthlite.jobs.batch import pending_items, run_local, run_queued
    from depthlite.pipeline import plan_layout

    if args.save_calibration is not None:
        raise InvalidOptionError(
            "batch fits each image on its own: --save-calibration is for predict"
        )
    check_output_folder(args.output)
    est = build_estimator(args, progress=not args.quiet)
    request = output_request(args, est)  # usage errors before any work
    queued = not args.local and bool(args.queue or os.environ.get("DEPTHLITE_QUEUE"))
    config = _queue_config(args) if queued else None
    items, failures = expand_inputs(args.inputs, recursive=args.recursive, flat_output=True)
    for failure in failures:
        error(str(failure))
    todo, skipped = pending_items(items, args.output, args.format)
    bar = tqdm(total=len(todo), unit="img", disable=args.quiet, file=sys.stderr)

    def progress(done: int) -> None:
        bar.update(done - bar.n)

    try:
        if config is not None:
            report = run_queued(
                config,
                todo,
                args.output,
                spec=_job_spec(request, est.card.name),
                progress=progress,
                chunk_size=args.chunk,
            )
        else:
            layout = plan_layout(args.threads, args.workers, len(todo))
            est = estimator_for(est, args, layout)
            est.load()
            report = run_local(
                est, todo, args.output, request=request, progress=progress, layout=layout
            )
    finally:
        bar.close()
    for message in report.failures:
        error(message)
    if not args.quiet:
        where = "through the queue" if config is not None else "locally"
        print(
            f"depthlite: {report.done} image(s) done {where}, {skipped} already done, "
            f"{len(report.failures) + len(failures)} failed",
            file=sys.stderr,
        )
    return EXIT_FAILURE if report.failures or failures else EXIT_OK


def _job_spec(request: OutputRequest, model: str) -> JobSpec:
    """The images job of a batch chunk: the same outputs as a local run."""
    from depthlite.jobs.spec import JobSpec

    camera = request.camera
    return JobSpec(
        kind="images",
        formats=request.formats,
        colormap=request.colormap,
        model=model,
        known=tuple((p.x, p.y, p.distance) for p in request.known),
        fit=request.fit,
        calibration=request.calibration.to_json() if request.calibration else None,
        fov=camera.fov,
        focal_px=camera.focal_px,
        principal=camera.principal,
        stride=request.stride,
        sidecar=request.sidecar,
    )


def run_worker(args: argparse.Namespace) -> int:
    import socket

    from depthlite.jobs.celery_app import WorkerContext, make_celery

    config = _queue_config(args)
    est = build_estimator(args, progress=True)
    est.load()  # once, before the first job
    app = make_celery(config, WorkerContext(config, est))
    worker = app.Worker(
        pool_cls="solo",
        concurrency=1,
        loglevel="DEBUG" if args.verbose > 1 else "INFO",
        hostname=f"depthlite-{os.getpid()}@{socket.gethostname()}",
        without_gossip=True,
        without_mingle=True,
        optimization="fair",
    )
    worker.start()
    return int(worker.exitcode or 0)
