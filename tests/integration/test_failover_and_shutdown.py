"""Failover across providers, and graceful shutdown, with real processes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.databases import DATABASES, query
from tests.support import SimulatorServer, StartVidgate, VidgateServer


@pytest.fixture(params=DATABASES)
def database_kind(request: pytest.FixtureRequest) -> str:
    """Every test here runs on SQLite and on PostgreSQL."""
    return str(request.param)


def two_providers(tmp_path: Path, a: str, b: str) -> Path:
    path = tmp_path / "providers.toml"
    path.write_text(
        f'[[providers]]\nname = "a"\nbase_url = "{a}"\npriority = 0\n'
        "breaker_failures = 3\nbreaker_cooldown_seconds = 30\n\n"
        f'[[providers]]\nname = "b"\nbase_url = "{b}"\npriority = 1\n'
    )
    return path


def create(server: VidgateServer, n: int, prompt: str = "a lynx") -> list[str]:
    return [
        httpx.post(f"{server.url}/api/video/tasks", json={"prompt": f"{prompt} {i}"}).json()[
            "data"
        ]["videoId"]
        for i in range(n)
    ]


def wait_terminal(server: VidgateServer, ids: list[str], within: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + within
    while True:
        found = [httpx.get(f"{server.url}/api/video/tasks/{i}").json()["data"] for i in ids]
        if all(t["status"] in ("COMPLETED", "FAILED", "CANCELLED") for t in found):
            return found
        if time.monotonic() > deadline:
            raise AssertionError([(t["videoId"], t["status"]) for t in found])
        time.sleep(0.2)


def test_provider_down_tasks_complete_on_the_next_one(
    tmp_path: Path, start_vidgate: StartVidgate, simulator_process: Any
) -> None:
    a: SimulatorServer = simulator_process(job_seconds=1.0)
    b: SimulatorServer = simulator_process(job_seconds=1.0)
    a.kill()  # provider A is down: connections are refused
    server = start_vidgate(VIDGATE_CONFIG=str(two_providers(tmp_path, a.base_url, b.base_url)))
    ids = create(server, 6)
    tasks = wait_terminal(server, ids, within=40)
    assert [t["status"] for t in tasks] == ["COMPLETED"] * len(ids)
    for task in tasks:
        assert task["metadata"]["provider"] == "b"
        assert task["attempts"][-1]["provider"] == "b"
        assert task["attempts"][-1]["externalVideoId"] == task["externalVideoId"]
        for earlier in task["attempts"][:-1]:
            assert earlier["provider"] == "a"
            assert earlier["externalVideoId"] is None  # A never took a job
            assert earlier["status"] == "failed"
    assert b.stats()["jobsCreated"] == len(ids)


def test_failing_jobs_fail_over_with_both_attempts_listed(
    tmp_path: Path, start_vidgate: StartVidgate, simulator_process: Any
) -> None:
    a: SimulatorServer = simulator_process(job_seconds=1.0, extra=["--job-fail-rate", "1.0"])
    b: SimulatorServer = simulator_process(job_seconds=1.0)
    server = start_vidgate(VIDGATE_CONFIG=str(two_providers(tmp_path, a.base_url, b.base_url)))
    ids = create(server, 4)
    tasks = wait_terminal(server, ids, within=40)
    for task in tasks:
        assert task["status"] == "COMPLETED", task
        first, second = task["attempts"]
        assert (first["provider"], first["status"]) == ("a", "failed")
        assert first["error"]["code"] == "video_generation_failed"
        assert first["externalVideoId"].startswith("video_")
        assert (second["provider"], second["status"]) == ("b", "completed")
        assert second["externalVideoId"] == task["externalVideoId"] != first["externalVideoId"]
    assert a.stats()["jobsCreated"] == len(ids)
    assert b.stats()["jobsCreated"] == len(ids)


def test_content_policy_failures_are_never_retried(
    tmp_path: Path, start_vidgate: StartVidgate, simulator_process: Any
) -> None:
    a: SimulatorServer = simulator_process(job_seconds=1.0)
    b: SimulatorServer = simulator_process(job_seconds=1.0)
    server = start_vidgate(VIDGATE_CONFIG=str(two_providers(tmp_path, a.base_url, b.base_url)))
    [task] = wait_terminal(server, create(server, 1, prompt="[fail] a banned thing"), within=30)
    assert task["status"] == "FAILED"
    assert task["error"]["code"] == "moderation_blocked"
    assert len(task["attempts"]) == 1
    assert b.stats()["jobsCreated"] == 0


def test_sigterm_drains_and_releases_leases(
    tmp_path: Path, start_vidgate: StartVidgate, simulator_process: Any, provider_config: Any
) -> None:
    # Slow answers keep steps in flight when the signal arrives.
    sim: SimulatorServer = simulator_process(job_seconds=3.0, extra=["--latency-ms", "700"])
    env = {"VIDGATE_CONFIG": str(provider_config(sim.base_url)), "VIDGATE_LEASE_SECONDS": "60"}
    first = start_vidgate(**env)
    ids = create(first, 10)
    time.sleep(1.0)
    started = time.monotonic()
    first.stop()  # SIGTERM
    assert time.monotonic() - started < 12, "drain took longer than its timeout"
    assert "released" in first.output()

    leased = query(
        first.env["VIDGATE_DATABASE_URL"],
        "SELECT count(*) FROM tasks WHERE lease_owner IS NOT NULL",
    )
    assert leased == [(0,)]

    # With 60 s leases, finishing in well under that proves nothing waited for expiry.
    second = start_vidgate(**env)
    taken_over = time.monotonic()
    tasks = wait_terminal(second, ids, within=30)
    assert time.monotonic() - taken_over < 30
    assert [t["status"] for t in tasks] == ["COMPLETED"] * len(ids)
    assert sim.stats()["jobsCreated"] == len(ids)
