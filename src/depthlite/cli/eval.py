"""``depthlite eval``: score a model on images with ground-truth depth or disparity."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path

from depthlite.cli.common import (
    ProgressBar,
    add_max_pixels_option,
    add_model_options,
    add_verbosity_options,
    build_estimator,
    positive_float,
)
from depthlite.errors import EXIT_FAILURE, EXIT_OK, InputError, InvalidOptionError, clip
from depthlite.evaluation import (
    MANIFEST_NAME,
    ImageResult,
    Report,
    Scores,
    evaluate,
    load_dataset,
    write_motorcycle,
)
from depthlite.imageio import atomic_write_bytes

__all__ = ["register"]

_NAME_WIDTH = 40


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "eval",
        help="score a model on images with ground-truth depth or disparity",
        description="Predict each image of DATASET, align the prediction to the ground truth "
        "by least-squares scale and shift in disparity space (the MiDaS protocol), and report "
        "AbsRel, delta<1.25 and RMSE per image and their mean (metric models: also without "
        f"alignment). DATASET is a folder with a {MANIFEST_NAME}, such a manifest, or a "
        "folder of <stem>.<image ext> + <stem>_depth.npy|.pfm or <stem>_disp.npy|.pfm files. "
        "Exit code 1 if any image failed (the others are still scored).",
    )
    p.add_argument("dataset", nargs="?", metavar="DATASET", help="dataset folder or manifest")
    p.add_argument(
        "--depth-cap",
        type=positive_float,
        metavar="DEPTH",
        help="farthest depth an aligned prediction may have, in the ground truth's unit "
        "(default: the sample's depth_cap, else its max_depth, else each image's farthest "
        "valid ground-truth depth)",
    )
    p.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="PATH",
        help="the full report as JSON: on stdout instead of the table, or into PATH",
    )
    p.add_argument(
        "--write-example",
        type=Path,
        metavar="DIR",
        help="write scikit-image's Middlebury motorcycle (image, ground-truth disparity, "
        "manifest) into DIR and exit",
    )
    add_max_pixels_option(p)
    add_verbosity_options(p)
    add_model_options(p)
    p.set_defaults(handler=run)


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _columns(scores: Scores | None) -> list[str]:
    if scores is None:
        return ["-", "-", "-"]
    return [_number(scores.absrel), _number(scores.delta1), _number(scores.rmse)]


def format_table(report: Report) -> str:
    """The report as an aligned text table: one row per image, then the mean."""
    metric = any(result.scores.metric is not None for result in report.results)
    unit = report.unit or "gt unit"
    header = ["image", "pixels", "AbsRel", "delta<1.25", f"RMSE [{unit}]"]
    if metric:
        header += ["metric AbsRel", "metric d<1.25", f"metric RMSE [{unit}]"]
    rows = []
    for result in report.results:
        row = [clip(result.sample.name, _NAME_WIDTH), f"{result.scores.valid_pixels:,}"]
        row += _columns(result.scores.aligned)
        if metric:
            row += _columns(result.scores.metric)
        rows.append(row)
    mean = [f"mean of {len(report.results)} image(s)", "", *_columns(report.mean("aligned"))]
    if metric:
        mean += _columns(report.mean("metric"))
    widths = [max(len(row[i]) for row in [header, *rows, mean]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        return "  ".join([first, *(c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))])

    rule = "-" * len(line(header))
    return "\n".join([line(header), rule, *map(line, rows), rule, line(mean)])


def _collect(items: Iterator[ImageResult | InputError], report: Report, bar: ProgressBar) -> None:
    for item in items:
        if isinstance(item, ImageResult):
            report.results.append(item)
        else:
            report.failures.append(item)
            bar.error(str(item))
        bar.step()
    bar.close()


def _write_example(args: argparse.Namespace) -> int:
    if args.dataset is not None:
        raise InvalidOptionError("--write-example takes no DATASET: write it, then evaluate it")
    manifest = write_motorcycle(args.write_example)
    print(f"depthlite: wrote {manifest}", file=sys.stderr)
    print(f"depthlite: evaluate it with: depthlite eval --model NAME {manifest.parent}")
    return EXIT_OK


def _emit(report: Report, destination: str | None) -> None:
    if destination != "-":
        print(format_table(report))
    if destination is None:
        return
    text = json.dumps(report.to_json(), indent=2)
    if destination == "-":
        print(text)
    else:
        atomic_write_bytes(Path(destination), (text + "\n").encode())


def run(args: argparse.Namespace) -> int:
    if args.write_example is not None:
        return _write_example(args)
    if args.dataset is None:
        raise InvalidOptionError("give a DATASET folder or manifest (or --write-example DIR)")
    # Options first: a wrong --model is a usage error whatever the dataset is.
    est = build_estimator(args, progress=not args.quiet)
    dataset = load_dataset(args.dataset)
    est.load()  # model problems are fatal for the whole run: fail before the first image
    card = est.card
    report = Report(model=card.name, kind=card.output.kind, dataset=dataset.root)
    bar = ProgressBar(len(dataset.samples) + len(dataset.problems), args.quiet)
    _collect(evaluate(est, dataset, depth_cap=args.depth_cap), report, bar)
    _emit(report, args.json)
    if not args.quiet:
        print(
            f"depthlite: {len(report.results)} image(s) evaluated, {len(report.failures)} failed",
            file=sys.stderr,
        )
    return EXIT_FAILURE if report.failures or not report.results else EXIT_OK
