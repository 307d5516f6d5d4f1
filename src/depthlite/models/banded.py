"""The output head's last, full-resolution stage computed in row bands (exported graphs only).

Every network here ends the same way: bilinear upsampling (by 2, or to the input size) of a
many-channel feature map to the network's input size, a 3x3 convolution, then pointwise layers
down to one channel. Computed whole, the upsampled map and the convolution's output are the
largest tensors of the run (DPT: 128 channels at the input size, ~130 MB for a 1080p photo;
Depth Anything V2: 32 channels at 518 x 924, ~60 MB each, with their layout copies), and
they set the peak memory. In bands of output rows, only one band's tensors are alive at a time;
the result is the same arithmetic (the rows' lerp weights as PyTorch's kernel computes them,
the width by the runtime's resize) apart from float rounding, and the one-channel bands are
concatenated at the end. Gathering only rows keeps it as fast as the unbanded graph (Depth
Anything V2 Small at 518x686: 1837 vs 1833 ms; gathering columns too cost 19 %).

Eager mode keeps ``F.interpolate`` and the modules as they are: that is the reference the
exported graph is checked against (1e-4 of the output range, see models/convert.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

__all__ = ["BANDS", "banded_upsample_head", "in_graph_mode"]

# 8 bands: the head's peak tensors shrink to an eighth; the 3x3 convolution recomputes two
# halo rows per band (4 % more of that layer at 384 rows).
BANDS = 8


def in_graph_mode() -> bool:
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()


def _lerp_table(
    in_size: torch.Tensor,
    out_size: torch.Tensor,
    align_corners: bool,
    scale_factor: float | None,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source rows and weights, as PyTorch's CPU kernel computes them (in float32):
    ``align_corners``: ``src = (in - 1) / (out - 1) * dst``; otherwise
    ``src = max(0, scale * (dst + 0.5) - 0.5)`` with ``scale = 1 / scale_factor`` when one is
    given (PyTorch uses it rather than the sizes), else ``in / out``. Then ``i0 = floor(src)``,
    ``i1 = i0 + 1`` unless ``i0`` is the last row, ``w1 = src - i0``, ``w0 = 1 - w1``."""
    dst = torch.arange(out_size, device=device).to(torch.float32)
    if align_corners:
        denominator = torch.clamp(out_size - 1, min=1).to(torch.float32)
        src = (in_size - 1).to(torch.float32) / denominator * dst
    else:
        if scale_factor is not None:
            scale = torch.tensor(1.0 / scale_factor, dtype=torch.float32)
        else:
            scale = in_size.to(torch.float32) / out_size.to(torch.float32)
        src = torch.clamp(scale * (dst + 0.5) - 0.5, min=0.0)
    i0 = src.to(torch.int64)  # src >= 0: truncation is floor
    i1 = torch.minimum(i0 + 1, in_size - 1)
    w1 = src - i0.to(torch.float32)
    return i0, i1, 1.0 - w1, w1


def _pointwise(layer: nn.Module) -> bool:
    if isinstance(layer, nn.Conv2d):
        return layer.kernel_size == (1, 1) and layer.padding == (0, 0) and layer.stride == (1, 1)
    return not any(True for _ in layer.parameters())  # activations, Identity


def banded_upsample_head(
    x: torch.Tensor,
    size: tuple[torch.Tensor | int, torch.Tensor | int] | None,
    head: Sequence[nn.Module],
    *,
    align_corners: bool,
    scale_factor: float | None = None,
    bands: int = BANDS,
) -> torch.Tensor:
    """``head(F.interpolate(x, size, mode="bilinear", ...))`` in row bands.

    ``head`` holds exactly one 3x3 convolution (padding 1, stride 1); the layers before and
    after it work pixel by pixel (activations, 1x1 convolutions). ``size=None``: the input's
    size times the integer ``scale_factor``. Output: (N, C_out, *size).
    """
    spatial = [i for i, layer in enumerate(head) if not _pointwise(layer)]
    conv = head[spatial[0]] if len(spatial) == 1 else None
    if not isinstance(conv, nn.Conv2d) or conv.kernel_size != (3, 3) or conv.padding != (1, 1):
        raise TypeError(f"a banded head has one 3x3 padded convolution: {list(head)}")
    before, after = head[: spatial[0]], head[spatial[0] + 1 :]
    shape = torch._shape_as_tensor(x)
    if size is None:
        if scale_factor is None or scale_factor != int(scale_factor):
            raise ValueError("size=None needs an integer scale_factor")
        height, width = shape[2] * int(scale_factor), shape[3] * int(scale_factor)
    else:
        height = torch.as_tensor(size[0], dtype=torch.int64)
        width = torch.as_tensor(size[1], dtype=torch.int64)
    i0, i1, h0, h1 = _lerp_table(shape[2], height, align_corners, scale_factor, x.device)
    outputs = []
    for band in range(bands):
        # Output rows [r0, r1) need upsampled rows [r0 - 1, r1 + 1): the convolution's halo.
        r0 = torch.div(height * band, bands, rounding_mode="floor")
        r1 = torch.div(height * (band + 1), bands, rounding_mode="floor")
        lo = torch.clamp(r0 - 1, min=0)
        hi = torch.minimum(r1 + 1, height)
        rows = torch.arange(lo, hi, device=x.device)
        a0 = h0.index_select(0, rows).view(1, 1, -1, 1)
        a1 = h1.index_select(0, rows).view(1, 1, -1, 1)
        # Rows by gathering (contiguous), then the width by the runtime's own resize, whose
        # unchanged row axis is an identity (the order of the two lerps differs from
        # PyTorch's only in float rounding).
        up = a0 * torch.index_select(x, 2, i0.index_select(0, rows))
        up = up + a1 * torch.index_select(x, 2, i1.index_select(0, rows))
        up = F.interpolate(up, size=(hi - lo, width), mode="bilinear", align_corners=align_corners)
        for layer in before:
            up = layer(up)
        # The image's own top and bottom edges get the convolution's zero padding.
        top, bottom = int(band == 0), int(band == bands - 1)
        up = F.pad(up, (1, 1, top, bottom))
        out = F.conv2d(up, conv.weight, conv.bias)
        for layer in after:
            out = layer(out)
        outputs.append(out)
    return torch.cat(outputs, dim=2)
