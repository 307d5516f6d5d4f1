"""MiDaS v2.1 large, DPT-Hybrid and DPT-Large against the original code.

Key layout, parameter count, strict loading on the ``meta`` device, outputs against the
conformance fixtures (the original MiDaS/timm code with the same deterministic weights). The
dynamic-size ONNX export of each is checked by tests/test_conformance.py (our conversion recipe,
at two sizes and aspect ratios, plus the recipe's own verification sizes), so it is not exported
a second time here (DPT-Large's export alone peaks at ~6 GB). Each network is built and
filled once (a parametrized session fixture: pytest runs one network's tests together and frees
it before building the next; DPT-Large alone is 1.4 GB of float32).
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

from conftest import DATA, TOLERANCE, rel_error
from depthlite.models.blocks import FeatureFusionBlock, FeatureFusionBlockCustom
from depthlite.models.dpt import DPTDepth
from depthlite.models.midas_large import MidasLarge
from depthlite.models.synthetic import fill_state_dict
from depthlite.models.vit import resize_pos_embed
from depthlite.zoo.architectures import state_dict_layout

FIXTURES = DATA / "conformance"


@dataclass(frozen=True)
class Case:
    folder: str
    build: Callable[[], nn.Module]
    parameters: int
    entries: int


CASES = {
    "midas_v21_large": Case("midas_v21_large", MidasLarge, 105_362_945, 666),
    "dpt_hybrid": Case("dpt_hybrid", lambda: DPTDepth(backbone="vitb_rn50_384"), 123_146_985, 368),
    "dpt_large": Case("dpt_large", lambda: DPTDepth(backbone="vitl16_384"), 344_055_465, 368),
}


@dataclass
class Loaded:
    case: Case
    model: nn.Module
    reference: dict[str, np.ndarray]


def _network_input(seed: int, height: int, width: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-2, 2, (1, 3, height, width)).astype(np.float32)


@pytest.fixture(scope="session", params=list(CASES))
def network(request: pytest.FixtureRequest) -> Iterator[Loaded]:
    """Built on ``meta`` and loaded with ``strict=True, assign=True``, as the lead's loader does
    (one copy of the weights in memory)."""
    case = CASES[request.param]
    with torch.device("meta"):
        model = case.build()
    state = fill_state_dict(model)
    for key, value in state.items():  # num_batches_tracked: cloned from the meta model
        if value.is_meta:
            state[key] = torch.zeros(value.shape, dtype=value.dtype)
    model.load_state_dict(state, strict=True, assign=True)
    del state
    with np.load(FIXTURES / case.folder / "reference.npz") as data:
        reference = {k: data[k] for k in data.files if k.startswith("out_")}
    assert reference, f"no network outputs in {case.folder}/reference.npz"
    yield Loaded(case, model.eval(), reference)
    del model
    gc.collect()


def test_key_layout_matches_the_original(network: Loaded) -> None:
    expected = json.loads((FIXTURES / network.case.folder / "keys.json").read_text())
    expected = [(k, tuple(shape), dtype) for k, shape, dtype in expected]
    assert list(state_dict_layout(network.model)) == expected
    assert len(expected) == network.case.entries


def test_parameter_count_matches_the_original(network: Loaded) -> None:
    assert sum(p.numel() for p in network.model.parameters()) == network.case.parameters


def test_meta_build_loads_strictly_with_nothing_left_on_meta(network: Loaded) -> None:
    model = network.model
    assert not [k for k, v in model.state_dict().items() if v.is_meta]
    # Every tensor the network holds is in its state_dict: nothing computed in __init__.
    held = {id(t) for t in (*model.parameters(), *model.buffers())}
    assert held == {id(t) for t in model.state_dict(keep_vars=True).values()}
    missing, unexpected = model.load_state_dict(model.state_dict(), strict=True)
    assert not missing
    assert not unexpected


def test_output_matches_the_original(network: Loaded) -> None:
    for name, expected in network.reference.items():
        _, seed, size = name.split("_")
        height, width = map(int, size.split("x"))
        with torch.no_grad():
            got = network.model(torch.from_numpy(_network_input(int(seed[4:]), height, width)))
        assert got.dtype == torch.float32
        error = rel_error(got.numpy(), expected)
        assert error <= TOLERANCE, (name, error)


# --- the shared blocks, cheaply ----------------------------------------------------------------


def test_midasnet_residual_unit_adds_the_rectified_input() -> None:
    # The original's in-place ReLU rectifies the input before the skip is added.
    block = FeatureFusionBlock(4)
    unit = block.resConfUnit2
    x = torch.randn(1, 4, 6, 6)
    expected = unit.conv2(torch.relu(unit.conv1(torch.relu(x)))) + torch.relu(x)
    with torch.no_grad():
        assert torch.allclose(unit(x), expected)
        assert block(x, x).shape == (1, 4, 12, 12)


def test_custom_fusion_block_resizes_by_two_or_to_the_given_size() -> None:
    block = FeatureFusionBlockCustom(8, nn.ReLU(False), expand=True)
    x = torch.randn(1, 8, 5, 7)
    with torch.no_grad():
        assert block(x).shape == (1, 4, 10, 14)
        assert block(x, x, size=(9, 11)).shape == (1, 4, 9, 11)
        assert FeatureFusionBlockCustom(8, size=(3, 4))(x).shape == (1, 8, 3, 4)
    assert list(block.state_dict())[:2] == ["out_conv.weight", "out_conv.bias"]


def test_position_embedding_resize_keeps_the_class_token_and_the_native_grid() -> None:
    pos = torch.randn(1, 1 + 24 * 24, 8)
    assert torch.equal(resize_pos_embed(pos, 24, 24), pos)
    resized = resize_pos_embed(pos, 16, 24)
    assert resized.shape == (1, 1 + 16 * 24, 8)
    assert torch.equal(resized[:, :1], pos[:, :1])


def test_unknown_dpt_backbone_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown DPT backbone"):
        DPTDepth(backbone="vitb16_384")
