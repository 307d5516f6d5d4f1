"""Which ``Host`` names this server answers, and whether an ``Origin`` is its own.

DNS rebinding: a page on ``attacker.example`` re-points that name at 127.0.0.1 and talks to a
server on the user's machine as if it were its own origin. The browser then sends
``Host: attacker.example``. So a connection that arrived on a loopback address must name a
loopback host (``localhost``, ``*.localhost``, ``127.x.y.z``, ``::1``) unless the operator
listed more names (``--allowed-hosts``, e.g. a reverse proxy's); connections on other
addresses accept any name unless a list is given. Loopback names are always accepted: no page
can be served from them by an attacker.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from starlette.types import Scope

__all__ = ["HostPolicy", "split_host"]

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
# The page scheme that opens a WebSocket of each scheme.
_PAGE_SCHEME = {"ws": "http", "wss": "https", "http": "http", "https": "https"}


def split_host(value: str) -> tuple[str, int | None]:
    """``"Example.com:8000"`` -> ``("example.com", 8000)``; ``"[::1]"`` -> ``("::1", None)``."""
    value = value.strip().lower()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        host, port = value.split(":")
    else:
        host, port = value, ""
    return host.rstrip("."), (int(port) if port.isdigit() else None)


def _is_loopback_name(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _matches(host: str, pattern: str) -> bool:
    pattern = pattern.lower()
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


class HostPolicy:
    """The decision for one app, from ``--allowed-hosts`` (empty: the automatic rule)."""

    def __init__(self, allowed: tuple[str, ...]) -> None:
        self.allowed = tuple(allowed)

    def accepts(self, scope: Scope) -> bool:
        host, _port = split_host(_header(scope, b"host"))
        # No Host at all is no browser (they always send it), so it cannot be rebinding.
        if not host or _is_loopback_name(host):
            return True
        if any(_matches(host, pattern) for pattern in self.allowed):
            return True
        return not self.allowed and not _on_loopback(scope)

    @staticmethod
    def same_origin(scope: Scope, origin: str) -> bool:
        """Whether ``origin`` is this server as the client reached it: scheme, host and port."""
        parts = urlsplit(origin.strip().lower())
        scheme = _PAGE_SCHEME.get(scope.get("scheme", "http"), "http")
        if parts.scheme != scheme or not parts.hostname:
            return False
        host, port = split_host(_header(scope, b"host"))
        origin_host, origin_port = split_host(parts.netloc)
        default = _DEFAULT_PORTS[scheme]
        return origin_host == host and (origin_port or default) == (port or default)


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return ""


def _on_loopback(scope: Scope) -> bool:
    server = scope.get("server")
    if not server:
        return False
    try:
        return ipaddress.ip_address(str(server[0])).is_loopback
    except ValueError:
        return False
