"""The web UI's depth probe, calibration in metres and 3D view, in headless Chromium.

A real ``depthlite serve`` (the synthetic converted model) and Debian's Chromium, as in
test_webui.py. Pixels are clicked at their centres in viewport coordinates, so the test knows
exactly which pixel it clicked; the numbers the page shows are checked against depthlite's own
estimator and ``fit_calibration`` on the same image and pixels.

``DEPTHLITE_WEBUI_SCREENSHOT=1 pytest tests/test_webui_3d.py`` also refreshes
``docs/images/3d-view.png`` (the README's screenshot of the 3D view).
"""

from __future__ import annotations

import math
import os
import shutil
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from plyfile import PlyData
from selenium.webdriver.common.actions.action_builder import ActionBuilder
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from depthlite import DepthEstimator
from depthlite.geometry.calibration import Calibration, KnownPoint, fit_calibration
from webkit import (
    DESKTOP,
    INPUT_SIZE,
    PHONE,
    ROOT,
    WAIT,
    _js_errors,
    _no_horizontal_overflow,
    _scene,
    _until,
    _upload,
    _wait_result,
    browser,
    open_page,
    server,
)

__all__ = ["browser", "open_page", "server"]  # fixtures shared through webkit

pytestmark = pytest.mark.browser

DOCS_3D_SCREENSHOT = ROOT / "docs" / "images" / "3d-view.png"
# The page reads float32 values from the server's npy; the test's estimator runs the same model
# on one thread, which may differ in the last bits: 1e-4 of the depth range covers that.
VALUE_TOL = 1e-4
# Metres: the page maps float32 values in float64, the library in float32.
METRES_RTOL = 1e-3
NEAR_M, FAR_M = 2.5, 7.8  # the two typed distances


@pytest.fixture(scope="module")
def reference(converted_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The scene image and depthlite's own depth map of it (what the server computes)."""
    path = _scene(tmp_path_factory.mktemp("scene3d") / "garden.png")
    est = DepthEstimator(weights=converted_onnx, threads=1, progress=False)
    result = est.predict(path)
    assert result.depth.shape == INPUT_SIZE[::-1]
    return {"path": path, "depth": result.depth, "kind": result.kind}


# ---------------------------------------------------------------------------------- helpers


def _pixel_point(driver: WebDriver, element_id: str, x: int, y: int) -> tuple[int, int]:
    """Viewport coordinates of the centre of image pixel (x, y) of a displayed image."""
    left, top, width, height, nat_w, nat_h = driver.execute_script(
        "const i = document.getElementById(arguments[0]);"
        "i.scrollIntoView({block: 'center', inline: 'nearest'});"
        "const r = i.getBoundingClientRect();"
        "return [r.left, r.top, r.width, r.height, i.naturalWidth, i.naturalHeight];",
        element_id,
    )
    # The side-by-side images are not letterboxed at this size, so the mapping is plain and
    # at least 1.1 screen pixels per image pixel, so the rounded point stays inside the pixel.
    assert abs(width / height - nat_w / nat_h) < 0.01, "image letterboxed"
    assert width / nat_w > 1.1, f"image shown too small ({width / nat_w:.2f} px per pixel)"
    cx = left + (x + 0.5) * width / nat_w
    cy = top + (y + 0.5) * height / nat_h
    return round(cx), round(cy)


def _pointer(driver: WebDriver, element_id: str, x: int, y: int, click: bool = False) -> None:
    cx, cy = _pixel_point(driver, element_id, x, y)
    actions = ActionBuilder(driver)
    actions.pointer_action.move_to_location(cx, cy)
    if click:
        actions.pointer_action.click()
    actions.perform()


def _readout(driver: WebDriver, x: int, y: int) -> dict[str, str]:
    _until(
        driver,
        f"document.getElementById('probe-readout').dataset.x === '{x}'"
        f" && document.getElementById('probe-readout').dataset.y === '{y}'",
        f"the readout of pixel {x},{y}",
    )
    return driver.execute_script(
        "const r = document.getElementById('probe-readout');"
        "return {text: r.textContent, ...r.dataset};"
    )


def _requests(driver: WebDriver, needle: str) -> list[str]:
    return driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
        ".filter(n => n.includes(arguments[0]));",
        needle,
    )


