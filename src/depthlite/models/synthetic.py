"""Deterministic pseudo-random weights in the official layout.

Official weights cannot be fetched everywhere (CI, air-gapped machines), yet the whole pipeline
(download, hash pinning, conversion, conformance) must be exercised on a real checkpoint file.
This fills every ``state_dict`` entry from its key name alone, by the recipe the conformance
fixture was produced with, so outputs are comparable with the original MiDaS code.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import torch

from depthlite.models.checkpoint import save_state_dict
from depthlite.models.midas_small import build_model

__all__ = ["synthetic_checkpoint", "synthetic_state_dict"]


def _fill(key: str, shape: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    if key.endswith("running_var"):
        values = rng.uniform(0.5, 1.5, shape)
    elif key.endswith("running_mean"):
        values = rng.normal(0.0, 0.1, shape)
    elif len(shape) <= 1 and key.endswith("weight"):
        values = rng.uniform(0.5, 1.5, shape)
    elif key.endswith("bias"):
        values = rng.normal(0.0, 0.05, shape)
    else:
        fan_in = int(np.prod(shape[1:]))
        values = rng.normal(0.0, 1.0, shape) * np.sqrt(1.0 / fan_in)
    return np.asarray(values).astype(np.float32)


def synthetic_state_dict(architecture: str = "midas_small") -> dict[str, torch.Tensor]:
    """A complete ``state_dict`` for ``architecture`` with deterministic values."""
    reference = build_model(architecture).state_dict()
    return {
        key: tensor.clone()
        if key.endswith("num_batches_tracked")
        else torch.from_numpy(_fill(key, tuple(tensor.shape)))
        for key, tensor in reference.items()
    }


def synthetic_checkpoint(path: Path, architecture: str = "midas_small") -> Path:
    """Write a synthetic checkpoint file, as the official ``.pt`` files are laid out."""
    return save_state_dict(synthetic_state_dict(architecture), path)
