"""``kind = "minimax"`` end to end: a real ``vidgate serve`` against a real
``vidgate simulator --protocol minimax``, each its own process."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.support import (
    SimulatorServer,
    StartVidgate,
    VidgateServer,
    launch_simulator,
    launch_vidgate,
)

KEY = "sk-api-kind-minimax-7f3e"
MODEL = "hailuo-2.3"  # the adapter's alias of MiniMax-Hailuo-2.3
TERMINAL = {"taskCompleted", "taskFailed", "taskCancelled"}
# Shorter than the engine's first look (1 s after submission): MiniMax reports no progress,
# and the engine's estimate for such upstreams puts the look after that ~20 s away.
JOB_SECONDS = 0.5

# One simulator and one vidgate for the module (process start-up is most of the cost); each
# test starts from zeroed counters and no faults.


@pytest.fixture(scope="module")
def shared_simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorServer]:
    server = launch_simulator(
        tmp_path_factory.mktemp("minimax-simulator"),
        job_seconds=JOB_SECONDS,
        extra=["--protocol", "minimax", "--api-key", KEY],
    )
    yield server
    server.stop()


@pytest.fixture
def simulator(shared_simulator: SimulatorServer) -> SimulatorServer:
    origin = shared_simulator.origin
    assert httpx.post(f"{origin}/_sim/faults", json={"error_429_rate": 0.0}).status_code == 200
    assert httpx.post(f"{origin}/_sim/reset").status_code == 200
    return shared_simulator


@pytest.fixture(scope="module")
def minimax_config(
    tmp_path_factory: pytest.TempPathFactory, shared_simulator: SimulatorServer
) -> Path:
    # MiniMax honours no idempotency key: recovery of an interrupted create is "fail".
    path = tmp_path_factory.mktemp("config") / "minimax.toml"
    path.write_text(
        "[[providers]]\n"
        'name = "hailuo"\n'
        'kind = "minimax"\n'
        f'base_url = "{shared_simulator.origin}"\n'
        'api_key_env = "MINIMAX_API_KEY"\n'
        "idempotency = false\n"
    )
    return path


@pytest.fixture(scope="module")
def vidgate(
    tmp_path_factory: pytest.TempPathFactory, minimax_config: Path
) -> Iterator[VidgateServer]:
    server = launch_vidgate(
        tmp_path_factory.mktemp("vidgate"),
        VIDGATE_CONFIG=str(minimax_config),
        MINIMAX_API_KEY=KEY,
    )
    yield server
    server.stop()


def start_with_minimax(start_vidgate: StartVidgate, config: Path) -> VidgateServer:
    return start_vidgate(VIDGATE_CONFIG=str(config), MINIMAX_API_KEY=KEY)


def create(url: str, prompt: str) -> dict[str, Any]:
    response = httpx.post(
        f"{url}/api/video/tasks", json={"prompt": prompt, "model": MODEL}, timeout=10
    )
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def task_of(url: str, video_id: str) -> dict[str, Any]:
    data: dict[str, Any] = httpx.get(f"{url}/api/video/tasks/{video_id}", timeout=5).json()["data"]
    return data


def wait_for(url: str, video_id: str, statuses: set[str], within: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + within
    task = task_of(url, video_id)
    while time.monotonic() < deadline and task["status"] not in statuses:
        time.sleep(0.1)
        task = task_of(url, video_id)
    assert task["status"] in statuses, task
    return task


async def pushes(ws_url: str, video_id: str, within: float = 20) -> list[dict[str, Any]]:
    """Every message for ``video_id`` up to the first terminal one."""
    seen: list[dict[str, Any]] = []
    async with connect(f"{ws_url}?videoId={video_id}") as ws:

        async def read() -> None:
            async for raw in ws:
                seen.append(json.loads(raw))
                if seen[-1]["type"] in TERMINAL:
                    return

        await asyncio.wait_for(read(), within)
    return seen


async def test_a_task_completes_with_both_ids_on_every_push_and_a_playable_url(
    vidgate: VidgateServer, simulator: SimulatorServer
) -> None:
    task = create(vidgate.url, "a heron lands on a pier at dawn")
    video_id = task["videoId"]
    messages = await pushes(vidgate.ws_url, video_id)

    pushed = messages[1:]
    assert messages[0]["type"] == "subscribed"
    assert pushed[-1]["type"] == "taskCompleted"
    external_id = pushed[-1]["payload"]["externalVideoId"]
    assert external_id.isdigit() and len(external_id) == 15  # MiniMax's task id
    for message in pushed:
        assert message["payload"]["videoId"] == video_id
        assert message["payload"]["externalVideoId"] == external_id
    video_url = pushed[-1]["payload"]["result"]["videoUrl"]

    done = task_of(vidgate.url, video_id)
    assert done["status"] == "COMPLETED"
    assert (done["externalVideoId"], done["videoUrl"]) == (external_id, video_url)
    assert done["model"] == MODEL
    attempts = [(a["attempt"], a["externalVideoId"], a["upstreamModel"]) for a in done["attempts"]]
    assert attempts == [(1, external_id, "MiniMax-Hailuo-2.3")]
    async with httpx.AsyncClient(timeout=10) as client:
        video = await client.get(video_url)
        partial = await client.get(video_url, headers={"Range": "bytes=0-99"})
        truth = (await client.get(f"{simulator.origin}/_sim/jobs/{external_id}")).json()
    assert (video.status_code, video.headers["content-type"]) == (200, "video/mp4")
    assert video.content[4:8] == b"ftyp"
    assert (partial.status_code, len(partial.content)) == (206, 100)

    # The upstream made one task, whose file vidgate fetched; the key never leaks.
    assert truth["status"] == "completed"
    stats = simulator.stats()
    assert stats["jobsCreated"] == 1
    assert stats["requests"]["GET /v1/files/retrieve"] >= 1  # type: ignore[index]
    assert KEY not in json.dumps(done)
    assert KEY not in vidgate.output()


def test_a_sensitive_video_fails_with_minimaxs_content_policy_code(
    vidgate: VidgateServer, simulator: SimulatorServer
) -> None:
    video_id = create(vidgate.url, "a heron [fail]")["videoId"]
    failed = wait_for(vidgate.url, video_id, {"COMPLETED", "FAILED"})
    assert failed["status"] == "FAILED"
    assert failed["error"]["code"] == "1027"
    assert failed["error"]["message"] == "output new_sensitive"
    assert failed["metadata"]["errorCategory"] == "content_policy"
    assert failed["videoUrl"] is None
    # A policy verdict is final: no second (paid) attempt.
    assert len(failed["attempts"]) == 1
    assert simulator.stats()["jobsCreated"] == 1


def test_a_rate_limited_create_is_retried_until_it_goes_through(
    vidgate: VidgateServer, simulator: SimulatorServer
) -> None:
    faults = f"{simulator.origin}/_sim/faults"
    assert httpx.post(faults, json={"error_429_rate": 1.0}).status_code == 200
    try:
        video_id = create(vidgate.url, "a heron in the rain")["videoId"]
        deadline = time.monotonic() + 10
        while simulator.stats()["faultsInjected"]["error429"] < 1:  # type: ignore[index]
            assert time.monotonic() < deadline, "vidgate never tried"
            time.sleep(0.02)
        assert task_of(vidgate.url, video_id)["status"] == "QUEUED"
    finally:
        assert httpx.post(faults, json={"error_429_rate": 0.0}).status_code == 200

    done = wait_for(vidgate.url, video_id, {"COMPLETED", "FAILED"})
    assert done["status"] == "COMPLETED", done
    assert len(done["attempts"]) == 1
    assert simulator.stats()["jobsCreated"] == 1


def test_a_crash_mid_job_resumes_on_the_same_database_without_a_second_task(
    start_vidgate: StartVidgate, simulator: SimulatorServer, minimax_config: Path
) -> None:
    first = start_with_minimax(start_vidgate, minimax_config)
    video_id = create(first.url, "a heron crosses a river")["videoId"]
    deadline = time.monotonic() + 5
    submitted = task_of(first.url, video_id)
    while not submitted["externalVideoId"]:
        assert time.monotonic() < deadline, submitted
        time.sleep(0.02)
        submitted = task_of(first.url, video_id)
    assert submitted["status"] in ("QUEUED", "PROCESSING")
    # SIGKILL, no clean-up of any kind. The task goes on upstream while vidgate is down.
    first.kill()

    second = start_with_minimax(start_vidgate, minimax_config)
    done = wait_for(second.url, video_id, {"COMPLETED", "FAILED"})
    assert done["status"] == "COMPLETED", done
    assert done["externalVideoId"] == submitted["externalVideoId"]
    assert len(done["attempts"]) == 1
    assert simulator.stats()["jobsCreated"] == 1
    assert httpx.get(done["videoUrl"], timeout=10).content[4:8] == b"ftyp"
