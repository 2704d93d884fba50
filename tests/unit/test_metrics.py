"""The metrics' own rules: bounded labels, the ports' reports, several apps in one process.

What a running vidgate exposes is tested on real processes in
tests/integration/test_metrics.py.
"""

from __future__ import annotations

import time

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from vidgate.domain.status import TaskStatus
from vidgate.engine.limits import BreakerState, CircuitBreaker
from vidgate.metrics import MAX_UPSTREAM_ROUTES, Metrics
from vidgate.providers import meter


def samples(metrics_text: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(metrics_text.decode())
        for s in family.samples
    }


def labels(**values: str) -> frozenset[tuple[str, str]]:
    return frozenset(values.items())


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/videos", "/videos"),
        ("/videos/video_68d7512d07848190b3e45da0ecbebcde0b", "/videos/{id}"),
        ("/videos/video_68d7512d0784/content", "/videos/{id}/content"),
        ("/v1/videos/text2video/812345678", "/v1/videos/text2video/{id}"),
        ("/v1/tasks/6f1c2b1e-1111-2222-3333-444455556666", "/v1/tasks/{id}"),
        ("/v1/query/video_generation?task_id=42", "/v1/query/video_generation"),
        ("/models/veo-3.1-generate-preview:predictLongRunning", "/models/{id}:predictLongRunning"),
        ("/models/veo-3.1/operations/op123456", "/models/{id}/operations/{id}"),
        ("https://cdn.example/a/b/c/d/e.mp4", "/a/b/c/d/..."),
    ],
)
def test_upstream_paths_become_templates(path: str, template: str) -> None:
    assert meter.route_template(path) == template


@pytest.mark.parametrize(
    ("status", "outcome"), [(200, "2xx"), (201, "2xx"), (302, "3xx"), (404, "4xx"), (429, "429")]
)
def test_statuses_become_classes(status: int, outcome: str) -> None:
    assert meter.outcome_class(status) == outcome


def test_reports_reach_the_installed_metrics_only_while_installed() -> None:
    metrics = Metrics()
    uninstall = meter.install(metrics)
    try:
        meter.record("up", "get", "/videos/video_abc123456", 503, time.perf_counter())
        meter.record("up", "POST", "/videos", "timeout", time.perf_counter())
    finally:
        uninstall()
    meter.record("up", "POST", "/videos", 200, time.perf_counter())  # nobody listens

    seen = samples(generate_latest(metrics.registry))
    name = "vidgate_upstream_requests_total"
    get = labels(provider="up", method="GET", route="/videos/{id}", outcome="5xx")
    assert seen[(name, get)] == 1
    assert seen[(name, labels(provider="up", method="POST", route="/videos", outcome="timeout"))]
    assert (name, labels(provider="up", method="POST", route="/videos", outcome="2xx")) not in seen


def test_a_provider_with_too_many_routes_counts_the_rest_as_other() -> None:
    metrics = Metrics()
    for n in range(MAX_UPSTREAM_ROUTES + 10):
        route = f"/r{chr(97 + n % 26)}{chr(97 + n // 26)}"
        metrics.upstream_request(
            provider="up", method="GET", route=route, outcome="2xx", seconds=0.1
        )

    seen = samples(generate_latest(metrics.registry))
    routes = {dict(key[1])["route"] for key in seen if key[0] == "vidgate_upstream_requests_total"}
    assert len(routes) == MAX_UPSTREAM_ROUTES + 1
    other = labels(provider="up", method="GET", route="other", outcome="2xx")
    assert seen[("vidgate_upstream_requests_total", other)] == 10


def test_client_chosen_methods_are_bounded() -> None:
    metrics = Metrics()
    metrics.request("BREW", "<unmatched>", 405, 0.001)
    metrics.request("GET", "/healthz", 200, 0.001)

    seen = samples(generate_latest(metrics.registry))
    name = "vidgate_http_requests_total"
    assert seen[(name, labels(method="other", route="<unmatched>", status="405"))] == 1
    assert seen[(name, labels(method="GET", route="/healthz", status="200"))] == 1


def test_breaker_changes_are_reported() -> None:
    now = [0.0]
    states: list[BreakerState] = []
    breaker = CircuitBreaker(
        "up", failures=2, cooldown=10.0, clock=lambda: now[0], on_change=states.append
    )
    breaker.failure()
    breaker.failure()  # opens
    now[0] = 11.0
    assert breaker.allows()  # the half-open probe
    breaker.failure()  # the probe failed: open again, for longer
    now[0] = 40.0
    assert breaker.allows()
    breaker.success()

    assert states == [
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
        BreakerState.CLOSED,
    ]


async def test_task_counts_are_read_once_per_interval_and_dropped_on_failure() -> None:
    now = [0.0]
    metrics = Metrics(clock=lambda: now[0])
    reads: list[float] = []
    failing = False

    async def count() -> dict[TaskStatus, int]:
        reads.append(now[0])
        if failing:
            raise OSError("database down")
        return {TaskStatus.QUEUED: 3}

    metrics.watch_tasks(count)
    seen = samples(await metrics.exposition())
    assert seen[("vidgate_tasks", labels(status="QUEUED"))] == 3
    assert seen[("vidgate_tasks", labels(status="COMPLETED"))] == 0

    now[0] = 1.0
    await metrics.exposition()
    assert reads == [0.0]  # cached

    failing = True
    now[0] = 10.0
    seen = samples(await metrics.exposition())
    assert reads == [0.0, 10.0]
    assert not [key for key in seen if key[0] == "vidgate_tasks"]  # absent, not stale


def test_several_apps_in_one_process_keep_their_own_metrics() -> None:
    first, second = Metrics(), Metrics()
    first.websocket_opened()
    first.check_lag(-1.0)  # a step begun before it was due counts as on time

    one, two = samples(generate_latest(first.registry)), samples(generate_latest(second.registry))
    assert one[("vidgate_ws_connections", labels())] == 1
    assert two[("vidgate_ws_connections", labels())] == 0
    assert one[("vidgate_engine_check_lag_seconds_bucket", labels(le="0.01"))] == 1
