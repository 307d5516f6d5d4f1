"""``fast_preprocess``: reduced JPEG decoding and a float32 resize, opt-in, outputs at full size."""

from __future__ import annotations

import io
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import test_image
from depthlite import DepthEstimator
from depthlite.errors import ImageDecodeError, ImageTooLargeError
from depthlite.imageio import load_image
from depthlite.imageio.reduced import load_reduced
from depthlite.metrics import agreement


def _photo(height: int, width: int) -> np.ndarray:
    """Smooth gradients with some texture: JPEG-friendly, and orientation is visible."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([xx / width, yy / height, 0.5 + 0.5 * np.sin(xx / 37 + yy / 23)], axis=-1)
    return (base * 255).astype(np.uint8)


def _jpeg(rgb: np.ndarray, orientation: int = 1) -> bytes:
    out = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(rgb).save(out, "JPEG", quality=92, exif=exif.tobytes())
    return out.getvalue()


def _to_network(height: int, width: int) -> tuple[int, int]:
    return 128, 256  # what MiDaS small's keep_aspect gives a 1080p landscape photo


def test_a_large_jpeg_is_decoded_at_the_largest_factor_that_covers_the_network_input() -> None:
    data = _jpeg(_photo(1080, 1920))
    rgb, size = load_reduced(data, _to_network)
    assert size == (1080, 1920)
    assert rgb.shape == (270, 480, 3) and rgb.dtype == np.uint8  # 1/8 would be 240 wide < 256
    # The same picture as a full decode averaged down by 4 (within JPEG and filter noise).
    full = load_image(data)
    area = cv2.resize(full, (480, 270), interpolation=cv2.INTER_AREA)
    assert np.abs(rgb.astype(int) - area).mean() < 2.0


def test_a_path_gives_the_same_pixels_as_its_bytes(tmp_path: Path) -> None:
    data = _jpeg(_photo(600, 800))
    path = tmp_path / "p.jpg"
    path.write_bytes(data)
    from_path, size = load_reduced(path, lambda h, w: (192, 256))
    from_bytes, _ = load_reduced(data, lambda h, w: (192, 256))
    assert size == (600, 800) and from_path.shape == (300, 400, 3)
    assert np.array_equal(from_path, from_bytes)


@pytest.mark.parametrize("orientation", [6, 8, 3])
def test_exif_orientation_is_applied_and_the_full_size_is_the_oriented_one(
    orientation: int,
) -> None:
    data = _jpeg(_photo(600, 1000), orientation)
    rgb, size = load_reduced(data, lambda h, w: (128, 128))
    full = load_image(data)
    assert size == full.shape[:2]
    expected = (math.ceil(full.shape[0] / 4), math.ceil(full.shape[1] / 4))
    assert rgb.shape[:2] == expected
    area = cv2.resize(full, expected[::-1], interpolation=cv2.INTER_AREA)
    assert np.abs(rgb.astype(int) - area).mean() < 2.0


def test_small_images_and_other_formats_are_decoded_in_full() -> None:
    small = _jpeg(_photo(200, 300))
    rgb, size = load_reduced(small, lambda h, w: (192, 256))  # 1/2 would be 150 wide
    assert size == (200, 300) and np.array_equal(rgb, load_image(small))
    png = io.BytesIO()
    Image.fromarray(_photo(1000, 1000)).save(png, "PNG")
    rgb, size = load_reduced(png.getvalue(), lambda h, w: (128, 128))
    assert size == (1000, 1000) and np.array_equal(rgb, _photo(1000, 1000))
    array = _photo(800, 800)
    rgb, size = load_reduced(array, lambda h, w: (128, 128))
    assert size == (800, 800) and np.array_equal(rgb, array)


def test_limits_and_damage_are_reported_as_for_a_full_decode() -> None:
    data = _jpeg(_photo(1080, 1920))
    with pytest.raises(ImageTooLargeError, match="--max-pixels"):
        load_reduced(data, _to_network, max_pixels=1_000_000)
    with pytest.raises(ImageDecodeError):
        load_reduced(data[: len(data) // 2], _to_network, source="cut.jpg")


def test_the_exact_path_is_the_default() -> None:
    assert DepthEstimator().fast_preprocess is False

    class Options:
        fast_preprocess = True

    assert DepthEstimator.from_options(Options()).fast_preprocess is True


def test_fast_preprocess_gives_full_size_outputs_close_to_the_exact_ones(
    converted_onnx: Path,
) -> None:
    exact = DepthEstimator(weights=converted_onnx, threads=1, progress=False)
    fast = DepthEstimator(weights=converted_onnx, threads=1, progress=False, fast_preprocess=True)
    data = _jpeg(_photo(960, 1280))
    a, b = exact.predict(data), fast.predict(data)
    assert b.depth.shape == a.depth.shape == (960, 1280)
    assert b.image.shape == a.image.shape and b.image.dtype == np.uint8
    assert b.network_output.shape == a.network_output.shape == (192, 256)
    assert not np.array_equal(a.depth, b.depth)  # it is another computation
    # Synthetic weights amplify small input changes; a loose bound still catches a wrong
    # orientation, size or scaling (those give AbsRel of order 1).
    assert agreement(b.depth, a.depth).absrel < 0.2
    assert set(b.encode(["color", "side"])) == {"color", "side"}


def test_fast_preprocess_on_an_array_only_changes_the_resize(converted_onnx: Path) -> None:
    fast = DepthEstimator(weights=converted_onnx, threads=1, progress=False, fast_preprocess=True)
    image = test_image(3, 480, 640)
    result = fast.predict(image)
    assert result.depth.shape == (480, 640) and result.image is image


def test_the_cli_flag_reaches_the_estimator(converted_onnx: Path, tmp_path: Path) -> None:
    import argparse

    from depthlite.cli.common import add_model_options, build_estimator
    from depthlite.cli.main import main

    parser = argparse.ArgumentParser()
    add_model_options(parser)
    assert build_estimator(parser.parse_args([]), progress=False).fast_preprocess is False
    args = parser.parse_args(["--fast-preprocess"])
    assert build_estimator(args, progress=False).fast_preprocess is True
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(_jpeg(_photo(720, 1280)))
    out = tmp_path / "out"
    argv = ["predict", str(photo), "--weights", str(converted_onnx), "--fast-preprocess"]
    assert main([*argv, "-o", str(out), "-q", "-f", "npy"]) == 0
    assert np.load(out / "photo.npy").shape == (720, 1280)


def test_the_server_setting_defaults_to_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    from depthlite.server.settings import Settings

    assert Settings().fast_preprocess is False
    monkeypatch.setenv("DEPTHLITE_FAST_PREPROCESS", "1")
    assert Settings().fast_preprocess is True
