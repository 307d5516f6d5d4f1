"""Depth files that say what they hold: PNG text chunks, the JSON sidecar, ``read_depth``.

A 16-bit depth PNG holds the official ``write_depth`` levels of the model's raw output, near
bright, so it stays bit-identical to the original code's files; text chunks say how to turn
the levels back into numbers:

==================== ==============================================================
``Depth-Kind``        relative_inverse_depth | relative_disparity | metric_depth
``Depth-Unit``        ``m``, or ``relative`` (no unit: up to a scale and a shift)
``Depth-Model``       the model's name
``Depth-Min``         smallest value (of the model's raw output)
``Depth-Max``         largest value
``Depth-Mapping``     ``0=min,65535=max`` (nearer is larger), or ``0=max,65535=min``
                      (metric depth, negated so that near is bright)
``Depth-Calibration`` the calibration JSON (:class:`~depthlite.geometry.calibration.
                      Calibration`), when one was applied
``Description``       the same in one sentence; ``Software``: depthlite and its version
==================== ==============================================================

so a level ``L`` is ``min + (max - min) * L / 65535`` (or ``max - ...``), to within one level
(video frames clip values beyond that range). The sidecar ``<stem>.json`` repeats these facts
for every file written for one input (see :func:`sidecar_bytes`), and
:func:`depthlite.imageio.readdepth.read_depth` reads any of them back.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from depthlite._version import __version__
from depthlite.geometry.calibration import Calibration, space_of
from depthlite.geometry.intrinsics import Intrinsics

__all__ = [
    "MAPPINGS",
    "SIDECAR_FORMAT",
    "DepthInfo",
    "LevelRange",
    "depth_headers",
    "display_range",
    "level_range",
    "png16_text",
    "sidecar_bytes",
]

SIDECAR_FORMAT = "depthlite-depth"
# Depth-Mapping: which end of the 16-bit range holds the minimum (near is always bright).
_MIN_FIRST, _MAX_FIRST = "0=min,65535=max", "0=max,65535=min"
MAPPINGS = (_MIN_FIRST, _MAX_FIRST)


@dataclass(frozen=True)
class DepthInfo:
    """What a depth map's numbers are: the facts every file written from it carries."""

    kind: str = "relative_inverse_depth"
    unit: str | None = None
    model: str | None = None
    calibration: Calibration | None = None
    input_size: tuple[int, int] | None = None  # (h, w) of the network input

    @property
    def near_is_larger(self) -> bool:
        """Inverse depth and disparity grow towards the camera; metric depth shrinks."""
        return space_of(self.kind) == "inverse"

    @property
    def metric(self) -> bool:
        """Whether metres can be had: a metric model, or a calibration."""
        return self.calibration is not None or self.kind == "metric_depth"

    def calibrated(self, calibration: Calibration | None) -> DepthInfo:
        return replace(self, calibration=calibration)


@dataclass(frozen=True)
class LevelRange:
    """The raw values mapped to the ends of the 16-bit range of one PNG."""

    lo: float
    hi: float
    near_is_larger: bool

    @property
    def mapping(self) -> str:
        return _MIN_FIRST if self.near_is_larger else _MAX_FIRST


def level_range(display: np.ndarray, near_is_larger: bool) -> LevelRange:
    """The range ``normalize_minmax`` maps for this display map (non-finite values count as
    0 there; the same rule here), in raw values."""
    lo, hi = float(np.min(display)), float(np.max(display))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        finite = np.nan_to_num(display, nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = float(finite.min()), float(finite.max())
    return display_range(lo, hi, near_is_larger)


def display_range(lo: float, hi: float, near_is_larger: bool) -> LevelRange:
    """A range of display values (``colorize.display_depth``) as raw values."""
    if near_is_larger:
        return LevelRange(lo, hi, True)
    return LevelRange(-hi, -lo, False)


def _text_facts(info: DepthInfo, levels: LevelRange) -> dict[str, str]:
    facts = {
        "Depth-Kind": info.kind,
        "Depth-Unit": info.unit or "relative",
        "Depth-Model": info.model or "unknown",
        "Depth-Min": repr(levels.lo),
        "Depth-Max": repr(levels.hi),
        "Depth-Mapping": levels.mapping,
    }
    if info.calibration is not None:
        facts["Depth-Calibration"] = json.dumps(info.calibration.to_dict(), separators=(",", ":"))
    return facts


def png16_text(info: DepthInfo, levels: LevelRange) -> dict[str, str]:
    """The text chunks of a 16-bit depth PNG (see the module docstring)."""
    unit = f" {info.unit}" if info.unit else " (relative units)"
    first, last = (levels.lo, levels.hi) if levels.near_is_larger else (levels.hi, levels.lo)
    sentence = (
        f"{info.kind.replace('_', ' ')} from {info.model or 'a depth model'}: level 0 is "
        f"{first:.6g}{unit}, level 65535 is {last:.6g}{unit}, linear between"
    )
    if info.calibration is not None:
        sentence += f"; metres: {info.calibration.formula} with the Depth-Calibration chunk"
    return {
        "Software": f"depthlite {__version__}",
        "Description": sentence,
        **_text_facts(info, levels),
    }


def depth_headers(info: DepthInfo, levels: LevelRange) -> dict[str, str]:
    """The same facts as ``X-Depth-*`` HTTP headers (``X-Depth-Kind``, ``X-Depth-Min``...)."""
    return {
        f"X-{key}": value
        for key, value in _text_facts(info, levels).items()
        if key != "Depth-Calibration"  # JSON in a header helps nobody; the chunk has it
    }


def sidecar_bytes(
    info: DepthInfo,
    shape: tuple[int, int],
    files: dict[str, dict[str, Any]],
    intrinsics: Intrinsics | None = None,
) -> bytes:
    """The ``<stem>.json`` sidecar: the depth's facts and one entry per file written."""
    document = {
        "format": SIDECAR_FORMAT,
        "version": 1,
        "software": f"depthlite {__version__}",
        "model": info.model,
        "kind": info.kind,
        "unit": info.unit,
        "near_is_larger": info.near_is_larger,
        "height": shape[0],
        "width": shape[1],
        "input_size": list(info.input_size) if info.input_size else None,
        "calibration": info.calibration.to_dict() if info.calibration else None,
        "intrinsics": intrinsics.to_dict() if intrinsics else None,
        "files": files,
    }
    return (json.dumps(document, indent=2) + "\n").encode()
