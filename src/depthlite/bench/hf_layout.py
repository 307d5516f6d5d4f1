"""Hugging Face ``transformers`` twins of our DPT and Depth Anything V2 networks.

``depthlite bench --peers`` times what a user would run instead of depthlite. To time it on the
same weights without downloading anything, this module writes the configs of the Hub's
``Intel/dpt-hybrid-midas``, ``Intel/dpt-large`` and ``depth-anything/Depth-Anything-V2-*-hf``
in code (from our cards, so one fact lives once) and renames an official-layout ``state_dict``
(ours, synthetic or downloaded) to the transformers layout. The wheel ships no conversion
script, so the renames follow transformers' module names (read off its ``state_dict``).

Known differences, measured by tests/test_peers.py:

- transformers' DINOv2 resizes its 37 x 37 position table with ``size=(h, w)``; the original
  (and depthlite) pass the scale factor ``(n + 0.1) / 37``. Same output at 518 x 518 (the table
  is used as stored), a small difference at every other input.
- transformers' DPT-Hybrid (``DPTViTHybridEmbeddings``) refuses any input but its config's
  ``image_size`` (384 x 384); ``DPTForDepthEstimation`` cannot pass it the flag that allows
  others. Its keep-aspect figures are therefore reported as not measurable.
- The Intel DPT configs say ``layer_norm_eps`` 1e-12 where timm's ViT uses 1e-6 (kept as the
  Hub has it: a user gets 1e-12; the effect is far below the test tolerance).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from depthlite.models.depth_anything import INTERMEDIATE_LAYERS, PATCH
from depthlite.models.dinov2 import DINOV2_CONFIGS
from depthlite.models.dpt import BACKBONES
from depthlite.zoo.cards import ModelCard

if TYPE_CHECKING:
    from torch import nn

__all__ = ["HF_REPOS", "build_hf_model", "has_port", "hf_config", "hf_state_dict", "square_only"]

# The Hub repository whose config and layout each card's transformers twin reproduces.
HF_REPOS: dict[str, str] = {
    "dpt_hybrid_384": "Intel/dpt-hybrid-midas",
    "dpt_large_384": "Intel/dpt-large",
    "depth_anything_v2_small": "depth-anything/Depth-Anything-V2-Small-hf",
    "depth_anything_v2_base": "depth-anything/Depth-Anything-V2-Base-hf",
    "depth_anything_v2_large": "depth-anything/Depth-Anything-V2-Large-hf",
    "depth_anything_v2_metric_indoor_small": (
        "depth-anything/Depth-Anything-V2-Metric-Indoor-Small-hf"
    ),
    "depth_anything_v2_metric_outdoor_small": (
        "depth-anything/Depth-Anything-V2-Metric-Outdoor-Small-hf"
    ),
}

_HYBRID_BIT = {  # transformers' BitConfig for the ResNet-50 "BiT" stem of DPT-Hybrid
    "global_padding": "same",
    "layer_type": "bottleneck",
    "depths": [3, 4, 9],
    "out_features": ["stage1", "stage2", "stage3"],
    "embedding_dynamic_padding": True,
}


def has_port(card: ModelCard) -> bool:
    """Whether transformers has this network (MiDaS v2.1 small and large have none)."""
    return card.name in HF_REPOS


def _hybrid(card: ModelCard) -> bool:
    return card.architecture == "dpt" and BACKBONES[_args(card)["backbone"]].hybrid


def square_only(card: ModelCard) -> bool:
    """Whether transformers' port runs square inputs only: every DPT. The hybrid runs only at
    its config's image_size (see the module doc); the plain ViT's neck reshapes the tokens to
    a square grid (``DPTReassembleStage``: the patch grid is only passed with a backbone
    config), so a 384 x 672 input fails there with a reshape error."""
    return card.architecture == "dpt"


def _args(card: ModelCard) -> dict[str, Any]:
    return dict(card.arch_args)


def hf_config(card: ModelCard) -> Any:
    """The transformers config equal to the card's Hub twin (``HF_REPOS``)."""
    if not has_port(card):
        raise ValueError(f"{card.name} has no transformers port")
    if card.architecture == "dpt":
        return _dpt_config(card)
    return _depth_anything_config(card)


def _dpt_config(card: ModelCard) -> Any:
    from transformers import DPTConfig

    name = _args(card)["backbone"]
    spec = BACKBONES[name]
    common = {
        "hidden_size": spec.dim,
        "num_hidden_layers": spec.depth,
        "num_attention_heads": spec.heads,
        "intermediate_size": 4 * spec.dim,
        "image_size": card.preprocess.size,
        "patch_size": 16,
        "neck_hidden_sizes": list(spec.features),
        "fusion_hidden_size": 256,
        "readout_type": "project",
        "layer_norm_eps": 1e-12,
    }
    if spec.hybrid:
        # The first two levels come from the ResNet stages; only ViT taps 8 and 11 are read.
        return DPTConfig(is_hybrid=True, backbone_out_indices=[2, 5, 8, 11],
                         reassemble_factors=[1, 1, 1, 0.5],
                         backbone_featmap_shape=[1, 1024, 24, 24],
                         backbone_config=dict(_HYBRID_BIT), **common)  # fmt: skip
    return DPTConfig(backbone_out_indices=list(spec.hooks), reassemble_factors=[4, 2, 1, 0.5],
                     **common)  # fmt: skip


