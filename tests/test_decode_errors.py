"""Tests of depthlite.imageio.decode on bad input: missing, empty, corrupt, truncated, too large."""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import cv2
import pytest
from PIL import Image, ImageFile

from depthlite import errors
from depthlite.imageio.decode import SUPPORTED_FORMATS, load_image
from depthlite.imageio.encode import encode_png
from imagekit import PNG_SIGNATURE, chunk, png_bytes, rgb16, smooth_rgb


def test_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jpg"
    with pytest.raises(errors.InputNotFoundError, match="no such file") as info:
        load_image(missing)
    assert info.value.source == str(missing)
    assert info.value.status == 404


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(errors.InputError, match="directory") as info:
        load_image(tmp_path)
    assert type(info.value) is errors.InputError


def test_empty_bytes_and_file(tmp_path: Path) -> None:
    with pytest.raises(errors.UnsupportedFormatError) as info:
        load_image(b"")
    assert info.value.source == "<bytes>"
    assert all(fmt in str(info.value) for fmt in SUPPORTED_FORMATS)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(errors.UnsupportedFormatError):
        load_image(empty)


def test_not_an_image() -> None:
    with pytest.raises(errors.UnsupportedFormatError, match="not a recognised image") as info:
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
    with pytest.raises(errors.ImageDecodeError) as info:
        load_image(make())  # type: ignore[operator]
    assert info.value.status == 422


def test_truncated_jpeg_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "cut.jpg"
    path.write_bytes(jpeg_data()[:-300])
    with pytest.raises(errors.ImageDecodeError) as info:
        load_image(path)
    assert info.value.source == str(path)


def test_too_many_pixels_is_checked_from_the_header() -> None:
    with pytest.raises(errors.ImageTooLargeError) as info:
        load_image(png_data(), max_pixels=1000)
    message = str(info.value)
    assert "64 x 48 = 3072 pixels" in message
    assert "limit of 1000 pixels" in message
    assert "--max-pixels" in message
    assert info.value.status == 413
    assert load_image(png_data(), max_pixels=3072).shape == (48, 64, 3)


def test_pixel_cap_applies_to_arrays() -> None:
    with pytest.raises(errors.ImageTooLargeError):
        load_image(smooth_rgb(), max_pixels=100)


def bomb_header(width: int, height: int) -> bytes:
    """A PNG whose header claims a huge image; the pixel data is absent."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return PNG_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [10_000, 20_000])
def test_bomb_headers_fail_fast_without_warnings(side: int) -> None:
    """10000^2 trips PIL's warning, 20000^2 its error; both become errors.ImageTooLargeError."""
    data = bomb_header(side, side)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(errors.ImageTooLargeError, match=f"{side * side} pixels"):
            load_image(data)


def test_pil_bomb_error_is_converted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(errors.ImageTooLargeError, match="3072 pixels, above the limit of 500"):
        load_image(png_data(), max_pixels=500)


def test_cap_above_pil_limit_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_image(png_data(), max_pixels=10_000).shape == (48, 64, 3)
    assert Image.MAX_IMAGE_PIXELS == 1000


@pytest.mark.parametrize("bad", [0, -5, 1.5, True])
def test_bad_max_pixels(bad: object) -> None:
    with pytest.raises(errors.InvalidOptionError):
        load_image(png_data(), max_pixels=bad)  # type: ignore[arg-type]
