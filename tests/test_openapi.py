"""The API description: offline docs pages, and a schema that says what the server does."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient

from depthlite.server import Settings, create_app


@pytest.fixture(scope="module")
def client(app_client: TestClient) -> TestClient:
    return app_client


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


def _walk(node: object) -> Iterator[tuple[str, object]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def test_schema_uses_only_forms_every_openapi_tool_reads(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert not [key for key, _ in _walk(spec) if key == "prefixItems"]
    ok = spec["paths"]["/v1/depth"]["post"]["responses"]["200"]["content"]["application/json"]
    summary = ok["schema"]["properties"]["network_input"]
    assert summary["type"] == "array" and summary["minItems"] == summary["maxItems"] == 2


def test_every_error_is_documented_as_the_body_the_server_sends(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    error = {"$ref": "#/components/schemas/ErrorBody"}
    expected = {
        ("/v1/jobs", "post"): {"202", "400", "413", "422", "503"},
        ("/v1/jobs/{job_id}", "get"): {"200", "304", "400", "404"},
        ("/v1/jobs/{job_id}", "delete"): {"200", "202", "204", "400", "404"},
        ("/v1/jobs/{job_id}/result", "get"): {"200", "400", "404", "409"},
        ("/v1/depth", "post"): {"200", "400", "413", "415", "422", "503"},
    }
    for (path, method), statuses in expected.items():
        responses = spec["paths"][path][method]["responses"]
        assert statuses <= set(responses), (path, method, sorted(responses))
        for status, response in responses.items():
            if status.startswith(("4", "5")):
                assert response["content"]["application/json"]["schema"] == error, status


def test_job_submission_documents_its_upload_body(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/jobs"]["post"]["requestBody"]
    form = body["content"]["multipart/form-data"]["schema"]
    assert form["properties"]["file"]["type"] == "array"
    assert form["properties"]["file"]["items"]["format"] == "binary"
    assert "application/octet-stream" in body["content"]


def test_security_is_declared_exactly_when_a_key_is_required(client: TestClient) -> None:
    estimator = client.app.state.service.estimator  # type: ignore[attr-defined]
    open_spec = client.get("/openapi.json").json()
    assert not [key for key, _ in _walk(open_spec) if key == "security"]
    keyed = TestClient(create_app(Settings(api_key="k"), estimator))
    spec = keyed.get("/openapi.json").json()
    for path, method in (("/metrics", "get"), ("/v1/jobs", "post"), ("/v1/depth", "post")):
        operation = spec["paths"][path][method]
        assert operation["security"], path
        assert "401" in operation["responses"], path
    assert keyed.get("/metrics").status_code == 401
    assert "security" not in spec["paths"]["/healthz"]["get"]


def test_form_fields_other_than_files_are_refused(client: TestClient) -> None:
    files = [("file", ("a.png", b"x", "image/png")), ("other", (None, "1"))]
    for path in ("/v1/depth", "/v1/jobs"):
        response = client.post(path, files=files)
        assert response.status_code == 422, response.text
        assert "other" in response.json()["detail"]
