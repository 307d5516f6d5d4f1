"""Ground truth from disk: the stored numbers of a sample become depth and a validity mask."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from depthlite.errors import InputError, InputNotFoundError
from depthlite.evaluation.dataset import Sample
from depthlite.imageio import read_pfm

__all__ = ["GroundTruth", "read_ground_truth", "read_stored"]


@dataclass(frozen=True)
class GroundTruth:
    """Depth (float64 HxW, in ``unit``; NaN where invalid) and where it is valid."""

    depth: np.ndarray
    valid: np.ndarray
    unit: str

    @property
    def valid_pixels(self) -> int:
        return int(np.count_nonzero(self.valid))


def _decode_unchanged(path: Path) -> np.ndarray:
    """Pixels exactly as stored (16 bits kept); np.fromfile so non-ASCII paths work too."""
    data = cv2.imdecode(np.fromfile(str(path), dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if data is None:
        raise ValueError("OpenCV cannot decode it")
    return data


def _single_channel(arr: np.ndarray, what: str, source: str) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2 or arr.size == 0:
        raise InputError(f"{what} must be one HxW channel, got shape {arr.shape}", source)
    if arr.dtype == np.bool_:
        return arr
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise InputError(f"{what} must hold numbers, got dtype {arr.dtype}", source)
    return arr


def read_stored(path: Path, what: str = "ground truth") -> np.ndarray:
    """The stored values of an .npy, .pfm or PNG file, one channel, as they are on disk."""
    source = str(path)
    if not path.is_file():
        raise InputNotFoundError(f"no such {what} file", source)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        elif suffix == ".pfm":
            arr = read_pfm(path)
        else:
            arr = _decode_unchanged(path)
    except (ValueError, OSError) as exc:
        # read_pfm's messages start with the path already.
        message = str(exc).removeprefix(f"{path}: ")
        raise InputError(f"cannot read the {what}: {message}", source) from None
    return _single_channel(arr, what, source)


def _depth_from_stored(stored: np.ndarray, sample: Sample) -> tuple[np.ndarray, np.ndarray]:
    """(depth, stored-invalid) for the sample's kind, scale and invalid marker."""
    values = stored.astype(np.float64)
    invalid = ~np.isfinite(values)
    if sample.invalid is not None:
        invalid |= values == sample.invalid
    elif np.issubdtype(stored.dtype, np.integer):
        # PNG ground truth (KITTI, NYU, TUM, Middlebury's PNGs) stores "unknown" as 0.
        invalid |= values == 0
    scaled = values * (1.0 if sample.scale is None else sample.scale)
    with np.errstate(divide="ignore", invalid="ignore"):
        if sample.kind == "disparity":
            numerator = 1.0 if sample.focal_baseline is None else sample.focal_baseline
            depth = numerator / (scaled + sample.doffs)
        else:
            depth = scaled
    return depth, invalid


def _mask(sample: Sample, shape: tuple[int, ...]) -> np.ndarray | None:
    if sample.mask is None:
        return None
    mask = read_stored(sample.mask, "mask")
    if mask.shape != shape:
        raise InputError(
            f"the mask is {mask.shape[1]}x{mask.shape[0]}, the ground truth "
            f"{shape[1]}x{shape[0]}: they must be the same size",
            str(sample.mask),
        )
    return mask != 0


def read_ground_truth(sample: Sample) -> GroundTruth:
    """Depth and validity of ``sample``'s ground truth (see :class:`Sample` for the rules)."""
    stored = read_stored(sample.gt)
    depth, invalid = _depth_from_stored(stored, sample)
    with np.errstate(invalid="ignore"):
        valid = (
            ~invalid & np.isfinite(depth) & (depth > sample.min_depth) & (depth < sample.max_depth)
        )
    mask = _mask(sample, stored.shape)
    if mask is not None:
        valid &= mask
    if not valid.any():
        raise InputError(
            "no valid ground-truth pixels (all are invalid, outside min_depth..max_depth, or "
            "masked out): check its kind, scale and invalid value",
            str(sample.gt),
        )
    depth = np.where(valid, depth, np.nan)
    return GroundTruth(depth=depth, valid=valid, unit=sample.depth_unit)
