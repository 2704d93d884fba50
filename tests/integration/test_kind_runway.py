"""``vidgate serve`` with a ``kind = "runway"`` provider against ``vidgate simulator
--protocol runway``, both real processes: completion with both ids pushed, a
content-policy failure, a rate limit survived, and a crash mid-job without a second
Runway task."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from websockets.asyncio.client import connect

from tests.kinds import both_ids, follow, survives_a_rate_limit, task_of, wait_for
from tests.kinds import create_task as create
from tests.support import SimulatorServer, StartVidgate, WriteConfig

KEY = "key_" + "5a" * 64
MODEL = "gen4.5"  # one of the adapter's built-in models


def start_runway(simulator_process: Any, *, job_seconds: float) -> SimulatorServer:
    server: SimulatorServer = simulator_process(
        job_seconds=job_seconds, extra=["--protocol", "runway", "--api-key", KEY]
    )
    return server


def runway_config(provider_config: WriteConfig, simulator: SimulatorServer) -> str:
    # Runway's base URL is the bare origin (paths start with /v1), as the simulator's.
    # It has no Idempotency-Key, so a create is never blindly resent.
    path = provider_config(simulator.origin, kind="runway", api_key=KEY, idempotency=False)
    return str(path)


async def test_completion_failure_rate_limit_then_crash_and_restart(
    start_vidgate: StartVidgate, simulator_process: Any, provider_config: WriteConfig
) -> None:
    """All four cases in one run: each vidgate or simulator start costs seconds, so the
    crash reuses the processes of the first three cases."""
    simulator = start_runway(simulator_process, job_seconds=0.8)
    env = {
        "VIDGATE_CONFIG": runway_config(provider_config, simulator),
        "VIDGATE_LEASE_SECONDS": "3",  # the restarted process takes over quickly
    }
    server = start_vidgate(**env)
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
        assert isinstance(external_id, str) and len(external_id) == 36  # a Runway task UUID
        video_url = pushed[-1]["payload"]["result"]["videoUrl"]
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

        # Runway's input moderation failure, with its failureCode, not retried.
        failed = await wait_for(client, refused, {"FAILED", "COMPLETED"})
        assert failed["status"] == "FAILED"
        assert failed["error"]["code"] == "SAFETY.INPUT.TEXT"
        assert failed["error"]["message"] == "The prompt text was rejected by content moderation."
        assert failed["metadata"]["errorCategory"] == "content_policy"
        assert len(failed["attempts"]) == 1

        # A 429 (injected) is waited out, then the task completes on its first attempt.
        await survives_a_rate_limit(client, simulator.origin, MODEL)
        assert simulator.stats()["jobsCreated"] == 3
        assert KEY not in server.output()

        # A crash mid-job: the restarted process follows the same Runway task to the end.
        await client.post(f"{simulator.origin}/_sim/faults", json={"job_seconds": 3.0})
        crashed = await create(client, MODEL, "a fox, submitted before the crash")
        deadline = time.monotonic() + 10
        task = await task_of(client, crashed)
        while not task["externalVideoId"]:
            assert time.monotonic() < deadline, task
            await asyncio.sleep(0.05)
            task = await task_of(client, crashed)
        external_id = task["externalVideoId"]
        assert task["status"] in ("QUEUED", "PROCESSING")
    server.kill()

    second = start_vidgate(**env)
    async with httpx.AsyncClient(base_url=second.url, timeout=10) as client:
        after = await wait_for(client, crashed, {"COMPLETED", "FAILED"}, within=30)
        assert (after["status"], after["externalVideoId"]) == ("COMPLETED", external_id)
        assert len(after["attempts"]) == 1
        video = await client.get(after["videoUrl"])
        assert video.status_code == 200 and video.content[4:8] == b"ftyp"
    stats = simulator.stats()
    assert stats["jobsCreated"] == 4  # exactly one Runway task for the crashed one
    requests, injected = stats["requests"], stats["faultsInjected"]
    assert isinstance(requests, dict) and isinstance(injected, dict)
    # Four tasks, plus the create(s) refused with 429 while the fault was on.
    assert requests["POST /v1/text_to_video"] == 4 + injected["error429"]
    assert KEY not in second.output()
