"""What the serve-to-simulator tests of each provider kind (test_kind_*.py) share: create a
task, read it, wait for a status, and follow its WebSocket pushes to the end."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection

TERMINAL = {"taskCompleted", "taskFailed", "taskCancelled"}


async def create_task(client: httpx.AsyncClient, model: str, prompt: str) -> str:
    response = await client.post("/api/video/tasks", json={"prompt": prompt, "model": model})
    assert response.status_code == 201, response.text
    video_id: str = response.json()["data"]["videoId"]
    return video_id


async def task_of(client: httpx.AsyncClient, video_id: str) -> dict[str, Any]:
    data: dict[str, Any] = (await client.get(f"/api/video/tasks/{video_id}")).json()["data"]
    return data


async def wait_for(
    client: httpx.AsyncClient, video_id: str, statuses: set[str], within: float = 20
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        task = await task_of(client, video_id)
        if task["status"] in statuses:
            return task
        assert time.monotonic() < deadline, task
        await asyncio.sleep(0.1)


async def follow(ws: ClientConnection, within: float = 20) -> list[dict[str, Any]]:
    """Every message up to and including the first terminal one."""
    seen: list[dict[str, Any]] = []

    async def read() -> None:
        async for raw in ws:
            message = json.loads(raw)
            seen.append(message)
            if message["type"] in TERMINAL:
                return

    await asyncio.wait_for(read(), within)
    return seen


def both_ids(pushed: list[dict[str, Any]], video_id: str) -> str:
    """The upstream's id, after checking that every push carried both ids, always the same."""
    external_id = pushed[-1]["payload"]["externalVideoId"]
    assert isinstance(external_id, str) and external_id, pushed[-1]
    for message in pushed:
        assert message["payload"]["videoId"] == video_id, message
        assert message["payload"]["externalVideoId"] == external_id, message
    return external_id


async def survives_a_rate_limit(
    client: httpx.AsyncClient, origin: str, model: str, prompt: str = "a heron in the rain"
) -> dict[str, Any]:
    """Injected 429s (in the protocol's own envelope) until one has met the new task's create,
    then none: the task waits, QUEUED, then completes on its first attempt. Returns it."""
    faults = f"{origin}/_sim/faults"
    (await client.post(faults, json={"error_429_rate": 1.0})).raise_for_status()
    limited = await create_task(client, model, prompt)
    deadline = time.monotonic() + 10
    while (await client.get(f"{origin}/_sim/stats")).json()["faultsInjected"]["error429"] < 1:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert (await task_of(client, limited))["status"] == "QUEUED"
    (await client.post(faults, json={"error_429_rate": 0.0})).raise_for_status()
    done = await wait_for(client, limited, {"COMPLETED", "FAILED"})
    assert done["status"] == "COMPLETED", done
    assert len(done["attempts"]) == 1
    return done
