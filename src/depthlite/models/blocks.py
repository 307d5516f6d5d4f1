"""The decoder blocks every MiDaS-style network shares, in plain ``torch.nn``.

Counterparts of isl-org/MiDaS ``midas/blocks.py`` (also used, unchanged, by Depth Anything V2's
DPT head): the same module names and registration order, hence the same ``state_dict`` keys
(``resConfUnit1.conv1.weight``, ``out_conv.weight``, ...).

=============================  ===============================  ==============================
original                       here                             used by
=============================  ===============================  ==============================
``ResidualConvUnit``           :class:`ResidualConvUnit`        MidasNet (v2.1 large)
``FeatureFusionBlock``         :class:`FeatureFusionBlock`      MidasNet (v2.1 large)
``ResidualConvUnit_custom``    :class:`ResidualConvUnitCustom`  MidasNet_small, DPT, DA2
``FeatureFusionBlock_custom``  :class:`FeatureFusionBlockCustom`  MidasNet_small, DPT, DA2
``Interpolate``                :class:`Interpolate`             every output head
``_make_scratch``              :func:`make_scratch`             every decoder
=============================  ===============================  ==============================

Nothing here holds state beyond the convolutions' parameters (and batch norms when ``bn``), so
the blocks can be built on the ``meta`` device and loaded with ``assign=True``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from depthlite.models.banded import banded_upsample_head, in_graph_mode

__all__ = [
    "FeatureFusionBlock",
    "FeatureFusionBlockCustom",
    "Interpolate",
    "ResidualConvUnit",
    "ResidualConvUnitCustom",
    "Scratch",
    "make_scratch",
]


class Interpolate(nn.Module):
    """``F.interpolate`` by a fixed scale factor, as a module (no parameters)."""

    def __init__(self, scale_factor: float, mode: str, align_corners: bool = False) -> None:
        super().__init__()
        self.scale_factor = scale_factor
        self.mode = mode
        self.align_corners = align_corners

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(
            x, scale_factor=self.scale_factor, mode=self.mode, align_corners=self.align_corners
        )

    def extra_repr(self) -> str:
        return (
            f"scale_factor={self.scale_factor}, mode={self.mode!r}, "
            f"align_corners={self.align_corners}"
        )


class ResidualConvUnit(nn.Module):
    """MidasNet's residual unit: ``relu(x) + conv2(relu(conv1(relu(x))))``.

    The skip adds ``relu(x)``, not ``x``: the original applies an in-place ReLU to its input
    before the convolutions and adds that (now rectified) input back. The official v2.1 large
    weights were trained and are evaluated that way, so this reproduces it, without mutating
    the caller's tensor.
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, 1, 1, bias=True)
        self.conv2 = nn.Conv2d(features, features, 3, 1, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        return self.conv2(F.relu(self.conv1(x))) + x


class FeatureFusionBlock(nn.Module):
    """MidasNet's fusion block: ``[x + unit1(skip)]``, ``unit2``, bilinear x2 (align_corners).

    No output projection (the large MidasNet keeps ``features`` channels on every level).
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)

    align_corners = True
    out_layers: tuple[nn.Module, ...] = ()  # after the upsampling: none here

    def fuse(self, *xs: torch.Tensor) -> torch.Tensor:
        """The block before its upsampling."""
        out = xs[0]
        if len(xs) == 2:
            out = out + self.resConfUnit1(xs[1])
        return self.resConfUnit2(out)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = self.fuse(*xs)
        return F.interpolate(out, scale_factor=2.0, mode="bilinear", align_corners=True)


class ResidualConvUnitCustom(nn.Module):
    """``x + [bn2](conv2(act([bn1](conv1(act(x))))))`` (original ``ResidualConvUnit_custom``).

    ``activation`` is a parameter-free module, applied as given (the original networks pass
    ``nn.ReLU(False)``; the default is the same).
    """

    def __init__(self, features: int, activation: nn.Module | None = None, bn: bool = False):
        super().__init__()
        self.bn = bn
        # Registration order matters: it is the checkpoint's key order (conv1, conv2, bn1, bn2).
        self.conv1 = nn.Conv2d(features, features, 3, 1, 1, bias=True)
        self.conv2 = nn.Conv2d(features, features, 3, 1, 1, bias=True)
        if bn:
            self.bn1 = nn.BatchNorm2d(features)
            self.bn2 = nn.BatchNorm2d(features)
        self.activation = nn.ReLU() if activation is None else activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.activation(x))
        if self.bn:
            out = self.bn1(out)
        out = self.conv2(self.activation(out))
        if self.bn:
            out = self.bn2(out)
        return out + x


class FeatureFusionBlockCustom(nn.Module):
    """The fusion block of MidasNet_small, DPT and Depth Anything V2 (original
    ``FeatureFusionBlock_custom``).

    ``forward(x)`` or ``forward(x, skip)``: ``[x + unit1(skip)]``, ``unit2``, bilinear resize,
    then a 1x1 ``out_conv`` (to ``features // 2`` channels when ``expand``). The resize goes to
    ``size=`` given at the call, else to the constructor's ``size``, else by a factor of 2.
    A ``size`` taken from another tensor's ``.shape[2:]`` stays dynamic in an ONNX export.
    """

    def __init__(
        self,
        features: int,
        activation: nn.Module | None = None,
        *,
        deconv: bool = False,
        bn: bool = False,
        expand: bool = False,
        align_corners: bool = True,
        size: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.deconv = deconv  # accepted for signature parity; the original ignores it too
        self.align_corners = align_corners
        self.expand = expand
        out_features = features // 2 if expand else features
        activation = nn.ReLU() if activation is None else activation
        # Registration order matters: it is the checkpoint's key order.
        self.out_conv = nn.Conv2d(features, out_features, 1, 1, 0, bias=True)
        self.resConfUnit1 = ResidualConvUnitCustom(features, activation, bn)
        self.resConfUnit2 = ResidualConvUnitCustom(features, activation, bn)
        self.size = None if size is None else tuple(size)

    @property
    def out_layers(self) -> tuple[nn.Module, ...]:
        """What follows the upsampling."""
        return (self.out_conv,)

    def fuse(self, *xs: torch.Tensor) -> torch.Tensor:
        """The block before its upsampling."""
        out = xs[0]
        if len(xs) == 2:
            out = out + self.resConfUnit1(xs[1])
        return self.resConfUnit2(out)

    def forward(self, *xs: torch.Tensor, size: Sequence[int] | None = None) -> torch.Tensor:
        out = self.fuse(*xs)
        if size is None:
            size = self.size
        if size is None:
            out = F.interpolate(
                out, scale_factor=2.0, mode="bilinear", align_corners=self.align_corners
            )
        else:
            out = F.interpolate(
                out, size=tuple(size), mode="bilinear", align_corners=self.align_corners
            )
        return self.out_conv(out)


class Scratch(nn.Module):
    """The decoder container (``scratch``): ``layer1_rn..layer4_rn`` 3x3 convs (no bias) that
    bring each encoder level to the decoder width. The networks attach their fusion blocks and
    output head after these, as the original does (which fixes the key order)."""

    def __init__(
        self, in_shape: Sequence[int], out_shape: int, groups: int = 1, expand: bool = False
    ) -> None:
        super().__init__()
        levels = len(in_shape)
        widths = [out_shape * (2**i if expand else 1) for i in range(levels)]
        for i, (cin, cout) in enumerate(zip(in_shape, widths, strict=True)):
            conv = nn.Conv2d(cin, cout, 3, 1, 1, bias=False, groups=groups)
            self.add_module(f"layer{i + 1}_rn", conv)

    def decode(self, layers: Sequence[torch.Tensor], *, sized: bool = False) -> torch.Tensor:
        """The MiDaS / DPT decoder on four encoder levels -> (N, H, W).

        ``refinenet4`` down to ``refinenet1`` (attached by the network), then ``output_conv``.
        ``sized``: each fusion upsamples to the next level's size (DPT) instead of by 2 (MiDaS).
        """
        rn = [getattr(self, f"layer{i}_rn")(x) for i, x in enumerate(layers, start=1)]
        path = rn[3]
        for level in (4, 3, 2):
            block = getattr(self, f"refinenet{level}")
            inputs = (path,) if level == 4 else (path, rn[level - 1])
            path = block(*inputs, size=rn[level - 2].shape[2:]) if sized else block(*inputs)
        head = self.output_conv
        if not in_graph_mode():
            return torch.squeeze(head(self.refinenet1(path, rn[0])), dim=1)
        # Exported graphs: the two full-resolution stages in row bands (models/banded.py):
        # refinenet1's upsampling with the first head convolution, then the head's own.
        out = banded_fusion_tail(self.refinenet1, (path, rn[0]), head[0])
        upsample: Interpolate = head[1]
        out = banded_upsample_head(
            out,
            None,
            list(head)[2:],
            align_corners=upsample.align_corners,
            scale_factor=upsample.scale_factor,
        )
        return torch.squeeze(out, dim=1)


def banded_fusion_tail(
    block: FeatureFusionBlock | FeatureFusionBlockCustom,
    inputs: tuple[torch.Tensor, ...],
    conv: nn.Module,
) -> torch.Tensor:
    """``conv(block(*inputs))`` for the last fusion block (upsampling by 2), in row bands."""
    return banded_upsample_head(
        block.fuse(*inputs),
        None,
        [*block.out_layers, conv],
        align_corners=block.align_corners,
        scale_factor=2.0,
    )


def make_scratch(
    in_shape: Sequence[int], out_shape: int, groups: int = 1, expand: bool = False
) -> Scratch:
    """The original ``_make_scratch``: 3 or 4 levels; ``expand`` doubles the width per level."""
    if len(in_shape) not in (3, 4):
        raise ValueError(f"a scratch has 3 or 4 levels, not {len(in_shape)}")
    return Scratch(in_shape, out_shape, groups=groups, expand=expand)
