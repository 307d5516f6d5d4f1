"""Scale-and-shift alignment: the one least-squares fit that calibration and evaluation share.

Relative depth models are right only up to an affine map in their output space (inverse depth or
disparity), so both "two known distances" and the MiDaS evaluation protocol solve the same
problem: the ``s``, ``t`` minimising ``sum w * (s * x + t - y)**2``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["HUBER_K", "fit_huber", "fit_scale", "fit_scale_shift"]

# Huber's tuning constant: 95 % efficiency on Gaussian noise, as in every statistics package.
HUBER_K = 1.345
# MAD -> standard deviation for Gaussian noise.
_MAD_TO_SIGMA = 1.4826


def fit_scale_shift(
    x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None
) -> tuple[float, float]:
    """``(s, t)`` minimising the (weighted) squared error of ``s * x + t`` against ``y``.

    Solved from the 2x2 normal equations in float64 (the sums of a 1080p map lose digits in
    float32). Raises ``ValueError`` when ``x`` is constant over the weighted points: every
    ``s`` then fits equally well, so there is no answer to give.
    """
    xs = np.asarray(x, dtype=np.float64).ravel()
    ys = np.asarray(y, dtype=np.float64).ravel()
    w = np.ones_like(xs) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if not (xs.shape == ys.shape == w.shape):
        raise ValueError(f"x, y and weights differ in size: {xs.size}, {ys.size}, {w.size}")
    a00, a01, a11 = np.sum(w * xs * xs), np.sum(w * xs), np.sum(w)
    b0, b1 = np.sum(w * xs * ys), np.sum(w * ys)
    det = a00 * a11 - a01 * a01
    # Relative to the scale of the terms: a determinant of 1e-300 can be a genuine fit.
    if a11 <= 0 or abs(det) <= 1e-12 * max(a00 * a11, np.finfo(np.float64).tiny):
        raise ValueError("the points have (nearly) the same model output: no unique fit")
    scale = (a11 * b0 - a01 * b1) / det
    shift = (-a01 * b0 + a00 * b1) / det
    return float(scale), float(shift)


def fit_scale(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> float:
    """``s`` minimising the (weighted) squared error of ``s * x`` against ``y`` (no shift)."""
    xs = np.asarray(x, dtype=np.float64).ravel()
    ys = np.asarray(y, dtype=np.float64).ravel()
    w = np.ones_like(xs) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    denom = np.sum(w * xs * xs)
    if denom <= 0:
        raise ValueError("the points' model outputs are all zero: no scale fits")
    return float(np.sum(w * xs * ys) / denom)


def fit_huber(
    x: np.ndarray,
    y: np.ndarray,
    *,
    shift: bool = True,
    iterations: int = 100,
    tol: float = 1e-12,
) -> tuple[float, float, np.ndarray]:
    """``(s, t, weights)`` of a Huber fit of ``s * x + t`` (``t = 0`` if not ``shift``) to ``y``.

    Iteratively reweighted least squares on the two fits above: a point whose residual is
    above ``HUBER_K`` robust standard deviations (from the MAD of the residuals) gets weight
    ``k * sigma / |r|`` instead of 1, so one wrong measurement cannot drag the fit. When the
    other points agree exactly the MAD is 0 and the fit tends to the least-absolute-deviations
    line through them; sigma has a floor relative to ``y`` so the weights stay finite. The
    returned ``weights`` are the final ones (1 for points the fit trusts fully).
    """
    xs = np.asarray(x, dtype=np.float64).ravel()
    ys = np.asarray(y, dtype=np.float64).ravel()
    w = np.ones_like(xs)
    floor = 1e-9 * max(float(np.max(np.abs(ys))), np.finfo(np.float64).tiny)
    scale, offset = _weighted_fit(xs, ys, w, shift)
    for _ in range(iterations):
        residual = np.abs(scale * xs + offset - ys)
        sigma = max(_MAD_TO_SIGMA * float(np.median(residual)), floor)
        w = np.minimum(1.0, HUBER_K * sigma / np.maximum(residual, np.finfo(np.float64).tiny))
        new_scale, new_offset = _weighted_fit(xs, ys, w, shift)
        change = abs(new_scale - scale) + abs(new_offset - offset)
        scale, offset = new_scale, new_offset
        if change <= tol * (abs(scale) + abs(offset)):
            break
    return scale, offset, w


def _weighted_fit(x: np.ndarray, y: np.ndarray, w: np.ndarray, shift: bool) -> tuple[float, float]:
    if shift:
        return fit_scale_shift(x, y, w)
    return fit_scale(x, y, w), 0.0
