"""A small, fast PNG encoder for depth outputs: palette, grey (8/16-bit) and RGB (8/16-bit).

``cv2.imencode(".png")`` spends 60-80 ms on a 1080p colour map, more than the network. Two
things make colour maps about 3 times faster to write here, and the files smaller:

* a colour map is a 256-entry palette applied to an 8-bit index image, so it is written as a
  palette PNG (one byte per pixel instead of three) and decoders give back the exact same RGB;
* every row uses filter type 1 (Sub), computed with numpy, and zlib's ``Z_RLE`` strategy at
  level 1: smooth depth maps become long runs of small differences, which RLE-only matching
  compresses about as well as a full LZ77 search at a fraction of the cost.

With zlib, a 1080p inferno colour map of a real depth map takes about 22 ms for 0.5 MB, where
``cv2.imencode`` takes about 60 ms for 1.6 MB (same pixels after decoding); for 16-bit grey
and RGB, where zlib's work dominates, it is on par with or a little faster than cv2.

The output is plain PNG (signature, IHDR, optional PLTE, optional text chunks, IDAT, IEND),
readable by every decoder; nothing here is specific to depth maps except the choice of
defaults. Text goes in ``tEXt`` chunks (Latin-1), or ``iTXt`` (UTF-8) when it needs more, and
:func:`read_text` reads back all three kinds of text chunk (``zTXt`` and compressed ``iTXt``
included) without decoding any pixel.
"""

from __future__ import annotations

import logging
import struct
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from depthlite.imageio import pdeflate

try:  # optional: a faster deflate on the platforms it ships wheels for
    from isal import isal_zlib as _isal_zlib
except ImportError:  # pragma: no cover - exercised where isal has no wheel
    _isal_zlib = None

__all__ = [
    "DEFAULT_LEVEL",
    "DEFAULT_STRATEGY",
    "encode_gray",
    "encode_indexed",
    "encode_rgb",
    "read_text",
]

logger = logging.getLogger(__name__)

DEFAULT_LEVEL = 1
DEFAULT_STRATEGY = zlib.Z_RLE

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_GRAY = 0
_COLOUR_RGB = 2
_COLOUR_INDEXED = 3
_FILTER_SUB = 1
_MAX_DIMENSION = 2**31 - 1  # the PNG spec's limit for width and height
# Chunk lengths may go up to 2**31 - 1; smaller IDATs keep every decoder's buffers modest.
_IDAT_SIZE = 1 << 24
# Rows are filtered and compressed in blocks of about this many bytes, so the filtered copy
# stays in cache and a 40 MP image never needs a second full-size buffer.
_BLOCK_BYTES = 1 << 20


def _chunk(kind: bytes, data: bytes | memoryview) -> bytes:
    crc = zlib.crc32(data, zlib.crc32(kind))
    return b"".join((struct.pack(">I", len(data)), kind, data, struct.pack(">I", crc)))


def _text_chunk(keyword: str, text: str) -> bytes:
    """``tEXt`` when both fit Latin-1 (every reader shows those), else ``iTXt`` in UTF-8."""
    key = keyword.encode("latin-1")
    if not 1 <= len(key) <= 79 or b"\x00" in key or key != key.strip():
        raise ValueError(f"PNG text keywords are 1-79 Latin-1 characters, got {keyword!r}")
    try:
        return _chunk(b"tEXt", key + b"\x00" + text.encode("latin-1"))
    except UnicodeEncodeError:
        # Keyword, no compression (flag 0, method 0), empty language and translated keyword.
        return _chunk(b"iTXt", key + b"\x00\x00\x00\x00\x00" + text.encode("utf-8"))


def read_text(data: bytes) -> dict[str, str]:
    """The text chunks of a PNG (``tEXt``, ``zTXt``, ``iTXt``) as ``{keyword: text}``.

    Walks the chunk headers only; raises ValueError if ``data`` is not a PNG or is cut short.
    """
    if data[:8] != _SIGNATURE:
        raise ValueError("not a PNG file")
    texts: dict[str, str] = {}
    pos = 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if len(body) != length:
            raise ValueError("PNG cut short inside a chunk")
        if kind in (b"tEXt", b"zTXt", b"iTXt"):
            key, text = _parse_text(kind, body)
            texts[key] = text
        if kind == b"IEND":
            break
        pos += 12 + length
    return texts


