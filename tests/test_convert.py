"""Checkpoint -> ONNX conversion: dynamic sizes, verification, caching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from conftest import DATA, MODEL, TOLERANCE, rel_error
from depthlite.errors import ConversionError
from depthlite.models import convert
from depthlite.models.checkpoint import load_state_dict
from depthlite.zoo import get_card as get_spec
from depthlite.zoo.architectures import build_network


def run_onnx(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def test_converted_model_matches_the_original_network(converted_onnx: Path) -> None:
    x = np.random.default_rng(0).uniform(-2, 2, (1, 3, 256, 256)).astype(np.float32)
    with np.load(DATA / f"{MODEL}_network_seed0_256x256.npz") as data:
        assert rel_error(run_onnx(converted_onnx, x), data["output"]) <= TOLERANCE


def test_converted_model_matches_the_pipeline_reference(
    converted_onnx: Path, pipeline_reference: dict[str, np.ndarray]
) -> None:
    got = run_onnx(converted_onnx, pipeline_reference["network_input"])
    assert rel_error(got, pipeline_reference["network_output"]) <= TOLERANCE


@pytest.mark.parametrize(("height", "width"), [(160, 256), (256, 96), (320, 448), (32, 32)])
def test_converted_model_has_dynamic_height_and_width(
    converted_onnx: Path, checkpoint: Path, height: int, width: int
) -> None:
    model = build_network(get_spec(MODEL), load_state_dict(checkpoint))
    x = np.random.default_rng(height).uniform(-2, 2, (1, 3, height, width)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    assert rel_error(run_onnx(converted_onnx, x), expected) <= TOLERANCE


def test_converted_model_records_its_input_layout(converted_onnx: Path) -> None:
    session = ort.InferenceSession(str(converted_onnx), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["depthlite.normalizes_inside"] == "false"
    assert meta["depthlite.model"] == MODEL
    shape = session.get_inputs()[0].shape
    assert shape[:2] == [1, 3] and isinstance(shape[2], str) and isinstance(shape[3], str)


def test_disagreement_aborts_and_caches_nothing(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_export = convert.export_network

    def broken_export(model: torch.nn.Module, arch: object, path: Path) -> None:
        with torch.no_grad():  # an export that drifted from the torch model
            model.scratch.output_conv[4].bias.add_(1.0)
        real_export(model, arch, path)  # type: ignore[arg-type]

    monkeypatch.setattr(convert, "export_network", broken_export)
    target = tmp_path / "out.onnx"
    with pytest.raises(ConversionError, match="disagrees with the torch model"):
        convert.convert_checkpoint(checkpoint, target, get_spec(MODEL))
    assert list(tmp_path.iterdir()) == []
