"""Depth Anything V2 (relative s/b/l, metric Hypersim/VKITTI) against the original code.

Fixtures in ``data/conformance/depth_anything_v2_*``: the original ``state_dict`` layout and the
original network's outputs with the synthetic weights (conformance README). Each network is
built on the ``meta`` device, filled and loaded with ``assign=True`` (no second copy), once.
"""

from __future__ import annotations

import gc
import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import DATA, TOLERANCE, rel_error
from depthlite.models.depth_anything import DEPTH_ANYTHING_V2_CONFIGS, DepthAnythingV2
from depthlite.models.synthetic import fill_state_dict

CONFORMANCE = DATA / "conformance"


def _args(encoder: str, max_depth: float | None = None) -> dict[str, object]:
    config = DEPTH_ANYTHING_V2_CONFIGS[encoder]
    return {
        "encoder": encoder,
        "features": config.features,
        "out_channels": config.out_channels,
        "max_depth": max_depth,
    }


# folder -> (constructor arguments, parameter count)
MODELS: dict[str, tuple[dict[str, object], int]] = {
    "depth_anything_v2_vits": (_args("vits"), 24_785_089),
    "depth_anything_v2_vitb": (_args("vitb"), 97_470_785),
    "depth_anything_v2_vitl": (_args("vitl"), 335_315_649),
    "depth_anything_v2_metric_hypersim_vits": (_args("vits", 20.0), 24_785_089),
    "depth_anything_v2_metric_vkitti_vits": (_args("vits", 80.0), 24_785_089),
}
# Small networks stay loaded for the whole session; the big ones live for one test each.
SHARED = ("depth_anything_v2_vits", "depth_anything_v2_metric_hypersim_vits")
SHARED += ("depth_anything_v2_metric_vkitti_vits",)


def _outputs(folder: str) -> list[str]:
    with np.load(CONFORMANCE / folder / "reference.npz") as data:
        return sorted(k for k in data.files if k.startswith("out_"))


def _reference(folder: str, key: str) -> np.ndarray:
    with np.load(CONFORMANCE / folder / "reference.npz") as data:
        return data[key]


def _network_input(key: str) -> torch.Tensor:
    """``out_seed{S}_{H}x{W}`` -> the conformance network input for seed S, H x W."""
    _, seed, size = key.split("_")
    height, width = (int(v) for v in size.split("x"))
    x = np.random.default_rng(int(seed.removeprefix("seed"))).uniform(-2, 2, (1, 3, height, width))
    return torch.from_numpy(x.astype(np.float32))


def _build(folder: str) -> DepthAnythingV2:
    """The network with the synthetic weights, loaded strictly (meta-built, ``assign=True``)."""
    with torch.device("meta"):
        model = DepthAnythingV2(**MODELS[folder][0])  # type: ignore[arg-type]
    result = model.load_state_dict(fill_state_dict(model), strict=True, assign=True)
    assert not result.missing_keys and not result.unexpected_keys
    return model.eval()