def _parse_text(kind: bytes, body: bytes) -> tuple[str, str]:
    key, _, rest = body.partition(b"\x00")
    if kind == b"tEXt":
        return key.decode("latin-1"), rest.decode("latin-1")
    if kind == b"zTXt":  # compression method byte, then zlib
        return key.decode("latin-1"), zlib.decompress(rest[1:]).decode("latin-1")
    compressed, rest = rest[:1] == b"\x01", rest[2:]
    _language, _, rest = rest.partition(b"\x00")
    _translated, _, text = rest.partition(b"\x00")
    return key.decode("latin-1"), (zlib.decompress(text) if compressed else text).decode("utf-8")


def _filtered_rows(rows: np.ndarray, bpp: int, out: np.ndarray | None = None) -> np.ndarray:
    """``rows`` (H x row bytes) with a Sub filter byte in front of each filtered row.

    Sub: ``out[x] = raw[x] - raw[x - bpp]`` modulo 256, bytes left of the first pixel being 0;
    uint8 subtraction wraps exactly like that. ``out`` (H x row bytes + 1) is filled if given.
    """
    if out is None:
        out = np.empty((rows.shape[0], rows.shape[1] + 1), dtype=np.uint8)
    out[:, 0] = _FILTER_SUB
    out[:, 1 : 1 + bpp] = rows[:, :bpp]
    np.subtract(rows[:, bpp:], rows[:, :-bpp], out=out[:, 1 + bpp :])
    return out


def _compressor(level: int, strategy: int) -> Any:
    """A zlib-format compressor: ISA-L's when available and the defaults are asked for.

    ISA-L (package ``isal``) deflates about 2.5 times faster than zlib at level 1 with smaller
    output on depth maps (9 ms instead of 25 ms for a 1080p colour map); its stream is plain
    zlib format, so decoders cannot tell. Explicit levels and strategies use zlib itself.
    """
    if not -1 <= level <= 9:
        raise ValueError(f"zlib level must be in -1..9, not {level}")
    if _isal_zlib is not None and (level, strategy) == (DEFAULT_LEVEL, DEFAULT_STRATEGY):
        return _isal_zlib.compressobj(1)
    return zlib.compressobj(level, zlib.DEFLATED, 15, 8, strategy)


