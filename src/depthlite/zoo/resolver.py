"""The resolver: which file a backend loads, and how it is made from what is cached or online.

For (card, backend, precision, optional user file) it takes the cheapest path to a file the
backend accepts and records each step (shown in logs, ``depthlite models`` and ``/v1/models``):

- torch: the checkpoint (the user's, cached, or downloaded and verified);
- ONNX Runtime / OpenVINO, FP32 and BF16: the export of the cached checkpoint if it was made
  before; else, with torch installed, the checkpoint exported now (verified); else the
  official ONNX export where the card has one (a fixed square input), else an error that says
  what to install or which file to pass;
- INT8: the FP32 file above, quantized (static QDQ) unless the user's file already is;
- ONNX Runtime: finally the graph optimised for this CPU.

Every made file is a derivation (:mod:`depthlite.zoo.derive`); backends receive a resolved
file and never touch the cache or the network.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import logging
from dataclasses import dataclass, replace
from pathlib import Path

from depthlite import hub
from depthlite.errors import (
    BackendUnavailableError,
    DownloadError,
    InputNotFoundError,
    OfflineError,
    WeightsError,
)
from depthlite.runtime.metadata import (
    MODEL_KEY,
    is_int8_file,
    official_size,
    read_metadata_props,
)
from depthlite.zoo import derive
from depthlite.zoo.architectures import architecture_of
from depthlite.zoo.cards import ModelCard

__all__ = [
    "EXPORT_RECIPE",
    "OPTIMIZE_RECIPE",
    "QUANTIZE_RECIPE",
    "ResolvedFile",
    "ensure_converted",
    "ensure_quantized",
    "find_quantized",
    "resolve",
    "tool_versions",
    "torch_available",
]

logger = logging.getLogger(__name__)

EXPORT_RECIPE = "export_onnx"
QUANTIZE_RECIPE = "quantize_int8"
OPTIMIZE_RECIPE = "optimize_ort"


@dataclass(frozen=True)
class ResolvedFile:
    """The file to load, where it came from, and the steps that led to it."""

    path: Path
    origin: str  # "checkpoint" | "official-onnx" | "converted" | "quantized" | "user"
    steps: tuple[str, ...]
    official: bool = False  # the card's official ONNX export (its layout comes from the card)
    preoptimized: bool = False  # already optimised for this runtime and CPU


def torch_available() -> bool:
    """True when torch can be imported, checked without importing it."""
    return importlib.util.find_spec("torch") is not None


def tool_versions(*packages: str) -> dict[str, str]:
    """Installed versions of ``packages`` ("-" when absent), as derivation keys record them."""
    return {name: _installed_version(name) for name in packages}


@functools.cache
def _installed_version(name: str) -> str:
    # Once per process: reading a package's metadata costs about a millisecond, and every
    # cached load asks (the runtime is imported by then, so the version cannot change).
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "-"


def _step(kind: str, path: Path, made: bool | None = None) -> str:
    state = "" if made is None else (" (made now)" if made else " (cached)")
    return f"{kind} {path.name}{state}"


def ensure_converted(
    card: ModelCard, checkpoint: Path, *, force: bool = False
) -> tuple[Path, bool]:
    """The verified ONNX export of ``checkpoint``: cached, or made now (needs torch)."""
    if not torch_available():
        raise BackendUnavailableError(
            f"converting {checkpoint.name} to ONNX needs PyTorch: pip install 'depthlite[torch]', "
            "or pass an .onnx file with --weights"
        )
    from depthlite.models.convert import OPSET, RECIPE_VERSION, convert_checkpoint

    arch = architecture_of(card)
    params = {"opset": OPSET, "dummy": arch.dummy_size, "verify": arch.verify_sizes}

    def make(source: Path, target: Path) -> None:
        # A warning, not info: the first run pauses (seconds to minutes) and should say why.
        logger.warning("converting %s to ONNX (first use only; kept in the cache)", source.name)
        convert_checkpoint(source, target, card, {"depthlite.source_sha256": sha})

    sha = derive.digest_of(checkpoint)
    return derive.derive(
        EXPORT_RECIPE, RECIPE_VERSION, checkpoint, model=card.name, output=f"{card.name}.onnx",
        params=params, tools=tool_versions("torch", "onnx", "onnxruntime"), make=make, force=force,
    )  # fmt: skip


def ensure_quantized(
    card: ModelCard, source: Path, *, calibration: Path | None = None, force: bool = False
) -> tuple[Path, bool]:
    """The static INT8 model of an FP32 ONNX file: cached, or quantized now."""
    from depthlite.models import quantize

    def make(src: Path, target: Path) -> None:
        photos = (
            quantize.load_photos(calibration)
            if calibration is not None
            else quantize.sample_photos(quantize.CALIBRATION_PHOTOS)
        )
        logger.warning("quantizing %s to INT8 (first use only; kept in the cache)", src.name)
        quantize.quantize_model(src, target, card, photos)

    params = _quantize_params(calibration)
    return derive.derive(
        QUANTIZE_RECIPE, quantize.RECIPE_VERSION, source, model=card.name,
        output=f"{card.name}-int8.onnx", params=params,
        tools=tool_versions("onnxruntime", "onnx"), make=make, force=force,
    )  # fmt: skip


def _quantize_params(calibration: Path | None) -> dict[str, object]:
    from depthlite.models import quantize

    return {**quantize.RECIPE_PARAMS, "calibration": quantize.calibration_id(calibration)}


def find_quantized(card: ModelCard, source: Path) -> Path | None:
    """The INT8 model ``ensure_quantized(card, source)`` would return, if it is made already.

    Only looks (never quantizes), so a caller can tell a cache hit from minutes of work.
    """
    from depthlite.models import quantize

    sha = derive.digest_of(source)
    params, tools = _quantize_params(None), tool_versions("onnxruntime", "onnx")
    for manifest in derive.derived_files(card.name):
        if (
            manifest.recipe == QUANTIZE_RECIPE
            and manifest.version == quantize.RECIPE_VERSION
            and manifest.input_sha256 == sha
            and manifest.params == params
            and manifest.tools == tools
            and manifest.path.is_file()
        ):
            return manifest.path
    return None


def _optimized(card: ModelCard, source: Path) -> tuple[Path, bool]:
    from depthlite.runtime import onnx as ort_backend

    return derive.derive(
        OPTIMIZE_RECIPE, ort_backend.OPTIMIZE_VERSION, source, model=card.name,
        output=f"{source.stem}-optimized.onnx", params={"level": "all"},
        tools=ort_backend.optimize_tools(), make=ort_backend.optimize_model,
    )  # fmt: skip


def _user_file(weights: str | Path) -> Path:
    path = Path(weights).expanduser()
    try:
        if path.is_dir():
            raise WeightsError(f"--weights {path} is a folder; pass the model file in it")
        if not path.is_file():
            raise InputNotFoundError("weights file not found; check the --weights path", str(path))
        with path.open("rb") as stream:  # readable, before anything is derived from it
            empty = not stream.read(1)
    except PermissionError:
        raise WeightsError(f"cannot read --weights {path}: permission denied") from None
    if empty:
        raise WeightsError(
            f"--weights {path} is empty (0 bytes): pass a .pt/.pth checkpoint or an .onnx file"
        )
    return path


def _check_made_for(card: ModelCard, path: Path) -> None:
    """A user's ONNX file made for another model is refused before anything is derived from
    it (an optimised graph of DPT-Large is 1.3 GB), naming the user's file, not a cache one."""
    try:
        named = read_metadata_props(path).get(MODEL_KEY)
    except (OSError, ValueError):
        return  # not readable as ONNX: loading it says what is wrong
    if named and named != card.name:
        raise WeightsError(
            f"--weights {path} was made for model {named!r}, not {card.name!r}: "
            f"pass --model {named}"
        )


