"""Point clouds and normals of synthetic scenes with known geometry, read back with plyfile."""

from __future__ import annotations

import io

import cv2
import numpy as np
import plyfile
import pytest

from depthlite.geometry.calibration import KnownPoint, fit_calibration
from depthlite.geometry.intrinsics import CameraSpec, resolve_intrinsics
from depthlite.geometry.normals import normals_rgb, surface_normals
from depthlite.geometry.pointcloud import FAR_RATIO, backproject, keep_mask, scene_depth
from depthlite.imageio import DepthInfo, OutputRequest, encode_outputs

H, W = 30, 40
FOCAL = 50.0
INTR = resolve_intrinsics(W, H, CameraSpec(focal_px=FOCAL))
RGB = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
U = np.arange(W, dtype=np.float64)[None, :] - INTR.cx
V = np.arange(H, dtype=np.float64)[:, None] - INTR.cy


def read_ply(data: bytes) -> np.ndarray:
    ply = plyfile.PlyData.read(io.BytesIO(data))
    assert ply.header.count("\n") > 5 and not ply.text  # binary
    assert ply.byte_order == "<"
    return ply["vertex"].data


def metric_ply(depth: np.ndarray, **options: object) -> bytes:
    info = DepthInfo(kind="metric_depth", unit="m", model="test")
    camera = CameraSpec(focal_px=FOCAL)
    return encode_outputs(depth, RGB, ["ply"], info=info, camera=camera, **options)["ply"]


def test_a_fronto_parallel_plane_lands_at_its_depth_with_the_right_xy() -> None:
    depth = np.full((H, W), 2.0, np.float32)
    data = metric_ply(depth)
    vertices = read_ply(data)
    assert len(vertices) == H * W
    header = data[: data.index(b"end_header")].decode()
    assert "comment units: metres" in header and "y up, z towards the camera" in header
    assert "fx=50 " in header
    x = vertices["x"].reshape(H, W)
    y = vertices["y"].reshape(H, W)
    z = vertices["z"].reshape(H, W)
    np.testing.assert_allclose(z, -2.0)
    np.testing.assert_allclose(x, np.broadcast_to(U * 2.0 / FOCAL, (H, W)), atol=1e-6)
    np.testing.assert_allclose(y, np.broadcast_to(-V * 2.0 / FOCAL, (H, W)), atol=1e-6)
    colours = np.stack([vertices[c] for c in ("red", "green", "blue")], axis=1)
    np.testing.assert_array_equal(colours.reshape(H, W, 3), RGB)
    props = [p.name for p in plyfile.PlyData.read(io.BytesIO(data))["vertex"].properties]
    assert props == ["x", "y", "z", "red", "green", "blue"]


def test_stride_thins_rows_and_columns() -> None:
    depth = np.full((H, W), 3.0, np.float32)
    vertices = read_ply(metric_ply(depth, stride=3))
    assert len(vertices) == len(range(0, H, 3)) * len(range(0, W, 3))
    # The kept pixels keep their own coordinates: the top left one is pixel (0, 0).
    assert vertices["x"][0] == pytest.approx(-INTR.cx * 3.0 / FOCAL)
    assert vertices["x"][1] == pytest.approx((3 - INTR.cx) * 3.0 / FOCAL)


def test_invalid_and_sky_far_points_are_dropped() -> None:
    depth = np.full((H, W), 2.0, np.float32)
    depth[0, :5] = np.nan
    depth[1, :4] = -1.0
    depth[2, :3] = 0.0
    depth[3, :2] = 2.0 * FAR_RATIO * 1.5  # sky: far beyond FAR_RATIO x the near depth
    depth[4, 0] = 2.0 * FAR_RATIO * 0.99  # far, but within the rule
    vertices = read_ply(metric_ply(depth))
    assert len(vertices) == H * W - (5 + 4 + 3 + 2)
    assert vertices["z"].min() == pytest.approx(-2.0 * FAR_RATIO * 0.99)
    assert np.isfinite(vertices["x"]).all()


