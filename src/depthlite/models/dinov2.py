"""DINOv2 ViT/14 backbone, as Depth Anything V2 builds it, in plain ``torch.nn``.

Depth Anything V2 (``depth_anything_v2/dinov2.py`` @ a561b84) builds Meta's DINOv2 vision
transformer with image size 518 (a 37 x 37 patch grid), patch 14, LayerScale, a GELU MLP, no
register tokens and no block chunking. This module reproduces that network: the same
``state_dict`` keys in the same order (``cls_token``, ``pos_embed``, ``mask_token``,
``patch_embed.proj``, ``blocks.{i}.{norm1,attn.qkv,attn.proj,ls1.gamma,norm2,mlp.fc1,mlp.fc2,
ls2.gamma}``, ``norm``) and the same arithmetic.

The one delicate part is the position embedding for other input sizes. The original resizes the
37 x 37 grid with bicubic ``F.interpolate`` given a **scale factor** ``(n + 0.1) / 37`` per axis
(``n`` = patches along that axis), not an output size: the output has ``n`` cells but the sampling
grid follows the scale, so it differs from resizing to size ``n``. At exactly 37 x 37 (a square
518 x 518 input) the table is used as stored. Eager execution follows that formula to the bit.
When traced (``torch.onnx.export``, ``torch.jit.trace``) the same resize is written as graph
arithmetic on the input's shape (separable bicubic matrices built from the scale factors), so
one exported file serves every input size, in ONNX Runtime and OpenVINO alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from depthlite.models.vit import LN_EPS, Block, PatchEmbed
from depthlite.models.vit import set_fused_attention as _set_fused_attention

__all__ = ["DINOV2_CONFIGS", "DINOv2", "DINOv2Config"]


@dataclass(frozen=True)
class DINOv2Config:
    """One DINOv2 size: width, depth, heads."""

    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float = 4.0


# vitg (embed 1536, 40 blocks, SwiGLU FFN) is not built: Depth Anything V2 Giant was never released.
DINOV2_CONFIGS: dict[str, DINOv2Config] = {
    "vits": DINOv2Config(embed_dim=384, depth=12, num_heads=6),
    "vitb": DINOv2Config(embed_dim=768, depth=12, num_heads=12),
    "vitl": DINOv2Config(embed_dim=1024, depth=24, num_heads=16),
}


_CUBIC_A = -0.75  # PyTorch's (and OpenCV's) bicubic kernel parameter


def _bicubic_matrix(
    size: torch.Tensor, source: int, inverse: torch.Tensor, device: torch.device
) -> torch.Tensor:
    """``(size, source)`` matrix of PyTorch's bicubic resize along one axis, for a scale factor
    ``1 / inverse``.

    Row ``i`` samples source position ``(i + 0.5) / scale - 0.5`` with the cubic convolution
    kernel (a = -0.75) on the four neighbours, clamping indices at the borders: what
    ``F.interpolate(mode="bicubic", align_corners=False, scale_factor=scale)`` computes, in the
    same float order for the weights. ``size`` and ``inverse`` are tensors, so a trace keeps
    them as graph values (``Range`` and elementwise ops, which every runtime executes the same
    way). ``inverse`` = 1 gives the identity matrix.
    """
    # As PyTorch's area_pixel_compute_source_index: the reciprocal of the scale times the centre.
    src = inverse * (torch.arange(size, dtype=torch.float32, device=device) + 0.5) - 0.5
    base = torch.floor(src)
    t = src - base
    a = _CUBIC_A

    def near(x: torch.Tensor) -> torch.Tensor:  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x: torch.Tensor) -> torch.Tensor:  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    columns = torch.arange(source, dtype=torch.float32, device=device)
    matrix = torch.zeros((), device=device)
    for offset, weight in ((-1, far(t + 1)), (0, near(t)), (1, near(1 - t)), (2, far(2 - t))):
        index = torch.clamp(base + offset, 0, source - 1)
        hit = (index.unsqueeze(1) == columns.unsqueeze(0)).to(torch.float32)
        matrix = matrix + weight.unsqueeze(1) * hit
    return matrix


class DINOv2(nn.Module):
    """DINOv2 vision transformer (``DinoVisionTransformer`` as Depth Anything V2 configures it).

    Args:
        encoder: ``"vits"``, ``"vitb"`` or ``"vitl"``.
        img_size: training image size; the position table holds ``(img_size / patch)^2 + 1``
            entries (518 / 14 = 37 per side).
        patch_size: 14.
        num_register_tokens: extra learned tokens after the class token (0 in Depth Anything V2).
        interpolate_offset: the position-embedding resize offset (0.1).
    """

    def __init__(
        self,
        encoder: str = "vits",
        *,
        img_size: int = 518,
        patch_size: int = 14,
        num_register_tokens: int = 0,
        interpolate_offset: float = 0.1,
    ) -> None:
        super().__init__()
        if encoder not in DINOV2_CONFIGS:
            raise ValueError(f"unknown DINOv2 encoder {encoder!r}; one of {sorted(DINOV2_CONFIGS)}")
        config = DINOV2_CONFIGS[encoder]
        dim = config.embed_dim
        grid = img_size // patch_size
        self.encoder = encoder
        self.embed_dim = dim
        self.patch_size = patch_size
        self.grid_size = grid  # the position table's side (static, for a clean trace)
        self.num_register_tokens = num_register_tokens
        self.interpolate_offset = interpolate_offset
        self.export_mode = False

        # Registration order = state_dict order: cls_token, pos_embed, (register_tokens),
        # mask_token, then the children.
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, dim))
        self.register_tokens = (
            nn.Parameter(torch.zeros(1, num_register_tokens, dim)) if num_register_tokens else None
        )
        self.mask_token = nn.Parameter(torch.zeros(1, dim))  # training only; kept for the keys
        self.patch_embed = PatchEmbed(patch_size, 3, dim)
        # LayerScale blocks (the original initialises gamma to 1.0; every checkpoint sets it).
        self.blocks = nn.ModuleList(
            Block(dim, config.num_heads, config.mlp_ratio, layer_scale=True)
            for _ in range(config.depth)
        )
        self.norm = nn.LayerNorm(dim, eps=LN_EPS)
        self.set_fused_attention(False)  # the original's explicit softmax, bit for bit

    def set_export_mode(self, enabled: bool) -> None:
        """Run the graph formulation of the position-embedding resize in eager mode too.

        Not needed for ``torch.onnx.export`` / ``torch.jit.trace``: tracing selects it by itself.
        Eager results then match the original to float rounding (below 1e-6 of the table's
        range) instead of bit for bit; this is for checking the traced arithmetic in torch.
        """
        self.export_mode = bool(enabled)

    def set_fused_attention(self, enabled: bool) -> None:
        """``F.scaled_dot_product_attention`` (``True``) or the original's explicit
        ``softmax(q * scale @ k^T) @ v`` (``False``, the default: what the original computes
        without xFormers, i.e. on CPU) in every block."""
        _set_fused_attention(self, enabled)

    def _graph_mode(self) -> bool:
        return self.export_mode or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()

    def interpolate_pos_encoding(self, tokens: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """The position table for ``image`` (N, 3, H, W), whose patch tokens (with the class
        token first) are ``tokens``: ``(1, 1 + (H // p) * (W // p), C)``."""
        pos_embed = self.pos_embed.float()
        side = self.grid_size
        stored = side * side
        dim = self.embed_dim
        class_pos = pos_embed[:, :1]
        grid = pos_embed[:, 1:].reshape(1, side, side, dim).permute(0, 3, 1, 2)
        height, width = image.shape[-2], image.shape[-1]

        if self._graph_mode():
            # The same resize as graph arithmetic on the input's shape: separable bicubic
            # matrices (not ONNX Resize: OpenVINO 2026.4 skips an axis whose size is unchanged,
            # ignoring its scale, e.g. the 37 rows of a 518-pixel side).
            shape = torch._shape_as_tensor(image)[2:]
            counts = torch.div(shape, self.patch_size, rounding_mode="floor")
            keep = (counts[0] * counts[1] == stored) & (shape[0] == shape[1])
            # 1 / scale factor as PyTorch gets it: in double, rounded to float once.
            factor = (counts.to(torch.float64) + self.interpolate_offset) / math.sqrt(stored)
            inverse = (1.0 / factor).to(torch.float32)
            inverse = torch.where(keep, torch.ones_like(inverse), inverse)
            rows = _bicubic_matrix(counts[0], side, inverse[0], grid.device)
            cols = _bicubic_matrix(counts[1], side, inverse[1], grid.device)
            patch_pos = rows @ grid @ cols.transpose(0, 1)
        else:
            # The original's test: same token count and a square input -> the table as stored.
            if tokens.shape[1] - 1 == stored and height == width:
                return self.pos_embed
            rows = height // self.patch_size + self.interpolate_offset
            cols = width // self.patch_size + self.interpolate_offset
            sqrt_n = math.sqrt(stored)
            patch_pos = F.interpolate(
                grid,
                scale_factor=(float(rows) / sqrt_n, float(cols) / sqrt_n),
                mode="bicubic",
                antialias=False,
            )
            if patch_pos.shape[-2:] != (int(rows), int(cols)):
                raise AssertionError(f"resized position grid {tuple(patch_pos.shape[-2:])}")
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, -1, dim)
        return torch.cat((class_pos, patch_pos), dim=1).to(tokens.dtype)

    def prepare_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Patch tokens with the class token first and position embeddings added (then the
        register tokens, if any, after the class token)."""
        tokens = self.patch_embed(x)
        tokens = torch.cat((self.cls_token.expand(tokens.shape[0], -1, -1), tokens), dim=1)
        tokens = tokens + self.interpolate_pos_encoding(tokens, x)
        if self.register_tokens is not None:
            registers = self.register_tokens.expand(tokens.shape[0], -1, -1)
            tokens = torch.cat((tokens[:, :1], registers, tokens[:, 1:]), dim=1)
        return tokens

    def get_intermediate_layers(
        self,
        x: torch.Tensor,
        n: int | Sequence[int] = 1,
        *,
        return_class_token: bool = False,
        norm: bool = True,
    ) -> tuple[torch.Tensor, ...] | tuple[tuple[torch.Tensor, torch.Tensor], ...]:
        """Outputs of the blocks ``n`` (indices, or the last ``n`` if an int), each normalised by
        ``norm``; patch tokens ``(N, HW, C)``, with the class token ``(N, C)`` paired in if
        ``return_class_token``."""
        depth = len(self.blocks)
        wanted = set(range(depth - n, depth) if isinstance(n, int) else n)
        if not wanted <= set(range(depth)):
            raise ValueError(f"block indices {sorted(wanted)} outside 0..{depth - 1}")
        tokens = self.prepare_tokens(x)
        outputs: list[torch.Tensor] = []
        for i, block in enumerate(self.blocks):
            tokens = block(tokens)
            if i in wanted:
                outputs.append(tokens)
        if norm:
            outputs = [self.norm(out) for out in outputs]
        first_patch = 1 + self.num_register_tokens
        patches = tuple(out[:, first_patch:] for out in outputs)
        if return_class_token:
            return tuple(zip(patches, (out[:, 0] for out in outputs), strict=True))
        return patches

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The normalised class token ``(N, C)`` (DINOv2's ``head`` is an identity)."""
        tokens = self.prepare_tokens(x)
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)[:, 0]
