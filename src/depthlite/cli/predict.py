"""``depthlite predict``: images in, depth files out; one bad file never stops the batch."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from depthlite.cli.common import (
    ProgressBar,
    add_calibration_options,
    add_camera_options,
    add_colormap_option,
    add_formats_option,
    add_max_pixels_option,
    add_model_options,
    add_verbosity_options,
    build_estimator,
    error,
    output_request,
    print_calibration,
)
from depthlite.errors import EXIT_FAILURE, EXIT_OK, InputError, InvalidOptionError
from depthlite.estimator import DepthEstimator
from depthlite.imageio import (
    DepthInfo,
    InputItem,
    OutputRequest,
    expand_inputs,
    render_outputs,
    write_encoded,
)

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
    p.set_defaults(handler=run)


def _destination(item: InputItem, output: Path | None) -> tuple[Path, Path]:
    """(output folder, relative stem) for one input."""
    if output is not None:
        return output, item.relative
    if item.path is not None:
        return item.path.parent, item.relative
    return Path.cwd(), item.relative


def _process(
    est: DepthEstimator, item: InputItem, args: argparse.Namespace, request: OutputRequest
) -> tuple[list[Path], DepthInfo]:
    exif = request.needs_exif
    if item.path is None:
        result = est.predict(sys.stdin.buffer.read(), source="<stdin>", exif=exif)
    else:
        result = est.predict(item.path, exif=exif)
    depth, info, focal = result.depth, result.info, result.exif
    # Only "side" and "ply" need the decoded photo; letting it (and the raw network output)
    # go before encoding lets the encoder reuse that memory (encoding is the peak).
    image = result.image if request.needs_image else None
    del result
    out_dir, relative = _destination(item, args.output)
    encoded, info = render_outputs(
        depth, image, info, request, exif=focal, stem=relative.name, source=item.source
    )
    return write_encoded(encoded, out_dir, relative), info


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
    est.load()  # model problems are fatal for the whole batch: fail before the first file
    written = 0
    failed = len(failures)
    bar = ProgressBar(len(items), args.quiet)
    for item in items:
        try:
            paths, info = _process(est, item, args, request)
            written += len(paths)
            _after(item, info, args, bar)
        except (InputError, OSError) as exc:
            # OSError: the output could not be written (permissions, disk full); still per file.
            failed += 1
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
