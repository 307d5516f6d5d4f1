"""Small timing helpers shared by the bench worker and the benchmark scripts."""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

__all__ = ["Timing", "peak_rss_mb", "percentile", "pipeline_repeats", "throughput", "time_calls"]


@dataclass(frozen=True)
class Timing:
    median_ms: float
    p95_ms: float
    runs: int

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def time_calls(
    fn: Callable[[], object], repeats: int, warmup: int = 3, warmup_budget_s: float = 2.0
) -> Timing:
    """Median and p95 wall time of ``fn`` over ``repeats`` calls after the warm-up calls.

    Warm-up: ``warmup`` calls, but none after ``warmup_budget_s`` seconds of them (at least
    one call): a large network at 30-90 s a call is warm after one, and three would add
    minutes per measurement without changing what is measured.
    """
    started = time.perf_counter()
    for i in range(warmup):
        if i and time.perf_counter() - started >= warmup_budget_s:
            break
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000.0)
    return Timing(statistics.median(samples), percentile(samples, 95), repeats)


def pipeline_repeats(repeats: int) -> int:
    """Timed whole-pipeline calls for ``repeats`` network calls: half, from 5, at most all."""
    return min(repeats, max(5, repeats // 2))


def percentile(samples: list[float], pct: float) -> float:
    """Nearest-rank percentile: never below the median, whatever the sample count."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def throughput(fn: Callable[[], object], callers: int, calls_each: int) -> float:
    """Calls per second with ``callers`` threads each making ``calls_each`` calls."""
    barrier = threading.Barrier(callers + 1)
    errors: list[BaseException] = []

    def work() -> None:
        barrier.wait()
        try:
            for _ in range(calls_each):
                fn()
        except BaseException as exc:  # re-raised below, in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(callers)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return callers * calls_each / elapsed


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM), in MB; 0 where /proc is missing."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0
