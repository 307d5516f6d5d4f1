"""What a user would run instead of depthlite, timed on the same photo and the same weights.

Two peers, each measured in a bench worker process of its own (``worker.py``):

- ``torch_eager``: the original code's way, for every model: its ``run.py`` steps (OpenCV
  decode, float64 cubic resize, normalise, torch eager under ``no_grad``, torch upsampling to
  the photo's size, min/max to 8 bits, OpenCV's INFERNO colour map, OpenCV PNG encode).
- ``transformers``: Hugging Face's ``DPTForDepthEstimation`` / ``DepthAnythingForDepthEstimation``
  built from the configs of ``hf_layout`` with the weights renamed (nothing is downloaded); the
  whole pipeline is ``pipeline("depth-estimation")`` with its image processor on a PIL image,
  then the grey depth image it returns saved as PNG (it has no colour map: slightly less work).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from depthlite.bench.stats import pipeline_repeats, time_calls
from depthlite.transforms import network_size
from depthlite.zoo import get_card
from depthlite.zoo.cards import ModelCard

if TYPE_CHECKING:
    import torch

    from depthlite.bench.worker import WorkerConfig

__all__ = ["PEERS", "measure_peer", "peer_pipeline_input", "photo_input"]

PEERS = ("torch_eager", "transformers")


def photo_input(card: ModelCard, height: int, width: int) -> tuple[int, int]:
    """The network input of a ``height x width`` photo under the model's own (keep-aspect)
    transform: what depthlite's default ``keep_aspect`` feeds the network."""
    pre = card.preprocess
    return network_size(height, width, pre.size, pre.multiple_of, "keep_aspect",
                        rule=pre.resize_rule)  # fmt: skip


def peer_pipeline_input(card: ModelCard, peer: str, height: int, width: int) -> tuple[int, int]:
    """The network input a peer's whole pipeline runs on a ``height x width`` photo: the
    original code's keep-aspect transform, or for transformers its processor's (square for
    every DPT, see ``hf_layout.square_only``; keep-aspect for Depth Anything)."""
    if peer == "transformers":
        from depthlite.bench.hf_layout import square_only

        if square_only(card):
            return card.preprocess.size, card.preprocess.size
    return photo_input(card, height, width)


def _original_pipeline(card: ModelCard, model: torch.nn.Module) -> Callable[[bytes], bytes]:
    """JPEG bytes -> colour PNG bytes, step by step as the original ``run.py`` does them."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    pre = card.preprocess
    mean, std = np.asarray(pre.mean), np.asarray(pre.std)
    bilinear = card.output.upsampling == "bilinear_align_corners"

    def run(data: bytes) -> bytes:
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        img = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) / 255.0
        h, w = network_size(*img.shape[:2], pre.size, pre.multiple_of, "keep_aspect",
                            rule=pre.resize_rule)  # fmt: skip
        img = (cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC) - mean) / std
        x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1), np.float32))[None]
        with torch.no_grad():
            depth = model(x).unsqueeze(1)
            mode = {"mode": "bilinear", "align_corners": True} if bilinear else {"mode": "bicubic"}
            depth = F.interpolate(depth, size=bgr.shape[:2], **mode).squeeze().numpy()
        lo, hi = float(depth.min()), float(depth.max())
        gray = (255 * (depth - lo) / (hi - lo)) if hi > lo else np.zeros_like(depth)
        color = cv2.applyColorMap(gray.astype(np.uint8), cv2.COLORMAP_INFERNO)
        return cv2.imencode(".png", color)[1].tobytes()

    return run


def _hf_pipeline(card: ModelCard, model: torch.nn.Module) -> Callable[[bytes], bytes]:
    """JPEG bytes -> grey PNG bytes through ``pipeline("depth-estimation")``."""
    from PIL import Image
    from transformers import DPTImageProcessorPil, pipeline

    from depthlite.bench.hf_layout import square_only

    pre = card.preprocess
    square = square_only(card)
    # The Hub's processors: Depth Anything keeps the aspect (multiple of 14); transformers'
    # DPT runs square inputs only (see square_only), so it gets 384 x 384, as the Hub's does.
    processor = DPTImageProcessorPil(
        size={"height": pre.size, "width": pre.size},
        keep_aspect_ratio=not square,
        ensure_multiple_of=1 if square else pre.multiple_of,
        image_mean=list(pre.mean),
        image_std=list(pre.std),
        resample=3,  # PIL bicubic
        do_pad=False,
    )
    pipe = pipeline("depth-estimation", model=model, image_processor=processor, device="cpu")

    def run(data: bytes) -> bytes:
        out = pipe(Image.open(io.BytesIO(data)))
        buffer = io.BytesIO()
        out["depth"].save(buffer, "PNG")
        return buffer.getvalue()

    return run


def _network(card: ModelCard, peer: str, weights: Path) -> torch.nn.Module:
    from depthlite.models.checkpoint import load_state_dict
    from depthlite.zoo.architectures import build_network

    state = load_state_dict(weights)
    if peer == "torch_eager":
        return build_network(card, state)
    from depthlite.bench.hf_layout import build_hf_model

    return build_hf_model(card, state)


def _time_network(
    forward: Callable[[torch.Tensor], object], size: tuple[int, int], repeats: int
) -> tuple[dict[str, float] | None, str | None]:
    """(timing, None), or (None, why) when the peer cannot run this input size."""
    import torch

    x = torch.from_numpy(np.random.default_rng(0).uniform(-2, 2, (1, 3, *size)).astype(np.float32))

    def call() -> object:
        with torch.no_grad():
            return forward(x)

    try:
        call()
    except (ValueError, RuntimeError) as exc:  # transformers' DPT: square inputs only
        return None, f"{size[0]}x{size[1]}: {str(exc).splitlines()[0][:160]}"
    return time_calls(call, repeats).to_dict(), None


def measure_peer(cfg: WorkerConfig) -> dict[str, Any]:
    """Network medians at the photo's keep-aspect input and at the baseline's, and the whole
    pipeline median on the photo (JPEG bytes -> PNG bytes)."""
    import torch

    torch.set_num_threads(cfg.threads)
    card = get_card(cfg.model)
    model = _network(card, cfg.peer or "", Path(cfg.weights))
    if cfg.peer == "torch_eager":
        forward, pipeline = model, _original_pipeline(card, model)
    else:
        forward = lambda x: model(pixel_values=x).predicted_depth  # noqa: E731
        pipeline = _hf_pipeline(card, model)
    data = Path(cfg.image).read_bytes()
    photo = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).shape[:2]
    size = photo_input(card, *photo)
    network, why = _time_network(forward, size, cfg.repeats)
    same, why_base = _time_network(forward, tuple(cfg.baseline_input), cfg.repeats)
    notes = [n for n in (why, why_base) if n]
    return {
        "input": list(size),
        "network": network,
        "network_at_baseline_input": same,
        "pipeline": time_calls(lambda: pipeline(data), pipeline_repeats(cfg.repeats)).to_dict(),
        "pipeline_input": list(peer_pipeline_input(card, cfg.peer or "", *photo)),
        "notes": notes,
    }
