"""Options shared by several commands, generated from the library's single sources of truth."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from depthlite.cli.speed import add_fast_preprocess_option
from depthlite.colorize import COLORMAPS, DEFAULT_COLORMAP
from depthlite.errors import InvalidOptionError
from depthlite.estimator import DepthEstimator
from depthlite.imageio import DEFAULT_MAX_PIXELS, OUTPUT_FORMATS
from depthlite.options import (
    AUTO_ABSREL_BOUND,
    BACKENDS,
    DEFAULT_BACKEND,
    DEFAULT_PRECISION,
    DEFAULT_RESIZE,
    PRECISION_CHOICES,
    RESIZE_MODES,
)
from depthlite.zoo import DEFAULT_MODEL, available_models

__all__ = [
    "ProgressBar",
    "add_colormap_option",
    "add_formats_option",
    "add_max_pixels_option",
    "add_model_options",
    "add_verbosity_options",
    "build_estimator",
    "check_output_folder",
    "comma_list",
    "configure_logging",
    "error",
    "positive_float",
    "positive_int",
]


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def comma_list(choices: Sequence[str], what: str) -> Callable[[str], tuple[str, ...]]:
    """argparse type: a comma-separated, de-duplicated subset of ``choices``."""

    def parse(text: str) -> tuple[str, ...]:
        names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
        unknown = [name for name in names if name not in choices]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {', '.join(unknown) or text!r}; choose from: {','.join(choices)}"
            )
        return names

    return parse


def add_model_options(parser: argparse.ArgumentParser, *, runtime: bool = True) -> None:
    """--model, --weights, --offline and, for commands that run the network, the runtime knobs."""
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        metavar="NAME",
        help=f"model name (default {DEFAULT_MODEL}; known: {', '.join(available_models())})",
    )
    group.add_argument(
        "--weights",
        metavar="PATH",
        help="use this checkpoint (.pt/.pth) or ONNX file instead of the cache",
    )
    group.add_argument(
        "--offline",
        action="store_true",
        default=None,
        help="never download (same as DEPTHLITE_OFFLINE=1)",
    )
    if not runtime:
        return
    group.add_argument("--backend", choices=BACKENDS, default=DEFAULT_BACKEND)
    group.add_argument(
        "--precision",
        choices=PRECISION_CHOICES,
        default=DEFAULT_PRECISION,
        help=f"auto: the fastest precision here within AbsRel {AUTO_ABSREL_BOUND:g} of fp32 "
        "(measured once per model file and CPU, cached; `depthlite models` shows it)",
    )
    group.add_argument(
        "--resize",
        choices=RESIZE_MODES,
        default=DEFAULT_RESIZE,
        help="keep_aspect: the model's official transform (its size, resize rule and "
        "multiple; `depthlite models` lists them); square: its size on both sides",
    )
    group.add_argument(
        "--input-size",
        type=positive_int,
        metavar="N",
        help="network input side instead of the model's (a multiple of its multiple_of, "
        "e.g. 14 for Depth Anything): smaller is faster, larger keeps more detail",
    )
    group.add_argument(
        "--threads",
        type=positive_int,
        help="threads per image (default: OMP_NUM_THREADS, else every core for one image and "
        "1 per worker for several; see --workers); with 1, an image uses one core: the stages "
        "around the network are not split across the others either",
    )
    add_fast_preprocess_option(group)


class _CliFormatter(logging.Formatter):
    """``depthlite: MESSAGE``, and ``depthlite: warning: MESSAGE`` from WARNING up."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        if record.levelno >= logging.WARNING:
            return f"depthlite: {record.levelname.lower()}: {record.message}"
        return f"depthlite: {record.message}"


