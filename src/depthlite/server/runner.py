"""Run the app under uvicorn: what ``depthlite serve`` does after parsing its flags.

Shutdown on SIGTERM or Ctrl-C: new requests get 503 at once (even on open keep-alive
connections), uvicorn stops accepting connections and waits for in-flight requests (up to
``shutdown_timeout``), then the app's lifespan drains the worker pool; the exit code is 0.
"""

from __future__ import annotations

import errno
import logging
import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import uvicorn

from depthlite.errors import EXIT_FAILURE, EXIT_OK, InvalidOptionError
from depthlite.server.app import create_app
from depthlite.server.deadlines import guarded_protocol
from depthlite.server.logs import configure_logging
from depthlite.server.service import Service, build_estimators
from depthlite.server.settings import Settings

__all__ = ["serve"]

logger = logging.getLogger(__name__)

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Server(uvicorn.Server):
    """uvicorn's server, telling the app to refuse new work as soon as a stop signal lands."""

    def __init__(self, config: uvicorn.Config, service: Service) -> None:
        super().__init__(config)
        self._service = service

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._service.begin_shutdown()
        super().handle_exit(sig, frame)


def _stopped(signum: int, frame: FrameType | None) -> None:
    logger.debug("signal %d handled: the server stopped gracefully", signum)


@contextmanager
def _graceful_stop_is_success() -> Iterator[None]:
    """Make a signal-requested, completed shutdown exit with 0.

    uvicorn re-raises the stop signal after its graceful shutdown, with the handler that was
    installed before it started; by default that kills the process (-SIGTERM) or raises
    KeyboardInterrupt. A stop the server has already carried out is not a failure, so for the
    duration of the run that handler is a no-op.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _stopped) for sig in _STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _check_address(host: str, port: int) -> None:
    """Refuse, before minutes of loading, an address uvicorn could not listen on."""
    if not host:  # asyncio's every interface, which getaddrinfo cannot name
        return
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise InvalidOptionError(
            f"--host {host}: not an address ({exc.strerror}); use 127.0.0.1, 0.0.0.0 (every "
            "interface) or a name that resolves"
        ) from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            probe.bind(address)
        except OSError as exc:
            hints = {
                errno.EADDRINUSE: f"port {port} is in use on {host}: stop what uses it, or "
                "choose another with --port (DEPTHLITE_PORT)",
                errno.EADDRNOTAVAIL: f"--host {host}: this machine has no such address; use "
                "127.0.0.1 or 0.0.0.0",
                errno.EACCES: f"port {port} needs privileges: choose one above 1023 with --port",
            }
            reason = hints.get(exc.errno or 0, f"cannot listen on {host}:{port}: {exc}")
            raise InvalidOptionError(reason) from None


def serve(settings: Settings) -> int:
    """Load the models (fatal errors surface before the port opens), then serve until stopped."""
    configure_logging(settings.log_format, settings.log_level)
    _check_address(settings.host, settings.port)
    estimators = build_estimators(settings)
    # Resolving a model file (download, conversion) can fail for good; fail fast here, with
    # the library's error and exit code, instead of a server that never becomes ready.
    for estimator in estimators:
        estimator.load()
    app = create_app(settings, estimators)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,  # ours (configure_logging) stays in charge
        access_log=False,  # ours has the route, the status and the timings
        timeout_graceful_shutdown=round(settings.shutdown_timeout),
        timeout_keep_alive=settings.keepalive_timeout,  # type: ignore[arg-type]
        http=guarded_protocol(settings.header_timeout, settings.max_connections),
        server_header=False,
        lifespan="on",
    )
    server = _Server(config, app.state.service)
    with _graceful_stop_is_success():
        server.run()
    return EXIT_OK if server.started else EXIT_FAILURE
