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
from depthlite.errors import (
    BackendUnavailableError,
    DownloadError,
    InputNotFoundError,
    OfflineError,
)
from depthlite.runtime.base import NORMALIZES_INSIDE_KEY, ModelFormat
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
QUANTIZED_DIR = "quantized"


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

    # A warning, not info: the first run pauses for several seconds and should say why.
    logger.warning("converting %s to ONNX (first use only; cached as %s)", checkpoint.name, target)
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


def quantized_path(spec: ModelSpec, source: Path, calibration: str) -> Path:
    """Cache path of the INT8 model made from ``source``, keyed by its content and calibration."""
    sha = hub.pinned_sha256(source) or hub.file_sha256(source)
    return hub.model_dir(spec) / QUANTIZED_DIR / f"{source.stem}-{sha[:12]}-int8-{calibration}.onnx"


def ensure_quantized(
    spec: ModelSpec, source: Path, *, calibration: Path | None = None, force: bool = False
) -> Path:
    """The cached INT8 model of an FP32 ONNX file, quantizing it first when missing."""
    from depthlite.models import quantize

    target = quantized_path(spec, source, quantize.calibration_id(calibration))
    if target.exists() and not force:
        return target
    photos = (
        quantize.load_photos(calibration)
        if calibration is not None
        else quantize.sample_photos(quantize.CALIBRATION_PHOTOS)
    )
    logger.warning("quantizing %s to INT8 (first use only; cached as %s)", source.name, target)
    return quantize.quantize_model(source, target, spec, photos)


def _is_int8(path: Path) -> bool:
    """Whether a user's --weights file is already quantized (ours say so in their metadata)."""
    from depthlite.runtime.onnx import inspect_model

    return inspect_model(path)[1].precision == "int8"


def normalizes_inside(
    spec: ModelSpec, fmt: ModelFormat, path: Path, *, official: bool = False
) -> bool:
    """Whether the loaded file normalises its input itself.

    Our files say so in their metadata. The official ONNX export does not, so its layout comes
    from the spec; a fixed-size file of the official size is taken to be that export. A
    dynamic-size file without metadata is most likely a plain export of the network (input
    normalised outside), which is assumed, with a warning.
    """
    if fmt.normalizes_inside is not None:
        return fmt.normalizes_inside
    if official or fmt.fixed_size == (spec.official_onnx_size, spec.official_onnx_size):
        return spec.official_onnx_normalizes_inside
    _warn_unknown_layout(str(path))
    return False


@functools.cache
def _warn_unknown_layout(path: str) -> None:
    logger.warning(
        "%s has no depthlite metadata: assuming it takes ImageNet-normalised input (a plain "
        "export of the network). If its graph normalises by itself, add the ONNX metadata "
        "property %s=true.",
        path,
        NORMALIZES_INSIDE_KEY,
    )


def _user_file(weights: str | Path) -> Path:
    path = Path(weights).expanduser()
    if not path.is_file():
        raise InputNotFoundError("weights file not found; check the --weights path", str(path))
    return path


def resolve_model_file(
    spec: ModelSpec,
    backend: str,
    precision: str = "fp32",
    *,
    weights: str | Path | None = None,
    offline: bool | None = None,
    progress: bool = True,
) -> ModelFile:
    """Pick (and fetch, convert or quantize when needed) the file ``backend`` should load."""
    if precision == "int8":
        fp32 = resolve_model_file(
            spec, backend, weights=weights, offline=offline, progress=progress
        )
        if fp32.origin == "user" and _is_int8(fp32.path):
            return fp32
        return ModelFile(ensure_quantized(spec, fp32.path), "quantized")
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
    return _default_onnx(spec, offline=offline, progress=progress)


def _default_onnx(spec: ModelSpec, *, offline: bool | None, progress: bool) -> ModelFile:
    """Rules 1-3 of the module docstring, for the ONNX-file backends."""
    # The pin is enough to find the conversion: the checkpoint itself is verified (hashed in
    # full) whenever it is loaded, and the conversion was checked against it when it was made.
    sha = hub.pinned_checkpoint_sha256(spec)
    if sha and converted_path(spec, sha).exists():
        return ModelFile(converted_path(spec, sha), "converted")
    if torch_available():
        try:
            checkpoint = hub.resolve_checkpoint(spec, offline=offline, progress=progress)
        except (OfflineError, DownloadError):
            official = _cached_official_onnx(spec)
            if official is None:
                raise
            logger.warning(
                "the %s checkpoint is not available; using the cached official ONNX export "
                "(fixed 256x256 input)",
                spec.name,
            )
            return official
        return ModelFile(ensure_converted(spec, checkpoint), "converted")
    _warn_official_onnx(spec.name)
    return ModelFile(
        hub.resolve_official_onnx(spec, offline=offline, progress=progress), "official-onnx"
    )


def _cached_official_onnx(spec: ModelSpec) -> ModelFile | None:
    try:
        path = hub.resolve_official_onnx(spec, offline=True, progress=False)
    except OfflineError:
        return None
    return ModelFile(path, "official-onnx")