def test_a_calibrated_relative_map_gives_metres() -> None:
    metres = np.full((H, W), 4.0)
    metres[:, W // 2 :] = 8.0
    output = ((1 / metres - 0.05) / 0.02).astype(np.float32)  # 1/d = 0.02 v + 0.05
    points = [KnownPoint(0, 0, 4.0), KnownPoint(W - 1, 0, 8.0)]
    cal = fit_calibration(output, "relative_inverse_depth", points)
    info = DepthInfo(kind="relative_inverse_depth", model="m", calibration=cal)
    out = encode_outputs(
        output, RGB, ["ply", "metric"], info=info, camera=CameraSpec(FOCAL * 0 + 60)
    )
    vertices = read_ply(out["ply"])
    np.testing.assert_allclose(np.sort(np.unique(np.round(-vertices["z"], 4))), [4.0, 8.0])
    assert b"calibration: 1/d = s*v + t" in out["ply"][:2000]
    np.testing.assert_allclose(np.load(io.BytesIO(out["metric"])), metres, rtol=1e-5)


def test_relative_units_without_calibration_are_stated() -> None:
    output = np.linspace(1, 10, H * W, dtype=np.float32).reshape(H, W)
    z, unit = scene_depth(output, "relative_disparity")
    assert unit == "relative"
    assert np.nanpercentile(z, 1) == pytest.approx(1.0, rel=0.02)  # nearest 1 % at about 1
    info = DepthInfo(kind="relative_disparity", model="m")
    data = encode_outputs(output, RGB, ["ply"], info=info, camera=CameraSpec(fov=60.0))["ply"]
    assert b"comment units: relative units" in data
    assert len(read_ply(data)) == H * W


def test_keep_mask_of_an_empty_map() -> None:
    assert not keep_mask(np.full((3, 3), np.nan, np.float32)).any()


# ---------------------------------------------------------------- normals


def test_a_wall_facing_the_camera_is_plus_z() -> None:
    normals = surface_normals(np.full((H, W), 5.0, np.float32), INTR)
    np.testing.assert_allclose(normals.reshape(-1, 3), [[0, 0, 1]] * (H * W), atol=1e-6)
    np.testing.assert_array_equal(normals_rgb(normals)[0, 0], [128, 128, 255])


@pytest.mark.parametrize("slope", [0.5, -0.8])
def test_a_plane_receding_to_one_side_leans_towards_it(slope: float) -> None:
    # depth = d0 + slope * X: a plane seen from the origin; its normal is (slope, 0, 1)/|.|.
    depth = (3.0 / (1 - slope * U / FOCAL)) * np.ones((H, 1))
    normals = surface_normals(depth.astype(np.float32), INTR)
    expected = np.array([slope, 0.0, 1.0]) / np.hypot(slope, 1.0)
    np.testing.assert_allclose(normals.reshape(-1, 3), np.tile(expected, (H * W, 1)), atol=1e-5)
    rgb = normals_rgb(normals)
    assert (rgb[..., 0] > 128).all() == (slope > 0)  # red: +X, to the right


def test_a_floor_below_the_camera_points_up() -> None:
    # A horizontal floor 1.5 m below the camera: y = -1.5, seen in the lower half of the image.
    rows = V[V > 0.5]
    depth = np.repeat((1.5 * FOCAL / rows)[:, None], W, axis=1)
    floor_intr = resolve_intrinsics(
        W, len(rows), CameraSpec(focal_px=FOCAL, principal=(INTR.cx, INTR.cy - (H - len(rows))))
    )
    normals = surface_normals(depth.astype(np.float32), floor_intr)
    np.testing.assert_allclose(
        normals.reshape(-1, 3), [[0, 1, 0]] * normals[..., 0].size, atol=1e-5
    )


def test_normals_outputs_and_missing_depth() -> None:
    depth = np.full((H, W), 2.0, np.float32)
    depth[10, 10] = np.nan
    info = DepthInfo(kind="metric_depth", unit="m")
    out = encode_outputs(depth, None, ["normals", "normals_npy"], info=info,
                         camera=CameraSpec(focal_px=FOCAL))  # fmt: skip
    arr = np.load(io.BytesIO(out["normals_npy"]))
    assert arr.shape == (H, W, 3) and arr.dtype == np.float32
    assert np.isnan(arr[10, 10]).all() and np.isnan(arr[9, 10]).all()  # its neighbours too
    np.testing.assert_allclose(arr[0, 0], [0, 0, 1], atol=1e-6)
    png = cv2.imdecode(np.frombuffer(out["normals"], np.uint8), cv2.IMREAD_UNCHANGED)[..., ::-1]
    assert png.dtype == np.uint8 and png.shape == (H, W, 3)
    np.testing.assert_array_equal(png[0, 0], [128, 128, 255])
    np.testing.assert_array_equal(png[10, 10], [0, 0, 0])


def test_every_normal_of_a_smooth_surface_faces_the_camera() -> None:
    # n . (camera - P) > 0 for any surface seen from the camera, whatever its tilt.
    rng = np.random.default_rng(3)
    bumps = sum(
        rng.uniform(0.1, 0.4) * np.sin(U / rng.uniform(3, 9) + rng.uniform(0, 6))
        * np.cos(V / rng.uniform(3, 9))
        for _ in range(4)
    )  # fmt: skip
    depth = (3.0 + bumps).astype(np.float32)
    normals = surface_normals(depth, INTR)
    points = backproject(depth, INTR)
    facing = np.einsum("hwc,hwc->hw", normals, -points)
    assert (facing > 0).all()
    assert (normals[..., 2] < 0.999).any()  # the surface is really tilted in places


def test_only_3d_outputs_without_a_focal_length_need_the_exif() -> None:
    assert not OutputRequest(formats=("color", "png16", "npy", "metric")).needs_exif
    assert OutputRequest(formats=("ply",)).needs_exif
    assert OutputRequest(formats=("normals_npy",)).needs_exif
    assert not OutputRequest(formats=("ply",), camera=CameraSpec(fov=50.0)).needs_exif
