"""Prometheus metrics of one app, in its own registry.

A per-app ``CollectorRegistry`` (never the process-wide default) lets two apps live in one
process, as the tests do, without "duplicated timeseries" errors. The pool's state is not
mirrored into gauges on every change: a custom collector reads :meth:`WorkerPool.stats` at
scrape time, so the numbers cannot drift from the pool's own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from depthlite.server.pool import PoolStats

__all__ = ["CONTENT_TYPE_LATEST", "ServerMetrics"]

logger = logging.getLogger(__name__)

# Seconds. Stages span sub-millisecond (decode of a small PNG) to seconds (a 40 MP side image).
_STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class _PoolCollector(Collector):
    """Queue depth, busy workers, job outcomes and rejections, read from the pool on scrape."""

    def __init__(self, stats: Callable[[], PoolStats], ready: Callable[[], bool]) -> None:
        self._stats = stats
        self._ready = ready

    def describe(self) -> list[Metric]:
        # Empty: the registry then skips its name-clash check instead of calling collect()
        # at registration, before the pool exists.
        return []

    def collect(self) -> Iterator[Metric]:
        s = self._stats()
        yield GaugeMetricFamily("depthlite_pool_workers", "Inference worker threads", s.workers)
        yield GaugeMetricFamily(
            "depthlite_pool_workers_alive",
            "Worker threads running (drops only on shutdown)",
            s.alive,
        )
        yield GaugeMetricFamily(
            "depthlite_pool_busy_workers", "Workers running a job (in-flight inference)", s.busy
        )
        yield GaugeMetricFamily("depthlite_pool_queue_depth", "Jobs waiting for a worker", s.queued)
        yield GaugeMetricFamily(
            "depthlite_pool_queue_capacity", "Jobs that may wait for a worker", s.queue_size
        )
        jobs = CounterMetricFamily(
            "depthlite_pool_jobs", "Jobs run by the workers, by outcome", labels=["outcome"]
        )
        jobs.add_metric(["ok"], s.completed)
        jobs.add_metric(["error"], s.failed)
        yield jobs
        rejected = CounterMetricFamily(
            "depthlite_pool_rejections",
            "Jobs refused (queue full, queue wait timeout, shutting down)",
            labels=["reason"],
        )
        rejected.add_metric(["queue_full"], s.rejected_full)
        rejected.add_metric(["queue_timeout"], s.timed_out)
        rejected.add_metric(["shutting_down"], s.rejected_closed)
        yield rejected
        yield GaugeMetricFamily(
            "depthlite_model_ready", "1 once the model is loaded and warmed up", self._ready()
        )


class ServerMetrics:
    """The metrics of one app; :meth:`render` gives the Prometheus text exposition."""

    def __init__(self, stats: Callable[[], PoolStats], ready: Callable[[], bool]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "depthlite_http_requests",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "depthlite_http_request_duration_seconds",
            "HTTP request latency by route template and method",
            ["route", "method"],
            buckets=_REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "depthlite_http_requests_in_flight",
            "HTTP requests being handled",
            registry=self.registry,
        )
        self.stage_seconds = Histogram(
            "depthlite_stage_duration_seconds",
            "Time per pipeline stage of /v1/depth (queue, decode, ..., encode)",
            ["stage"],
            buckets=_STAGE_BUCKETS,
            registry=self.registry,
        )
        self.live_connections = Gauge(
            "depthlite_live_connections",
            "Open live-depth WebSocket connections",
            registry=self.registry,
        )
        self.live_frames = Counter(
            "depthlite_live_frames",
            "Live frames by outcome (answered, dropped for a newer one, busy, error)",
            ["outcome"],
            registry=self.registry,
        )
        self.registry.register(_PoolCollector(stats, ready))

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.request_seconds.labels(route, method).observe(seconds)

    def observe_stages(self, timings_ms: Mapping[str, float]) -> None:
        for stage, ms in timings_ms.items():
            self.stage_seconds.labels(stage).observe(ms / 1000.0)

    def render(self) -> bytes:
        return generate_latest(self.registry)
