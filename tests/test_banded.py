"""The banded full-resolution head computes what the unbanded modules compute."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from depthlite.models.banded import banded_upsample_head


def _head(cin: int) -> list[nn.Module]:
    torch.manual_seed(0)
    return [nn.Conv2d(cin, cin, 1), nn.Conv2d(cin, 8, 3, 1, 1), nn.ReLU(), nn.Conv2d(8, 1, 1)]


@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.parametrize("grid", [(37, 66), (24, 40), (13, 9)])
def test_bands_by_two_match_interpolate_then_head(
    align_corners: bool, grid: tuple[int, int]
) -> None:
    head = _head(16)
    x = torch.randn(1, 16, *grid)
    with torch.no_grad():
        up = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=align_corners)
        want = nn.Sequential(*head)(up)
        got = banded_upsample_head(
            x, None, head, align_corners=align_corners, scale_factor=2.0, bands=8
        )
    assert got.shape == want.shape
    # Float rounding only: the same weights, summed in another order.
    assert float((got - want).abs().max()) < 1e-5 * float(want.max() - want.min())


@pytest.mark.parametrize("size", [(518, 924), (100, 77), (9, 9)])
def test_bands_to_a_size_match_interpolate_then_head(size: tuple[int, int]) -> None:
    head = _head(16)[1:]
    x = torch.randn(1, 16, 37, 66)
    with torch.no_grad():
        up = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        want = nn.Sequential(*head)(up)
        got = banded_upsample_head(x, size, head, align_corners=True)
    assert got.shape == want.shape
    assert float((got - want).abs().max()) < 1e-5 * float(want.max() - want.min())


def test_a_head_without_one_padded_3x3_convolution_is_refused() -> None:
    with pytest.raises(TypeError, match="one 3x3 padded convolution"):
        banded_upsample_head(
            torch.zeros(1, 4, 8, 8), None, [nn.Conv2d(4, 1, 1)], align_corners=True,
            scale_factor=2.0,
        )  # fmt: skip
