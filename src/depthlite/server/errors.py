"""Exception handlers: every error becomes ``{"error": code, "detail": sentence}``.

Library and server errors are translated with their own ``code`` and ``status`` (the mapping
lives on the exception classes, never here). Framework errors get stable codes too: bad query
values are 422 ``invalid_parameter``, unknown routes 404 ``not_found``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match

from depthlite.errors import DepthliteError, clip

__all__ = ["error_response", "install_error_handlers"]

logger = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "invalid_parameter",
    429: "too_many_requests",
    503: "unavailable",
}


def error_response(
    status: int, code: str, detail: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


async def _depthlite_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DepthliteError)
    if exc.status >= 500 and exc.status != 503:
        logger.error("%s %s failed: %s", request.method, request.url.path, exc, exc_info=exc)
    headers = getattr(exc, "headers", None)
    return error_response(exc.status, exc.code, str(exc), headers)


def _describe_validation(exc: RequestValidationError) -> str:
    problems = []
    for err in exc.errors():
        where, *name = err.get("loc", ("request",))
        label = ".".join(str(part) for part in name) or str(where)
        problems.append(f"{where} parameter {label!r}: {err.get('msg', 'invalid value')}")
    return "; ".join(problems) or "invalid request"


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, "invalid_parameter", _describe_validation(exc))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    detail = str(exc.detail)
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"nothing here: {request.method} {clip(request.url.path)}"
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {clip(request.url.path)}"
        return error_response(405, code, detail, {"Allow": _allowed_methods(request)})
    return error_response(exc.status_code, code, detail, exc.headers)


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path: Starlette's 405 names only the first
    route's (GET for /v1/jobs/{id}, which DELETE serves too)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if route.matches(request.scope)[0] != Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return ", ".join(sorted(methods))


async def _client_disconnect(request: Request, exc: Exception) -> JSONResponse:
    # The client went away mid-upload; nobody will read this answer.
    logger.info("%s %s: client disconnected during upload", request.method, request.url.path)
    return error_response(400, "client_disconnected", "the client closed the connection")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.error("%s %s: unexpected error", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "internal server error; see the server log")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DepthliteError, _depthlite_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ClientDisconnect, _client_disconnect)
    app.add_exception_handler(Exception, _unexpected)
