"""The CLI's ``--wait`` follower resumes after a dropped socket with ``afterEventId``.

A real WebSocket server on loopback plays vidgate: it drops the first connection after
one event, and answers the second only if it asks to resume after that event.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from websockets.asyncio.server import ServerConnection, serve

from vidgate.client.follow import _follow

VIDEO = "video_00000000-0000-4000-8000-000000000000"


def frame(kind: str, event_id: int | None, progress: int, status: str) -> str:
    payload = {"videoId": VIDEO, "externalVideoId": "ext_1", "status": status}
    payload |= {"progress": progress, "message": ""}
    return json.dumps({"type": kind, "timestamp": 1, "eventId": event_id, "payload": payload})


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[dict[str, list[str]]]]]:
    asked: list[dict[str, list[str]]] = []

    async def handler(ws: ServerConnection) -> None:
        query = parse_qs(urlsplit(ws.request.path if ws.request else "").query)
        asked.append(query)
        if len(asked) == 1:
            await ws.send(frame("subscribed", 3, 0, "queued"))
            await ws.send(frame("taskProgress", 7, 40, "in_progress"))
            await ws.close()  # the network drops
            return
        if query.get("afterEventId") == ["7"]:
            await ws.send(frame("taskProgress", 8, 80, "in_progress"))
            await ws.send(frame("subscribed", 8, 80, "in_progress"))
            await ws.send(frame("taskCompleted", 9, 100, "completed"))
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as running:
        port = next(iter(running.sockets)).getsockname()[1]
        yield f"http://127.0.0.1:{port}", asked


async def test_the_follower_resumes_after_the_last_event_it_saw(
    server: tuple[str, list[dict[str, list[str]]]],
) -> None:
    base, asked = server
    seen: list[tuple[str, Any]] = []
    final = await _follow(
        base, VIDEO, lambda kind, payload: seen.append((kind, payload["progress"]))
    )
    assert final["status"] == "completed"
    assert asked[0] == {"videoId": [VIDEO]}
    assert asked[1] == {"videoId": [VIDEO], "afterEventId": ["7"]}
    assert seen == [
        ("subscribed", 0),
        ("taskProgress", 40),
        ("taskProgress", 80),
        ("subscribed", 80),
        ("taskCompleted", 100),
    ]
