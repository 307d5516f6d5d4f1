"""Which file a backend loads: converted ONNX, official ONNX, or the checkpoint itself.

The rules, in order, for the ONNX Runtime backend without ``weights=``:

1. a converted model cached for the cached checkpoint (no torch needed to use it);
2. torch installed: fetch the checkpoint, convert it (verified), cache it keyed by its hash;
3. no torch: the official ONNX export (256x256 square input), and a warning saying so.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

from depthlite import hub
from depthlite.errors import BackendUnavailableError, InputNotFoundError
from depthlite.specs import ModelSpec

__all__ = [
    "ModelFile",
    "converted_path",
    "ensure_converted",
    "resolve_model_file",
    "torch_available",
]

logger = logging.getLogger(__name__)

CONVERTED_DIR = "converted"


@dataclass(frozen=True)
class ModelFile:
    """A file to load and how it was chosen (shown by ``depthlite models`` and logs)."""

    path: Path
    origin: str  # "converted" | "official-onnx" | "checkpoint" | "user"


def torch_available() -> bool:
    """True when torch can be imported, checked without importing it."""
    return importlib.util.find_spec("torch") is not None


def converted_path(spec: ModelSpec, checkpoint_sha256: str, precision: str = "fp32") -> Path:
    """Cache path of a converted model, keyed by the checkpoint it came from."""
    name = f"{spec.name}-{checkpoint_sha256[:16]}-{precision}.onnx"
    return hub.model_dir(spec) / CONVERTED_DIR / name


def ensure_converted(spec: ModelSpec, checkpoint: Path, *, force: bool = False) -> Path:
    """The cached conversion of ``checkpoint``, converting (needs torch) when missing."""
    sha = hub.pinned_sha256(checkpoint) or hub.file_sha256(checkpoint)
    target = converted_path(spec, sha)
    if target.exists() and not force:
        return target
    if not torch_available():
        raise BackendUnavailableError(
            f"converting {checkpoint} to ONNX needs PyTorch: pip install 'depthlite[torch]', "
            "or pass an .onnx file with --weights"
        )
    from depthlite.models.convert import convert_checkpoint

    logger.info("converting %s to ONNX (once; cached as %s)", checkpoint.name, target)
    return convert_checkpoint(checkpoint, target, spec, {"depthlite.source_sha256": sha})


@functools.cache
def _warn_official_onnx(model: str) -> None:
    """Say it once per process and model, not on every estimator."""
    logger.warning(
        "PyTorch is not installed: using the official ONNX export of %s (fixed 256x256 input, "
        "so images are squashed to a square). Install 'depthlite[torch]' once to convert the "
        "official checkpoint for aspect-preserving input.",
        model,
    )


def _user_file(weights: str | Path) -> Path:
    path = Path(weights).expanduser()
    if not path.is_file():
        raise InputNotFoundError("weights file not found; check the --weights path", str(path))
    return path


def resolve_model_file(
    spec: ModelSpec,
    backend: str,
    *,
    weights: str | Path | None = None,
    offline: bool | None = None,
    progress: bool = True,
) -> ModelFile:
    """Pick (and fetch or convert when needed) the file ``backend`` should load."""
    if backend == "torch":
        if weights is not None:
            return ModelFile(_user_file(weights), "user")
        return ModelFile(
            hub.resolve_checkpoint(spec, offline=offline, progress=progress), "checkpoint"
        )
    if weights is not None:
        path = _user_file(weights)
        if path.suffix.lower() == ".onnx":
            return ModelFile(path, "user")
        return ModelFile(ensure_converted(spec, path), "converted")
    cached = hub.cached_checkpoint(spec)
    if cached is not None:
        sha = hub.pinned_sha256(cached)
        if sha and converted_path(spec, sha).exists():
            return ModelFile(converted_path(spec, sha), "converted")
    if torch_available():
        checkpoint = cached or hub.resolve_checkpoint(spec, offline=offline, progress=progress)
        return ModelFile(ensure_converted(spec, checkpoint), "converted")
    _warn_official_onnx(spec.name)
    return ModelFile(
        hub.resolve_official_onnx(spec, offline=offline, progress=progress), "official-onnx"
    )
