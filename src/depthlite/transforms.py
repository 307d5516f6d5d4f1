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


def preprocess(image: np.ndarray, policy: InputPolicy) -> np.ndarray:
    """RGB uint8/uint16 (H, W, 3) -> float32 (1, 3, h, w) network input."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"expected an RGB image of shape (H, W, 3), got {image.shape}")
    scale = 65535.0 if image.dtype == np.uint16 else 255.0
    img = image.astype(np.float64)
    img /= scale  # in place: a 1080p float64 copy is 50 MB; do not make two
    h, w = network_size(
        image.shape[0], image.shape[1], policy.size, policy.multiple_of, policy.resize
    )
    img = cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC)
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
