"""What a model card says: frozen data, no behaviour beyond small derived facts.

A card describes one pretrained model: which network (an architecture name and its arguments),
which files hold its weights and where they come from, how an image becomes its input, what its
output means, and under which licence it may be used. Architectures (code) and artifacts (bytes)
stay apart, as in timm and open_clip: a card only names them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "Artifact",
    "ArtifactFormat",
    "Licence",
    "ModelCard",
    "Output",
    "OutputKind",
    "Preprocess",
    "ResizeRule",
    "Source",
    "Upsampling",
]

ArtifactFormat = Literal[".pt", ".pth", ".safetensors", ".onnx"]
ResizeRule = Literal["upper_bound", "lower_bound", "minimal"]
OutputKind = Literal["relative_inverse_depth", "relative_disparity", "metric_depth"]
# How the network output is resized back to the image: MiDaS run.py uses bicubic with
# align_corners=False; Depth Anything V2's infer_image bilinear with align_corners=True.
Upsampling = Literal["bicubic", "bilinear_align_corners"]

HF_ENDPOINT = "https://huggingface.co"

_OUTPUT_TEXT = {
    "relative_inverse_depth": "relative inverse depth: larger is nearer; unknown scale and shift",
    "relative_disparity": "relative disparity: larger is nearer; unknown scale and shift",
    "metric_depth": "metric depth in metres: larger is farther",
}


@dataclass(frozen=True)
class Source:
    """One place a file can be downloaded from: a URL, or a Hugging Face repository file."""

    url: str | None = None
    hf_repo: str | None = None
    hf_filename: str | None = None
    # A branch or a commit; "main" where no commit was published with the digest we check.
    hf_revision: str = "main"

    def __post_init__(self) -> None:
        if (self.url is None) == (self.hf_repo is None):
            raise ValueError("a Source is either a url or a Hugging Face repo file")

    @property
    def is_hf(self) -> bool:
        return self.hf_repo is not None

    @property
    def address(self) -> str:
        """A URL a person can open (the Hugging Face "resolve" address for repo files)."""
        if self.url is not None:
            return self.url
        return f"{HF_ENDPOINT}/{self.hf_repo}/resolve/{self.hf_revision}/{self.hf_filename}"


@dataclass(frozen=True)
class Artifact:
    """One file of weights, with its digest as published (never invented).

    ``sha256`` is the full digest where it is published (Hugging Face LFS); ``sha256_prefix`` the
    torch.hub convention of digits carried in the file name. An artifact with neither is pinned
    on first download (trust on first use), and every later load must match the pin.
    """

    filename: str
    format: ArtifactFormat
    sources: tuple[Source, ...]
    sha256: str | None = None
    sha256_prefix: str | None = None
    size: int | None = None
    # ONNX files only: a fixed square input side and whether the graph normalises by itself
    # (the official MiDaS exports take RGB in [0, 1] and normalise inside).
    fixed_size: int | None = None
    normalizes_inside: bool = False

    @property
    def kind(self) -> Literal["checkpoint", "onnx"]:
        return "onnx" if self.format == ".onnx" else "checkpoint"

    @property
    def url(self) -> str:
        """The first source's address, for messages."""
        return self.sources[0].address


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes the network input (the original transform, step by step)."""

    size: int
    multiple_of: int
    resize_rule: ResizeRule
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    keep_aspect: bool = True
    interpolation: Literal["cubic"] = "cubic"
    # The channel order the network takes (Depth Anything's infer_image converts BGR to RGB
    # first, so every network here takes RGB).
    channels: Literal["RGB", "BGR"] = "RGB"


@dataclass(frozen=True)
class Output:
    """What the numbers mean and how they go back to the image's size."""

    kind: OutputKind
    upsampling: Upsampling
    unit: str | None = None  # "m" for metric depth

    @property
    def description(self) -> str:
        return _OUTPUT_TEXT[self.kind]

    @property
    def near_is_larger(self) -> bool:
        """Inverse depth and disparity grow towards the camera; metric depth shrinks."""
        return self.kind != "metric_depth"


@dataclass(frozen=True)
class Licence:
    """The licence as the model's own page states it, and whether it allows commercial use."""

    spdx: str
    commercial: bool
    url: str
    # Where sources disagree, or anything a user should read before relying on the licence.
    note: str = ""


@dataclass(frozen=True)
class ModelCard:
    """Everything about one pretrained model, as data."""

    name: str
    family: str
    description: str
    architecture: str
    # Keyword arguments of the architecture's factory, as (name, value) pairs (hashable).
    arch_args: tuple[tuple[str, Any], ...]
    # Alternative files of the same weights, tried in order (the verifiable one first).
    checkpoints: tuple[Artifact, ...]
    preprocess: Preprocess
    output: Output
    licence: Licence
    params: int
    origin: str
    official_onnx: Artifact | None = None
    aliases: tuple[str, ...] = field(default=())

    @property
    def arch_kwargs(self) -> dict[str, Any]:
        return dict(self.arch_args)

    @property
    def artifacts(self) -> tuple[Artifact, ...]:
        return (*self.checkpoints, *((self.official_onnx,) if self.official_onnx else ()))
