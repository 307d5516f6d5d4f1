"""Images the decoder tests build by hand: smooth RGB, 16-bit RGB, raw PNG chunks, EXIF."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
from PIL import Image

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
