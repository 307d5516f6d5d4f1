"""Geometry on depth maps: alignment, calibration to metres, intrinsics, point clouds, normals."""
