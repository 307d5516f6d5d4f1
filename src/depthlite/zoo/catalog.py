"""The known models: two family helpers and a few lines of data per model.

Digests are the published ones (torch.hub file-name prefixes, Hugging Face LFS SHA-256); where
none is published the artifact has none and is pinned on first download.
"""

from __future__ import annotations

from typing import Any

from depthlite.zoo.cards import (
    Artifact,
    ArtifactFormat,
    Licence,
    ModelCard,
    Output,
    Preprocess,
    Source,
)

__all__ = ["CARDS", "MIDAS_RELEASES"]

MIDAS_RELEASES = "https://github.com/isl-org/MiDaS/releases/download"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)

_MIT = Licence("MIT", True, "https://github.com/isl-org/MiDaS/blob/master/LICENSE")
_DA2 = "https://github.com/DepthAnything/Depth-Anything-V2"


def _release(path: str, *, prefix: str | None = None, **onnx: Any) -> Artifact:
    """A file of the MiDaS GitHub releases (``v2_1/...``, ``v3/...``)."""
    name = path.rsplit("/", 1)[-1]
    fmt: ArtifactFormat = ".onnx" if name.endswith(".onnx") else ".pt"
    return Artifact(
        name, fmt, (Source(url=f"{MIDAS_RELEASES}/{path}"),), sha256_prefix=prefix, **onnx
    )


def _midas(
    name: str,
    description: str,
    architecture: str,
    files: tuple[Artifact, ...],
    *,
    size: int,
    rule: str,
    normalisation: tuple[tuple[float, float, float], tuple[float, float, float]],
    params: int,
    arch_args: tuple[tuple[str, Any], ...] = (),
    official_onnx: Artifact | None = None,
    aliases: tuple[str, ...] = (),
) -> ModelCard:
    """A MiDaS model: hub transform (cubic, multiple of 32), inverse depth, bicubic back."""
    mean, std = normalisation
    return ModelCard(
        name=name,
        family="midas",
        description=description,
        architecture=architecture,
        arch_args=arch_args,
        # The legacy name carries the digest prefix, so it is listed first: it is verifiable.
        checkpoints=files,
        preprocess=Preprocess(size, 32, rule, mean, std),  # type: ignore[arg-type]
        output=Output("relative_inverse_depth", "bicubic"),
        licence=_MIT,
        params=params,
        origin="https://github.com/isl-org/MiDaS",
        official_onnx=official_onnx,
        aliases=aliases,
    )


def _da2(
    name: str,
    description: str,
    repo: str,
    filename: str,
    *,
    encoder: str,
    features: int,
    out_channels: tuple[int, int, int, int],
    params: int,
    licence: Licence,
    sha256: str | None = None,
    size: int | None = None,
    max_depth: float | None = None,
    aliases: tuple[str, ...] = (),
) -> ModelCard:
    """A Depth Anything V2 model: infer_image's transform (518, multiple of 14, lower_bound)."""
    metric = max_depth is not None
    artifact = Artifact(
        filename, ".pth", (Source(hf_repo=repo, hf_filename=filename),), sha256=sha256, size=size
    )
    return ModelCard(
        name=name,
        family="depth_anything_v2",
        description=description,
        architecture="depth_anything_v2",
        arch_args=(
            ("encoder", encoder),
            ("features", features),
            ("out_channels", out_channels),
            ("max_depth", max_depth),
        ),
        checkpoints=(artifact,),
        preprocess=Preprocess(518, 14, "lower_bound", IMAGENET_MEAN, IMAGENET_STD),
        output=Output(
            "metric_depth" if metric else "relative_disparity",
            "bilinear_align_corners",
            "m" if metric else None,
        ),
        licence=licence,
        params=params,
        origin=f"https://huggingface.co/{repo}",
        aliases=aliases,
    )


def _hf_licence(spdx: str, repo: str, note: str = "") -> Licence:
    return Licence(spdx, not spdx.endswith("NC-4.0"), f"https://huggingface.co/{repo}", note)


_METRIC_NOTE = (
    "Apache-2.0 as tagged on the model's Hugging Face page; the Depth-Anything-V2 README states "
    "licences for the relative models only (Small Apache-2.0, Base and Large CC-BY-NC-4.0)"
)
_SMALL, _BASE, _LARGE = (
    f"depth-anything/Depth-Anything-V2-{s}" for s in ("Small", "Base", "Large")
)
_HYPERSIM = "depth-anything/Depth-Anything-V2-Metric-Hypersim-Small"
_VKITTI = "depth-anything/Depth-Anything-V2-Metric-VKITTI-Small"
_VITS = {"encoder": "vits", "features": 64, "out_channels": (48, 96, 192, 384)}
_VITS_PARAMS = 24_785_089

