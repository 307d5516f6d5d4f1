"""The model table: every fact about every known model, as data.

Everything else (the CLI's choices, the API's enums, the downloader, the converter) reads this
table; nothing restates a URL, an input size or a normalisation constant elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from depthlite.errors import InvalidOptionError, UnknownModelError

__all__ = [
    "BACKENDS",
    "BACKEND_PRECISIONS",
    "DEFAULT_BACKEND",
    "DEFAULT_MODEL",
    "DEFAULT_PRECISION",
    "DEFAULT_RESIZE",
    "MODELS",
    "PRECISIONS",
    "RESIZE_MODES",
    "Artifact",
    "ModelSpec",
    "available_models",
    "check_choice",
    "check_precision",
    "get_spec",
]

OFFICIAL_RELEASES = "https://github.com/isl-org/MiDaS/releases/download"

ArtifactKind = Literal["checkpoint", "onnx"]

# Option sets that the CLI, the server and the estimator all validate against.
RESIZE_MODES: tuple[str, ...] = ("keep_aspect", "square")
BACKENDS: tuple[str, ...] = ("onnxruntime", "torch", "openvino")
PRECISIONS: tuple[str, ...] = ("fp32", "int8", "bf16")
# What each backend can run. fp32 is exact (conformance); int8 is the static QDQ model from
# `depthlite quantize`; bf16 needs a CPU with native BF16 (AVX512_BF16 or AMX).
BACKEND_PRECISIONS: dict[str, tuple[str, ...]] = {
    "onnxruntime": ("fp32", "int8"),
    "torch": ("fp32",),
    "openvino": ("fp32", "bf16", "int8"),
}
DEFAULT_RESIZE = "keep_aspect"
DEFAULT_BACKEND = "onnxruntime"
DEFAULT_PRECISION = "fp32"


@dataclass(frozen=True)
class Artifact:
    """One downloadable file.

    ``sha256`` is the full digest when it is published; ``sha256_prefix`` is the torch.hub
    convention of the first hex digits of the digest carried in the file name. Neither is ever
    guessed: an artifact with neither is pinned on first download (see :mod:`depthlite.hub`).
    """

    filename: str
    url: str
    kind: ArtifactKind
    sha256: str | None = None
    sha256_prefix: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    """A model: its official artifacts, its network input policy and what its output means."""

    name: str
    description: str
    architecture: str
    # Alternative URLs of the same official checkpoint, tried in order.
    checkpoints: tuple[Artifact, ...]
    # The official ONNX export: fixed square input, RGB in [0, 1], normalisation inside the graph.
    official_onnx: Artifact | None
    input_size: int
    multiple_of: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    output: str
    aliases: tuple[str, ...] = field(default=())
    # The official ONNX export's input, which the file does not record: RGB in [0, 1] at a
    # fixed square size, ImageNet normalisation inside the graph (their tf/make_onnx_model.py).
    official_onnx_size: int = 256
    official_onnx_normalizes_inside: bool = True


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="midas_v21_small_256",
            description="MiDaS v2.1 small: EfficientNet-Lite3 encoder, 256 px input, 21.3 M params",
            architecture="midas_small",
            checkpoints=(
                # The legacy name carries the SHA-256 prefix, so try it first: it is verifiable.
                Artifact(
                    filename="model-small-70d6b9c8.pt",
                    url=f"{OFFICIAL_RELEASES}/v2_1/model-small-70d6b9c8.pt",
                    kind="checkpoint",
                    sha256_prefix="70d6b9c8",
                ),
                Artifact(
                    filename="midas_v21_small_256.pt",
                    url=f"{OFFICIAL_RELEASES}/v2_1/midas_v21_small_256.pt",
                    kind="checkpoint",
                    # Same bytes as the legacy file, so the same digest prefix must hold.
                    sha256_prefix="70d6b9c8",
                ),
            ),
            official_onnx=Artifact(
                filename="model-small.onnx",
                url=f"{OFFICIAL_RELEASES}/v2_1/model-small.onnx",
                kind="onnx",
            ),
            input_size=256,
            multiple_of=32,
            mean=(0.485, 0.456, 0.406),
            std=(0.229, 0.224, 0.225),
            output="relative inverse depth: larger is nearer; unknown scale and shift",
            aliases=("midas_small", "MiDaS_small"),
        ),
    )
}

DEFAULT_MODEL = "midas_v21_small_256"


def available_models() -> list[str]:
    """Names of every known model, in table order."""
    return list(MODELS)


def get_spec(name: str) -> ModelSpec:
    """Look a model up by name or alias; the error lists the valid names."""
    if name in MODELS:
        return MODELS[name]
    for spec in MODELS.values():
        if name in spec.aliases:
            return spec
    valid = ", ".join(available_models())
    raise UnknownModelError(f"unknown model {name!r}; known models: {valid}")


def check_precision(backend: str, precision: str) -> str:
    """Validate a precision for a backend, naming what that backend offers."""
    check_choice("precision", precision, PRECISIONS)
    allowed = BACKEND_PRECISIONS[check_choice("backend", backend, BACKENDS)]
    if precision not in allowed:
        raise InvalidOptionError(
            f"backend {backend!r} does not run precision {precision!r}; "
            f"it offers: {', '.join(allowed)}"
        )
    return precision


def check_choice(option: str, value: str, choices: tuple[str, ...]) -> str:
    """Validate an option against its allowed set with a message that lists the set."""
    if value not in choices:
        raise InvalidOptionError(f"invalid {option} {value!r}; choose one of: {', '.join(choices)}")
    return value
