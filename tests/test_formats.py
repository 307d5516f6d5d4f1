"""Formats photos come in beyond JPEG/PNG/WebP/BMP/TIFF: each decoded under the same pixel cap
and EXIF orientation rules; what cannot be a photo is still refused, naming what is accepted."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from depthlite.errors import ImageTooLargeError, UnsupportedFormatError
from depthlite.imageio import SUPPORTED_FORMATS, load_image

RGB = np.random.default_rng(7).integers(0, 256, size=(24, 32, 3), dtype=np.uint8)
# Lossy formats get a smooth picture: noise says nothing about a codec's error.
SMOOTH = np.dstack([np.tile(np.linspace(0, 255, 32, dtype=np.uint8), (24, 1))] * 3)


def encoded(fmt: str, image: Image.Image | None = None, **params: object) -> bytes:
    if fmt == "HEIF":
        from pillow_heif import register_heif_opener

        register_heif_opener()
    out = io.BytesIO()
    (image or Image.fromarray(RGB)).save(out, fmt, **params)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["PPM", "TGA", "QOI"])
def test_lossless_formats_give_their_pixels(fmt: str) -> None:
    np.testing.assert_array_equal(load_image(encoded(fmt)), RGB)


def test_pgm_is_grey_as_rgb() -> None:
    grey = Image.fromarray(RGB[..., 0])
    out = load_image(encoded("PPM", grey))
    np.testing.assert_array_equal(out, np.dstack([RGB[..., 0]] * 3))


def test_gif_gives_its_first_frame() -> None:
    frames = [Image.fromarray(np.full((24, 32, 3), value, np.uint8)) for value in (0, 255)]
    data = encoded("GIF", frames[0], save_all=True, append_images=frames[1:])
    assert np.all(load_image(data) == 0)


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_heic_and_avif_decode_and_follow_exif_orientation(fmt: str) -> None:
    assert fmt in SUPPORTED_FORMATS
    image = Image.fromarray(SMOOTH)
    plain = load_image(encoded(fmt, image, quality=95))
    assert plain.shape == (24, 32, 3)
    assert np.abs(plain.astype(int) - SMOOTH).mean() < 8
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    rotated = load_image(encoded(fmt, image, quality=95, exif=exif.tobytes()))
    assert rotated.shape == (32, 24, 3)
    assert rotated[0, -1].mean() < rotated[-1, -1].mean()  # the dark left edge is now on top


@pytest.mark.parametrize("fmt", ["GIF", "HEIF", "QOI"])
def test_new_formats_respect_the_pixel_cap(fmt: str) -> None:
    with pytest.raises(ImageTooLargeError):
        load_image(encoded(fmt), max_pixels=100)


def test_16bit_cmyk_tiff_is_read_not_called_corrupt() -> None:
    """OpenCV cannot read it (it was refused as corrupt); PIL converts CMYK to RGB."""
    import tifffile  # dev extra; a missing one must fail, not skip

    cmyk = np.zeros((24, 32, 4), np.uint16)
    cmyk[..., 1] = 65535  # full magenta
    out = io.BytesIO()
    tifffile.imwrite(out, cmyk, photometric="separated")
    rgb = load_image(out.getvalue())
    assert rgb.shape == (24, 32, 3)
    assert tuple(rgb[0, 0]) == (255, 0, 255)


def test_what_cannot_be_a_photo_is_refused_with_the_list() -> None:
    with pytest.raises(UnsupportedFormatError, match="ICO images are not supported") as info:
        load_image(encoded("ICO"))
    for fmt in ("JPEG", "HEIF", "AVIF", "GIF", "QOI", "TGA", "PPM"):
        assert fmt in str(info.value)
