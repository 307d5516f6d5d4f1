"""Request dependencies: the app's service, the API key check, availability."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from depthlite.server.exceptions import UnauthorizedError
from depthlite.server.service import Service

__all__ = ["ApiKey", "AvailableService", "ServiceDep", "get_service"]

# Stateless (it only reads the header); declared once so OpenAPI shows one "Authorize" scheme.
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="api_key",
    description="The server's API key (DEPTHLITE_API_KEY), when one is configured.",
)


def get_service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(get_service)]


def require_api_key(
    service: ServiceDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """401 unless ``Authorization: Bearer <key>`` matches the configured key (if any)."""
    key = service.settings.api_key
    if key is None:
        return
    if credentials is None:
        raise UnauthorizedError("this server needs an API key: 'Authorization: Bearer <key>'")
    # Constant-time comparison: response timing must not reveal how much of a guess matched.
    if not hmac.compare_digest(credentials.credentials.encode(), key.get_secret_value().encode()):
        raise UnauthorizedError("the API key is not valid")


ApiKey = Depends(require_api_key)


def available_service(service: ServiceDep) -> Service:
    """The service, if it can take work now; otherwise the 503 that says why."""
    service.check_available()
    return service


AvailableService = Annotated[Service, Depends(available_service)]
