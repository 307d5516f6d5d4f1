"""The conformance checks of every card, shared by the two conformance test files.

The largest networks (ViT-L) have a file of their own so that the parallel test run (pytest
-n, one worker per core, a file per worker) exports them on one worker while the other
cards run on another; each check is the same for every card.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from conftest import DATA, TOLERANCE, rel_error, test_image
from depthlite import DepthEstimator
from depthlite.zoo import get_card

CONFORMANCE = DATA / "conformance"
# card -> the conformance folder of the original code's run.
FOLDERS = {
    "midas_v21_384": "midas_v21_large",
    "dpt_hybrid_384": "dpt_hybrid",
    "dpt_large_384": "dpt_large",
    "depth_anything_v2_small": "depth_anything_v2_vits",
    "depth_anything_v2_base": "depth_anything_v2_vitb",
    "depth_anything_v2_large": "depth_anything_v2_vitl",
    "depth_anything_v2_metric_indoor_small": "depth_anything_v2_metric_hypersim_vits",
    "depth_anything_v2_metric_outdoor_small": "depth_anything_v2_metric_vkitti_vits",
}
MODELS = list(FOLDERS)
# ViT-L networks (335-344 M parameters): tests/test_conformance_large.py.
LARGE = ("dpt_large_384", "depth_anything_v2_large")
KEY = re.compile(r"(out|netinput|depth)_seed(\d+)_(\d+)x(\d+)")


def reference(model: str) -> dict[str, np.ndarray]:
    with np.load(CONFORMANCE / FOLDERS[model] / "reference.npz") as data:
        return dict(data)


def network_input(key: str) -> np.ndarray:
    _, seed, h, w = KEY.fullmatch(key).groups()  # type: ignore[union-attr]
    return (
        np.random.default_rng(int(seed)).uniform(-2, 2, (1, 3, int(h), int(w))).astype(np.float32)
    )


def keys(model: str, kind: str) -> list[str]:
    return sorted(k for k in reference(model) if k.startswith(kind + "_"))


def check_fp32_backends(model: str, exported_model: Callable[[str], Path]) -> None:
    """ONNX Runtime (our optimised graph) at every size of the fixture, OpenVINO at one."""
    ref = reference(model)
    outs = keys(model, "out")
    assert outs, f"no network outputs for {model}"
    path = exported_model(model)
    ort_est = DepthEstimator(model, weights=path, threads=2, progress=False)
    for key in outs:
        assert rel_error(ort_est.infer(network_input(key)), ref[key]) <= TOLERANCE, key
    ort_est.close()
    ov_est = DepthEstimator(model, backend="openvino", weights=path, threads=2, progress=False)
    assert rel_error(ov_est.infer(network_input(outs[-1])), ref[outs[-1]]) <= TOLERANCE
    ov_est.close()


def check_end_to_end(model: str, exported_model: Callable[[str], Path]) -> None:
    """``infer_image(bgr, 518)``: preprocessing, network, bilinear align_corners upsampling."""
    ref = reference(model)
    (key,) = keys(model, "depth")
    _, seed, h, w = KEY.fullmatch(key).groups()  # type: ignore[union-attr]
    est = DepthEstimator(model, weights=exported_model(model), threads=2, progress=False)
    result = est.predict(test_image(int(seed), int(h), int(w)))
    assert result.network_output.shape == ref[f"netinput_seed{seed}_{h}x{w}"].shape[2:]
    assert rel_error(result.depth, ref[key]) <= TOLERANCE
    card = get_card(model)
    assert (result.kind, result.unit) == (card.output.kind, card.output.unit)


def fp32_backends_test(models: list[str]) -> Callable[..., None]:
    """The network test of ``models``, one case per card (each conformance file takes its cards)."""

    @pytest.mark.slow
    @pytest.mark.parametrize("model", models)
    def test_every_fp32_backend_reproduces_the_original_network(
        model: str, exported_model: Callable[[str], Path]
    ) -> None:
        check_fp32_backends(model, exported_model)

    return test_every_fp32_backend_reproduces_the_original_network
