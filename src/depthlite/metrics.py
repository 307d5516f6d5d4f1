"""Agreement between two relative depth maps, the standard way for scale-and-shift-free outputs.

MiDaS predicts inverse depth up to an unknown scale and shift, so a candidate is first aligned to
the reference by least squares (``s * candidate + t``), then compared: AbsRel (mean relative
error) and delta<1.25 (share of pixels within 25 %).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Agreement", "agreement", "align_scale_shift"]

# Pixels whose reference is below this share of its maximum are left out of AbsRel: relative
# error is undefined at zero, and MiDaS's ReLU head outputs exact zeros.
_VALID_FRACTION = 1e-3


@dataclass(frozen=True)
class Agreement:
    """How closely a candidate depth map follows a reference after alignment."""

    absrel: float
    delta1: float
    scale: float
    shift: float


def align_scale_shift(candidate: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """Least-squares ``(s, t)`` minimising ``|s * candidate + t - reference|^2``."""
    c = candidate.astype(np.float64).ravel()
    r = reference.astype(np.float64).ravel()
    design = np.stack([c, np.ones_like(c)], axis=1)
    (scale, shift), *_ = np.linalg.lstsq(design, r, rcond=None)
    return float(scale), float(shift)


def agreement(candidate: np.ndarray, reference: np.ndarray) -> Agreement:
    """AbsRel and delta<1.25 of ``candidate`` against ``reference`` after alignment."""
    if candidate.shape != reference.shape:
        raise ValueError(f"shape mismatch: {candidate.shape} vs {reference.shape}")
    scale, shift = align_scale_shift(candidate, reference)
    aligned = scale * candidate.astype(np.float64) + shift
    ref = reference.astype(np.float64)
    valid = ref > _VALID_FRACTION * max(float(ref.max()), np.finfo(np.float64).tiny)
    if not valid.any():
        return Agreement(absrel=0.0, delta1=1.0, scale=scale, shift=shift)
    a, b = aligned[valid], ref[valid]
    absrel = float(np.mean(np.abs(a - b) / b))
    ratio = np.maximum(a / b, b / np.maximum(a, np.finfo(np.float64).tiny))
    delta1 = float(np.mean((a > 0) & (ratio < 1.25)))
    return Agreement(absrel=absrel, delta1=delta1, scale=scale, shift=shift)
