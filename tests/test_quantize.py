"""Static INT8 quantization: format, caching, agreement with FP32 (a sanity check here: the
weights are synthetic, so the agreement figures of real weights are not expected)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from conftest import MODEL, test_image
from depthlite import DepthEstimator
from depthlite.cli.main import main
from depthlite.models import quantize


def test_int8_model_is_static_qdq_with_per_channel_weights(int8_onnx: Path) -> None:
    model = onnx.load(str(int8_onnx))
    ops = {node.op_type for node in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    inits = {i.name: i for i in model.graph.initializer}
    per_channel = [
        node
        for node in model.graph.node
        if node.op_type == "DequantizeLinear"
        and node.input[1] in inits
        and np.prod(inits[node.input[1]].dims) > 1
    ]
    assert per_channel, "conv weights must be quantized per output channel"
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["depthlite.precision"] == "int8"
    assert meta["depthlite.normalizes_inside"] == "false"


def test_maps_the_banded_head_reads_by_rows_stay_float(
    converted_onnx: Path, int8_onnx: Path
) -> None:
    # Quantized, such a map is dequantized whole once per row gather by ONNX Runtime.
    def band_sources(path: Path) -> tuple[set[str], dict[str, str]]:
        graph = onnx.load(str(path)).graph
        readers: dict[str, int] = {}
        for node in graph.node:
            if node.op_type == "Gather":
                readers[node.input[0]] = readers.get(node.input[0], 0) + 1
        producers = {out: node.op_type for node in graph.node for out in node.output}
        return {name for name, n in readers.items() if n >= 4}, producers

    float_sources, _ = band_sources(converted_onnx)
    assert float_sources, "the exported head gathers its rows (models/banded.py)"
    int8_sources, producers = band_sources(int8_onnx)
    assert int8_sources == float_sources  # the same tensors, read as they are
    assert not {producers[name] for name in int8_sources} & {"QuantizeLinear", "DequantizeLinear"}


def test_int8_agrees_with_fp32_on_photos_it_never_saw(
    converted_onnx: Path, int8_onnx: Path
) -> None:
    fp32 = DepthEstimator(weights=converted_onnx)
    int8 = DepthEstimator(weights=int8_onnx, precision="int8")
    assert int8.model_file.origin == "user"  # already INT8: used as is, not quantized again
    scores = quantize.evaluate_agreement(
        lambda rgb: fp32.predict(rgb).depth,
        lambda rgb: int8.predict(rgb).depth,
        quantize.sample_photos(quantize.EVALUATION_PHOTOS),
    )
    assert set(scores) == set(quantize.EVALUATION_PHOTOS)
    for score in scores.values():
        # Synthetic weights: a sanity bound. Real weights are judged by `depthlite bench`.
        assert score.absrel < 0.5
        assert score.delta1 > 0.6


def test_precision_int8_quantizes_once_and_caches_by_source(
    converted_onnx: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(quantize, "CALIBRATION_PHOTOS", ("chelsea",))
    first = DepthEstimator(weights=converted_onnx, precision="int8")
    path = first.model_file.path
    assert first.model_file.origin == "quantized"
    assert first.model_file.steps[-2] == f"quantize_int8 {MODEL}-int8.onnx (made now)"
    assert path.stat().st_mode & 0o777 == 0o644
    stamp = path.stat().st_mtime_ns
    second = DepthEstimator(weights=converted_onnx, precision="int8")
    assert second.model_file.path == path
    assert path.stat().st_mtime_ns == stamp
    depth = second.predict(test_image(3, 90, 120)).depth
    assert depth.shape == (90, 120) and np.isfinite(depth).all()


def test_calibration_folder_changes_the_key(tmp_path: Path) -> None:
    import cv2

    folder = tmp_path / "calib"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), test_image(1, 64, 64))
    first = quantize.calibration_id(folder)
    assert first != quantize.calibration_id(None)
    cv2.imwrite(str(folder / "b.png"), test_image(2, 64, 64))
    assert quantize.calibration_id(folder) != first
    assert [p.name for p in quantize.load_photos(folder)] == ["a", "b"]


def test_empty_calibration_folder_is_a_clear_error(tmp_path: Path) -> None:
    from depthlite.errors import InputNotFoundError

    (tmp_path / "empty").mkdir()
    with pytest.raises(InputNotFoundError, match="calibration"):
        quantize.load_photos(tmp_path / "empty")


def test_quantize_command_prints_the_cached_path(
    converted_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import cv2

    folder = tmp_path / "calib"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), test_image(4, 96, 128))
    code = main(["quantize", "--weights", str(converted_onnx), "--calibration", str(folder), "-q"])
    out = capsys.readouterr().out.strip()
    assert code == 0
    assert Path(out).is_file()
    manifest = json.loads((Path(out).parent / "manifest.json").read_text())
    assert manifest["recipe"] == "quantize_int8"
    assert manifest["params"]["calibration"] == quantize.calibration_id(folder)


def test_torch_backend_offers_no_int8() -> None:
    from depthlite.errors import InvalidOptionError

    with pytest.raises(InvalidOptionError, match="offers: fp32"):
        DepthEstimator(backend="torch", precision="int8")
