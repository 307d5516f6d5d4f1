"""Camera intrinsics for 3-D outputs: the focal length in pixels and the principal point.

Where the focal length comes from, first match wins:

1. ``focal_px`` or ``fov`` given by the user (an explicit value beats the file: a cropped or
   resized photo keeps its original EXIF, and this is how to correct it);
2. EXIF ``FocalLengthIn35mmFilm``: the 35 mm film equivalent, converted with the diagonals
   (the crop factor is defined on the diagonal: 43.27 mm for the 36 x 24 mm frame);
3. EXIF ``FocalLength`` with the sensor's pixel density (``FocalPlaneXResolution`` and its
   unit), scaled to the image's width when the file was resized (``PixelXDimension``);
4. a 60 degree horizontal field of view, with a warning.

EXIF values that cannot be right (0, which cameras write for "unknown", or a field of view
outside 2..160 degrees) are skipped with a warning naming the source used instead. Pixels are
square (``fy = fx``); the principal point is the image centre, ``((w - 1) / 2, (h - 1) / 2)``
in pixel-centre coordinates, unless given.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Any

from depthlite.errors import InvalidOptionError

__all__ = [
    "DEFAULT_FOV_DEGREES",
    "CameraSpec",
    "ExifFocal",
    "Intrinsics",
    "focal_from_fov",
    "resolve_intrinsics",
]

logger = logging.getLogger(__name__)

DEFAULT_FOV_DEGREES = 60.0
# Horizontal fields of view a pinhole camera model can describe and cameras ship with.
_PLAUSIBLE_FOV = (2.0, 160.0)
_DIAGONAL_35MM = math.hypot(36.0, 24.0)
# EXIF FocalPlaneResolutionUnit -> millimetres per unit (2: inch, 3: cm, 4: mm, 5: um).
_UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}
# EXIF orientations that swap width and height (the sensor's x is the image's y).
_TRANSPOSED = frozenset({5, 6, 7, 8})


@dataclass(frozen=True)
class ExifFocal:
    """The EXIF facts about the lens and sensor (None: absent), as the file states them."""

    focal_35mm: float | None = None
    focal_mm: float | None = None
    plane_x_resolution: float | None = None
    plane_unit: int | None = None
    pixel_x_dimension: int | None = None
    orientation: int = 1


@dataclass(frozen=True)
class CameraSpec:
    """What the user said about the camera; every field is optional."""

    fov: float | None = None  # horizontal field of view, degrees
    focal_px: float | None = None
    principal: tuple[float, float] | None = None  # (x, y) pixels

    def __post_init__(self) -> None:
        if self.fov is not None and self.focal_px is not None:
            raise InvalidOptionError("give a field of view or a focal length in pixels, not both")
        if self.fov is not None and not (math.isfinite(self.fov) and 0 < self.fov < 180):
            raise InvalidOptionError(f"field of view must be in (0, 180) degrees, not {self.fov}")
        if self.focal_px is not None and not (math.isfinite(self.focal_px) and self.focal_px > 0):
            raise InvalidOptionError(f"focal length must be > 0 pixels, not {self.focal_px}")
        if self.principal is not None:
            px, py = self.principal
            if not (math.isfinite(px) and math.isfinite(py)):
                raise InvalidOptionError(f"principal point must be finite, not {self.principal}")
            object.__setattr__(self, "principal", (float(px), float(py)))

    @property
    def needs_exif(self) -> bool:
        return self.fov is None and self.focal_px is None

    @staticmethod
    def parse_principal(text: str) -> tuple[float, float]:
        """``"640,360"`` -> ``(640.0, 360.0)``; InvalidOptionError otherwise."""
        try:
            x, y = (float(part) for part in text.split(","))
        except ValueError:
            raise InvalidOptionError(f"principal point must be X,Y pixels, not {text!r}") from None
        return x, y


@dataclass(frozen=True)
class Intrinsics:
    """A pinhole camera: focal lengths and principal point in pixels, for a ``width x height``
    image; ``source`` says where the focal length came from."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    source: str

    @property
    def fov_degrees(self) -> float:
        """The horizontal field of view."""
        return math.degrees(2 * math.atan(self.width / (2 * self.fx)))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fov_degrees": self.fov_degrees}


