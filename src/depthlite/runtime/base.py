"""The abstract backend: one loaded model file, one method to run it.

Backends know nothing about images; they take the preprocessed float32 NCHW tensor and return
the raw network output. Each runtime lives in its own module and is imported only when used, so
``import depthlite`` never pays for (or requires) torch or openvino.
"""

from __future__ import annotations

import importlib
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from depthlite.errors import BackendUnavailableError
from depthlite.options import BACKENDS, check_choice
from depthlite.runtime.metadata import NORMALIZES_INSIDE_KEY, PRECISION_KEY
from depthlite.zoo.cards import ModelCard

__all__ = [
    "NORMALIZES_INSIDE_KEY",
    "PRECISION_KEY",
    "Backend",
    "ModelFormat",
    "default_threads",
    "load_backend_class",
    "physical_cores",
]

# backend name -> "module:Class"; the names themselves come from options.BACKENDS.
_IMPLEMENTATIONS = {
    "onnxruntime": "depthlite.runtime.onnx:OnnxRuntimeBackend",
    "torch": "depthlite.runtime.torch:TorchBackend",
    "openvino": "depthlite.runtime.openvino:OpenVinoBackend",
}


@dataclass(frozen=True)
class ModelFormat:
    """What a loaded model file expects, read from the file itself."""

    # (height, width) when the file only accepts one size (the official ONNX export: 256x256).
    fixed_size: tuple[int, int] | None
    # True when the graph applies the ImageNet normalisation itself (the official ONNX export);
    # None when the file does not say (no depthlite metadata): see zoo.resolver.normalizes_inside.
    normalizes_inside: bool | None
    # "int8" for quantized files (from their metadata), else "fp32".
    precision: str = "fp32"
    # Every depthlite.* metadata entry, as written by runtime.metadata.card_metadata.
    metadata: tuple[tuple[str, str], ...] = ()
    channels: int | None = 3

    @classmethod
    def from_metadata(
        cls, fixed: tuple[int, int] | None, meta: dict[str, str], channels: int | None = 3
    ) -> ModelFormat:
        flag = meta.get(NORMALIZES_INSIDE_KEY)
        normalizes = None if flag is None else flag.lower() == "true"
        ours = tuple(sorted((k, v) for k, v in meta.items() if k.startswith("depthlite.")))
        return cls(fixed, normalizes, meta.get(PRECISION_KEY, "fp32"), ours, channels)


def default_threads() -> int:
    """Intra-op threads: ``OMP_NUM_THREADS`` if set, else the physical core count.

    Hyper-threads share one core's vector units, so more threads than physical cores slows
    convolution-heavy networks down on most CPUs.
    """
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return physical_cores()


def physical_cores() -> int:
    """Physical cores we may run on; falls back to the logical count where unknown."""
    try:
        logical = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        logical = os.cpu_count() or 1
    pairs: set[tuple[str, str]] = set()
    physical = ""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                # Each logical CPU lists "physical id" then "core id"; the pair names a core.
                if line.startswith("physical id"):
                    physical = line.split(":", 1)[1].strip()
                elif line.startswith("core id"):
                    pairs.add((physical, line.split(":", 1)[1].strip()))
    except OSError:
        return logical
    return max(1, min(len(pairs), logical)) if pairs else logical


class Backend(ABC):
    """A model file loaded into one runtime session, safe to ``run`` from many threads."""

    name: ClassVar[str]

    def __init__(
        self,
        model_path: Path,
        card: ModelCard,
        threads: int | None = None,
        precision: str = "fp32",
        *,
        preoptimized: bool = False,
    ) -> None:
        self.model_path = Path(model_path)
        self.card = card
        self.precision = precision
        self.threads = threads if threads and threads > 0 else default_threads()
        self._open(preoptimized=preoptimized)

    @abstractmethod
    def _open(self, *, preoptimized: bool) -> None:
        """Load ``model_path`` into the runtime (raise BackendUnavailableError if it cannot).

        ``preoptimized``: the resolver already optimised the file for this runtime and CPU
        (ONNX Runtime's saved graph); runtimes without such a step ignore it.
        """

    @property
    @abstractmethod
    def model_format(self) -> ModelFormat:
        """What the loaded file expects as input."""

    @abstractmethod
    def run(self, x: np.ndarray) -> np.ndarray:
        """float32 (1, 3, h, w) -> float32 (1, h, w) raw network output."""

    def close(self) -> None:  # noqa: B027 (optional hook; most runtimes free on GC)
        """Release the session early; the backend must not be used afterwards."""


def load_backend_class(name: str) -> type[Backend]:
    """Import a backend's module only now, translating a missing runtime into a typed error."""
    check_choice("backend", name, BACKENDS)
    module_name, _, class_name = _IMPLEMENTATIONS[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendUnavailableError(
            f"backend {name!r} needs a package that is not installed ({exc.name}); "
            f"install it with: pip install 'depthlite[{name}]'"
        ) from exc
    cls: type[Backend] = getattr(module, class_name)
    return cls