def _depth_anything_config(card: ModelCard) -> Any:
    from transformers import DepthAnythingConfig, Dinov2Config

    args = _args(card)
    encoder = args["encoder"]
    vit = DINOV2_CONFIGS[encoder]
    backbone = Dinov2Config(
        hidden_size=vit.embed_dim,
        num_hidden_layers=vit.depth,
        num_attention_heads=vit.num_heads,
        mlp_ratio=int(vit.mlp_ratio),
        image_size=card.preprocess.size,
        patch_size=PATCH,
        layerscale_value=1.0,
        # Stage 0 is the embedding: block i's output is stage i + 1.
        out_indices=[i + 1 for i in INTERMEDIATE_LAYERS[encoder]],
        reshape_hidden_states=False,
        apply_layernorm=True,
    )
    max_depth = args.get("max_depth")
    return DepthAnythingConfig(
        backbone_config=backbone,
        patch_size=PATCH,
        reassemble_hidden_size=vit.embed_dim,
        reassemble_factors=[4, 2, 1, 0.5],
        neck_hidden_sizes=list(args["out_channels"]),
        fusion_hidden_size=args["features"],
        head_hidden_size=32,
        depth_estimation_type="relative" if max_depth is None else "metric",
        # transformers types it as an int (the Hub configs say 20 and 80); 1 for relative.
        max_depth=1 if max_depth is None else int(max_depth),
    )


# --- renames: (our key pattern, transformers key template); first match wins ----------------

_Rule = tuple[str, str | Callable[[re.Match[str]], str] | None]


def _fusion_rules(prefix: str) -> list[_Rule]:
    """The decoder every DPT-style head shares (scratch.layerN_rn, scratch.refinenetN)."""

    def fusion(m: re.Match[str]) -> str:
        # refinenet4 runs first: it is transformers' fusion layer 0.
        unit = {"out_conv": "projection", "resConfUnit1": "residual_layer1",
                "resConfUnit2": "residual_layer2"}[m[2]]  # fmt: skip
        conv = (m[3] or "").replace("conv", "convolution")
        return f"neck.fusion_stage.layers.{4 - int(m[1])}.{unit}{conv}.{m[4]}"

    return [
        (prefix + r"scratch\.layer(\d)_rn\.weight", lambda m: f"neck.convs.{int(m[1]) - 1}.weight"),
        (
            prefix + r"scratch\.refinenet(\d)\.(out_conv|resConfUnit[12])(\.conv[12])?\.(\w+)",
            fusion,
        ),
    ]


def _qkv(prefix: str, names: tuple[str, str, str]) -> Callable[[re.Match[str]], str]:
    # A marker the caller splits: the fused (3C, ...) tensor becomes q, k, v in that order.
    return lambda m: f"{prefix}{m[1]}.@qkv@" + "|".join(names) + f"@{m[2]}"


_TIMM, _HF_DPT = r"pretrained\.model\.blocks\.(\d+)\.", r"dpt.encoder.layer.\1."
_DINO, _HF_DINO = r"pretrained\.blocks\.(\d+)\.", r"backbone.encoder.layer.\1."

_DPT_RULES: list[_Rule] = [
    (r"pretrained\.model\.cls_token", "dpt.embeddings.cls_token"),
    (r"pretrained\.model\.pos_embed", "dpt.embeddings.position_embeddings"),
    (r"pretrained\.model\.patch_embed\.proj\.(\w+)", r"dpt.embeddings.@proj@.\1"),
    (r"pretrained\.model\.patch_embed\.backbone\.stem\.conv\.weight",
     "dpt.embeddings.backbone.bit.embedder.convolution.weight"),
    (r"pretrained\.model\.patch_embed\.backbone\.stem\.norm\.(\w+)",
     r"dpt.embeddings.backbone.bit.embedder.norm.\1"),
    (r"pretrained\.model\.patch_embed\.backbone\.stages\.(\d+)\.blocks\.(\d+)\.(.+)",
     r"dpt.embeddings.backbone.bit.encoder.stages.\1.layers.\2.\3"),
    (r"pretrained\.model\.blocks\.(\d+)\.attn\.qkv\.(\w+)",
     _qkv("dpt.encoder.layer.", ("attention.attention.query", "attention.attention.key",
                                 "attention.attention.value"))),
    (_TIMM + r"attn\.proj\.(\w+)", _HF_DPT + r"attention.output.dense.\2"),
    (_TIMM + r"norm1\.(\w+)", _HF_DPT + r"layernorm_before.\2"),
    (_TIMM + r"norm2\.(\w+)", _HF_DPT + r"layernorm_after.\2"),
    (_TIMM + r"mlp\.fc1\.(\w+)", _HF_DPT + r"intermediate.dense.\2"),
    (_TIMM + r"mlp\.fc2\.(\w+)", _HF_DPT + r"output.dense.\2"),
    (r"pretrained\.model\.norm\.(\w+)", r"dpt.layernorm.\1"),
    (r"pretrained\.model\.head\.\w+", None),  # timm's ImageNet classifier: no twin
    (r"pretrained\.act_postprocess(\d)\.0\.project\.0\.(\w+)",
     lambda m: f"neck.reassemble_stage.readout_projects.{int(m[1]) - 1}.0.{m[2]}"),
    (r"pretrained\.act_postprocess(\d)\.3\.(\w+)",
     lambda m: f"neck.reassemble_stage.layers.{int(m[1]) - 1}.projection.{m[2]}"),
    (r"pretrained\.act_postprocess(\d)\.4\.(\w+)",
     lambda m: f"neck.reassemble_stage.layers.{int(m[1]) - 1}.resize.{m[2]}"),
    *_fusion_rules(""),
    (r"scratch\.output_conv\.([024])\.(\w+)", r"head.head.\1.\2"),
]  # fmt: skip

