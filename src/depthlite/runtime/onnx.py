"""ONNX Runtime backend: the default, and the only runtime a plain ``pip install`` brings."""

from __future__ import annotations

import ctypes
import hashlib
import logging
import platform
import threading
from pathlib import Path

import numpy as np
import onnxruntime as ort

from depthlite import hub
from depthlite.errors import BackendUnavailableError
from depthlite.fsutil import atomic_path
from depthlite.runtime.base import NORMALIZES_INSIDE_KEY, PRECISION_KEY, Backend, ModelFormat
from depthlite.specs import ModelSpec

__all__ = ["OnnxRuntimeBackend", "inspect_model", "optimized_model_path"]

logger = logging.getLogger(__name__)

OPTIMIZED_DIR = "optimized"

# ORT's arena extend strategies (OrtArenaCfg): 1 = kSameAsRequested.
_SAME_AS_REQUESTED = 1
_env_arena_lock = threading.Lock()
_env_arena_state: dict[str, bool] = {}  # "ready": registered (True) or failed (False)


def _exact_env_arena() -> bool:
    """Register, once per process, a shared CPU arena that grows by exactly what is asked.

    The default arena grows by powers of two; for the INT8 model (small weights and packed
    buffers) that rounding is 12-14 MB of a ~165 MB peak. Measured in one process, sessions
    interleaved: INT8 -2 % to +5 % network time (within noise), 6 MB less at load, 7 MB
    less after a run; FP32 grew 5-9 MB with it, so only INT8 sessions opt in
    (``use_env_allocators``).
    """
    with _env_arena_lock:
        if "ready" not in _env_arena_state:
            try:
                info = ort.OrtMemoryInfo(
                    "Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT
                )
                cfg = ort.OrtArenaCfg({"arena_extend_strategy": _SAME_AS_REQUESTED})
                ort.create_and_register_allocator(info, cfg)
                _env_arena_state["ready"] = True
            except Exception as exc:  # an ORT build without it: keep the per-session arena
                logger.debug("cannot register a shared ONNX Runtime arena: %s", exc)
                _env_arena_state["ready"] = False
        return _env_arena_state["ready"]


def _release_freed_heap() -> None:
    """Give the heap pages freed while a session was created back to the kernel (glibc only).

    Parsing the model file frees 10+ MB below memory that stays in use, so glibc keeps those
    pages resident (it only trims the top of the heap) and the first image then grows the
    process further. One ``malloc_trim`` per session load, never per image: measured 6-7 MB
    off the INT8 peak of ``depthlite predict`` on a 1080p photo.
    """
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):  # not glibc (musl, macOS, Windows): nothing to do
        return
    trim.argtypes = [ctypes.c_size_t]
    trim(0)


def _session_options(
    threads: int, *, preoptimized: bool, exact_arena: bool = False
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
    if exact_arena and _exact_env_arena():
        opts.add_session_config_entry("session.use_env_allocators", "1")
    return opts


def _cpu_signature() -> str:
    """What the NCHWc transforms depend on: the CPU model and its instruction-set flags."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            lines = [ln for ln in f if ln.startswith(("model name", "flags"))]
        return "".join(sorted(set(lines)))
    except OSError:
        return f"{platform.machine()} {platform.processor()}"


def optimized_model_path(model_path: Path) -> Path:
    """Cache path of ``model_path`` optimised by this ONNX Runtime on this CPU.

    ONNX Runtime warns that a model saved after its ENABLE_ALL passes is hardware specific, so
    the key covers the source file, the runtime version and the CPU.
    """
    stat = model_path.stat()
    key = "\n".join(
        (
            str(model_path.resolve()),
            str(stat.st_size),
            str(stat.st_mtime_ns),
            ort.__version__,
            _cpu_signature(),
        )
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return hub.cache_dir() / OPTIMIZED_DIR / f"{model_path.stem}-{digest}.onnx"


def _create_session(
    path: Path,
    threads: int,
    *,
    preoptimized: bool,
    save_to: Path | None = None,
    exact_arena: bool = False,
) -> ort.InferenceSession:
    opts = _session_options(threads, preoptimized=preoptimized, exact_arena=exact_arena)
    if save_to is not None:
        opts.optimized_model_filepath = str(save_to)
        # ORT warns that such a file is hardware specific; the cache key already covers that.
        opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def _load_optimized(
    model_path: Path, threads: int, *, exact_arena: bool = False
) -> ort.InferenceSession:
    """Load the cached optimised file, creating it (atomically) on first use."""
    target = optimized_model_path(model_path)
    if target.is_file():
        try:
            return _create_session(target, threads, preoptimized=True, exact_arena=exact_arena)
        except Exception:  # a damaged cache entry: drop it and rebuild it below
            logger.warning("ignoring damaged optimised model %s", target)
            target.unlink(missing_ok=True)
    try:
        with atomic_path(target, suffix=".onnx") as tmp:
            # Optimise, save, and let that session go: it holds both weight layouts (about
            # 100 MB more than the saved file needs), so the first run would peak higher.
            optimizing = _create_session(model_path, threads, preoptimized=False, save_to=tmp)
            del optimizing
    except OSError as exc:  # a read-only cache: run without saving
        logger.debug("cannot cache the optimised model (%s); optimising in memory", exc)
        return _create_session(model_path, threads, preoptimized=False, exact_arena=exact_arena)
    return _create_session(target, threads, preoptimized=True, exact_arena=exact_arena)


def _format_of(session: ort.InferenceSession) -> ModelFormat:
    shape = session.get_inputs()[0].shape
    height, width = shape[2], shape[3]
    fixed = (height, width) if isinstance(height, int) and isinstance(width, int) else None
    meta = session.get_modelmeta().custom_metadata_map
    flag = meta.get(NORMALIZES_INSIDE_KEY)
    normalizes = None if flag is None else flag.lower() == "true"
    return ModelFormat(fixed, normalizes, meta.get(PRECISION_KEY, "fp32"))


def inspect_model(path: Path) -> tuple[str, ModelFormat]:
    """Input name and layout of an ONNX file, without optimising it."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return session.get_inputs()[0].name, _format_of(session)


class OnnxRuntimeBackend(Backend):
    """One ``InferenceSession``; ``run`` is thread-safe (ONNX Runtime guarantees it)."""

    name = "onnxruntime"

    def __init__(
        self, model_path: Path, spec: ModelSpec, threads: int | None = None, precision: str = "fp32"
    ) -> None:
        super().__init__(model_path, spec, threads, precision)
        try:
            self._session = _load_optimized(
                self.model_path, self.threads, exact_arena=self.precision == "int8"
            )
            _release_freed_heap()
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
        self._format = _format_of(self._session)
        logger.debug("loaded %s with %d threads: %s", self.model_path, self.threads, self._format)

    @property
    def model_format(self) -> ModelFormat:
        return self._format

    def run(self, x: np.ndarray) -> np.ndarray:
        (out,) = self._session.run([self._output_name], {self._input_name: x})
        return np.asarray(out, dtype=np.float32).reshape(1, *out.shape[-2:])
