"""ONNX Runtime backend: the default, and the only runtime a plain ``pip install`` brings."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort

from depthlite.errors import BackendUnavailableError
from depthlite.runtime.base import NORMALIZES_INSIDE_KEY, Backend, ModelFormat
from depthlite.specs import ModelSpec

__all__ = ["OnnxRuntimeBackend"]

logger = logging.getLogger(__name__)


def _session_options(threads: int) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    # One graph, run op after op: inter-op parallelism only adds thread hand-offs here.
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Inputs change shape with the aspect ratio; memory patterns are planned per shape and
    # would be re-planned (and kept) for each, so they cost memory without saving time.
    opts.enable_mem_pattern = False
    return opts


class OnnxRuntimeBackend(Backend):
    """One ``InferenceSession``; ``run`` is thread-safe (ONNX Runtime guarantees it)."""

    name = "onnxruntime"

    def __init__(self, model_path: Path, spec: ModelSpec, threads: int | None = None) -> None:
        super().__init__(model_path, spec, threads)
        try:
            self._session = ort.InferenceSession(
                str(self.model_path),
                sess_options=_session_options(self.threads),
                providers=["CPUExecutionProvider"],
            )
        except Exception as exc:  # ORT raises its own untyped errors for bad files
            raise BackendUnavailableError(
                f"ONNX Runtime cannot load {self.model_path}: {exc}; delete the file to "
                "have it downloaded or converted again, or pass a valid --weights file"
            ) from exc
        inputs = self._session.get_inputs()
        outputs = self._session.get_outputs()
        if len(inputs) != 1 or len(outputs) < 1:
            raise BackendUnavailableError(
                f"{self.model_path} has {len(inputs)} inputs and {len(outputs)} outputs; "
                "expected one image input and a depth output"
            )
        self._input_name = inputs[0].name
        self._output_name = outputs[0].name
        self._format = self._read_format(inputs[0].shape)
        logger.debug("loaded %s with %d threads: %s", self.model_path, self.threads, self._format)

    def _read_format(self, shape: list[object]) -> ModelFormat:
        height, width = shape[2], shape[3]
        fixed = (height, width) if isinstance(height, int) and isinstance(width, int) else None
        meta = self._session.get_modelmeta().custom_metadata_map
        normalizes = meta.get(NORMALIZES_INSIDE_KEY, "true").lower() == "true"
        return ModelFormat(fixed_size=fixed, normalizes_inside=normalizes)

    @property
    def model_format(self) -> ModelFormat:
        return self._format

    def run(self, x: np.ndarray) -> np.ndarray:
        (out,) = self._session.run([self._output_name], {self._input_name: x})
        return np.asarray(out, dtype=np.float32).reshape(1, *out.shape[-2:])
