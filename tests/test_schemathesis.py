"""schemathesis (default checks, see tests/schemathesis.toml) against a real ``depthlite serve``,
open and with an API key: the API description must say what the server does."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("schemathesis")

from servekit import serve

CONFIG = Path(__file__).parent / "schemathesis.toml"
# Bounded: a few hundred requests per run (about 15 s here); the seed makes CI repeatable.
MAX_EXAMPLES = "25"
SEED = "20261201"
KEY = "schemathesis-key"


def _schemathesis() -> list[str]:
    found = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "schemathesis.cli"]


def _run(base: str, cwd: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [*_schemathesis(), "--config-file", str(CONFIG), "run", f"{base}/openapi.json"]
    command += ["--max-examples", MAX_EXAMPLES, "--seed", SEED, "--no-color", *extra]
    # cwd: schemathesis keeps a cache folder in the working directory.
    return subprocess.run(
        command, capture_output=True, text=True, timeout=600, check=False, cwd=cwd
    )


@pytest.mark.slow
@pytest.mark.parametrize("keyed", [False, True], ids=["open", "keyed"])
def test_schemathesis_finds_nothing(converted_onnx: Path, tmp_path: Path, keyed: bool) -> None:
    args = ("--threads", "1", "--jobs-dir", str(tmp_path / "jobs"))
    with serve(converted_onnx, tmp_path, *args, api_key=KEY if keyed else None) as served:
        auth = ("--header", f"Authorization: Bearer {KEY}") if keyed else ()
        done = _run(served.base, tmp_path, *auth)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "No issues found" in done.stdout, done.stdout[-3000:]
