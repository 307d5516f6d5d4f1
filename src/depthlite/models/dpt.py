"""DPT (MiDaS v3: ``DPT_Large``, ``DPT_Hybrid``) in plain ``torch.nn``.

Mirrors isl-org/MiDaS ``DPTDepthModel(backbone=..., non_negative=True)`` with timm's ViTs as the
checkpoints were saved, so they load with ``strict=True``:

- ``vitl16_384``: ViT-L/16 (timm ``vit_large_patch16_384``), taps after blocks 5, 11, 17, 23.
- ``vitb_rn50_384``: ViT-B/16 on a ResNet-50 "BiT" stem (timm ``vit_base_r50_s16_384``:
  ResNetV2 stages (3, 4, 9), weight-standardised convs with TF "SAME" padding, GroupNorm with 32
  groups); taps after ResNet stages 1 and 2 and after ViT blocks 8 and 11.

Both use a "project" readout (the class token concatenated to every patch token, then a linear
layer and GELU) and a 256-wide decoder. The timm classifier ``pretrained.model.head`` and the
final ``pretrained.model.norm`` are unused by the depth output but part of the checkpoint, so
they are kept (368 ``state_dict`` entries for both).

The position embedding (trained on a 24 x 24 grid) is resized bilinearly to the input's patch
grid on every call, computed from the input's shape: any H, W that are multiples of 32 work, in
torch and in a dynamic-size ONNX export.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from depthlite.models.blocks import (
    FeatureFusionBlockCustom,
    Interpolate,
    Scratch,
    make_scratch,
)
from depthlite.models.vit import Block, PatchEmbed, resize_pos_embed, set_fused_attention

__all__ = ["BACKBONES", "DPTDepth"]

_PATCH = 16
_POS_GRID = 24  # 384 px / 16: the grid the position embeddings were trained on
_NUM_CLASSES = 1000  # timm's unused ImageNet head, kept for the checkpoint


@dataclass(frozen=True)
class _Backbone:
    dim: int
    depth: int
    heads: int
    hooks: tuple[int, int, int, int]
    features: tuple[int, int, int, int]  # channels of the four reassembled levels
    hybrid: bool


BACKBONES = {
    "vitl16_384": _Backbone(1024, 24, 16, (5, 11, 17, 23), (256, 512, 1024, 1024), False),
    "vitb_rn50_384": _Backbone(768, 12, 12, (0, 1, 8, 11), (256, 512, 768, 768), True),
}


# --- the ResNetV2 ("BiT") stem of the hybrid --------------------------------------------------


def _same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding along one axis: the extra pixel goes after, not before."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, kernel: int, stride: int, static: bool, value: float = 0.0):
    if static:  # the value for every even size, the only ones a multiple-of-32 input produces
        top, bottom = left, right = _same_pad(2, kernel, stride)
    else:
        top, bottom = _same_pad(int(x.shape[-2]), kernel, stride)
        left, right = _same_pad(int(x.shape[-1]), kernel, stride)
    if top or bottom or left or right:
        x = F.pad(x, (left, right, top, bottom), value=value)
    return x


class StdConv2dSame(nn.Conv2d):
    """Weight-standardised conv (per output channel: zero mean, unit variance, eps 1e-8) with
    TF "SAME" padding: symmetric when static (stride 1), else computed from the input size."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1) -> None:
        dynamic = stride != 1 or kernel % 2 == 0
        padding = 0 if dynamic else kernel // 2
        super().__init__(cin, cout, kernel, stride, padding=padding, bias=False)
        self.dynamic_pad = dynamic
        self.static_pad = False
        self.eps = 1e-8
        self.frozen: torch.Tensor | None = None  # standardised weight, set for export only

    def standardized_weight(self) -> torch.Tensor:
        """The weight with zero mean, unit variance per output channel, computed with
        batch_norm's kernel as timm does (the closest match to the original: a plain mean/var
        formula rounds differently, about 2e-5 of the output range at the end)."""
        flat = self.weight.reshape(1, self.out_channels, -1)
        w = F.batch_norm(flat, None, None, training=True, momentum=0.0, eps=self.eps)
        return w.reshape_as(self.weight)

    def freeze(self, enabled: bool) -> None:
        """Export mode: static pads, and the standardised weight as a constant (not a buffer,
        so no ``state_dict`` key), so that the graph carries torch's exact values."""
        self.static_pad = enabled
        with torch.no_grad():
            self.frozen = self.standardized_weight().detach() if enabled else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dynamic_pad:
            x = _pad_same(x, self.kernel_size[0], self.stride[0], self.static_pad)
        w = self.standardized_weight() if self.frozen is None else self.frozen
        return F.conv2d(x, w, None, self.stride, self.padding)


