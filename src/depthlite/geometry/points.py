"""Known points: a pixel of the image as shown and its distance, before and after a fit."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from depthlite.errors import CalibrationError

__all__ = ["WHERE", "FittedPoint", "KnownPoint"]

# How every message describes pixel coordinates.
WHERE = "pixels of the image as shown, x right, y down, from 0"


@dataclass(frozen=True)
class KnownPoint:
    """A pixel (``x`` right, ``y`` down, 0-based) and its distance in metres."""

    x: int
    y: int
    distance: float

    def __post_init__(self) -> None:
        for name in ("x", "y"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise CalibrationError(f"known point {name} must be a whole pixel, got {value!r}")
            if value < 0:
                raise CalibrationError(
                    f"known point {self.x},{self.y} is outside the image: {WHERE}"
                )
        distance = float(self.distance)
        if not math.isfinite(distance) or distance <= 0:
            raise CalibrationError(
                f"known point {self.x},{self.y} has distance {self.distance!r}: "
                "a distance is a positive number of metres"
            )
        object.__setattr__(self, "x", int(self.x))
        object.__setattr__(self, "y", int(self.y))
        object.__setattr__(self, "distance", distance)

    @classmethod
    def parse(cls, text: str) -> KnownPoint:
        """``"412,300=2.5"`` -> ``KnownPoint(412, 300, 2.5)``; fractional pixels are rounded."""
        form = f"expected X,Y=METRES (e.g. 412,300=2.5), got {text!r}"
        where, sep, distance = text.partition("=")
        parts = where.split(",")
        if not sep or len(parts) != 2:
            raise CalibrationError(f"malformed known point: {form}")
        try:
            x, y, metres = float(parts[0]), float(parts[1]), float(distance)
        except ValueError:
            raise CalibrationError(f"malformed known point: {form}") from None
        if not (math.isfinite(x) and math.isfinite(y)):
            raise CalibrationError(f"malformed known point: {form}")
        return cls(round(x), round(y), metres)


@dataclass(frozen=True)
class FittedPoint:
    """A known point after the fit: the model's value there, the fitted distance, the error."""

    x: int
    y: int
    distance: float
    value: float
    predicted: float  # metres the calibration gives at this pixel
    residual: float  # predicted - distance, metres
    weight: float = 1.0  # the robust fit's final weight (1: fully trusted)
