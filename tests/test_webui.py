"""The web UI end to end: headless Chromium (Selenium) against a real ``depthlite serve``.

The server runs as a subprocess on a free 127.0.0.1 port with the synthetic converted model;
the browser is Debian's Chromium with its matching ChromeDriver, passed explicitly so Selenium
Manager never goes to the network. Every wait is bounded and both processes are stopped.

``DEPTHLITE_WEBUI_SCREENSHOT=1 pytest tests/test_webui.py`` also refreshes ``docs/webui.png``
(the README's screenshot); otherwise the screenshot only goes to the test's tmp dir.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

from webkit import (
    API_KEY,
    COMPARE_POS,
    DESKTOP,
    DOCS_SCREENSHOT,
    INPUT_SIZE,
    PHONE,
    WAIT,
    _get,
    _js_errors,
    _natural_size,
    _no_horizontal_overflow,
    _pixels,
    _scene,
    _serve,
    _until,
    _upload,
    _wait_result,
    browser,
    open_page,
    server,
)

__all__ = ["browser", "open_page", "server"]  # fixtures shared through webkit

pytestmark = pytest.mark.browser

# ---------------------------------------------------------------------------------- tests


def test_upload_shows_depth_and_colormap_re_requests(
    open_page: Callable[..., WebDriver], server: str, tmp_path: Path
) -> None:
    driver = open_page(server)

    # The colour maps come from the server's schema, with inferno selected.
    status, body = _get(f"{server}/openapi.json")
    assert status == 200
    params = json.loads(body)["paths"]["/v1/depth"]["post"]["parameters"]
    schema = next(p for p in params if p["name"] == "colormap")["schema"]
    offered = [
        o.get_attribute("value") for o in Select(driver.find_element(By.ID, "colormap")).options
    ]
    assert len(offered) > 1
    assert set(offered) == set(_enum(json.loads(body), schema))
    assert driver.find_element(By.ID, "colormap").get_attribute("value") == "inferno"

    # The header names the served model.
    status, body = _get(f"{server}/v1/models")
    model = json.loads(body)["models"][0]
    _until(driver, "document.getElementById('model-info').dataset.state === 'ok'", "model info")
    header = driver.find_element(By.ID, "model-info").text
    assert model["name"] in header
    assert model["backend"] in header

    _upload(driver, _scene(tmp_path / "garden.png"))
    _wait_result(driver, "inferno")
    assert _natural_size(driver, "depth-img") == INPUT_SIZE
    assert _natural_size(driver, "original-img") == INPUT_SIZE
    assert "Depth ready" in driver.find_element(By.ID, "status").text
    timing = driver.find_element(By.ID, "timing-list").text
    assert "inference" in timing
    assert "ms" in driver.find_element(By.ID, "latency-total").text
    assert driver.find_element(By.ID, "legend").is_displayed()

    shot = tmp_path / "webui.png"
    driver.execute_script("window.scrollTo(0, 0); document.activeElement.blur();")
    driver.save_screenshot(str(shot))
    with Image.open(shot) as im:
        assert im.size == DESKTOP
    if os.environ.get("DEPTHLITE_WEBUI_SCREENSHOT"):
        shutil.copyfile(shot, DOCS_SCREENSHOT)

    # Another colour map re-requests the depth of the same image.
    before_src = driver.find_element(By.ID, "depth-img").get_attribute("src")
    before_pixels = _pixels(driver)
    other = "viridis" if "viridis" in offered else next(v for v in offered if v != "inferno")
    Select(driver.find_element(By.ID, "colormap")).select_by_value(other)
    _wait_result(driver, other)
    assert driver.find_element(By.ID, "depth-img").get_attribute("src") != before_src
    assert _natural_size(driver, "depth-img") == INPUT_SIZE
    assert _pixels(driver) != before_pixels
    assert other.replace("_", " ") in driver.find_element(By.ID, "depth-caption").text

    _check_downloads(driver, tmp_path / "downloads")

    # Only local resources were loaded (no CDN, no fonts), and nothing threw.
    urls = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name);"
    )
    assert all(u.startswith(server) or u.startswith("blob:") for u in urls), urls
    assert _js_errors(driver) == []


def _check_downloads(driver: WebDriver, downloads: Path) -> None:
    """The colour PNG at hand, the 16-bit PNG and the NPY fetched on demand, with good names."""
    downloads.mkdir()
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    expected = {"color": "garden_color.png", "png16": "garden_depth16.png", "npy": "garden.npy"}
    for fmt, name in expected.items():
        driver.find_element(By.CSS_SELECTOR, f'[data-download="{fmt}"]').click()
        WebDriverWait(driver, WAIT, poll_frequency=0.1).until(
            lambda _d, name=name: (
                (downloads / name).is_file()
                and not any(p.suffix == ".crdownload" for p in downloads.iterdir())
            )
        )
    with Image.open(downloads / "garden_color.png") as im:
        assert im.size == INPUT_SIZE
    with Image.open(downloads / "garden_depth16.png") as im:
        assert im.size == INPUT_SIZE
        assert im.mode.startswith("I")  # 16-bit greyscale
    depth = np.load(downloads / "garden.npy")
    assert depth.shape == INPUT_SIZE[::-1]
    assert depth.dtype == np.float32


def _enum(spec: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """The enum of a (possibly $ref'd or anyOf-wrapped) OpenAPI schema."""
    if "$ref" in schema:
        node: Any = spec
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        return _enum(spec, node)
    if "enum" in schema:
        return list(schema["enum"])
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, []):
            found = _enum(spec, sub)
            if found:
                return found
    return []


