"""The metres and 3-D flags (calibration from known distances, intrinsics) and the output
request they build, shared by predict, video and batch."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path

from depthlite.cli.common import positive_int
from depthlite.errors import DepthliteError, InvalidOptionError
from depthlite.estimator import DepthEstimator
from depthlite.geometry.calibration import FITS, Calibration, KnownPoint
from depthlite.geometry.intrinsics import CameraSpec
from depthlite.imageio import OutputRequest

__all__ = [
    "add_calibration_options",
    "add_camera_options",
    "calibration_options",
    "output_request",
    "print_calibration",
]


def _argument_type(parse: Callable[[str], object]) -> Callable[[str], object]:
    """An argparse type from a library parser: its one-line message becomes a usage error."""

    def convert(text: str) -> object:
        try:
            return parse(text)
        except DepthliteError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InvalidOptionError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise InvalidOptionError(f"expected a finite number, got {text!r}")
    return value


def add_calibration_options(parser: argparse.ArgumentParser, *, video: bool = False) -> None:
    """--known, --fit, --calibration, --save-calibration: metres from known distances."""
    where = "the first frame" if video else "each image"
    group = parser.add_argument_group(
        "metres (calibration from known distances)",
        f"Two or more pixels with their distance fix the scale (and shift) of {where}'s "
        "depth; the fit and each point's error are printed (stderr).",
    )
    group.add_argument(
        "--known",
        action="append",
        default=[],
        type=_argument_type(KnownPoint.parse),
        metavar="X,Y=METRES",
        help="a pixel (x right, y down, from 0, as the image is shown) and its distance along "
        "the camera's axis in metres; give two or more",
    )
    group.add_argument(
        "--fit",
        choices=FITS,
        help="auto (default): scale and shift for relative models, scale only for metric ones",
    )
    group.add_argument(
        "--calibration", type=Path, metavar="FILE", help="use a saved calibration (JSON)"
    )
    group.add_argument(
        "--save-calibration", type=Path, metavar="FILE", help="save the fitted calibration"
    )


def add_camera_options(parser: argparse.ArgumentParser) -> None:
    """--fov, --focal-px, --principal, --stride, --sidecar: the 3-D outputs and the sidecar."""
    group = parser.add_argument_group(
        "3-D (ply, normals)",
        "The focal length comes from --focal-px or --fov, else EXIF, else a 60 degree "
        "horizontal field of view (with a warning).",
    )
    group.add_argument(
        "--fov", type=_argument_type(_finite_float), metavar="DEGREES",
        help="horizontal field of view",
    )  # fmt: skip
    group.add_argument(
        "--focal-px", type=_argument_type(_finite_float), metavar="F",
        help="focal length in pixels",
    )  # fmt: skip
    group.add_argument(
        "--principal", type=_argument_type(CameraSpec.parse_principal), metavar="X,Y",
        help="principal point in pixels (default: the image centre)",
    )  # fmt: skip
    group.add_argument(
        "--stride", type=positive_int, default=1, metavar="N",
        help="ply: keep every N-th pixel in each direction (default 1)",
    )  # fmt: skip
    group.add_argument(
        "--sidecar",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write <stem>.json saying what each output holds (default: with png16)",
    )


def calibration_options(
    args: argparse.Namespace,
) -> tuple[tuple[KnownPoint, ...], str, Calibration | None]:
    """(known points, fit, saved calibration) from the flags; InvalidOptionError: usage error."""
    known = tuple(args.known)
    if args.known and len(args.known) < 2:
        raise InvalidOptionError(
            "one --known point cannot fix a calibration: give two or more (--known X,Y=METRES)"
        )
    if known and args.calibration is not None:
        raise InvalidOptionError("give --known points or --calibration FILE, not both")
    if args.fit is not None and not known:
        raise InvalidOptionError("--fit needs --known points")
    if args.save_calibration is not None and not known:
        raise InvalidOptionError("--save-calibration needs --known points to fit")
    calibration = Calibration.load(args.calibration) if args.calibration is not None else None
    return known, args.fit or "auto", calibration


def output_request(args: argparse.Namespace, est: DepthEstimator) -> OutputRequest:
    """The outputs the flags ask for, checked against the model before any work (exit 2)."""
    known, fit, calibration = calibration_options(args)
    request = OutputRequest(
        formats=tuple(args.format),
        colormap=args.colormap,
        known=known,
        fit=fit,
        calibration=calibration,
        camera=CameraSpec(args.fov, args.focal_px, args.principal),
        stride=args.stride,
        sidecar=args.sidecar,
    )
    request.check(est.card.output.kind, est.card.name)
    return request


def print_calibration(source: str, calibration: Calibration) -> None:
    """The fit and every point's error: one short table on stderr."""
    head, *rows = calibration.table()
    print(f"depthlite: {source}: {head}", file=sys.stderr)
    for row in rows:
        print(f"  {row}", file=sys.stderr)
