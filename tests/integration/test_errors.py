"""Bad input of every kind gets the contract's error envelope: never a 500, never a trace."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.support import VidgateServer

MISSING = "video_00000000-0000-4000-8000-000000000000"


def assert_envelope(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"success", "error"}
    assert body["success"] is False
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert "Traceback" not in response.text
    error: dict[str, Any] = body["error"]
    return error


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"prompt": "x" * 32_001}, "prompt"),
        ({"prompt": "a fox\u0000 in snow"}, "prompt"),
        ({}, "prompt"),
        ({"prompt": 42}, "prompt"),
        ({"prompt": "fox", "seconds": "ten"}, "seconds"),
        ({"prompt": "fox", "seconds": True}, "seconds"),
        ({"prompt": "fox", "size": "640 by 480"}, "size"),
        ({"prompt": "fox", "inputReference": "file:///etc/passwd"}, "inputReference"),
        ([], "body"),
        ("just a string", "body"),
    ],
)
def test_invalid_create_bodies(shared_vidgate: VidgateServer, body: object, field: str) -> None:
    response = httpx.post(f"{shared_vidgate.url}/api/video/tasks", json=body)
    error = assert_envelope(response, 422, "VALIDATION_ERROR")
    assert error["details"]["fields"][0]["field"] == field
    assert field in error["message"]


@pytest.mark.parametrize(
    ("body", "field", "supported"),
    [
        ({"prompt": "fox", "seconds": "10"}, "seconds", [4.0, 8.0, 12.0]),
        ({"prompt": "fox", "size": "640x480"}, "size", ["16:9", "9:16"]),
    ],
)
def test_values_the_model_cannot_do(
    shared_vidgate: VidgateServer, body: object, field: str, supported: object
) -> None:
    """Well-formed, but not something sora-2 does: refused by its capability table."""
    response = httpx.post(f"{shared_vidgate.url}/api/video/tasks", json=body)
    error = assert_envelope(response, 422, "UNSUPPORTED_PARAMETER")
    assert error["details"]["field"] == field
    assert error["details"]["supported"] == supported
    assert field in error["message"]


def test_malformed_json(shared_vidgate: VidgateServer) -> None:
    response = httpx.post(
        f"{shared_vidgate.url}/api/video/tasks",
        content=b'{"prompt": "fox",',
        headers={"content-type": "application/json"},
    )
    assert_envelope(response, 400, "INVALID_JSON")


def test_unknown_model(shared_vidgate: VidgateServer) -> None:
    response = httpx.post(
        f"{shared_vidgate.url}/api/video/tasks", json={"prompt": "fox", "model": "veo-9"}
    )
    error = assert_envelope(response, 422, "UNKNOWN_MODEL")
    assert "sora_video2" in error["details"]["supported"]


def test_seconds_as_number_is_accepted(shared_vidgate: VidgateServer) -> None:
    response = httpx.post(
        f"{shared_vidgate.url}/api/video/tasks", json={"prompt": "fox", "seconds": 8}
    )
    assert response.status_code == 201
    assert response.json()["data"]["seconds"] == "8"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/api/video/tasks/{MISSING}"),
        ("GET", f"/api/video/tasks/{MISSING}/content"),
        ("GET", f"/api/video/tasks/{MISSING}/stream"),
        ("POST", f"/api/video/tasks/{MISSING}/cancel"),
        ("POST", f"/api/video/tasks/{MISSING}/retry"),
        ("GET", "/api/video/tasks/not-an-id"),
        ("GET", "/api/video/tasks/video_'; DROP TABLE tasks;--"),
    ],
)
def test_unknown_video_id(shared_vidgate: VidgateServer, method: str, path: str) -> None:
    response = httpx.request(method, f"{shared_vidgate.url}{path}")
    assert_envelope(response, 404, "TASK_NOT_FOUND")


@pytest.mark.parametrize(
    "params",
    [{"limit": "0"}, {"limit": "1000"}, {"limit": "ten"}, {"status": "DONE"}, {"cursor": "%%%"}],
)
def test_bad_list_parameters(shared_vidgate: VidgateServer, params: dict[str, str]) -> None:
    response = httpx.get(f"{shared_vidgate.url}/api/video/tasks", params=params)
    assert_envelope(response, 422, "VALIDATION_ERROR")


def test_unknown_route_and_method(shared_vidgate: VidgateServer) -> None:
    assert_envelope(httpx.get(f"{shared_vidgate.url}/api/nothing"), 404, "NOT_FOUND")
    assert_envelope(
        httpx.delete(f"{shared_vidgate.url}/api/video/tasks"), 405, "METHOD_NOT_ALLOWED"
    )


async def test_malformed_websocket_messages(shared_vidgate: VidgateServer) -> None:
    async with connect(shared_vidgate.ws_url) as ws:
        cases: list[tuple[str | bytes, str]] = [
            ("not json", "INVALID_MESSAGE"),
            ("[1, 2]", "INVALID_MESSAGE"),
            (json.dumps({"type": "dance"}), "UNKNOWN_MESSAGE_TYPE"),
            (json.dumps({"type": "subscribe"}), "INVALID_MESSAGE"),
            (json.dumps({"type": "subscribe", "videoId": 7}), "INVALID_MESSAGE"),
            (json.dumps({"type": "subscribe", "videoId": MISSING}), "TASK_NOT_FOUND"),
            (json.dumps({"type": "unsubscribe"}), "INVALID_MESSAGE"),
            (b"\xff\xfe binary", "INVALID_MESSAGE"),
        ]
        for raw, code in cases:
            await ws.send(raw)
            reply = json.loads(await ws.recv())
            assert reply["type"] == "error", raw
            assert reply["payload"]["code"] == code, raw
            assert reply["payload"]["message"]
            assert isinstance(reply["timestamp"], int)
        # Still usable afterwards.
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await ws.recv())["type"] == "pong"


async def test_unknown_video_id_at_connect(shared_vidgate: VidgateServer) -> None:
    async with connect(f"{shared_vidgate.ws_url}?videoId={MISSING}") as ws:
        reply = json.loads(await ws.recv())
    assert reply["type"] == "error"
    assert reply["payload"]["code"] == "TASK_NOT_FOUND"
    assert reply["payload"]["videoId"] == MISSING
