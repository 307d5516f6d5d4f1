"""Server settings (validation, environment, CLI flags) and the ``serve`` command's CLI."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest

pytest.importorskip("fastapi")

from depthlite.cli.main import main
from depthlite.errors import InvalidOptionError
from depthlite.options import DEFAULT_BACKEND, DEFAULT_PRECISION
from depthlite.server import Settings, app_from_env, load_settings
from depthlite.server.logs import JsonFormatter


def test_defaults_come_from_the_library_tables() -> None:
    settings = Settings()
    assert (settings.backend, settings.precision) == (DEFAULT_BACKEND, DEFAULT_PRECISION)
    assert (settings.host, settings.port, settings.workers) == ("127.0.0.1", 8000, 1)
    assert settings.api_key is None
    assert settings.cors_origins == ()


def test_environment_overrides_and_flags_override_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEPTHLITE_WORKERS", "3")
    monkeypatch.setenv("DEPTHLITE_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("DEPTHLITE_API_KEY", "k")
    monkeypatch.setenv("DEPTHLITE_LOG_FORMAT", "JSON")
    monkeypatch.setenv("DEPTHLITE_THREADS", "")  # empty means unset, not invalid
    settings = Settings()
    assert settings.workers == 3
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert settings.api_key is not None and settings.api_key.get_secret_value() == "k"
    assert settings.log_format == "json"
    assert settings.threads is None
    assert load_settings(workers=2, port=None).workers == 2  # None: flag not given


def test_model_aliases_become_the_canonical_name() -> None:
    assert Settings(models="midas_small").model == "midas_v21_small_256"
    both = Settings(models="dpt_hybrid, midas_small,dpt_hybrid_384")
    assert both.models == ("dpt_hybrid_384", "midas_v21_small_256")


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"workers": 0}, "workers (--workers / DEPTHLITE_WORKERS)=0"),
        ({"queue_size": -1}, "queue_size"),
        ({"queue_timeout": 0}, "queue_timeout"),
        ({"port": 70000}, "port"),
        ({"backend": "tensorflow"}, "invalid backend 'tensorflow'; choose one of: onnxruntime"),
        ({"precision": "fp64"}, "invalid precision 'fp64'"),
        ({"backend": "torch", "precision": "int8"}, "backend 'torch' does not run precision"),
        ({"resize": "stretch"}, "invalid resize 'stretch'"),
        ({"models": "midas_huge"}, "unknown model 'midas_huge'"),
        ({"log_format": "xml"}, "log_format"),
    ],
)
def test_bad_settings_are_one_clear_line(overrides: dict[str, object], fragment: str) -> None:
    with pytest.raises(InvalidOptionError) as info:
        load_settings(**overrides)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message
    assert info.value.exit_code == 2


def test_the_api_key_is_never_echoed() -> None:
    with pytest.raises(InvalidOptionError) as info:
        load_settings(api_key=31415926)
    assert "api_key" in str(info.value)
    assert "31415926" not in str(info.value)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """``serve`` configures the root logger (as a CLI should); undo that after the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_serve_maps_a_bad_setting_to_exit_code_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["serve", "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("depthlite: error: invalid setting: workers")
    assert err.count("\n") == 1
    assert main(["serve", "--backend", "torch", "--precision", "int8"]) == 2
    assert "does not run precision 'int8'" in capsys.readouterr().err
    monkeypatch.setenv("DEPTHLITE_QUEUE_SIZE", "-5")
    assert main(["serve"]) == 2
    assert "DEPTHLITE_QUEUE_SIZE" in capsys.readouterr().err


@pytest.mark.usefixtures("restore_logging")
def test_app_from_env_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # For `uvicorn --factory depthlite.server:app_from_env`.
    monkeypatch.setenv("DEPTHLITE_WORKERS", "2")
    monkeypatch.setenv("DEPTHLITE_LOG_FORMAT", "json")
    app = app_from_env()
    assert app.state.service.settings.workers == 2
    assert isinstance(logging.getLogger().handlers[0].formatter, JsonFormatter)
    monkeypatch.setenv("DEPTHLITE_WORKERS", "0")
    with pytest.raises(InvalidOptionError, match="DEPTHLITE_WORKERS"):
        app_from_env()


@pytest.mark.usefixtures("restore_logging")
def test_serve_fails_fast_when_the_model_cannot_load(capsys: pytest.CaptureFixture[str]) -> None:
    # The model is loaded before the port opens: a missing file is one line and exit code 1.
    assert main(["serve", "--weights", "/nonexistent/model.onnx", "--port", "0"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("depthlite: error: /nonexistent/model.onnx")


def test_serve_help_shows_defaults_and_environment_variables(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["serve", "--help"])
    assert info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "(default 1; env DEPTHLITE_WORKERS)" in out
    assert "(env DEPTHLITE_API_KEY)" in out


def test_other_commands_do_not_import_the_server_stack() -> None:
    code = (
        "import sys; from depthlite.cli.main import build_parser; build_parser(); "
        "heavy = {'fastapi', 'starlette', 'uvicorn', 'pydantic', 'prometheus_client'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
