"""The OpenVINO backend: FP32 conformance, INT8 by agreement, BF16 where the CPU has it."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from conftest import TOLERANCE, rel_error, test_image
from depthlite import DepthEstimator
from depthlite.errors import BackendUnavailableError
from depthlite.metrics import agreement
from depthlite.runtime.openvino import bf16_supported


def test_fp32_pipeline_matches_the_original(
    converted_onnx: Path, pipeline_reference: dict[str, np.ndarray]
) -> None:
    result = DepthEstimator(backend="openvino", weights=converted_onnx).predict(
        test_image(10, 480, 640)
    )
    assert rel_error(result.network_output, pipeline_reference["network_output"][0]) <= TOLERANCE
    assert rel_error(result.depth, pipeline_reference["depth"]) <= TOLERANCE


def test_official_layout_file_runs_square(official_style_onnx: Path, converted_onnx: Path) -> None:
    img = test_image(12, 200, 300)
    got = DepthEstimator(backend="openvino", weights=official_style_onnx).predict(img)
    expected = DepthEstimator(weights=converted_onnx, resize="square").predict(img)
    assert got.resize == "square"
    assert rel_error(got.depth, expected.depth) <= TOLERANCE


def test_many_shapes_and_threads(converted_onnx: Path) -> None:
    est = DepthEstimator(backend="openvino", weights=converted_onnx)
    images = [test_image(s, 100 + 40 * s, 160) for s in range(4)]
    expected = [DepthEstimator(weights=converted_onnx).predict(img).depth for img in images]
    results: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        results[i] = est.predict(images[i % 4]).depth

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8
    for i, depth in results.items():
        assert rel_error(depth, expected[i % 4]) <= TOLERANCE


def test_int8_agrees_with_fp32(converted_onnx: Path, tmp_path: Path) -> None:
    from depthlite.models import quantize
    from depthlite.zoo import get_card as get_spec

    int8 = quantize.quantize_model(
        converted_onnx, tmp_path / "m-int8.onnx", get_spec("midas_v21_small_256"),
        quantize.sample_photos(("chelsea",)),
    )  # fmt: skip
    img = quantize.sample_photos(("rocket",))[0].rgb
    reference = DepthEstimator(weights=converted_onnx).predict(img).depth
    got = DepthEstimator(backend="openvino", precision="int8", weights=int8).predict(img).depth
    score = agreement(got, reference)
    assert score.absrel < 0.5 and score.delta1 > 0.6


def test_bf16_runs_where_supported_and_says_why_not_elsewhere(converted_onnx: Path) -> None:
    img = test_image(13, 120, 160)
    est = DepthEstimator(backend="openvino", precision="bf16", weights=converted_onnx)
    if not bf16_supported():
        with pytest.raises(BackendUnavailableError, match="no native BF16"):
            est.predict(img)
        return
    reference = DepthEstimator(weights=converted_onnx).predict(img).depth
    score = agreement(est.predict(img).depth, reference)
    assert score.absrel < 0.05 and score.delta1 > 0.95


def test_a_graph_the_cpu_plugin_cannot_compile_is_a_clear_error(
    converted_onnx: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenVINO compiles per input shape, at the first image: its raw RuntimeError (seen for
    DPT-Hybrid's INT8 graph) becomes the backend error the CLI and server report."""
    est = DepthEstimator(backend="openvino", weights=converted_onnx)
    backend = est.load()

    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError(
            "Exception from src/inference/src/cpp/core.cpp:117:\n"
            "could not append an elementwise post-op\n"
        )

    monkeypatch.setattr(backend._core, "compile_model", fail)  # type: ignore[attr-defined]
    with pytest.raises(BackendUnavailableError) as caught:
        est.predict(test_image(3, 64, 96))
    text = str(caught.value)
    assert "could not append an elementwise post-op" in text and "core.cpp" not in text
    assert "--backend onnxruntime" in text and converted_onnx.name.split(".")[0] in text
