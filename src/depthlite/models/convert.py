"""The export recipe: an official checkpoint -> ONNX with dynamic height and width, verified.

The official ONNX exports (where they exist) take one fixed square size, which distorts every
other photo; exporting the checkpoint ourselves gives the card's keep-aspect input on the
torch-free runtime. A file is only ever kept after ONNX Runtime reproduced the torch model on
the spot, at the architecture's verify sizes. The card's facts are written into the file's
metadata (read back by every backend), so the file describes itself outside depthlite too.
"""

from __future__ import annotations

import gc
import logging
import warnings
from pathlib import Path

import numpy as np
import torch

from depthlite.errors import ConversionError
from depthlite.fsutil import atomic_path
from depthlite.models.checkpoint import load_state_dict
from depthlite.runtime.metadata import card_metadata
from depthlite.zoo.architectures import Architecture, architecture_of, build_network
from depthlite.zoo.cards import ModelCard

__all__ = ["OPSET", "RECIPE_VERSION", "TOLERANCE", "convert_checkpoint", "export_network"]

logger = logging.getLogger(__name__)

OPSET = 17
# Bumped whenever the exported graph or its metadata changes: the derivation key includes it.
RECIPE_VERSION = 4
# Largest |onnx - torch| allowed, as a fraction of the output range (conformance tolerance).
TOLERANCE = 1e-4


def export_network(model: torch.nn.Module, arch: Architecture, path: Path) -> None:
    """``torch.onnx.export`` with dynamic height and width (the TorchScript exporter)."""
    set_mode = getattr(model, "set_export_mode", None)
    if set_mode is not None:
        set_mode(True)
    dummy = torch.zeros(1, 3, *arch.dummy_size)
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            # The TorchScript exporter is deprecated in favour of dynamo, which cannot yet
            # export these resizes with symbolic sizes; its warnings are noise for users.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (dummy,),
                str(path),
                input_names=["image"],
                output_names=[arch.output_name],
                opset_version=OPSET,
                dynamic_axes={
                    "image": {2: "height", 3: "width"},
                    arch.output_name: {1: "height", 2: "width"},
                },
                dynamo=False,
            )
    finally:
        if set_mode is not None:
            set_mode(False)


def _verify_inputs(arch: Architecture) -> list[np.ndarray]:
    return [
        np.random.default_rng(seed).uniform(-2, 2, (1, 3, h, w)).astype(np.float32)
        for seed, (h, w) in enumerate(arch.verify_sizes)
    ]


def _reference_outputs(model: torch.nn.Module, inputs: list[np.ndarray]) -> list[np.ndarray]:
    with torch.inference_mode():
        return [model(torch.from_numpy(x)).numpy() for x in inputs]


def verify_onnx(
    onnx_path: Path,
    inputs: list[np.ndarray],
    expected: list[np.ndarray],
    tolerance: float = TOLERANCE,
) -> float:
    """Run the file on ``inputs``; return the worst error as a fraction of the output range."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    worst = 0.0
    for x, want in zip(inputs, expected, strict=True):
        got = session.run(None, {name: x})[0]
        if got.shape != want.shape:
            raise ConversionError(f"ONNX output shape {got.shape} != torch {want.shape}")
        span = float(np.ptp(want)) or 1.0
        worst = max(worst, float(np.max(np.abs(got - want))) / span)
    if worst > tolerance:
        raise ConversionError(
            f"the converted model disagrees with the torch model by {worst:.2e} of the output "
            f"range (tolerance {tolerance:.0e}); nothing was kept. Please report this with "
            "your torch and onnxruntime versions"
        )
    return worst


def _add_metadata(path: Path, metadata: dict[str, str]) -> None:
    """Append ``metadata`` to the file's ``metadata_props`` without parsing the model.

    Protobuf merges concatenated messages field by field and appends repeated fields, so the
    serialised bytes of a ``ModelProto`` holding only these entries, written after the model's
    own, add them to the model read by any ONNX parser. Loading and saving the whole protobuf
    instead took 9 s for Depth Anything V2 Large (1.3 GB) and held a second copy of it.
    """
    import onnx

    extra = onnx.ModelProto()
    for key, value in metadata.items():
        entry = extra.metadata_props.add()
        entry.key, entry.value = key, value
    with open(path, "ab") as f:
        f.write(extra.SerializeToString())


def convert_checkpoint(
    checkpoint: Path, output: Path, card: ModelCard, metadata: dict[str, str] | None = None
) -> Path:
    """Export ``checkpoint`` to ``output`` (atomically), verified against torch first.

    Memory: the torch outputs at the verify sizes are computed first and the network is freed
    right after the export, so the torch weights, the ONNX protobuf and the verifying ONNX
    Runtime session are never all alive together.
    """
    arch = architecture_of(card)
    model = build_network(card, load_state_dict(checkpoint))
    inputs = _verify_inputs(arch)
    expected = _reference_outputs(model, inputs)
    meta = {**card_metadata(card, normalizes_inside=False), **(metadata or {})}
    with atomic_path(Path(output), suffix=".onnx") as tmp:
        try:
            export_network(model, arch, tmp)
            del model
            gc.collect()
            _add_metadata(tmp, meta)
        except ConversionError:
            raise
        except Exception as exc:
            raise ConversionError(f"converting {checkpoint} to ONNX failed: {exc}") from exc
        error = verify_onnx(tmp, inputs, expected)
    logger.info("converted %s -> %s (max error %.1e of range)", checkpoint, output, error)
    return output
