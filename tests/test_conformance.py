"""Every card of the zoo against the original code, through depthlite's own pipeline.

The network tests (test_network_*.py) check each torch network; here the converted ONNX (our
export recipe, dynamic height and width), ONNX Runtime's optimised graph and OpenVINO FP32 run
the conformance inputs, the preprocessing of each resize rule is compared with the original
transform's output, and Depth Anything V2 is checked end to end (``infer_image``). Each
network is built, filled and exported once per test session; the ViT-L cards are checked the
same way by test_conformance_large.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from conformancekit import KEY, LARGE, MODELS, check_end_to_end, fp32_backends_test, keys
from conformancekit import reference as reference_of
from conftest import test_image
from depthlite.transforms import InputPolicy, preprocess
from depthlite.zoo import DEFAULT_MODEL, available_models, get_card

SMALLER = [m for m in MODELS if m not in LARGE]


def test_the_two_files_cover_every_card_once() -> None:
    """Every card but MiDaS small (its own tests: test_network.py, test_estimator.py)."""
    zoo = set(available_models()) - {DEFAULT_MODEL}
    assert sorted(SMALLER + list(LARGE)) == sorted(zoo)


test_every_fp32_backend_reproduces_the_original_network = fp32_backends_test(SMALLER)


@pytest.mark.parametrize("model", [m for m in MODELS if keys(m, "netinput")])
def test_preprocessing_matches_the_original_transform(model: str) -> None:
    """Upper bound (MiDaS v2.1), minimal (DPT), lower bound with 14 (Depth Anything)."""
    card = get_card(model)
    ref = reference_of(model)
    for key in keys(model, "netinput"):
        _, seed, h, w = KEY.fullmatch(key).groups()  # type: ignore[union-attr]
        x = preprocess(
            test_image(int(seed), int(h), int(w)), InputPolicy.for_card(card, "keep_aspect")
        )
        assert x.shape == ref[key].shape, key
        np.testing.assert_allclose(x, ref[key], rtol=0, atol=1e-6, err_msg=key)


@pytest.mark.slow
@pytest.mark.parametrize("model", [m for m in SMALLER if keys(m, "depth")])
def test_depth_anything_end_to_end_matches_infer_image(
    model: str, exported_model: Callable[[str], Path]
) -> None:
    check_end_to_end(model, exported_model)
