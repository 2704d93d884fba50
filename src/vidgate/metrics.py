"""Prometheus metrics: the one module that knows ``prometheus_client``.

A ``Metrics`` holds one app's metric objects in its own ``CollectorRegistry`` (never the
library's global one, so several apps in one process do not collide). It is what the
rest of vidgate reports to, through ports that know nothing of Prometheus: the engine's
``EngineMeter`` (``vidgate.engine.meter``), the providers' ``UpstreamMeter``
(``vidgate.providers.meter``), and the api's request middleware, WebSocket hub and
``GET /metrics`` (``vidgate.api.observability``). README.md "Metrics" lists every metric.

Several processes behind one scrape target share their counts through
``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess mode): each process writes
its values to files there, and whichever process answers ``/metrics`` reads them all.
The library picks the mode when it is first imported, so the variable must be set before
vidgate starts; the directory must be emptied before a new set of processes starts.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from vidgate.domain.status import TaskStatus
from vidgate.engine.limits import BreakerState

logger = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # the text format every Prometheus reads
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
TASK_COUNTS_SECONDS = 5.0  # a scrape reads task counts from the database at most this often
TASK_COUNTS_TIMEOUT = 2.0  # ... and gives up on them (not on the scrape) after this long
MAX_UPSTREAM_ROUTES = 32  # route label values kept per provider; the rest count as "other"
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

BREAKER_CODES = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
UPSTREAM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)
LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

CountTasks = Callable[[], Awaitable[Mapping[TaskStatus, int]]]


def multiprocess_dir() -> str | None:
    """The directory of prometheus_client's multiprocess mode, if it is on."""
    return os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower()) or None


