"""WebSocket resume against a real vidgate (demo mode: the built-in simulator).

A client that drops its socket mid-task and resubscribes with ``afterEventId`` gets every
message it missed, then the live ones: together with what it saw before, exactly the
task's stored events, each once, in order. Resuming from before what retention left gives
a ``subscribed`` snapshot that says so.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.databases import DATABASES, stored_event_ids
from tests.kinds import TERMINAL, create_task, follow, task_of, wait_for
from tests.support import StartVidgate, VidgateServer


@pytest.fixture(params=DATABASES)
def database_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def stored_ids(server: VidgateServer, video_id: str) -> list[int]:
    return stored_event_ids(server.env["VIDGATE_DATABASE_URL"], video_id)


async def receive(ws: ClientConnection, within: float = 10) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), within))
    return message


async def until_done(ws: ClientConnection, within: float = 30) -> list[dict[str, Any]]:
    """Messages until both the ``subscribed`` answer and a terminal event have come."""
    seen: list[dict[str, Any]] = []
    types: set[str] = set()
    while "subscribed" not in types or not types & TERMINAL:
        seen.append(await receive(ws, within))
        types.add(seen[-1]["type"])
    return seen


def event_ids(messages: list[dict[str, Any]]) -> list[int]:
    return [m["eventId"] for m in messages if m["type"] != "subscribed"]


async def test_a_dropped_socket_resumes_with_no_gap_and_no_duplicate(
    start_vidgate: StartVidgate,
) -> None:
    server = start_vidgate(job_seconds=12)  # polls back off: events 1-7 s apart
    async with httpx.AsyncClient(base_url=server.url) as client:
        video_id = await create_task(client, "sora_video2", "a fox")
        async with connect(f"{server.ws_url}?videoId={video_id}") as ws:
            first = await receive(ws)
            assert first["type"] == "subscribed"
            seen = [await receive(ws)]
            while seen[-1]["payload"]["progress"] == 0:
                seen.append(await receive(ws))
        assert all(m["type"] == "taskProgress" for m in seen)
        last = seen[-1]["eventId"]
        # The task goes on while nobody listens.
        deadline = time.monotonic() + 20
        while (await task_of(client, video_id))["progress"] <= seen[-1]["payload"]["progress"]:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)

        async with connect(f"{server.ws_url}?videoId={video_id}&afterEventId={last}") as ws:
            rest = await until_done(ws)
        await wait_for(client, video_id, {"COMPLETED"})

    subscribed = [m for m in rest if m["type"] == "subscribed"]
    assert len(subscribed) == 1 and subscribed[0]["resumed"] is True
    replayed = rest[: rest.index(subscribed[0])]
    assert replayed, "events went by while the socket was down: they are replayed first"
    assert subscribed[0]["eventId"] == replayed[-1]["eventId"]
    assert subscribed[0]["payload"] == replayed[-1]["payload"]
    got = event_ids(seen) + event_ids(rest)
    assert got == stored_ids(server, video_id), "every stored event, once, in order"
    assert rest[-1]["type"] == "taskCompleted", "and the live ones after the replay"


async def test_resume_by_message_after_the_end_and_at_the_end(
    vidgate_server: VidgateServer,
) -> None:
    async with httpx.AsyncClient(base_url=vidgate_server.url) as client:
        video_id = await create_task(client, "sora_video2", "a fox")
        await wait_for(client, video_id, {"COMPLETED"})
    stored = stored_ids(vidgate_server, video_id)

    async with connect(vidgate_server.ws_url) as ws:
        await ws.send(json.dumps({"type": "subscribe", "videoId": video_id, "afterEventId": 0}))
        replay = [await receive(ws) for _ in stored]
        done = await receive(ws)
        await ws.send(
            json.dumps({"type": "subscribe", "videoId": video_id, "afterEventId": stored[-1]})
        )
        at_end = await receive(ws)
        # A plain subscribe names the newest event its snapshot reflects.
        await ws.send(json.dumps({"type": "subscribe", "videoId": video_id}))
        plain = await receive(ws)

    assert event_ids(replay) == stored
    assert replay[-1]["type"] == "taskCompleted"
    assert done["type"] == "subscribed" and done["resumed"] is True
    assert done["eventId"] == stored[-1]
    assert at_end["type"] == "subscribed" and at_end["resumed"] is True
    assert at_end["eventId"] == stored[-1]
    assert at_end["payload"]["status"] == "completed"
    assert plain["type"] == "subscribed" and "resumed" not in plain
    assert plain["eventId"] == stored[-1]
    assert plain["payload"] == replay[-1]["payload"]


@pytest.mark.parametrize("bad", ["-1", "abc", "1.5", "1e3", "", " 7", "²", str(2**63), str(10**40)])
async def test_a_bad_after_event_id_on_the_url_is_an_error_frame(
    shared_vidgate: VidgateServer, bad: str
) -> None:
    async with httpx.AsyncClient(base_url=shared_vidgate.url) as client:
        video_id = await create_task(client, "sora_video2", "a fox")
    url = httpx.URL(shared_vidgate.ws_url, params={"videoId": video_id, "afterEventId": bad})
    async with connect(str(url)) as ws:
        error = await receive(ws)
        await ws.send(json.dumps({"type": "ping"}))
        pong = await receive(ws)
    assert error["type"] == "error"
    assert error["payload"]["code"] == "INVALID_AFTER_EVENT_ID"
    assert error["payload"]["videoId"] == video_id
    assert pong["type"] == "pong"  # the connection lives on


async def test_bad_after_event_ids_in_messages_are_error_frames(
    shared_vidgate: VidgateServer,
) -> None:
    async with httpx.AsyncClient(base_url=shared_vidgate.url) as client:
        video_id = await create_task(client, "sora_video2", "a fox")
    bad: list[object] = [-1, 1.5, True, "x", [], {}, 2**63, 10**400, "12"]
    async with connect(shared_vidgate.ws_url) as ws:
        for value in bad:
            body = json.dumps({"type": "subscribe", "videoId": video_id, "afterEventId": value})
            await ws.send(body)
        answers = [await receive(ws) for _ in bad]
        await ws.send(json.dumps({"type": "subscribe", "videoId": video_id, "afterEventId": None}))
        fine = await receive(ws)
    codes = [a["payload"].get("code") for a in answers]
    # "12" (a string of digits) is read as 12, as the query parameter is.
    assert codes[:-1] == ["INVALID_AFTER_EVENT_ID"] * (len(bad) - 1)
    assert answers[-1]["type"] == "subscribed" and answers[-1]["resumed"] is True
    assert fine["type"] == "subscribed" and "resumed" not in fine


async def test_resume_from_before_the_retention_falls_back_to_a_snapshot(
    start_vidgate: StartVidgate,
) -> None:
    # Events older than about 1.7 s are deleted while the task runs.
    server = start_vidgate(job_seconds=2, VIDGATE_EVENT_RETENTION_DAYS="0.00002")
    async with httpx.AsyncClient(base_url=server.url) as client:
        video_id = await create_task(client, "sora_video2", "a fox")
        async with connect(f"{server.ws_url}?videoId={video_id}") as ws:
            messages = await follow(ws, within=30)
    first_id = event_ids(messages)[0]
    deadline = time.monotonic() + 20
    while stored_ids(server, video_id) != [event_ids(messages)[-1]]:
        assert time.monotonic() < deadline, stored_ids(server, video_id)
        await asyncio.sleep(0.2)

    async with connect(f"{server.ws_url}?videoId={video_id}&afterEventId={first_id}") as ws:
        snapshot = await receive(ws)
        await ws.send(json.dumps({"type": "ping"}))
        after = await receive(ws)
    assert snapshot["type"] == "subscribed"
    assert snapshot["resumed"] is False
    assert snapshot["reason"] == "EVENTS_EXPIRED"
    assert snapshot["payload"]["status"] == "completed"
    assert snapshot["eventId"] == event_ids(messages)[-1]
    assert after["type"] == "pong"  # nothing replayed in between
    assert messages[-1]["type"] in TERMINAL
