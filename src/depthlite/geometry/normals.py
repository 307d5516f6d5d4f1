"""Surface normals from a depth map: the cross product of the back-projected surface's tangents.

Normals are unit vectors in the frame of :mod:`depthlite.geometry.pointcloud` (+X right, +Y
up, +Z towards the camera), so a wall facing the camera is ``(0, 0, 1)``. The tangents are
central differences of the 3-D points along the image's rows and columns (one-sided at the
border); a pixel without depth, or next to one, has no normal (NaN). As a PNG they use the usual
encoding ``rgb = round((n + 1) / 2 * 255)``: facing the camera is (128, 128, 255); no normal
is (0, 0, 0).
"""

from __future__ import annotations

import numpy as np

from depthlite.geometry.intrinsics import Intrinsics
from depthlite.geometry.pointcloud import backproject

__all__ = ["normals_rgb", "surface_normals"]


def surface_normals(z: np.ndarray, intr: Intrinsics) -> np.ndarray:
    """(H, W, 3) float32 unit normals of the depth ``z`` (along the camera axis); NaN: none."""
    if z.ndim != 2:
        raise ValueError(f"depth must be an HxW map, got shape {z.shape}")
    if min(z.shape) < 2:  # no neighbour to take a difference with
        return np.full((*z.shape, 3), np.nan, np.float32)
    points = backproject(z, intr)
    along_rows = np.gradient(points, axis=0)  # down the image: towards -Y
    along_cols = np.gradient(points, axis=1)  # right: towards +X
    # down x right = +Z for a surface facing the camera: (0, -1, 0) x (1, 0, 0) = (0, 0, 1).
    normals = np.cross(along_rows, along_cols)
    with np.errstate(invalid="ignore", divide="ignore"):
        length = np.linalg.norm(normals, axis=2, keepdims=True)
        normals /= length
    # Central differences skip the pixel itself: one without depth must not get a normal.
    normals[~(np.isfinite(normals).all(axis=2) & np.isfinite(points[..., 2]))] = np.nan
    return normals.astype(np.float32, copy=False)


def normals_rgb(normals: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8: ``round((n + 1) / 2 * 255)`` per axis; pixels without a normal black."""
    with np.errstate(invalid="ignore"):
        levels = np.rint((normals + 1.0) * 127.5)
    valid = np.isfinite(levels).all(axis=2)
    out = np.zeros(normals.shape, np.uint8)
    out[valid] = np.clip(levels[valid], 0, 255).astype(np.uint8)
    return out
