"""One client model served by two providers of different protocols: when the first one's
job fails for a reason worth another try, the task moves to the other (a new attempt, a
new external id, both kept), and the client sees one task throughout."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from tests.support import SimulatorServer, StartVidgate

AK = "ak-failover-access-key-0123456789abcd"
SK = "sk-failover-secret-key-0123456789abcd"


def test_a_seedance_failure_moves_the_task_to_kling(
    start_vidgate: StartVidgate, simulator_process: Any, tmp_path: Path
) -> None:
    # Every Seedance job fails with Ark's internal error (generation_failed, retryable).
    seedance: SimulatorServer = simulator_process(
        job_seconds=0.6,
        extra=["--protocol", "seedance", "--api-key", "ark-key", "--job-fail-rate", "1"],
    )
    kling: SimulatorServer = simulator_process(
        job_seconds=0.6, extra=["--protocol", "kling", "--api-key", f"{AK}:{SK}"]
    )
    config = tmp_path / "two.toml"
    config.write_text(
        f"""
[[providers]]
name = "ark"
kind = "seedance"
base_url = "{seedance.origin}/api/v3"
api_key = "ark-key"
models = {{ "clip" = "dreamina-seedance-2-0-260128" }}
priority = 0

[[providers]]
name = "kuaishou"
kind = "kling"
base_url = "{kling.origin}"
access_key = "{AK}"
secret_key = "{SK}"
models = {{ "clip" = "kling-v2-6" }}
priority = 1
"""
    )
    server = start_vidgate(VIDGATE_CONFIG=str(config))
    models = httpx.get(f"{server.url}/api/models").json()["data"]["items"]
    assert [(p["provider"], p["protocol"]) for p in models[0]["providers"]] == [
        ("ark", "seedance"),
        ("kuaishou", "kling"),
    ]
    created = httpx.post(
        f"{server.url}/api/video/tasks",
        json={"prompt": "a kite over dunes", "model": "clip", "durationSeconds": 5},
    )
    assert created.status_code == 201, created.text
    video_id = created.json()["data"]["videoId"]

    deadline = time.monotonic() + 40
    task: dict[str, Any] = {}
    while time.monotonic() < deadline:
        task = httpx.get(f"{server.url}/api/video/tasks/{video_id}").json()["data"]
        if task["status"] in ("COMPLETED", "FAILED"):
            break
        time.sleep(0.1)
    assert task["status"] == "COMPLETED", task
    first, second = task["attempts"]
    assert (first["provider"], first["protocol"], first["status"]) == ("ark", "seedance", "failed")
    assert first["error"]["code"] == "InternalServiceError"
    assert (second["provider"], second["protocol"]) == ("kuaishou", "kling")
    assert second["upstreamModel"] == "kling-v2-6"
    assert first["externalVideoId"] and second["externalVideoId"]
    assert first["externalVideoId"] != second["externalVideoId"]
    assert task["externalVideoId"] == second["externalVideoId"]
    assert seedance.stats()["jobsCreated"] == 1 and kling.stats()["jobsCreated"] == 1
    video = httpx.get(task["videoUrl"])
    assert video.status_code == 200 and video.content[4:8] == b"ftyp"
