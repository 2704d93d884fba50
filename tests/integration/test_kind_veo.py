"""``vidgate serve`` with a ``kind = "gemini-veo"`` provider against ``vidgate simulator
--protocol gemini-veo``, both real processes: completion with both ids pushed and a video
streamed with the key vidgate keeps to itself, the RAI filter as a content-policy
failure, a rate limit survived, Vertex with a service account, and a crash mid-job and
mid-submission without a second Veo operation."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from websockets.asyncio.client import connect

from tests.kinds import both_ids, follow, survives_a_rate_limit, task_of, wait_for
from tests.kinds import create_task as create
from tests.support import SimulatorServer, StartVidgate, WriteConfig

KEY = "AIza-kind-test-key-0123456789"
MODEL = "veo-3.1"  # the adapter's own catalogue: veo-3.1-generate-preview on Gemini


def start_veo(
    simulator_process: Any, *, job_seconds: float, extra: list[str] | None = None
) -> SimulatorServer:
    server: SimulatorServer = simulator_process(
        job_seconds=job_seconds,
        extra=["--protocol", "gemini-veo", "--api-key", KEY, *(extra or [])],
    )
    return server


def veo_config(provider_config: WriteConfig, simulator: SimulatorServer) -> str:
    # The Gemini surface's base URL carries its version: {origin}/v1beta.
    return str(provider_config(f"{simulator.origin}/v1beta", kind="gemini-veo", api_key=KEY))


async def playable(client: httpx.AsyncClient, url: str) -> None:
    video = await client.get(url)
    assert video.status_code == 200, video.text
    assert video.headers["content-type"] == "video/mp4"
    assert video.content[4:8] == b"ftyp"


async def test_completion_content_policy_and_rate_limit(
    start_vidgate: StartVidgate, simulator_process: Any, provider_config: WriteConfig
) -> None:
    simulator = start_veo(simulator_process, job_seconds=0.8)
    server = start_vidgate(VIDGATE_CONFIG=veo_config(provider_config, simulator))
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        refused = await create(client, MODEL, "[fail] a heron")
        video_id = await create(client, MODEL, "a heron over a lake")
        async with connect(f"{server.ws_url}?videoId={video_id}") as ws:
            messages = await follow(ws)

        # Completed, with both ids on every push; the id is the operation name.
        assert messages[0]["type"] == "subscribed"
        pushed = messages[1:]
        assert pushed[-1]["type"] == "taskCompleted", pushed
        external_id = both_ids(pushed, video_id)
        assert external_id.startswith("models/veo-3.1-generate-preview/operations/")
        # Veo's file URI wants the key: vidgate hands out its own URL, never Google's.
        video_url = pushed[-1]["payload"]["result"]["videoUrl"]
        assert video_url.startswith(server.url)
        assert KEY not in video_url and "/files/" not in video_url
        await playable(client, video_url)
        task = await task_of(client, video_id)
        assert (task["status"], task["externalVideoId"], task["videoUrl"]) == (
            "COMPLETED",
            external_id,
            video_url,
        )
        assert [(a["attempt"], a["externalVideoId"], a["status"]) for a in task["attempts"]] == [
            (1, external_id, "completed")
        ]

        # The RAI filter: done, no sample, raiMediaFilteredCount -> content_policy.
        failed = await wait_for(client, refused, {"FAILED", "COMPLETED"})
        assert failed["status"] == "FAILED"
        assert failed["error"]["code"] == "RAI_MEDIA_FILTERED"
        assert "Responsible AI" in failed["error"]["message"]
        assert failed["metadata"]["errorCategory"] == "content_policy"
        assert len(failed["attempts"]) == 1  # a content refusal is not retried

        # RESOURCE_EXHAUSTED (injected 429s) is waited out, then the task completes.
        done = await survives_a_rate_limit(client, simulator.origin, MODEL)
        await playable(client, done["videoUrl"])
    assert simulator.stats()["jobsCreated"] == 3
    assert KEY not in server.output()


def service_account(path: Path, token_uri: str) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "kind-proj",
                "private_key_id": "0123456789abcdef",
                "private_key": pem,
                "client_email": "vidgate@kind-proj.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": token_uri,
            }
        )
    )
    return path


async def test_vertex_with_a_service_account(
    start_vidgate: StartVidgate,
    simulator_process: Any,
    provider_config: WriteConfig,
    tmp_path: Path,
) -> None:
    simulator = start_veo(simulator_process, job_seconds=0.8)
    account = service_account(tmp_path / "sa.json", f"{simulator.origin}/token")
    # Vertex's base URL is the origin: the adapter adds /v1/projects/...
    config = provider_config(
        simulator.origin,
        kind="gemini-veo",
        surface="vertex",
        project="kind-proj",
        location="us-central1",
        service_account_file=str(account),
    )
    server = start_vidgate(VIDGATE_CONFIG=str(config))
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        video_id = await create(client, MODEL, "a kingfisher diving")
        task = await wait_for(client, video_id, {"COMPLETED", "FAILED"})
        assert task["status"] == "COMPLETED", task
        assert task["externalVideoId"].startswith(
            "projects/kind-proj/locations/us-central1/publishers/google/models/"
            "veo-3.1-generate-001/operations/"
        )
        # The video came inline (base64) in the operation; vidgate serves it itself.
        assert task["videoUrl"].startswith(server.url)
        await playable(client, task["videoUrl"])
    requests = simulator.stats()["requests"]
    assert requests["POST /token"] >= 1
    assert "PRIVATE KEY" not in server.output()


async def test_crash_mid_job_and_mid_submission_makes_no_second_operation(
    start_vidgate: StartVidgate, simulator_process: Any, provider_config: WriteConfig
) -> None:
    # Slow answers, so the kill lands while one create is in flight.
    simulator = start_veo(simulator_process, job_seconds=2.0, extra=["--latency-ms", "800"])
    env = {
        "VIDGATE_CONFIG": veo_config(provider_config, simulator),
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
        await playable(client, after["videoUrl"])
        # Veo has no idempotency key, no client id and no job list: the interrupted
        # create cannot be checked, so it fails safely rather than risk a second job.
        other = await wait_for(client, in_flight, {"COMPLETED", "FAILED"}, within=30)
        assert other["status"] == "FAILED", other
        assert other["error"]["code"] == "SUBMISSION_UNCERTAIN"
        assert len(other["attempts"]) == 1
    # Both creates reached the simulator before the crash; none was sent again.
    assert simulator.stats()["jobsCreated"] == 2
