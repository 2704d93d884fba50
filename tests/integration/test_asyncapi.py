"""``/asyncapi.json`` against real frames: a live vidgate (demo mode, the built-in
simulator) runs tasks to completion, failure and cancellation, and every frame the socket
carried, every client message sent and the webhook body of every stored event validate
against the document's schemas (each frame against exactly one server message)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7
from websockets.asyncio.client import ClientConnection, connect

from tests.databases import query
from tests.kinds import TERMINAL, create_task, wait_for
from tests.support import VidgateServer
from vidgate.api import asyncapi
from vidgate.domain import messages
from vidgate.domain.events import EventType, TaskEvent
from vidgate.webhooks.payload import body as webhook_body

DOC = "urn:vidgate:asyncapi"


class Contract:
    """Validates messages against the schemas an AsyncAPI document names."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        resource = Resource.from_contents(document, default_specification=DRAFT7)
        self.registry: Registry[Any] = Registry().with_resource(DOC, resource)

    def _validator(self, ref: str) -> Draft7Validator:
        return Draft7Validator({"$ref": DOC + ref}, registry=self.registry)

    def schema_ref(self, message_ref: str) -> str:
        """The payload schema ref of ``#/channels/<c>/messages/<m>``."""
        _, _, channel, _, name = message_ref.split("/")
        ref: str = self.document["channels"][channel]["messages"][name]["payload"]["$ref"]
        return ref

    def messages_of(self, operation: str) -> list[str]:
        return [m["$ref"] for m in self.document["operations"][operation]["messages"]]

    def match(self, operation: str, message: object) -> list[str]:
        """The names of ``operation``'s messages that ``message`` is valid for."""
        found = []
        for ref in self.messages_of(operation):
            try:
                self._validator(self.schema_ref(ref)).validate(message)
            except ValidationError:
                continue
            found.append(ref.rsplit("/", 1)[1])
        return found


@pytest.fixture
def contract(vidgate_server: VidgateServer) -> Contract:
    response = httpx.get(f"{vidgate_server.url}/asyncapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    document = response.json()
    assert document["asyncapi"] == "3.0.0"
    assert document["channels"]["ws"]["address"] == "/ws"
    host = vidgate_server.url.split("://", 1)[1]
    assert document["servers"]["vidgate"] == {
        "host": host,
        "protocol": "ws",
        "description": "This vidgate.",
    }
    return Contract(document)


async def receive(ws: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 15))
    return message


async def test_real_frames_match_the_document(
    vidgate_server: VidgateServer, contract: Contract
) -> None:
    sent: list[dict[str, Any]] = []
    frames: list[dict[str, Any]] = []

    async def send(ws: ClientConnection, message: dict[str, Any]) -> None:
        sent.append(message)
        await ws.send(json.dumps(message))

    async with httpx.AsyncClient(base_url=vidgate_server.url) as client:
        done = await create_task(client, "sora_video2", "a fox")
        failed = await create_task(client, "sora_video2", "[fail] a fox")
        cancelled = await create_task(client, "sora_video2", "a fox that stops")
        tasks = {done, failed, cancelled}
        async with connect(vidgate_server.ws_url) as ws:
            await send(ws, {"type": "auth", "token": "unused in mode none"})
            await send(ws, {"type": "ping"})
            await send(ws, {"type": "subscribe", "videoId": "video_nope"})
            await send(ws, {"type": "subscribe", "videoId": done, "afterEventId": "x"})
            for video_id in tasks:
                await send(ws, {"type": "subscribe", "videoId": video_id})
            await client.post(f"/api/video/tasks/{cancelled}/cancel")
            ended: set[str] = set()
            while ended != tasks:
                frame = await receive(ws)
                frames.append(frame)
                if frame["type"] in TERMINAL:
                    ended.add(frame["payload"]["videoId"])
            await send(ws, {"type": "subscribe", "videoId": done, "afterEventId": 0})
            while frames[-1]["type"] != "subscribed" or "resumed" not in frames[-1]:
                frames.append(await receive(ws))
            await send(ws, {"type": "unsubscribe", "videoId": done})
            frames.append(await receive(ws))
        await wait_for(client, failed, {"FAILED"})

    kinds = {frame["type"] for frame in frames}
    assert kinds >= {
        "authenticated",
        "pong",
        "error",
        "subscribed",
        "taskProgress",
        "taskCompleted",
        "taskFailed",
        "taskCancelled",
        "unsubscribed",
    }, kinds
    for frame in frames:
        assert contract.match("sendTaskMessages", frame) == [frame["type"]], frame
    for message in sent:
        matched = contract.match("receiveClientMessages", message)
        refused = message.get("afterEventId") == "x"  # answered INVALID_AFTER_EVENT_ID
        assert matched == ([] if refused else [message["type"]]), message

    # The webhook body of every stored event of these tasks.
    rows = query(
        vidgate_server.env["VIDGATE_DATABASE_URL"],
        "SELECT id, video_id, type, payload, timestamp_ms, task_version FROM task_events",
    )
    assert len(rows) >= len(tasks) * 2
    for row in rows:
        payload = row[3] if isinstance(row[3], dict) else json.loads(row[3])
        event = TaskEvent(
            id=row[0],
            video_id=row[1],
            type=EventType(row[2]),
            payload=payload,
            timestamp_ms=row[4],
            task_version=row[5],
        )
        delivered = json.loads(webhook_body(event))
        assert contract.match("deliverWebhooks", delivered) == ["webhookEvent"], delivered