class _CliHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes above a tqdm progress bar when one is on screen, instead of through it.

    The bar is on ``sys.stderr`` and this handler's stream is a duplicate of it, so the bar is
    cleared and redrawn around the record here; not while a decode has fd 2 redirected (the
    bar's redraw would be captured as decoder output), where the record is simply written.
    """

    def emit(self, record: logging.LogRecord) -> None:
        from depthlite.imageio import quiet as native

        tqdm_module = sys.modules.get("tqdm")  # imported only by commands that show a bar
        bars = getattr(getattr(tqdm_module, "tqdm", None), "_instances", None)
        if not bars or native.redirected():
            super().emit(record)
            return
        try:
            message = self.format(record)
            with tqdm_module.tqdm.external_write_mode(file=sys.stderr):  # type: ignore[union-attr]
                sys.stderr.flush()
                self.stream.write(message + self.terminator)
                self.flush()
        except Exception:
            self.handleError(record)


def configure_logging(verbose: int, quiet: bool) -> None:
    """Library loggers print through here: warnings by default, more with -v.

    Native decoder output (libjpeg, libtiff, OpenCV) is captured too: one warning per input,
    every captured line with -v (``depthlite.imageio.quiet``); the handler writes to a
    duplicate of stderr so that a record logged during a decode is not captured itself.
    """
    from depthlite.imageio import quiet as native

    level = (
        logging.ERROR
        if quiet
        else logging.DEBUG
        if verbose > 1
        else (logging.INFO if verbose else logging.WARNING)
    )
    native.enable(detail_hint="-v shows them")
    # Every Python-level write (errors, the progress bar, summaries) goes to that duplicate
    # too: with several images in flight, the main thread reports one image while a worker's
    # decode has fd 2 redirected, and the report must not land in that decode's capture.
    sys.stderr = native.log_stream()
    handler = _CliHandler(sys.stderr)
    handler.setFormatter(_CliFormatter())
    logging.basicConfig(level=level, handlers=[handler])
    # -v shows the decoder's lines, which it logs at DEBUG (the server keeps them for debug).
    logging.getLogger(native.DECODER_LOGGER).setLevel(logging.DEBUG if verbose else logging.NOTSET)


def error(message: str) -> None:
    """One line on stderr, the form every command uses for failures."""
    print(f"depthlite: error: {message}", file=sys.stderr)


class ProgressBar:
    """A tqdm bar on stderr for a batch of ``total`` images, else nothing (one image, --quiet).

    tqdm is imported only when a bar is shown: importing it costs ~3 MB of RSS, which a
    single image (the usual ``depthlite predict photo.jpg``) should not pay.
    """

    def __init__(self, total: int, quiet: bool) -> None:
        self._bar: Any = None
        if not quiet and total > 1:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="img", file=sys.stderr)

    @property
    def shown(self) -> bool:
        return self._bar is not None

    def above(self, show: Callable[[], None]) -> None:
        """Run ``show`` (which prints to stderr) without drawing through the bar."""
        if self._bar is not None:
            self._bar.clear()
        show()
        if self._bar is not None:
            self._bar.refresh()

    def error(self, message: str) -> None:
        self.above(lambda: error(message))

    def step(self) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def check_output_folder(output: Path) -> None:
    """``-o DIR`` must be a folder (or not exist yet): refused once, not once per image."""
    if output.exists() and not output.is_dir():
        raise InvalidOptionError(f"-o {output} is a file; -o takes a folder for the outputs")


def add_max_pixels_option(parser: argparse.ArgumentParser, note: str = "") -> None:
    parser.add_argument(
        "--max-pixels",
        type=positive_int,
        default=DEFAULT_MAX_PIXELS,
        help=f"refuse larger images (default {DEFAULT_MAX_PIXELS:,}){note}",
    )


def add_verbosity_options(parser: argparse.ArgumentParser) -> None:
    """-q and -v, worded alike for every command that shows a progress bar."""
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")


def build_estimator(args: argparse.Namespace, *, progress: bool) -> DepthEstimator:
    """The estimator the options of :func:`add_model_options` describe (nothing loaded yet)."""
    return DepthEstimator.from_options(args, progress=progress)


def add_colormap_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--colormap",
        type=str.lower,
        choices=sorted(COLORMAPS),
        default=DEFAULT_COLORMAP,
        metavar="NAME",
        help=f"OpenCV colour map (default {DEFAULT_COLORMAP}; {', '.join(sorted(COLORMAPS))})",
    )


def add_formats_option(parser: argparse.ArgumentParser, default: tuple[str, ...]) -> None:
    parser.add_argument(
        "-f",
        "--format",
        type=comma_list(OUTPUT_FORMATS, "format"),
        default=default,
        metavar="LIST",
        help=f"comma-separated outputs: {','.join(OUTPUT_FORMATS)} (default: {','.join(default)})",
    )
