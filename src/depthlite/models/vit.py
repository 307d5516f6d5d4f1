"""Vision Transformer pieces shared by DPT (and reusable by DINOv2), in plain ``torch.nn``.

The module names follow timm's ``vision_transformer.py`` (and DINOv2's own layers, which use the
same ones), so checkpoints load with ``strict=True``: a :class:`Block` is ``norm1``,
``attn.qkv``, ``attn.proj``, ``[ls1.gamma]``, ``norm2``, ``mlp.fc1``, ``mlp.fc2``,
``[ls2.gamma]``; LayerNorm epsilon 1e-6; the patch embedding is ``patch_embed.proj``.

Attention is computed either with ``F.scaled_dot_product_attention`` (what timm uses when it
can, ``fused_attn``) or as the explicit ``softmax(q k^T * scale) v``; both agree to float32
rounding. :func:`set_fused_attention` picks the form, e.g. for an ONNX export.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

__all__ = [
    "LN_EPS",
    "Attention",
    "Block",
    "LayerScale",
    "Mlp",
    "PatchEmbed",
    "resize_pos_embed",
    "set_fused_attention",
]

LN_EPS = 1e-6  # timm's and DINOv2's LayerNorm epsilon for ViTs


class Attention(nn.Module):
    """Multi-head self-attention with a fused ``qkv`` projection and an output ``proj``."""

    def __init__(
        self, dim: int, num_heads: int, qkv_bias: bool = True, proj_bias: bool = True
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not a multiple of num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.fused = True
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim, bias=proj_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        if self.fused:
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            attn = (q * self.scale) @ k.transpose(-2, -1)
            out = attn.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """``fc2(gelu(fc1(x)))`` with the exact (erf) GELU."""

    def __init__(self, in_features: int, hidden_features: int, bias: bool = True) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features, bias=bias)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, in_features, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class LayerScale(nn.Module):
    """Per-channel scale ``x * gamma`` (CaiT / DINOv2)."""

    def __init__(self, dim: int, init_value: float = 1e-5) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init_value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Block(nn.Module):
    """Pre-norm transformer block: ``x + ls1(attn(norm1(x)))``, ``x + ls2(mlp(norm2(x)))``.

    ``layer_scale`` adds ``ls1.gamma`` / ``ls2.gamma`` (DINOv2); without it ``ls1``/``ls2`` are
    identities with no keys (timm's ViT-B/L).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        *,
        qkv_bias: bool = True,
        layer_scale: bool = False,
        eps: float = LN_EPS,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias)
        self.ls1: nn.Module = LayerScale(dim) if layer_scale else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2: nn.Module = LayerScale(dim) if layer_scale else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    """Non-overlapping patches by a strided conv (``proj``); returns (N, H/p * W/p, dim)."""

    def __init__(self, patch_size: int, in_chans: int, dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, dim, patch_size, patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


def resize_pos_embed(
    pos_embed: torch.Tensor, grid_h: int | torch.Tensor, grid_w: int | torch.Tensor, prefix: int = 1
) -> torch.Tensor:
    """DPT's ``_resize_pos_embed``: keep the ``prefix`` (class) tokens, resize the square grid
    part to ``grid_h x grid_w`` bilinearly (``align_corners=False``, no antialias).

    Pass ``grid_h``/``grid_w`` computed from the input's shape (``x.shape[-2] // 16``): a traced
    ONNX graph then resizes to whatever size it is run at.
    """
    tokens, grid = pos_embed[:, :prefix], pos_embed[0, prefix:]
    # Constants of the checkpoint (a 24 x 24 grid for 384 px / 16), plain ints even when traced.
    side = math.isqrt(int(pos_embed.shape[1]) - prefix)
    dim = int(pos_embed.shape[2])
    grid = grid.reshape(1, side, side, dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(grid_h, grid_w), mode="bilinear", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, -1, dim)
    return torch.cat([tokens, grid], dim=1)


def set_fused_attention(model: nn.Module, fused: bool) -> None:
    """Use ``F.scaled_dot_product_attention`` (``True``) or the explicit softmax form in every
    :class:`Attention` of ``model``."""
    for module in model.modules():
        if isinstance(module, Attention):
            module.fused = fused