def _checkpoint(card: ModelCard, *, offline: bool | None, progress: bool) -> ResolvedFile:
    cached = hub.cached_checkpoint(card)
    path = cached or hub.resolve_checkpoint(card, offline=offline, progress=progress)
    state = "cached" if cached else "downloaded"
    return ResolvedFile(path, "checkpoint", (f"checkpoint {path.name} ({state})",))


def resolve(
    card: ModelCard,
    backend: str,
    precision: str = "fp32",
    *,
    weights: str | Path | None = None,
    offline: bool | None = None,
    progress: bool = True,
) -> ResolvedFile:
    """Pick (and fetch, convert, quantize or optimise when needed) the file to load."""
    if backend == "torch":
        if weights is not None:
            path = _user_file(weights)
            return ResolvedFile(path, "user", (f"user file {path}",))
        return _checkpoint(card, offline=offline, progress=progress)
    resolved = _fp32_onnx(card, weights, offline=offline, progress=progress)
    if precision == "int8" and not (resolved.origin == "user" and is_int8_file(resolved.path)):
        path, made = ensure_quantized(card, resolved.path)
        resolved = ResolvedFile(
            path, "quantized", (*resolved.steps, _step(QUANTIZE_RECIPE, path, made))
        )
    if backend == "onnxruntime":
        path, made = _optimized(card, resolved.path)
        resolved = replace(
            resolved,
            path=path,
            preoptimized=True,
            steps=(*resolved.steps, _step(OPTIMIZE_RECIPE, path, made)),
        )
    logger.info("%s via %s", card.name, " -> ".join(resolved.steps))
    return resolved


