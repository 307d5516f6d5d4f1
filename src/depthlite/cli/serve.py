"""``depthlite serve``: the HTTP API and web UI.

Thin on purpose: flags -> :func:`depthlite.server.load_settings` -> the server's runner. Every
flag defaults to None and only overrides what is given; the defaults, the environment
variables and the validation all live in :class:`depthlite.server.Settings`. The server (and
FastAPI, pydantic, uvicorn) is imported inside the handler, so the other commands stay fast.
"""

from __future__ import annotations

import argparse
from typing import Any

from depthlite.cli.common import error
from depthlite.errors import EXIT_FAILURE
from depthlite.options import BACKENDS, PRECISION_CHOICES, RESIZE_MODES

__all__ = ["register"]

_ENV_PREFIX = "DEPTHLITE_"
# (flag dest, argparse type, metavar, help). Choices are checked by Settings, with one-line
# messages that list them, rather than by argparse.
_OPTIONS: tuple[tuple[str, type, str, str], ...] = (
    ("host", str, "ADDR", "interface to listen on"),
    ("port", int, "N", "TCP port (0: any free port)"),
    (
        "models",
        str,
        "LIST",
        "comma-separated models to serve, the first the default; requests "
        "choose with ?model= (`depthlite models` lists them); --model is the same flag",
    ),
    ("weights", str, "PATH", "checkpoint or ONNX file to serve (several models: MODEL=PATH,...)"),
    ("backend", str, "NAME", f"runtime: {', '.join(BACKENDS)}"),
    ("precision", str, "NAME", f"{', '.join(PRECISION_CHOICES)} (what the backend offers)"),
    ("resize", str, "MODE", f"default resize mode: {', '.join(RESIZE_MODES)}"),
    ("threads", int, "N", "intra-op threads of the model session"),
    ("workers", int, "N", "inference worker threads"),
    ("queue_size", int, "N", "requests that may wait for a worker (more: 503 at once)"),
    ("queue_timeout", float, "SEC", "longest wait for a worker (then 503)"),
    ("shutdown_timeout", float, "SEC", "time in-flight requests get on shutdown"),
    ("live_max_connections", int, "N", "live-depth WebSocket streams at once (0: off)"),
    ("header_timeout", float, "SEC", "time to send a request head (then closed, 408)"),
    ("keepalive_timeout", float, "SEC", "idle keep-alive connections are closed after"),
    ("body_timeout", float, "SEC", "longest pause in a request body (408)"),
    ("min_upload_rate", float, "B/S", "slowest average body rate after body-timeout (408)"),
    ("max_connections", int, "N", "open connections at once (more are closed)"),
    ("max_body_bytes", int, "N", "largest request body (413 above)"),
    ("max_pixels", int, "N", "largest image in pixels (413 above)"),
    ("cors_origins", str, "LIST", "comma-separated origins allowed by CORS"),
    ("allowed_hosts", str, "LIST", "Host names served besides loopback ones ('*': any)"),
    ("api_key", str, "KEY", "require 'Authorization: Bearer KEY' (prefer the env variable)"),
    ("jobs_dir", str, "DIR", "job state and files (default <cache>/jobs)"),
    ("job_ttl", float, "SEC", "seconds finished jobs and their results are kept"),
    ("max_job_bytes", int, "N", "largest job upload (413 above)"),
    ("max_job_files", int, "N", "most files in one job"),
    ("max_jobs", int, "N", "jobs queued or running at once (503 above)"),
    ("job_share", float, "X", "share (0..1] of the workers' turns jobs get under load"),
    ("upload_sweep_interval", float, "SEC", "seconds between sweeps of orphaned uploads"),
    ("queue", str, "URL", "redis://... : jobs run on `depthlite worker` processes"),
    ("store", str, "DIR|URL", "distributed jobs' shared store: a folder or s3://bucket/prefix"),
    ("queue_max_tries", int, "N", "attempts before a distributed job fails"),
    ("queue_visibility_timeout", float, "SEC", "seconds before a dead worker's job is redone"),
    ("log_format", str, "FMT", "plain or json"),
    ("log_level", str, "LEVEL", "debug, info, warning or error"),
)


def _settings_default(dest: str) -> Any:
    """The Settings default of a flag, or None if the server extra is not installed."""
    try:
        from depthlite.server.settings import Settings
    except ImportError:
        return None
    field = Settings.model_fields.get(dest)
    return None if field is None else field.default


class _SettingsHelp(argparse.HelpFormatter):
    """Shows each flag's default and environment variable, read from Settings.

    Only ``depthlite serve --help`` formats this help, so only it pays for importing pydantic.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if not action.option_strings or action.dest == "help":
            return text
        env = f"{_ENV_PREFIX}{action.dest.upper()}"
        default = _settings_default(action.dest)
        if default in (None, ()):
            return f"{text} (env {env})"
        return f"{text} (default {default}; env {env})"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "serve",
        help="HTTP API and web UI (needs the 'server' extra)",
        description="Serve the web UI at / and the API (docs at /docs). Flags override "
        f"{_ENV_PREFIX}* environment variables. Stop with SIGTERM or Ctrl-C: in-flight "
        "requests finish, new ones get 503.",
        formatter_class=_SettingsHelp,
    )
    for dest, kind, metavar, text in _OPTIONS:
        flags = ["--" + dest.replace("_", "-")] + (["--model"] if dest == "models" else [])
        p.add_argument(*flags, dest=dest, type=kind, metavar=metavar, default=None, help=text)
    p.add_argument("--offline", action="store_true", default=None, help="never download weights")
    p.add_argument(
        "--fast-preprocess",
        action="store_true",
        default=None,
        help="decode JPEGs reduced and resize in float32: faster, values differ slightly",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        from depthlite.server.runner import serve
        from depthlite.server.settings import load_settings
    except ImportError as exc:
        error(
            f"the server needs the 'server' extra ({exc.name} is missing): "
            "pip install 'depthlite[server]'"
        )
        return EXIT_FAILURE
    names = [dest for dest, *_ in _OPTIONS] + ["offline", "fast_preprocess"]
    # A bad value raises InvalidOptionError: main prints one line and exits with 2.
    settings = load_settings(**{name: getattr(args, name) for name in names})
    return serve(settings)
