"""The OpenAPI document, made to say what this server does.

FastAPI's generator is right about parameters and bodies but not about a few facts that
depend on how the app is set up; they are fixed here, in one pass over the document:

* security is declared only if an API key is configured (an open server accepts requests
  without one), and every secured operation documents its 401;
* every validation error is our ``ErrorBody``, not FastAPI's ``HTTPValidationError``;
* every operation documents 400 (the trusted-host check and a client gone mid-upload answer
  it on any route) and 408 (the slow-client deadlines);
* query parameters whose accepted values depend on this server (``precision``: the one it
  loaded) list only those.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from depthlite.server.schemas import error_responses

__all__ = ["install_openapi"]

_ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
_FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")


def _error(status: int) -> dict[str, Any]:
    description = error_responses(status)[status]["description"]
    return {"description": description, "content": {"application/json": {"schema": _ERROR_REF}}}


def _narrow(operation: dict[str, Any], choices: dict[str, list[str]]) -> None:
    for param in operation.get("parameters", ()):
        values = choices.get(param.get("name", ""))
        if values is None:
            continue
        schemas = (param.get("schema", {}), *param.get("schema", {}).get("anyOf", ()))
        narrowed = False
        for schema in schemas:
            if "enum" in schema:
                schema["enum"] = [value for value in schema["enum"] if value in values]
                narrowed = True
        if not narrowed:  # a free string the app checks itself (?model=): say what it takes
            for schema in schemas:
                if schema.get("type") == "string":
                    schema["enum"] = list(values)


def _fix_operation(operation: dict[str, Any], keyed: bool) -> None:
    responses = operation.setdefault("responses", {})
    if "security" in operation:
        if keyed:
            responses.setdefault("401", _error(401))
        else:
            del operation["security"]
    if "422" in responses:
        responses["422"] = _error(422)
    for status in (400, 408):
        responses.setdefault(str(status), _error(status))


def _fix(schema: dict[str, Any], keyed: bool, choices: dict[str, list[str]]) -> dict[str, Any]:
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            _fix_operation(operation, keyed)
            _narrow(operation, choices)
    components = schema.setdefault("components", {})
    for name in _FASTAPI_VALIDATION:
        components.get("schemas", {}).pop(name, None)
    if not keyed:
        components.pop("securitySchemes", None)
    return schema


def install_openapi(app: FastAPI, keyed: bool, choices: dict[str, list[str]]) -> None:
    """Make ``app`` serve the corrected document (built once, on first request).

    ``choices`` narrows the enums of query parameters by name to the values this app accepts.
    """

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = _fix(schema, keyed, choices)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
