"""Request dependencies: the app's service, the API key check, availability."""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from depthlite.server.exceptions import UnauthorizedError
from depthlite.server.service import Service

__all__ = [
    "ApiKey",
    "AvailableService",
    "Owner",
    "ServiceDep",
    "get_service",
    "matching_key",
    "owner_of",
]

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


def matching_key(keys: tuple[str, ...], given: str | None) -> str | None:
    """The configured key equal to ``given``, compared in constant time, or None."""
    found = None
    for key in keys:
        # Constant-time, and every key is compared: timing must not reveal a partial match.
        if hmac.compare_digest((given or "").encode(), key.encode()):
            found = key
    return found


def owner_of(key: str | None) -> str:
    """The owner tag jobs are stored under: a hash of the caller's key ("" without keys)."""
    return hashlib.sha256(key.encode()).hexdigest()[:32] if key else ""


def require_api_key(
    service: ServiceDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """401 unless ``Authorization: Bearer <key>`` is a configured key (if any); the owner tag."""
    keys = service.settings.api_keys
    if not keys:
        return ""
    if credentials is None:
        raise UnauthorizedError("this server needs an API key: 'Authorization: Bearer <key>'")
    key = matching_key(keys, credentials.credentials)
    if key is None:
        raise UnauthorizedError("the API key is not valid")
    return owner_of(key)


ApiKey = Depends(require_api_key)
Owner = Annotated[str, Depends(require_api_key)]


def available_service(service: ServiceDep) -> Service:
    """The service, if it can take work now; otherwise the 503 that says why."""
    service.check_available()
    return service


AvailableService = Annotated[Service, Depends(available_service)]
