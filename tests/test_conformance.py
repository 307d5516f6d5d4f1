"""Every card of the zoo against the original code, through depthlite's own pipeline.

The network tests (test_network_*.py) check each torch network; here the converted ONNX (our
export recipe, dynamic height and width), ONNX Runtime's optimised graph and OpenVINO FP32 run
the conformance inputs, the preprocessing of each resize rule is compared with the original
transform's output, and Depth Anything V2 is checked end to end (``infer_image``). Each
network is built, filled and exported once per test session (large models: about 1.4 GB).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from conftest import DATA, TOLERANCE, rel_error, test_image
from depthlite import DepthEstimator
from depthlite.transforms import InputPolicy, preprocess
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
_KEY = re.compile(r"(out|netinput|depth)_seed(\d+)_(\d+)x(\d+)")


def reference(model: str) -> dict[str, np.ndarray]:
    with np.load(CONFORMANCE / FOLDERS[model] / "reference.npz") as data:
        return dict(data)


def network_input(key: str) -> np.ndarray:
    _, seed, h, w = _KEY.fullmatch(key).groups()  # type: ignore[union-attr]
    return (
        np.random.default_rng(int(seed)).uniform(-2, 2, (1, 3, int(h), int(w))).astype(np.float32)
    )


def keys(model: str, kind: str) -> list[str]:
    return sorted(k for k in reference(model) if k.startswith(kind + "_"))


MODELS = list(FOLDERS)


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_every_fp32_backend_reproduces_the_original_network(
    model: str, exported_model: Callable[[str], Path]
) -> None:
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


@pytest.mark.parametrize("model", [m for m in MODELS if keys(m, "netinput")])
def test_preprocessing_matches_the_original_transform(model: str) -> None:
    """Upper bound (MiDaS v2.1), minimal (DPT), lower bound with 14 (Depth Anything)."""
    card = get_card(model)
    ref = reference(model)
    for key in keys(model, "netinput"):
        _, seed, h, w = _KEY.fullmatch(key).groups()  # type: ignore[union-attr]
        x = preprocess(
            test_image(int(seed), int(h), int(w)), InputPolicy.for_card(card, "keep_aspect")
        )
        assert x.shape == ref[key].shape, key
        np.testing.assert_allclose(x, ref[key], rtol=0, atol=1e-6, err_msg=key)


@pytest.mark.slow
@pytest.mark.parametrize("model", [m for m in MODELS if keys(m, "depth")])
def test_depth_anything_end_to_end_matches_infer_image(
    model: str, exported_model: Callable[[str], Path]
) -> None:
    """``infer_image(bgr, 518)``: preprocessing, network, bilinear align_corners upsampling."""
    ref = reference(model)
    (key,) = keys(model, "depth")
    _, seed, h, w = _KEY.fullmatch(key).groups()  # type: ignore[union-attr]
    est = DepthEstimator(model, weights=exported_model(model), threads=2, progress=False)
    result = est.predict(test_image(int(seed), int(h), int(w)))
    assert result.network_output.shape == ref[f"netinput_seed{seed}_{h}x{w}"].shape[2:]
    assert rel_error(result.depth, ref[key]) <= TOLERANCE
    card = get_card(model)
    assert (result.kind, result.unit) == (card.output.kind, card.output.unit)
