"""``depthlite predict``: images in, depth files out; one bad file never stops the batch."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from depthlite.cli.common import (
    ProgressBar,
    add_colormap_option,
    add_formats_option,
    add_max_pixels_option,
    add_model_options,
    add_verbosity_options,
    build_estimator,
    check_output_folder,
    error,
)
from depthlite.cli.metres import (
    add_calibration_options,
    add_camera_options,
    output_request,
    print_calibration,
)
from depthlite.cli.workers import add_workers_option, estimator_for
from depthlite.errors import EXIT_FAILURE, EXIT_OK, InputError, InvalidOptionError
from depthlite.imageio import DepthInfo, ImageSource, InputItem, expand_inputs
from depthlite.memory import one_image_heap
from depthlite.pipeline import ImageTask, depth_files, plan_layout

__all__ = ["register"]

DEFAULT_FORMATS = ("color",)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "predict",
        help="depth maps for images, folders, globs or stdin",
        description="Write depth outputs for each input. Outputs go next to each input unless "
        "-o DIR is given. Exit code 1 if any input failed (the others are still processed).",
    )
    p.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="image file, folder, glob, or - for stdin"
    )
    p.add_argument("-o", "--output", type=Path, metavar="DIR", help="output folder")
    add_formats_option(p, DEFAULT_FORMATS)
    add_colormap_option(p)
    p.add_argument("-r", "--recursive", action="store_true", help="descend into sub-folders")
    add_max_pixels_option(p)
    add_verbosity_options(p)
    add_calibration_options(p)
    add_camera_options(p)
    add_model_options(p)
    add_workers_option(p)
    p.set_defaults(handler=run)


def _destination(item: InputItem, output: Path | None) -> tuple[Path, Path]:
    """(output folder, relative stem) for one input."""
    if output is not None:
        return output, item.relative
    if item.path is not None:
        return item.path.parent, item.relative
    return Path.cwd(), item.relative


def _task(item: InputItem, output: Path | None) -> ImageTask:
    out_dir, relative = _destination(item, output)
    image: ImageSource | Callable[[], bytes] = (
        item.path if item.path is not None else sys.stdin.buffer.read
    )
    return ImageTask(item.source, image, out_dir, relative)


def _after(item: InputItem, info: DepthInfo, args: argparse.Namespace, bar: ProgressBar) -> None:
    """Show (and save) the calibration an image's known points fitted."""
    if info.calibration is None or not args.known:
        return
    if args.save_calibration is not None:
        info.calibration.save(args.save_calibration)
    if not args.quiet:
        calibration = info.calibration
        bar.above(lambda: print_calibration(item.source, calibration))


def run(args: argparse.Namespace) -> int:
    # Options first: a wrong --model, or metres this model cannot give without known points,
    # is a usage error whatever the inputs are.
    if args.output is not None:
        check_output_folder(args.output)
    est = build_estimator(args, progress=not args.quiet)
    request = output_request(args, est)
    items, failures = expand_inputs(
        args.inputs, recursive=args.recursive, flat_output=args.output is not None
    )
    if args.save_calibration is not None and len(items) + len(failures) > 1:
        raise InvalidOptionError(
            f"--save-calibration needs exactly one input image, got {len(items) + len(failures)}"
        )
    for failure in failures:
        error(str(failure))
    if not items:
        return EXIT_FAILURE
    if len(items) == 1:
        one_image_heap()
    layout = plan_layout(args.threads, args.workers, len(items))
    est = estimator_for(est, args, layout)
    est.load()  # model problems are fatal for the whole batch: fail before the first file
    written = 0
    failed = len(failures)
    bar = ProgressBar(len(items), args.quiet)
    tasks = (_task(item, args.output) for item in items)
    with depth_files(est, tasks, request, layout) as outcomes:
        for outcome in outcomes:
            item = items[outcome.index]
            if outcome.error is None:
                written += len(outcome.value.paths)
                _after(item, outcome.value.info, args, bar)
            else:
                failed += 1
                exc = outcome.error
                is_sourced = isinstance(exc, InputError) and exc.source
                bar.error(str(exc) if is_sourced else f"{item.source}: {exc}")
            bar.step()
    bar.close()
    if not args.quiet:
        done = len(items) - (failed - len(failures))
        print(
            f"depthlite: {done} image(s) done, {written} file(s) written, {failed} failed",
            file=sys.stderr,
        )
    return EXIT_FAILURE if failed else EXIT_OK
