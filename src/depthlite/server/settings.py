"""Server settings: one class, read from ``DEPTHLITE_*`` environment variables and CLI flags.

This class is the single source of truth for the server's defaults: ``depthlite serve`` flags
default to None and only override what is given, and the choices (backends, precisions, resize
modes, models) are validated with the same functions the library uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from depthlite.errors import InvalidOptionError
from depthlite.imageio import DEFAULT_MAX_PIXELS
from depthlite.options import (
    BACKENDS,
    DEFAULT_BACKEND,
    DEFAULT_PRECISION,
    DEFAULT_RESIZE,
    RESIZE_MODES,
    check_choice,
    check_precision,
)
from depthlite.zoo import DEFAULT_MODEL, get_card

if TYPE_CHECKING:
    from depthlite.jobs.protocol import QueueConfig

__all__ = ["ENV_PREFIX", "LOG_FORMATS", "LOG_LEVELS", "Settings", "load_settings"]

ENV_PREFIX = "DEPTHLITE_"
LOG_FORMATS = ("plain", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")
# Fields whose values must never be echoed in an error message.
_SECRET_FIELDS = frozenset({"api_key"})


# Broker URLs both clients take: Celery (kombu) has no "unix" transport and redis-py no
# "redis+socket", so a Unix socket is not offered.
_REDIS_SCHEMES = ("redis://", "rediss://")


class Settings(BaseSettings):
    """Everything ``depthlite serve`` can be told; env ``DEPTHLITE_<FIELD>`` (upper case)."""

    # env_ignore_empty: "DEPTHLITE_THREADS=" means "not set", not "invalid integer".
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_ignore_empty=True, frozen=True, extra="forbid"
    )

    host: str = Field("127.0.0.1", description="interface to listen on")
    port: int = Field(8000, ge=0, le=65535, description="TCP port (0: any free port)")
    models: Annotated[tuple[str, ...], NoDecode] = Field(
        (DEFAULT_MODEL,),
        description="comma-separated models to serve, each loaded once; the first is the "
        "default, requests choose with ?model=",
    )
    weights: str | None = Field(
        None,
        description="checkpoint or ONNX file to serve: PATH (one model), or MODEL=PATH,... "
        "for several",
    )
    offline: bool | None = Field(None, description="never download weights")
    backend: str = Field(DEFAULT_BACKEND, description=f"runtime: {', '.join(BACKENDS)}")
    precision: str = Field(DEFAULT_PRECISION, description="precision the backend runs")
    resize: str = Field(DEFAULT_RESIZE, description=f"default resize: {', '.join(RESIZE_MODES)}")
    threads: int | None = Field(None, ge=1, description="intra-op threads of the model session")
    fast_preprocess: bool = Field(
        False,
        description="decode JPEGs reduced and resize in float32: faster, values differ slightly "
        "from the official pipeline (off: exact)",
    )
    workers: int = Field(1, ge=1, description="inference worker threads")
    queue_size: int = Field(8, ge=0, description="requests that may wait for a worker")
    queue_timeout: float = Field(10.0, gt=0, description="seconds a request may wait (503 after)")
    shutdown_timeout: float = Field(30.0, ge=0, description="seconds in-flight requests get")
    live_max_connections: int = Field(
        4, ge=0, description="open live-depth WebSocket streams at once (0: live off)"
    )
    header_timeout: float = Field(
        10.0, gt=0, description="seconds a connection has to send a complete request head"
    )
    keepalive_timeout: float = Field(
        5.0, gt=0, description="seconds an idle keep-alive connection stays open"
    )
    body_timeout: float = Field(
        30.0, gt=0, description="longest pause in a request body, in seconds (408 after)"
    )
    min_upload_rate: float = Field(
        8192.0, gt=0, description="slowest average body rate, bytes/s (after body-timeout)"
    )
    max_connections: int = Field(
        500, ge=1, description="open connections at once (more are closed at once)"
    )
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1, description="largest request body")
    max_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=1, description="largest image, in pixels")
    # NoDecode: the env value is a comma-separated list, not JSON.
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="comma-separated origins allowed by CORS (none: CORS off)"
    )
    allowed_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="comma-separated Host names served ('*.example.com' and '*' allowed); "
        "loopback names always; none: a connection to a loopback address must name a "
        "loopback host (no DNS rebinding), others any",
    )
    api_key: SecretStr | None = Field(
        None, description="require 'Authorization: Bearer KEY'; several keys: comma-separated"
    )
    jobs_dir: Path | None = Field(None, description="job state and files (default <cache>/jobs)")
    job_ttl: float = Field(86400.0, gt=0, description="seconds finished jobs and results are kept")
    max_job_bytes: int = Field(2 * 1024**3, ge=1, description="largest job upload, in bytes")
    max_job_files: int = Field(10_000, ge=1, description="most files in one job")
    job_share: float = Field(
        0.5, gt=0, le=1, description="share of the workers' turns jobs get while uploads wait"
    )
    upload_sweep_interval: float = Field(
        300.0, gt=0, description="seconds between sweeps of uploads a killed server left"
    )
    max_jobs: int = Field(
        100, ge=1, description="jobs queued or running at once (more: 503 too_many_jobs)"
    )
    queue: str | None = Field(None, description="redis://... : jobs go to Celery workers")
    store: str | None = Field(
        None, description="distributed jobs' shared store: a folder, or s3://bucket/prefix"
    )
    queue_max_tries: int = Field(
        3, ge=1, description="starts of a job (server restarts, lost workers) before it fails"
    )
    queue_visibility_timeout: float = Field(
        3600.0, gt=0, description="seconds before a dead worker's job is delivered again"
    )
    log_format: Literal["plain", "json"] = Field("plain", description="plain text or JSON lines")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="log level")

    @field_validator("models")
    @classmethod
    def _known_models(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise InvalidOptionError("serve at least one model")
        # Aliases become the canonical name; the same model twice is loaded once.
        return tuple(dict.fromkeys(get_card(name).name for name in value))

    @field_validator("queue")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.lower().startswith(_REDIS_SCHEMES):
            raise InvalidOptionError(
                "the queue is a Redis URL: redis://HOST:6379/0, or rediss://... for TLS"
            )
        return value

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        return check_choice("backend", value, BACKENDS)

    @field_validator("resize")
    @classmethod
    def _known_resize(cls, value: str) -> str:
        return check_choice("resize", value, RESIZE_MODES)

    @field_validator("log_format", "log_level", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("models", "cors_origins", "allowed_hosts", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("api_key", mode="before")
    @classmethod
    def _empty_key_is_none(cls, value: Any) -> Any:
        # An empty key would accept "Authorization: Bearer " and look like protection.
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _weights_name_served_models(self) -> Settings:
        given = self._weights_map()
        if None in given and len(self.models) != 1:
            raise InvalidOptionError(
                "--weights PATH is the file of one model: serve one with --models, or give "
                "MODEL=PATH for each"
            )
        unknown = [name for name in given if name is not None and name not in self.models]
        if unknown:
            raise InvalidOptionError(
                f"--weights names {', '.join(unknown)}, which --models does not serve "
                f"({', '.join(self.models)})"
            )
        return self

    def _weights_map(self) -> dict[str | None, Path]:
        if not self.weights:
            return {}
        if "=" not in self.weights:
            return {None: Path(self.weights)}
        pairs = {}
        for part in filter(None, (p.strip() for p in self.weights.split(","))):
            name, sep, path = part.partition("=")
            if not sep or not path.strip():
                raise InvalidOptionError(f"--weights {part!r}: expected MODEL=PATH")
            pairs[get_card(name.strip()).name] = Path(path.strip())
        return pairs  # type: ignore[return-value]

    def weights_for(self, model: str) -> Path | None:
        """The file given for ``model`` (a canonical name), if any."""
        given = self._weights_map()
        return given.get(model, given.get(None))

    @property
    def model(self) -> str:
        """The default model (the first of ``models``)."""
        return self.models[0]

    @model_validator(mode="after")
    def _precision_for_backend(self) -> Settings:
        check_precision(self.backend, self.precision)
        return self

    @model_validator(mode="after")
    def _queue_needs_store(self) -> Settings:
        if self.queue and not self.store:
            raise InvalidOptionError(
                "a job queue (DEPTHLITE_QUEUE) needs a shared store every worker can reach: "
                "--store /shared/folder or s3://bucket/prefix (DEPTHLITE_STORE)"
            )
        return self

    def queue_config(self) -> QueueConfig:
        """What the Celery app of ``depthlite serve`` and ``depthlite worker`` is made from."""
        if not self.queue or not self.store:
            raise InvalidOptionError(
                "no job queue configured: pass --queue redis://... or set DEPTHLITE_QUEUE"
            )
        from depthlite.jobs.protocol import QueueConfig

        return QueueConfig(
            broker=self.queue,
            store=self.store,
            max_tries=self.queue_max_tries,
            visibility_timeout=self.queue_visibility_timeout,
            result_ttl=self.job_ttl,
        )

    @property
    def api_keys(self) -> tuple[str, ...]:
        """The accepted keys (``api_key`` may list several, comma-separated)."""
        if self.api_key is None:
            return ()
        return tuple(k.strip() for k in self.api_key.get_secret_value().split(",") if k.strip())

    @property
    def queue_capacity(self) -> int:
        """Requests admitted at once: running plus waiting."""
        return self.workers + self.queue_size


def _describe(error: dict[str, Any]) -> str:
    field = ".".join(str(part) for part in error["loc"])
    # A ValueError raised by our validators (InvalidOptionError) already names the option.
    cause = error.get("ctx", {}).get("error")
    message = str(cause) if isinstance(cause, Exception) else error["msg"]
    if not field:
        return message
    flag = f"--{field.replace('_', '-')}"
    where = f"{field} ({flag} / {ENV_PREFIX}{field.upper()})"
    if field in _SECRET_FIELDS or error["type"] == "extra_forbidden":
        return f"{where}: {message}"
    return f"{where}={error.get('input')!r}: {message}"


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment with ``overrides`` on top (None values are ignored).

    A bad value raises :class:`~depthlite.errors.InvalidOptionError` (CLI exit code 2) with a
    one-line message naming the setting, its flag and its environment variable.
    """
    given = {name: value for name, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = "; ".join(_describe(error) for error in exc.errors())  # type: ignore[arg-type]
        raise InvalidOptionError(f"invalid setting: {problems}") from None
