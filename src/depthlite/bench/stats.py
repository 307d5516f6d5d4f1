"""Small timing helpers shared by the bench worker and the benchmark scripts."""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

__all__ = ["Timing", "peak_rss_mb", "percentile", "throughput", "time_calls"]


@dataclass(frozen=True)
class Timing:
    median_ms: float
    p95_ms: float
    runs: int

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def time_calls(fn: Callable[[], object], repeats: int, warmup: int = 3) -> Timing:
    """Median and p95 wall time of ``fn`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000.0)
    return Timing(statistics.median(samples), percentile(samples, 95), repeats)


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
