"""vidgate against the simulator over real sockets: the whole life of a task."""

from __future__ import annotations

import asyncio
import io
import json
import re
from typing import Any

import av
import httpx
import pytest
from websockets.asyncio.client import connect

from tests.databases import DATABASES, query
from tests.kinds import follow
from tests.support import VidgateServer

VIDEO_ID = re.compile(
    r"^video_[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
)


@pytest.fixture(params=DATABASES)
def database_kind(request: pytest.FixtureRequest) -> str:
    """Every test here runs on SQLite and on PostgreSQL."""
    return str(request.param)


async def create(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/api/video/tasks", json={"prompt": "a red fox in snow", **body})
    assert response.status_code == 201, response.text
    envelope = response.json()
    assert envelope["success"] is True
    data: dict[str, Any] = envelope["data"]
    return data


def mp4_duration(data: bytes) -> float:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        assert frames > 0
        assert container.duration is not None
        return float(container.duration) / 1_000_000


def stored_events(server: VidgateServer, video_id: str) -> list[tuple[str, dict[str, Any]]]:
    rows = query(
        server.env["VIDGATE_DATABASE_URL"],
        "SELECT type, payload FROM task_events WHERE video_id = $1 ORDER BY id",
        video_id,
    )
    return [(kind, body if isinstance(body, dict) else json.loads(body)) for kind, body in rows]


async def test_full_lifecycle_with_both_ids(vidgate_server: VidgateServer) -> None:
    async with httpx.AsyncClient(base_url=vidgate_server.url, timeout=10) as client:
        task = await create(client, model="sora_video2", seconds="4", size="1280x720")
        video_id = task["videoId"]
        assert VIDEO_ID.match(video_id)
        assert task["status"] == "QUEUED"
        assert task["progress"] == 0
        assert task["externalVideoId"] is None
        assert task["videoUrl"] is None
        assert task["attempts"] == []
        assert task["createdAt"].endswith("Z")

        async with connect(f"{vidgate_server.ws_url}?videoId={video_id}") as ws:
            messages = await follow(ws, within=30)

        first, pushed = messages[0], messages[1:]
        assert first["type"] == "subscribed"
        assert first["payload"]["videoId"] == video_id
        assert pushed[-1]["type"] == "taskCompleted"
        external_id = pushed[-1]["payload"]["externalVideoId"]
        assert isinstance(external_id, str) and external_id.startswith("video_")
        assert external_id != video_id
        progress = [m["payload"]["progress"] for m in messages]
        assert progress == sorted(progress), "progress went backwards"
        ids = [m["eventId"] for m in pushed]
        assert ids == sorted(set(ids)) and all(isinstance(i, int) for i in ids)
        assert first["eventId"] is None or first["eventId"] < ids[0]
        for message in pushed:
            assert set(message) == {"type", "timestamp", "eventId", "payload"}
            assert isinstance(message["timestamp"], int) and message["timestamp"] > 1.7e12
            payload = message["payload"]
            assert payload["videoId"] == video_id
            assert payload["externalVideoId"] == external_id
        completed = pushed[-1]["payload"]
        assert completed["status"] == "completed"
        assert completed["progress"] == 100
        video_url = completed["result"]["videoUrl"]
        assert video_url.startswith("http://")
        # Something changed in every message: no duplicates.
        states = [json.dumps(m["payload"], sort_keys=True) for m in pushed]
        assert len(states) == len(set(states))

        got = (await client.get(f"/api/video/tasks/{video_id}")).json()["data"]
        assert got["status"] == "COMPLETED"
        assert got["externalVideoId"] == external_id
        assert got["metadata"]["externalTaskId"] == external_id
        assert isinstance(got["metadata"]["createdAt"], int)
        assert got["videoUrl"] == video_url
        assert got["completedAt"] is not None
        assert [(a["attempt"], a["externalVideoId"], a["status"]) for a in got["attempts"]] == [
            (1, external_id, "completed")
        ]

        content = (await client.get(f"/api/video/tasks/{video_id}/content")).json()
        assert content == {
            "success": True,
            "data": {"videoId": video_id, "externalVideoId": external_id, "url": video_url},
        }
        video = await client.get(video_url)
        assert video.status_code == 200
        assert video.headers["content-type"] == "video/mp4"
        assert mp4_duration(video.content) > 0
        partial = await client.get(video_url, headers={"Range": "bytes=0-1023"})
        assert partial.status_code == 206
        assert len(partial.content) == 1024

    # Every pushed message is in the event log, in order.
    logged = stored_events(vidgate_server, video_id)
    assert [(m["type"], m["payload"]) for m in pushed] == logged[-len(pushed) :]


async def test_failing_job_reports_code_and_message(vidgate_server: VidgateServer) -> None:
    async with httpx.AsyncClient(base_url=vidgate_server.url, timeout=10) as client:
        task = await create(client, prompt="a fox [fail]")
        async with connect(f"{vidgate_server.ws_url}?videoId={task['videoId']}") as ws:
            messages = await follow(ws, within=30)
        last = messages[-1]
        assert last["type"] == "taskFailed"
        assert last["payload"]["status"] == "failed"
        assert last["payload"]["externalVideoId"].startswith("video_")
        assert last["payload"]["error"]["code"] == "moderation_blocked"
        assert last["payload"]["error"]["message"]
        got = (await client.get(f"/api/video/tasks/{task['videoId']}")).json()["data"]
        assert got["status"] == "FAILED"
        assert got["error"]["code"] == "moderation_blocked"
        assert got["attempts"][0]["status"] == "failed"
        refused = await client.get(f"/api/video/tasks/{task['videoId']}/content")
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "TASK_NOT_COMPLETED"


async def wait_for_external_id(client: httpx.AsyncClient, video_id: str) -> str:
    for _ in range(200):
        data = (await client.get(f"/api/video/tasks/{video_id}")).json()["data"]
        if data["externalVideoId"]:
            return str(data["externalVideoId"])
        await asyncio.sleep(0.05)
    raise AssertionError("never submitted")


async def test_cancel_then_retry_keeps_both_attempts(vidgate_server: VidgateServer) -> None:
    async with httpx.AsyncClient(base_url=vidgate_server.url, timeout=10) as client:
        task = await create(client)
        video_id = task["videoId"]
        async with connect(f"{vidgate_server.ws_url}?videoId={video_id}") as ws:
            first_external = await wait_for_external_id(client, video_id)
            cancelled = await client.post(f"/api/video/tasks/{video_id}/cancel")
            assert cancelled.status_code == 200
            assert cancelled.json()["data"]["status"] == "CANCELLED"
            messages = await follow(ws, within=30)
        assert messages[-1]["type"] == "taskCancelled"
        assert messages[-1]["payload"]["status"] == "cancelled"
        assert messages[-1]["payload"]["externalVideoId"] == first_external
        # Idempotent.
        again = await client.post(f"/api/video/tasks/{video_id}/cancel")
        assert again.status_code == 200 and again.json()["data"]["status"] == "CANCELLED"

        retried = await client.post(f"/api/video/tasks/{video_id}/retry")
        assert retried.status_code == 200, retried.text
        assert retried.json()["data"]["status"] == "QUEUED"
        async with connect(f"{vidgate_server.ws_url}?videoId={video_id}") as ws:
            messages = await follow(ws, within=30)
        assert messages[-1]["type"] == "taskCompleted"
        second_external = messages[-1]["payload"]["externalVideoId"]
        assert second_external != first_external

        got = (await client.get(f"/api/video/tasks/{video_id}")).json()["data"]
        assert [(a["attempt"], a["externalVideoId"]) for a in got["attempts"]] == [
            (1, first_external),
            (2, second_external),
        ]
        assert got["attempts"][1]["status"] == "completed"
        assert got["metadata"]["externalTaskId"] == second_external

        finished = await client.post(f"/api/video/tasks/{video_id}/retry")
        assert finished.status_code == 409
        assert finished.json()["error"]["code"] == "TASK_NOT_RETRYABLE"
        late = await client.post(f"/api/video/tasks/{video_id}/cancel")
        assert late.status_code == 409
        assert late.json()["error"]["code"] == "TASK_ALREADY_FINISHED"


async def test_list_is_paginated_newest_first(vidgate_server: VidgateServer) -> None:
    async with httpx.AsyncClient(base_url=vidgate_server.url, timeout=10) as client:
        made = [(await create(client, prompt=f"clip {i}"))["videoId"] for i in range(5)]
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = (await client.get("/api/video/tasks", params=params)).json()["data"]
            assert set(page) == {"items", "nextCursor"}
            assert len(page["items"]) <= 2
            seen += [item["videoId"] for item in page["items"]]
            cursor = page["nextCursor"]
            if cursor is None:
                break
        assert seen == list(reversed(made))
        queued = (await client.get("/api/video/tasks", params={"status": "COMPLETED"})).json()
        assert all(item["status"] == "COMPLETED" for item in queued["data"]["items"])