def test_non_image_shows_a_readable_error(
    open_page: Callable[..., WebDriver], server: str, tmp_path: Path
) -> None:
    driver = open_page(server)
    fake = tmp_path / "notes.png"
    fake.write_text("These are meeting notes, not a picture.\n")
    _upload(driver, fake)
    _until(driver, "!document.getElementById('error').hidden", "the error message")

    error = driver.find_element(By.ID, "error")
    assert error.get_attribute("role") == "alert"
    assert error.get_attribute("data-status") in {"415", "422"}
    title = driver.find_element(By.ID, "error-title").text
    detail = driver.find_element(By.ID, "error-detail").text
    assert "image" in title.lower()  # "Not an image" (415) or "Couldn't read this image" (422)
    assert len(detail) > 10
    for raw in ("{", "}", '"error"', "Traceback"):
        assert raw not in title + detail
    # No stale result and no pointless retry for a bad file.
    assert driver.find_element(By.ID, "stage").get_attribute("data-state") == "empty"
    assert not driver.find_element(By.ID, "retry").is_displayed()
    assert _js_errors(driver) == []

    # A real image afterwards clears the error.
    _upload(driver, _scene(tmp_path / "ok.png"))
    _wait_result(driver)
    assert not error.is_displayed()


def test_phone_viewport_has_no_horizontal_overflow(
    open_page: Callable[..., WebDriver], server: str, tmp_path: Path
) -> None:
    driver = open_page(server, PHONE, mobile=True)
    assert driver.execute_script("return window.innerWidth;") == PHONE[0]
    _no_horizontal_overflow(driver)

    _upload(driver, _scene(tmp_path / "wide.png", (1200, 500)))
    _wait_result(driver)
    _no_horizontal_overflow(driver)

    # The before/after slider: a labelled range input, driven by the keyboard.
    driver.find_element(By.CSS_SELECTOR, 'input[name="view"][value="compare"]').find_element(
        By.XPATH, ".."
    ).click()
    slider = driver.find_element(By.ID, "compare-range")
    assert slider.is_displayed()
    assert slider.get_attribute("type") == "range"
    label = driver.find_element(By.CSS_SELECTOR, 'label[for="compare-range"]')
    assert label.text.strip()
    height = slider.size["height"]
    assert height >= 40, f"slider is {height}px tall: too small to touch"
    slider.send_keys(Keys.HOME)
    _until(driver, f"{COMPARE_POS} === '0%'")
    slider.send_keys(Keys.END)
    _until(driver, f"{COMPARE_POS} === '100%'")
    _no_horizontal_overflow(driver)

    fake = tmp_path / "notes.png"
    fake.write_text("not an image")
    _upload(driver, fake)
    _until(driver, "!document.getElementById('error').hidden", "the error message")
    _no_horizontal_overflow(driver)


def test_drop_zone_is_a_keyboard_button_and_paste_works(
    open_page: Callable[..., WebDriver], server: str
) -> None:
    driver = open_page(server)
    # The drop zone is a focusable button that opens the (intercepted) file picker.
    driver.execute_script(
        "window.__picker = 0; document.getElementById('file-input').addEventListener('click',"
        " (e) => { e.preventDefault(); window.__picker += 1; });"
    )
    zone = driver.find_element(By.ID, "dropzone")
    assert zone.tag_name == "button"
    driver.execute_script("arguments[0].focus();", zone)
    assert driver.switch_to.active_element == zone
    zone.send_keys(Keys.ENTER)
    zone.send_keys(Keys.SPACE)
    _until(driver, "window.__picker === 2", "the file picker to open twice")

    # A pasted image (a clipboard event carrying a file) is estimated like a picked one.
    driver.execute_script(
        """
        const c = document.createElement('canvas'); c.width = 160; c.height = 96;
        const ctx = c.getContext('2d');
        const g = ctx.createLinearGradient(0, 0, 0, 96);
        g.addColorStop(0, '#88aadd'); g.addColorStop(1, '#446622');
        ctx.fillStyle = g; ctx.fillRect(0, 0, 160, 96);
        c.toBlob((blob) => {
          const data = new DataTransfer();
          data.items.add(new File([blob], 'image.png', {type: 'image/png'}));
          document.dispatchEvent(new ClipboardEvent('paste', {clipboardData: data}));
        }, 'image/png');
        """
    )
    _wait_result(driver)
    assert _natural_size(driver, "depth-img") == (160, 96)


@pytest.fixture(scope="module")
def keyed_server(converted_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with _serve(converted_onnx, tmp_path_factory.mktemp("webui_keyed"), api_key=API_KEY) as base:
        yield base


def test_api_key_prompt_and_retry(
    open_page: Callable[..., WebDriver], keyed_server: str, tmp_path: Path
) -> None:
    driver = open_page(keyed_server)
    _upload(driver, _scene(tmp_path / "secret.png"))
    _until(driver, "!document.getElementById('api-key-form').hidden", "the API key form")
    assert driver.find_element(By.ID, "error").get_attribute("data-status") == "401"
    key_input = driver.find_element(By.ID, "api-key")
    assert driver.switch_to.active_element == key_input

    key_input.send_keys("wrong-key", Keys.ENTER)
    _until(
        driver,
        "!document.getElementById('api-key-form').hidden"
        " && document.getElementById('error-title').textContent.includes('not accepted')",
        "the rejected-key message",
    )
    driver.find_element(By.ID, "api-key").send_keys(API_KEY, Keys.ENTER)
    _wait_result(driver)
    assert _natural_size(driver, "depth-img") == INPUT_SIZE
    stored = driver.execute_script(
        "return [sessionStorage.getItem('depthlite.apiKey'), JSON.stringify(localStorage)];"
    )
    assert stored[0] == API_KEY
    assert API_KEY not in stored[1]
