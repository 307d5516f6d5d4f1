"""Explicit ViT attention rewritten as ONNX Runtime's MultiHeadAttention (the optimise recipe).

Our exports keep the original's ``softmax((q * s) @ k^T) @ v``, which ONNX Runtime's optimiser
does not fuse for these graphs; the rewrite runs before ENABLE_ALL, in a child process
(``fuse_in_subprocess``), and is checked against the unfused graph.
"""

from __future__ import annotations

import importlib.util
import logging
import mmap
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import onnxruntime as ort

__all__ = ["FUSE_TOLERANCE", "HEADS_PREFIX", "fuse_attention", "fuse_in_subprocess", "split_heads"]

logger = logging.getLogger(__name__)

# Largest |fused - unfused| allowed, as a fraction of the output range (the export's tolerance).
FUSE_TOLERANCE = 1e-4
# The names of the nodes split_heads makes start with this (the INT8 recipe keeps them float).
HEADS_PREFIX = "depthlite_heads"


def _has_softmax(path: Path) -> bool:
    """Whether the file may hold attention: the op name appears in its bytes (cheap, no onnx)."""
    if path.stat().st_size == 0:  # mmap refuses empty files; loading it says what is wrong
        return False
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return data.find(b"Softmax") >= 0


def fuse_in_subprocess(source: Path, target: Path) -> bool:
    """``fuse_attention`` in a child process; True when it wrote a fused, verified ``target``.

    A child, because the rewrite needs the ``onnx`` package and holds the whole protobuf in
    Python: neither should stay in a serving process. Without ``onnx`` (a torch-free install
    running an official export) or without attention, the graph is optimised as it is.
    """
    if importlib.util.find_spec("onnx") is None or not _has_softmax(source):
        return False
    code = "import sys; from depthlite.runtime.attention import _fuse_main; sys.exit(_fuse_main())"
    done = subprocess.run(
        [sys.executable, "-c", code, str(source), str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        logger.warning(
            "attention not fused in %s (optimising it as it is): %s",
            source.name,
            done.stderr.strip()[-500:],
        )
        return False
    return target.is_file()


def _fuse_main() -> int:
    source, target = (Path(arg) for arg in sys.argv[1:3])
    count = fuse_attention(source, target)
    return 0 if count else 3


def fuse_attention(source: Path, target: Path) -> int:
    """Rewrite each explicit ``softmax((q * s) @ k^T) @ v`` block as one MultiHeadAttention.

    The pattern is what our export of timm's and DINOv2's ``Attention`` gives (``qkv`` linear,
    reshape to (B, N, 3, H, D), permute, unbind). ONNX Runtime's CPU MultiHeadAttention runs
    flash attention and never materialises the (H, N, N) scores: at 2,400 tokens (Depth
    Anything V2 on a 1080p photo) that is 140 MB per head group and block for ViT-S, 380 MB
    for ViT-L, twice (scores and probabilities). Returns how many blocks were fused; the file
    is written only when some were and the fused graph reproduces the original within
    ``FUSE_TOLERANCE`` of the output range on a random input.
    """
    import onnx

    model = onnx.load(str(source))
    count = _fuse_graph(model.graph)
    if not count:
        return 0
    if not any(op.domain == "com.microsoft" for op in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
    data = model.SerializeToString()
    del model
    _check_fused(source, data)
    target.write_bytes(data)
    logger.info("fused %d attention blocks of %s", count, source.name)
    return count


def _constant(graph: Any, name: str, producers: dict[str, Any]) -> Any:
    """The value of a Constant node's output or an initializer, else None."""
    from onnx import numpy_helper

    node = producers.get(name)
    if node is not None and node.op_type == "Constant":
        for attr in node.attribute:
            if attr.name == "value":
                return numpy_helper.to_array(attr.t)
        return None
    for init in graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    return None


def _attr(node: Any, name: str) -> Any:
    from onnx import helper

    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), None)


def _heads_of(reshape: Any, graph: Any, producers: dict[str, Any]) -> tuple[int, int] | None:
    """(heads, head size) from the shape of the (B, N, 3, H, D) reshape, when constant there."""
    import numpy as np

    shape = _constant(graph, reshape.input[1], producers)
    if shape is not None and shape.size == 5:
        parts = [int(v) for v in shape]
    else:
        concat = producers.get(reshape.input[1])
        if concat is None or concat.op_type != "Concat" or len(concat.input) != 5:
            return None
        parts = []
        for name in concat.input[2:]:
            value = _constant(graph, name, producers)
            if value is None or value.size != 1:
                return None
            parts.append(int(np.asarray(value).reshape(())))
        parts = [0, 0, *parts]
    if parts[2] != 3 or parts[3] <= 0 or parts[4] <= 0:
        return None
    return parts[3], parts[4]


def _match_attention(
    softmax: Any, graph: Any, producers: dict[str, Any], consumers: dict[str, list[Any]]
) -> tuple[str, int, int, float, Any] | None:
    """(qkv tensor, heads, head size, scale, final reshape) of one attention block, or None."""
    import numpy as np

    def only_consumer(name: str, op: str) -> Any:
        users = consumers.get(name, [])
        return users[0] if len(users) == 1 and users[0].op_type == op else None

    def producer(name: str, op: str) -> Any:
        node = producers.get(name)
        return node if node is not None and node.op_type == op else None

    if _attr(softmax, "axis") not in (-1, 3):
        return None
    scores = producer(softmax.input[0], "MatMul")
    weighted = only_consumer(softmax.output[0], "MatMul")
    if scores is None or weighted is None or weighted.input[0] != softmax.output[0]:
        return None
    back = only_consumer(weighted.output[0], "Transpose")
    merge = only_consumer(back.output[0], "Reshape") if back is not None else None
    if merge is None or list(_attr(back, "perm") or []) != [0, 2, 1, 3]:
        return None
    scaled, k_t = producer(scores.input[0], "Mul"), producer(scores.input[1], "Transpose")
    if scaled is None or k_t is None or list(_attr(k_t, "perm") or []) != [0, 1, 3, 2]:
        return None
    scale = _constant(graph, scaled.input[1], producers)
    if scale is None or scale.size != 1:
        return None
    squeezes = [producer(n, "Squeeze") for n in (scaled.input[0], k_t.input[0], weighted.input[1])]
    if any(s is None for s in squeezes):
        return None
    split = producer(squeezes[0].input[0], "Split")  # type: ignore[union-attr]
    if split is None or (_attr(split, "axis") or 0) != 0 or len(split.output) != 3:
        return None
    if [s.input[0] for s in squeezes] != list(split.output):  # type: ignore[union-attr]
        return None
    permute = producer(split.input[0], "Transpose")
    if permute is None or list(_attr(permute, "perm") or []) != [2, 0, 3, 1, 4]:
        return None
    reshape = producer(permute.input[0], "Reshape")
    heads = _heads_of(reshape, graph, producers) if reshape is not None else None
    if heads is None:
        return None
    return reshape.input[0], *heads, float(np.asarray(scale).reshape(())), merge


def split_heads(source: Path, target: Path) -> int:
    """Rewrite each explicit attention block of ``source`` to compute its heads one by one.

    ``softmax((q * s) @ k^T) @ v`` on (B, H, N, D) tensors holds every head's scores at
    once: DPT-Hybrid at 384x672, 12 x 1009^2 floats, 49 MB, twice (scores, probabilities).
    Split, a run holds one head's 4 MB at a time, and each head's products are the ones the
    batched MatMul computed (DPT-Hybrid INT8: the same output to the bit). For graphs that
    keep explicit attention: the INT8 recipe's (the fused MultiHeadAttention has no integer
    kernel, and its CPU buffers were larger than the scores there, docs/benchmarks.md).
    Returns how many blocks were rewritten; ``target`` is written only when some were.
    """
    if not _has_softmax(source):
        return 0
    import onnx

    model = onnx.load(str(source))
    count = _split_graph(model.graph)
    if count:
        onnx.save(model, str(target))
    return count


def _links(graph: Any) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """(producer of each tensor, consumers of each tensor)."""
    producers = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    return producers, consumers


def _matched_blocks(
    graph: Any, producers: dict[str, Any], consumers: dict[str, list[Any]]
) -> Iterator[tuple[Any, tuple[str, int, int, float, Any]]]:
    """Each standard Softmax that is one attention block, with ``_match_attention``'s facts."""
    for node in graph.node:
        if node.op_type == "Softmax" and node.domain in ("", "ai.onnx"):
            found = _match_attention(node, graph, producers, consumers)
            if found is not None:
                yield node, found


def _split_graph(graph: Any) -> int:
    producers, consumers = _links(graph)
    blocks: dict[int, tuple[Any, Any, int]] = {}  # id(weighted MatMul) -> (scores, it, heads)
    dropped: set[int] = set()
    for node, found in _matched_blocks(graph, producers, consumers):
        scores = producers[node.input[0]]  # a MatMul: _match_attention checked it
        if len(consumers[scores.output[0]]) != 1:
            continue
        weighted = consumers[node.output[0]][0]
        blocks[id(weighted)] = (scores, weighted, found[1])
        dropped.update((id(scores), id(node)))
    nodes: list[Any] = []
    numbers = {key: n for n, key in enumerate(blocks)}
    for node in graph.node:
        if id(node) in blocks:  # its inputs all come before it, its readers after
            prefix = f"{HEADS_PREFIX}{numbers[id(node)]}_"
            nodes.extend(_per_head(graph, prefix, *blocks[id(node)]))
        elif id(node) not in dropped:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    return len(blocks)


def _per_head(graph: Any, prefix: str, scores: Any, weighted: Any, heads: int) -> list[Any]:
    """The nodes of one block, head by head: Split q, k^T and v on the head axis, then per
    head MatMul, Softmax, MatMul, and Concat back into the block's output."""
    from onnx import TensorProto, helper

    sizes = f"{prefix}sizes"
    graph.initializer.append(helper.make_tensor(sizes, TensorProto.INT64, [heads], [1] * heads))
    nodes, parts = [], {}
    for role, name in (("q", scores.input[0]), ("k", scores.input[1]), ("v", weighted.input[1])):
        parts[role] = [f"{prefix}{role}{h}" for h in range(heads)]
        nodes.append(
            helper.make_node("Split", [name, sizes], parts[role], axis=1, name=f"{prefix}{role}")
        )
    outputs = []
    for h in range(heads):
        score, prob, out = (f"{prefix}{kind}{h}" for kind in ("scores", "probs", "out"))
        nodes += [
            helper.make_node("MatMul", [parts["q"][h], parts["k"][h]], [score], name=score),
            helper.make_node("Softmax", [score], [prob], axis=-1, name=prob),
            helper.make_node("MatMul", [prob, parts["v"][h]], [out], name=out),
        ]
        outputs.append(out)
    nodes.append(
        helper.make_node("Concat", outputs, [weighted.output[0]], axis=1, name=f"{prefix}concat")
    )
    return nodes


def _fuse_graph(graph: Any) -> int:
    from onnx import TensorProto, helper

    producers, consumers = _links(graph)
    position = {out: i for i, node in enumerate(graph.node) for out in node.output}
    replaced: dict[int, list[Any]] = {}
    for _, found in _matched_blocks(graph, producers, consumers):
        qkv, heads, size, scale, merge = found
        n = len(replaced)
        sizes = f"depthlite_mha{n}_split"
        q, k, v = (f"depthlite_mha{n}_{part}" for part in "qkv")
        graph.initializer.append(
            helper.make_tensor(sizes, TensorProto.INT64, [3], [heads * size] * 3)
        )
        mha = helper.make_node(
            "MultiHeadAttention", [q, k, v], [merge.output[0]], domain="com.microsoft",
            num_heads=heads, scale=scale, name=f"depthlite_mha{n}",
        )  # fmt: skip
        split = helper.make_node("Split", [qkv, sizes], [q, k, v], axis=2, name=f"{q}_split")
        replaced[position[merge.output[0]]] = [split, mha]
    if not replaced:
        return 0
    nodes = []
    for i, node in enumerate(graph.node):
        nodes.extend(replaced.get(i, [node]))
    _keep_live(graph, nodes)
    return len(replaced)


def _subgraph_inputs(node: Any) -> set[str]:
    """Names a node's subgraphs (If, Loop, Scan) read from the outer scope."""
    from onnx import AttributeProto

    names: set[str] = set()
    for attr in node.attribute:
        graphs = [attr.g] if attr.type == AttributeProto.GRAPH else list(attr.graphs)
        for sub in graphs:
            for inner in sub.node:
                names.update(inner.input)
                names.update(_subgraph_inputs(inner))
    return names


def _keep_live(graph: Any, nodes: list[Any]) -> None:
    """Replace the graph's nodes by ``nodes`` without those whose outputs nobody reads."""
    live = {out.name for out in graph.output}
    kept = []
    for node in reversed(nodes):
        if any(out in live for out in node.output):
            kept.append(node)
            live.update(node.input)
            live.update(_subgraph_inputs(node))
    del graph.node[:]
    graph.node.extend(reversed(kept))
    unused = [init for init in graph.initializer if init.name not in live]
    for init in unused:
        graph.initializer.remove(init)


def _check_fused(source: Path, fused: bytes) -> None:
    """Raise unless the fused graph reproduces the original on a random input."""
    import numpy as np

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    sessions = [
        ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        for model in (str(source), fused)
    ]
    first = sessions[0]
    meta = first.get_modelmeta().custom_metadata_map
    step = int(meta.get("depthlite.multiple_of", "32"))
    side = step * max(1, round(224 / step))
    shape = [d if isinstance(d, int) else side for d in first.get_inputs()[0].shape]
    shape[0] = 1
    x = np.random.default_rng(0).uniform(-2, 2, shape).astype(np.float32)
    want, got = (s.run(None, {s.get_inputs()[0].name: x})[0] for s in sessions)
    span = float(np.ptp(want)) or 1.0
    error = float(np.max(np.abs(got - want))) / span
    if got.shape != want.shape or not error <= FUSE_TOLERANCE:
        raise ValueError(f"the fused graph disagrees by {error:.2e} of the output range")
