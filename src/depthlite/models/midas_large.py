"""MiDaS v2.1 large (``MidasNet``, hub ``MiDaS``) in plain ``torch.nn``.

The encoder is ResNeXt-101 32x8d (the WSL weights), laid out as torchvision's
``ResNet(Bottleneck, [3, 4, 23, 3], groups=32, width_per_group=8)`` cut into the four levels the
original taps: ``pretrained.layer1`` is ``Sequential(conv1, bn1, relu, maxpool, layer1)`` (hence
``pretrained.layer1.4.*``), ``pretrained.layer2..4`` are the ResNet's own stages. The decoder
(``scratch.*``) is 256 wide on every level, with MidasNet's fusion blocks
(:class:`~depthlite.models.blocks.FeatureFusionBlock`, no output projection).

Input (N, 3, H, W) ImageNet-normalised RGB, H and W multiples of 32; output (N, H, W) relative
inverse depth (``non_negative=True``: a final ReLU).
"""

from __future__ import annotations

import torch
from torch import nn

from depthlite.models.blocks import FeatureFusionBlock, Interpolate, Scratch, make_scratch

__all__ = ["MidasLarge"]

_LAYERS = (3, 4, 23, 3)
_PLANES = (64, 128, 256, 512)
_GROUPS = 32
_WIDTH_PER_GROUP = 8
_EXPANSION = 4


class Bottleneck(nn.Module):
    """torchvision's ResNeXt bottleneck (stride on the grouped 3x3, "ResNet v1.5")."""

    def __init__(self, cin: int, planes: int, stride: int) -> None:
        super().__init__()
        width = planes * _WIDTH_PER_GROUP // 64 * _GROUPS
        cout = planes * _EXPANSION
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, groups=_GROUPS, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.downsample: nn.Sequential | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


def _stage(cin: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    cout = planes * _EXPANSION
    return nn.Sequential(
        Bottleneck(cin, planes, stride), *(Bottleneck(cout, planes, 1) for _ in range(blocks - 1))
    )


class Encoder(nn.Module):
    """ResNeXt-101 32x8d at strides 4, 8, 16, 32 (``pretrained.layer1..4``)."""

    def __init__(self) -> None:
        super().__init__()
        stages = []
        cin = 64
        for i, (planes, blocks) in enumerate(zip(_PLANES, _LAYERS, strict=True)):
            stages.append(_stage(cin, planes, blocks, 1 if i == 0 else 2))
            cin = planes * _EXPANSION
        self.layer1 = nn.Sequential(
            nn.Conv2d(3, 64, 7, 2, 3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(3, 2, 1),
            stages[0],
        )
        self.layer2, self.layer3, self.layer4 = stages[1:]


def _make_decoder(features: int) -> Scratch:
    scratch = make_scratch([p * _EXPANSION for p in _PLANES], features)
    scratch.refinenet4 = FeatureFusionBlock(features)
    scratch.refinenet3 = FeatureFusionBlock(features)
    scratch.refinenet2 = FeatureFusionBlock(features)
    scratch.refinenet1 = FeatureFusionBlock(features)
    scratch.output_conv = nn.Sequential(
        nn.Conv2d(features, 128, 3, 1, 1),
        Interpolate(scale_factor=2.0, mode="bilinear", align_corners=False),
        nn.Conv2d(128, 32, 3, 1, 1),
        nn.ReLU(),
        nn.Conv2d(32, 1, 1, 1, 0),
        nn.ReLU(),  # non_negative=True
    )
    return scratch


class MidasLarge(nn.Module):
    """``MidasNet(features=256, non_negative=True)``: (N, 3, H, W) -> (N, H, W)."""

    def __init__(self, features: int = 256) -> None:
        super().__init__()
        self.pretrained = Encoder()
        self.scratch = _make_decoder(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        enc = self.pretrained
        layer1 = enc.layer1(x)
        layer2 = enc.layer2(layer1)
        layer3 = enc.layer3(layer2)
        return self.scratch.decode((layer1, layer2, layer3, enc.layer4(layer3)))

    def set_export_mode(self, enabled: bool) -> None:
        """Nothing to switch: the graph is size-independent as it is."""