class MaxPool2dSame(nn.Module):
    """3x3 stride-2 max pool with TF "SAME" padding (padded with -inf)."""

    def __init__(self) -> None:
        super().__init__()
        self.static_pad = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _pad_same(x, 3, 2, self.static_pad, value=-math.inf)
        return F.max_pool2d(x, 3, 2)


class GroupNormAct(nn.GroupNorm):
    """GroupNorm (32 groups, eps 1e-5), then ReLU when ``act``."""

    def __init__(self, channels: int, act: bool = True) -> None:
        super().__init__(32, channels, eps=1e-5)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(x)
        return F.relu(x) if self.act else x


class DownsampleConv(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv = StdConv2dSame(cin, cout, 1, stride)
        self.norm = GroupNormAct(cout, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))


class BottleneckV2(nn.Module):
    """timm ResNetV2's non-pre-activation bottleneck (stride on the 3x3)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        mid = cout // 4
        # Registration order matters: the checkpoint lists the downsample first.
        self.downsample = DownsampleConv(cin, cout, stride) if cin != cout or stride != 1 else None
        self.conv1 = StdConv2dSame(cin, mid, 1)
        self.norm1 = GroupNormAct(mid)
        self.conv2 = StdConv2dSame(mid, mid, 3, stride)
        self.norm2 = GroupNormAct(mid)
        self.conv3 = StdConv2dSame(mid, cout, 1)
        self.norm3 = GroupNormAct(cout, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.norm1(self.conv1(x))
        out = self.norm2(self.conv2(out))
        out = self.norm3(self.conv3(out))
        return F.relu(out + shortcut)


class ResNetStage(nn.Module):
    def __init__(self, cin: int, cout: int, depth: int, stride: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            *(
                BottleneckV2(cin if i == 0 else cout, cout, stride if i == 0 else 1)
                for i in range(depth)
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class ResNetV2(nn.Module):
    """The hybrid's CNN: "same" stem (7x7/2 conv, GroupNorm+ReLU, 3x3/2 max pool) and stages
    of 3, 4, 9 bottlenecks to 256, 512, 1024 channels at strides 4, 8, 16."""

    def __init__(self, layers: tuple[int, ...] = (3, 4, 9)) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            OrderedDict(
                conv=StdConv2dSame(3, 64, 7, 2), norm=GroupNormAct(64), pool=MaxPool2dSame()
            )
        )
        self.stages = nn.Sequential()
        cin = 64
        for i, depth in enumerate(layers):
            cout = 256 * 2**i
            self.stages.add_module(str(i), ResNetStage(cin, cout, depth, 1 if i == 0 else 2))
            cin = cout


class HybridEmbed(nn.Module):
    """ResNet features (stride 16) projected to tokens by a 1x1 conv (``proj``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.backbone = ResNetV2()
        self.proj = nn.Conv2d(1024, dim, 1, 1)


# --- the ViT and the reassembly -----------------------------------------------------------------


class VisionTransformer(nn.Module):
    """The timm ViT's parameters (``pretrained.model.*``); DPT drives the blocks itself."""

    def __init__(self, spec: _Backbone) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, spec.dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, _POS_GRID * _POS_GRID + 1, spec.dim))
        self.patch_embed: nn.Module = (
            HybridEmbed(spec.dim) if spec.hybrid else PatchEmbed(_PATCH, 3, spec.dim)
        )
        self.blocks = nn.ModuleList(Block(spec.dim, spec.heads) for _ in range(spec.depth))
        self.norm = nn.LayerNorm(spec.dim, eps=1e-6)  # unused by DPT (it taps inner blocks)
        self.head = nn.Linear(spec.dim, _NUM_CLASSES)  # unused: timm's ImageNet classifier


class ProjectReadout(nn.Module):
    """Patch tokens concatenated with the class token, then ``Linear(2C, C)`` and GELU."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.project = nn.Sequential(nn.Linear(2 * dim, dim), nn.GELU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patches = x[:, 1:]
        readout = x[:, :1].expand_as(patches)
        return self.project(torch.cat([patches, readout], dim=-1))


class _Placeholder(nn.Identity):
    """Keeps the original's ``Sequential`` indices (its ``Transpose`` and fixed-size
    ``Unflatten``, which :class:`Reassemble` replaces by a reshape to the input's grid)."""


class Reassemble(nn.Sequential):
    """``act_postprocess{i}``: readout, [transpose, unflatten], 1x1 conv, optional resampling
    (transposed conv up x4 / x2, or a 3x3 stride-2 conv down); tokens -> (N, C, gh, gw)."""

    def __init__(self, dim: int, features: int, resample: nn.Module | None) -> None:
        layers: list[nn.Module] = [
            ProjectReadout(dim),
            _Placeholder(),
            _Placeholder(),
            nn.Conv2d(dim, features, 1, 1, 0),
        ]
        if resample is not None:
            layers.append(resample)
        super().__init__(*layers)

    def forward(self, tokens: torch.Tensor, grid: tuple[torch.Tensor | int, ...]) -> torch.Tensor:
        x = self[0](tokens).transpose(1, 2)
        x = x.reshape(x.shape[0], x.shape[1], grid[0], grid[1])
        for layer in list(self)[3:]:
            x = layer(x)
        return x


