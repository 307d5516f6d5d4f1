"""``depthlite bench --peers``: the peer rows, the ratios against depthlite's best, the table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from depthlite.bench.compare import run_peers, summary
from depthlite.bench.peers import photo_input
from depthlite.bench.report import format_table
from depthlite.bench.runner import PHOTO_SIZE, machine, natural_looking_image
from depthlite.bench.worker import WorkerConfig, measure
from depthlite.zoo import get_card


def _timing(ms: float) -> dict[str, float]:
    return {"median_ms": ms, "p95_ms": ms, "runs": 3}


def test_summary_takes_depthlite_best_and_the_fastest_peer_per_figure() -> None:
    rows: list[dict[str, Any]] = [
        {"backend": "onnxruntime", "precision": "int8", "resize": "keep_aspect",
         "input": [518, 924], "network": _timing(40.0),
         "network_at_baseline_input": _timing(30.0), "pipeline": _timing(90.0)},
        {"backend": "openvino", "precision": "fp32", "resize": "square", "input": [518, 518],
         "network": _timing(20.0), "network_at_baseline_input": _timing(35.0),
         "pipeline": _timing(60.0)},
        {"backend": "openvino", "precision": "bf16", "skipped": "no BF16"},
    ]  # fmt: skip
    peers: list[dict[str, Any]] = [
        {"peer": "torch_eager", "input": [518, 924], "network": _timing(400.0),
         "network_at_baseline_input": _timing(300.0), "pipeline": _timing(600.0),
         "pipeline_input": [518, 924]},
        {"peer": "transformers", "input": [518, 924], "network": None,
         "network_at_baseline_input": _timing(200.0), "pipeline": _timing(800.0),
         "pipeline_input": [518, 518]},
    ]  # fmt: skip
    got = summary(rows, peers, [518, 686])
    assert got["pipeline"]["depthlite"] == "openvino fp32 square"
    assert got["pipeline"]["peer"] == "torch eager (original code)"
    assert got["pipeline"]["ratio"] == pytest.approx(60.0 / 600.0)
    assert got["network_at_baseline_input"]["peer"] == "transformers (HF)"
    assert got["network_at_baseline_input"]["ratio"] == pytest.approx(30.0 / 200.0)
    # Only keep_aspect rows ran the photo's keep-aspect input; a peer without it is left out.
    assert got["network_at_photo_input"]["depthlite"] == "onnxruntime int8 keep_aspect"
    assert got["network_at_photo_input"]["ratio"] == pytest.approx(40.0 / 400.0)
    # Like for like: the fastest peer's pipeline (518x924) against depthlite's at 518x924.
    same = got["pipeline_same_input"]
    assert (same["depthlite"], same["input"]) == ("onnxruntime int8 keep_aspect", [518, 924])
    assert same["ratio"] == pytest.approx(90.0 / 600.0)
    assert summary(rows, [{"peer": "transformers", "skipped": "x"}], [518, 686])["pipeline"] is None
    older = [{k: v for k, v in p.items() if k != "pipeline_input"} for p in peers]
    assert summary(rows, older, [518, 686])["pipeline_same_input"] is None


def test_each_peer_pipeline_runs_its_own_network_input() -> None:
    """transformers' DPT pipeline is square (384x384) where the original code keeps the
    aspect (384x672 for a 1080p photo); its Depth Anything keeps the aspect too."""
    from depthlite.bench.peers import peer_pipeline_input

    hybrid, small = get_card("dpt_hybrid_384"), get_card("depth_anything_v2_small")
    assert peer_pipeline_input(hybrid, "transformers", *PHOTO_SIZE) == (384, 384)
    assert peer_pipeline_input(hybrid, "torch_eager", *PHOTO_SIZE) == (384, 672)
    assert peer_pipeline_input(small, "transformers", *PHOTO_SIZE) == (518, 924)
    assert peer_pipeline_input(small, "torch_eager", *PHOTO_SIZE) == photo_input(small, *PHOTO_SIZE)


@pytest.mark.slow
def test_peers_for_midas_small_time_torch_eager_and_say_transformers_has_no_port(
    checkpoint: Path, tmp_path: Path
) -> None:
    photo = tmp_path / "photo.jpg"
    cv2.imwrite(str(photo), natural_looking_image(*PHOTO_SIZE)[..., ::-1])
    card = get_card("midas_v21_small_256")

    def make(peer: str) -> WorkerConfig:
        return WorkerConfig("torch", "fp32", "keep_aspect", str(checkpoint), str(photo), 1, 2, 2,
                            model=card.name, baseline_input=(256, 256), peer=peer)  # fmt: skip

    messages: list[str] = []
    peers = run_peers(card, make, measure, messages.append)
    eager, hf = peers
    assert eager["peer"] == "torch_eager" and "skipped" not in eager
    assert eager["input"] == list(photo_input(card, *PHOTO_SIZE)) == [128, 256]
    assert eager["pipeline_input"] == [128, 256]  # the original code's keep-aspect transform
    for key in ("network", "network_at_baseline_input", "pipeline"):
        assert 0 < eager[key]["median_ms"] <= eager[key]["p95_ms"]
    assert eager["worker_peak_rss_mb"] > 50
    assert "no port" in hf["skipped"] and any("no port" in m for m in messages)

    report = {"machine": machine(), "options": {"threads": 1, "model": card.name},
              "baseline_network_ms": eager["network_at_baseline_input"]["median_ms"],
              "baseline_input": [256, 256], "rows": [], "peers": peers,
              "peer_summary": summary([], peers, [256, 256])}  # fmt: skip
    table = format_table(report)
    assert "torch eager (original code)" in table and "128x256" in table
    assert "transformers (HF)" in table and "skipped: transformers has no port" in table
    assert "n/a (no figure on one side)" in table


def test_original_pipeline_writes_the_inferno_png_of_the_photo(checkpoint: Path) -> None:
    """The torch-eager peer's whole pipeline yields a colour PNG of the photo's size."""
    import torch

    from depthlite.bench.peers import _original_pipeline
    from depthlite.models.checkpoint import load_state_dict
    from depthlite.zoo.architectures import build_network

    card = get_card("midas_v21_small_256")
    model = build_network(card, load_state_dict(checkpoint))
    torch.set_num_threads(1)
    image = natural_looking_image(120, 200)
    data = cv2.imencode(".jpg", image[..., ::-1])[1].tobytes()
    png = _original_pipeline(card, model)(data)
    decoded = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded.shape == (120, 200, 3)
    inferno = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_INFERNO)
    # Every pixel is one of the colour map's 256 colours, both ends used (min/max scaling).
    lut = {tuple(c) for c in inferno[:, 0]}
    colours = {tuple(c) for c in decoded.reshape(-1, 3)}
    assert colours <= lut and tuple(inferno[0, 0]) in colours and tuple(inferno[255, 0]) in colours
