"""Options shared by several commands, generated from the library's single sources of truth."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from depthlite.colorize import COLORMAPS, DEFAULT_COLORMAP
from depthlite.estimator import DepthEstimator
from depthlite.imageio import OUTPUT_FORMATS
from depthlite.options import (
    BACKENDS,
    DEFAULT_BACKEND,
    DEFAULT_PRECISION,
    DEFAULT_RESIZE,
    PRECISIONS,
    RESIZE_MODES,
)
from depthlite.zoo import DEFAULT_MODEL, available_models

__all__ = [
    "add_colormap_option",
    "add_formats_option",
    "add_model_options",
    "build_estimator",
    "comma_list",
    "configure_logging",
    "error",
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
    group.add_argument("--precision", choices=PRECISIONS, default=DEFAULT_PRECISION)
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
        "--threads", type=positive_int, help="intra-op threads (default: OMP_NUM_THREADS or cores)"
    )


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
    handler = _CliHandler(native.log_stream())
    handler.setFormatter(_CliFormatter())
    logging.basicConfig(level=level, handlers=[handler])
    # -v shows the decoder's lines, which it logs at DEBUG (the server keeps them for debug).
    logging.getLogger(native.DECODER_LOGGER).setLevel(logging.DEBUG if verbose else logging.NOTSET)


def error(message: str) -> None:
    """One line on stderr, the form every command uses for failures."""
    print(f"depthlite: error: {message}", file=sys.stderr)


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
