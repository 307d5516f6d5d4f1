"""MiDaS v2.1 small (``MidasNet_small``) in plain ``torch.nn``.

The module tree mirrors the original code (isl-org/MiDaS with gen-efficientnet-pytorch's
``tf_efficientnet_lite3``) so that the official checkpoint loads with ``strict=True``: the same
``state_dict`` keys, in the same order, with the same shapes. Only the structure that produces the
keys is copied; the encoder is described by a small table instead of the original's string DSL.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from depthlite.errors import WeightsError

__all__ = ["MidasSmall", "build_model"]

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


class ResidualConvUnit(nn.Module):
    """``x + conv2(relu(conv1(relu(x))))``, with biases (the decoder has no batch norm)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1, bias=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class FeatureFusionBlock(nn.Module):
    """Merge a decoder path with a skip connection, refine, upsample x2, project."""

    def __init__(self, channels: int, out_channels: int) -> None:
        super().__init__()
        # Registration order matters: it is the checkpoint's key order.
        self.out_conv = nn.Conv2d(channels, out_channels, 1, 1, 0, bias=True)
        self.resConfUnit1 = ResidualConvUnit(channels)
        self.resConfUnit2 = ResidualConvUnit(channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = x if skip is None else x + self.resConfUnit1(skip)
        out = self.resConfUnit2(out)
        out = F.interpolate(out, scale_factor=2.0, mode="bilinear", align_corners=True)
        return self.out_conv(out)


class Upsample2x(nn.Module):
    """Bilinear x2 with ``align_corners=False`` (the original ``Interpolate`` in output_conv)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


class Scratch(nn.Module):
    """The MiDaS decoder: reassemble convs, four fusion blocks and the output head."""

    def __init__(self, features: int = _FEATURES) -> None:
        super().__init__()
        widths = (features, features * 2, features * 4, features * 8)  # expand=True
        pairs = zip(_ENCODER_CHANNELS, widths, strict=True)
        rn = [nn.Conv2d(c, w, 3, 1, 1, bias=False) for c, w in pairs]
        self.layer1_rn, self.layer2_rn, self.layer3_rn, self.layer4_rn = rn
        self.refinenet4 = FeatureFusionBlock(widths[3], widths[2])
        self.refinenet3 = FeatureFusionBlock(widths[2], widths[1])
        self.refinenet2 = FeatureFusionBlock(widths[1], widths[0])
        self.refinenet1 = FeatureFusionBlock(widths[0], widths[0])
        self.output_conv = nn.Sequential(
            nn.Conv2d(features, features // 2, 3, 1, 1),
            Upsample2x(),
            nn.Conv2d(features // 2, 32, 3, 1, 1),
            nn.ReLU(),
            nn.Conv2d(32, 1, 1, 1, 0),
            nn.ReLU(),  # non_negative=True: the output is inverse depth, never below zero
        )


class MidasSmall(nn.Module):
    """``MidasNet_small``: input (N, 3, H, W) normalised RGB, H and W multiples of 32;
    output (N, H, W) relative inverse depth."""

    def __init__(self) -> None:
        super().__init__()
        self.pretrained = Encoder()
        self.scratch = Scratch()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        enc = self.pretrained
        layer1 = enc.layer1(x)
        layer2 = enc.layer2(layer1)
        layer3 = enc.layer3(layer2)
        layer4 = enc.layer4(layer3)
        s = self.scratch
        path = s.refinenet4(s.layer4_rn(layer4))
        path = s.refinenet3(path, s.layer3_rn(layer3))
        path = s.refinenet2(path, s.layer2_rn(layer2))
        path = s.refinenet1(path, s.layer1_rn(layer1))
        return torch.squeeze(s.output_conv(path), dim=1)

    def set_static_padding(self, static: bool) -> None:
        """Freeze TF "SAME" pads to their even-size values (for export with dynamic H, W)."""
        for module in self.modules():
            if isinstance(module, Conv2dSame):
                module.static_pad = static


_ARCHITECTURES = {"midas_small": MidasSmall}


def build_model(architecture: str, state_dict: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """Build a network by its spec ``architecture`` name in eval mode, optionally loaded
    (strictly) from ``state_dict``."""
    model = _ARCHITECTURES[architecture]()
    if state_dict is not None:
        _check_layout(model, state_dict, architecture)
        model.load_state_dict(state_dict, strict=True)
    return model.eval()


def _check_layout(model: nn.Module, state_dict: dict[str, torch.Tensor], architecture: str) -> None:
    """One readable line instead of torch's pages of key names for a foreign checkpoint."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    reshaped = [
        k
        for k, v in state_dict.items()
        if k in expected and tuple(v.shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or reshaped:
        first = (missing or unexpected or reshaped)[0]
        raise WeightsError(
            f"not a {architecture} checkpoint: {len(missing)} missing keys, {len(unexpected)} "
            f"unexpected, {len(reshaped)} with other shapes (first: {first!r})"
        )


def state_dict_layout(model: nn.Module) -> Sequence[tuple[str, tuple[int, ...], str]]:
    """``[key, shape, dtype]`` in order: what the conformance key list records."""
    return [
        (k, tuple(v.shape), str(v.dtype).removeprefix("torch."))
        for k, v in model.state_dict().items()
    ]
