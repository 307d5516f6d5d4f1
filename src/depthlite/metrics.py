"""Agreement between two relative depth maps, the standard way for scale-and-shift-free outputs.

MiDaS predicts inverse depth up to an unknown scale and shift, so a candidate is first aligned to
the reference by least squares (``s * candidate + t``), then compared: AbsRel (mean relative
error) and delta<1.25 (share of pixels within 25 %).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from depthlite.geometry.align import fit_scale_shift

__all__ = ["DELTA_THRESHOLD", "Agreement", "absrel_delta1", "agreement", "align_scale_shift"]

DELTA_THRESHOLD = 1.25

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
    """Least-squares ``(s, t)`` minimising ``|s * candidate + t - reference|^2``.

    A constant candidate has no unique fit; it is aligned to the reference's mean (scale 0),
    which is the least-squares answer of smallest norm and gives it the error it deserves.
    """
    try:
        return fit_scale_shift(candidate, reference)
    except ValueError:
        return 0.0, float(np.mean(reference, dtype=np.float64))


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
    absrel, delta1 = absrel_delta1(aligned[valid], ref[valid])
    return Agreement(absrel=absrel, delta1=delta1, scale=scale, shift=shift)


def absrel_delta1(prediction: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """AbsRel and the share of values within ``DELTA_THRESHOLD`` of ``truth`` (all > 0).

    Both are float64 arrays of the same shape. A prediction <= 0 is never within the threshold
    of a positive value; it still counts in AbsRel by its distance.
    """
    absrel = float(np.mean(np.abs(prediction - truth) / truth))
    positive = prediction > 0
    ratio = np.full(prediction.shape, np.inf)
    ratio[positive] = np.maximum(
        prediction[positive] / truth[positive], truth[positive] / prediction[positive]
    )
    return absrel, float(np.mean(ratio < DELTA_THRESHOLD))
