"""Pre- and post-processing: pure functions of numpy arrays, no state.

They follow the official MiDaS pipeline step by step (hub ``small_transform`` and ``run.py``
``process``) so the numbers match the original code: float64 cubic resize, ImageNet normalisation,
float32 cast last; bicubic back to the source size.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from depthlite.errors import InputError
from depthlite.specs import RESIZE_MODES, ModelSpec, check_choice

__all__ = ["InputPolicy", "network_size", "postprocess", "preprocess"]


@dataclass(frozen=True)
class InputPolicy:
    """How an image becomes a network input, derived from the spec and the model file."""

    size: int
    multiple_of: int
    resize: str
    # None: the model file normalises inside its graph (the official ONNX export does).
    mean: tuple[float, float, float] | None
    std: tuple[float, float, float] | None

    @classmethod
    def for_spec(cls, spec: ModelSpec, resize: str, normalize: bool = True) -> InputPolicy:
        check_choice("resize", resize, RESIZE_MODES)
        if not normalize:
            return cls(spec.input_size, spec.multiple_of, resize, None, None)
        return cls(spec.input_size, spec.multiple_of, resize, spec.mean, spec.std)


def _constrain(x: float, multiple: int, max_val: int) -> int:
    # np.round is round-half-even, as in the original Resize.constrain_to_multiple_of.
    y = int(np.round(x / multiple) * multiple)
    if y > max_val:
        y = int(np.floor(x / multiple) * multiple)
    # The original can return 0 for extreme aspect ratios and then crash in cv2.resize.
    return max(y, multiple)


def network_size(
    height: int, width: int, size: int, multiple_of: int, resize: str
) -> tuple[int, int]:
    """Network input (height, width) for an image: the official "upper_bound" rule.

    ``keep_aspect``: scale by ``min(size/H, size/W)``, each side rounded to a multiple of
    ``multiple_of`` and never above ``size``. ``square``: ``size`` x ``size``.
    """
    if resize == "square":
        return size, size
    scale = min(size / height, size / width)
    return (
        _constrain(scale * height, multiple_of, size),
        _constrain(scale * width, multiple_of, size),
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
        image.shape[0], image.shape[1], policy.size, policy.multiple_of, policy.resize
    )
    img = _resize_float64(image, h, w)
    if policy.mean is not None and policy.std is not None:
        img = (img - np.asarray(policy.mean)) / np.asarray(policy.std)
    chw = np.transpose(img, (2, 0, 1))
    return np.ascontiguousarray(chw).astype(np.float32)[None]


def postprocess(network_output: np.ndarray, height: int, width: int) -> np.ndarray:
    """Network output (h, w) or (1, h, w) -> float32 (height, width), bicubic, no clamp.

    cv2's INTER_CUBIC equals the official torch ``bicubic, align_corners=False`` to about 2e-6
    of the output range, without importing torch.
    """
    out = np.asarray(network_output, dtype=np.float32).reshape(network_output.shape[-2:])
    if out.shape == (height, width):
        return out.copy()
    return cv2.resize(out, (width, height), interpolation=cv2.INTER_CUBIC)
