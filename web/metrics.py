"""Prometheus metrics of one API process, on a registry owned by the app (no globals)."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector


class _CallbackCollector(Collector):
    def __init__(self, fn: Callable[[], Iterable[Metric]]) -> None:
        self._fn = fn

    def collect(self) -> Iterable[Metric]:
        return self._fn()


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._refreshers: list[Callable[[], Awaitable[None]]] = []
        # CPU seconds, resident memory, open files of this process (process_* series).
        ProcessCollector(registry=self.registry)
        self.requests = Counter("http_requests_total", "HTTP requests by route and status",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("http_request_duration_seconds", "HTTP request latency by route",
                                 ["method", "route"], registry=self.registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        # Labelled children by label values: `labels()` takes a lock and builds a tuple per call;
        # a dict hit is cheaper on every request. As many entries as the registry has series.
        self._counted: dict[tuple[str, str, int], Any] = {}
        self._timed: dict[tuple[str, str], Any] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one HTTP request and record its latency."""
        counter = self._counted.get((method, route, status))
        if counter is None:
            counter = self._counted[(method, route, status)] = self.requests.labels(method, route, str(status))
        counter.inc()
        timer = self._timed.get((method, route))
        if timer is None:
            timer = self._timed[(method, route)] = self.latency.labels(method, route)
        timer.observe(seconds)

    def add_collector(self, fn: Callable[[], Iterable[Metric]]) -> None:
        """Register a callback yielding metric families at scrape time (actors, queues, limiter)."""
        self.registry.register(_CallbackCollector(fn))

    def add_refresher(self, fn: Callable[[], Awaitable[None]]) -> None:
        """Register an async callback run before each scrape (figures that need I/O)."""
        self._refreshers.append(fn)

    async def refresh(self, timeout: float = 2.0) -> None:
        """Run the refreshers; a slow or failing one leaves its gauges as they were."""
        if self._refreshers:
            await asyncio.gather(*(asyncio.wait_for(fn(), timeout) for fn in self._refreshers),
                                 return_exceptions=True)

    def render(self) -> bytes:
        return generate_latest(self.registry)
