"""A provider configured with the wrong `kind` for its upstream: every answer comes in
another protocol's shape. The client gets a clear failure, never a 500, and nothing it
created is lost."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import SimulatorServer, StartVidgate


@pytest.mark.parametrize(
    ("kind", "protocol"),
    [
        ("seedance", "kling"),  # Ark's routes on Kling: 404s in Kling's envelope
        ("kling", "openai-videos"),  # Kling's routes on a /v1/videos upstream
        ("minimax", "runway"),  # MiniMax answers under HTTP 200; Runway's 404s are not
    ],
)
def test_an_upstream_speaking_another_protocol_fails_the_task_clearly(
    start_vidgate: StartVidgate,
    simulator_process: Any,
    tmp_path: Path,
    kind: str,
    protocol: str,
) -> None:
    simulator: SimulatorServer = simulator_process(
        job_seconds=0.5, extra=["--protocol", protocol, "--prefix", "/"]
    )
    keys = (
        'access_key = "ak-0123456789abcdef0123456789abcdef"\n'
        'secret_key = "sk-0123456789abcdef0123456789abcdef"\n'
        if kind == "kling"
        else 'api_key = "k"\n'
    )
    config = tmp_path / "wrong.toml"
    config.write_text(
        f'[[providers]]\nname = "wrong"\nkind = "{kind}"\n'
        f'base_url = "{simulator.origin}"\n{keys}models = {{ "clip" = "m-1" }}\n'
    )
    server = start_vidgate(VIDGATE_CONFIG=str(config), VIDGATE_SUBMIT_RETRIES="2")
    created = httpx.post(
        f"{server.url}/api/video/tasks", json={"prompt": "a heron", "model": "clip"}
    )
    assert created.status_code == 201, created.text
    video_id = created.json()["data"]["videoId"]
    deadline = time.monotonic() + 45
    task: dict[str, Any] = {}
    while time.monotonic() < deadline:
        answer = httpx.get(f"{server.url}/api/video/tasks/{video_id}")
        assert answer.status_code == 200, answer.text
        task = answer.json()["data"]
        if task["status"] not in ("QUEUED", "PROCESSING"):
            break
        time.sleep(0.2)
    assert task["status"] == "FAILED", task
    # Refused at once: nothing of another protocol's shape is taken for a job, and a 404
    # on create is a configuration error, not something to retry.
    assert task["error"]["code"] == "UPSTREAM_REJECTED", task
    assert "wrong" in task["error"]["message"] or "404" in task["error"]["message"], task
    assert [a["externalVideoId"] for a in task["attempts"]] == [None]
    assert task["videoUrl"] is None
    listed = httpx.get(f"{server.url}/api/video/tasks").json()["data"]["items"]
    assert [t["videoId"] for t in listed] == [video_id]
    assert "Traceback" not in server.output()
