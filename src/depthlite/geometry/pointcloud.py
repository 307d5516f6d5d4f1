"""Depth to 3-D: the depth along the camera axis, back-projection, and binary PLY files.

Frame (the same for point clouds and normals): x to the right, y up, z towards the camera,
the camera at the origin looking down -z (OpenGL, three.js and Blender cameras). A pixel
``(u, v)`` at depth ``z`` is ``((u - cx) * z / fx, -(v - cy) * z / fy, -z)``.

Depth in metres comes from a calibration or a metric model. A relative model without one
gives *relative units*: ``z = p99 / value`` (the nearest 1 % of the scene at about 1), which
takes the unknown shift as 0, so the shape is only roughly right; the PLY header says so.

Which points a PLY keeps (:func:`keep_mask`): pixels with a finite depth > 0 (a calibration
gives NaN where it puts a pixel beyond infinity, typically sky), and not farther than
``FAR_RATIO`` (100) times the near depth (the 1st percentile): what remains of the sky and
the horizon would otherwise stretch the cloud into a long spike.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from depthlite.geometry.calibration import Calibration
from depthlite.geometry.intrinsics import Intrinsics

__all__ = [
    "FAR_RATIO",
    "backproject",
    "keep_mask",
    "ply_bytes",
    "point_cloud",
    "scene_depth",
]

FAR_RATIO = 100.0
_NEAR_PERCENTILE = 1.0
_RELATIVE_REFERENCE = 99.0
# Percentiles are taken on a strided sample of at most about this many pixels.
_MAX_SAMPLES = 1 << 16
_PLY_DTYPE = np.dtype(
    [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")]
)


def _sample(values: np.ndarray) -> np.ndarray:
    stride = max(1, int(np.ceil(np.sqrt(values.size / _MAX_SAMPLES))))
    return values[::stride, ::stride]


def scene_depth(
    depth: np.ndarray, kind: str, calibration: Calibration | None = None
) -> tuple[np.ndarray, str]:
    """``(z, unit)``: depth along the camera axis (float32, NaN where none) and ``"m"`` or
    ``"relative"``; see the module docstring."""
    depth = np.asarray(depth)
    if calibration is not None:
        return calibration.apply(depth), "m"
    z = depth.astype(np.float32, copy=True)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(z) & (z > 0)
    if kind == "metric_depth":
        z[~valid] = np.nan
        return z, "m"
    sample = _sample(np.where(valid, z, np.nan))
    if not np.isfinite(sample).any():
        return np.full(z.shape, np.nan, np.float32), "relative"
    reference = np.float32(np.nanpercentile(sample, _RELATIVE_REFERENCE))
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(reference, z, out=z)
    z[~valid] = np.nan
    return z, "relative"


def keep_mask(z: np.ndarray, far_ratio: float = FAR_RATIO) -> np.ndarray:
    """Pixels a point cloud keeps: finite, > 0 and within ``far_ratio`` times the near depth."""
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(z) & (z > 0)
        sample = _sample(np.where(valid, z, np.nan))
        if not np.isfinite(sample).any():
            return valid
        near = float(np.nanpercentile(sample, _NEAR_PERCENTILE))
        return valid & (z <= far_ratio * near)


def backproject(z: np.ndarray, intr: Intrinsics, stride: int = 1) -> np.ndarray:
    """(h, w, 3) float32 points of every ``stride``-th pixel of ``z`` (NaN depth -> NaN)."""
    rows = np.arange(0, z.shape[0], stride, dtype=np.float32)
    cols = np.arange(0, z.shape[1], stride, dtype=np.float32)
    depth = np.asarray(z, dtype=np.float32)[::stride, ::stride]
    points = np.empty((*depth.shape, 3), np.float32)
    points[..., 0] = (cols[None, :] - np.float32(intr.cx)) * depth / np.float32(intr.fx)
    points[..., 1] = (np.float32(intr.cy) - rows[:, None]) * depth / np.float32(intr.fy)
    points[..., 2] = -depth
    return points


def point_cloud(
    z: np.ndarray,
    rgb: np.ndarray,
    intr: Intrinsics,
    *,
    stride: int = 1,
    far_ratio: float = FAR_RATIO,
) -> tuple[np.ndarray, np.ndarray]:
    """``(xyz, colours)``: N x 3 float32 points and N x 3 uint8 RGB of the kept pixels."""
    if stride < 1:
        raise ValueError(f"stride must be >= 1, not {stride}")
    if rgb.shape[:2] != z.shape or rgb.dtype != np.uint8:
        raise ValueError(f"colours must be {z.shape} x 3 uint8, got {rgb.shape} {rgb.dtype}")
    keep = keep_mask(z, far_ratio)[::stride, ::stride]
    xyz = backproject(z, intr, stride)[keep]
    colours = rgb[::stride, ::stride][keep]
    return xyz, colours


def ply_bytes(xyz: np.ndarray, colours: np.ndarray, comments: Sequence[str] = ()) -> bytes:
    """A binary little-endian PLY: one vertex element, xyz float32 and red/green/blue uint8."""
    if xyz.ndim != 2 or xyz.shape[1] != 3 or colours.shape != xyz.shape:
        raise ValueError(f"need N x 3 points and colours, got {xyz.shape} and {colours.shape}")
    vertices = np.empty(len(xyz), _PLY_DTYPE)
    for axis, name in enumerate(("x", "y", "z")):
        vertices[name] = xyz[:, axis]
    for channel, name in enumerate(("red", "green", "blue")):
        vertices[name] = colours[:, channel]
    lines = ["ply", "format binary_little_endian 1.0"]
    # A comment is one header line: a newline inside would end it and corrupt the header.
    lines += [f"comment {' '.join(c.split())}" for c in comments]
    lines += [f"element vertex {len(vertices)}"]
    lines += [f"property float {n}" for n in ("x", "y", "z")]
    lines += [f"property uchar {n}" for n in ("red", "green", "blue")]
    lines += ["end_header"]
    header = ("\n".join(lines) + "\n").encode("ascii", "replace")
    return header + vertices.tobytes()
