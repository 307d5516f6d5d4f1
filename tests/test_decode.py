"""Tests of depthlite.imageio.decode: every source kind, format, bit depth and failure."""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFile

from depthlite.errors import (
    ImageDecodeError,
    ImageTooLargeError,
    InputError,
    InputNotFoundError,
    InvalidOptionError,
    UnsupportedFormatError,
)
from depthlite.imageio.decode import SUPPORTED_FORMATS, load_image
from depthlite.imageio.encode import encode_jpeg, encode_png, to_uint8

EXIF_ORIENTATION = 0x0112


def smooth_rgb(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    """A smooth-ish RGB image, so JPEG artefacts stay small and orientation is visible."""
    rng = np.random.default_rng(seed)
    noise = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    return cv2.GaussianBlur(noise, (5, 5), 0)


def rgb16(h: int = 6, w: int = 9, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 65536, (h, w, 3), dtype=np.uint16)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(arr: np.ndarray, colour_type: int, exif: bytes | None = None) -> bytes:
    """A minimal PNG built by hand: 16-bit colour and eXIf chunks PIL cannot write itself."""
    h, w = arr.shape[:2]
    depth = 16 if arr.dtype == np.uint16 else 8
    row_dtype = ">u2" if depth == 16 else "u1"
    raw = b"".join(b"\x00" + arr[y].astype(row_dtype).tobytes() for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour_type, 0, 0, 0)
    chunks = chunk(b"IHDR", ihdr)
    if exif is not None:
        chunks += chunk(b"eXIf", exif)
    chunks += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    return PNG_SIGNATURE + chunks


def exif_with_orientation(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    return exif


def pil_bytes(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


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


# --- errors ---------------------------------------------------------------------------------


def test_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jpg"
    with pytest.raises(InputNotFoundError, match="no such file") as info:
        load_image(missing)
    assert info.value.source == str(missing)
    assert info.value.status == 404


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="directory") as info:
        load_image(tmp_path)
    assert type(info.value) is InputError


def test_empty_bytes_and_file(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFormatError) as info:
        load_image(b"")
    assert info.value.source == "<bytes>"
    assert all(fmt in str(info.value) for fmt in SUPPORTED_FORMATS)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(UnsupportedFormatError):
        load_image(empty)


def test_not_an_image() -> None:
    with pytest.raises(UnsupportedFormatError, match="not a recognised image") as info:
        load_image(b"hello, this is plain text and not an image at all", source="upload.txt")
    assert info.value.source == "upload.txt"
    assert "PNG" in str(info.value)
    assert info.value.status == 415


def jpeg_data() -> bytes:
    ok, buf = cv2.imencode(".jpg", smooth_rgb())
    assert ok
    return buf.tobytes()


def png_data() -> bytes:
    return encode_png(smooth_rgb())


def corrupt(data: bytes, marker: bytes, offset: int) -> bytes:
    out = bytearray(data)
    out[data.index(marker) + offset] ^= 0xFF
    return bytes(out)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: jpeg_data()[: len(jpeg_data()) // 2], id="jpeg-cut-in-half"),
        pytest.param(lambda: jpeg_data()[:-2], id="jpeg-without-eoi"),
        pytest.param(lambda: jpeg_data()[:200], id="jpeg-header-only"),
        pytest.param(lambda: corrupt(png_data(), b"IDAT", 10), id="png-broken-idat"),
        pytest.param(lambda: corrupt(png_data(), b"IHDR", 6), id="png-broken-ihdr"),
        pytest.param(lambda: png_data()[: len(png_data()) // 2], id="png-truncated"),
        pytest.param(lambda: png_bytes(rgb16(), 2)[:80], id="png16-truncated"),
    ],
)
def test_corrupt_images(make: object) -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    with pytest.raises(ImageDecodeError) as info:
        load_image(make())  # type: ignore[operator]
    assert info.value.status == 422


def test_truncated_jpeg_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "cut.jpg"
    path.write_bytes(jpeg_data()[:-300])
    with pytest.raises(ImageDecodeError) as info:
        load_image(path)
    assert info.value.source == str(path)


def test_too_many_pixels_is_checked_from_the_header() -> None:
    with pytest.raises(ImageTooLargeError) as info:
        load_image(png_data(), max_pixels=1000)
    message = str(info.value)
    assert "64 x 48 = 3072 pixels" in message
    assert "limit of 1000 pixels" in message
    assert "--max-pixels" in message
    assert info.value.status == 413
    assert load_image(png_data(), max_pixels=3072).shape == (48, 64, 3)


def test_pixel_cap_applies_to_arrays() -> None:
    with pytest.raises(ImageTooLargeError):
        load_image(smooth_rgb(), max_pixels=100)


def bomb_header(width: int, height: int) -> bytes:
    """A PNG whose header claims a huge image; the pixel data is absent."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return PNG_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [10_000, 20_000])
def test_bomb_headers_fail_fast_without_warnings(side: int) -> None:
    """10000^2 trips PIL's warning, 20000^2 its error; both become ImageTooLargeError."""
    data = bomb_header(side, side)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageTooLargeError, match=f"{side * side} pixels"):
            load_image(data)


def test_pil_bomb_error_is_converted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageTooLargeError, match="3072 pixels, above the limit of 500"):
        load_image(png_data(), max_pixels=500)


def test_cap_above_pil_limit_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_image(png_data(), max_pixels=10_000).shape == (48, 64, 3)
    assert Image.MAX_IMAGE_PIXELS == 1000


@pytest.mark.parametrize("bad", [0, -5, 1.5, True])
def test_bad_max_pixels(bad: object) -> None:
    with pytest.raises(InvalidOptionError):
        load_image(png_data(), max_pixels=bad)  # type: ignore[arg-type]


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
