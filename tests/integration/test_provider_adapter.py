"""The /v1/videos adapter against a simulator that imitates the seed's upstream exactly:
base URL with the /sora/v1 prefix, an API key, model aliases, and a relative `url` field."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.databases import DATABASES
from tests.support import SimulatorServer, StartVidgate, WriteConfig


@pytest.fixture(params=DATABASES)
def database_kind(request: pytest.FixtureRequest) -> str:
    """Every test here runs on SQLite and on PostgreSQL."""
    return str(request.param)


def test_seed_upstream_with_prefix_key_alias_and_relative_url(
    start_vidgate: StartVidgate, simulator_process: Any, provider_config: WriteConfig
) -> None:
    simulator: SimulatorServer = simulator_process(
        job_seconds=1.5, extra=["--prefix", "/sora/v1", "--url-field", "--api-key", "sk-sim-123"]
    )
    config = provider_config(
        f"{simulator.origin}/sora/v1",
        api_key="sk-sim-123",
        models={"sora_video2": "sora-2"},
    )
    # The simulator's URLs live an hour: handed out as they are only when vidgate is told
    # not to mirror short-lived results (test_expiring_reseller_url_is_mirrored).
    server = start_vidgate(VIDGATE_CONFIG=str(config), VIDGATE_MIRROR_BEFORE_SECONDS="0")
    created = httpx.post(
        f"{server.url}/api/video/tasks", json={"prompt": "a heron", "model": "sora_video2"}
    )
    video_id = created.json()["data"]["videoId"]
    deadline = time.monotonic() + 20
    task: dict[str, Any] = {}
    while time.monotonic() < deadline:
        task = httpx.get(f"{server.url}/api/video/tasks/{video_id}").json()["data"]
        if task["status"] == "COMPLETED":
            break
        time.sleep(0.1)
    assert task["status"] == "COMPLETED", task
    external_id = task["externalVideoId"]

    # The upstream saw the upstream model name, under its prefix, with the key.
    job = httpx.get(
        f"{simulator.origin}/sora/v1/videos/{external_id}",
        headers={"Authorization": "Bearer sk-sim-123"},
    ).json()
    assert job["model"] == "sora-2"
    assert job["url"].startswith("/")
    # videoUrl is the upstream's own relative url made absolute: the browser plays it directly.
    assert task["videoUrl"] == simulator.origin + job["url"]
    video = httpx.get(task["videoUrl"])
    assert video.status_code == 200
    assert video.content[4:8] == b"ftyp"
    # The model alias stays the client's name in vidgate.
    assert task["model"] == "sora_video2"
    # The key never leaks into anything vidgate answers or logs.
    assert "sk-sim-123" not in httpx.get(f"{server.url}/api/video/tasks/{video_id}").text
    assert "sk-sim-123" not in server.output()


def test_expiring_reseller_url_is_mirrored(
    start_vidgate: StartVidgate, simulator_process: Any, provider_config: WriteConfig
) -> None:
    """content = "auto": a result URL that dies within VIDGATE_MIRROR_BEFORE_SECONDS
    (24 h by default; the simulator's live 1 h) is kept by vidgate at completion."""
    simulator: SimulatorServer = simulator_process(job_seconds=1.0, extra=["--url-field"])
    server = start_vidgate(VIDGATE_CONFIG=str(provider_config(simulator.base_url)))
    created = httpx.post(f"{server.url}/api/video/tasks", json={"prompt": "a heron"})
    video_id = created.json()["data"]["videoId"]
    deadline = time.monotonic() + 20
    task: dict[str, Any] = {}
    while time.monotonic() < deadline:
        task = httpx.get(f"{server.url}/api/video/tasks/{video_id}").json()["data"]
        if task["status"] == "COMPLETED":
            break
        time.sleep(0.1)
    assert task["status"] == "COMPLETED", task
    assert task["videoUrl"].startswith(f"{server.url}/api/video/tasks/{video_id}/stream?")
    assert task["expiresAt"] is not None and task["attempts"][0]["expiresAt"] == task["expiresAt"]
    assert task["attempts"][0]["protocol"] == "openai-videos"
    assert task["attempts"][0]["upstreamModel"] == "sora-2"
    # The upstream forgets the job: the mirror still plays.
    httpx.delete(f"{simulator.base_url}/videos/{task['externalVideoId']}")
    video = httpx.get(task["videoUrl"])
    assert video.status_code == 200 and video.content[4:8] == b"ftyp"
