"""``depthlite predict``: images in, depth files out; one bad file never stops the batch."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from depthlite.cli.common import (
    add_colormap_option,
    add_formats_option,
    add_model_options,
    build_estimator,
    error,
    positive_int,
)
from depthlite.errors import EXIT_FAILURE, EXIT_OK, InputError
from depthlite.estimator import DepthEstimator
from depthlite.imageio import (
    DEFAULT_MAX_PIXELS,
    InputItem,
    expand_inputs,
    write_outputs,
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
    p.add_argument(
        "--max-pixels",
        type=positive_int,
        default=DEFAULT_MAX_PIXELS,
        help=f"refuse larger images (default {DEFAULT_MAX_PIXELS:,})",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    add_model_options(p)
    p.set_defaults(handler=run)


def _destination(item: InputItem, output: Path | None) -> tuple[Path, Path]:
    """(output folder, relative stem) for one input."""
    if output is not None:
        return output, item.relative
    if item.path is not None:
        return item.path.parent, item.relative
    return Path.cwd(), item.relative


def _process(est: DepthEstimator, item: InputItem, args: argparse.Namespace) -> list[Path]:
    if item.path is None:
        result = est.predict(sys.stdin.buffer.read(), source="<stdin>")
    else:
        result = est.predict(item.path)
    depth, near_is_larger = result.depth, result.near_is_larger
    # Only the "side" output needs the decoded photo; letting it (and the raw network output)
    # go before encoding lets the encoder reuse that memory (encoding is the peak).
    image = result.image if "side" in args.format else None
    del result
    out_dir, relative = _destination(item, args.output)
    return write_outputs(
        depth, image, out_dir, relative, args.format, args.colormap, near_is_larger=near_is_larger
    )


class _NoBar:
    """The slice of tqdm's interface ``run`` uses, doing nothing (one image, or --quiet)."""

    def __init__(self, items: Sequence[InputItem]) -> None:
        self._items = items

    def __iter__(self) -> Iterator[InputItem]:
        return iter(self._items)

    def clear(self) -> None:
        pass

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(items: Sequence[InputItem], quiet: bool) -> Any:
    """A tqdm bar over ``items`` for batches, else a silent stand-in.

    tqdm is imported only when a bar is shown: importing it costs ~3 MB of RSS, which a
    single image (the usual ``depthlite predict photo.jpg``) should not pay.
    """
    if quiet or len(items) < 2:
        return _NoBar(items)
    from tqdm import tqdm

    return tqdm(items, unit="img", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    # Options first: a wrong --model is a usage error whatever the inputs are.
    est = build_estimator(args, progress=not args.quiet)
    items, failures = expand_inputs(
        args.inputs, recursive=args.recursive, flat_output=args.output is not None
    )
    for failure in failures:
        error(str(failure))
    if not items:
        return EXIT_FAILURE
    est.load()  # model problems are fatal for the whole batch: fail before the first file
    written = 0
    failed = len(failures)
    bar = _progress_bar(items, args.quiet)
    for item in bar:
        try:
            written += len(_process(est, item, args))
        except (InputError, OSError) as exc:
            # OSError: the output could not be written (permissions, disk full); still per file.
            failed += 1
            bar.clear()
            is_sourced = isinstance(exc, InputError) and exc.source
            error(str(exc) if is_sourced else f"{item.source}: {exc}")
            bar.refresh()
    bar.close()
    if not args.quiet:
        done = len(items) - (failed - len(failures))
        print(
            f"depthlite: {done} image(s) done, {written} file(s) written, {failed} failed",
            file=sys.stderr,
        )
    return EXIT_FAILURE if failed else EXIT_OK
