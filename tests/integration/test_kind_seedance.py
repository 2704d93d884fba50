"""``vidgate serve`` with a ``kind = "seedance"`` provider against ``vidgate simulator
--protocol seedance``, both real processes: completion with both ids pushed, a
content-policy failure, a rate limit survived, and a crash mid-job without a second Ark
task."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from websockets.asyncio.client import connect

from tests.kinds import both_ids, follow, survives_a_rate_limit, task_of, wait_for
from tests.kinds import create_task as create
from tests.support import SimulatorServer, StartVidgate, WriteConfig

KEY = "ark-kind-key-0123456789abcdef"
MODEL = "seedance-2.0"  # the adapter's built-in name for dreamina-seedance-2-0-260128


def start_seedance(simulator_process: Any, *, job_seconds: float) -> SimulatorServer:
    server: SimulatorServer = simulator_process(
        job_seconds=job_seconds, extra=["--protocol", "seedance", "--api-key", KEY]
    )
    return server


def seedance_config(provider_config: WriteConfig, simulator: SimulatorServer) -> str:
    # The simulator serves Ark's API under its documented /api/v3 by default.
    path = provider_config(f"{simulator.origin}/api/v3", kind="seedance", api_key=KEY)
    return str(path)


async def test_completion_content_policy_and_rate_limit(
    start_vidgate: StartVidgate, simulator_process: Any, provider_config: WriteConfig
) -> None:
    simulator = start_seedance(simulator_process, job_seconds=0.8)
    server = start_vidgate(VIDGATE_CONFIG=seedance_config(provider_config, simulator))
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
        assert isinstance(external_id, str) and external_id.startswith("cgt-")
        video_url = pushed[-1]["payload"]["result"]["videoUrl"]
        # The simulator's URLs live an hour (Ark's 24 h is also short): vidgate serves the
        # video itself rather than hand out a URL that dies in the browser's history.
        assert video_url.startswith(f"{server.url}/api/video/tasks/{video_id}/")
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

        # The output moderation's failure, with Ark's code, not retried.
        failed = await wait_for(client, refused, {"FAILED", "COMPLETED"})
        assert failed["status"] == "FAILED"
        assert failed["error"]["code"] == "OutputVideoSensitiveContentDetected"
        assert "sensitive information" in failed["error"]["message"]
        assert failed["metadata"]["errorCategory"] == "content_policy"
        assert len(failed["attempts"]) == 1

        # Ark's RateLimitExceeded (injected 429s) is waited out, then the task completes.
        await survives_a_rate_limit(client, simulator.origin, MODEL)
    stats = simulator.stats()
    assert stats["jobsCreated"] == 3
    assert KEY not in server.output()


async def test_crash_mid_job_makes_no_second_ark_task(
    start_vidgate: StartVidgate, simulator_process: Any, provider_config: WriteConfig
) -> None:
    simulator = start_seedance(simulator_process, job_seconds=3.0)
    env = {
        "VIDGATE_CONFIG": seedance_config(provider_config, simulator),
        "VIDGATE_LEASE_SECONDS": "3",  # the restarted process takes over quickly
    }
    first = start_vidgate(**env)
    async with httpx.AsyncClient(base_url=first.url, timeout=10) as client:
        video_id = await create(client, MODEL, "a fox, submitted before the crash")
        deadline = time.monotonic() + 10
        task = await task_of(client, video_id)
        while not task["externalVideoId"]:
            assert time.monotonic() < deadline, task
            await asyncio.sleep(0.05)
            task = await task_of(client, video_id)
        external_id = task["externalVideoId"]
        assert task["status"] in ("QUEUED", "PROCESSING")
    first.kill()

    second = start_vidgate(**env)
    async with httpx.AsyncClient(base_url=second.url, timeout=10) as client:
        after = await wait_for(client, video_id, {"COMPLETED", "FAILED"}, within=30)
        assert (after["status"], after["externalVideoId"]) == ("COMPLETED", external_id)
        assert len(after["attempts"]) == 1
        video = await client.get(after["videoUrl"])
        assert video.status_code == 200 and video.content[4:8] == b"ftyp"
    assert simulator.stats()["jobsCreated"] == 1