_ALL = (
    _midas(
        "midas_v21_small_256",
        "MiDaS v2.1 small: EfficientNet-Lite3 encoder, 256 px input, 21.3 M params",
        "midas_small",
        (_release("v2_1/model-small-70d6b9c8.pt", prefix="70d6b9c8"),
         # Same bytes as the legacy file (the hub README), so the same prefix must hold.
         _release("v2_1/midas_v21_small_256.pt", prefix="70d6b9c8")),
        size=256, rule="upper_bound", normalisation=(IMAGENET_MEAN, IMAGENET_STD),
        params=21_320_545,
        official_onnx=_release("v2_1/model-small.onnx", fixed_size=256, normalizes_inside=True),
        aliases=("midas_small", "MiDaS_small"),
    ),
    _midas(
        "midas_v21_384",
        "MiDaS v2.1 large: ResNeXt-101 32x8d (WSL) encoder, 384 px input, 105 M params",
        "midas_v21",
        (_release("v2_1/model-f6b98070.pt", prefix="f6b98070"),
         _release("v2_1/midas_v21_384.pt")),
        size=384, rule="upper_bound", normalisation=(IMAGENET_MEAN, IMAGENET_STD),
        params=105_362_945,
        official_onnx=_release("v2_1/model-f6b98070.onnx", fixed_size=384, normalizes_inside=True),
        aliases=("midas_v21_large", "MiDaS"),
    ),
    _midas(
        "dpt_hybrid_384",
        "MiDaS v3 DPT-Hybrid: ViT-B/16 on a ResNet-50 stem, 384 px input, 123 M params",
        "dpt",
        (_release("v3/dpt_hybrid-midas-501f0c75.pt", prefix="501f0c75"),
         _release("v3/dpt_hybrid_384.pt")),
        size=384, rule="minimal", normalisation=(HALF, HALF), params=123_146_985,
        arch_args=(("backbone", "vitb_rn50_384"),),
        aliases=("dpt_hybrid", "DPT_Hybrid"),
    ),
    _midas(
        "dpt_large_384",
        "MiDaS v3 DPT-Large: ViT-L/16, 384 px input, 344 M params",
        "dpt",
        (_release("v3/dpt_large-midas-2f21e586.pt", prefix="2f21e586"),
         _release("v3/dpt_large_384.pt")),
        size=384, rule="minimal", normalisation=(HALF, HALF), params=344_055_465,
        arch_args=(("backbone", "vitl16_384"),),
        aliases=("dpt_large", "DPT_Large"),
    ),
    _da2(
        "depth_anything_v2_small",
        "Depth Anything V2 Small: DINOv2 ViT-S/14 + DPT head, 518 px input, 24.8 M params",
        _SMALL, "depth_anything_v2_vits.pth", **_VITS, params=_VITS_PARAMS,
        licence=_hf_licence("Apache-2.0", _SMALL),
        sha256="715fade13be8f229f8a70cc02066f656f2423a59effd0579197bbf57860e1378",
        size=99_218_434, aliases=("depth_anything_v2_vits", "da2_small"),
    ),
    _da2(
        "depth_anything_v2_base",
        "Depth Anything V2 Base: DINOv2 ViT-B/14 + DPT head, 518 px input, 97.5 M params",
        _BASE, "depth_anything_v2_vitb.pth",
        encoder="vitb", features=128, out_channels=(96, 192, 384, 768), params=97_470_785,
        licence=_hf_licence("CC-BY-NC-4.0", _BASE),
        sha256="0d2b7002e62d39d655571c371333340bd88f67ab95050c03591555aa05645328",
        size=389_961_218, aliases=("depth_anything_v2_vitb", "da2_base"),
    ),
    _da2(
        "depth_anything_v2_large",
        "Depth Anything V2 Large: DINOv2 ViT-L/14 + DPT head, 518 px input, 335 M params",
        _LARGE, "depth_anything_v2_vitl.pth",
        encoder="vitl", features=256, out_channels=(256, 512, 1024, 1024), params=335_315_649,
        licence=_hf_licence("CC-BY-NC-4.0", _LARGE),
        aliases=("depth_anything_v2_vitl", "da2_large"),
    ),
    _da2(
        "depth_anything_v2_metric_indoor_small",
        "Depth Anything V2 Metric Indoor Small (Hypersim): metres, up to 20 m, 24.8 M params",
        _HYPERSIM, "depth_anything_v2_metric_hypersim_vits.pth", **_VITS, params=_VITS_PARAMS,
        licence=_hf_licence("Apache-2.0", _HYPERSIM, _METRIC_NOTE), max_depth=20.0,
        aliases=("depth_anything_v2_metric_hypersim_vits",),
    ),
    _da2(
        "depth_anything_v2_metric_outdoor_small",
        "Depth Anything V2 Metric Outdoor Small (VKITTI): metres, up to 80 m, 24.8 M params",
        _VKITTI, "depth_anything_v2_metric_vkitti_vits.pth", **_VITS, params=_VITS_PARAMS,
        licence=_hf_licence("Apache-2.0", _VKITTI, _METRIC_NOTE), max_depth=80.0,
        sha256="9203e538d35255c90dda4b7fedb47ff33fe725497bcca3b1e53b3a65ee63f0cb",
        aliases=("depth_anything_v2_metric_vkitti_vits",),
    ),
)  # fmt: skip

CARDS: dict[str, ModelCard] = {card.name: card for card in _ALL}
