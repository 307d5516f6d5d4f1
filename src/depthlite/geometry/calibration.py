"""Metres from known distances: the scale and shift that turn a model's output into depth.

Relative models (MiDaS: inverse depth, Depth Anything V2: disparity) are right up to an affine
map of their output, so in *their* space ``1 / d = s * value + t`` (space ``"inverse"``); two
pixels with known distances fix ``s`` and ``t``. Metric models are refined in metres,
``d = s * value + t`` (space ``"linear"``; ``t = 0`` when only the scale is fitted).

Two or three points are fitted by least squares; more by a Huber fit (``align.fit_huber``), so
one wrong tape measurement cannot drag the others. A fit that cannot be right is refused with
the reason and the fix (:class:`~depthlite.errors.CalibrationError`): fewer than two points,
points the model sees at one depth, a negative scale (the model orders the points the other
way round), a depth <= 0 at a known point.

A known point is an integer pixel of the image as shown (EXIF orientation applied: the grid of
``DepthResult.depth``), x to the right, y down, 0-based; the value used is exactly
``depth[y, x]``. Its distance is the depth along the camera's axis, in metres, which is what
the models estimate (for a point off the image centre it is a little less than the straight
line from the camera).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from depthlite.errors import CalibrationError, InvalidOptionError
from depthlite.fsutil import atomic_path
from depthlite.geometry.align import fit_huber, fit_scale, fit_scale_shift
from depthlite.geometry.points import WHERE, FittedPoint, KnownPoint

__all__ = [
    "FITS",
    "MAX_POINTS",
    "Calibration",
    "CalibrationError",
    "FittedPoint",
    "KnownPoint",
    "fit_calibration",
    "fit_values",
    "resolve_fit",
    "space_of",
]

FITS: tuple[str, ...] = ("auto", "scale", "scale_shift")
# Beyond a handful of points a calibration is a survey; the bound keeps an API request small.
MAX_POINTS = 1000
# Least squares up to this many points; a robust fit above (three points cannot outvote one).
_LEAST_SQUARES_MAX = 3
# Relative spread of the points' model values below which they count as "the same value".
_SAME_VALUE = 1e-6
_FILE_FORMAT = "depthlite-calibration"
_FILE_VERSION = 1


def space_of(kind: str) -> str:
    """``"linear"`` for metric depth, ``"inverse"`` for relative inverse depth and disparity."""
    return "linear" if kind == "metric_depth" else "inverse"


def resolve_fit(fit: str, kind: str) -> str:
    """``auto`` is scale and shift for relative outputs and scale only for metric ones (a
    metric model's zero is already right; its scale is what drifts between scenes)."""
    if fit not in FITS:
        raise InvalidOptionError(f"invalid fit {fit!r}; choose one of: {', '.join(FITS)}")
    if fit != "auto":
        return fit
    return "scale" if space_of(kind) == "linear" else "scale_shift"


@dataclass(frozen=True)
class Calibration:
    """A fitted map from a model's output to metres; see the module docstring."""

    model: str | None
    kind: str
    input_size: tuple[int, int] | None  # (h, w) of the network input it was fitted at
    space: str
    scale: float
    shift: float
    fit: str  # "scale" | "scale_shift"
    method: str  # "least_squares" | "huber"
    points: tuple[FittedPoint, ...]
    rms: float  # root mean square of the residuals, metres

    def apply(self, depth: np.ndarray) -> np.ndarray:
        """Metres (float32) of a map of this model's values; NaN where there is no depth.

        NaN marks pixels the calibration puts at or beyond infinity (``s * v + t <= 0`` in
        the inverse space: typically sky) or at a depth <= 0, and non-finite values; inf is
        never returned.
        """
        values = np.asarray(depth, dtype=np.float32)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            mapped = np.float32(self.scale) * values + np.float32(self.shift)
            metres = np.reciprocal(mapped) if self.space == "inverse" else mapped
            bad = ~(np.isfinite(metres) & (metres > 0))
        metres[bad] = np.nan
        return metres

    @property
    def formula(self) -> str:
        return "1/d = s*v + t" if self.space == "inverse" else "d = s*v + t"

    def table(self) -> list[str]:
        """A short human-readable summary: one line, then one line per point."""
        head = (
            f"calibration {self.formula}: s = {self.scale:.6g}, t = {self.shift:.6g} "
            f"({self.fit}, {self.method.replace('_', ' ')}), rms {self.rms:.3g} m"
        )
        rows = [f"{'x':>7} {'y':>6} {'value':>12} {'given m':>9} {'fitted m':>9} {'error m':>9}"]
        for p in self.points:
            flag = "  (outlier)" if p.weight < 0.5 else ""
            rows.append(
                f"{p.x:>7} {p.y:>6} {p.value:>12.6g} {p.distance:>9.3f} {p.predicted:>9.3f} "
                f"{round(p.residual, 3) + 0.0:>+9.3f}{flag}"  # + 0.0: no "-0.000"
            )
        return [head, *rows]

    def check_use(self, model: str, kind: str, what: str = "the calibration") -> None:
        """Refuse to apply this calibration to another model's output (InvalidOptionError)."""
        if self.kind != kind:
            raise InvalidOptionError(
                f"{what} was fitted on {self.kind} output, this model gives {kind}: "
                "fit again with known points"
            )
        if self.model is not None and self.model != model:
            raise InvalidOptionError(
                f"{what} was fitted for model {self.model}, this run uses {model}: "
                "fit again with known points for this model"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": _FILE_FORMAT,
            "version": _FILE_VERSION,
            "model": self.model,
            "kind": self.kind,
            "input_size": list(self.input_size) if self.input_size else None,
            "space": self.space,
            "fit": self.fit,
            "method": self.method,
            "scale": self.scale,
            "shift": self.shift,
            "rms": self.rms,
            "points": [vars(p) for p in self.points],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: Any) -> Calibration:
        """A calibration from :meth:`to_dict`'s form; InvalidOptionError says what is wrong."""
        if not isinstance(data, dict) or data.get("format") != _FILE_FORMAT:
            raise InvalidOptionError(f"not a depthlite calibration (no format: {_FILE_FORMAT})")
        try:
            size = data.get("input_size")
            points = tuple(FittedPoint(**{k: p[k] for k in _POINT_KEYS}) for p in data["points"])
            calibration = cls(
                model=data.get("model"),
                kind=str(data["kind"]),
                input_size=(int(size[0]), int(size[1])) if size else None,
                space=str(data["space"]),
                scale=float(data["scale"]),
                shift=float(data["shift"]),
                fit=str(data["fit"]),
                method=str(data["method"]),
                points=points,
                rms=float(data["rms"]),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise InvalidOptionError(f"malformed calibration: {exc!r}") from None
        if calibration.space != space_of(calibration.kind) or not (
            math.isfinite(calibration.scale) and math.isfinite(calibration.shift)
        ):
            raise InvalidOptionError("malformed calibration: space, kind or numbers disagree")
        return calibration

    @classmethod
    def from_json(cls, text: str) -> Calibration:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidOptionError(f"calibration is not JSON: {exc}") from None
        return cls.from_dict(data)

    def save(self, path: str | Path) -> None:
        with atomic_path(Path(path)) as tmp:
            tmp.write_text(self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        try:
            text = Path(path).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidOptionError(f"cannot read calibration {path}: {exc}") from None
        try:
            return cls.from_json(text)
        except InvalidOptionError as exc:
            raise InvalidOptionError(f"{path}: {exc}") from None


_POINT_KEYS = ("x", "y", "distance", "value", "predicted", "residual", "weight")


def fit_calibration(
    depth: np.ndarray,
    kind: str,
    points: Sequence[KnownPoint],
    *,
    fit: str = "auto",
    model: str | None = None,
    input_size: tuple[int, int] | None = None,
) -> Calibration:
    """Fit the calibration of ``depth`` (a model's output at image size) to known points."""
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ValueError(f"depth must be an HxW map, got shape {depth.shape}")
    height, width = depth.shape
    for p in points:
        if not (0 <= p.x < width and 0 <= p.y < height):
            raise CalibrationError(
                f"known point {p.x},{p.y} is outside the {width}x{height} image: x must be in "
                f"0..{width - 1} and y in 0..{height - 1} ({WHERE})"
            )
    values = [float(depth[p.y, p.x]) for p in points]
    return fit_values(kind, list(zip(points, values, strict=True)), fit=fit, model=model,
                      input_size=input_size)  # fmt: skip


def fit_values(
    kind: str,
    samples: Sequence[tuple[KnownPoint, float]],
    *,
    fit: str = "auto",
    model: str | None = None,
    input_size: tuple[int, int] | None = None,
) -> Calibration:
    """Fit from (point, model value at it) pairs, e.g. values a client read from the npy."""
    fit = resolve_fit(fit, kind)
    space = space_of(kind)
    if len(samples) < 2:
        raise CalibrationError(
            f"need at least two known points, got {len(samples)}: give another pixel with its "
            "distance (X,Y=METRES)"
        )
    if len(samples) > MAX_POINTS:
        raise CalibrationError(f"at most {MAX_POINTS} known points, got {len(samples)}")
    points = [p for p, _ in samples]
    values = np.array([v for _, v in samples], dtype=np.float64)
    for p, v in zip(points, values, strict=True):
        if not math.isfinite(v):
            raise CalibrationError(f"the model has no valid value at {p.x},{p.y}: pick another")
    _check_spread(points, values, fit)
    distances = np.array([p.distance for p in points], dtype=np.float64)
    target = 1.0 / distances if space == "inverse" else distances
    scale, shift, weights, method = _solve(values, target, fit)
    if not (math.isfinite(scale) and math.isfinite(shift)):
        raise CalibrationError("the fit failed: the values are out of range")
    if scale <= 0:
        raise CalibrationError(_negative_scale(points, values, scale, space))
    fitted = scale * values + shift
    _check_positive(points, fitted, space)
    predicted = 1.0 / fitted if space == "inverse" else fitted
    residual = predicted - distances
    return Calibration(
        model=model,
        kind=kind,
        input_size=tuple(input_size) if input_size else None,  # type: ignore[arg-type]
        space=space,
        scale=scale,
        shift=shift,
        fit=fit,
        method=method,
        points=tuple(
            FittedPoint(p.x, p.y, p.distance, float(v), float(m), float(r), float(w))
            for p, v, m, r, w in zip(points, values, predicted, residual, weights, strict=True)
        ),
        rms=float(np.sqrt(np.mean(residual**2))),
    )


def _check_positive(points: list[KnownPoint], fitted: np.ndarray, space: str) -> None:
    """Every known point must get a finite depth > 0 (``fitted`` is 1/d or d)."""
    for p, f in zip(points, fitted, strict=True):
        if not (f > 0 and math.isfinite(1.0 / f if space == "inverse" else f)):
            shown = "1/d" if space == "inverse" else "d"
            raise CalibrationError(
                f"the fit puts {p.x},{p.y} at a depth <= 0 or beyond infinity (fitted "
                f"{shown} = {f:.4g}): one scale and shift cannot match these distances; "
                "check the points and distances, or fit the scale only"
            )


def _check_spread(points: list[KnownPoint], values: np.ndarray, fit: str) -> None:
    distances = {p.distance for p in points}
    if fit == "scale_shift" and len(distances) == 1:
        raise CalibrationError(
            f"every known point is at {points[0].distance:g} m: one distance fixes a shift but "
            "no scale; give points at different distances, or fit the scale only (--fit scale; "
            "fit=scale in the API)"
        )
    top = float(np.max(np.abs(values)))
    if fit == "scale" and top == 0.0:
        raise CalibrationError("the model's value is 0 at every known point: no scale fits")
    if fit == "scale_shift" and float(np.ptp(values)) <= _SAME_VALUE * top:
        shown = ", ".join(f"{p.x},{p.y}: {v:.6g}" for p, v in zip(points, values, strict=True))
        raise CalibrationError(
            f"the known points have the same model value ({shown}): the model sees them at one "
            "depth, so their distances cannot fix a scale and a shift; pick points at clearly "
            "different depths, or fit the scale only"
        )


def _solve(
    values: np.ndarray, target: np.ndarray, fit: str
) -> tuple[float, float, list[float], str]:
    shift = fit == "scale_shift"
    with np.errstate(all="ignore"):
        try:
            if len(values) > _LEAST_SQUARES_MAX:
                s, t, w = fit_huber(values, target, shift=shift)
                return s, t, list(w), "huber"
            if shift:
                s, t = fit_scale_shift(values, target)
            else:
                s, t = fit_scale(values, target), 0.0
        except ValueError as exc:
            raise CalibrationError(
                f"no unique fit: {exc}; pick points at different depths"
            ) from None
    return s, t, [1.0] * len(values), "least_squares"


def _negative_scale(points: list[KnownPoint], values: np.ndarray, scale: float, space: str) -> str:
    # In the inverse space a larger value is nearer; in metres a larger value is farther.
    nearer = values if space == "linear" else -values
    example = ""
    for i, a in enumerate(points):
        for j, b in enumerate(points):
            if nearer[i] < nearer[j] and a.distance > b.distance:
                example = (
                    f" ({a.x},{a.y} looks nearer than {b.x},{b.y} to the model, but is given "
                    f"as farther: {a.distance:g} m against {b.distance:g} m)"
                )
                break
        if example:
            break
    return (
        f"the fit has a negative scale ({scale:.4g}): the model orders the points by depth the "
        f"other way round from their distances{example}; check each point's X,Y ({WHERE}) "
        "and its distance"
    )
