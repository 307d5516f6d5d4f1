"""Reading and writing checkpoints in the official layout, without executing pickled code."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from depthlite.errors import WeightsError

__all__ = ["load_state_dict", "save_state_dict"]


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Load an official MiDaS checkpoint: a bare ``state_dict`` or ``{"model": ..., ...}``.

    ``weights_only=True`` refuses anything but tensors and plain containers, so a tampered
    download cannot run code at load time.
    """
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        raise WeightsError(
            f"cannot read checkpoint {path}: {exc}; is it a MiDaS .pt file? Delete it to "
            "download it again, or pass another --weights file"
        ) from exc
    if isinstance(data, dict) and "model" in data and isinstance(data["model"], dict):
        data = data["model"]  # the original BaseModel.load accepts training snapshots too
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise WeightsError(f"{path} does not hold a state_dict of tensors")
    return data


def save_state_dict(state_dict: dict[str, torch.Tensor], path: Path) -> Path:
    """Save atomically, so a reader never sees a half-written checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".part")
    os.close(fd)
    try:
        torch.save(state_dict, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
