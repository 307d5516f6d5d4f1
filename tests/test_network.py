"""The torch network against the original: key layout, strict loading, outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import DATA, MODEL, TOLERANCE, rel_error
from depthlite.errors import WeightsError
from depthlite.models.checkpoint import load_state_dict, save_state_dict
from depthlite.models.synthetic import synthetic_state_dict
from depthlite.zoo import get_card
from depthlite.zoo.architectures import build_network, state_dict_layout

CARD = get_card(MODEL)


@pytest.fixture(scope="module")
def reference_model(checkpoint: Path) -> torch.nn.Module:
    return build_network(CARD, load_state_dict(checkpoint))


def test_state_dict_keys_order_shapes_match_the_original() -> None:
    expected = [
        (k, tuple(s), d) for k, s, d in json.loads((DATA / f"{MODEL}_keys.json").read_text())
    ]
    assert list(state_dict_layout(build_network(CARD))) == expected
    assert len(expected) == 482


def test_parameter_count_matches_the_original() -> None:
    model = build_network(CARD)
    assert sum(p.numel() for p in model.parameters()) == 21_320_545


def test_official_layout_checkpoint_loads_strictly(checkpoint: Path) -> None:
    sd = load_state_dict(checkpoint)
    build_network(CARD).load_state_dict(sd, strict=True)
    sd.pop("scratch.output_conv.4.bias")
    with pytest.raises(WeightsError, match=r"1 missing keys.*output_conv\.4\.bias"):
        build_network(CARD, sd)


def test_foreign_checkpoint_is_one_readable_error() -> None:
    sd = synthetic_state_dict()
    sd["extra.weight"] = torch.zeros(3)
    sd["scratch.layer1_rn.weight"] = torch.zeros(1, 2, 3, 3)
    with pytest.raises(WeightsError, match="1 unexpected, 1 with other shapes"):
        build_network(CARD, sd)


def test_training_snapshot_layout_is_accepted(tmp_path: Path) -> None:
    # The original BaseModel.load unwraps {"model": ..., "optimizer": ...}.
    sd = synthetic_state_dict()
    save_state_dict({"model": sd, "optimizer": {"step": torch.tensor(3)}}, tmp_path / "snap.pt")
    assert load_state_dict(tmp_path / "snap.pt").keys() == sd.keys()


def test_pickled_code_is_refused(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, path)
    with pytest.raises(WeightsError, match="as a PyTorch checkpoint"):
        load_state_dict(path)


def test_garbage_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match=r"bad\.pt"):
        load_state_dict(path)


def test_network_output_matches_the_original(reference_model: torch.nn.Module) -> None:
    x = np.random.default_rng(0).uniform(-2, 2, (1, 3, 256, 256)).astype(np.float32)
    with np.load(DATA / f"{MODEL}_network_seed0_256x256.npz") as data:
        expected = data["output"]
    with torch.no_grad():
        got = reference_model(torch.from_numpy(x)).numpy()
    assert got.dtype == np.float32
    assert rel_error(got, expected) <= TOLERANCE


def test_network_on_the_pipeline_input_matches_the_original(
    reference_model: torch.nn.Module, pipeline_reference: dict[str, np.ndarray]
) -> None:
    with torch.no_grad():
        got = reference_model(torch.from_numpy(pipeline_reference["network_input"])).numpy()
    assert rel_error(got, pipeline_reference["network_output"]) <= TOLERANCE


@pytest.mark.parametrize(
    ("height", "width"), [(256, 256), (192, 256), (256, 160), (96, 224), (64, 64)]
)
def test_any_multiple_of_32_gives_an_output_of_the_same_size(
    reference_model: torch.nn.Module, height: int, width: int
) -> None:
    x = torch.from_numpy(
        np.random.default_rng(1).uniform(-2, 2, (1, 3, height, width)).astype(np.float32)
    )
    with torch.no_grad():
        out = reference_model(x)
    assert out.shape == (1, height, width)
    assert float(out.min()) >= 0.0  # non_negative head


def test_static_padding_equals_dynamic_on_even_sizes(reference_model: torch.nn.Module) -> None:
    x = torch.from_numpy(
        np.random.default_rng(2).uniform(-2, 2, (1, 3, 192, 320)).astype(np.float32)
    )
    with torch.no_grad():
        dynamic = reference_model(x)
        reference_model.set_static_padding(True)
        try:
            static = reference_model(x)
        finally:
            reference_model.set_static_padding(False)
    assert torch.equal(dynamic, static)


def test_same_padding_rule() -> None:
    from depthlite.models.midas_small import _same_pad

    # TensorFlow SAME: the odd pixel goes after.
    assert _same_pad(256, 3, 2) == (0, 1)
    assert _same_pad(256, 5, 2) == (1, 2)
    assert _same_pad(255, 3, 2) == (1, 1)
    assert _same_pad(7, 5, 1) == (2, 2)
