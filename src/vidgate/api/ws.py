"""The WebSocket endpoint ``/ws`` (API.md "WebSocket").

Authentication comes first: a token in the ``token`` query parameter, in an
``Authorization: Bearer`` header, or else in a first message ``{"type": "auth",
"token": "..."}`` within ``AUTH_TIMEOUT_SECONDS`` (answered ``authenticated``). A missing
or bad token, or a user over their request rate, gets an ``error`` message with the code,
then a close with 1008 (policy violation) and the code as the reason. Subscriptions are
scoped to the authenticated user: another user's task answers TASK_NOT_FOUND.

A subscription may resume: ``afterEventId`` (in the subscribe message, or next to
``videoId`` on the URL) replays the task's stored events after that id before going live
(``vidgate.api.hub``). Every frame is built by ``vidgate.domain.messages``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from vidgate.api.hub import Hub, Subscriber
from vidgate.api.runtime import Runtime
from vidgate.auth.base import Principal
from vidgate.auth.factory import bearer_token
from vidgate.domain import messages
from vidgate.domain.errors import (
    AuthUnavailable,
    TooManyRequests,
    Unauthenticated,
    VidgateError,
)
from vidgate.service import TaskService
from vidgate.store.base import StoreUnavailable

logger = logging.getLogger(__name__)
router = APIRouter()

AUTH_TIMEOUT_SECONDS = 10.0
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013
# Event ids are 64-bit in the database; a larger afterEventId names no event.
MAX_EVENT_ID = 2**63 - 1
BAD_AFTER_EVENT_ID = "INVALID_AFTER_EVENT_ID"


async def _send(socket: WebSocket, message: dict[str, Any]) -> None:
    # ensure_ascii escapes what a client sent back to it, lone surrogates included,
    # which could not be encoded as UTF-8.
    await socket.send_text(json.dumps(message))


def _error(code: str, message: str, **details: Any) -> dict[str, Any]:
    rendered: dict[str, Any] = messages.render(messages.error(code, message, **details))
    return rendered


def after_event_id(value: object) -> int | None:
    """``afterEventId`` as sent (a JSON number, or the query string's digits), None when
    absent; ``ValueError`` when it is not a non-negative integer."""
    if value is None:
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_EVENT_ID:
        return value
    raise ValueError("afterEventId is not a non-negative integer")


async def _subscribe(
    hub: Hub,
    service: TaskService,
    sub: Subscriber,
    user: str,
    video_id: object,
    after: object = None,
) -> None:
    if not isinstance(video_id, str) or not video_id:
        sub.send(_error("INVALID_MESSAGE", "subscribe needs a videoId string."))
        return
    try:
        after_id = after_event_id(after)
    except ValueError:
        sub.send(
            _error(
                BAD_AFTER_EVENT_ID,
                "afterEventId must be a non-negative integer: the eventId of a message received.",
                video_id=video_id,
            )
        )
        return
    since = hub.begin(sub, video_id)
    try:
        task = await service.get(user, video_id)
        await hub.start(sub, task, since=since, after_id=after_id)
    except VidgateError as exc:
        hub.unsubscribe(sub, video_id)
        sub.send(_error(exc.code, exc.message, video_id=video_id))
        return
    except StoreUnavailable as exc:
        logger.error("subscription to %s failed: database unavailable: %s", video_id, exc)
        hub.unsubscribe(sub, video_id)
        sub.send(
            _error(
                "STORE_UNAVAILABLE",
                "The database is unavailable; subscribe again shortly.",
                video_id=video_id,
            )
        )
        return
    except Exception:
        logger.exception("subscription to %s failed", video_id)
        hub.unsubscribe(sub, video_id)
        sub.send(_error("INTERNAL_ERROR", "Could not subscribe; try again.", video_id=video_id))
        return


async def _sender(socket: WebSocket, sub: Subscriber) -> None:
    try:
        while True:
            message = await sub.outbox.get()
            if message is None:  # outbox overflowed: the client reconnects and catches up
                await socket.close(code=1013, reason="too slow; reconnect to catch up")
                return
            await _send(socket, message)
    except (WebSocketDisconnect, RuntimeError, OSError):
        return  # the connection is gone; the receiving side ends the handler
    except Exception:
        # A socket that can no longer send must not stay open and silent.
        logger.exception("WebSocket sender failed; closing the connection")
        with contextlib.suppress(Exception):
            await socket.close(code=1011, reason="internal error")


async def _receive(socket: WebSocket) -> str:
    frame = await socket.receive()
    if frame["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(frame.get("code", 1000))
    if frame.get("text") is not None:
        return str(frame["text"])
    return bytes(frame.get("bytes") or b"").decode("utf-8", errors="replace")


async def _auth_message(socket: WebSocket, max_bytes: int) -> str:
    """The token of the first message, which must be ``{"type": "auth", "token": ...}``."""
    try:
        raw = await asyncio.wait_for(_receive(socket), AUTH_TIMEOUT_SECONDS)
    except TimeoutError:
        raise Unauthenticated(
            f"No token: send it in the token query parameter, an Authorization header, or a "
            f'first message {{"type": "auth", "token": ...}} within {AUTH_TIMEOUT_SECONDS:.0f} s.'
        ) from None
    message: object = None
    if len(raw.encode()) <= max_bytes:
        with contextlib.suppress(ValueError, RecursionError):
            message = json.loads(raw)
    token = message.get("token") if isinstance(message, dict) else None
    if not isinstance(message, dict) or message.get("type") != "auth" or not token:
        raise Unauthenticated(
            'Authenticate first: the first message must be {"type": "auth", "token": ...}.'
        )
    if not isinstance(token, str) or not token.isascii():
        raise Unauthenticated("The auth message's token must be a string.")
    return token


async def _authenticate(socket: WebSocket, runtime: Runtime, max_bytes: int) -> Principal | None:
    """The caller, or None once it has been told why not and the socket is closed."""
    settings = runtime.settings
    by_message = False
    try:
        token = None
        if settings.auth_mode != "none":  # mode none ignores whatever is sent
            token = socket.query_params.get("token") or bearer_token(
                socket.headers.get("authorization")
            )
            if token is None:
                token = await _auth_message(socket, max_bytes)
                by_message = True
        principal = await runtime.authenticator.authenticate(token)
        limits = settings.limits_for(principal.user_id)
        await runtime.limiter.check(principal.user_id, limits.requests_per_minute)
    except (Unauthenticated, TooManyRequests) as exc:
        extra = {"retry_after_seconds": exc.retry_after} if isinstance(exc, TooManyRequests) else {}
        await _send(socket, _error(exc.code, exc.message, **extra))
        await socket.close(code=POLICY_VIOLATION, reason=exc.code)
        return None
    except AuthUnavailable as exc:
        await _send(socket, _error(exc.code, exc.message))
        await socket.close(code=TRY_AGAIN_LATER, reason=exc.code)
        return None
    except StoreUnavailable as exc:
        logger.error("WebSocket authentication failed: database unavailable: %s", exc)
        await _send(
            socket, _error("STORE_UNAVAILABLE", "The database is unavailable; try again shortly.")
        )
        await socket.close(code=TRY_AGAIN_LATER, reason="STORE_UNAVAILABLE")
        return None
    if by_message:
        await _send(socket, _authenticated(principal))
    return principal


def _authenticated(principal: Principal) -> dict[str, Any]:
    rendered: dict[str, Any] = messages.render(messages.authenticated(principal.user_id))
    return rendered


@router.websocket("/ws")
async def websocket_endpoint(socket: WebSocket) -> None:
    runtime: Runtime = socket.app.state.runtime
    hub, service = runtime.hub, runtime.service
    assert hub is not None, "the WebSocket route is only mounted where a hub runs"
    max_bytes = runtime.settings.ws_max_message_bytes
    await socket.accept()
    try:
        principal = await _authenticate(socket, runtime, max_bytes)
    except WebSocketDisconnect:
        return
    if principal is None:
        return
    user = principal.user_id
    sub = Subscriber()
    sender = asyncio.create_task(_sender(socket, sub))
    # Subscriptions are answered concurrently: a client following hundreds of tasks on one
    # socket must not wait for each snapshot read in turn.
    lookups: set[asyncio.Task[None]] = set()

    def subscribe(video_id: object, after: object = None) -> None:
        lookup = asyncio.create_task(_subscribe(hub, service, sub, user, video_id, after))
        lookups.add(lookup)
        lookup.add_done_callback(lookups.discard)

    try:
        initial = socket.query_params.get("videoId")
        if initial:
            subscribe(initial, socket.query_params.get("afterEventId"))
        while True:
            raw = await _receive(socket)
            if len(raw.encode()) > max_bytes:
                sub.send(_error("MESSAGE_TOO_LARGE", f"Messages are limited to {max_bytes} bytes."))
                continue
            try:
                message = json.loads(raw)
            except (ValueError, RecursionError):  # deep nesting is refused too
                sub.send(_error("INVALID_MESSAGE", "Messages must be JSON objects."))
                continue
            if not isinstance(message, dict):
                sub.send(_error("INVALID_MESSAGE", "Messages must be JSON objects."))
                continue
            kind = message.get("type")
            if kind == "subscribe":
                subscribe(message.get("videoId"), message.get("afterEventId"))
            elif kind == "unsubscribe":
                video_id = message.get("videoId")
                if isinstance(video_id, str):
                    hub.unsubscribe(sub, video_id)
                    sub.send(messages.render(messages.unsubscribed(video_id)))
                else:
                    sub.send(_error("INVALID_MESSAGE", "unsubscribe needs a videoId string."))
            elif kind == "ping":
                sub.send(messages.render(messages.pong()))
            elif kind == "auth":
                # Already authenticated (mode none needs nothing): say as whom.
                sub.send(_authenticated(principal))
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
