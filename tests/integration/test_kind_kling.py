"""``vidgate serve`` with a ``kind = "kling"`` provider against ``vidgate simulator --protocol
kling``, both real processes: completion with both ids pushed, a content-policy failure, a
rate limit survived, and a crash at the worst moments without a second Kling task."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from websockets.asyncio.client import connect

from tests.kinds import both_ids, follow, survives_a_rate_limit, task_of, wait_for
from tests.kinds import create_task as create
from tests.support import SimulatorServer, StartVidgate, WriteConfig

AK = "ak-kind-access-key-0123456789abcdef"
SK = "sk-kind-secret-key-0123456789abcdef"
MODEL = "kling-v2-6"


def start_kling(
    simulator_process: Any, *, job_seconds: float, extra: list[str] | None = None
) -> SimulatorServer:
    server: SimulatorServer = simulator_process(
        job_seconds=job_seconds,
        extra=["--protocol", "kling", "--api-key", f"{AK}:{SK}", *(extra or [])],
    )
    return server


def kling_config(provider_config: WriteConfig, simulator: SimulatorServer) -> str:
    # Kling's base URL has no path: the simulator's origin is its base URL.
    path = provider_config(simulator.origin, kind="kling", access_key=AK, secret_key=SK)
    return str(path)


async def test_completion_content_policy_and_rate_limit(
    start_vidgate: StartVidgate, simulator_process: Any, provider_config: WriteConfig
) -> None:
    # Shorter than the engine's first look (1 s after submission): one poll ends a job.
    simulator = start_kling(simulator_process, job_seconds=0.8)
    server = start_vidgate(VIDGATE_CONFIG=kling_config(provider_config, simulator))
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        refused = await create(client, MODEL, "[fail] a heron")
        video_id = await create(client, MODEL, "a heron over a lake")
        async with connect(f"{server.ws_url}?videoId={video_id}") as ws:
            messages = await follow(ws)

        # Completed, with both ids on every push and a URL a browser plays.
        assert messages[0]["type"] == "subscribed"
        pushed = messages[1:]
        assert pushed[-1]["type"] == "taskCompleted"
        external_id = both_ids(pushed, video_id)
        assert isinstance(external_id, str) and external_id.isdigit() and len(external_id) == 18
        video_url = pushed[-1]["payload"]["result"]["videoUrl"]
        # Kling's URLs are public and live 30 days: vidgate hands out the upstream's own.
        assert video_url.startswith(f"{simulator.origin}/bs2/upload-kling-api/{external_id}/")
        video = await client.get(video_url)
        assert video.status_code == 200
        assert video.headers["content-type"] == "video/mp4"
        assert video.content[4:8] == b"ftyp"
        task = await task_of(client, video_id)
        assert (task["status"], task["externalVideoId"], task["videoUrl"]) == (
            "COMPLETED",
            external_id,
            video_url,
        )
        assert [(a["attempt"], a["externalVideoId"], a["status"]) for a in task["attempts"]] == [
            (1, external_id, "completed")
        ]

        # The content check's failure, with Kling's content-security code.
        failed = await wait_for(client, refused, {"FAILED", "COMPLETED"})
        assert failed["status"] == "FAILED"
        assert failed["error"]["code"] == "1301"
        assert "content security policy" in failed["error"]["message"]
        assert failed["metadata"]["errorCategory"] == "content_policy"
        assert len(failed["attempts"]) == 1  # a content refusal is not retried

        # Kling's 1302 (injected 429s) is waited out, then the task completes.
        await survives_a_rate_limit(client, simulator.origin, MODEL)
    stats = simulator.stats()
    assert stats["jobsCreated"] == 3
    assert SK not in server.output()


async def test_crash_mid_job_and_mid_submission_makes_no_second_kling_task(
    start_vidgate: StartVidgate, simulator_process: Any, provider_config: WriteConfig
) -> None:
    # Slow answers, so the kill lands while one create is in flight.
    simulator = start_kling(simulator_process, job_seconds=2.0, extra=["--latency-ms", "800"])
    env = {
        "VIDGATE_CONFIG": kling_config(provider_config, simulator),
        "VIDGATE_LEASE_SECONDS": "2",  # the restarted process takes over quickly
    }
    first = start_vidgate(**env)
    async with httpx.AsyncClient(base_url=first.url, timeout=10) as client:
        running = await create(client, MODEL, "a fox, submitted before the crash")
        task = await wait_for(client, running, {"PROCESSING", "QUEUED"}, within=10)
        deadline = time.monotonic() + 10
        while not task["externalVideoId"]:
            assert time.monotonic() < deadline, task
            await asyncio.sleep(0.05)
            task = await task_of(client, running)
        external_id = task["externalVideoId"]
        in_flight = await create(client, MODEL, "an owl, being submitted at the crash")
        await asyncio.sleep(0.4)  # its create is inside the simulator's latency
    first.kill()

    second = start_vidgate(**env)
    async with httpx.AsyncClient(base_url=second.url, timeout=10) as client:
        after = await wait_for(client, running, {"COMPLETED", "FAILED"}, within=30)
        assert (after["status"], after["externalVideoId"]) == ("COMPLETED", external_id)
        assert len(after["attempts"]) == 1
        other = await wait_for(client, in_flight, {"COMPLETED", "FAILED"}, within=30)
        assert other["status"] == "COMPLETED", other
        assert len(other["attempts"]) == 1
    # The create reached Kling before the crash, so Kling made the task; the restarted
    # vidgate found it by its external_task_id instead of creating another.
    assert "found the upstream job of video_" in second.output()
    assert simulator.stats()["jobsCreated"] == 2
