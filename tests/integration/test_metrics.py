"""``GET /metrics`` on real processes: what a task's life shows in Prometheus's format.

The exposition is parsed with prometheus_client's own parser, never matched as text.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from websockets.asyncio.client import connect

from tests.support import SimulatorServer, StartVidgate, VidgateServer, WriteConfig
from vidgate.api.app import create_app
from vidgate.config import Settings

TERMINAL = {"taskCompleted", "taskFailed", "taskCancelled"}
TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"


async def scrape(server: VidgateServer) -> list[Sample]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == TEXT_FORMAT
    return [s for family in text_string_to_metric_families(response.text) for s in family.samples]


def value(samples: list[Sample], name: str, **labels: str) -> float | None:
    """The sample ``name`` with exactly these labels; None when it is absent."""
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


def total(samples: list[Sample], name: str, **labels: str) -> float:
    """The sum of the samples ``name`` whose labels include these."""
    return sum(s.value for s in samples if s.name == name and labels.items() <= s.labels.items())


async def until(
    server: VidgateServer, check: Callable[[list[Sample]], bool], within: float = 20
) -> list[Sample]:
    """Scrape until ``check`` holds (gauges follow events; task counts are cached 5 s)."""
    deadline = time.monotonic() + within
    while True:
        samples = await scrape(server)
        if check(samples):
            return samples
        assert time.monotonic() < deadline, [s for s in samples if s.name.startswith("vidgate")]
        await asyncio.sleep(0.2)


async def test_a_task_life_in_metrics(vidgate_server: VidgateServer) -> None:
    async with httpx.AsyncClient(base_url=vidgate_server.url, timeout=10) as client:
        created = await client.post("/api/video/tasks", json={"prompt": "a red fox in snow"})
        assert created.status_code == 201
        video_id = created.json()["data"]["videoId"]
        assert (await client.get(f"/api/video/tasks/{video_id}")).status_code == 200
        assert (await client.get("/api/video/tasks/video_nope")).status_code == 404

    received: list[dict[str, Any]] = []
    async with connect(f"{vidgate_server.ws_url}?videoId={video_id}") as ws:
        await until(vidgate_server, lambda s: value(s, "vidgate_ws_connections") == 1)
        async for raw in ws:
            received.append(json.loads(raw))
            if received[-1]["type"] in TERMINAL:
                break
    assert received[-1]["type"] == "taskCompleted"
    await until(vidgate_server, lambda s: value(s, "vidgate_ws_connections") == 0)

    samples = await until(
        vidgate_server,
        lambda s: value(s, "vidgate_tasks", status="COMPLETED") == 1,
    )

    # Requests, by route template and status; the task's id is in no label.
    requests = "vidgate_http_requests_total"
    assert value(samples, requests, method="POST", route="/api/video/tasks", status="201") == 1
    route = "/api/video/tasks/{video_id}"
    assert value(samples, requests, method="GET", route=route, status="200") == 1
    assert value(samples, requests, method="GET", route=route, status="404") == 1
    latency = "vidgate_http_request_duration_seconds_count"
    assert value(samples, latency, method="GET", route=route) == 2
    assert not [s for s in samples if video_id in json.dumps(s.labels)]
    assert not [s for s in samples if s.labels.get("route") == "/metrics"]

    # Tasks by status, from the database.
    assert value(samples, "vidgate_tasks", status="QUEUED") == 0
    assert value(samples, "vidgate_tasks", status="FAILED") == 0

    # The engine: the task was submitted and polled, each step a little after it was due.
    checks = value(samples, "vidgate_engine_check_lag_seconds_count")
    assert checks is not None and checks >= 2
    assert value(samples, "vidgate_engine_steps_in_flight") is not None
    assert value(samples, "vidgate_upstream_breaker_state", provider="simulator") == 0

    # The upstream: the built-in simulator's /v1/videos routes, by template and outcome.
    upstream = "vidgate_upstream_requests_total"
    created_upstream = {"provider": "simulator", "method": "POST", "route": "/videos"}
    assert value(samples, upstream, **created_upstream, outcome="2xx") == 1
    polled = {"provider": "simulator", "method": "GET", "route": "/videos/{id}"}
    assert total(samples, upstream, **polled, outcome="2xx") >= 1
    assert value(samples, "vidgate_upstream_request_duration_seconds_count", **polled) == total(
        samples, upstream, **polled
    )

    # Every event message the socket got was counted as a delivery.
    events = [m for m in received if m["type"] != "subscribed"]
    assert events
    assert total(samples, "vidgate_ws_event_deliveries_total") >= len(events)

    # What the library's default registry shows is there too.
    assert value(samples, "process_resident_memory_bytes") is not None


async def test_metrics_are_not_rate_limited(start_vidgate: StartVidgate) -> None:
    server = start_vidgate(VIDGATE_LIMITS__REQUESTS_PER_MINUTE="1")
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        assert (await client.get("/api/video/tasks")).status_code == 200
        assert (await client.get("/api/video/tasks")).status_code == 429
        for _ in range(5):
            assert (await client.get("/metrics")).status_code == 200
    samples = await scrape(server)
    listed = {"method": "GET", "route": "/api/video/tasks"}
    assert value(samples, "vidgate_http_requests_total", **listed, status="429") == 1


async def test_metrics_can_be_switched_off() -> None:
    """``VIDGATE_METRICS=false``: no route, no request metrics (the app, in this process)."""
    for enabled, status in ((True, 200), (False, 404)):
        app = create_app(Settings(metrics=enabled), public_url="http://127.0.0.1")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            assert (await client.get("/metrics")).status_code == status


async def test_requests_refused_before_routing_are_named_by_their_route() -> None:
    """A 413 from the body limit and a CORS preflight never reach the router; their
    route label is still the template, and a path no route has is ``<unmatched>``."""
    settings = Settings(cors_origins=["https://app.example"])
    app = create_app(settings, public_url="http://127.0.0.1")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        big = await client.post("/api/video/tasks", content=b"x" * (settings.max_body_bytes + 1))
        assert big.status_code == 413
        preflight = await client.options(
            "/api/video/tasks/video_x/cancel",
            headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
        )
        assert preflight.status_code == 200
        assert (await client.get("/static/app.js")).status_code == 200
        assert (await client.get("/no/such/page")).status_code == 404
        text = (await client.get("/metrics")).text
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    requests = "vidgate_http_requests_total"
    assert value(samples, requests, method="POST", route="/api/video/tasks", status="413") == 1
    cancel = "/api/video/tasks/{video_id}/cancel"
    assert value(samples, requests, method="OPTIONS", route=cancel, status="200") == 1
    assert value(samples, requests, method="GET", route="/static/{path}", status="200") == 1
    assert value(samples, requests, method="GET", route="<unmatched>", status="404") == 1


async def test_multiprocess_mode_sums_every_api_process(
    start_vidgate: StartVidgate,
    simulator_process: Callable[..., SimulatorServer],
    provider_config: WriteConfig,
    tmp_path: Path,
) -> None:
    """Two api processes share PROMETHEUS_MULTIPROC_DIR: either one's /metrics counts both."""
    directory = tmp_path / "prometheus"
    directory.mkdir()
    simulator = simulator_process()
    env = {
        "VIDGATE_CONFIG": str(provider_config(simulator.base_url)),
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
    }
    first = start_vidgate(role="api", **env)
    second = start_vidgate(role="api", **env)

    async with httpx.AsyncClient(timeout=10) as client:
        created = await client.post(f"{first.url}/api/video/tasks", json={"prompt": "a fox"})
        assert created.status_code == 201
        video_id = created.json()["data"]["videoId"]
        got = await client.get(f"{second.url}/api/video/tasks/{video_id}")
        assert got.status_code == 200

    samples = await scrape(first)
    requests = "vidgate_http_requests_total"
    assert value(samples, requests, method="POST", route="/api/video/tasks", status="201") == 1
    route = "/api/video/tasks/{video_id}"
    assert value(samples, requests, method="GET", route=route, status="200") == 1
    # From the database, once, not once per process.
    assert value(samples, "vidgate_tasks", status="QUEUED") == 1
    assert len(list(directory.glob("counter_*.db"))) == 2  # one file per process

    async with connect(f"{second.ws_url}?videoId={video_id}") as ws:
        assert json.loads(await ws.recv())["type"] == "subscribed"
        await until(first, lambda s: value(s, "vidgate_ws_connections") == 1)
    await until(first, lambda s: value(s, "vidgate_ws_connections") == 0)

    # A process that stops leaves its counts to the totals and its gauges to nobody.
    second.stop()
    samples = await scrape(first)
    assert value(samples, requests, method="GET", route=route, status="200") == 1
    assert value(samples, "vidgate_ws_connections") == 0
