"""`depthlite bench` end to end on synthetic weights, with the smallest settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from depthlite.bench.report import format_table
from depthlite.cli.main import main


@pytest.mark.slow
def test_bench_measures_reports_and_draws(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_json, out_png = tmp_path / "bench.json", tmp_path / "bench.png"
    code = main([
        "bench", "--synthetic", "--repeats", "2", "--backends", "onnxruntime",
        "--precisions", "fp32,bf16", "--resize", "square",
        "--json", str(out_json), "--plot", str(out_png),
    ])  # fmt: skip
    assert code == 0
    report = json.loads(out_json.read_text())
    assert report["baseline_network_ms"] > 0 and len(report["baseline_runs"]) == 2
    rows = {(r["backend"], r["precision"]): r for r in report["rows"]}
    ort = rows[("onnxruntime", "fp32")]
    assert ort["input"] == [256, 256]
    for key in ("network", "pipeline"):
        assert 0 < ort[key]["median_ms"] <= ort[key]["p95_ms"]
    assert ort["throughput_1"] > 0 and ort["throughput_2"] > 0
    assert 50 < ort["predict_peak_rss_mb"] < 2000 and ort["cold_start_s"] > 0
    assert set(ort["stages_ms"]) == {"decode", "preprocess", "inference", "postprocess"}
    assert "not offered" in rows[("onnxruntime", "bf16")]["skipped"]
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = capsys.readouterr().out
    assert table == format_table(report) + "\n"
    assert "onnxruntime fp32 square" in table and "skipped" in table
    assert report["bytecode_compiled"] is True and "bytecode compiled as an install" in table


def test_cold_starts_read_compiled_bytecode_as_an_installed_package_does() -> None:
    import importlib.util

    import depthlite.estimator
    from depthlite.bench.runner import installed_bytecode

    source = depthlite.estimator.__file__
    assert installed_bytecode()
    cached = Path(importlib.util.cache_from_source(source))
    assert cached.is_file() and cached.stat().st_mtime >= Path(source).stat().st_mtime
