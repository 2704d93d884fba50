"""vidgate stopped mid-task and started again on the same SQLite file finishes every task,
with no second upstream job (the simulator runs as its own process and keeps count)."""

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


def tasks_of(url: str, ids: list[str]) -> list[dict[str, Any]]:
    return [httpx.get(f"{url}/api/video/tasks/{i}", timeout=5).json()["data"] for i in ids]


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_crash_and_restart_finishes_without_a_second_upstream_job(
    start_vidgate: StartVidgate,
    simulator_process: Any,
    provider_config: WriteConfig,
) -> None:
    simulator: SimulatorServer = simulator_process(job_seconds=4.0)
    config = provider_config(simulator.base_url)
    first = start_vidgate(VIDGATE_CONFIG=str(config))
    ids = [
        httpx.post(f"{first.url}/api/video/tasks", json={"prompt": f"fox {i}"}).json()["data"][
            "videoId"
        ]
        for i in range(6)
    ]
    # Some tasks submitted, none finished: then the process dies without any clean-up.
    wait_until(
        lambda: all(t["externalVideoId"] for t in tasks_of(first.url, ids)), 10, "submission"
    )
    before = {t["videoId"]: t["externalVideoId"] for t in tasks_of(first.url, ids)}
    assert all(t["status"] in ("QUEUED", "PROCESSING") for t in tasks_of(first.url, ids))
    first.kill()

    second = start_vidgate(VIDGATE_CONFIG=str(config))
    wait_until(
        lambda: all(t["status"] == "COMPLETED" for t in tasks_of(second.url, ids)),
        30,
        "completion after restart",
    )
    after = tasks_of(second.url, ids)
    assert {t["videoId"]: t["externalVideoId"] for t in after} == before
    assert all(len(t["attempts"]) == 1 for t in after)
    stats = simulator.stats()
    assert stats["jobsCreated"] == len(ids)


def test_crash_during_submission_resends_the_same_idempotency_key(
    start_vidgate: StartVidgate,
    simulator_process: Any,
    provider_config: WriteConfig,
) -> None:
    # The upstream answers creates slowly, so the kill lands while attempts are `submitting`.
    simulator: SimulatorServer = simulator_process(job_seconds=2.0, extra=["--latency-ms", "1500"])
    config = provider_config(simulator.base_url)
    # A short lease, so the restarted process takes the dead one's tasks over quickly.
    lease = {"VIDGATE_CONFIG": str(config), "VIDGATE_LEASE_SECONDS": "4"}
    first = start_vidgate(**lease)
    ids = [
        httpx.post(f"{first.url}/api/video/tasks", json={"prompt": f"owl {i}"}).json()["data"][
            "videoId"
        ]
        for i in range(4)
    ]
    time.sleep(0.7)  # the create calls are in flight upstream
    first.kill()
    second = start_vidgate(**lease)
    wait_until(
        lambda: all(t["status"] == "COMPLETED" for t in tasks_of(second.url, ids)),
        40,
        "completion after restart",
    )
    stats = simulator.stats()
    assert stats["jobsCreated"] == len(ids)
    requests = stats["requests"]
    assert isinstance(requests, dict)
    # The kill interrupted submissions, which were sent again: more creates than jobs.
    assert requests["POST /videos"] > len(ids)


@pytest.mark.parametrize("database_kind", ["sqlite"], indirect=True)
def test_demo_videos_still_play_after_a_restart(start_vidgate: StartVidgate) -> None:
    """Demo mode mirrors its videos: the in-process simulator forgets them on a restart."""
    first = start_vidgate(job_seconds=1.0)
    video_id = httpx.post(f"{first.url}/api/video/tasks", json={"prompt": "a kite"}).json()["data"][
        "videoId"
    ]
    wait_until(
        lambda: tasks_of(first.url, [video_id])[0]["status"] == "COMPLETED", 20, "completion"
    )
    video_url = tasks_of(first.url, [video_id])[0]["videoUrl"]
    assert "/stream?access_token=" in video_url
    before = httpx.get(video_url, timeout=10)
    assert before.status_code == 200 and before.headers["content-type"] == "video/mp4"
    first.stop()

    second = start_vidgate(job_seconds=1.0)
    again = video_url.replace(first.url, second.url)  # the new process has another port
    after = httpx.get(again, timeout=10)
    assert after.status_code == 200
    assert after.content == before.content
    part = httpx.get(again, headers={"Range": "bytes=10-19"}, timeout=10)
    assert part.status_code == 206
    assert part.content == before.content[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{len(before.content)}"
