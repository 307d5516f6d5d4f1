"""Pre- and post-processing: pure functions of numpy arrays, no state.

They follow the original pipelines step by step (MiDaS hub transforms and ``run.py``
``process``; Depth Anything V2's ``image2tensor`` and ``infer_image``) so the numbers match the
original code: float64 cubic resize by the card's rule, normalisation, float32 cast last; back to
the source size bicubic (MiDaS) or bilinear with aligned corners (Depth Anything).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from depthlite.errors import InputError, InvalidOptionError
from depthlite.options import RESIZE_MODES, check_choice
from depthlite.zoo.cards import ModelCard, ResizeRule, Upsampling

__all__ = ["InputPolicy", "network_size", "postprocess", "preprocess"]


@dataclass(frozen=True)
class InputPolicy:
    """How an image becomes a network input, derived from the card and the model file."""

    size: int
    multiple_of: int
    resize: str  # the user's choice: keep_aspect (the card's rule) or square
    rule: ResizeRule
    # None: the model file normalises inside its graph (the official ONNX exports do).
    mean: tuple[float, float, float] | None
    std: tuple[float, float, float] | None

    @classmethod
    def for_card(
        cls,
        card: ModelCard,
        resize: str,
        normalize: bool = True,
        size: int | None = None,
    ) -> InputPolicy:
        """``size`` overrides the card's (``--input-size``; a multiple of ``multiple_of``)."""
        check_choice("resize", resize, RESIZE_MODES)
        pre = card.preprocess
        side = pre.size if size is None else size
        if side < pre.multiple_of or side % pre.multiple_of:
            raise InvalidOptionError(
                f"input size {side} does not fit {card.name}: use a multiple of {pre.multiple_of}"
            )
        mean, std = (pre.mean, pre.std) if normalize else (None, None)
        return cls(side, pre.multiple_of, resize, pre.resize_rule, mean, std)


def _constrain(x: float, multiple: int, *, max_val: int | None = None, min_val: int = 0) -> int:
    """The original ``Resize.constrain_to_multiple_of``: round, then floor/ceil into bounds."""
    # np.round is round-half-even, as in the original.
    y = int(np.round(x / multiple) * multiple)
    if max_val is not None and y > max_val:
        y = int(np.floor(x / multiple) * multiple)
    if y < min_val:
        y = int(np.ceil(x / multiple) * multiple)
    # The original can return 0 for extreme aspect ratios and then crash in cv2.resize.
    return max(y, multiple)


def network_size(
    height: int,
    width: int,
    size: int,
    multiple_of: int,
    resize: str,
    *,
    rule: ResizeRule = "upper_bound",
) -> tuple[int, int]:
    """Network input (height, width) for an image, by the original ``Resize`` rules.

    ``square``: ``size`` x ``size``. ``keep_aspect`` scales both sides by one factor of
    ``size / side``: the smaller (``upper_bound``: never above ``size``), the larger
    (``lower_bound``: never below) or the one closer to 1 (``minimal``), then rounds each side
    to a multiple of ``multiple_of``.
    """
    if resize == "square":
        return size, size
    scale_h, scale_w = size / height, size / width
    if rule == "upper_bound":
        scale = min(scale_h, scale_w)
        bounds = {"max_val": size}
    elif rule == "lower_bound":
        scale = max(scale_h, scale_w)
        bounds = {"min_val": size}
    else:  # minimal
        scale = scale_w if abs(1 - scale_w) < abs(1 - scale_h) else scale_h
        bounds = {}
    return (
        _constrain(scale * height, multiple_of, **bounds),
        _constrain(scale * width, multiple_of, **bounds),
    )


# Rows converted to float64 at a time: the whole photo in float64 would be 50 MB at 1080p and
# about 1 GB at the 40 MP cap.
_ROW_BLOCK = 64


# x / 255 for every 8-bit value, computed once by numpy: a table lookup gives the very same
# float64 values as dividing, in one pass instead of two.
_UNIT_8BIT = np.arange(256, dtype=np.float64).reshape(1, 256) / 255.0
_UNIT_8BIT.flags.writeable = False


