"""Decode any supported image source into an RGB array (encoding back: ``encode.py``).

The decoder is PIL-first: PIL reads the header lazily, so the pixel cap (the decompression-bomb
guard) is enforced before any pixel is decoded, and PIL's strict truncation checks turn damaged
files into :class:`~depthlite.errors.ImageDecodeError` instead of silently grey-padded images.

JPEG pixels come from PIL too. The official MiDaS reads images with ``cv2.imread``; with the
pinned wheels both libraries decode through libjpeg-turbo with the same defaults (accurate
integer IDCT, fancy upsampling), and the pixels are identical for baseline and progressive
JPEGs. ``tests/test_decode.py`` asserts that parity so a wheel upgrade that breaks it is caught;
decoding JPEGs once with PIL avoids a second decode and keeps the truncation check.

PIL cannot hold 16-bit-per-channel colour: it silently truncates 16-bit RGB(A) PNG and TIFF
files to 8 bits. Those (and only those) are decoded by ``cv2.imdecode`` after PIL has validated
the header, and the EXIF orientation PIL read is applied with numpy; a file OpenCV cannot read
(a 16-bit CMYK or JPEG-compressed TIFF) falls back to PIL, at 8 bits.

Formats are PIL's own plugins (GIF and animated WebP/PNG give their first frame; PPM/PGM/PBM,
TGA, QOI, AVIF where Pillow was built with it) plus HEIC/HEIF through ``pillow-heif`` (the
``heif`` extra), registered on first use. All of them go through the same pixel cap, EXIF
orientation and truncation checks.

The pixel cap lives in ``limits.py``; the pixels of an opened image (OpenCV's fast JPEG path,
16-bit colour, EXIF orientation) in ``pixels.py``.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import os
import re
from numbers import Integral
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError, features

from depthlite.errors import (
    ImageDecodeError,
    ImageTooLargeError,
    InputError,
    InputNotFoundError,
    InvalidOptionError,
    UnsupportedFormatError,
)
from depthlite.imageio import quiet
from depthlite.imageio.limits import DEFAULT_MAX_PIXELS, check_pixels, pil_limits, too_large
from depthlite.imageio.pixels import (
    decode_deep_with_cv2,
    decode_jpeg_with_cv2,
    exif_transpose,
    is_deep_colour,
    pil_to_array,
)

__all__ = ["DEFAULT_MAX_PIXELS", "SUPPORTED_FORMATS", "ImageSource", "load_image"]

_HAS_HEIF = importlib.util.find_spec("pillow_heif") is not None
# What photos come as; formats that cannot be a photo (PSD, EPS, ICO, FITS, ...) stay refused.
SUPPORTED_FORMATS: tuple[str, ...] = (
    *("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF", "PPM", "QOI"),
    *(("AVIF",) if features.check("avif") else ()),
    *(("HEIF",) if _HAS_HEIF else ()),
    "TGA",  # last: TGA has no magic bytes, so its parser must only see what nothing else took
)
# ISO-BMFF brands of HEIC/HEIF files (the "ftyp" box at offset 4).
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1")

ImageSource = str | os.PathLike | bytes | np.ndarray | Image.Image

# PIL reports multi-picture JPEGs (most phone cameras' "portrait" shots) as MPO; frame 0 is the
# ordinary JPEG picture.
_FORMAT_ALIASES = {"MPO": "JPEG"}


@functools.cache
def register_plugins() -> None:
    """pillow-heif's opener, once, on the first decode (never at import time)."""
    if _HAS_HEIF:
        from pillow_heif import register_heif_opener

        register_heif_opener()


def _formats_hint() -> str:
    return f"supported formats: {', '.join(SUPPORTED_FORMATS)}"


def _sniff_format(prefix: bytes) -> str | None:
    """Name the format PIL would recognise from the magic bytes, without parsing further."""
    Image.init()
    for name, (_factory, accept) in Image.OPEN.items():
        try:
            # accept() may return a warning string instead of a bool; only True-ish bools count.
            result = accept(prefix) if accept is not None else False
        except Exception:  # an odd plugin's accept() on a short prefix is not our problem
            continue
        if result and not isinstance(result, str):
            return _FORMAT_ALIASES.get(name, name)
    return None


def _unidentified(prefix: bytes, source: str) -> InputError:
    if not _HAS_HEIF and prefix[4:8] == b"ftyp" and prefix[8:12] in _HEIF_BRANDS:
        return UnsupportedFormatError(
            "HEIC/HEIF images need pillow-heif: pip install 'depthlite[heif]'", source
        )
    fmt = _sniff_format(prefix)
    if fmt in SUPPORTED_FORMATS:
        # The magic bytes say PNG/JPEG/...; the header behind them failed to parse.
        return ImageDecodeError(f"corrupt {fmt} header", source=source)
    if fmt is not None:
        return UnsupportedFormatError(f"{fmt} images are not supported; {_formats_hint()}", source)
    return UnsupportedFormatError(f"not a recognised image; {_formats_hint()}", source=source)