def test_the_document_is_consistent() -> None:
    document = asyncapi.document("gateway.example.com", "https")
    assert document["servers"]["vidgate"]["protocol"] == "wss"
    for schema in document["components"]["schemas"].values():
        Draft7Validator.check_schema(schema)
    contract = Contract(document)
    for operation in document["operations"].values():
        channel = operation["channel"]["$ref"].rsplit("/", 1)[1]
        for ref in operation["messages"]:
            assert ref["$ref"].startswith(f"#/channels/{channel}/messages/")
            schema = contract.schema_ref(ref["$ref"])
            assert schema.removeprefix(asyncapi.REF) in document["components"]["schemas"]
    assert set(document["channels"]["ws"]["x-close-codes"]) == {"1008", "1011", "1013"}
    query_schema = document["channels"]["ws"]["bindings"]["ws"]["query"]
    assert set(query_schema["properties"]) == {"videoId", "afterEventId", "token"}


@pytest.mark.parametrize(
    "frame",
    [
        messages.error("RATE_LIMITED", "slow down", retry_after_seconds=1.5),
        messages.error("UNKNOWN_MESSAGE_TYPE", "no", received="hello"),
        messages.error("INVALID_MESSAGE", "subscribe needs a videoId string."),
        messages.subscribed(
            messages.TaskState(
                video_id="video_1",
                external_video_id=None,
                status="queued",
                progress=0,
                message="",
            ),
            event_id=None,
        ),
        messages.subscribed(
            messages.TaskState(
                video_id="video_1",
                external_video_id="ext",
                status="completed",
                progress=100,
                message="",
                result=messages.Result(video_url="http://x/v.mp4"),
            ),
            event_id=7,
            resumed=False,
            reason=messages.EVENTS_EXPIRED,
        ),
        messages.task_frame(
            "taskFailed",
            event_id=3,
            timestamp=1,
            payload=messages.TaskState(
                video_id="video_1",
                external_video_id="ext",
                status="expired",
                progress=40,
                message="gone",
                error=messages.Problem(code="JOB_EXPIRED", message="gone"),
            ),
        ),
    ],
)
def test_every_kind_of_rendered_frame_matches_one_schema(frame: messages.Frame) -> None:
    contract = Contract(asyncapi.document("localhost", "http"))
    rendered = messages.render(frame)
    assert contract.match("sendTaskMessages", rendered) == [frame.type]


def test_the_schemas_refuse_what_the_server_never_sends() -> None:
    contract = Contract(asyncapi.document("localhost", "http"))
    good = messages.render(
        messages.task_frame(
            "taskProgress",
            event_id=3,
            timestamp=1,
            payload=messages.TaskState(
                video_id="v", external_video_id=None, status="queued", progress=0, message=""
            ),
        )
    )
    assert contract.match("sendTaskMessages", good) == ["taskProgress"]
    for broken in (
        {**good, "eventId": None},
        {**good, "extra": 1},
        {**good, "payload": {**good["payload"], "progress": 101}},
        {**good, "payload": {**good["payload"], "status": "QUEUED"}},
        {k: v for k, v in good.items() if k != "eventId"},
    ):
        assert contract.match("sendTaskMessages", broken) == [], broken
