"""The ONNX Runtime optimise recipe fuses explicit ViT attention into MultiHeadAttention; the
INT8 recipe splits it head by head."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from depthlite.models.vit import Attention
from depthlite.runtime.attention import fuse_attention, split_heads
from depthlite.runtime.onnx import optimize_model


class _Block(torch.nn.Module):
    """Patch tokens from an image, two attention blocks (the export's pattern), one map out."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Conv2d(3, 32, 8, stride=8)
        self.attn = torch.nn.ModuleList([Attention(32, 4), Attention(32, 4)])
        for attn in self.attn:
            attn.fused = False  # the original's explicit softmax, as our exports have it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.embed(x)
        b, c, h, w = t.shape
        tokens = t.flatten(2).transpose(1, 2)
        for attn in self.attn:
            tokens = tokens + attn(tokens)
        return tokens.transpose(1, 2).reshape(b, c, h, w).mean(1)


@pytest.fixture(scope="module")
def vit_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("vit") / "vit.onnx"
    with torch.no_grad():
        torch.onnx.export(
            _Block().eval(), (torch.zeros(1, 3, 64, 64),), str(path), input_names=["image"],
            output_names=["depth"], opset_version=17, dynamo=False,
            dynamic_axes={"image": {2: "height", 3: "width"}, "depth": {1: "h", 2: "w"}},
        )  # fmt: skip
    return path


def _ops(path: Path) -> list[str]:
    return [node.op_type for node in onnx.load(str(path)).graph.node]


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"image": x})[0])


def test_attention_is_fused_and_computes_the_same(vit_onnx: Path, tmp_path: Path) -> None:
    assert _ops(vit_onnx).count("Softmax") == 2
    fused = tmp_path / "fused.onnx"
    assert fuse_attention(vit_onnx, fused) == 2
    ops = _ops(fused)
    assert ops.count("MultiHeadAttention") == 2 and "Softmax" not in ops
    for shape in ((1, 3, 64, 64), (1, 3, 48, 96)):  # dynamic token counts
        x = np.random.default_rng(1).uniform(-2, 2, shape).astype(np.float32)
        want = _run(vit_onnx, x)
        np.testing.assert_allclose(_run(fused, x), want, rtol=0, atol=1e-5 * float(np.ptp(want)))


def test_attention_split_head_by_head_computes_the_same(vit_onnx: Path, tmp_path: Path) -> None:
    """One head's scores at a time (INT8 recipe 5); each head's products are those of the
    batched MatMul, so the outputs agree to float rounding (here: to the bit)."""
    split = tmp_path / "per-head.onnx"
    assert split_heads(vit_onnx, split) == 2
    graph = onnx.load(str(split)).graph
    ops = [node.op_type for node in graph.node]
    assert ops.count("Softmax") == 2 * 4 and ops.count("Concat") >= 2  # 2 blocks of 4 heads
    producers = {out: node for node in graph.node for out in node.output}
    scores = [producers[n.input[0]] for n in graph.node if n.op_type == "Softmax"]
    assert all(producers[i].op_type == "Split" for node in scores for i in node.input)
    for shape in ((1, 3, 64, 64), (1, 3, 48, 96)):
        x = np.random.default_rng(1).uniform(-2, 2, shape).astype(np.float32)
        want = _run(vit_onnx, x)
        np.testing.assert_allclose(_run(split, x), want, rtol=0, atol=1e-6 * float(np.ptp(want)))
    # Nothing to split once fused, or without attention.
    fused = tmp_path / "fused.onnx"
    fuse_attention(vit_onnx, fused)
    assert split_heads(fused, tmp_path / "none.onnx") == 0
    assert not (tmp_path / "none.onnx").exists()


def test_optimised_file_carries_the_fusion(vit_onnx: Path, tmp_path: Path) -> None:
    target = tmp_path / "optimized.onnx"
    optimize_model(vit_onnx, target)
    assert "MultiHeadAttention" in _ops(target)
    assert not list(tmp_path.glob(".fuse-*"))  # the intermediate file is gone


def test_graphs_without_the_pattern_are_left_alone(converted_onnx: Path, tmp_path: Path) -> None:
    target = tmp_path / "fused.onnx"
    assert fuse_attention(converted_onnx, target) == 0
    assert not target.exists()
