"""Reading and writing checkpoints in the official layout, without executing pickled code."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from depthlite.errors import WeightsError
from depthlite.fsutil import atomic_path

__all__ = ["load_state_dict", "save_state_dict"]

logger = logging.getLogger(__name__)


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Load an official MiDaS checkpoint: a bare ``state_dict`` or ``{"model": ..., ...}``.

    ``weights_only=True`` refuses anything but tensors and plain containers, so a tampered
    download cannot run code at load time.
    """
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        # torch's own text suggests weights_only=False, which would run the file's code.
        logger.debug("torch.load(%s) failed: %s", path, exc)
        hint = (
            "an .onnx file is run as it is, not converted: pass it to predict, batch, video or "
            "serve (backend onnxruntime or openvino); convert takes a .pt/.pth checkpoint"
            if Path(path).suffix.lower() == ".onnx"
            else "pass the official .pt/.pth checkpoint, or if it is in the cache, delete it "
            "so it is downloaded again"
        )
        raise WeightsError(
            f"cannot read {path} as a PyTorch checkpoint ({type(exc).__name__}): {hint}"
        ) from exc
    if isinstance(data, dict) and "model" in data and isinstance(data["model"], dict):
        data = data["model"]  # the original BaseModel.load accepts training snapshots too
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise WeightsError(f"{path} does not hold a state_dict of tensors")
    return data


def save_state_dict(state_dict: dict[str, torch.Tensor], path: Path) -> Path:
    """Save atomically, so a reader never sees a half-written checkpoint."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(state_dict, tmp)
    return path
