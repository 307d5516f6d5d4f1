"""Evaluation datasets: a ``depthlite-eval.json`` manifest, or a folder paired by file names.

A manifest lists samples (an image and its ground-truth file) with what the stored numbers
mean; ``"defaults"`` holds keys shared by every sample. Without a manifest, a folder pairs
``<stem>.<image ext>`` with ``<stem>_depth.npy|.pfm`` (depth) or ``<stem>_disp.npy|.pfm``
(disparity). A broken manifest (not JSON, unknown top-level key) stops the run; a broken sample
is reported and the others are still evaluated.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from depthlite.errors import InputError, InputNotFoundError
from depthlite.imageio import IMAGE_EXTENSIONS

__all__ = [
    "GT_EXTENSIONS",
    "MANIFEST_NAME",
    "Dataset",
    "GroundTruthKind",
    "ManifestError",
    "Sample",
    "load_dataset",
]

MANIFEST_NAME = "depthlite-eval.json"
GT_EXTENSIONS: tuple[str, ...] = (".npy", ".pfm", ".png")
GroundTruthKind = Literal["depth", "disparity"]
# Folder convention: the name ending says what the file holds.
_FOLDER_SUFFIXES: dict[str, GroundTruthKind] = {"_depth": "depth", "_disp": "disparity"}
_PATH_KEYS = ("image", "gt", "mask")
_TOP_KEYS = ("version", "defaults", "samples")
_MANIFEST_VERSION = 1


class ManifestError(InputError):
    """A manifest (or one of its samples) that cannot be understood; the message says the fix."""

    code = "bad_manifest"


@dataclass(frozen=True)
class Sample:
    """One image and its ground truth, with what the ground truth's stored numbers mean.

    Stored values become ``value * scale``; ``invalid`` is a stored value that marks missing
    ground truth. Disparity becomes depth as ``focal_baseline / (disparity + doffs)`` (the
    Middlebury formula; in metres when ``focal_baseline`` is focal length in pixels times
    baseline in metres), or ``1 / disparity`` in relative units without it. Pixels outside
    ``min_depth < depth < max_depth`` or zero in ``mask`` are left out.
    """

    name: str
    image: Path
    gt: Path
    kind: GroundTruthKind = "depth"
    scale: float | None = None
    invalid: float | None = None
    focal_baseline: float | None = None
    doffs: float = 0.0
    mask: Path | None = None
    min_depth: float = 0.0
    max_depth: float = math.inf
    depth_cap: float | None = None
    unit: str | None = None

    @property
    def depth_unit(self) -> str:
        """The unit of the ground-truth depth (and so of RMSE): metres unless it is relative."""
        if self.unit is not None:
            return self.unit
        if self.kind == "disparity" and self.focal_baseline is None:
            return "relative"
        return "m"


@dataclass(frozen=True)
class Dataset:
    """The samples of a dataset, and the problems of entries that could not become one."""

    root: Path
    manifest: Path | None
    samples: tuple[Sample, ...]
    problems: tuple[InputError, ...] = field(default=())


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f'"{key}" must be a finite number, got {json.dumps(value)}')
    return float(value)


def _positive(key: str, value: Any) -> float:
    number = _number(key, value)
    if number <= 0:
        raise ValueError(f'"{key}" must be > 0, got {json.dumps(value)}')
    return number


def _non_negative(key: str, value: Any) -> float:
    number = _number(key, value)
    if number < 0:
        raise ValueError(f'"{key}" must be >= 0, got {json.dumps(value)}')
    return number


def _kind(key: str, value: Any) -> str:
    if value not in ("depth", "disparity"):
        raise ValueError(f'"{key}" must be "depth" or "disparity", got {json.dumps(value)}')
    return str(value)


def _text(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f'"{key}" must be a non-empty string, got {json.dumps(value)}')
    return value.strip()


# The keys a sample (or "defaults") may set, each with its parser: one table, so the error for
# a typo can list every key there is.
_FIELDS: dict[str, Callable[[str, Any], Any]] = {
    "kind": _kind,
    "scale": _positive,
    "invalid": _number,
    "focal_baseline": _positive,
    "doffs": _number,
    "min_depth": _non_negative,
    "max_depth": _positive,
    "depth_cap": _positive,
    "unit": _text,
}


def _parse_fields(entry: Mapping[str, Any], allowed: tuple[str, ...]) -> dict[str, Any]:
    unknown = [key for key in entry if key not in allowed]
    if unknown:
        raise ValueError(f'unknown key "{unknown[0]}"; the keys are: {", ".join(allowed)}')
    return {key: _FIELDS[key](key, value) for key, value in entry.items() if key in _FIELDS}


def _check(sample: Sample) -> Sample:
    """The rules that span several keys."""
    if sample.kind == "depth" and (sample.focal_baseline is not None or sample.doffs):
        raise ValueError('"focal_baseline" and "doffs" only apply to "kind": "disparity"')
    if sample.min_depth >= sample.max_depth:
        raise ValueError(f'"min_depth" {sample.min_depth:g} must be below "max_depth"')
    if sample.gt.suffix.lower() not in GT_EXTENSIONS:
        raise ValueError(
            f"ground truth {sample.gt.name!r} is not {', '.join(GT_EXTENSIONS)}: convert it to "
            'a float .npy (numpy.save) or .pfm, or a 16-bit .png with a "scale"'
        )
    if sample.gt.suffix.lower() == ".png" and sample.scale is None:
        raise ValueError(
            'a PNG ground truth needs "scale", the value of one stored step (e.g. 0.001 for '
            "millimetres, 0.00390625 = 1/256 for KITTI)"
        )
    return sample


def _sample(entry: Any, defaults: dict[str, Any], root: Path) -> Sample:
    if not isinstance(entry, dict):
        raise ValueError(f"a sample must be an object with image and gt, got {json.dumps(entry)}")
    missing = [key for key in ("image", "gt") if key not in entry]
    if missing:
        raise ValueError(f'the sample has no "{missing[0]}" (a path relative to the manifest)')
    values = {**defaults, **_parse_fields(entry, (*_PATH_KEYS, *_FIELDS))}
    paths = {key: root / _text(key, entry[key]) for key in _PATH_KEYS if key in entry}
    name = _text("image", entry["image"])
    return _check(Sample(name=name, **paths, **values))


def _read_manifest(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputNotFoundError("no such manifest", source=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"cannot read the manifest: {exc}", source=str(path)) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(
            f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})", source=str(path)
        ) from None


def _top_level(data: Any, source: str) -> tuple[dict[str, Any], list[Any]]:
    """(defaults, sample entries) of a manifest, or a ManifestError for the whole file."""
    if not isinstance(data, dict):
        raise ManifestError('the manifest must be a JSON object with "samples"', source=source)
    unknown = [key for key in data if key not in _TOP_KEYS]
    if unknown:
        raise ManifestError(
            f'unknown key "{unknown[0]}"; the top-level keys are: {", ".join(_TOP_KEYS)}',
            source=source,
        )
    if data.get("version", _MANIFEST_VERSION) != _MANIFEST_VERSION:
        raise ManifestError(
            f'"version" {json.dumps(data["version"])} is not supported: this depthlite reads '
            f"version {_MANIFEST_VERSION}",
            source=source,
        )
    entries = data.get("samples")
    if not isinstance(entries, list) or not entries:
        raise ManifestError(
            '"samples" must be a non-empty list of {"image": ..., "gt": ...}', source=source
        )
    raw_defaults = data.get("defaults", {})
    if not isinstance(raw_defaults, dict):
        raise ManifestError('"defaults" must be an object', source=source)
    try:
        defaults = _parse_fields(raw_defaults, tuple(_FIELDS))
    except ValueError as exc:
        raise ManifestError(f"defaults: {exc}", source=source) from None
    return defaults, entries


def _from_manifest(path: Path) -> Dataset:
    defaults, entries = _top_level(_read_manifest(path), str(path))
    samples: list[Sample] = []
    problems: list[InputError] = []
    for number, entry in enumerate(entries, start=1):
        try:
            samples.append(_sample(entry, defaults, path.parent))
        except ValueError as exc:
            problems.append(ManifestError(f"sample {number}: {exc}", source=str(path)))
    return Dataset(path.parent, path, tuple(samples), tuple(problems))


def _ground_truth_candidates(folder: Path, stem: str) -> list[tuple[Path, GroundTruthKind]]:
    return [
        (folder / f"{stem}{suffix}{ext}", kind)
        for suffix, kind in _FOLDER_SUFFIXES.items()
        for ext in GT_EXTENSIONS
        if (folder / f"{stem}{suffix}{ext}").is_file()
    ]


def _is_ground_truth_name(path: Path) -> bool:
    return any(path.stem.endswith(suffix) for suffix in _FOLDER_SUFFIXES)


def _pair(image: Path) -> Sample:
    found = _ground_truth_candidates(image.parent, image.stem)
    expected = f"{image.stem}_depth.npy|.pfm or {image.stem}_disp.npy|.pfm"
    if not found:
        raise InputNotFoundError(f"no ground truth: expected {expected}", source=str(image))
    if len(found) > 1:
        names = ", ".join(path.name for path, _ in found)
        raise InputError(f"several ground truths ({names}): keep one", source=str(image))
    gt, kind = found[0]
    if gt.suffix.lower() == ".png":
        raise ManifestError(
            f'{gt.name}: a PNG ground truth needs its "scale"; describe the folder in a '
            f"{MANIFEST_NAME} (see the README), or save the map as .npy or .pfm",
            source=str(image),
        )
    return Sample(name=image.name, image=image, gt=gt, kind=kind)


def _from_folder(folder: Path) -> Dataset:
    images = sorted(
        path
        for path in folder.iterdir()
        if path.is_file()
        and not path.name.startswith(".")
        and path.suffix.lower() in IMAGE_EXTENSIONS
        and not _is_ground_truth_name(path)
    )
    if not images:
        raise InputNotFoundError(
            f"no images and no {MANIFEST_NAME}: add a manifest, or name the files "
            "<stem>.png + <stem>_depth.npy (see the README)",
            source=str(folder),
        )
    samples: list[Sample] = []
    problems: list[InputError] = []
    for image in images:
        try:
            samples.append(_pair(image))
        except InputError as exc:
            problems.append(exc)
    return Dataset(folder, None, tuple(samples), tuple(problems))


def load_dataset(path: str | Path) -> Dataset:
    """The dataset at ``path``: a manifest file, a folder holding one, or a paired folder."""
    path = Path(path)
    if path.is_dir():
        manifest = path / MANIFEST_NAME
        return _from_manifest(manifest) if manifest.is_file() else _from_folder(path)
    if not path.exists():
        raise InputNotFoundError("no such dataset folder or manifest", source=str(path))
    return _from_manifest(path)
