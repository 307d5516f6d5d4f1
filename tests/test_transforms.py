"""Pre/post-processing against the official pipeline and its resize rule."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import MODEL, TOLERANCE, rel_error, test_image
from depthlite.errors import InvalidOptionError
from depthlite.transforms import InputPolicy, network_size, postprocess, preprocess
from depthlite.zoo import get_card as get_spec

SPEC = get_spec(MODEL)


def official_size(height: int, width: int) -> tuple[int, int]:
    """The hub Resize(upper_bound, keep_aspect_ratio, multiple 32, 256) rule, restated."""
    scale = min(256 / height, 256 / width)

    def constrain(x: float) -> int:
        y = int(np.round(x / 32) * 32)
        return int(np.floor(x / 32) * 32) if y > 256 else y

    return constrain(scale * height), constrain(scale * width)


def test_preprocess_is_bit_exact_with_the_hub_transform(
    pipeline_reference: dict[str, np.ndarray],
) -> None:
    x = preprocess(test_image(10, 480, 640), InputPolicy.for_card(SPEC, "keep_aspect"))
    assert x.dtype == np.float32
    assert np.array_equal(x, pipeline_reference["network_input"])


def test_postprocess_matches_run_py_process(pipeline_reference: dict[str, np.ndarray]) -> None:
    depth = postprocess(pipeline_reference["network_output"], 480, 640)
    assert depth.dtype == np.float32
    assert rel_error(depth, pipeline_reference["depth"]) <= TOLERANCE


@pytest.mark.parametrize(
    ("height", "width", "expected"),
    [
        (480, 640, (192, 256)),
        (1080, 1920, (128, 256)),  # 144 / 32 = 4.5 rounds half to even: 128
        (1920, 1080, (256, 128)),
        (256, 256, (256, 256)),
        (100, 100, (256, 256)),  # small images are scaled up
        (3000, 4000, (192, 256)),
        (720, 1280, (128, 256)),
        (333, 1000, (96, 256)),
        (10, 4000, (32, 256)),  # the original would produce 0 and crash
    ],
)
def test_keep_aspect_network_size(height: int, width: int, expected: tuple[int, int]) -> None:
    assert network_size(height, width, 256, 32, "keep_aspect") == expected


def test_keep_aspect_rule_matches_the_original_over_many_sizes() -> None:
    rng = np.random.default_rng(0)
    for height, width in rng.integers(40, 5000, size=(500, 2)):
        got = network_size(int(height), int(width), 256, 32, "keep_aspect")
        expected = official_size(int(height), int(width))
        # Where the original rounds a side to 0 (and then crashes), we use one block of 32.
        assert got == tuple(max(side, 32) for side in expected)
        assert max(got) <= 256 and got[0] % 32 == 0 and got[1] % 32 == 0


def test_square_mode() -> None:
    assert network_size(1080, 1920, 256, 32, "square") == (256, 256)
    policy = InputPolicy.for_card(SPEC, "square", normalize=False)
    img = test_image(3, 100, 300)
    x = preprocess(img, policy)
    # The official run_onnx.py input: RGB / 255, cubic to 256x256, no normalisation.
    expected = cv2.resize(img / 255.0, (256, 256), interpolation=cv2.INTER_CUBIC)
    assert np.array_equal(x[0], expected.transpose(2, 0, 1).astype(np.float32))


def test_sixteen_bit_input_scales_like_eight_bit() -> None:
    img8 = test_image(4, 64, 96)
    img16 = img8.astype(np.uint16) * 257  # 255 -> 65535 exactly
    policy = InputPolicy.for_card(SPEC, "keep_aspect")
    np.testing.assert_allclose(preprocess(img16, policy), preprocess(img8, policy), atol=1e-6)


def test_unknown_resize_mode_lists_the_choices() -> None:
    with pytest.raises(InvalidOptionError, match="keep_aspect, square"):
        InputPolicy.for_card(SPEC, "stretch")


def test_postprocess_keeps_same_size_output() -> None:
    out = np.random.default_rng(0).random((1, 64, 96)).astype(np.float32)
    assert np.array_equal(postprocess(out, 64, 96), out[0])


@pytest.mark.parametrize(
    ("height", "width"),
    [(1080, 1920), (333, 517), (256, 700), (257, 300), (100, 3000), (37, 41), (65, 64), (1, 300)],
)
def test_blockwise_resize_is_bit_identical_to_one_pass(height: int, width: int) -> None:
    from depthlite.transforms import _resize_float64

    img = test_image(height, height, width)
    nh, nw = network_size(height, width, 256, 32, "keep_aspect")
    expected = cv2.resize(img / 255.0, (nw, nh), interpolation=cv2.INTER_CUBIC)
    assert np.array_equal(_resize_float64(img, nh, nw), expected)
    img16 = img.astype(np.uint16) * 257 + 3
    expected16 = cv2.resize(img16 / 65535.0, (nw, nh), interpolation=cv2.INTER_CUBIC)
    assert np.array_equal(_resize_float64(img16, nh, nw), expected16)
