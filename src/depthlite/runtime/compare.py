"""A candidate model file against the FP32 reference: agreement after alignment, and speed.

Agreement is what ``depthlite quantize`` prints: each photo through the card's preprocessing,
the network and the upsampling back to the photo's size, then AbsRel and delta<1.25 after the
least-squares scale and shift (:func:`depthlite.metrics.agreement`); here the worst over the
photos and both resize modes (one mode for a file with a fixed input). Speed is the median
network time at the card's default input (the first photo, keep_aspect), timed alternately
with the reference in the same process so that a machine whose load drifts moves both alike.

Nothing here touches the cache or picks files: the caller passes resolved files.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from depthlite.errors import DepthliteError
from depthlite.metrics import agreement
from depthlite.options import DEFAULT_RESIZE, RESIZE_MODES
from depthlite.runtime.base import Backend, load_backend_class
from depthlite.runtime.metadata import check_fits, normalizes_inside
from depthlite.transforms import InputPolicy, postprocess, preprocess
from depthlite.zoo.cards import ModelCard

__all__ = ["MAX_ROUNDS", "MIN_ROUNDS", "Measurement", "SessionFile", "compare_sessions"]

logger = logging.getLogger(__name__)

# Alternated timing rounds (one run of each session per round). Five medians are steady enough
# for a 1.1x margin; a ViT-Large at 2 s a run stops after MIN_ROUNDS once the budget is spent.
MAX_ROUNDS = 5
MIN_ROUNDS = 3
_TIME_BUDGET_S = 8.0


@dataclass(frozen=True)
class SessionFile:
    """A resolved model file and the precision to open it with."""

    precision: str
    path: Path
    official: bool = False
    preoptimized: bool = False


@dataclass(frozen=True)
class Measurement:
    """One candidate against the FP32 reference (the reference itself: AbsRel 0, speedup 1)."""

    precision: str
    absrel: float  # worst over photos and resize modes
    delta1: float  # worst (lowest) over photos and resize modes
    ms: float  # median network ms at the default input
    reference_ms: float  # the reference's median in the same alternated rounds

    @property
    def speedup(self) -> float:
        """How many times faster than FP32 (above 1: faster)."""
        return self.reference_ms / self.ms if self.ms > 0 else float("inf")


class _Opened:
    """One session with the photos preprocessed for it (by what its file says it expects)."""

    def __init__(
        self,
        card: ModelCard,
        backend: str,
        file: SessionFile,
        threads: int | None,
        photos: Sequence[np.ndarray],
    ) -> None:
        self.file = file
        self.card = card
        self.session: Backend = load_backend_class(backend)(
            file.path, card, threads, file.precision, preoptimized=file.preoptimized
        )
        fmt = self.session.model_format
        check_fits(card, dict(fmt.metadata), fmt.fixed_size, fmt.channels, str(file.path))
        inside = normalizes_inside(card, fmt, file.path, official=file.official)
        # The default mode first: its first input is the one timed.
        others = tuple(mode for mode in RESIZE_MODES if mode != DEFAULT_RESIZE)
        modes = ("square",) if fmt.fixed_size else (DEFAULT_RESIZE, *others)
        self.inputs = [
            (rgb.shape[:2], preprocess(rgb, InputPolicy.for_card(card, mode, normalize=not inside)))
            for rgb in photos
            for mode in modes
        ]

    def depths(self) -> list[np.ndarray]:
        """Every input through the network and back at its photo's size (also the warm-up)."""
        rule = self.card.output.upsampling
        return [postprocess(self.session.run(x), h, w, rule) for (h, w), x in self.inputs]

    def time_once(self) -> float:
        x = self.inputs[0][1]
        start = time.perf_counter()
        self.session.run(x)
        return (time.perf_counter() - start) * 1000.0

    def close(self) -> None:
        self.session.close()


def _worst_agreement(
    depths: Sequence[np.ndarray], reference: Sequence[np.ndarray]
) -> tuple[float, float]:
    scores = [agreement(got, ref) for got, ref in zip(depths, reference, strict=True)]
    return max(s.absrel for s in scores), min(s.delta1 for s in scores)


def _alternated_ms(reference: _Opened, candidate: _Opened) -> tuple[float, float]:
    """Median ms of (candidate, reference), one run of each per round."""
    ref_ms: list[float] = []
    cand_ms: list[float] = []
    start = time.perf_counter()
    for _ in range(MAX_ROUNDS):
        cand_ms.append(candidate.time_once())
        ref_ms.append(reference.time_once())
        if len(ref_ms) >= MIN_ROUNDS and time.perf_counter() - start > _TIME_BUDGET_S:
            break
    return statistics.median(cand_ms), statistics.median(ref_ms)


def compare_sessions(
    card: ModelCard,
    backend: str,
    reference: SessionFile,
    candidates: Sequence[SessionFile],
    *,
    photos: Sequence[np.ndarray],
    threads: int | None = None,
) -> tuple[list[Measurement], list[tuple[str, str]]]:
    """The reference (first) and each candidate measured as the module says, and the
    candidates that could not be opened (precision, why).

    At most two sessions are open at a time (the reference and one candidate), so a large
    model's measurement peaks at its FP32 session plus one other. The reference failing to
    open raises.
    """
    if not photos:
        raise ValueError("agreement needs at least one photo")
    ref = _Opened(card, backend, reference, threads, photos)
    failed: list[tuple[str, str]] = []
    try:
        ref_depths = ref.depths()
        ref_ms = statistics.median(ref.time_once() for _ in range(MIN_ROUNDS))
        results = [Measurement(reference.precision, 0.0, 1.0, ref_ms, ref_ms)]
        for file in candidates:
            try:
                opened = _Opened(card, backend, file, threads, photos)
            except DepthliteError as exc:  # this candidate cannot run here; the others may
                logger.warning("%s %s cannot be measured: %s", card.name, file.precision, exc)
                failed.append((file.precision, str(exc)))
                continue
            try:
                absrel, delta1 = _worst_agreement(opened.depths(), ref_depths)
                ms, paired_ref_ms = _alternated_ms(ref, opened)
            finally:
                opened.close()
            found = Measurement(file.precision, absrel, delta1, ms, paired_ref_ms)
            logger.info(
                "%s %s: AbsRel %.4f, delta<1.25 %.4f, %.1f ms (fp32 %.1f ms, %.2fx)",
                card.name, file.precision, absrel, delta1, ms, paired_ref_ms, found.speedup,
            )  # fmt: skip
            results.append(found)
        return results, failed
    finally:
        ref.close()