def _resample(level: int, channels: int) -> nn.Module | None:
    """Level 1 and 2 go up x4 and x2, level 3 stays at stride 16, level 4 goes down x2."""
    if level < 2:
        k = 4 // 2**level
        return nn.ConvTranspose2d(channels, channels, k, k, 0)
    if level == 3:
        return nn.Conv2d(channels, channels, 3, 2, 1)
    return None


class Encoder(nn.Module):
    """``pretrained``: the ViT (``model``) and the four reassemble stages."""

    def __init__(self, spec: _Backbone) -> None:
        super().__init__()
        self.spec = spec
        self.model = VisionTransformer(spec)
        for level in range(4):
            cnn_level = spec.hybrid and level < 2  # taken from the ResNet as it is
            post = (
                nn.Sequential(nn.Identity(), nn.Identity(), nn.Identity())
                if cnn_level
                else Reassemble(
                    spec.dim, spec.features[level], _resample(level, spec.features[level])
                )
            )
            self.add_module(f"act_postprocess{level + 1}", post)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        spec, vit = self.spec, self.model
        grid = (x.shape[-2] // _PATCH, x.shape[-1] // _PATCH)
        levels: list[torch.Tensor] = []
        if spec.hybrid:
            cnn = vit.patch_embed.backbone
            feat = cnn.stem(x)
            for i, stage in enumerate(cnn.stages):
                feat = stage(feat)
                if i < 2:
                    levels.append(feat)
            x = vit.patch_embed.proj(feat).flatten(2).transpose(1, 2)
        else:
            x = vit.patch_embed(x)
        cls = vit.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + resize_pos_embed(vit.pos_embed, grid[0], grid[1])
        vit_hooks = spec.hooks[2:] if spec.hybrid else spec.hooks
        taps = []
        for i, block in enumerate(vit.blocks[: max(vit_hooks) + 1]):
            x = block(x)
            if i in vit_hooks:
                taps.append(x)
        posts = [self.act_postprocess1, self.act_postprocess2]
        posts += [self.act_postprocess3, self.act_postprocess4]
        for post, tokens in zip(posts[len(levels) :], taps, strict=True):
            levels.append(post(tokens, grid))
        return levels


def _make_decoder(spec: _Backbone, features: int) -> Scratch:
    scratch = make_scratch(spec.features, features)
    for level in (1, 2, 3, 4):
        scratch.add_module(f"refinenet{level}", FeatureFusionBlockCustom(features, nn.ReLU()))
    scratch.output_conv = nn.Sequential(
        nn.Conv2d(features, features // 2, 3, 1, 1),
        Interpolate(scale_factor=2.0, mode="bilinear", align_corners=True),
        nn.Conv2d(features // 2, 32, 3, 1, 1),
        nn.ReLU(),
        nn.Conv2d(32, 1, 1, 1, 0),
        nn.ReLU(),  # non_negative=True
        nn.Identity(),
    )
    return scratch


class DPTDepth(nn.Module):
    """``DPTDepthModel(backbone=..., non_negative=True)``: (N, 3, H, W) normalised RGB (mean =
    std = 0.5), H and W multiples of 32 -> (N, H, W) relative inverse depth.

    ``backbone`` is ``"vitl16_384"`` (DPT-Large) or ``"vitb_rn50_384"`` (DPT-Hybrid).
    """

    def __init__(self, backbone: str = "vitl16_384", features: int = 256) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown DPT backbone {backbone!r}; known: {sorted(BACKBONES)}")
        self.backbone = backbone
        spec = BACKBONES[backbone]
        self.pretrained = Encoder(spec)
        self.scratch = _make_decoder(spec, features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scratch.decode(self.pretrained(x), sized=True)

    def set_export_mode(self, enabled: bool) -> None:
        """For ONNX export (``True``), back to the default (``False``).

        Export mode uses the explicit ``softmax(q k^T * scale) v`` attention (ONNX Runtime fuses
        its scaling into ``FusedMatMul``; about 15% faster at 384 x 384 than the exported
        ``scaled_dot_product_attention``) and, for DPT-Hybrid, freezes the ResNet's TF "SAME"
        pads to their even-size values and its standardised weights to constants. Switch it
        off again before loading other weights.
        """
        set_fused_attention(self, not enabled)
        for module in self.modules():
            if isinstance(module, StdConv2dSame):
                module.freeze(enabled)
            elif isinstance(module, MaxPool2dSame):
                module.static_pad = enabled

    def set_fused_attention(self, fused: bool) -> None:
        """``F.scaled_dot_product_attention`` (default) or the explicit softmax form."""
        set_fused_attention(self, fused)