class Metrics:
    """One app's metrics. Implements ``EngineMeter`` and ``UpstreamMeter``; the request
    middleware, the hub and ``/metrics`` call the rest.

    Label children are looked up once per label combination and kept: the request path
    costs two dictionary reads, an increment and a histogram observation.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.multiprocess_dir = multiprocess_dir()
        if self.multiprocess_dir and values.ValueClass is values.MutexValue:
            logger.warning(
                "%s is set, but prometheus_client was imported before it was: "
                "metrics stay per process",
                MULTIPROC_ENV,
            )
            self.multiprocess_dir = None
        if self.multiprocess_dir:
            Path(self.multiprocess_dir).mkdir(parents=True, exist_ok=True)
        reg = self.registry

        self.http_requests = Counter(
            "vidgate_http_requests",
            "HTTP requests answered, by method, route template and status code.",
            ["method", "route", "status"],
            registry=reg,
        )
        self.http_duration = Histogram(
            "vidgate_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by route template.",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=reg,
        )
        self.upstream_requests = Counter(
            "vidgate_upstream_requests",
            "Requests to upstream providers, by provider, method, route template and outcome "
            "(status class, 429, or connect_error, timeout, transport_error, encode_error).",
            ["provider", "method", "route", "outcome"],
            registry=reg,
        )
        self.upstream_duration = Histogram(
            "vidgate_upstream_request_duration_seconds",
            "Time an upstream request took, failures included, by provider and route template.",
            ["provider", "method", "route"],
            buckets=UPSTREAM_BUCKETS,
            registry=reg,
        )
        self.breaker = Gauge(
            "vidgate_upstream_breaker_state",
            "Circuit breaker of each provider in this worker: 0 closed, 1 half-open (a probe "
            "is out), 2 open. Across processes: the worst.",
            ["provider"],
            registry=reg,
            multiprocess_mode="livemax",
        )
        self.in_flight = Gauge(
            "vidgate_engine_steps_in_flight",
            "Task steps (submit, poll, recover) the engine is running now.",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.check_lag_seconds = Histogram(
            "vidgate_engine_check_lag_seconds",
            "How late the engine starts a task's step after the task was due (next_check_at).",
            buckets=LAG_BUCKETS,
            registry=reg,
        )
        self.ws_connections = Gauge(
            "vidgate_ws_connections",
            "Open WebSocket connections.",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.ws_deliveries = Counter(
            "vidgate_ws_event_deliveries",
            "Task events handed to WebSocket connections, by source: 'bus' (the event came "
            "with its wake-up) or 'store' (read from task_events after a remote wake-up or "
            "a poll).",
            ["source"],
            registry=reg,
        )
        self._tasks = _TaskCounts(clock=clock)
        if self.multiprocess_dir:
            # Every process's files, summed as each metric's mode says; the task counts come
            # from the database, the same whichever process answers, so they stay outside.
            self._scraped = CollectorRegistry()
            multiprocess.MultiProcessCollector(self._scraped, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        else:
            # process_* (CPU, memory, open files), python_info and python_gc_*: what the
            # library's default registry shows. (Multiprocess mode cannot sum them.)
            self._scraped = reg
            ProcessCollector(registry=reg)
            PlatformCollector(registry=reg)
            GCCollector(registry=reg)
        self._scraped.register(self._tasks)

        self._requests: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._upstream: dict[tuple[str, str, str, str], tuple[Counter, Histogram]] = {}
        self._upstream_routes: dict[str, set[str]] = {}
        self._breakers: dict[str, Gauge] = {}
        self._deliveries: dict[str, Counter] = {}

    # -- the api -----------------------------------------------------------------------

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        """One HTTP request answered (the request middleware)."""
        if method not in HTTP_METHODS:
            method = "other"  # a client picks the method: keep the label bounded
        key = (method, route, status)
        children = self._requests.get(key)
        if children is None:
            children = self._requests[key] = (
                self.http_requests.labels(method, route, str(status)),
                self.http_duration.labels(method, route),
            )
        children[0].inc()
        children[1].observe(seconds)

    def websocket_opened(self) -> None:
        self.ws_connections.inc()

    def websocket_closed(self) -> None:
        self.ws_connections.dec()

    def delivered(self, source: str, count: int) -> None:
        """``count`` WebSocket connections were handed one task event (the hub)."""
        child = self._deliveries.get(source)
        if child is None:
            child = self._deliveries[source] = self.ws_deliveries.labels(source)
        child.inc(count)

    def watch_tasks(self, count: CountTasks) -> None:
        """Serve ``vidgate_tasks``, counted by ``count`` (one GROUP BY) at scrape time."""
        self._tasks.source = count

    async def exposition(self) -> bytes:
        """The body of ``GET /metrics`` (``CONTENT_TYPE``)."""
        await self._tasks.refresh()
        return generate_latest(self._scraped)

    def close(self) -> None:
        """At shutdown: in multiprocess mode, take this process out of the live gauges."""
        if self.multiprocess_dir:
            multiprocess.mark_process_dead(os.getpid(), self.multiprocess_dir)  # type: ignore[no-untyped-call]

    # -- EngineMeter -------------------------------------------------------------------

    def steps_in_flight(self, count: int) -> None:
        self.in_flight.set(count)

    def check_lag(self, seconds: float) -> None:
        self.check_lag_seconds.observe(max(0.0, seconds))

    def breaker_state(self, provider: str, state: BreakerState) -> None:
        child = self._breakers.get(provider)
        if child is None:
            child = self._breakers[provider] = self.breaker.labels(provider)
        child.set(BREAKER_CODES[state])

    # -- UpstreamMeter -----------------------------------------------------------------

    def upstream_request(
        self, *, provider: str, method: str, route: str, outcome: str, seconds: float
    ) -> None:
        key = (provider, method, route, outcome)
        children = self._upstream.get(key) or self._upstream_children(key)
        children[0].inc()
        children[1].observe(seconds)

    def _upstream_children(self, key: tuple[str, str, str, str]) -> tuple[Counter, Histogram]:
        provider, method, route, outcome = key
        routes = self._upstream_routes.setdefault(provider, set())
        if route not in routes and len(routes) >= MAX_UPSTREAM_ROUTES:
            # A provider with more routes than any protocol has: ids the template kept.
            # Counted, not remembered, so neither labels nor this cache grow.
            other = (provider, method, "other", outcome)
            if other not in self._upstream:
                self._upstream[other] = self._new_upstream(other)
            return self._upstream[other]
        routes.add(route)
        children = self._upstream[key] = self._new_upstream(key)
        return children

    def _new_upstream(self, key: tuple[str, str, str, str]) -> tuple[Counter, Histogram]:
        provider, method, route, outcome = key
        return (
            self.upstream_requests.labels(provider, method, route, outcome),
            self.upstream_duration.labels(provider, method, route),
        )


class _TaskCounts(Collector):
    """``vidgate_tasks{status}``, from the database, read at most every few seconds.

    A failed read leaves the metric out of the scrape (an absent series, not a stale one)
    and is tried again after the same interval, so a database outage is not hammered.
    """

    def __init__(self, *, clock: Callable[[], float]) -> None:
        self.source: CountTasks | None = None
        self._clock = clock
        self._counts: dict[str, int] | None = None
        self._read_at = -math.inf
        self._lock = asyncio.Lock()
        self._failing = False

    async def refresh(self) -> None:
        if self.source is None or self._clock() - self._read_at < TASK_COUNTS_SECONDS:
            return
        async with self._lock:  # concurrent scrapes share one read
            if self._clock() - self._read_at < TASK_COUNTS_SECONDS:
                return
            try:
                counts = await asyncio.wait_for(self.source(), TASK_COUNTS_TIMEOUT)
            except Exception as exc:
                self._counts = None
                if not self._failing:
                    logger.warning("metrics: cannot count tasks (%s: %s)", type(exc).__name__, exc)
                self._failing = True
            else:
                self._counts = {str(s): counts.get(s, 0) for s in TaskStatus}
                self._failing = False
            self._read_at = self._clock()

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def collect(self) -> Iterable[Metric]:
        if self._counts is None:
            return []
        family = self._family()
        for status, count in self._counts.items():
            family.add_metric([status], count)
        return [family]

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "vidgate_tasks",
            "Tasks in the database by status (all of them, not only this process's).",
            labels=["status"],
        )
