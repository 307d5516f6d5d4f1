"""A real evaluation dataset that ships in a package: scikit-image's Middlebury motorcycle.

``skimage.data.stereo_motorcycle()`` is the Middlebury 2014 "Motorcycle" pair down-sampled by
4, with its ground-truth disparity; the three files are in scikit-image's wheel (its legacy
data folder), so nothing is downloaded. Its docstring gives the calibration for that size, from
which disparity becomes metric depth: ``Z = f * B / (d + doffs)``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from depthlite.errors import BackendUnavailableError
from depthlite.evaluation.dataset import MANIFEST_NAME
from depthlite.imageio import atomic_write_bytes, encode_png, write_pfm

__all__ = ["MOTORCYCLE_CALIBRATION", "write_motorcycle"]

# From skimage.data.stereo_motorcycle's docstring (valid for its down-sampled images).
MOTORCYCLE_CALIBRATION = {
    "focal_px": 994.978,
    "baseline_m": 0.193001,
    "doffs_px": 31.086,  # the principal points' x offset between the two cameras
}
_IMAGE = "motorcycle_left.png"
_DISPARITY = "motorcycle_left_disp.pfm"


def _stereo_motorcycle() -> tuple[np.ndarray, np.ndarray]:
    try:
        from skimage import data
    except ImportError as exc:
        raise BackendUnavailableError(
            "the motorcycle example comes from scikit-image: pip install 'depthlite[quantize]'"
        ) from exc
    left, _right, disparity = data.stereo_motorcycle()
    return left, disparity


def write_motorcycle(folder: str | Path) -> Path:
    """Write the left image, its ground-truth disparity (PFM, inf where unknown) and a manifest
    into ``folder``; return the manifest's path.
    """
    folder = Path(folder)
    left, disparity = _stereo_motorcycle()
    calib = MOTORCYCLE_CALIBRATION
    manifest = {
        "version": 1,
        "samples": [
            {
                "image": _IMAGE,
                "gt": _DISPARITY,
                "kind": "disparity",
                "focal_baseline": round(calib["focal_px"] * calib["baseline_m"], 6),
                "doffs": calib["doffs_px"],
                "unit": "m",
            }
        ],
    }
    atomic_write_bytes(folder / _IMAGE, encode_png(left))
    write_pfm(folder / _DISPARITY, disparity)
    path = folder / MANIFEST_NAME
    atomic_write_bytes(path, (json.dumps(manifest, indent=2) + "\n").encode())
    return path
