"""Deterministic pseudo-random weights in the official layout.

Official weights cannot be fetched everywhere (CI, air-gapped machines), yet the whole pipeline
(download, hash pinning, conversion, conformance) must be exercised on a real checkpoint file.
This fills every ``state_dict`` entry from its key name alone, by the recipe the conformance
fixtures were produced with, so outputs are comparable with the original code.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import torch

from depthlite.models.checkpoint import save_state_dict
from depthlite.zoo import DEFAULT_MODEL, get_card
from depthlite.zoo.architectures import meta_network

__all__ = ["fill_state_dict", "synthetic_checkpoint", "synthetic_state_dict"]


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


def fill_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A complete ``state_dict`` for ``model`` with deterministic values, in its key order.

    ``model`` may live on the ``meta`` device: only its keys and shapes are read.
    """
    return {
        key: torch.zeros(tensor.shape, dtype=tensor.dtype)
        if key.endswith("num_batches_tracked")
        else torch.from_numpy(_fill(key, tuple(tensor.shape)))
        for key, tensor in model.state_dict().items()
    }


def synthetic_state_dict(model: str = DEFAULT_MODEL) -> dict[str, torch.Tensor]:
    """A complete ``state_dict`` for the card ``model`` with deterministic values."""
    return fill_state_dict(meta_network(get_card(model)))


def synthetic_checkpoint(path: Path, model: str = DEFAULT_MODEL) -> Path:
    """Write a synthetic checkpoint file, laid out as the official files are."""
    return save_state_dict(synthetic_state_dict(model), path)
