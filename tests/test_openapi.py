"""The API description: offline docs pages, and a schema that says what the server does."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient

from conftest import loaded_estimator
from depthlite import DepthEstimator
from depthlite.server import Settings, create_app
from test_server import wait_ready


@pytest.fixture(scope="module")
def estimator(converted_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> DepthEstimator:
    return loaded_estimator(converted_onnx, tmp_path_factory)


@pytest.fixture(scope="module")
def client(
    estimator: DepthEstimator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    settings = Settings(jobs_dir=tmp_path_factory.mktemp("jobs"))
    with TestClient(create_app(settings, estimator)) as test_client:
        wait_ready(test_client)
        yield test_client


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_nothing_from_other_hosts(client: TestClient, page: str) -> None:
    html = client.get(page)
    assert html.status_code == 200
    urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", html.text)
    assets = [url for url in urls if not url.endswith("openapi.json")]
    assert assets, html.text
    for url in assets:
        assert url.startswith("/") and not url.startswith("//"), url  # this server only
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 1000, url
    assert "fonts.googleapis" not in html.text
