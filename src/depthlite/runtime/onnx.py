"""ONNX Runtime backend: the default, and the only runtime a plain ``pip install`` brings."""

from __future__ import annotations

import hashlib
import logging
import platform
import tempfile
import threading
from pathlib import Path

import numpy as np
import onnxruntime as ort

from depthlite.errors import BackendUnavailableError
from depthlite.memory import LARGE_MODEL_BYTES, large_allocations_mapped, trim_heap
from depthlite.runtime.attention import fuse_in_subprocess
from depthlite.runtime.base import Backend, ModelFormat

__all__ = [
    "OPTIMIZE_VERSION",
    "OnnxRuntimeBackend",
    "cpu_signature",
    "inspect_model",
    "optimize_model",
    "optimize_tools",
]

logger = logging.getLogger(__name__)

# ORT's arena extend strategies (OrtArenaCfg): 0 = kNextPowerOfTwo, 1 = kSameAsRequested.
_NEXT_POWER_OF_TWO = 0
_MIN_FIRST_REGION = 16 << 20
_MAX_FIRST_REGION = 1 << 30  # OrtArenaCfg holds it in an int
_env_arena_lock = threading.Lock()
_env_arena_state: dict[str, bool] = {}  # "ready": registered (True) or failed (False)


def _shared_int8_arena(model_bytes: int) -> bool:
    """Register, once per process, the CPU arena INT8 sessions share (``use_env_allocators``).

    Its first region is 1.75x the first INT8 file's size, and it grows by powers of two. An
    arena never gives a region back, and a tensor must fit in one free chunk: grown region by
    region (the default's small first region, or exactly what each tensor asks), the
    activations' regions fragment. One region that holds a whole run serves every tensor, and
    its untouched pages cost nothing. ``depthlite predict`` INT8 on a 1080p JPEG, peak RSS
    (docs/benchmarks.md, session 10): Depth Anything V2 Small 487 -> 360 MiB, MiDaS v2.1
    large 275 -> 256, DPT-Hybrid 391 -> 363, MiDaS small about the same (144-148); the same
    speed. Empirical: a first region just too small for the largest tensor costs it all
    (Depth Anything V2 Small: 38 MiB gave 481 MiB, 39-56 MiB 357-362), and much larger ones
    cost again (80 MiB: 385; DPT-Hybrid 384 MiB: 379, 1 GiB: 399); 1.75x is inside every
    model's good range measured.
    """
    with _env_arena_lock:
        if "ready" not in _env_arena_state:
            try:
                info = ort.OrtMemoryInfo(
                    "Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT
                )
                first = min(max(_MIN_FIRST_REGION, model_bytes * 7 // 4), _MAX_FIRST_REGION)
                cfg = ort.OrtArenaCfg(
                    {"arena_extend_strategy": _NEXT_POWER_OF_TWO, "initial_chunk_size_bytes": first}
                )
                ort.create_and_register_allocator(info, cfg)
                _env_arena_state["ready"] = True
            except Exception as exc:  # an ORT build without it: keep the per-session arena
                logger.debug("cannot register a shared ONNX Runtime arena: %s", exc)
                _env_arena_state["ready"] = False
        return _env_arena_state["ready"]


def _session_options(
    threads: int, *, preoptimized: bool, int8_arena_for: int | None = None
) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    # One graph, run op after op: inter-op parallelism only adds thread hand-offs here.
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # ENABLE_ALL adds the NCHWc layout transforms: about 1.5x faster than BASIC or EXTENDED
    # on this network (docs/benchmarks.md). A file saved after those passes is loaded without
    # optimising again: the same speed, without holding both weight layouts at load time.
    opts.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        if preoptimized
        else ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    )
    # Inputs change shape with the aspect ratio; memory patterns are planned per shape and
    # would be re-planned (and kept) for each, so they cost memory without saving time.
    opts.enable_mem_pattern = False
    # The intra-op threads spin between the operators of a run (they do: without spinning the
    # network took 25-30 % longer), but not after it, where they took a core from the decode,
    # resize and PNG deflate around the network. MiDaS small INT8, 1080p JPEG to colour PNG,
    # 2 threads, AMD EPYC with AVX-512 VNNI: pipeline 26.1-26.8 ms instead of 31.3-36.1, network
    # the same (docs/benchmarks.md, session 6).
    opts.add_session_config_entry("session.force_spinning_stop", "1")
    if int8_arena_for is not None and _shared_int8_arena(int8_arena_for):
        opts.add_session_config_entry("session.use_env_allocators", "1")
    return opts


def cpu_signature() -> str:
    """What the NCHWc transforms depend on: the CPU model and its instruction-set flags."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            lines = [ln for ln in f if ln.startswith(("model name", "flags"))]
        text = "".join(sorted(set(lines)))
    except OSError:
        text = f"{platform.machine()} {platform.processor()}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# The optimise recipe's version and tools: ONNX Runtime warns that a model saved after its
# ENABLE_ALL passes is hardware specific, so the derivation key covers the runtime and the CPU.
# 2: attention blocks fused into MultiHeadAttention first (see attention.fuse_attention).
OPTIMIZE_VERSION = 2


def optimize_tools() -> dict[str, str]:
    return {"onnxruntime": ort.__version__, "cpu": cpu_signature()}


def optimize_model(source: Path, target: Path) -> None:
    """The optimise recipe: ``source`` with its attention fused, after ENABLE_ALL, saved.

    That session is dropped at once: it holds both weight layouts (about twice the file), so
    serving from it would keep the peak high; the saved file loads without optimising again.
    """
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fuse-") as tmp:
        fused = Path(tmp) / source.name
        graph = fused if fuse_in_subprocess(source, fused) else source
        try:
            optimizing = _create_session(graph, 1, preoptimized=False, save_to=target)
        except Exception as exc:  # ORT raises its own untyped errors for bad files
            raise _cannot_load(source, exc) from exc
        del optimizing


def _create_session(
    path: Path,
    threads: int,
    *,
    preoptimized: bool,
    save_to: Path | None = None,
    int8_arena: bool = False,
) -> ort.InferenceSession:
    size = path.stat().st_size
    opts = _session_options(
        threads, preoptimized=preoptimized, int8_arena_for=size if int8_arena else None
    )
    if save_to is not None:
        opts.optimized_model_filepath = str(save_to)
        # ORT warns that such a file is hardware specific; the derivation key covers that.
        opts.log_severity_level = 3
    with large_allocations_mapped(size >= LARGE_MODEL_BYTES):
        return ort.InferenceSession(
            str(path), sess_options=opts, providers=["CPUExecutionProvider"]
        )


def _format_of(session: ort.InferenceSession) -> ModelFormat:
    shape = session.get_inputs()[0].shape
    height, width = shape[2], shape[3]
    fixed = (height, width) if isinstance(height, int) and isinstance(width, int) else None
    channels = shape[1] if isinstance(shape[1], int) else None
    return ModelFormat.from_metadata(
        fixed, dict(session.get_modelmeta().custom_metadata_map), channels
    )


def _cannot_load(path: Path, exc: Exception) -> BackendUnavailableError:
    return BackendUnavailableError(
        f"ONNX Runtime cannot load {path}: {exc}; delete the file to have it downloaded or "
        "converted again, or pass a valid --weights file"
    )


def inspect_model(path: Path) -> tuple[str, ModelFormat]:
    """Input name and layout of an ONNX file, without optimising it."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own untyped errors for bad files
        raise _cannot_load(path, exc) from exc
    return session.get_inputs()[0].name, _format_of(session)


class OnnxRuntimeBackend(Backend):
    """One ``InferenceSession``; ``run`` is thread-safe (ONNX Runtime guarantees it)."""

    name = "onnxruntime"

    def _open(self, *, preoptimized: bool) -> None:
        try:
            self._session = _create_session(
                self.model_path,
                self.threads,
                preoptimized=preoptimized,
                int8_arena=self.precision == "int8",
            )
            trim_heap()
        except Exception as exc:  # ORT raises its own untyped errors for bad files
            raise _cannot_load(self.model_path, exc) from exc
        inputs = self._session.get_inputs()
        outputs = self._session.get_outputs()
        if len(inputs) != 1 or len(outputs) < 1:
            raise BackendUnavailableError(
                f"{self.model_path} has {len(inputs)} inputs and {len(outputs)} outputs; "
                "expected one image input and a depth output"
            )
        self._input_name = inputs[0].name
        self._output_name = outputs[0].name
        self._format = _format_of(self._session)
        logger.debug("loaded %s with %d threads: %s", self.model_path, self.threads, self._format)

    @property
    def model_format(self) -> ModelFormat:
        return self._format

    def run(self, x: np.ndarray) -> np.ndarray:
        (out,) = self._session.run([self._output_name], {self._input_name: x})
        return np.asarray(out, dtype=np.float32).reshape(1, *out.shape[-2:])
