"""The WebSocket endpoint ``/ws`` (API.md "WebSocket")."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from vidgate.api.deps import current_user
from vidgate.api.hub import Hub, Subscriber, now_ms
from vidgate.api.runtime import Runtime
from vidgate.domain.errors import VidgateError
from vidgate.service import TaskService

logger = logging.getLogger(__name__)
router = APIRouter()

MAX_MESSAGE_BYTES = 64 * 1024


def _error(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "error",
        "timestamp": now_ms(),
        "payload": {"code": code, "message": message, **extra},
    }


async def _subscribe(
    hub: Hub, service: TaskService, sub: Subscriber, user: str, video_id: object
) -> None:
    if not isinstance(video_id, str) or not video_id:
        sub.send(_error("INVALID_MESSAGE", "subscribe needs a videoId string."))
        return
    hub.begin(sub, video_id)
    try:
        task = await service.get(user, video_id)
    except VidgateError as exc:
        hub.unsubscribe(sub, video_id)
        sub.send(_error(exc.code, exc.message, videoId=video_id))
        return
    except Exception:
        logger.exception("subscription to %s failed", video_id)
        hub.unsubscribe(sub, video_id)
        sub.send(_error("INTERNAL_ERROR", "Could not subscribe; try again.", videoId=video_id))
        return
    hub.snapshot(sub, task)


async def _sender(socket: WebSocket, sub: Subscriber) -> None:
    while True:
        message = await sub.outbox.get()
        if message is None:  # outbox overflowed: the client reconnects and catches up
            await socket.close(code=1013, reason="too slow; reconnect to catch up")
            return
        await socket.send_json(message)


async def _receive(socket: WebSocket) -> str:
    frame = await socket.receive()
    if frame["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(frame.get("code", 1000))
    if frame.get("text") is not None:
        return str(frame["text"])
    return bytes(frame.get("bytes") or b"").decode("utf-8", errors="replace")


@router.websocket("/ws")
async def websocket_endpoint(socket: WebSocket) -> None:
    runtime: Runtime = socket.app.state.runtime
    user = await current_user()
    hub, service = runtime.hub, runtime.service
    assert hub is not None, "the WebSocket route is only mounted where a hub runs"
    await socket.accept()
    sub = Subscriber()
    sender = asyncio.create_task(_sender(socket, sub))
    # Subscriptions are answered concurrently: a client following hundreds of tasks on one
    # socket must not wait for each snapshot read in turn.
    lookups: set[asyncio.Task[None]] = set()

    def subscribe(video_id: object) -> None:
        lookup = asyncio.create_task(_subscribe(hub, service, sub, user, video_id))
        lookups.add(lookup)
        lookup.add_done_callback(lookups.discard)

    try:
        initial = socket.query_params.get("videoId")
        if initial:
            subscribe(initial)
        while True:
            raw = await _receive(socket)
            if len(raw.encode()) > MAX_MESSAGE_BYTES:
                sub.send(
                    _error(
                        "MESSAGE_TOO_LARGE", f"Messages are limited to {MAX_MESSAGE_BYTES} bytes."
                    )
                )
                continue
            try:
                message = json.loads(raw)
            except ValueError:
                sub.send(_error("INVALID_MESSAGE", "Messages must be JSON objects."))
                continue
            if not isinstance(message, dict):
                sub.send(_error("INVALID_MESSAGE", "Messages must be JSON objects."))
                continue
            kind = message.get("type")
            if kind == "subscribe":
                subscribe(message.get("videoId"))
            elif kind == "unsubscribe":
                video_id = message.get("videoId")
                if isinstance(video_id, str):
                    hub.unsubscribe(sub, video_id)
                    sub.send(
                        {
                            "type": "unsubscribed",
                            "timestamp": now_ms(),
                            "payload": {"videoId": video_id},
                        }
                    )
                else:
                    sub.send(_error("INVALID_MESSAGE", "unsubscribe needs a videoId string."))
            elif kind == "ping":
                sub.send({"type": "pong", "timestamp": now_ms(), "payload": {}})
            else:
                sub.send(
                    _error(
                        "UNKNOWN_MESSAGE_TYPE",
                        "type must be one of subscribe, unsubscribe, ping.",
                        received=str(kind)[:64],
                    )
                )
    except WebSocketDisconnect:
        pass
    except RuntimeError:
        # The sender closed the socket (overflow) while we were reading.
        if socket.application_state is not WebSocketState.DISCONNECTED:
            raise
    finally:
        for lookup in lookups:
            lookup.cancel()
        await asyncio.gather(*lookups, return_exceptions=True)
        hub.drop(sub)
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