def focal_from_fov(width: int, fov_degrees: float) -> float:
    """Focal length in pixels of a horizontal field of view over ``width`` pixels."""
    return width / (2 * math.tan(math.radians(fov_degrees) / 2))


def _plausible(width: int, focal_px: float) -> bool:
    if not (math.isfinite(focal_px) and focal_px > 0):
        return False
    fov = math.degrees(2 * math.atan(width / (2 * focal_px)))
    return _PLAUSIBLE_FOV[0] <= fov <= _PLAUSIBLE_FOV[1]


def _from_35mm(exif: ExifFocal, width: int, height: int) -> float | None:
    if exif.focal_35mm is None:
        return None
    return exif.focal_35mm * math.hypot(width, height) / _DIAGONAL_35MM


def _from_sensor(exif: ExifFocal, width: int, height: int) -> float | None:
    unit_mm = _UNIT_MM.get(exif.plane_unit or 2)  # EXIF's default unit is the inch
    if exif.focal_mm is None or exif.plane_x_resolution is None or unit_mm is None:
        return None
    pixels_per_mm = exif.plane_x_resolution / unit_mm
    focal = exif.focal_mm * pixels_per_mm
    # The resolution is of the sensor's full frame; a resized image scales with its width.
    sensor_x = height if exif.orientation in _TRANSPOSED else width
    if exif.pixel_x_dimension:
        focal *= sensor_x / exif.pixel_x_dimension
    return focal


def _from_exif(exif: ExifFocal | None, width: int, height: int) -> tuple[float, str, list[str]]:
    """The first plausible EXIF focal length (pixels, 0 if none), its source, and what was
    rejected on the way (one sentence per value that cannot be right)."""
    rejected: list[str] = []
    if exif is None:
        return 0.0, "", rejected
    candidates = (
        ("EXIF FocalLengthIn35mmFilm", exif.focal_35mm, _from_35mm(exif, width, height)),
        ("EXIF FocalLength", exif.focal_mm, _from_sensor(exif, width, height)),
    )
    for name, stated, focal in candidates:
        if stated is None:
            continue
        if focal is not None and _plausible(width, focal):
            return focal, name, rejected
        if stated <= 0:
            rejected.append(f"{name} is {stated:g}, which cannot be right")
        elif focal is not None:
            fov = math.degrees(2 * math.atan(width / (2 * focal))) if focal > 0 else 180.0
            rejected.append(
                f"{name} {stated:g} mm gives a {fov:.3g} degree field of view, which cannot be "
                "right"
            )
    return 0.0, "", rejected


def resolve_intrinsics(
    width: int,
    height: int,
    camera: CameraSpec | None = None,
    exif: ExifFocal | None = None,
    *,
    source: str | None = None,
) -> Intrinsics:
    """The intrinsics of a ``width x height`` image; see the module docstring for the order.

    ``source`` names the image in the warnings (a missing or rejected EXIF focal length).
    """
    camera = camera or CameraSpec()
    if camera.focal_px is not None:
        focal, origin = camera.focal_px, "focal_px"
    elif camera.fov is not None:
        focal, origin = focal_from_fov(width, camera.fov), f"fov {camera.fov:g} degrees"
    else:
        focal, origin, rejected = _from_exif(exif, width, height)
        prefix = f"{source}: " if source else ""
        if not focal:
            focal = focal_from_fov(width, DEFAULT_FOV_DEGREES)
            origin = f"default {DEFAULT_FOV_DEGREES:g} degrees"
            why = "; ".join(rejected) or "no focal length in EXIF"
            logger.warning(
                "%s%s; assuming a %g degree horizontal field of view (set the field of view, "
                "--fov, or the focal length in pixels, --focal-px, for a true 3-D shape)",
                prefix, why, DEFAULT_FOV_DEGREES,
            )  # fmt: skip
        elif rejected:
            logger.warning("%s%s; using %s instead", prefix, "; ".join(rejected), origin)
    cx, cy = camera.principal or ((width - 1) / 2, (height - 1) / 2)
    return Intrinsics(float(focal), float(focal), float(cx), float(cy), width, height, origin)
