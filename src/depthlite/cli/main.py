"""Entry point: build the parser from the command modules, run one, map errors to exit codes."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from depthlite._version import __version__
from depthlite.cli import bench, jobs, manage, predict, serve, video
from depthlite.cli import eval as eval_command
from depthlite.cli.common import configure_logging, error
from depthlite.errors import EXIT_FAILURE, DepthliteError

__all__ = ["build_parser", "main"]

logger = logging.getLogger("depthlite.cli")

_COMMANDS = (predict, video, jobs, manage, bench, eval_command, serve)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="depthlite",
        description="CPU-first monocular depth estimation: the official MiDaS family and Depth "
        "Anything V2, exact, on ONNX Runtime.",
    )
    parser.add_argument("--version", action="version", version=f"depthlite {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(getattr(args, "verbose", 0), getattr(args, "quiet", False))
    try:
        code: int = args.handler(args)
    except DepthliteError as exc:
        error(str(exc))
        return exc.exit_code
    except OSError as exc:
        # The last net: a file or folder the command cannot read or write, named, without a
        # traceback (-v logs it). Known places raise typed errors with their own advice.
        logger.debug("%s", exc, exc_info=True)
        where = f"{exc.filename}: " if exc.filename else ""
        error(f"{where}{exc.strerror or exc}")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        error("interrupted")
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
