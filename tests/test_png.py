"""Tests of depthlite.imageio.png: every variant decodes back exactly with cv2 and PIL."""

from __future__ import annotations

import io
import os
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from depthlite.colorize import normalize_minmax, palette
from depthlite.imageio import pdeflate, png
from depthlite.imageio.png import encode_gray, encode_indexed, encode_rgb

SIZES = [(1, 1), (1, 3), (2, 7), (5, 1), (3, 1921), (4, 2)]  # (height, width)
REFERENCE = Path(__file__).parent / "data" / "midas_v21_small_256_pipeline_seed10_480x640.npz"


def rng_image(shape: tuple[int, ...], dtype: type, seed: int = 0) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.random.default_rng(seed).integers(0, info.max + 1, size=shape, dtype=dtype)


def cv2_read(data: bytes) -> np.ndarray:
    out = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert out is not None
    return out


def pil_read(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()  # raises on CRC or zlib errors
    return im


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of every chunk, checking each CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, out = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        out.append((kind, body))
        pos += 12 + length
    return out


def sub_filter_reference(rows: np.ndarray, bpp: int) -> bytes:
    """The PNG spec's Sub filter, byte by byte, for tiny images."""
    out = bytearray()
    for row in rows.tolist():
        out.append(1)
        out.extend((row[x] - (row[x - bpp] if x >= bpp else 0)) % 256 for x in range(len(row)))
    return bytes(out)


@pytest.mark.parametrize(("height", "width"), SIZES)
def test_indexed_roundtrip(height: int, width: int) -> None:
    index = rng_image((height, width), np.uint8, seed=width)
    pal = rng_image((256, 3), np.uint8, seed=height)
    data = encode_indexed(index, pal)
    np.testing.assert_array_equal(cv2_read(data), pal[index][..., ::-1])
    im = pil_read(data)
    assert im.mode == "P"
    np.testing.assert_array_equal(np.asarray(im), index)
    np.testing.assert_array_equal(np.asarray(im.convert("RGB")), pal[index])


@pytest.mark.parametrize(("height", "width"), SIZES)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_gray_roundtrip(height: int, width: int, dtype: type) -> None:
    img = rng_image((height, width), dtype, seed=height * width)
    data = encode_gray(img)
    decoded = cv2_read(data)
    assert decoded.dtype == dtype
    np.testing.assert_array_equal(decoded, img)
    np.testing.assert_array_equal(np.asarray(pil_read(data)).astype(dtype), img)


@pytest.mark.parametrize(("height", "width"), SIZES)
def test_rgb_roundtrip(height: int, width: int) -> None:
    img = rng_image((height, width, 3), np.uint8, seed=width)
    data = encode_rgb(img)
    np.testing.assert_array_equal(cv2_read(data), img[..., ::-1])
    im = pil_read(data)
    assert im.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(im), img)


@pytest.mark.parametrize(("height", "width"), SIZES)
def test_rgb16_roundtrip(height: int, width: int) -> None:
    img = rng_image((height, width, 3), np.uint16, seed=width)
    decoded = cv2_read(encode_rgb(img))  # PIL cannot hold 16-bit colour
    assert decoded.dtype == np.uint16
    np.testing.assert_array_equal(decoded, img[..., ::-1])


@pytest.mark.parametrize(
    ("encode", "img", "bpp"),
    [
        (encode_gray, rng_image((3, 5), np.uint8), 1),
        (encode_gray, rng_image((3, 5), np.uint16), 2),
        (encode_rgb, rng_image((3, 5, 3), np.uint8), 3),
        (encode_rgb, rng_image((3, 5, 3), np.uint16), 6),
    ],
)
def test_layout_matches_the_spec(encode: object, img: np.ndarray, bpp: int) -> None:
    found = chunks(encode(img))  # type: ignore[operator]
    assert [kind for kind, _ in found] == [b"IHDR", b"IDAT", b"IEND"]
    bits = 8 * img.dtype.itemsize
    colour = 2 if img.ndim == 3 else 0
    assert found[0][1] == struct.pack(">IIBBBBB", 5, 3, bits, colour, 0, 0, 0)
    # Samples are big-endian; every row carries filter type 1 (Sub).
    rows = img.astype(img.dtype.newbyteorder(">")).view(np.uint8).reshape(3, -1)
    assert zlib.decompress(found[1][1]) == sub_filter_reference(rows, bpp)


def test_indexed_layout() -> None:
    index = np.array([[0, 1, 1], [2, 0, 2]], np.uint8)
    pal = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    found = chunks(encode_indexed(index, pal))
    assert [kind for kind, _ in found] == [b"IHDR", b"PLTE", b"IDAT", b"IEND"]
    assert found[0][1] == struct.pack(">IIBBBBB", 3, 2, 8, 3, 0, 0, 0)
    assert found[1][1] == pal.tobytes()
    assert zlib.decompress(found[2][1]) == sub_filter_reference(index, 1)
    np.testing.assert_array_equal(cv2_read(encode_indexed(index, pal)), pal[index][..., ::-1])


def test_many_blocks_and_idat_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(png, "_BLOCK_BYTES", 50)
    monkeypatch.setattr(png, "_IDAT_SIZE", 64)
    img = rng_image((37, 29, 3), np.uint8)
    data = encode_rgb(img)
    assert sum(kind == b"IDAT" for kind, _ in chunks(data)) > 1
    np.testing.assert_array_equal(cv2_read(data), img[..., ::-1])
    np.testing.assert_array_equal(np.asarray(pil_read(data)), img)


