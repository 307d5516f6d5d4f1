"""``read_depth``: any depth file depthlite writes, back as numbers (see ``depthfile.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from depthlite.errors import InputError, InputNotFoundError, InvalidOptionError
from depthlite.geometry.calibration import Calibration
from depthlite.imageio.depthfile import MAPPINGS
from depthlite.imageio.png import read_text
from depthlite.imageio.writers import OUTPUT_SUFFIX, SIDECAR_SUFFIX, read_pfm

__all__ = ["read_depth"]

_LEVELS = 65535


def _calibration(text: str | None, path: Path) -> Calibration | None:
    if not text:
        return None
    try:
        return Calibration.from_json(text)
    except InvalidOptionError as exc:
        raise InputError(f"bad calibration in the file: {exc}", str(path)) from None


def _read_png16(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    data = path.read_bytes()
    try:
        text = read_text(data)
    except ValueError as exc:
        raise InputError(f"not a readable PNG: {exc}", str(path)) from None
    levels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if levels is None or levels.dtype != np.uint16 or levels.ndim != 2:
        raise InputError("not a 16-bit greyscale depth PNG", str(path))
    if "Depth-Min" not in text or "Depth-Mapping" not in text:
        raise InputError(
            "this 16-bit PNG has no Depth-Min/Depth-Max text chunks, so its levels have no "
            "scale (write it with depthlite 0.1 or later, or read the .npy)",
            str(path),
        )
    try:
        lo, hi = float(text["Depth-Min"]), float(text["Depth-Max"])
    except (KeyError, ValueError):
        raise InputError("malformed Depth-Min/Depth-Max text chunks", str(path)) from None
    if text["Depth-Mapping"] not in MAPPINGS:
        raise InputError(f"unknown Depth-Mapping {text['Depth-Mapping']!r}", str(path))
    fraction = levels.astype(np.float64) / _LEVELS
    if text["Depth-Mapping"] == MAPPINGS[1]:
        fraction = 1.0 - fraction
    values = (lo + (hi - lo) * fraction).astype(np.float32)
    facts = {
        "kind": text.get("Depth-Kind"),
        "unit": None if text.get("Depth-Unit") in (None, "relative") else text["Depth-Unit"],
        "model": text.get("Depth-Model"),
        "calibration": _calibration(text.get("Depth-Calibration"), path),
        "min": lo,
        "max": hi,
        "facts_from": "png text chunks",
    }
    return values, facts


def _sidecar_entry(path: Path) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(the sidecar document, this file's entry) of the sidecar next to ``path``, if any."""
    for fmt, suffix in sorted(OUTPUT_SUFFIX.items(), key=lambda item: -len(item[1])):
        if not path.name.endswith(suffix):
            continue
        sidecar = path.with_name(f"{path.name[: -len(suffix)]}{SIDECAR_SUFFIX}")
        try:
            document = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            continue
        entry = document.get("files", {}).get(fmt) if isinstance(document, dict) else None
        if isinstance(entry, dict) and entry.get("name") == path.name:
            return document, entry
    return None


def _read_array(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    try:
        if path.suffix.lower() == ".npy":
            values = np.load(path, allow_pickle=False)
        else:
            values = read_pfm(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the depth array: {exc}", str(path)) from None
    if values.ndim != 2 or not np.issubdtype(values.dtype, np.floating):
        raise InputError(f"not a depth map: a {values.dtype} array of shape {values.shape}",
                         str(path))  # fmt: skip
    facts: dict[str, Any] = {"kind": None, "unit": None, "model": None, "calibration": None}
    found = _sidecar_entry(path)
    if found is not None:
        document, entry = found
        facts.update(
            kind=entry.get("kind", document.get("kind")),
            unit=entry.get("unit", document.get("unit")),
            model=document.get("model"),
            calibration=_calibration(json.dumps(document["calibration"]), path)
            if document.get("calibration") and entry.get("unit") != "m"
            else None,
            facts_from="sidecar",
        )
    else:
        facts["facts_from"] = "none (no sidecar)"
    return values.astype(np.float32, copy=False), facts


def read_depth(path: str | Path, *, metres: bool = True) -> tuple[np.ndarray, dict[str, Any]]:
    """A depth map written by depthlite, as float32, and the facts about it.

    Reads a 16-bit PNG (through its text chunks), an ``.npy`` or a ``.pfm`` (with the
    ``<stem>.json`` sidecar next to it, when there is one). With ``metres`` (default) and a
    calibration in the file, the values are converted to metres (NaN where the calibration
    gives no depth); otherwise they are the model's own values. The facts: ``kind``, ``unit``
    (``"m"`` or None), ``model``, ``calibration`` (a dict or None) and ``facts_from``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError("no such file", str(path))
    suffix = path.suffix.lower()
    if suffix == ".png":
        values, facts = _read_png16(path)
    elif suffix in (".npy", ".pfm"):
        values, facts = _read_array(path)
    else:
        raise InputError("read_depth reads 16-bit PNG, .npy and .pfm depth files", str(path))
    calibration: Calibration | None = facts.pop("calibration")
    facts["calibration"] = calibration.to_dict() if calibration else None
    if metres and calibration is not None:
        values = calibration.apply(values)
        facts.update(kind="metric_depth", unit="m")
    return values, facts
