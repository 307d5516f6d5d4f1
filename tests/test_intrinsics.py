"""Camera intrinsics: flags, EXIF (35 mm equivalent, focal length + sensor), lying EXIF, default."""

from __future__ import annotations

import io
import logging
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from depthlite.errors import InvalidOptionError
from depthlite.geometry.intrinsics import (
    CameraSpec,
    ExifFocal,
    focal_from_fov,
    resolve_intrinsics,
)
from depthlite.imageio import load_image, read_exif_focal

W, H = 600, 400


def jpeg_with_exif(tags: dict[int, object], orientation: int = 1, size: tuple = (W, H)) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    sub = exif.get_ifd(0x8769)
    sub.update(tags)
    buf = io.BytesIO()
    Image.fromarray(np.zeros((size[1], size[0], 3), np.uint8)).save(buf, "JPEG", exif=exif)
    return buf.getvalue()


def test_fov_and_focal_px_flags() -> None:
    intr = resolve_intrinsics(W, H, CameraSpec(fov=90.0))
    assert intr.fx == intr.fy == pytest.approx(W / 2)  # tan(45 degrees) = 1
    assert (intr.cx, intr.cy) == ((W - 1) / 2, (H - 1) / 2)
    assert intr.fov_degrees == pytest.approx(90.0)
    assert resolve_intrinsics(W, H, CameraSpec(focal_px=123.0)).fx == 123.0
    given = resolve_intrinsics(W, H, CameraSpec(focal_px=500.0, principal=(10, 20)))
    assert (given.cx, given.cy, given.source) == (10.0, 20.0, "focal_px")


def test_flags_win_over_exif() -> None:
    exif = ExifFocal(focal_35mm=26.0)
    assert resolve_intrinsics(W, H, CameraSpec(fov=60.0), exif).source == "fov 60 degrees"


def test_35mm_equivalent_uses_the_diagonal() -> None:
    data = jpeg_with_exif({0xA405: 26})
    exif = read_exif_focal(data)
    assert exif is not None and exif.focal_35mm == 26.0
    intr = resolve_intrinsics(W, H, None, exif)
    assert intr.source == "EXIF FocalLengthIn35mmFilm"
    assert intr.fx == pytest.approx(26.0 * math.hypot(W, H) / math.hypot(36, 24))


def test_focal_length_with_the_sensor_density_scaled_to_a_resized_image() -> None:
    # 4.25 mm lens, 1000 pixels per cm on the sensor, shot at 4000 px wide, stored at 600.
    tags = {0x920A: IFDRational(425, 100), 0xA20E: IFDRational(1000, 1), 0xA210: 3,
            0xA002: 4000}  # fmt: skip
    exif = read_exif_focal(jpeg_with_exif(tags))
    intr = resolve_intrinsics(W, H, None, exif)
    assert intr.source == "EXIF FocalLength"
    assert intr.fx == pytest.approx(4.25 * 100 * W / 4000)


def test_a_rotated_photo_scales_with_the_sensor_width() -> None:
    tags = {0x920A: IFDRational(40, 1), 0xA20E: IFDRational(254, 1), 0xA210: 2, 0xA002: 800}
    data = jpeg_with_exif(tags, orientation=6, size=(400, 300))  # stored landscape
    rgb = load_image(data)
    assert rgb.shape[:2] == (400, 300)  # shown portrait
    exif = read_exif_focal(data)
    intr = resolve_intrinsics(rgb.shape[1], rgb.shape[0], None, exif)
    # 254 px/inch = 10 px/mm; sensor x (800 px) is the image's height (400) after rotation.
    assert intr.fx == pytest.approx(40 * 10 * 400 / 800)


@pytest.mark.parametrize(
    ("exif", "named"),
    [
        (ExifFocal(focal_35mm=0.0), "FocalLengthIn35mmFilm is 0"),
        (ExifFocal(focal_35mm=1.0), "FocalLengthIn35mmFilm 1 mm gives a 174 degree"),
        (ExifFocal(focal_35mm=90000.0), "FocalLengthIn35mmFilm 90000 mm gives a 0.0"),
        (ExifFocal(focal_mm=0.0, plane_x_resolution=1000.0, plane_unit=3), "FocalLength is 0"),
    ],
)
def test_exif_that_lies_warns_and_names_the_fallback(
    exif: ExifFocal, named: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "depthlite.geometry.intrinsics"):
        intr = resolve_intrinsics(W, H, None, exif, source="photo.jpg")
    assert intr.fx == pytest.approx(focal_from_fov(W, 60.0))
    assert intr.source == "default 60 degrees"
    (record,) = caplog.records
    assert named in record.message and "60 degree" in record.message
    assert record.message.startswith("photo.jpg: ") and "--fov" in record.message


def test_a_lying_35mm_value_falls_back_to_a_good_focal_length(
    caplog: pytest.LogCaptureFixture,
) -> None:
    exif = ExifFocal(focal_35mm=0.0, focal_mm=4.0, plane_x_resolution=100.0, plane_unit=4)
    with caplog.at_level(logging.WARNING, "depthlite.geometry.intrinsics"):
        intr = resolve_intrinsics(W, H, None, exif)
    assert intr.fx == pytest.approx(400.0) and intr.source == "EXIF FocalLength"
    assert "using EXIF FocalLength instead" in caplog.records[0].message


def test_no_exif_is_the_stated_default_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    assert read_exif_focal(jpeg_with_exif({})) is None
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "PNG")
    assert read_exif_focal(buf.getvalue()) is None
    assert read_exif_focal(b"not an image") is None
    with caplog.at_level(logging.WARNING, "depthlite.geometry.intrinsics"):
        intr = resolve_intrinsics(W, H)
    assert intr.fov_degrees == pytest.approx(60.0)
    assert "no focal length in EXIF" in caplog.text


def test_exif_from_a_path(tmp_path: Path) -> None:
    path = tmp_path / "p.jpg"
    path.write_bytes(jpeg_with_exif({0xA405: 50}))
    exif = read_exif_focal(path)
    assert exif is not None and exif.focal_35mm == 50.0


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"fov": 0.0}, r"\(0, 180\)"),
        ({"fov": 180.0}, r"\(0, 180\)"),
        ({"fov": float("nan")}, r"\(0, 180\)"),
        ({"focal_px": -5.0}, "> 0 pixels"),
        ({"fov": 60.0, "focal_px": 500.0}, "not both"),
        ({"principal": (float("inf"), 0.0)}, "finite"),
    ],
)
def test_bad_camera_options(spec: dict, message: str) -> None:
    with pytest.raises(InvalidOptionError, match=message):
        CameraSpec(**spec)


def test_principal_point_parsing() -> None:
    assert CameraSpec.parse_principal("640,360.5") == (640.0, 360.5)
    with pytest.raises(InvalidOptionError, match="X,Y"):
        CameraSpec.parse_principal("640")
