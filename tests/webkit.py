"""What the browser tests share: ``depthlite serve`` on a free port, headless Chromium, waits."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from servekit import get, serve

ROOT = Path(__file__).resolve().parents[1]
DOCS_SCREENSHOT = ROOT / "docs" / "webui.png"
CHROMIUM = os.environ.get("DEPTHLITE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = (
    os.environ.get("DEPTHLITE_CHROMEDRIVER")
    or shutil.which("chromedriver")
    or "/usr/bin/chromedriver"
)
CHROME_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--no-proxy-server",
    "--hide-scrollbars",
    "--window-size=1280,800",
    # The Live tab's camera: Chromium's synthetic video, granted without a prompt.
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
)
COMPARE_POS = (
    "getComputedStyle(document.getElementById('compare')).getPropertyValue('--pos').trim()"
)
WAIT = 30.0  # seconds: the upper bound of every wait (the first inference warms the model up)
DESKTOP = (1280, 800)
PHONE = (390, 844)
INPUT_SIZE = (320, 200)
API_KEY = "webui-test-key"


# ---------------------------------------------------------------------------------- server


_get = get  # the browser tests' name for it


@contextmanager
def _serve(
    weights: Path | str, home: Path, api_key: str | None = None, models: str | None = None
) -> Iterator[str]:
    """``depthlite serve`` on a free port; yields its base URL once the models are ready.

    ``weights`` is one file, or ``MODEL=PATH,...`` with ``models`` for several.
    """
    args = ("--models", models) if models else ()
    with serve(weights, home, *args, api_key=api_key) as served:  # type: ignore[arg-type]
        yield served.base


@pytest.fixture(scope="module")
def server(converted_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with _serve(converted_onnx, tmp_path_factory.mktemp("webui_home")) as base:
        yield base


# ---------------------------------------------------------------------------------- browser


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        # A failure, not a skip: .ci/run installs both, and a skipped browser test would let
        # a broken page land unnoticed. Locally: deselect with -m "not browser".
        pytest.fail("needs Chromium and ChromeDriver: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: Selenium Manager is never consulted (no downloads).
    service = Service(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.set_page_load_timeout(WAIT)
        driver.set_script_timeout(WAIT)
        yield driver
    finally:
        driver.quit()


def _viewport(driver: WebDriver, size: tuple[int, int], mobile: bool = False) -> None:
    width, height = size
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
    )
    driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": mobile})


@pytest.fixture
def open_page(browser: WebDriver) -> Callable[..., WebDriver]:
    """Load the UI fresh (no stored preferences or key) at a viewport size."""

    def load(base: str, size: tuple[int, int] = DESKTOP, mobile: bool = False) -> WebDriver:
        _viewport(browser, size, mobile)
        browser.get(f"{base}/static/icon.svg")  # same origin: clear what earlier tests stored
        browser.execute_script("localStorage.clear(); sessionStorage.clear();")
        browser.get(f"{base}/")
        browser.get_log("browser")  # drop earlier entries
        _until(browser, "document.getElementById('colormap').dataset.ready === 'true'")
        return browser

    return load


def _until(driver: WebDriver, script: str, what: str | None = None) -> Any:
    """Wait until a JavaScript expression is truthy; returns its value."""
    try:
        return WebDriverWait(driver, WAIT, poll_frequency=0.1).until(
            lambda d: d.execute_script(f"return ({script});")
        )
    except TimeoutException:
        status = driver.execute_script(
            "const s = document.getElementById('status'), e = document.getElementById('error');"
            "return [s && s.textContent, e && !e.hidden && e.textContent];"
        )
        pytest.fail(f"timed out waiting for {what or script}; page status/error: {status}")


def _upload(driver: WebDriver, path: Path) -> None:
    driver.find_element(By.ID, "file-input").send_keys(str(path))


def _wait_result(driver: WebDriver, colormap: str | None = None) -> None:
    condition = (
        "document.getElementById('stage').dataset.state === 'ready'"
        " && document.getElementById('stage').dataset.busy === 'false'"
        " && document.getElementById('depth-img').complete"
        " && document.getElementById('depth-img').naturalWidth > 0"
    )
    if colormap:
        condition += f" && document.getElementById('depth-img').dataset.colormap === '{colormap}'"
    _until(driver, condition, f"the depth image ({colormap or 'any colour map'})")


def _natural_size(driver: WebDriver, element_id: str) -> tuple[int, int]:
    w, h = driver.execute_script(
        "const i = document.getElementById(arguments[0]);return [i.naturalWidth, i.naturalHeight];",
        element_id,
    )
    return int(w), int(h)


def _pixels(driver: WebDriver) -> list[int]:
    """A few RGB samples of the displayed depth image."""
    return driver.execute_script(
        """
        const img = document.getElementById('depth-img');
        const c = document.createElement('canvas');
        c.width = img.naturalWidth; c.height = img.naturalHeight;
        const ctx = c.getContext('2d');
        ctx.drawImage(img, 0, 0);
        const out = [];
        for (const [fx, fy] of [[.25, .25], [.5, .5], [.75, .75], [.1, .9], [.9, .1]]) {
          const x = Math.floor(fx * c.width), y = Math.floor(fy * c.height);
          const d = ctx.getImageData(x, y, 1, 1).data;
          out.push(d[0], d[1], d[2]);
        }
        return out;
        """
    )


def _no_horizontal_overflow(driver: WebDriver) -> None:
    scroll, inner = driver.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth];"
    )
    assert scroll <= inner, f"horizontal overflow: scrollWidth {scroll} > innerWidth {inner}"


def _js_errors(driver: WebDriver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e.get("source") == "javascript"]


# ---------------------------------------------------------------------------------- inputs


def _scene(path: Path, size: tuple[int, int] = INPUT_SIZE) -> Path:
    """A small synthetic landscape: sky, hills, ground and two balls."""
    w, h = size
    yy = np.linspace(0.0, 1.0, h)[:, None, None]
    sky = (1 - yy) * np.array([120, 160, 215]) + yy * np.array([245, 215, 180])
    img = np.broadcast_to(sky, (h, w, 3)).astype(np.uint8).copy()
    im = Image.fromarray(img)
    draw = ImageDraw.Draw(im)
    horizon = int(h * 0.58)
    hills = [(0, horizon)] + [
        (x, int(horizon - 28 - 18 * np.sin(x / 23.0) - 9 * np.sin(x / 7.0)))
        for x in range(0, w + 8, 8)
    ]
    draw.polygon([*hills, (w, horizon)], fill=(110, 125, 150))
    for row in range(horizon, h):
        t = (row - horizon) / max(1, h - horizon)
        draw.line(
            [(0, row), (w, row)], fill=(int(140 - 60 * t), int(165 - 60 * t), int(105 - 50 * t))
        )
    draw.ellipse([w * 0.18, h * 0.6, w * 0.42, h * 0.98], fill=(215, 90, 60))
    draw.ellipse([w * 0.62, h * 0.55, w * 0.74, h * 0.74], fill=(60, 120, 215))
    im.save(path)
    return path