def _decode_stream(fp: BinaryIO, source: str, max_pixels: int) -> np.ndarray:
    head = fp.read(26)
    prefix = head[:16]
    if not prefix:
        raise UnsupportedFormatError(f"empty input; {_formats_hint()}", source=source)
    fp.seek(0)
    register_plugins()
    try:
        with pil_limits(max_pixels):
            # Only our formats' header parsers ever see the bytes; others are only sniffed.
            im = Image.open(fp, formats=SUPPORTED_FORMATS)
            fmt = _FORMAT_ALIASES.get(im.format or "", im.format)
            if fmt not in SUPPORTED_FORMATS:
                raise UnsupportedFormatError(f"{fmt} images are not supported", source=source)
            check_pixels(im.width, im.height, max_pixels, source)
            deep = decode_deep_with_cv2(im, fp, source) if is_deep_colour(im, head) else None
            if deep is not None:
                return deep
            if fmt == "JPEG":
                fp.seek(0)
                fast = decode_jpeg_with_cv2(im, fp.read(), source)
                if fast is not None:
                    return fast
            # load() must run inside the try: it is where truncation and CRC errors surface.
            # LOAD_TRUNCATED_IMAGES is left False so a cut JPEG fails instead of grey-padding.
            im.load()
            return pil_to_array(exif_transpose(im, source), source)
    except UnidentifiedImageError:
        raise _unidentified(prefix, source) from None
    except Image.DecompressionBombError as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = int(found.group(1)) if found else max_pixels + 1
        raise ImageTooLargeError(too_large(None, None, pixels, max_pixels), source) from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as exc:
        raise ImageDecodeError(f"corrupt or truncated image data ({exc})", source=source) from exc


def _load_path(path: Path, source: str, max_pixels: int) -> np.ndarray:
    if path.is_dir():
        raise InputError("is a directory, not an image file", source=source)
    try:
        fp = path.open("rb")
    except FileNotFoundError:
        raise InputNotFoundError("no such file", source=source) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", source=source) from None
    except ValueError as exc:  # e.g. an embedded NUL byte
        raise InputError(f"invalid path: {exc}", source=source) from None
    with fp:
        return _decode_stream(fp, source, max_pixels)


def _from_array(arr: np.ndarray, source: str, max_pixels: int) -> np.ndarray:
    accepted = "accepted arrays: HxW, HxWx3 (RGB) or HxWx4 (RGBA), dtype uint8 or uint16"
    if arr.dtype not in (np.uint8, np.uint16):
        raise InputError(f"unsupported array dtype {arr.dtype}; {accepted}", source=source)
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise InputError(f"unsupported array shape {arr.shape}; {accepted}", source=source)
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(f"empty array of shape {arr.shape}", source=source)
    check_pixels(arr.shape[1], arr.shape[0], max_pixels, source)
    return arr


def _from_pil(im: Image.Image, source: str, max_pixels: int) -> np.ndarray:
    check_pixels(im.width, im.height, max_pixels, source)
    try:
        with pil_limits(max_pixels):
            im.load()
            return pil_to_array(exif_transpose(im, source), source)
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as exc:
        raise ImageDecodeError(f"corrupt or truncated image data ({exc})", source=source) from exc


def _to_rgb(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    elif arr.shape[2] == 4:
        arr = arr[..., :3]
    return np.ascontiguousarray(arr)


def load_image(
    src: ImageSource, *, max_pixels: int = DEFAULT_MAX_PIXELS, source: str | None = None
) -> np.ndarray:
    """Decode ``src`` into an HxWx3 RGB array, uint8 for 8-bit inputs and uint16 for 16-bit.

    ``src`` is a path, encoded bytes, an ndarray (HxW grey, HxWx3 RGB or HxWx4 RGBA; a
    C-contiguous HxWx3 array is returned as is, not copied) or a PIL image. EXIF orientation is
    applied; alpha is dropped. ``source`` names the input in errors (default: the path,
    ``<bytes>``, ``<array>`` or ``<image>``). Every failure is an :class:`InputError` subclass.
    """
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, Integral) or max_pixels < 1:
        raise InvalidOptionError(f"max_pixels must be a positive integer, not {max_pixels!r}")
    max_pixels = int(max_pixels)
    # Native decoders (libjpeg, libtiff, OpenCV's logger) write to fd 2; where the CLI or the
    # server enabled it, that output becomes log records naming the source (``quiet.py``).
    if isinstance(src, str | os.PathLike):
        path = Path(src)
        with quiet.capture(source or str(path)):
            arr = _load_path(path, source or str(path), max_pixels)
    elif isinstance(src, bytes | bytearray | memoryview):
        with quiet.capture(source or "<bytes>"):
            arr = _decode_stream(io.BytesIO(src), source or "<bytes>", max_pixels)
    elif isinstance(src, np.ndarray):
        arr = _from_array(src, source or "<array>", max_pixels)
    elif isinstance(src, Image.Image):
        with quiet.capture(source or "<image>"):
            arr = _from_pil(src, source or "<image>", max_pixels)
    else:
        raise TypeError(f"cannot load an image from {type(src).__name__}")
    rgb = _to_rgb(arr)
    if not rgb.flags.writeable and rgb is not src:
        # Arrays over PIL's pixel buffer are read-only; callers may legitimately edit in place.
        rgb = rgb.copy()
    return rgb
