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
from depthlite.resample import network_input, resize_float32, resize_float64
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

    def network_size(self, height: int, width: int) -> tuple[int, int]:
        """The network input (height, width) an image of this size gets."""
        return network_size(height, width, self.size, self.multiple_of, self.resize, rule=self.rule)


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


# The exact resize lives in ``resample`` (kept importable here under its old name).
_resize_float64 = resize_float64


def preprocess(image: np.ndarray, policy: InputPolicy, *, fast: bool = False) -> np.ndarray:
    """RGB uint8/uint16 (H, W, 3) -> float32 (1, 3, h, w) network input.

    ``fast``: the cubic resize in float32 instead of the official float64 (values change
    slightly; see ``resample.resize_float32``).
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"expected an RGB image of shape (H, W, 3), got {image.shape}")
    h, w = policy.network_size(image.shape[0], image.shape[1])
    if not fast:
        return network_input(image, h, w, policy.mean, policy.std)
    img = resize_float32(image, h, w)
    if policy.mean is not None and policy.std is not None:
        img = (img - np.asarray(policy.mean, np.float32)) / np.asarray(policy.std, np.float32)
    return np.ascontiguousarray(np.transpose(img, (2, 0, 1)))[None]


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