def _pick_points(depth: np.ndarray) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """Two pixels at clearly different depths, the nearer first, and a third to hover."""
    h, w = depth.shape
    candidates = [(int(w * fx), int(h * fy)) for fx in (0.2, 0.5, 0.8) for fy in (0.3, 0.6, 0.85)]
    candidates.sort(key=lambda p: float(depth[p[1], p[0]]))
    far, near = candidates[0], candidates[-1]
    assert depth[near[1], near[0]] - depth[far[1], far[0]] > 0.05 * np.ptp(depth)
    return near, far, (w // 3, h // 2)


def _calibrate(
    driver: WebDriver, near: tuple[int, int], far: tuple[int, int], distances: tuple[float, float]
) -> None:
    """Two clicks (one per image, both map the same grid) and two typed distances, then fit."""
    driver.find_element(By.ID, "calibrate-toggle").click()
    _until(driver, "!document.getElementById('calibration').hidden", "the calibration panel")
    for i, (element_id, px, metres) in enumerate(
        [("depth-img", near, distances[0]), ("original-img", far, distances[1])], start=1
    ):
        _pointer(driver, element_id, *px, click=True)
        _until(driver, f"document.getElementById('calib-distance-{i}')", f"point {i}")
        # The new point's distance field has the focus: the user types straight away.
        assert driver.switch_to.active_element.get_attribute("id") == f"calib-distance-{i}"
        driver.switch_to.active_element.send_keys(str(metres))
    driver.find_element(By.ID, "calib-run").click()


def _library_fit(depth: np.ndarray, kind: str, near: Any, far: Any) -> Calibration:
    points = [KnownPoint(*near, NEAR_M), KnownPoint(*far, FAR_M)]
    return fit_calibration(depth, kind, points, fit="auto")


def _canvas_stats(driver: WebDriver) -> dict[str, Any]:
    """Pixels of the WebGL canvas that differ from its background (its corner), and colours."""
    return driver.execute_script(
        """
        const c = document.querySelector('#view3d-host canvas');
        const t = document.createElement('canvas'); t.width = c.width; t.height = c.height;
        const ctx = t.getContext('2d'); ctx.drawImage(c, 0, 0);
        const d = ctx.getImageData(0, 0, t.width, t.height).data;
        const bg = [d[0], d[1], d[2]]; let lit = 0; const colours = new Set();
        for (let i = 0; i < d.length; i += 4) {
          const [r, g, b] = [d[i], d[i + 1], d[i + 2]];
          if (Math.abs(r - bg[0]) + Math.abs(g - bg[1]) + Math.abs(b - bg[2]) > 30) {
            lit += 1;
            colours.add((r >> 4) * 256 + (g >> 4) * 16 + (b >> 4));
          }
        }
        return {width: t.width, height: t.height, bg, lit, colours: colours.size};
        """
    )


def _open_3d(driver: WebDriver) -> None:
    driver.find_element(By.CSS_SELECTOR, 'input[name="view"][value="3d"]').find_element(
        By.XPATH, ".."
    ).click()
    _until(
        driver,
        "document.getElementById('view3d-host').dataset.points"
        " && !document.getElementById('view3d-host').hasAttribute('aria-busy')",
        "the point cloud",
    )


# ---------------------------------------------------------------------------------- tests


def test_click_reads_the_value_and_calibration_gives_library_metres(
    open_page: Callable[..., WebDriver], server: str, reference: dict[str, Any]
) -> None:
    driver = open_page(server)
    depth, kind = reference["depth"], reference["kind"]
    _upload(driver, reference["path"])
    _wait_result(driver)
    assert _requests(driver, "format=npy") == []  # values are fetched only when needed

    # Click (no calibration): the model's value at that pixel, named by its kind.
    near, far, probe = _pick_points(depth)
    _pointer(driver, "depth-img", *probe, click=True)
    read = _readout(driver, *probe)
    assert float(read["value"]) == pytest.approx(
        float(depth[probe[1], probe[0]]), abs=VALUE_TOL * float(np.ptp(depth))
    )
    assert "relative inverse depth" in read["text"]
    assert "metres" not in read and " m" not in read["text"]
    assert len(_requests(driver, "format=npy")) == 1

    _calibrate(driver, near, far, (NEAR_M, FAR_M))
    _until(driver, "document.getElementById('legend').dataset.calibrated === 'true'", "the fit")
    expected = _library_fit(depth, kind, near, far)
    rows = driver.find_elements(By.CSS_SELECTOR, "#calib-points .calib-result")
    assert len(rows) == 2
    for row, point in zip(rows, expected.points, strict=True):
        # Two points, two unknowns: the fit is exact, and the page shows the server's numbers.
        assert float(row.get_attribute("data-predicted")) == pytest.approx(point.predicted, 1e-3)
        assert abs(float(row.get_attribute("data-residual"))) < 1e-3
        assert "residual" in row.text
    assert "Calibrated from 2 points" in driver.find_element(By.ID, "calib-summary").text

    # Hover another pixel: metres, the library's value there.
    _pointer(driver, "depth-img", probe[0] + 7, probe[1] - 5)
    read = _readout(driver, probe[0] + 7, probe[1] - 5)
    metres = float(expected.apply(depth)[probe[1] - 5, probe[0] + 7])
    assert math.isfinite(metres)
    assert float(read["metres"]) == pytest.approx(metres, rel=METRES_RTOL)
    shown = f"{metres:.2f} m" if metres < 10 else " m"
    assert shown in read["text"]
    assert len(_requests(driver, "format=npy")) == 1  # cached for the image

    # The scale bar: metres at both ends (far: the smallest value, near: the largest), ticks.
    ends = driver.execute_script(
        "return [document.getElementById('legend-far').dataset.metres,"
        " document.getElementById('legend-near').dataset.metres];"
    )

    def metres_at(value: float) -> float:
        return float(expected.apply(np.array([[value]], dtype=np.float32))[0, 0])

    assert float(ends[1]) == pytest.approx(metres_at(float(depth.max())), rel=METRES_RTOL)
    far_end = metres_at(float(depth.min()))
    if math.isfinite(far_end):
        assert float(ends[0]) == pytest.approx(far_end, rel=METRES_RTOL)
    ticks = driver.find_elements(By.CSS_SELECTOR, "#legend-ticks .tick")
    assert ticks, "no metre ticks on the scale bar"
    lefts = [float(t.value_of_css_property("left").removesuffix("px")) for t in ticks]
    assert lefts == sorted(lefts)
    assert all(t.text.endswith(" m") for t in ticks)
    assert _js_errors(driver) == []


def test_refused_fits_show_the_server_reason(
    open_page: Callable[..., WebDriver], server: str, reference: dict[str, Any]
) -> None:
    driver = open_page(server)
    _upload(driver, reference["path"])
    _wait_result(driver)
    near, far, _ = _pick_points(reference["depth"])
    error = "document.getElementById('calib-error')"

    # The nearer point typed as the farther one: a negative scale, refused by the server.
    _calibrate(driver, near, far, (FAR_M, NEAR_M))
    _until(driver, f"!{error}.hidden", "the refusal")
    assert driver.find_element(By.ID, "calib-error-title").text == "Calibration refused"
    detail = driver.find_element(By.ID, "calib-error-detail").text
    assert "negative scale" in detail
    assert driver.find_element(By.ID, "calib-error").get_attribute("role") == "alert"
    assert driver.find_element(By.ID, "legend").get_attribute("data-calibrated") == "false"

    # Too few points is caught before any request, with what to do.
    driver.find_element(By.ID, "calib-clear").click()
    _pointer(driver, "depth-img", *near, click=True)
    driver.switch_to.active_element.send_keys("3")
    calls = len(_requests(driver, "/v1/calibration"))
    driver.find_element(By.ID, "calib-run").click()
    _until(driver, f"!{error}.hidden", "the too-few-points message")
    assert "at least two" in driver.find_element(By.ID, "calib-error-detail").text
    assert len(_requests(driver, "/v1/calibration")) == calls

    # The same pixel twice: one model value, no scale and shift; the server says so.
    _pointer(driver, "depth-img", *near, click=True)
    driver.switch_to.active_element.send_keys("6")
    driver.find_element(By.ID, "calib-run").click()
    _until(
        driver,
        f"!{error}.hidden && {error}.textContent.includes('same model value')",
        "the degenerate-fit refusal",
    )
    assert _js_errors(driver) == []


def test_3d_view_renders_the_calibrated_cloud_and_downloads_its_ply(
    open_page: Callable[..., WebDriver], server: str, reference: dict[str, Any], tmp_path: Path
) -> None:
    driver = open_page(server)
    depth, kind = reference["depth"], reference["kind"]
    _upload(driver, reference["path"])
    _wait_result(driver)
    near, far, _ = _pick_points(depth)
    _calibrate(driver, near, far, (NEAR_M, FAR_M))
    _until(driver, "document.getElementById('legend').dataset.calibrated === 'true'", "the fit")

    _open_3d(driver)
    (ply_url,) = _requests(driver, "format=ply")
    assert f"known={near[0]}%2C{near[1]}%3D{NEAR_M}" in ply_url
    assert "metres" in driver.find_element(By.ID, "view3d-info").text
    stats = _canvas_stats(driver)
    assert stats["width"] > 200 and stats["height"] > 150
    # Non-blank: a good share of the canvas is points, in many colours (the photo's).
    assert stats["lit"] > 0.02 * stats["width"] * stats["height"], stats
    assert stats["colours"] > 20, stats

    # Bigger points cover more of the canvas; orbiting by keyboard changes the picture.
    slider = driver.find_element(By.ID, "point-size")
    slider.send_keys(Keys.END)
    _until(driver, "document.getElementById('point-size').value === '8'")
    bigger = _canvas_stats(driver)
    assert bigger["lit"] > stats["lit"] * 1.3, (stats, bigger)
    host = driver.find_element(By.ID, "view3d-host")
    driver.execute_script("arguments[0].focus();", host)
    picture = "return document.querySelector('#view3d-host canvas').toDataURL();"
    before = driver.execute_script(picture)
    host.send_keys(Keys.ARROW_LEFT, Keys.ARROW_LEFT, Keys.ARROW_UP, "+")
    after = driver.execute_script(picture)
    assert after != before

    ply = _download_ply(driver, tmp_path / "downloads")
    vertex = ply["vertex"]
    assert len(vertex) == int(host.get_attribute("data-points"))
    assert [p.name for p in vertex.properties] == ["x", "y", "z", "red", "green", "blue"]
    assert vertex["x"].dtype == np.float32 and vertex["red"].dtype == np.uint8
    # Metres: the nearest point is the library's nearest calibrated depth (the camera looks
    # down -z), which a relative-unit cloud (nearest ~1) would not be.
    metres = _library_fit(depth, kind, near, far).apply(depth)
    assert float(np.min(-vertex["z"])) == pytest.approx(float(np.nanmin(metres)), rel=METRES_RTOL)
    # The very bytes the server sends for this request.
    request = urllib.request.Request(ply_url, data=reference["path"].read_bytes(), method="POST")
    request.add_header("Content-Type", "image/png")
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request) as answer:
        assert (tmp_path / "downloads" / "garden.ply").read_bytes() == answer.read()
    assert _js_errors(driver) == []


