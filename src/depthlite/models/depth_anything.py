"""Depth Anything V2 (relative and metric) in plain ``torch.nn``.

Mirrors DepthAnything/Depth-Anything-V2 @ a561b84: ``depth_anything_v2/dpt.py`` (relative
disparity, final ReLU) and ``metric_depth/depth_anything_v2/dpt.py`` (metres: the head ends in a
Sigmoid, scaled by ``max_depth``: 20 for the Hypersim/indoor weights, 80 for VKITTI/outdoor).
The module tree gives the official checkpoints' keys in their order: ``pretrained.*`` (the DINOv2
backbone, :mod:`depthlite.models.dinov2`) and ``depth_head.*`` (the DPT head below, built from the
shared decoder blocks of :mod:`depthlite.models.blocks`).

Forward: ``(N, 3, H, W)`` ImageNet-normalised RGB with H and W multiples of 14 -> ``(N, H, W)``.
For a dynamic-size ONNX export, see :meth:`DepthAnythingV2.set_export_mode`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from depthlite.models.banded import banded_upsample_head, in_graph_mode
from depthlite.models.blocks import FeatureFusionBlockCustom, banded_fusion_tail, make_scratch
from depthlite.models.dinov2 import DINOv2

__all__ = [
    "DEPTH_ANYTHING_V2_CONFIGS",
    "INTERMEDIATE_LAYERS",
    "METRIC_MAX_DEPTH",
    "DPTHead",
    "DepthAnythingV2",
    "DepthAnythingV2Config",
]

PATCH = 14
_HEAD_FEATURES_2 = 32

# Blocks whose outputs feed the head (the original's ``intermediate_layer_idx``).
INTERMEDIATE_LAYERS: dict[str, tuple[int, ...]] = {
    "vits": (2, 5, 8, 11),
    "vitb": (2, 5, 8, 11),
    "vitl": (4, 11, 17, 23),
}

# ``max_depth`` of the released metric heads, in metres.
METRIC_MAX_DEPTH: dict[str, float] = {"hypersim": 20.0, "vkitti": 80.0}


@dataclass(frozen=True)
class DepthAnythingV2Config:
    """The released head widths for one encoder (the original ``model_configs``)."""

    features: int
    out_channels: tuple[int, int, int, int]


DEPTH_ANYTHING_V2_CONFIGS: dict[str, DepthAnythingV2Config] = {
    "vits": DepthAnythingV2Config(64, (48, 96, 192, 384)),
    "vitb": DepthAnythingV2Config(128, (96, 192, 384, 768)),
    "vitl": DepthAnythingV2Config(256, (256, 512, 1024, 1024)),
}


class DPTHead(nn.Module):
    """The DPT decoder: 4 token maps -> 1-channel map at the 14-pixel grid's full resolution.

    Each level: (optional class-token readout) -> tokens to a ``(C, h, w)`` map -> 1x1
    ``projects`` conv -> ``resize_layers`` (transposed conv x4, x2, identity, stride-2 conv) ->
    ``scratch.layer{i}_rn``; then the fusion blocks from the coarsest level up, each resized to
    the next level's size, ``output_conv1``, bilinear (align_corners) to ``14 h x 14 w``, and
    ``output_conv2`` (ending in ReLU, or Sigmoid when ``metric``).
    """

    def __init__(
        self,
        in_channels: int,
        features: int = 256,
        *,
        use_bn: bool = False,
        out_channels: Sequence[int] = (256, 512, 1024, 1024),
        use_clstoken: bool = False,
        metric: bool = False,
    ) -> None:
        super().__init__()
        if len(out_channels) != 4:
            raise ValueError(f"out_channels needs 4 widths, got {tuple(out_channels)}")
        c1, c2, _, c4 = out_channels
        self.use_clstoken = use_clstoken
        self.projects = nn.ModuleList(nn.Conv2d(in_channels, c, 1) for c in out_channels)
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(c1, c1, kernel_size=4, stride=4),
                nn.ConvTranspose2d(c2, c2, kernel_size=2, stride=2),
                nn.Identity(),
                nn.Conv2d(c4, c4, kernel_size=3, stride=2, padding=1),
            ]
        )
        if use_clstoken:
            self.readout_projects = nn.ModuleList(
                nn.Sequential(nn.Linear(2 * in_channels, in_channels), nn.GELU())
                for _ in out_channels
            )
        scratch = make_scratch(out_channels, features, groups=1, expand=False)
        for i in range(1, 5):
            fusion = FeatureFusionBlockCustom(
                features, nn.ReLU(), deconv=False, bn=use_bn, expand=False, align_corners=True
            )
            scratch.add_module(f"refinenet{i}", fusion)
        scratch.output_conv1 = nn.Conv2d(features, features // 2, 3, 1, 1)
        last = [nn.Sigmoid()] if metric else [nn.ReLU(), nn.Identity()]
        scratch.output_conv2 = nn.Sequential(
            nn.Conv2d(features // 2, _HEAD_FEATURES_2, 3, 1, 1),
            nn.ReLU(),
            nn.Conv2d(_HEAD_FEATURES_2, 1, 1, 1, 0),
            *last,
        )
        self.scratch = scratch

    def forward(
        self,
        features: Sequence[tuple[torch.Tensor, torch.Tensor]],
        patch_h: int | torch.Tensor,
        patch_w: int | torch.Tensor,
    ) -> torch.Tensor:
        levels = []
        for i, (patch_tokens, cls_token) in enumerate(features):
            tokens = patch_tokens
            if self.use_clstoken:
                readout = cls_token.unsqueeze(1).expand_as(tokens)
                tokens = self.readout_projects[i](torch.cat((tokens, readout), -1))
            fmap = tokens.permute(0, 2, 1).reshape(
                tokens.shape[0], tokens.shape[-1], patch_h, patch_w
            )
            levels.append(self.resize_layers[i](self.projects[i](fmap)))

        s = self.scratch
        layer1 = s.layer1_rn(levels[0])
        layer2 = s.layer2_rn(levels[1])
        layer3 = s.layer3_rn(levels[2])
        layer4 = s.layer4_rn(levels[3])
        path = s.refinenet4(layer4, size=layer3.shape[2:])
        path = s.refinenet3(path, layer3, size=layer2.shape[2:])
        path = s.refinenet2(path, layer2, size=layer1.shape[2:])
        size = (patch_h * PATCH, patch_w * PATCH)
        if in_graph_mode():
            # Exported graphs: the two full-resolution stages in row bands (models/banded.py).
            out = banded_fusion_tail(s.refinenet1, (path, layer1), s.output_conv1)
            return banded_upsample_head(out, size, list(s.output_conv2), align_corners=True)
        out = s.output_conv1(s.refinenet1(path, layer1))
        out = F.interpolate(out, size=size, mode="bilinear", align_corners=True)
        return s.output_conv2(out)


class DepthAnythingV2(nn.Module):
    """Depth Anything V2: DINOv2 (``pretrained``) + DPT head (``depth_head``).

    Args:
        encoder: ``"vits"`` (Small), ``"vitb"`` (Base) or ``"vitl"`` (Large).
        features: decoder width (64 / 128 / 256 for the released s / b / l).
        out_channels: the four projection widths ((48, 96, 192, 384) / (96, 192, 384, 768) /
            (256, 512, 1024, 1024)); see :data:`DEPTH_ANYTHING_V2_CONFIGS`.
        max_depth: ``None`` for the relative (disparity) model; a float (20.0 Hypersim, 80.0
            VKITTI) for a metric head, whose output is ``sigmoid * max_depth`` metres.
        use_bn, use_clstoken: the original's options (False in every released model;
            keyword-only).
    """

    def __init__(
        self,
        encoder: str = "vits",
        features: int = 64,
        out_channels: Sequence[int] = (48, 96, 192, 384),
        max_depth: float | None = None,
        *,
        use_bn: bool = False,
        use_clstoken: bool = False,
    ) -> None:
        super().__init__()
        if encoder not in INTERMEDIATE_LAYERS:
            raise ValueError(f"unknown encoder {encoder!r}; one of {sorted(INTERMEDIATE_LAYERS)}")
        if max_depth is not None and not max_depth > 0:
            raise ValueError(f"max_depth must be positive, got {max_depth}")
        self.encoder = encoder
        self.max_depth = None if max_depth is None else float(max_depth)
        self.intermediate_layers = INTERMEDIATE_LAYERS[encoder]
        self.pretrained = DINOv2(encoder)
        self.depth_head = DPTHead(
            self.pretrained.embed_dim,
            features,
            use_bn=use_bn,
            out_channels=tuple(out_channels),
            use_clstoken=use_clstoken,
            metric=max_depth is not None,
        )

    @property
    def metric(self) -> bool:
        return self.max_depth is not None

    def set_export_mode(self, enabled: bool) -> None:
        """Make the traced graph follow the input size (dynamic-size ONNX export).

        Eager results are the same either way. ``torch.onnx.export`` (TorchScript exporter) also
        switches it on by itself while it traces.
        """
        self.pretrained.set_export_mode(enabled)

    def set_fused_attention(self, enabled: bool) -> None:
        """``F.scaled_dot_product_attention`` instead of the original's explicit softmax (off by
        default; both agree to float rounding)."""
        self.pretrained.set_fused_attention(enabled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patch_h, patch_w = x.shape[-2] // PATCH, x.shape[-1] // PATCH
        features = self.pretrained.get_intermediate_layers(
            x, self.intermediate_layers, return_class_token=True
        )
        depth = self.depth_head(features, patch_h, patch_w)
        # Relative: ReLU (again, as the original). Metric: the head's sigmoid in metres.
        depth = F.relu(depth) if self.max_depth is None else depth * self.max_depth
        return depth.squeeze(1)