def _compress(rows: np.ndarray, bpp: int, level: int, strategy: int) -> bytes:
    """The zlib stream of the filtered image, built block by block of rows."""
    step = max(1, _BLOCK_BYTES // (rows.shape[1] + 1))
    isal_default = _isal_zlib is not None and (level, strategy) == (DEFAULT_LEVEL, DEFAULT_STRATEGY)
    if isal_default and rows.shape[0] > step and pdeflate.can_split(rows.size + rows.shape[0]):
        # Two halves on two threads (see pdeflate): ~25 % faster for a 1080p colour map.
        return pdeflate.compress_two_halves(
            rows,
            bpp,
            step=step,
            filter_into=_filtered_rows,
            make_raw=lambda: _isal_zlib.compressobj(1, _isal_zlib.DEFLATED, -15),
            flush_modes=(_isal_zlib.Z_FULL_FLUSH, _isal_zlib.Z_FINISH),
        )
    comp = _compressor(level, strategy)
    parts = [
        comp.compress(_filtered_rows(rows[y : y + step], bpp)) for y in range(0, len(rows), step)
    ]
    parts.append(comp.flush())
    return b"".join(parts)


def _png(
    rows: np.ndarray,
    width: int,
    header: tuple[int, int],
    bpp: int,
    plte: bytes | None = None,
    *,
    level: int,
    strategy: int,
    text: Mapping[str, str] | None = None,
) -> bytes:
    """Assemble a PNG from raw rows (H x row bytes); ``header`` is (bit depth, colour type)."""
    height = rows.shape[0]
    bit_depth, colour_type = header
    # Compression method 0, filter method 0, no interlace: the only values PNG defines.
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    data = memoryview(_compress(rows, bpp, level, strategy))
    parts = [_SIGNATURE, _chunk(b"IHDR", ihdr)]
    if plte is not None:
        parts.append(_chunk(b"PLTE", plte))
    # Before the pixels, so a reader that stops at the first IDAT still sees them.
    parts.extend(_text_chunk(key, value) for key, value in (text or {}).items())
    parts.extend(_chunk(b"IDAT", data[i : i + _IDAT_SIZE]) for i in range(0, len(data), _IDAT_SIZE))
    parts.append(_chunk(b"IEND", b""))
    return b"".join(parts)


def _check_image(img: np.ndarray, what: str, ndim: int, dtypes: tuple[type, ...]) -> np.ndarray:
    arr = np.asarray(img)
    if arr.ndim != ndim or (ndim == 3 and arr.shape[2] != 3):
        shape = "HxW" if ndim == 2 else "HxWx3"
        raise ValueError(f"{what} must be an {shape} array, got shape {arr.shape}")
    if arr.dtype not in dtypes:
        names = " or ".join(np.dtype(d).name for d in dtypes)
        raise ValueError(f"{what} must be {names}, got {arr.dtype}")
    height, width = arr.shape[:2]
    if not (0 < height <= _MAX_DIMENSION and 0 < width <= _MAX_DIMENSION):
        raise ValueError(f"PNG cannot hold an image of {width} x {height} pixels")
    return arr


def _sample_rows(arr: np.ndarray) -> np.ndarray:
    """The image as H x row-bytes uint8, 16-bit samples big-endian as PNG requires."""
    if arr.dtype == np.uint16:
        arr = arr.astype(">u2", copy=False)
    arr = np.ascontiguousarray(arr)
    return arr.view(np.uint8).reshape(arr.shape[0], -1)


def encode_indexed(
    index: np.ndarray,
    palette_rgb: np.ndarray,
    *,
    level: int = DEFAULT_LEVEL,
    strategy: int = DEFAULT_STRATEGY,
) -> bytes:
    """A palette PNG: pixel (y, x) has colour ``palette_rgb[index[y, x]]``.

    ``index`` is HxW uint8; ``palette_rgb`` is Nx3 uint8 RGB with 1 <= N <= 256, and every index
    must be below N (PNG forbids indices past the palette's end).
    """
    idx = _check_image(index, "index", 2, (np.uint8,))
    pal = np.asarray(palette_rgb)
    if pal.ndim != 2 or pal.shape[1] != 3 or not 1 <= pal.shape[0] <= 256 or pal.dtype != np.uint8:
        raise ValueError(f"palette must be Nx3 uint8 with N <= 256, got {pal.shape} {pal.dtype}")
    if pal.shape[0] < 256 and int(idx.max()) >= pal.shape[0]:
        raise ValueError(f"index {int(idx.max())} is past the {pal.shape[0]}-colour palette")
    plte = np.ascontiguousarray(pal).tobytes()
    header = (8, _COLOUR_INDEXED)
    rows = _sample_rows(idx)
    return _png(rows, idx.shape[1], header, 1, plte, level=level, strategy=strategy)


def encode_gray(
    img: np.ndarray,
    *,
    level: int = DEFAULT_LEVEL,
    strategy: int = DEFAULT_STRATEGY,
    text: Mapping[str, str] | None = None,
) -> bytes:
    """A greyscale PNG of an HxW uint8 or uint16 image (16-bit samples are kept).

    ``text``: ``{keyword: text}`` written as text chunks (see :func:`read_text`).
    """
    arr = _check_image(img, "grey image", 2, (np.uint8, np.uint16))
    bpp = arr.dtype.itemsize
    header = (8 * bpp, _COLOUR_GRAY)
    rows = _sample_rows(arr)
    return _png(rows, arr.shape[1], header, bpp, level=level, strategy=strategy, text=text)


def encode_rgb(
    img: np.ndarray,
    *,
    level: int = DEFAULT_LEVEL,
    strategy: int = DEFAULT_STRATEGY,
    text: Mapping[str, str] | None = None,
) -> bytes:
    """A truecolour PNG of an HxWx3 RGB image, uint8 or uint16 (16-bit samples are kept)."""
    arr = _check_image(img, "RGB image", 3, (np.uint8, np.uint16))
    bpp = 3 * arr.dtype.itemsize
    header = (8 * arr.dtype.itemsize, _COLOUR_RGB)
    rows = _sample_rows(arr)
    return _png(rows, arr.shape[1], header, bpp, level=level, strategy=strategy, text=text)
