"""Official checkpoint -> ONNX with dynamic height and width, verified before it is cached.

The official ONNX export only takes 256x256, which distorts every non-square photo; converting
the checkpoint ourselves gives the hub's keep-aspect input on the torch-free runtime. A converted
file is only ever cached after ONNX Runtime reproduced the torch model on the spot.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import torch

from depthlite.errors import ConversionError
from depthlite.fsutil import atomic_path
from depthlite.models.checkpoint import load_state_dict
from depthlite.models.midas_small import MidasSmall, build_model
from depthlite.runtime.base import NORMALIZES_INSIDE_KEY
from depthlite.specs import ModelSpec

__all__ = ["OPSET", "TOLERANCE", "convert_checkpoint", "verify_onnx"]

logger = logging.getLogger(__name__)

OPSET = 17
# Largest |onnx - torch| allowed, as a fraction of the output range (conformance tolerance).
TOLERANCE = 1e-4
# A square and a landscape input: dynamic axes must hold for both.
_VERIFY_SIZES = ((256, 256), (192, 256))


def _export(model: MidasSmall, path: Path) -> None:
    model.set_static_padding(True)
    dummy = torch.zeros(1, 3, 256, 256)
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of dynamo, which cannot yet export
        # the scale-factor resizes with symbolic sizes; its warnings are noise for users.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (dummy,),
            str(path),
            input_names=["image"],
            output_names=["inverse_depth"],
            opset_version=OPSET,
            dynamic_axes={
                "image": {2: "height", 3: "width"},
                "inverse_depth": {1: "height", 2: "width"},
            },
            dynamo=False,
        )
    model.set_static_padding(False)


def _add_metadata(path: Path, metadata: dict[str, str]) -> None:
    import onnx

    proto = onnx.load(str(path))
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))


def verify_onnx(onnx_path: Path, model: torch.nn.Module, tolerance: float = TOLERANCE) -> float:
    """Run both on seeded inputs; return the worst error as a fraction of the output range."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    worst = 0.0
    for seed, (h, w) in enumerate(_VERIFY_SIZES):
        x = np.random.default_rng(seed).uniform(-2, 2, (1, 3, h, w)).astype(np.float32)
        with torch.inference_mode():
            expected = model(torch.from_numpy(x)).numpy()
        got = session.run(None, {name: x})[0]
        if got.shape != expected.shape:
            raise ConversionError(f"ONNX output shape {got.shape} != torch {expected.shape}")
        span = float(np.ptp(expected)) or 1.0
        worst = max(worst, float(np.max(np.abs(got - expected))) / span)
    if worst > tolerance:
        raise ConversionError(
            f"the converted model disagrees with the torch model by {worst:.2e} of the output "
            f"range (tolerance {tolerance:.0e}); nothing was cached. Please report this with "
            "your torch and onnxruntime versions"
        )
    return worst


def convert_checkpoint(
    checkpoint: Path, output: Path, spec: ModelSpec, metadata: dict[str, str] | None = None
) -> Path:
    """Export ``checkpoint`` to ``output`` (atomically), verified against torch first."""
    model = build_model(spec.architecture, load_state_dict(checkpoint))
    meta = {NORMALIZES_INSIDE_KEY: "false", "depthlite.model": spec.name, **(metadata or {})}
    with atomic_path(Path(output), suffix=".onnx") as tmp:
        try:
            _export(model, tmp)
            _add_metadata(tmp, meta)
        except Exception as exc:
            raise ConversionError(f"converting {checkpoint} to ONNX failed: {exc}") from exc
        error = verify_onnx(tmp, model)
    logger.info("converted %s -> %s (max error %.1e of range)", checkpoint, output, error)
    return output
