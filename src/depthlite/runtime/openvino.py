"""OpenVINO backend (extra ``openvino``): FP32, BF16 where the CPU has it, INT8 from QDQ models."""

from __future__ import annotations

import logging
import queue
import threading
from collections import OrderedDict

import numpy as np
import openvino as ov

from depthlite.errors import BackendUnavailableError
from depthlite.runtime.base import Backend, ModelFormat, physical_cores
from depthlite.runtime.metadata import card_metadata

__all__ = ["OpenVinoBackend", "bf16_supported"]

logger = logging.getLogger(__name__)

# Compiled models kept per input shape: keep-aspect inputs take a handful of shapes, and a
# static shape compiles to faster kernels than OpenVINO's dynamic-shape path.
_MAX_SHAPES = 8


def bf16_supported(core: ov.Core | None = None) -> bool:
    """Whether OpenVINO's CPU plugin can run BF16 natively here (AVX512_BF16 or AMX)."""
    caps = (core or ov.Core()).get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return "BF16" in caps


class _Compiled:
    """One compiled shape and a pool of idle infer requests (a request serves one thread)."""

    def __init__(self, compiled: ov.CompiledModel) -> None:
        self.compiled = compiled
        self.idle: queue.SimpleQueue[ov.InferRequest] = queue.SimpleQueue()

    def run(self, x: np.ndarray) -> np.ndarray:
        try:
            request = self.idle.get_nowait()
        except queue.Empty:
            request = self.compiled.create_infer_request()
        try:
            request.infer({0: x})
            return np.array(request.get_output_tensor(0).data, dtype=np.float32, copy=True)
        finally:
            self.idle.put(request)


class OpenVinoBackend(Backend):
    """An ONNX file read by OpenVINO and compiled for the CPU, once per input shape."""

    name = "openvino"

    def _open(self, *, preoptimized: bool) -> None:
        self._core = ov.Core()
        if self.precision == "bf16" and not bf16_supported(self._core):
            raise BackendUnavailableError(
                "this CPU has no native BF16 (AVX512_BF16 or AMX), so OpenVINO would emulate it "
                "slower than FP32; use --precision fp32 or int8"
            )
        try:
            self._model = self._core.read_model(str(self.model_path))
        except Exception as exc:  # OpenVINO raises RuntimeError with its own text
            raise BackendUnavailableError(f"OpenVINO cannot read {self.model_path}: {exc}") from exc
        # One stream per `threads` cores: a single-threaded session shared by one worker per
        # core (depthlite.pipeline) then runs that many requests at once instead of queueing
        # them on one stream (measured: 1.27x -> see docs/benchmarks.md "Throughput"); one
        # session with every core keeps one stream, as before. OpenVINO's thread count is
        # the total over the streams.
        streams = max(1, physical_cores() // self.threads)
        self._config = {
            "INFERENCE_NUM_THREADS": self.threads * streams,
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": streams,
            # Explicit: on BF16-capable CPUs OpenVINO would otherwise pick bf16 silently, and
            # FP32 must stay exact (conformance). INT8 layers of a QDQ model run INT8 either way.
            "INFERENCE_PRECISION_HINT": "bf16" if self.precision == "bf16" else "f32",
        }
        self._format = self._read_format()
        self._lock = threading.Lock()
        self._compiled: OrderedDict[tuple[int, ...], _Compiled] = OrderedDict()

    def _read_format(self) -> ModelFormat:
        shape = self._model.inputs[0].partial_shape
        fixed = None if shape.is_dynamic else (shape[2].get_length(), shape[3].get_length())
        channels = shape[1].get_length() if shape[1].is_static else None
        meta: dict[str, str] = {}
        # OpenVINO keeps ONNX metadata_props under rt_info["framework"]; ask for our keys.
        for key in card_metadata(self.card, normalizes_inside=False):
            path = ["framework", key]
            if self._model.has_rt_info(path):
                meta[key] = self._model.get_rt_info(path).astype(str)
        return ModelFormat.from_metadata(fixed, meta, channels)

    @property
    def model_format(self) -> ModelFormat:
        return self._format

    def _for_shape(self, shape: tuple[int, ...]) -> _Compiled:
        with self._lock:
            entry = self._compiled.get(shape)
            if entry is not None:
                self._compiled.move_to_end(shape)
                return entry
            model = self._model.clone()
            if self._format.fixed_size is None:
                model.reshape({0: ov.PartialShape(list(shape))})
            try:
                compiled = self._core.compile_model(model, "CPU", self._config)
            except Exception as exc:  # RuntimeError with the CPU plugin's own text
                raise self._cannot_compile(shape, exc) from exc
            entry = _Compiled(compiled)
            self._compiled[shape] = entry
            if len(self._compiled) > _MAX_SHAPES:
                self._compiled.popitem(last=False)
            logger.debug("compiled %s for input %s", self.model_path.name, shape)
            return entry

    def _cannot_compile(self, shape: tuple[int, ...], exc: Exception) -> BackendUnavailableError:
        # Seen: DPT-Hybrid's INT8 (QDQ) graph ("could not append an elementwise post-op");
        # ONNX Runtime runs the same file.
        reason = next((ln for ln in reversed(str(exc).splitlines()) if ln.strip()), repr(exc))
        return BackendUnavailableError(
            f"OpenVINO cannot compile {self.model_path.name} ({self.precision}) for input "
            f"{'x'.join(map(str, shape[2:]))}: {reason.strip()}; run this model with "
            "--backend onnxruntime, or with OpenVINO at another --precision"
        )

    def run(self, x: np.ndarray) -> np.ndarray:
        out = self._for_shape(tuple(x.shape)).run(x)
        return out.reshape(1, *out.shape[-2:])

    def close(self) -> None:
        with self._lock:
            self._compiled.clear()