_DA2_RULES: list[_Rule] = [
    (r"pretrained\.(cls_token|mask_token)", r"backbone.embeddings.\1"),
    (r"pretrained\.pos_embed", "backbone.embeddings.position_embeddings"),
    (r"pretrained\.patch_embed\.proj\.(\w+)",
     r"backbone.embeddings.patch_embeddings.projection.\1"),
    (r"pretrained\.blocks\.(\d+)\.attn\.qkv\.(\w+)",
     _qkv("backbone.encoder.layer.", ("attention.q_proj", "attention.k_proj", "attention.v_proj"))),
    (_DINO + r"attn\.proj\.(\w+)", _HF_DINO + r"attention.o_proj.\2"),
    (_DINO + r"ls([12])\.gamma", _HF_DINO + r"layer_scale\2.lambda1"),
    (_DINO + r"(norm[12]|mlp\.fc[12])\.(\w+)", _HF_DINO + r"\2.\3"),
    (r"pretrained\.norm\.(\w+)", r"backbone.layernorm.\1"),
    (r"depth_head\.projects\.(\d)\.(\w+)", r"neck.reassemble_stage.layers.\1.projection.\2"),
    (r"depth_head\.resize_layers\.(\d)\.(\w+)", r"neck.reassemble_stage.layers.\1.resize.\2"),
    *_fusion_rules(r"depth_head\."),
    (r"depth_head\.scratch\.output_conv1\.(\w+)", r"head.conv1.\1"),
    (r"depth_head\.scratch\.output_conv2\.0\.(\w+)", r"head.conv2.\1"),
    (r"depth_head\.scratch\.output_conv2\.2\.(\w+)", r"head.conv3.\1"),
]  # fmt: skip


def _rename(key: str, rules: list[_Rule]) -> str | None:
    for pattern, target in rules:
        m = re.fullmatch(pattern, key)
        if m is None:
            continue
        if target is None:
            return None
        return target(m) if callable(target) else m.expand(target)
    raise KeyError(f"no transformers name for {key!r}")


def hf_state_dict(card: ModelCard, ours: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``ours`` (the official layout) renamed, and fused ``qkv`` split, for transformers."""
    rules = _DPT_RULES if card.architecture == "dpt" else _DA2_RULES
    hybrid = _hybrid(card)
    out: dict[str, torch.Tensor] = {}
    for key, tensor in ours.items():
        name = _rename(key, rules)
        if name is None:
            continue
        # The hybrid's token projection sits on the embeddings, ViT-L's in patch_embeddings.
        name = name.replace("@proj@", "projection" if hybrid else "patch_embeddings.projection")
        if "@qkv@" in name:
            head, rest = name.split("@qkv@")
            names, param = rest.split("@")
            for part, chunk in zip(names.split("|"), tensor.chunk(3, dim=0), strict=True):
                out[f"{head}{part}.{param}"] = chunk.contiguous()
        else:
            out[name] = tensor
    return out


def build_hf_model(card: ModelCard, ours: dict[str, torch.Tensor]) -> nn.Module:
    """The transformers model (``DPTForDepthEstimation`` / ``DepthAnythingForDepthEstimation``)
    with ``ours`` loaded strictly, in eval mode."""
    from transformers import DepthAnythingForDepthEstimation, DPTForDepthEstimation

    cls = DPTForDepthEstimation if card.architecture == "dpt" else DepthAnythingForDepthEstimation
    with torch.device("meta"):  # no random initialisation of weights that are replaced anyway
        model = cls(hf_config(card))
    model.load_state_dict(hf_state_dict(card, ours), strict=True, assign=True)
    left = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise RuntimeError(f"transformers model has tensors without values: {left[:5]}")
    return model.eval()
