"""``depthlite video IN -o OUT``: a depth video (MP4), a 16-bit PNG sequence or an .npz."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from depthlite.cli.common import (
    add_colormap_option,
    add_model_options,
    add_verbosity_options,
    build_estimator,
    positive_int,
)
from depthlite.cli.metres import (
    add_calibration_options,
    calibration_options,
    print_calibration,
)
from depthlite.cli.workers import add_workers_option, estimator_for
from depthlite.errors import EXIT_OK, InvalidOptionError
from depthlite.normalize import (
    DEFAULT_CUT_THRESHOLD,
    DEFAULT_PERCENTILES,
    DEFAULT_SMOOTHING,
    NORMALIZER_MODES,
    parse_percentiles,
)
from depthlite.pipeline import plan_layout
from depthlite.video.formats import VIDEO_FORMATS, X264_PRESETS

__all__ = ["parse_time", "register"]


def parse_time(text: str) -> float:
    """argparse type: seconds ("12.5") or [[HH:]MM:]SS(.fff)."""
    try:
        seconds = 0.0
        for part in text.split(":"):
            seconds = seconds * 60 + float(part)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds or HH:MM:SS, got {text!r}") from None
    if len(text.split(":")) > 3 or seconds < 0:
        raise argparse.ArgumentTypeError(f"expected seconds or HH:MM:SS, got {text!r}")
    return seconds


def _percentiles(text: str) -> tuple[float, float]:
    try:
        return parse_percentiles(text)
    except InvalidOptionError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _fraction(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None


def _add_normalizer_options(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("normaliser")
    group.add_argument(
        "--normalize",
        choices=NORMALIZER_MODES,
        default="temporal",
        help="temporal (default, stable colours) or per-frame (official)",
    )
    group.add_argument(
        "--smoothing",
        type=_fraction,
        default=DEFAULT_SMOOTHING,
        help=f"weight of the past in the range average (default {DEFAULT_SMOOTHING}; 0 = none)",
    )
    group.add_argument(
        "--percentiles",
        type=_percentiles,
        default=DEFAULT_PERCENTILES,
        metavar="LOW,HIGH",
        help="robust range (default 2,98)",
    )
    group.add_argument(
        "--cut-threshold",
        type=float,
        default=DEFAULT_CUT_THRESHOLD,
        help="scene-cut sensitivity (range jump as a fraction of the range)",
    )
    group.add_argument(
        "--depth-smoothing",
        type=_fraction,
        default=0.0,
        help="temporal average of the depth itself (default 0: off)",
    )


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "video",
        help="depth of every frame of a video",
        description="Write the depth of a video as an MP4 that plays in browsers (H.264, audio "
        "kept), a folder of 16-bit PNGs, or one .npz of float16 frames. Colours are stable over "
        "time (temporal normaliser); --normalize per-frame gives the official per-frame scaling. "
        "With --known points (fitted on the first frame) or --calibration, the .npz holds "
        "metres and every PNG frame carries the calibration.",
    )
    p.add_argument("input", type=Path, metavar="IN", help="any video FFmpeg reads")
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        metavar="OUT",
        help="OUT.mp4, OUT.npz, or a new folder for png16 frames",
    )
    p.add_argument("-f", "--format", choices=VIDEO_FORMATS, help="default: from OUT's name")
    p.add_argument("--side", action="store_true", help="input and depth side by side (mp4)")
    add_colormap_option(p)
    p.add_argument("--start", type=parse_time, default=0.0, help="start time (s or HH:MM:SS)")
    p.add_argument("--end", type=parse_time, help="end time (s or HH:MM:SS)")
    p.add_argument("--max-frames", type=positive_int, help="stop after this many frames")
    _add_normalizer_options(p)
    enc = p.add_argument_group("encoder (mp4)")
    enc.add_argument("--crf", type=int, default=20, help="x264 quality, 0-51 (default 20)")
    enc.add_argument(
        "--preset", choices=X264_PRESETS, default="veryfast", help="x264 preset (default veryfast)"
    )
    add_verbosity_options(p)
    add_calibration_options(p, video=True)
    add_model_options(p)
    add_workers_option(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from depthlite.video import VideoOptions, process_video

    known, fit, calibration = calibration_options(args)
    flat = {**vars(args), "known": known, "fit": fit, "calibration": calibration}
    options = VideoOptions.from_flat(argparse.Namespace(**flat), fmt=args.format)
    options.output_format(Path(args.output))  # usage errors before the model loads
    from tqdm import tqdm

    bar = tqdm(unit="frame", disable=args.quiet, file=sys.stderr, dynamic_ncols=True)

    def progress(done: int, expected: int | None) -> None:
        if expected is not None and bar.total != expected:
            bar.total = expected
        bar.update(done - bar.n)

    # A video is many images: one single-threaded frame per core (see plan_layout).
    layout = plan_layout(args.threads, args.workers, count=2)
    estimator = estimator_for(build_estimator(args, progress=not args.quiet), args, layout)
    try:
        report = process_video(
            estimator, args.input, args.output, options, progress, workers=layout.workers
        )
    finally:
        bar.close()
    if known and report.calibration is not None:
        if args.save_calibration is not None:
            report.calibration.save(args.save_calibration)
        if not args.quiet:
            print_calibration(f"{args.input} (first frame)", report.calibration)
    if not args.quiet:
        what = report.encoder or report.fmt
        extra = "" if report.browser_safe else " (this FFmpeg has no H.264: not for browsers)"
        audio = ", audio kept" if report.audio else ""
        print(
            f"depthlite: {report.frames} frames -> {report.output} ({what}{audio}{extra}), "
            f"{report.fps:.1f} frames/s",
            file=sys.stderr,
        )
    return EXIT_OK
