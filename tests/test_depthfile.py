"""Depth files that describe themselves: PNG text chunks, the sidecar, read_depth."""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, PngImagePlugin

import depthlite
from depthlite.errors import InputError, InputNotFoundError
from depthlite.geometry.calibration import KnownPoint, fit_calibration
from depthlite.imageio import DepthInfo, read_depth, to_png16, write_outputs
from depthlite.imageio.png import encode_gray, read_text

H, W = 24, 32
DEPTH = np.random.default_rng(4).uniform(0.5, 9.0, (H, W)).astype(np.float32)
RELATIVE = DepthInfo(kind="relative_inverse_depth", model="midas_v21_small_256")
METRIC = DepthInfo(kind="metric_depth", unit="m", model="depth_anything_v2_metric_indoor_small")
# One 16-bit level of the map's range: what a png16 can resolve (tests allow 1 % more: the
# official formula runs in float32).
LEVEL = float(DEPTH.max() - DEPTH.min()) / 65535


def test_read_depth_is_exported() -> None:
    assert depthlite.read_depth is read_depth
    assert "read_depth" in depthlite.__all__


def test_png16_chunks_say_kind_unit_model_and_range(tmp_path: Path) -> None:
    (path,) = write_outputs(DEPTH, None, tmp_path, Path("a"), ["png16"], info=RELATIVE)
    with Image.open(path) as im:  # any PNG reader sees them
        text = dict(im.text)
    assert text["Depth-Kind"] == "relative_inverse_depth"
    assert text["Depth-Unit"] == "relative"
    assert text["Depth-Model"] == "midas_v21_small_256"
    assert float(text["Depth-Min"]) == float(DEPTH.min())
    assert float(text["Depth-Max"]) == float(DEPTH.max())
    assert text["Depth-Mapping"] == "0=min,65535=max"
    assert "Depth-Calibration" not in text
    assert text["Software"].startswith("depthlite ")
    assert "level 0 is" in text["Description"]
    # The pixels are still exactly the official write_depth levels.
    levels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(levels, to_png16(DEPTH))


def test_read_depth_of_a_png16_is_within_one_level(tmp_path: Path) -> None:
    (path,) = write_outputs(DEPTH, None, tmp_path, Path("a"), ["png16"], info=RELATIVE)
    values, facts = read_depth(path)
    assert values.dtype == np.float32 and values.shape == (H, W)
    assert np.abs(values - DEPTH).max() <= LEVEL * 1.01
    assert facts["kind"] == "relative_inverse_depth" and facts["unit"] is None
    assert facts["model"] == "midas_v21_small_256" and facts["calibration"] is None
    assert facts["facts_from"] == "png text chunks"


def test_metric_png16_is_near_bright_and_reads_back_in_metres(tmp_path: Path) -> None:
    (path,) = write_outputs(DEPTH, None, tmp_path, Path("m"), ["png16"], info=METRIC)
    text = read_text(path.read_bytes())
    assert text["Depth-Mapping"] == "0=max,65535=min" and text["Depth-Unit"] == "m"
    levels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert levels[np.unravel_index(DEPTH.argmin(), DEPTH.shape)] == 65535  # nearest: brightest
    values, facts = read_depth(path)
    assert facts["unit"] == "m"
    assert np.abs(values - DEPTH).max() <= LEVEL * 1.01


def test_a_calibration_travels_in_the_chunks_and_gives_metres(tmp_path: Path) -> None:
    output = (1 / DEPTH - 0.02) / 0.5  # 1/d = 0.5 v + 0.02
    points = [KnownPoint(0, 0, float(DEPTH[0, 0])), KnownPoint(5, 7, float(DEPTH[7, 5]))]
    cal = fit_calibration(output, RELATIVE.kind, points, model=RELATIVE.model)
    info = RELATIVE.calibrated(cal)
    (path,) = write_outputs(output, None, tmp_path, Path("c"), ["png16"], info=info)
    assert json.loads(read_text(path.read_bytes())["Depth-Calibration"])["scale"] == cal.scale
    metres, facts = read_depth(path)
    assert (facts["kind"], facts["unit"]) == ("metric_depth", "m")
    assert facts["calibration"]["shift"] == pytest.approx(0.02)
    # One level of the raw range, carried through 1/d: a small relative error.
    np.testing.assert_allclose(metres, DEPTH, rtol=2e-3)
    raw, raw_facts = read_depth(path, metres=False)
    assert raw_facts["kind"] == "relative_inverse_depth"
    np.testing.assert_allclose(raw, output, atol=float(np.ptp(output)) / 65535 * 1.001)