def _download_ply(driver: WebDriver, downloads: Path) -> PlyData:
    downloads.mkdir()
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    driver.find_element(By.ID, "ply-download").click()
    target = downloads / "garden.ply"
    WebDriverWait(driver, WAIT, poll_frequency=0.1).until(
        lambda _d: (
            target.is_file() and not any(p.suffix == ".crdownload" for p in downloads.glob("*"))
        )
    )
    return PlyData.read(str(target))


def test_keyboard_probe_and_narrow_screens(
    open_page: Callable[..., WebDriver], server: str, reference: dict[str, Any]
) -> None:
    driver = open_page(server, PHONE, mobile=True)
    depth = reference["depth"]
    _upload(driver, reference["path"])
    _wait_result(driver)
    _no_horizontal_overflow(driver)

    # The depth map is a keyboard widget: focus puts a cursor at the centre, arrows move it.
    wrap = driver.find_element(By.ID, "depth-wrap")
    assert wrap.get_attribute("tabindex") == "0" and wrap.get_attribute("aria-label")
    driver.execute_script("arguments[0].focus();", wrap)
    w, h = INPUT_SIZE
    centre = (w // 2, h // 2)
    read = _readout(driver, *centre)
    assert float(read["value"]) == pytest.approx(
        float(depth[centre[1], centre[0]]), abs=VALUE_TOL * float(np.ptp(depth))
    )
    step = max(1, round(max(w, h) * 0.01))
    wrap.send_keys(Keys.ARROW_RIGHT, Keys.ARROW_DOWN)
    _readout(driver, centre[0] + step, centre[1] + step)
    # Calibrating, Enter adds the cursor's pixel as a known point.
    driver.find_element(By.ID, "calibrate-toggle").click()
    driver.execute_script("arguments[0].focus();", wrap)
    wrap.send_keys(Keys.ENTER)
    _until(driver, "document.getElementById('calib-distance-1')", "a point from the keyboard")
    point = driver.find_element(By.CSS_SELECTOR, "#calib-points li")
    assert (point.get_attribute("data-x"), point.get_attribute("data-y")) == (
        str(centre[0] + step),
        str(centre[1] + step),
    )
    assert driver.find_element(By.CSS_SELECTOR, 'label[for="calib-distance-1"]').text
    _no_horizontal_overflow(driver)

    # The 3D view's controls are reached with Tab, in order, each labelled.
    _open_3d(driver)
    _no_horizontal_overflow(driver)
    host = driver.find_element(By.ID, "view3d-host")
    driver.execute_script("arguments[0].focus();", host)
    order = []
    for _ in range(4):
        driver.switch_to.active_element.send_keys(Keys.TAB)
        order.append(driver.switch_to.active_element.get_attribute("id"))
    assert order == ["point-size", "fov", "view3d-reset", "ply-download"]
    for control in ("point-size", "fov"):
        assert driver.find_element(By.CSS_SELECTOR, f'label[for="{control}"]').text
    assert _js_errors(driver) == []


def _at_fraction(driver: WebDriver, fx: float, fy: float, click: bool = False) -> dict[str, str]:
    """Point at a fraction of the depth image's box; the readout names the pixel it hit."""
    img = driver.find_element(By.ID, "depth-img")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", img)
    rect = driver.execute_script("return arguments[0].getBoundingClientRect().toJSON();", img)
    # Off the image first (the readout empties), so the wait below sees the new pixel's value.
    away = ActionBuilder(driver)
    away.pointer_action.move_to_location(1, 1)
    away.perform()
    actions = ActionBuilder(driver)
    actions.pointer_action.move_to_location(
        round(rect["left"] + fx * rect["width"]), round(rect["top"] + fy * rect["height"])
    )
    if click:
        actions.pointer_action.click()  # while calibrating: adds a point, the readout is idle
    actions.perform()
    if click:
        return {}
    _until(driver, "document.getElementById('probe-readout').dataset.value", "a readout")
    return driver.execute_script("return {...document.getElementById('probe-readout').dataset};")


def test_3d_view_screenshot_of_the_sample_scene(
    open_page: Callable[..., WebDriver], server: str, tmp_path: Path
) -> None:
    """The README's picture: the page's own sample scene, calibrated, in the 3D view."""
    driver = open_page(server, DESKTOP)
    driver.find_element(By.ID, "sample-button").click()
    _wait_result(driver)
    # Two points on the ground, the one the model sees nearer gets the shorter distance.
    spots = [(0.5, 0.95), (0.15, 0.62)]
    values = [float(_at_fraction(driver, *spot)["value"]) for spot in spots]
    if values[0] < values[1]:
        spots.reverse()
    driver.find_element(By.ID, "calibrate-toggle").click()
    for i, (spot, metres) in enumerate(zip(spots, (3.0, 12.0), strict=True), start=1):
        _at_fraction(driver, *spot, click=True)
        _until(driver, f"document.getElementById('calib-distance-{i}')", f"point {i}")
        driver.switch_to.active_element.send_keys(str(metres))
    driver.find_element(By.ID, "calib-run").click()
    _until(driver, "document.getElementById('legend').dataset.calibrated === 'true'", "the fit")
    _open_3d(driver)
    assert "metres" in driver.find_element(By.ID, "view3d-info").text
    driver.execute_script(
        "document.getElementById('result-card').scrollIntoView({block: 'start'});"
        "document.activeElement.blur();"
    )
    assert _canvas_stats(driver)["lit"] > 1000
    shot = tmp_path / "3d-view.png"
    driver.save_screenshot(str(shot))
    if os.environ.get("DEPTHLITE_WEBUI_SCREENSHOT"):
        DOCS_3D_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS_3D_SCREENSHOT)
