"""``--peers``: run each peer in its own worker, and depthlite's best against the fastest peer.

The goal of issue 13: depthlite's best configuration at most 0.25x the fastest peer, for every
model. The summary reports the ratios as measured (whole pipeline, and network at the same
input); it never decides that a goal is met where a figure is missing.
"""

from __future__ import annotations

import importlib.util
import subprocess
from collections.abc import Callable
from typing import Any

from depthlite.bench.peers import PEERS
from depthlite.bench.worker import WorkerConfig
from depthlite.zoo.cards import ModelCard

__all__ = ["GOAL", "PEER_LABELS", "label", "run_peers", "summary"]

GOAL = 0.25  # depthlite's best / the fastest peer, per model (issue 13)

PEER_LABELS = {
    "torch_eager": "torch eager (original code)",
    "transformers": "transformers (HF)",
}

INSTALL_HINT = "install depthlite[peers] (pip install 'depthlite[peers]')"


def label(row: dict[str, Any]) -> str:
    """A depthlite row's name, or a peer's."""
    if "peer" in row:
        return PEER_LABELS.get(row["peer"], row["peer"])
    return " ".join(row[k] for k in ("backend", "precision", "resize") if k in row)


def _unavailable(card: ModelCard, peer: str) -> str | None:
    if peer != "transformers":
        return None
    from depthlite.bench.hf_layout import has_port

    if not has_port(card):
        return f"transformers has no port of {card.name} (it has DPT and Depth Anything only)"
    if importlib.util.find_spec("transformers") is None:
        return INSTALL_HINT
    return None


def run_peers(
    card: ModelCard,
    make: Callable[[str], WorkerConfig],
    run: Callable[[WorkerConfig], dict[str, Any]],
    progress: Callable[[str], None],
) -> list[dict[str, Any]]:
    """One row per peer: measured, or skipped with the reason."""
    rows: list[dict[str, Any]] = []
    for peer in PEERS:
        reason = _unavailable(card, peer)
        if reason is not None:
            progress(f"peer {peer}: skipped: {reason}")
            rows.append({"peer": peer, "skipped": reason})
            continue
        progress(f"peer {PEER_LABELS[peer]}")
        try:
            row = run(make(peer))
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            # A peer that breaks (a transformers release that changed a module) is a result.
            last = str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else "unknown"
            rows.append({"peer": peer, "skipped": f"failed: {last}", "error": str(exc)[-4000:]})
            continue
        row["peer"] = peer
        rows.append(row)
    return rows


def _fastest(rows: list[dict[str, Any]], key: Callable[[dict[str, Any]], float | None]) -> Any:
    scored = [(value, row) for row in rows if (value := key(row)) is not None]
    return min(scored, key=lambda pair: pair[0]) if scored else None


def _ratio(ours: Any, theirs: Any) -> dict[str, Any] | None:
    if ours is None or theirs is None:
        return None
    return {"depthlite": label(ours[1]), "depthlite_ms": ours[0], "peer": label(theirs[1]),
            "peer_ms": theirs[0], "ratio": ours[0] / theirs[0]}  # fmt: skip


def _median(timing: dict[str, float] | None) -> float | None:
    return None if timing is None else float(timing["median_ms"])


def summary(
    rows: list[dict[str, Any]], peers: list[dict[str, Any]], baseline_input: list[int]
) -> dict[str, Any]:
    """depthlite's best / the fastest peer: whole pipeline, network at the baseline's input,
    and network at the photo's keep-aspect input (depthlite's keep_aspect rows)."""
    ours = [r for r in rows if "skipped" not in r]
    theirs = [p for p in peers if "skipped" not in p]

    def at_baseline(row: dict[str, Any]) -> float | None:
        if row.get("network_at_baseline_input"):
            return _median(row["network_at_baseline_input"])
        return _median(row["network"]) if row.get("input") == baseline_input else None

    def at_photo(row: dict[str, Any]) -> float | None:
        return (
            _median(row["network"]) if row.get("resize", "keep_aspect") == "keep_aspect" else None
        )

    out: dict[str, Any] = {"goal": GOAL}
    for name, key in (
        ("pipeline", lambda r: _median(r["pipeline"])),
        ("network_at_baseline_input", at_baseline),
        ("network_at_photo_input", at_photo),
    ):
        out[name] = _ratio(_fastest(ours, key), _fastest(theirs, key))
    out["pipeline_same_input"] = _same_input_pipeline(ours, theirs)
    return out


def _same_input_pipeline(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> Any:
    """The fastest peer's whole pipeline against depthlite's fastest one whose network runs
    the same input (transformers' DPT runs 384 x 384 where keep_aspect runs 384 x 672: the
    plain "pipeline" figure compares different amounts of work)."""
    peer = _fastest(theirs, lambda r: _median(r["pipeline"]) if r.get("pipeline_input") else None)
    if peer is None:
        return None
    size = peer[1]["pipeline_input"]
    mine = _fastest(ours, lambda r: _median(r["pipeline"]) if r.get("input") == size else None)
    ratio = _ratio(mine, peer)
    return None if ratio is None else {**ratio, "input": size}
