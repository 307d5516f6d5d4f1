"""Tests of depthlite.colorize against the official MiDaS colour map."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from depthlite.colorize import (
    COLORMAPS,
    DEFAULT_COLORMAP,
    apply_palette,
    colorize,
    colorize_normalized,
    colormap_id,
    normalize_minmax,
    palette,
)
from depthlite.errors import InvalidOptionError

REFERENCE = Path(__file__).parent / "data" / "midas_v21_small_256_pipeline_seed10_480x640.npz"


@pytest.fixture(scope="module")
def depth() -> np.ndarray:
    with np.load(REFERENCE) as data:
        return data["depth"]


@pytest.fixture(scope="module")
def reference_bgr() -> np.ndarray:
    with np.load(REFERENCE) as data:
        return data["color_inferno_bgr"]


def test_colorize_equals_official_inferno(depth: np.ndarray, reference_bgr: np.ndarray) -> None:
    out = colorize(depth)
    assert out.dtype == np.uint8
    assert out.shape == (480, 640, 3)
    np.testing.assert_array_equal(out, reference_bgr[..., ::-1])


def test_normalize_minmax_8bit_is_the_official_grey(depth: np.ndarray) -> None:
    gray = normalize_minmax(depth, bits=1)
    assert gray.dtype == np.uint8
    assert gray.min() == 0
    assert gray.max() == 255
    np.testing.assert_array_equal(
        cv2.applyColorMap(gray, cv2.COLORMAP_INFERNO), colorize(depth)[..., ::-1]
    )


@pytest.mark.parametrize(("bits", "dtype"), [(1, np.uint8), (2, np.uint16)])
def test_constant_depth_gives_zeros(bits: int, dtype: type) -> None:
    out = normalize_minmax(np.full((3, 4), 7.0, np.float32), bits)
    assert out.dtype == dtype
    assert not out.any()


def test_non_finite_values_become_zero() -> None:
    depth = np.array([[np.nan, 1.0], [np.inf, 3.0]], np.float32)
    out = normalize_minmax(depth, 2)
    np.testing.assert_array_equal(out, [[0, 21845], [0, 65535]])


def test_bad_bits() -> None:
    with pytest.raises(ValueError, match="bits"):
        normalize_minmax(np.zeros((2, 2), np.float32), 3)


def test_colormaps_come_from_cv2() -> None:
    assert DEFAULT_COLORMAP == "inferno"
    assert COLORMAPS["inferno"] == cv2.COLORMAP_INFERNO
    assert COLORMAPS["jet"] == cv2.COLORMAP_JET
    expected = {n for n in dir(cv2) if n.startswith("COLORMAP_")}
    assert {f"COLORMAP_{name.upper()}" for name in COLORMAPS} == expected
    assert all(name == name.lower() for name in COLORMAPS)


def test_colormap_names_are_case_insensitive(depth: np.ndarray) -> None:
    assert colormap_id("Viridis") == cv2.COLORMAP_VIRIDIS
    small = depth[:8, :8]
    np.testing.assert_array_equal(colorize(small, "JET"), colorize(small, "jet"))


def test_unknown_colormap_lists_the_choices() -> None:
    with pytest.raises(InvalidOptionError, match="inferno") as info:
        colorize(np.zeros((2, 2), np.float32), "sparkly")
    assert "viridis" in str(info.value)


def test_colorize_normalized(depth: np.ndarray) -> None:
    norm = (depth - depth.min()) / (depth.max() - depth.min())
    out = colorize_normalized(norm)
    assert out.dtype == np.uint8
    assert out.shape == (480, 640, 3)
    reference = colorize(depth)
    # Same scaling, different float order of operations: at most one level apart somewhere.
    assert np.mean(np.all(out == reference, axis=2)) > 0.99


def test_colorize_normalized_clips_and_handles_nan() -> None:
    norm = np.array([[-1.0, 0.0], [np.nan, 2.0]], np.float32)
    out = colorize_normalized(norm, "bone")
    np.testing.assert_array_equal(out[0, 0], out[0, 1])
    np.testing.assert_array_equal(out[1, 0], out[0, 1])
    top = colorize_normalized(np.ones((1, 1), np.float32), "bone")
    np.testing.assert_array_equal(out[1, 1], top[0, 0])


def test_colorize_needs_2d() -> None:
    with pytest.raises(ValueError, match="2-D"):
        colorize(np.zeros((2, 2, 3), np.float32))


def test_palette_is_the_cv2_colour_map() -> None:
    levels = np.arange(256, dtype=np.uint8).reshape(1, 256)
    for name, cv2_id in COLORMAPS.items():
        table = palette(name)
        assert table.shape == (256, 3)
        assert table.dtype == np.uint8
        np.testing.assert_array_equal(table, cv2.applyColorMap(levels, cv2_id)[0, :, ::-1])


def test_palette_is_cached_and_read_only() -> None:
    table = palette("viridis")
    assert palette("VIRIDIS") is table
    assert not table.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        table[0, 0] = 1
    with pytest.raises(InvalidOptionError):
        palette("sparkly")


def test_colorize_indexes_the_palette_for_every_map(depth: np.ndarray) -> None:
    gray = normalize_minmax(depth, bits=1)
    for name, cv2_id in COLORMAPS.items():
        expected = cv2.cvtColor(cv2.applyColorMap(gray, cv2_id), cv2.COLOR_BGR2RGB)
        out = apply_palette(gray, name)
        np.testing.assert_array_equal(out, palette(name)[gray])
        np.testing.assert_array_equal(out, expected)
        np.testing.assert_array_equal(colorize(depth, name), expected)


def test_colorize_result_is_writable_and_odd_shapes_work() -> None:
    gray = np.random.default_rng(0).integers(0, 256, (7, 1), dtype=np.uint8)
    out = apply_palette(gray[::-1])  # non-contiguous input
    np.testing.assert_array_equal(out, palette()[gray[::-1]])
    out[0, 0] = 0  # callers own the result
    with pytest.raises(ValueError, match="uint8"):
        apply_palette(gray.astype(np.uint16))
