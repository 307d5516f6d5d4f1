"""The server's own typed errors, in the library's convention (``code``, ``status``).

They subclass :class:`~depthlite.errors.DepthliteError`, so one exception handler translates
every error the same way. This module imports nothing from the web framework: the worker pool
(and later the job queue) raise these without depending on HTTP code.
"""

from __future__ import annotations

from depthlite.errors import DepthliteError, ImageTooLargeError, InputError

__all__ = [
    "BodyTooLargeError",
    "JobsFullError",
    "MissingImageError",
    "ModelUnavailableError",
    "NotReadyError",
    "QueueFullError",
    "QueueTimeoutError",
    "QueueUnavailableError",
    "RequestTimeoutError",
    "ServiceUnavailableError",
    "ShuttingDownError",
    "UnauthorizedError",
]


class ServiceUnavailableError(DepthliteError):
    """The server cannot take this request now; ``retry_after`` seconds is a hint (or None)."""

    code = "unavailable"
    status = 503
    default_retry_after: int | None = 1

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = self.default_retry_after if retry_after is None else retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}


class QueueFullError(ServiceUnavailableError):
    """Every worker is busy and the wait queue is full: rejected at once."""

    code = "overloaded"


class JobsFullError(ServiceUnavailableError):
    """As many jobs as the server keeps are already waiting or running."""

    code = "too_many_jobs"
    default_retry_after = 30


class QueueUnavailableError(ServiceUnavailableError):
    """The distributed job queue (Redis) or its shared store cannot be reached."""

    code = "queue_unavailable"
    default_retry_after = 10


class QueueTimeoutError(ServiceUnavailableError):
    """The request waited for a worker longer than the queue timeout."""

    code = "queue_timeout"


class ShuttingDownError(ServiceUnavailableError):
    """The server is draining: in-flight work finishes, new work is refused."""

    code = "shutting_down"
    # Another replica (or this one, restarted) should answer soon.
    default_retry_after = 5


class NotReadyError(ServiceUnavailableError):
    """The model is still loading or warming up."""

    code = "not_ready"
    default_retry_after = 2


class ModelUnavailableError(ServiceUnavailableError):
    """The model failed to load; retrying will not help until the server is fixed."""

    code = "model_unavailable"
    default_retry_after = None


class UnauthorizedError(DepthliteError):
    """A missing or wrong API key."""

    code = "unauthorized"
    status = 401

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class BodyTooLargeError(ImageTooLargeError):
    """The request body is above the server's byte limit."""

    code = "body_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body is larger than the limit of {limit} bytes")
        self.limit = limit


class MissingImageError(InputError):
    """The request carries no image: an empty body or a multipart form without ``file``."""

    code = "missing_image"
    status = 422


class RequestTimeoutError(DepthliteError):
    """The client sent its request too slowly (see ``server/deadlines.py``)."""

    code = "request_timeout"
    status = 408

    @property
    def headers(self) -> dict[str, str]:
        # The rest of a stalled body may never come: this connection is done.
        return {"Connection": "close"}