def _run(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model(x).numpy()


@pytest.fixture(scope="session")
def shared_models() -> Iterator[dict[str, DepthAnythingV2]]:
    cache: dict[str, DepthAnythingV2] = {}
    yield cache
    cache.clear()


def _shared(cache: dict[str, DepthAnythingV2], folder: str) -> DepthAnythingV2:
    if folder not in cache:
        cache[folder] = _build(folder)
    return cache[folder]


@pytest.fixture
def vits(shared_models: dict[str, DepthAnythingV2]) -> DepthAnythingV2:
    return _shared(shared_models, "depth_anything_v2_vits")


# ---------------------------------------------------------------- layout (meta, no weights)


@pytest.mark.parametrize("folder", list(MODELS))
def test_state_dict_layout_and_parameter_count_match_the_original(folder: str) -> None:
    expected = json.loads((CONFORMANCE / folder / "keys.json").read_text())
    with torch.device("meta"):
        model = DepthAnythingV2(**MODELS[folder][0])  # type: ignore[arg-type]
    layout = [
        [key, list(t.shape), str(t.dtype).removeprefix("torch.")]
        for key, t in model.state_dict().items()
    ]
    assert layout == expected
    assert sum(p.numel() for p in model.parameters()) == MODELS[folder][1]


def test_wrong_or_missing_weights_fail_strict_loading(vits: DepthAnythingV2) -> None:
    sd = dict(vits.state_dict())
    sd.pop("pretrained.blocks.3.ls2.gamma")
    sd["pretrained.register_tokens"] = torch.zeros(1, 4, 384)
    with pytest.raises(RuntimeError, match=r"ls2\.gamma[\s\S]*register_tokens"):
        DepthAnythingV2().load_state_dict(sd, strict=True)


# ---------------------------------------------------------------- outputs vs the original

SMALL_CASES = [(f, k) for f in SHARED for k in _outputs(f)]


@pytest.mark.parametrize(("folder", "key"), SMALL_CASES, ids=[f"{f}-{k}" for f, k in SMALL_CASES])
def test_network_output_matches_the_original(
    shared_models: dict[str, DepthAnythingV2], folder: str, key: str
) -> None:
    expected = _reference(folder, key)
    got = _run(_shared(shared_models, folder), _network_input(key))
    assert rel_error(got, expected) <= TOLERANCE


@pytest.mark.slow
@pytest.mark.parametrize("folder", ["depth_anything_v2_vitb", "depth_anything_v2_vitl"])
def test_large_network_output_matches_the_original(folder: str) -> None:
    keys = _outputs(folder)
    assert keys == ["out_seed2_364x490"], keys  # the one size the fixture has: run it once
    model = _build(folder)
    try:
        got = _run(model, _network_input(keys[0]))
    finally:
        del model
        gc.collect()
    assert rel_error(got, _reference(folder, keys[0])) <= TOLERANCE


def test_metric_heads_output_metres_within_their_range(
    shared_models: dict[str, DepthAnythingV2],
) -> None:
    x = 3 * _network_input("out_seed7_56x84")
    for folder, max_depth in [
        ("depth_anything_v2_metric_hypersim_vits", 20.0),
        ("depth_anything_v2_metric_vkitti_vits", 80.0),
    ]:
        model = _shared(shared_models, folder)
        assert model.metric and model.max_depth == max_depth
        depth = _run(model, x)
        assert depth.shape == (1, 56, 84)
        assert depth.min() > 0 and depth.max() < max_depth, (folder, depth.min(), depth.max())
        reference = _reference(folder, "out_seed2_364x490")
        assert reference.min() > 0 and reference.max() < max_depth


def test_traced_position_embedding_resize_matches_the_original_formula(
    vits: DepthAnythingV2,
) -> None:
    """The graph formulation (separable bicubic matrices from the scale factors) against the
    original ``F.interpolate(scale_factor=...)``, with a table large enough to matter."""
    backbone = vits.pretrained
    stored = backbone.pos_embed.data.clone()
    try:
        backbone.pos_embed.data.mul_(500)
        for height, width in [(518, 518), (364, 490), (518, 686), (686, 518), (28, 700)]:
            image = torch.zeros(1, 3, height, width)
            tokens = torch.zeros(1, 1 + (height // 14) * (width // 14), backbone.embed_dim)
            with torch.no_grad():
                backbone.set_export_mode(False)
                eager = backbone.interpolate_pos_encoding(tokens, image).numpy()
                backbone.set_export_mode(True)
                graph = backbone.interpolate_pos_encoding(tokens, image).numpy()
            assert rel_error(graph, eager) <= 2e-6, (height, width)
            if height == width == 518:
                assert np.array_equal(graph, eager)  # the stored table, untouched
    finally:
        backbone.set_export_mode(False)
        backbone.pos_embed.data.copy_(stored)


# ---------------------------------------------------------------- dynamic-size ONNX


@pytest.fixture(scope="module")
def vits_onnx(
    shared_models: dict[str, DepthAnythingV2], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The vits network exported once, traced at 518x518, dynamic height and width (tracing
    switches the position-embedding resize to its graph formulation by itself)."""
    model = _shared(shared_models, "depth_anything_v2_vits")
    path = tmp_path_factory.mktemp("da2-onnx") / "depth_anything_v2_vits.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices
        torch.onnx.export(
            model,
            (torch.zeros(1, 3, 518, 518),),
            str(path),
            input_names=["image"],
            output_names=["depth"],
            opset_version=17,
            dynamo=False,
            dynamic_axes={"image": {2: "height", 3: "width"}, "depth": {1: "height", 2: "width"}},
        )
    return path


# Sizes other than the traced one; the fixture's references are the torch outputs.
ONNX_CASES = ["out_seed2_364x490", "out_seed1_518x686"]


def test_dynamic_onnx_runs_other_sizes_in_onnx_runtime(vits_onnx: Path) -> None:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(vits_onnx), options, providers=["CPUExecutionProvider"])
    for key in ONNX_CASES:
        (got,) = session.run(None, {"image": _network_input(key).numpy()})
        assert rel_error(got, _reference("depth_anything_v2_vits", key)) <= TOLERANCE, key


def test_dynamic_onnx_runs_other_sizes_in_openvino(vits_onnx: Path) -> None:
    ov = pytest.importorskip("openvino")

    core = ov.Core()
    model = core.read_model(str(vits_onnx))
    for key in ONNX_CASES:
        x = _network_input(key).numpy()
        model.reshape({"image": list(x.shape)})
        config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 2}  # not bf16
        compiled = core.compile_model(model, "CPU", config)
        got = compiled(x)[0]
        assert rel_error(got, _reference("depth_anything_v2_vits", key)) <= TOLERANCE, key