def _to_unit_float64(block: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Pixels / max value (255 or 65535) as float64 into ``out``, exactly as ``block / max``."""
    if block.dtype == np.uint8:
        return cv2.LUT(block, _UNIT_8BIT, dst=out)
    return np.divide(block, 65535.0, out=out, dtype=np.float64)


def _resize_float64(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``cv2.resize(image / max, (width, height), INTER_CUBIC)`` in float64, in two passes.

    Cubic resizing is separable and cv2 computes it as a horizontal then a vertical pass, so
    resizing blocks of rows horizontally and then the narrow result vertically gives the same
    bits (tested) while only a block of rows is ever held in float64. Rows are independent in
    the horizontal pass (the vertical scale is 1, whose cubic weights are exactly 0, 1, 0, 0),
    so blocks of rows need no overlap.
    """
    rows = image.shape[0]
    narrow = np.empty((rows, width, image.shape[2]), dtype=np.float64)
    unit = np.empty((min(_ROW_BLOCK, rows), *image.shape[1:]), dtype=np.float64)
    for top in range(0, rows, _ROW_BLOCK):
        bottom = min(top + _ROW_BLOCK, rows)
        block = _to_unit_float64(image[top:bottom], unit[: bottom - top])
        # Both passes write into preallocated buffers (contiguous rows of ``narrow``): no
        # per-block allocation or copy of the resized rows.
        dst = narrow[top:bottom]
        out = cv2.resize(block, (width, bottom - top), dst=dst, interpolation=cv2.INTER_CUBIC)
        if out is not dst:  # cv2 reallocated (it should not): keep the values anyway
            dst[...] = out
    return cv2.resize(narrow, (width, height), interpolation=cv2.INTER_CUBIC)


def preprocess(image: np.ndarray, policy: InputPolicy) -> np.ndarray:
    """RGB uint8/uint16 (H, W, 3) -> float32 (1, 3, h, w) network input."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"expected an RGB image of shape (H, W, 3), got {image.shape}")
    h, w = network_size(
        image.shape[0],
        image.shape[1],
        policy.size,
        policy.multiple_of,
        policy.resize,
        rule=policy.rule,
    )
    img = _resize_float64(image, h, w)
    if policy.mean is not None and policy.std is not None:
        img = (img - np.asarray(policy.mean)) / np.asarray(policy.std)
    chw = np.transpose(img, (2, 0, 1))
    return np.ascontiguousarray(chw).astype(np.float32)[None]


def postprocess(
    network_output: np.ndarray, height: int, width: int, upsampling: Upsampling = "bicubic"
) -> np.ndarray:
    """Network output (h, w) or (1, h, w) -> float32 (height, width), no clamp.

    ``bicubic``: cv2's INTER_CUBIC equals the official torch ``bicubic, align_corners=False`` to
    about 2e-6 of the output range, without importing torch. ``bilinear_align_corners``: torch's
    ``bilinear, align_corners=True`` (Depth Anything V2), computed separably in float32.
    """
    out = np.asarray(network_output, dtype=np.float32).reshape(network_output.shape[-2:])
    if out.shape == (height, width):
        return out.copy()
    if upsampling == "bilinear_align_corners":
        return _bilinear_align_corners(out, height, width)
    return cv2.resize(out, (width, height), interpolation=cv2.INTER_CUBIC)


def _axis_weights(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Left indices, right indices and right weights of align_corners=True sampling."""
    scale = (src - 1) / (dst - 1) if dst > 1 else 0.0
    pos = np.arange(dst, dtype=np.float32) * np.float32(scale)
    left = np.minimum(pos.astype(np.int64), src - 1)
    right = np.minimum(left + 1, src - 1)
    return left, right, (pos - left).astype(np.float32)


def _bilinear_align_corners(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``F.interpolate(mode="bilinear", align_corners=True)`` of a 2-D float32 map."""
    top, bottom, wy = _axis_weights(image.shape[0], height)
    rows = image[top] * (1 - wy)[:, None] + image[bottom] * wy[:, None]
    left, right, wx = _axis_weights(image.shape[1], width)
    out = rows[:, left] * (1 - wx) + rows[:, right] * wx
    return np.ascontiguousarray(out, dtype=np.float32)