def _fp32_onnx(
    card: ModelCard, weights: str | Path | None, *, offline: bool | None, progress: bool
) -> ResolvedFile:
    if weights is not None:
        path = _user_file(weights)
        if path.suffix.lower() == ".onnx":
            _check_made_for(card, path)
            return ResolvedFile(path, "user", (f"user file {path}",))
        converted, made = ensure_converted(card, path)
        steps = (f"user checkpoint {path}", _step(EXPORT_RECIPE, converted, made))
        return ResolvedFile(converted, "converted", steps)
    # The pin is enough to find an export made before: the checkpoint itself is verified
    # (hashed in full) whenever it is loaded, and the export was checked against it.
    sha = hub.pinned_checkpoint_sha256(card)
    if sha and torch_available():
        checkpoint = _pinned_checkpoint_path(card)
        if checkpoint is not None:
            converted, made = ensure_converted(card, checkpoint)
            return ResolvedFile(
                converted,
                "converted",
                (f"checkpoint {checkpoint.name} (cached)", _step(EXPORT_RECIPE, converted, made)),
            )
    if torch_available():
        return _convert_or_official(card, offline=offline, progress=progress)
    if sha:
        found = _cached_export(card)
        if found is not None:
            return found
    return _official_without_torch(card, offline=offline, progress=progress)


def _pinned_checkpoint_path(card: ModelCard) -> Path | None:
    for artifact in card.checkpoints:
        path = hub.model_dir(card) / artifact.filename
        if path.is_file() and hub.pinned_sha256(path):
            return path
    return None


def _cached_export(card: ModelCard) -> ResolvedFile | None:
    """Without torch, an export made earlier (when torch was installed) is still usable."""
    checkpoint = _pinned_checkpoint_path(card)
    for manifest in derive.derived_files(card.name):
        if (
            manifest.recipe == EXPORT_RECIPE
            and checkpoint is not None
            and manifest.input_sha256 == hub.pinned_sha256(checkpoint)
        ):
            steps = (
                f"checkpoint {checkpoint.name} (cached)",
                _step(EXPORT_RECIPE, manifest.path, False),
            )
            return ResolvedFile(manifest.path, "converted", steps)
    return None


def _convert_or_official(card: ModelCard, *, offline: bool | None, progress: bool) -> ResolvedFile:
    try:
        checkpoint = _checkpoint(card, offline=offline, progress=progress)
    except (OfflineError, DownloadError):
        official = _cached_official(card)
        if official is None:
            raise
        logger.warning(
            "the %s checkpoint is not available; using the cached official ONNX export "
            "(fixed %dx%d input)", card.name, *official_size(card),
        )  # fmt: skip
        return official
    converted, made = ensure_converted(card, checkpoint.path)
    return ResolvedFile(
        converted, "converted", (*checkpoint.steps, _step(EXPORT_RECIPE, converted, made))
    )


def _official_without_torch(
    card: ModelCard, *, offline: bool | None, progress: bool
) -> ResolvedFile:
    if card.official_onnx is None:
        raise BackendUnavailableError(
            f"{card.name} has no official ONNX export, and converting its checkpoint needs "
            f"PyTorch once: pip install 'depthlite[torch]'; or, on a machine with torch, run "
            f"`depthlite convert --model {card.name} -o {card.name}.onnx` and pass that file "
            "with --weights"
        )
    _warn_official_onnx(card.name, official_size(card)[0])
    path = hub.resolve_official_onnx(card, offline=offline, progress=progress)
    return ResolvedFile(path, "official-onnx", (f"official ONNX {path.name}",), official=True)


def _cached_official(card: ModelCard) -> ResolvedFile | None:
    if card.official_onnx is None:
        return None
    try:
        path = hub.resolve_official_onnx(card, offline=True, progress=False)
    except OfflineError:
        return None
    return ResolvedFile(
        path, "official-onnx", (f"official ONNX {path.name} (cached)",), official=True
    )


@functools.cache
def _warn_official_onnx(model: str, side: int) -> None:
    """Say it once per process and model, not on every estimator."""
    logger.warning(
        "PyTorch is not installed: using the official ONNX export of %s (fixed %dx%d input, "
        "so images are squashed to a square). Install 'depthlite[torch]' once to convert the "
        "official checkpoint for aspect-preserving input.",
        model, side, side,
    )  # fmt: skip
