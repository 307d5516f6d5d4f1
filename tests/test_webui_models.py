"""The web UI's model picker against a real two-model ``depthlite serve`` in headless Chromium."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("selenium")
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from webkit import (
    _js_errors,
    _scene,
    _serve,
    _until,
    _upload,
    _wait_result,
    browser,
    open_page,
)

__all__ = ["browser", "open_page"]  # fixtures shared through webkit

pytestmark = pytest.mark.browser

SMALL, DA2 = "midas_v21_small_256", "depth_anything_v2_small"


@pytest.fixture(scope="module")
def two_models(
    converted_onnx: Path,
    exported_model: Callable[[str], Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    weights = f"{SMALL}={converted_onnx},{DA2}={exported_model(DA2)}"
    home = tmp_path_factory.mktemp("webui_models_home")
    with _serve(weights, home, models=f"{SMALL},{DA2}") as base:
        yield base


def _depth_requests(driver: WebDriver) -> list[str]:
    return driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
        ".filter(n => n.includes('/v1/depth'))"
    )


def test_the_picker_lists_the_loaded_models_and_requests_use_the_choice(
    open_page: Callable[..., WebDriver], two_models: str, tmp_path: Path
) -> None:
    driver = open_page(two_models)
    _until(driver, "document.getElementById('model').dataset.ready === 'true'", "model picker")
    picker = Select(driver.find_element(By.ID, "model"))
    assert [o.get_attribute("value") for o in picker.options] == [SMALL, DA2]
    assert picker.first_selected_option.get_attribute("value") == SMALL  # the server's default
    assert "MIT" in driver.find_element(By.ID, "model-licence").text

    _upload(driver, _scene(tmp_path / "garden.png"))
    _wait_result(driver, "inferno")
    assert all(f"model={SMALL}" in url for url in _depth_requests(driver))

    picker.select_by_value(DA2)
    _until(driver, "document.getElementById('model-text').textContent.includes('depth_anything')")
    _until(
        driver,
        f"performance.getEntriesByType('resource').some(e => e.name.includes('model={DA2}'))",
        "a request with the new model",
    )
    _wait_result(driver, "inferno")
    assert "Apache-2.0" in driver.find_element(By.ID, "model-licence").text
    assert "Depth ready" in driver.find_element(By.ID, "status").text
    # The choice is remembered for the next visit.
    driver.refresh()
    _until(driver, f"document.getElementById('model').value === '{DA2}'", "remembered model")
    assert _js_errors(driver) == []