def test_sidecar_describes_every_file_and_read_depth_uses_it(tmp_path: Path) -> None:
    output = (1 / DEPTH - 0.02) / 0.5
    points = [KnownPoint(0, 0, float(DEPTH[0, 0])), KnownPoint(5, 7, float(DEPTH[7, 5]))]
    info = RELATIVE.calibrated(fit_calibration(output, RELATIVE.kind, points))
    formats = ["png16", "npy", "pfm", "metric", "metric_pfm"]
    paths = write_outputs(output, None, tmp_path, Path("s"), formats, info=info, sidecar=True)
    assert [p.name for p in paths] == [
        "s_depth16.png", "s.npy", "s.pfm", "s_metric.npy", "s_metric.pfm", "s.json",
    ]  # fmt: skip
    side = json.loads((tmp_path / "s.json").read_text())
    assert side["format"] == "depthlite-depth" and side["kind"] == "relative_inverse_depth"
    assert side["files"]["png16"]["mapping"] == "0=min,65535=max"
    assert side["files"]["metric"] == {
        "name": "s_metric.npy", "kind": "metric_depth", "unit": "m", "invalid": "NaN",
    }  # fmt: skip
    assert side["calibration"]["scale"] == pytest.approx(0.5)
    for name in ("s.npy", "s.pfm"):  # raw values + the sidecar's calibration: metres
        metres, facts = read_depth(tmp_path / name)
        assert facts["facts_from"] == "sidecar" and facts["unit"] == "m"
        np.testing.assert_allclose(metres, DEPTH, rtol=1e-5)
    for name in ("s_metric.npy", "s_metric.pfm"):  # already metres: not converted twice
        metres, facts = read_depth(tmp_path / name)
        assert facts["kind"] == "metric_depth"
        np.testing.assert_allclose(metres, DEPTH, rtol=1e-5)


def test_arrays_without_a_sidecar_come_back_as_they_are(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", DEPTH.astype(np.float64))
    values, facts = read_depth(tmp_path / "x.npy")
    assert values.dtype == np.float32
    np.testing.assert_array_equal(values, DEPTH)
    assert facts["kind"] is None and facts["facts_from"].startswith("none")


def test_bad_depth_files(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError):
        read_depth(tmp_path / "missing.png")
    plain = tmp_path / "plain.png"
    plain.write_bytes(encode_gray(to_png16(DEPTH)))
    with pytest.raises(InputError, match="no Depth-Min/Depth-Max text chunks"):
        read_depth(plain)
    colour = tmp_path / "colour.png"
    cv2.imwrite(str(colour), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(InputError, match="16-bit greyscale"):
        read_depth(colour)
    np.save(tmp_path / "three.npy", np.zeros((2, 2, 3), np.float32))
    with pytest.raises(InputError, match="not a depth map"):
        read_depth(tmp_path / "three.npy")
    (tmp_path / "x.tif").write_bytes(b"II*\x00")
    with pytest.raises(InputError, match=r"16-bit PNG, \.npy and \.pfm"):
        read_depth(tmp_path / "x.tif")


def test_text_chunks_of_every_kind_are_read() -> None:
    data = encode_gray(np.zeros((2, 2), np.uint16), text={"A": "latin é", "B": "λ unicode"})
    assert read_text(data) == {"A": "latin é", "B": "λ unicode"}
    im = Image.new("I;16", (2, 2))
    info = PngImagePlugin.PngInfo()
    info.add_text("Z", "compressed " * 20, zip=True)
    info.add_itxt("I", "λ compressed " * 20, zip=True)
    buf = io.BytesIO()
    im.save(buf, "PNG", pnginfo=info)
    assert read_text(buf.getvalue()) == {"Z": "compressed " * 20, "I": "λ compressed " * 20}
    with pytest.raises(ValueError, match="not a PNG"):
        read_text(b"GIF89a")