def test_non_contiguous_input_and_levels() -> None:
    base = rng_image((20, 30, 3), np.uint8)
    view = base[::2, 1::3]
    for level in (0, 1, 9):
        np.testing.assert_array_equal(cv2_read(encode_rgb(view, level=level)), view[..., ::-1])
    gray = base[..., 1].T
    out = encode_gray(gray, strategy=zlib.Z_DEFAULT_STRATEGY)
    np.testing.assert_array_equal(cv2_read(out), gray)


def test_short_palette() -> None:
    pal = np.array([[1, 2, 3], [4, 5, 6]], np.uint8)
    index = np.array([[0, 1], [1, 0]], np.uint8)
    np.testing.assert_array_equal(cv2_read(encode_indexed(index, pal)), pal[index][..., ::-1])
    with pytest.raises(ValueError, match="past the 2-colour palette"):
        encode_indexed(index + 1, pal)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: encode_gray(np.zeros((2, 2), np.float32)), "uint8 or uint16"),
        (lambda: encode_gray(np.zeros((2, 2, 3), np.uint8)), "HxW array"),
        (lambda: encode_gray(np.zeros((0, 4), np.uint8)), "0 pixels"),
        (lambda: encode_rgb(np.zeros((2, 2, 4), np.uint8)), "HxWx3"),
        (lambda: encode_rgb(np.zeros((2, 2), np.uint8)), "HxWx3"),
        (lambda: encode_indexed(np.zeros((2, 2), np.uint16), palette()), "uint8"),
        (lambda: encode_indexed(np.zeros((2, 2), np.uint8), np.zeros((257, 3), np.uint8)), "N"),
        (lambda: encode_indexed(np.zeros((2, 2), np.uint8), np.zeros((4, 4), np.uint8)), "N"),
        (lambda: encode_gray(np.zeros((2, 2), np.uint8), level=10), "level"),
    ],
)
def test_bad_input(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


def test_1080p_colour_map_is_exact_and_smaller_than_cv2() -> None:
    """A realistic colour map: same pixels as cv2's PNG, in a smaller file.

    The speed difference is measured by hand (see the imageio.png module docstring), not
    asserted: timings on shared CI machines are noise.
    """
    with np.load(REFERENCE) as data:
        depth = cv2.resize(data["depth"], (1920, 1080), interpolation=cv2.INTER_CUBIC)
    gray = normalize_minmax(depth, bits=1)
    bgr = cv2.applyColorMap(gray, cv2.COLORMAP_INFERNO)
    ours = encode_indexed(gray, palette("inferno"))
    ok, theirs = cv2.imencode(".png", bgr)
    assert ok
    np.testing.assert_array_equal(cv2_read(ours), bgr)
    np.testing.assert_array_equal(np.asarray(pil_read(ours).convert("RGB")), bgr[..., ::-1])
    assert len(ours) < len(theirs)


@pytest.mark.parametrize("lengths", [(0, 0), (1, 0), (0, 5), (3, 70_000), (200_000, 131_042)])
def test_adler32_combine_equals_one_pass(lengths: tuple[int, int]) -> None:
    first, second = (rng_image((n,), np.uint8, seed=n).tobytes() for n in lengths)
    combined = pdeflate.adler32_combine(zlib.adler32(first), zlib.adler32(second), len(second))
    assert combined == zlib.adler32(first + second)


def idat_stream(data: bytes) -> bytes:
    return b"".join(body for kind, body in chunks(data) if kind == b"IDAT")


@pytest.mark.skipif(png._isal_zlib is None, reason="the two-thread path is ISA-L only")
@pytest.mark.parametrize("shape", [(1080, 1920), (1081, 1920, 3), (2000, 700)])
def test_two_half_deflate_is_one_valid_stream_with_the_same_bytes(
    shape: tuple[int, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pdeflate, "can_split", lambda nbytes: True)
    img = rng_image(shape, np.uint8, seed=len(shape))
    img[: shape[0] // 3] //= 7  # some long runs as well as noise
    split = encode_rgb(img) if len(shape) == 3 else encode_gray(img)
    monkeypatch.setattr(pdeflate, "can_split", lambda nbytes: False)
    single = encode_rgb(img) if len(shape) == 3 else encode_gray(img)
    stream = idat_stream(split)
    assert stream[:2] == b"\x78\x01"
    decomp = zlib.decompressobj()
    raw = decomp.decompress(stream)
    assert decomp.eof and not decomp.unused_data  # one complete stream, checksum verified
    assert raw == zlib.decompress(idat_stream(single))
    expected = img[..., ::-1] if len(shape) == 3 else img
    np.testing.assert_array_equal(cv2_read(split), expected)
    np.testing.assert_array_equal(np.asarray(pil_read(split)), img)


@pytest.mark.skipif(png._isal_zlib is None, reason="the two-thread path is ISA-L only")
def test_concurrent_two_half_encodes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdeflate, "can_split", lambda nbytes: True)
    images = [rng_image((900, 1500), np.uint8, seed=s) for s in range(4)]
    with ThreadPoolExecutor(4) as pool:
        encoded = list(pool.map(lambda im: encode_indexed(im, palette("inferno")), images * 2))
    for img, data in zip(images * 2, encoded, strict=True):
        np.testing.assert_array_equal(np.asarray(pil_read(data)), img)


@pytest.mark.skipif(png._isal_zlib is None or not hasattr(os, "fork"), reason="ISA-L and fork")
def test_two_half_deflate_works_in_a_forked_child(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdeflate, "can_split", lambda nbytes: True)
    img = rng_image((600, 900), np.uint8)
    encode_gray(img)  # the parent's helper pool exists before the fork
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        ok = np.array_equal(np.asarray(pil_read(encode_gray(img))), img)
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
