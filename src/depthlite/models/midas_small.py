"""MiDaS v2.1 small (``MidasNet_small``) in plain ``torch.nn``.

The module tree mirrors the original code (isl-org/MiDaS with gen-efficientnet-pytorch's
``tf_efficientnet_lite3``) so that the official checkpoint loads with ``strict=True``: the same
``state_dict`` keys, in the same order, with the same shapes. Only the structure that produces the
keys is copied; the encoder is described by a small table instead of the original's string DSL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from depthlite.models.blocks import FeatureFusionBlockCustom, Interpolate, Scratch, make_scratch

__all__ = ["MidasSmall"]

_BN_EPS = 1e-3  # TensorFlow's default, which the tf_ EfficientNet ports keep
_FEATURES = 64
_ENCODER_CHANNELS = (32, 48, 136, 384)  # at strides 4, 8, 16, 32


def _same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding along one axis: the extra pixel goes after, not before."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """Stride-2 convolution with TensorFlow "SAME" padding computed from the input size.

    ``static_pad`` freezes the padding for even input sizes, the only ones MiDaS feeds it
    (network inputs are multiples of 32); ONNX export sets it so the graph carries a constant
    pad instead of shape arithmetic.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, groups: int = 1) -> None:
        super().__init__(cin, cout, kernel, stride, padding=0, groups=groups, bias=False)
        self.static_pad = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel, stride = self.kernel_size[0], self.stride[0]
        if self.static_pad:
            top, bottom = _same_pad(2, kernel, stride)
            left, right = top, bottom
        else:
            top, bottom = _same_pad(int(x.shape[-2]), kernel, stride)
            left, right = _same_pad(int(x.shape[-1]), kernel, stride)
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
        return super().forward(x)


def _conv(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    if stride == 1:
        return nn.Conv2d(cin, cout, kernel, 1, kernel // 2, groups=groups, bias=False)
    return Conv2dSame(cin, cout, kernel, stride, groups=groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_BN_EPS)


class DepthwiseSeparable(nn.Module):
    """EfficientNet's first block: depthwise conv, BN, ReLU6, pointwise conv, BN."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.conv_dw = _conv(cin, cin, kernel, stride, groups=cin)
        self.bn1 = _bn(cin)
        self.act1 = nn.ReLU6()
        self.conv_pw = _conv(cin, cout, 1)
        self.bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv_pw(self.act1(self.bn1(self.conv_dw(x)))))
        return out + x if self.residual else out


class InvertedResidual(nn.Module):
    """MobileNetV2 block: expand 1x1, depthwise, project 1x1; no squeeze-excite in Lite."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.conv_pw = _conv(cin, mid, 1)
        self.bn1 = _bn(mid)
        self.act1 = nn.ReLU6()
        self.conv_dw = _conv(mid, mid, kernel, stride, groups=mid)
        self.bn2 = _bn(mid)
        self.act2 = nn.ReLU6()
        self.conv_pwl = _conv(mid, cout, 1)
        self.bn3 = _bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv_pw(x)))
        out = self.act2(self.bn2(self.conv_dw(out)))
        out = self.bn3(self.conv_pwl(out))
        return out + x if self.residual else out


@dataclass(frozen=True)
class _Stage:
    repeats: int
    kernel: int
    stride: int
    expand: int
    out: int


# EfficientNet-Lite3 (width 1.2, depth 1.4, rounded as in the original); expand 1 = separable.
_LITE3_STAGES = (
    _Stage(1, 3, 1, 1, 24),
    _Stage(3, 3, 2, 6, 32),
    _Stage(3, 5, 2, 6, 48),
    _Stage(5, 3, 2, 6, 96),
    _Stage(5, 5, 1, 6, 136),
    _Stage(6, 5, 2, 6, 232),
    _Stage(1, 3, 1, 6, 384),
)
_STEM_CHANNELS = 32


def _make_stage(cin: int, stage: _Stage) -> nn.Sequential:
    blocks: list[nn.Module] = []
    for i in range(stage.repeats):
        stride = stage.stride if i == 0 else 1
        block_in = cin if i == 0 else stage.out
        if stage.expand == 1:
            blocks.append(DepthwiseSeparable(block_in, stage.out, stage.kernel, stride))
        else:
            blocks.append(InvertedResidual(block_in, stage.out, stage.kernel, stride, stage.expand))
    return nn.Sequential(*blocks)


class Encoder(nn.Module):
    """EfficientNet-Lite3 cut into the four levels MiDaS taps (``pretrained.layer1..4``)."""

    def __init__(self) -> None:
        super().__init__()
        stages: list[nn.Sequential] = []
        cin = _STEM_CHANNELS
        for stage in _LITE3_STAGES:
            stages.append(_make_stage(cin, stage))
            cin = stage.out
        stem = [_conv(3, _STEM_CHANNELS, 3, 2), _bn(_STEM_CHANNELS), nn.ReLU6()]
        self.layer1 = nn.Sequential(*stem, stages[0], stages[1])
        self.layer2 = nn.Sequential(stages[2])
        self.layer3 = nn.Sequential(stages[3], stages[4])
        self.layer4 = nn.Sequential(stages[5], stages[6])


def _make_decoder(features: int = _FEATURES) -> Scratch:
    """The MiDaS decoder: reassemble convs, four fusion blocks and the output head."""
    scratch = make_scratch(_ENCODER_CHANNELS, features, expand=True)
    widths = (features, features * 2, features * 4, features * 8)
    scratch.refinenet4 = FeatureFusionBlockCustom(widths[3], nn.ReLU(), expand=True)
    scratch.refinenet3 = FeatureFusionBlockCustom(widths[2], nn.ReLU(), expand=True)
    scratch.refinenet2 = FeatureFusionBlockCustom(widths[1], nn.ReLU(), expand=True)
    scratch.refinenet1 = FeatureFusionBlockCustom(widths[0], nn.ReLU())
    scratch.output_conv = nn.Sequential(
        nn.Conv2d(features, features // 2, 3, 1, 1),
        Interpolate(scale_factor=2.0, mode="bilinear", align_corners=False),
        nn.Conv2d(features // 2, 32, 3, 1, 1),
        nn.ReLU(),
        nn.Conv2d(32, 1, 1, 1, 0),
        nn.ReLU(),  # non_negative=True: the output is inverse depth, never below zero
    )
    return scratch


class MidasSmall(nn.Module):
    """``MidasNet_small``: input (N, 3, H, W) normalised RGB, H and W multiples of 32;
    output (N, H, W) relative inverse depth."""

    def __init__(self) -> None:
        super().__init__()
        self.pretrained = Encoder()
        self.scratch = _make_decoder()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        enc = self.pretrained
        layer1 = enc.layer1(x)
        layer2 = enc.layer2(layer1)
        layer3 = enc.layer3(layer2)
        return self.scratch.decode((layer1, layer2, layer3, enc.layer4(layer3)))

    def set_static_padding(self, static: bool) -> None:
        """Freeze TF "SAME" pads to their even-size values (for export with dynamic H, W)."""
        for module in self.modules():
            if isinstance(module, Conv2dSame):
                module.static_pad = static

    def set_export_mode(self, enabled: bool) -> None:
        """The export switch every network offers: here, :meth:`set_static_padding`."""
        self.set_static_padding(enabled)
