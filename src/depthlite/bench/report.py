"""Bench results as a terminal table, JSON, and a PNG chart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from depthlite.bench.compare import GOAL, label
from depthlite.errors import BackendUnavailableError

__all__ = ["format_table", "write_json", "write_plot"]


def _label(row: dict[str, Any]) -> str:
    return label(row)


def format_table(report: dict[str, Any]) -> str:
    """A fixed-width table: one line per configuration, ratios against the baseline."""
    base = report["baseline_network_ms"]
    callers = max(2, int(report["options"]["threads"]))
    m = report["machine"]
    lines = [
        f"machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, python {m['python']}, "
        f"onnxruntime {m['onnxruntime']}; threads {report['options']['threads']}",
        f"cpu flags: {' '.join(m.get('cpu_flags', [])) or '(none of avx2/avx512/vnni/bf16/amx)'}",
        f"model {report['options']['model']}; baseline (the original code's way: torch eager, "
        f"no_grad, {'x'.join(map(str, report['baseline_input']))} network): {base:.1f} ms median",
        "x base: network time at the baseline's input / baseline (where the file takes it)",
        "",
        f"{'configuration':<34}{'input':>9}{'net ms':>8}{'p95':>7}{'x base':>7}{'pipe ms':>9}"
        f"{'p95':>7}{'pipe/net':>9}{'img/s@1':>8}{f'@{callers}':>6}{'RSS MB':>8}{'cold s':>7}",
    ]
    for row in report["rows"]:
        if "skipped" in row:
            label = " ".join(row[k] for k in ("backend", "precision", "resize") if k in row)
            lines.append(f"{label:<34}  skipped: {row['skipped']}")
            continue
        net, pipe = row["network"], row["pipeline"]
        same = row.get("network_at_baseline_input") or net
        h, w = row["input"]
        lines.append(
            f"{_label(row):<34}{f'{h}x{w}':>9}{net['median_ms']:>8.1f}{net['p95_ms']:>7.1f}"
            f"{same['median_ms'] / base:>7.2f}{pipe['median_ms']:>9.1f}{pipe['p95_ms']:>7.1f}"
            f"{pipe['median_ms'] / net['median_ms']:>9.2f}{row['throughput_1']:>8.1f}"
            f"{row[f'throughput_{callers}']:>6.1f}{row['predict_peak_rss_mb']:>8.0f}"
            f"{row['cold_start_s']:>7.2f}"
        )
    scored = [r for r in report["rows"] if "agreement_vs_fp32" in r]
    if scored:
        lines += ["", "agreement with FP32 after scale-and-shift alignment (AbsRel / delta<1.25):"]
        for row in scored:
            parts = [
                f"{name} {s['absrel']:.4f} / {s['delta1']:.4f}"
                for name, s in row["agreement_vs_fp32"].items()
            ]
            lines.append(f"  {_label(row):<32} " + ";  ".join(parts))
    if "peers" in report:
        lines += _peer_lines(report)
    lines += [
        "",
        "net: network only; pipe: JPEG bytes -> decode, preprocess, network, upsample, colour map,",
        "PNG encode (the 1920x1080 photo); RSS: peak of `depthlite predict` on that photo in its",
        "own process; cold: wall time of that command, optimised-graph cache warm, "
        + (
            "bytecode compiled as an install has it."
            if report.get("bytecode_compiled", True)
            else "modules compiled from source (!)."
        ),
    ]
    return "\n".join(lines)


def _ms(timing: dict[str, float] | None) -> str:
    return f"{timing['median_ms']:.1f}" if timing else "n/a"


def _peer_lines(report: dict[str, Any]) -> list[str]:
    """The peers on the same photo and weights, and depthlite's best / the fastest peer."""
    base = "x".join(map(str, report["baseline_input"]))
    lines = ["", f"peers (same photo, same weights, {report['options']['threads']} threads):",
             f"{'peer':<34}{'input':>9}{'net ms':>8}{f'@{base}':>10}{'pipe ms':>9}"
             f"{'RSS MB':>8}"]  # fmt: skip
    for row in report["peers"]:
        if "skipped" in row:
            lines.append(f"{label(row):<34}  skipped: {row['skipped']}")
            continue
        h, w = row["input"]
        lines.append(
            f"{label(row):<34}{f'{h}x{w}':>9}{_ms(row['network']):>8}"
            f"{_ms(row['network_at_baseline_input']):>10}{_ms(row['pipeline']):>9}"
            f"{row['worker_peak_rss_mb']:>8.0f}"
        )
        lines += [f"{'':<36}n/a: {note}" for note in row.get("notes", [])]
    ratios = report.get("peer_summary") or {}
    goal = ratios.get("goal", GOAL)
    lines.append(f"depthlite's best / the fastest peer (goal <= {goal:.2f}x):")
    same = ratios.get("pipeline_same_input") or {}
    at = "x".join(map(str, same.get("input", []))) or "the peer's input"
    for key, what in (
        ("pipeline", "whole pipeline"),
        ("pipeline_same_input", f"whole pipeline, both at {at}"),
        ("network_at_baseline_input", f"network at {base}"),
        ("network_at_photo_input", "network at the photo's keep-aspect input"),
    ):
        r = ratios.get(key)
        if r is None:
            lines.append(f"  {what:<44} n/a (no figure on one side)")
            continue
        verdict = "meets the goal" if r["ratio"] <= goal else "misses the goal"
        lines.append(
            f"  {what:<44} {r['ratio']:.2f}x: {r['depthlite']} {r['depthlite_ms']:.1f} ms / "
            f"{r['peer']} {r['peer_ms']:.1f} ms ({verdict})"
        )
    lines.append(
        "peer pipe: torch eager = the original run.py steps (cv2, float64 resize, torch, INFERNO);"
    )
    lines.append(
        "transformers = pipeline('depth-estimation') (PIL processor, grey output) + PNG encode. "
        "RSS: the peer's worker."
    )
    return lines


def write_json(report: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def write_plot(report: dict[str, Any], path: Path) -> None:
    """Network latency and peak RSS per configuration, with the baseline marked."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise BackendUnavailableError(
            "--plot needs matplotlib: pip install 'depthlite[bench]'"
        ) from exc
    rows = [r for r in report["rows"] if "skipped" not in r]
    labels = [_label(r).replace(" ", "\n", 1) for r in rows]
    base = report["baseline_network_ms"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(max(8, 1.3 * len(rows) + 3), 4.8))
    ax1.bar(labels, [r["network"]["median_ms"] for r in rows], color="#d9534f")
    ax1.bar(labels, [r["pipeline"]["median_ms"] - r["network"]["median_ms"] for r in rows],
            bottom=[r["network"]["median_ms"] for r in rows], color="#f0ad4e")  # fmt: skip
    ax1.axhline(base, color="black", linestyle="--", label=f"torch eager baseline {base:.0f} ms")
    ax1.set_ylabel("median latency (ms): network + rest of pipeline")
    ax1.legend(loc="upper right", fontsize=8)
    ax2.bar(labels, [r["predict_peak_rss_mb"] for r in rows], color="#5bc0de")
    ax2.set_ylabel("peak RSS of depthlite predict (MB)")
    for ax in (ax1, ax2):
        ax.tick_params(axis="x", labelsize=7)
    fig.suptitle(
        f"depthlite bench: {report['machine']['cpu']}, {report['options']['threads']} threads"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
