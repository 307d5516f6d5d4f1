"""Tests of depthlite.imageio.writers against the official MiDaS output files."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from depthlite import fsutil
from depthlite.colorize import colorize, normalize_minmax
from depthlite.errors import InvalidOptionError, OutputError
from depthlite.imageio.writers import (
    OUTPUT_FORMATS,
    OUTPUT_SUFFIX,
    atomic_write_bytes,
    output_path,
    read_pfm,
    side_by_side,
    to_png16,
    write_outputs,
    write_pfm,
)
from depthlite.normalize import _BLOCK_ROWS

REFERENCE = Path(__file__).parent / "data" / "midas_v21_small_256_pipeline_seed10_480x640.npz"


@pytest.fixture(scope="module")
def ref() -> dict[str, np.ndarray]:
    with np.load(REFERENCE) as data:
        return {key: data[key] for key in ("depth", "png16", "color_inferno_bgr")}


def small_depth(h: int = 6, w: int = 8) -> np.ndarray:
    return np.random.default_rng(3).random((h, w), dtype=np.float32) * 100


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if ".part" in p.name]


def test_formats_and_suffixes_agree() -> None:
    assert set(OUTPUT_SUFFIX) == set(OUTPUT_FORMATS)


def test_png16_equals_official(ref: dict[str, np.ndarray]) -> None:
    out = to_png16(ref["depth"])
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, ref["png16"])


def test_constant_depth_gives_zeros() -> None:
    out = to_png16(np.full((4, 5), 3.5, np.float32))
    assert out.dtype == np.uint16
    assert not out.any()


def _official(depth: np.ndarray, bits: int) -> np.ndarray:
    """The reference ``write_depth`` scaling, whole-array, as the original code writes it."""
    depth = np.nan_to_num(depth, nan=0.0, posinf=0.0, neginf=0.0)
    depth_min, depth_max = depth.min(), depth.max()
    max_val = 2 ** (8 * bits) - 1
    out = max_val * (depth - depth_min) / (depth_max - depth_min)
    return out.astype(np.uint8 if bits == 1 else np.uint16)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bits", [1, 2])
def test_blockwise_normalisation_is_bit_identical(dtype: type, bits: int) -> None:
    rng = np.random.default_rng(7)
    rows = 2 * _BLOCK_ROWS + 5  # several blocks and a short last one
    for scale, offset in ((1e-4, 0.0), (1.0, -3.0), (3e3, 1e4), (1e6, -2e6)):
        depth = (rng.standard_normal((rows, 37)) * scale + offset).astype(dtype)
        expected = _official(depth, bits)
        out = normalize_minmax(depth, bits)
        assert out.dtype == expected.dtype
        np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_blockwise_normalisation_leaves_non_finite_maps_to_the_reference(bad: float) -> None:
    depth = small_depth(70, 9)
    depth[3, 4] = bad
    np.testing.assert_array_equal(normalize_minmax(depth, 1), _official(depth, 1))


def test_pfm_header_and_layout(tmp_path: Path) -> None:
    depth = small_depth()
    path = tmp_path / "d.pfm"
    write_pfm(path, depth)
    raw = path.read_bytes()
    header = b"Pf\n8 6\n-1.000000\n"  # "%f" % -1, as the official write_pfm prints it
    assert raw.startswith(header)
    body = np.frombuffer(raw[len(header) :], "<f4").reshape(6, 8)
    np.testing.assert_array_equal(body, depth[::-1])  # bottom row first


def test_pfm_roundtrip(tmp_path: Path, ref: dict[str, np.ndarray]) -> None:
    path = tmp_path / "d.pfm"
    write_pfm(path, ref["depth"])
    back = read_pfm(path)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, ref["depth"])


def test_pfm_colour_and_big_endian(tmp_path: Path) -> None:
    rgb = np.random.default_rng(0).random((3, 4, 3), dtype=np.float32)
    write_pfm(tmp_path / "c.pfm", rgb)
    assert (tmp_path / "c.pfm").read_bytes().startswith(b"PF\n4 3\n")
    np.testing.assert_array_equal(read_pfm(tmp_path / "c.pfm"), rgb)
    depth = small_depth(2, 3)
    big = b"Pf\n3 2\n1.0\n" + depth[::-1].astype(">f4").tobytes()
    (tmp_path / "be.pfm").write_bytes(big)
    np.testing.assert_array_equal(read_pfm(tmp_path / "be.pfm"), depth)


def test_read_pfm_rejects_bad_files(tmp_path: Path) -> None:
    (tmp_path / "x.pfm").write_bytes(b"P6\n1 1\n255\n\x00\x00\x00")
    with pytest.raises(ValueError, match="not a PFM"):
        read_pfm(tmp_path / "x.pfm")
    (tmp_path / "t.pfm").write_bytes(b"Pf\n4 4\n-1.0\n" + b"\x00" * 12)
    with pytest.raises(ValueError, match="expected 64"):
        read_pfm(tmp_path / "t.pfm")


def test_side_by_side_sizes() -> None:
    image = np.zeros((6, 8, 3), np.uint8)
    color = np.full((6, 8, 3), 200, np.uint8)
    out = side_by_side(image, color)
    assert out.shape == (6, 16, 3)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, 8:], color)


def test_side_by_side_16bit_grey_and_other_height() -> None:
    image = np.full((10, 4), 65535, np.uint16)
    color = np.zeros((5, 6, 3), np.uint8)
    out = side_by_side(image, color)
    assert out.shape == (10, 4 + 12, 3)
    assert out.dtype == np.uint8
    assert (out[:, :4] == 255).all()


def test_output_path_names() -> None:
    out = Path("out")
    assert output_path(out, Path("sub/a"), "color") == Path("out/sub/a_color.png")
    assert output_path(out, Path("a"), "png16") == Path("out/a_depth16.png")
    assert output_path(out, Path("scan.v2"), "npy") == Path("out/scan.v2.npy")
    assert output_path(out, Path("a"), "pfm") == Path("out/a.pfm")
    assert output_path(out, Path("a"), "side") == Path("out/a_side.png")
    with pytest.raises(InvalidOptionError, match="color, png16, npy, pfm, side"):
        output_path(out, Path("a"), "jpg")


def test_write_outputs_all_formats(tmp_path: Path, ref: dict[str, np.ndarray]) -> None:
    depth = ref["depth"].astype(np.float64)  # npy and pfm must still come out float32
    image = np.zeros((*depth.shape, 3), np.uint8)
    classic = ("color", "png16", "npy", "pfm", "side")  # no calibration: no metres here
    paths = write_outputs(depth, image, tmp_path / "out", Path("sub/x"), classic)
    assert paths == [output_path(tmp_path / "out", Path("sub/x"), f) for f in classic]
    assert all(p.is_file() for p in paths)
    assert leftovers(tmp_path) == []
    color, png16, npy, pfm, side = paths
    np.testing.assert_array_equal(cv2.imread(str(color)), ref["color_inferno_bgr"])
    np.testing.assert_array_equal(cv2.imread(str(png16), cv2.IMREAD_UNCHANGED), ref["png16"])
    loaded = np.load(npy)
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, ref["depth"])
    assert read_pfm(pfm).dtype == np.float32
    side_img = cv2.imread(str(side))
    assert side_img.shape == (480, 1280, 3)
    np.testing.assert_array_equal(side_img[:, 640:], ref["color_inferno_bgr"])


@pytest.mark.parametrize(("height", "width"), [(1, 1), (7, 3), (5, 1921)])
@pytest.mark.parametrize("colormap", ["inferno", "jet"])
def test_written_pngs_read_back_exactly(
    tmp_path: Path, height: int, width: int, colormap: str
) -> None:
    depth = small_depth(height, width)
    image = np.random.default_rng(1).integers(0, 256, (height, width, 3), dtype=np.uint8)
    formats = ["color", "png16", "side"]
    color, png16, side = write_outputs(depth, image, tmp_path, Path("a"), formats, colormap)
    expected = colorize(depth, colormap)
    np.testing.assert_array_equal(cv2.imread(str(color)), expected[..., ::-1])
    with Image.open(color) as im:
        assert im.mode == "P"  # a palette PNG: one byte per pixel
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), expected)
    back16 = cv2.imread(str(png16), cv2.IMREAD_UNCHANGED)
    assert back16.dtype == np.uint16
    np.testing.assert_array_equal(back16, to_png16(depth))
    np.testing.assert_array_equal(cv2.imread(str(side))[..., ::-1], side_by_side(image, expected))


def test_written_colour_map_with_non_finite_depth(tmp_path: Path) -> None:
    depth = small_depth()
    depth[0, 0] = np.nan
    depth[1, 1] = np.inf
    (color,) = write_outputs(depth, None, tmp_path, Path("a"), ["color"])
    np.testing.assert_array_equal(cv2.imread(str(color)), colorize(depth)[..., ::-1])


def test_write_outputs_subset_and_duplicates(tmp_path: Path) -> None:
    paths = write_outputs(small_depth(), None, tmp_path, Path("a"), ["npy", "npy", "png16"])
    assert [p.name for p in paths] == ["a.npy", "a_depth16.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy", "a_depth16.png"]


@pytest.mark.parametrize(
    ("formats", "colormap"), [(["npy", "bogus"], "inferno"), (["npy", "color"], "nope")]
)
def test_bad_options_write_nothing(tmp_path: Path, formats: list[str], colormap: str) -> None:
    with pytest.raises(InvalidOptionError):
        write_outputs(small_depth(), None, tmp_path / "o", Path("a"), formats, colormap)
    assert not (tmp_path / "o").exists()


def test_side_needs_the_image(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="side"):
        write_outputs(small_depth(), None, tmp_path, Path("a"), ["npy", "side"])
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er" / "f.bin"
    atomic_write_bytes(target, b"one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert leftovers(tmp_path) == []


def test_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "f.npy"
    target.write_bytes(b"old")

    def crash(src: object, dst: object) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(fsutil.os, "replace", crash)
    with pytest.raises(OutputError, match=r"cannot write .*f\.npy: disk on fire"):
        write_outputs(small_depth(), None, tmp_path, Path("f"), ["npy"])
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_atomic_write_is_world_readable(tmp_path: Path) -> None:
    """Not mkstemp's 0600: outputs (and caches) must be readable by other users."""
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "f", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "f").stat().st_mode & 0o777 == fsutil.FILE_MODE == 0o644


def test_bad_depth_shape(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="HxW"):
        write_outputs(np.zeros((1, 4, 4), np.float32), None, tmp_path, Path("a"), ["npy"])
