"""PyTorch backend: the reference, computing exactly as the original code (eager, ``no_grad``)."""

from __future__ import annotations

import logging
import threading

import numpy as np
import torch

from depthlite.models.checkpoint import load_state_dict
from depthlite.runtime.base import Backend, ModelFormat
from depthlite.zoo.architectures import build_network

__all__ = ["TorchBackend"]

logger = logging.getLogger(__name__)

_THREADS_LOCK = threading.Lock()


class TorchBackend(Backend):
    """The plain ``torch.nn`` network loaded from an official-layout checkpoint."""

    name = "torch"

    def _open(self, *, preoptimized: bool) -> None:
        with _THREADS_LOCK:
            # torch's thread pool is process-wide: the last backend created sets it.
            torch.set_num_threads(self.threads)
        self._model = build_network(self.card, load_state_dict(self.model_path))

    @property
    def model_format(self) -> ModelFormat:
        return ModelFormat(fixed_size=None, normalizes_inside=False)

    def run(self, x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = self._model(torch.from_numpy(x))
        return out.numpy().astype(np.float32, copy=False)
