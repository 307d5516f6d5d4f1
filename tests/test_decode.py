"""Tests of depthlite.imageio.decode: every source kind, format and bit depth.

Bad input: test_decode_errors.py.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from depthlite.errors import (
    InputError,
    InvalidOptionError,
    UnsupportedFormatError,
)
from depthlite.imageio.decode import load_image
from depthlite.imageio.encode import encode_jpeg, encode_png, to_uint8
from imagekit import (
    exif_with_orientation,
    pil_bytes,
    png_bytes,
    rgb16,
    smooth_rgb,
)

# --- parity with cv2.imread (the official MiDaS reader) -------------------------------------


def cv2_writer(img: np.ndarray, params: list[int]) -> object:
    return lambda path: cv2.imwrite(str(path), img, params)


@pytest.mark.parametrize(
    ("name", "write"),
    [
        ("rgb.png", cv2_writer(smooth_rgb(), [])),
        ("grey.png", cv2_writer(smooth_rgb()[..., 0], [])),
        ("baseline.jpg", cv2_writer(smooth_rgb(), [cv2.IMWRITE_JPEG_QUALITY, 90])),
        ("progressive.jpg", cv2_writer(smooth_rgb(), [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])),
        ("grey.jpg", cv2_writer(smooth_rgb()[..., 0], [cv2.IMWRITE_JPEG_QUALITY, 90])),
        ("pil.jpg", lambda path: Image.fromarray(smooth_rgb()).save(path, subsampling=2)),
    ],
)
def test_8bit_pixels_equal_cv2_imread(tmp_path: Path, name: str, write: object) -> None:
    """The official MiDaS reads with cv2.imread; our PIL decode must give the same pixels."""
    path = tmp_path / name
    write(path)  # type: ignore[operator]
    out = load_image(path)
    assert out.dtype == np.uint8
    assert out.flags.c_contiguous
    assert out.flags.writeable
    np.testing.assert_array_equal(out, cv2.imread(str(path))[..., ::-1])


def test_bytes_and_path_agree(tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    cv2.imwrite(str(path), smooth_rgb())
    np.testing.assert_array_equal(load_image(path.read_bytes()), load_image(str(path)))


# --- formats and modes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "params"), [("WEBP", {"lossless": True}), ("BMP", {}), ("TIFF", {})]
)
def test_lossless_formats_roundtrip(fmt: str, params: dict[str, object]) -> None:
    img = smooth_rgb()
    out = load_image(pil_bytes(Image.fromarray(img), fmt, **params))
    np.testing.assert_array_equal(out, img)


def cv2_encoded(ext: str, img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


GREY16 = rgb16()[..., 0]
GA16 = rgb16()[..., :2]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(pil_bytes(Image.fromarray(GREY16), "PNG"), GREY16, id="grey-png"),
        pytest.param(pil_bytes(Image.fromarray(GREY16), "TIFF"), GREY16, id="grey-tiff"),
        pytest.param(cv2_encoded(".png", rgb16()[..., ::-1]), rgb16(), id="rgb-png"),
        pytest.param(cv2_encoded(".tif", rgb16()[..., ::-1]), rgb16(), id="rgb-tiff"),
        pytest.param(
            png_bytes(np.dstack([rgb16(), GREY16 * 0]), colour_type=6), rgb16(), id="rgba-png"
        ),
        pytest.param(png_bytes(GA16, colour_type=4), GA16[..., 0], id="grey-alpha-png"),
    ],
)
def test_16bit_inputs_keep_16_bits(data: bytes, expected: np.ndarray) -> None:
    out = load_image(data)
    assert out.dtype == np.uint16
    assert out.shape == (*expected.shape[:2], 3)
    if expected.ndim == 2:
        expected = np.repeat(expected[:, :, None], 3, axis=2)
    np.testing.assert_array_equal(out, expected)


def test_rgba_drops_alpha_without_compositing() -> None:
    img = smooth_rgb()
    rgba = np.dstack([img, np.zeros(img.shape[:2], np.uint8)])  # fully transparent
    out = load_image(pil_bytes(Image.fromarray(rgba), "PNG"))
    np.testing.assert_array_equal(out, img)


def test_grey_alpha_png() -> None:
    la = np.dstack([smooth_rgb()[..., 0], np.full((48, 64), 7, np.uint8)])
    out = load_image(pil_bytes(Image.fromarray(la, "LA"), "PNG"))
    np.testing.assert_array_equal(out, np.repeat(la[..., :1], 3, axis=2))


def test_palette_png_with_transparency() -> None:
    img = Image.fromarray(smooth_rgb()).quantize(colors=16)
    data = pil_bytes(img, "PNG", transparency=0)
    expected = np.asarray(img.convert("RGB"))
    np.testing.assert_array_equal(load_image(data), expected)
    np.testing.assert_array_equal(
        load_image(data), cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    )


def test_bilevel_png() -> None:
    bits = smooth_rgb()[..., 0] > 128
    out = load_image(pil_bytes(Image.fromarray(bits), "PNG"))
    np.testing.assert_array_equal(out[..., 0], np.where(bits, 255, 0))


def test_mpo_reads_first_frame() -> None:
    first, second = Image.fromarray(smooth_rgb(seed=1)), Image.fromarray(smooth_rgb(seed=2))
    data = pil_bytes(first, "MPO", save_all=True, append_images=[second])
    expected = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    np.testing.assert_array_equal(load_image(data), expected)


def test_float_tiff_is_unsupported() -> None:
    data = pil_bytes(Image.fromarray(np.ones((4, 4), np.float32)), "TIFF")
    with pytest.raises(UnsupportedFormatError, match="floating-point"):
        load_image(data)


# --- EXIF orientation -----------------------------------------------------------------------


def test_jpeg_orientation_6_is_rotated_clockwise() -> None:
    img = np.zeros((40, 60, 3), np.uint8)
    img[:20, :30] = (255, 0, 0)  # red top-left quadrant
    data = pil_bytes(Image.fromarray(img), "JPEG", exif=exif_with_orientation(6), quality=95)
    out = load_image(data)
    assert out.shape == (60, 40, 3)
    # 90 degrees clockwise: the top-left quadrant moves to the top-right.
    assert out[:30, 20:, 0].mean() > 200
    assert out[:30, :20, 0].mean() < 50
    np.testing.assert_array_equal(
        out, cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    )


@pytest.mark.parametrize("orientation", range(1, 9))
def test_all_orientations_agree_between_pil_and_16bit_paths(orientation: int) -> None:
    """The 8-bit path uses PIL's exif_transpose, 16-bit colour our numpy table: same result."""
    base = smooth_rgb(5, 8)
    exif = exif_with_orientation(orientation)
    out8 = load_image(pil_bytes(Image.fromarray(base), "PNG", exif=exif))
    deep = png_bytes(base.astype(np.uint16) * 257, colour_type=2, exif=exif.tobytes()[6:])
    out16 = load_image(deep)
    assert out16.dtype == np.uint16
    np.testing.assert_array_equal(out16 // 257, out8)
    if orientation >= 5:
        assert out8.shape == (8, 5, 3)


# --- arrays and PIL images ------------------------------------------------------------------


def test_contiguous_rgb_array_is_used_as_is() -> None:
    img = smooth_rgb()
    assert load_image(img) is img


def test_uint16_array_kept() -> None:
    img = rgb16()
    np.testing.assert_array_equal(load_image(img), img)


def test_grey_and_rgba_arrays() -> None:
    img = smooth_rgb()
    np.testing.assert_array_equal(load_image(img[..., 0]), np.repeat(img[..., :1], 3, axis=2))
    rgba = np.dstack([img, np.zeros(img.shape[:2], np.uint8)])
    out = load_image(rgba)
    np.testing.assert_array_equal(out, img)
    assert out.flags.c_contiguous


@pytest.mark.parametrize(
    ("arr", "match"),
    [
        (np.zeros((4, 4, 3), np.float32), "dtype float32"),
        (np.zeros((4, 4, 3), np.int32), "dtype int32"),
        (np.zeros((4, 4, 2), np.uint8), r"shape \(4, 4, 2\)"),
        (np.zeros((1, 4, 4, 3), np.uint8), "shape"),
        (np.zeros((0, 4, 3), np.uint8), "empty"),
    ],
)
def test_bad_arrays(arr: np.ndarray, match: str) -> None:
    with pytest.raises(InputError, match=match) as info:
        load_image(arr)
    assert info.value.source == "<array>"
    if "dtype" in match or "shape" in match:
        assert "uint8 or uint16" in str(info.value)


def test_pil_image_source() -> None:
    img = smooth_rgb()
    rgba = Image.fromarray(np.dstack([img, np.zeros(img.shape[:2], np.uint8)]))
    np.testing.assert_array_equal(load_image(rgba), img)


def test_unknown_source_type() -> None:
    with pytest.raises(TypeError):
        load_image(12345)  # type: ignore[arg-type]


# --- encoders -------------------------------------------------------------------------------


def test_encode_png_roundtrip_rgb_and_16bit() -> None:
    img = smooth_rgb()
    np.testing.assert_array_equal(load_image(encode_png(img)), img)
    grey16 = rgb16()[..., 0]
    decoded = cv2.imdecode(np.frombuffer(encode_png(grey16), np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(decoded, grey16)
    np.testing.assert_array_equal(load_image(encode_png(rgb16())), rgb16())


def test_encode_png_grey8_and_single_channel() -> None:
    grey = smooth_rgb()[..., 1]
    for img in (grey, grey[..., None], grey[:, ::2]):
        decoded = cv2.imdecode(np.frombuffer(encode_png(img), np.uint8), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(decoded, img.reshape(decoded.shape))
    with pytest.raises(ValueError, match="HxW or HxWx3"):
        encode_png(np.zeros((4, 4, 4), np.uint8))


def test_encode_jpeg() -> None:
    img = np.empty((16, 24, 3), np.uint8)
    img[:] = (200, 30, 60)  # a solid colour shows a channel swap, unlike JPEG noise
    out = load_image(encode_jpeg(img, quality=95))
    assert out.shape == img.shape
    assert np.abs(out.astype(int) - img).max() <= 2
    assert load_image(encode_jpeg(rgb16())).dtype == np.uint8
    with pytest.raises(InvalidOptionError):
        encode_jpeg(img, quality=101)
    with pytest.raises(ValueError, match="uint8 or uint16"):
        encode_png(img.astype(np.float32))


def test_to_uint8() -> None:
    arr = np.array([0, 128, 257, 65535], np.uint16)
    np.testing.assert_array_equal(to_uint8(arr), [0, 0, 1, 255])
    assert to_uint8(smooth_rgb()).dtype == np.uint8
