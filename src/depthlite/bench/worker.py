"""One bench configuration, measured in this process; prints one JSON object on stdout.

python -m depthlite.bench.worker '{"backend": "onnxruntime", ...}'
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from depthlite.bench.stats import peak_rss_mb, pipeline_repeats, throughput, time_calls

if TYPE_CHECKING:
    from depthlite.estimator import DepthEstimator

__all__ = ["WorkerConfig", "measure"]


@dataclass(frozen=True)
class WorkerConfig:
    backend: str
    precision: str
    resize: str
    weights: str
    image: str
    threads: int
    repeats: int
    callers: int
    baseline: bool = False  # the original code's way: torch eager, no_grad, network only
    reference_weights: str | None = None  # FP32 file to score an INT8/BF16 run against
    model: str = "midas_v21_small_256"
    # The baseline's input (height, width); every configuration is also timed at it.
    baseline_input: tuple[int, int] = (256, 256)
    peer: str | None = None  # a peer (bench/peers.py) instead of a depthlite configuration


def _estimator(cfg: WorkerConfig, weights: str, precision: str) -> DepthEstimator:
    """The estimator a configuration measures (or compares against), with its settings."""
    from depthlite.estimator import DepthEstimator

    return DepthEstimator(cfg.model, backend=cfg.backend, precision=precision,
                          resize=cfg.resize, threads=cfg.threads, weights=weights,
                          progress=False)  # fmt: skip


def _input(size: tuple[int, int] | list[int]) -> np.ndarray:
    return np.random.default_rng(0).uniform(-2, 2, (1, 3, *size)).astype(np.float32)


def _measure_baseline(cfg: WorkerConfig) -> dict[str, Any]:
    import torch

    from depthlite.models.checkpoint import load_state_dict
    from depthlite.zoo import get_card
    from depthlite.zoo.architectures import build_network

    torch.set_num_threads(cfg.threads)
    model = build_network(get_card(cfg.model), load_state_dict(Path(cfg.weights)))
    x = torch.from_numpy(_input(cfg.baseline_input))

    def original_way() -> object:
        with torch.no_grad():
            return model(x)

    network = time_calls(original_way, cfg.repeats).to_dict()
    return {"network": network, "input": list(cfg.baseline_input)}


def _measure(cfg: WorkerConfig) -> dict[str, Any]:
    from depthlite.imageio import load_image
    from depthlite.transforms import preprocess

    est = _estimator(cfg, cfg.weights, cfg.precision)
    data = Path(cfg.image).read_bytes()
    x = preprocess(load_image(data), est.input_policy())

    def pipeline() -> bytes:
        # Everything a user waits for: JPEG bytes in, colour PNG bytes out (as predict writes).
        result = est.predict(data)
        return result.encode(["color"])["color"]

    network = time_calls(lambda: est.infer(x), cfg.repeats)
    same = None
    if est.load().model_format.fixed_size is None:  # a fixed-size file runs only its size
        x_base = _input(cfg.baseline_input)
        same = time_calls(lambda: est.infer(x_base), cfg.repeats).to_dict()
    whole = time_calls(pipeline, pipeline_repeats(cfg.repeats))
    stages = est.predict(data).timings
    calls = max(2, cfg.repeats // 4)
    return {
        "input": list(x.shape[2:]),
        "network": network.to_dict(),
        "network_at_baseline_input": same,
        "pipeline": whole.to_dict(),
        "stages_ms": stages,
        "throughput_1": throughput(pipeline, 1, calls),
        f"throughput_{cfg.callers}": throughput(pipeline, cfg.callers, calls),
    }


def _agreement(cfg: WorkerConfig) -> dict[str, dict[str, float]]:
    """AbsRel and delta<1.25 against FP32 on photos the INT8 calibration never saw."""
    from depthlite.models.quantize import EVALUATION_PHOTOS, evaluate_agreement, sample_photos

    reference = _estimator(cfg, cfg.reference_weights or "", "fp32")
    candidate = _estimator(cfg, cfg.weights, cfg.precision)
    scores = evaluate_agreement(
        lambda rgb: reference.predict(rgb).depth,
        lambda rgb: candidate.predict(rgb).depth,
        sample_photos(EVALUATION_PHOTOS),
    )
    return {name: {"absrel": s.absrel, "delta1": s.delta1} for name, s in scores.items()}


def measure(cfg: WorkerConfig) -> dict[str, Any]:
    if cfg.peer:
        from depthlite.bench.peers import measure_peer

        result = measure_peer(cfg)
    else:
        result = _measure_baseline(cfg) if cfg.baseline else _measure(cfg)
    if cfg.reference_weights:
        result["agreement_vs_fp32"] = _agreement(cfg)
    result["worker_peak_rss_mb"] = peak_rss_mb()
    result["config"] = asdict(cfg)
    return result


if __name__ == "__main__":
    config = WorkerConfig(**json.loads(sys.argv[1]))
    if config.peer:
        # A peer must never reach for the Hub. Set here, in the worker process only: the Hub
        # library reads it once at import, so setting it in a caller's process would leave
        # that whole process offline.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(json.dumps(measure(config)))
