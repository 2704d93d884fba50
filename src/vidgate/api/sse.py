"""Server-sent events (docs/API.md "Server-sent events"): one task's, or all of a user's.

Each message is ``id:`` (the ``task_events`` id), ``event:`` (its type) and ``data:`` (the
payload the WebSocket sends, as JSON). ``Last-Event-ID`` (or ``?lastEventId=`` for clients
that cannot set headers) resumes after that id; see ``vidgate.api.feeds`` for how each
stream reads ``task_events`` and when a resume falls back to the tasks' current state.
Streams wait on the process's ``Notifier`` and read again every ``event_poll_seconds``
besides, and send a ``: ping`` comment every ``sse_ping_seconds``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Header, Query, Request, Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from vidgate.api import feeds, openapi
from vidgate.api.deps import current_principal
from vidgate.api.feeds import Item, Snapshot, TaskFeed, UserFeed
from vidgate.api.notify import Notifier, Waiter
from vidgate.api.runtime import Runtime
from vidgate.api.schemas import ErrorEnvelope, EventId
from vidgate.domain import events
from vidgate.domain.errors import InvalidHeader
from vidgate.domain.messages import SUBSCRIBED

logger = logging.getLogger(__name__)
router = APIRouter(tags=["events"])

RETRY_MS = 3000  # the reconnection delay suggested to clients (``retry:``)
HELD_SECONDS = 0.05  # how soon a feed held by a missing id reads again
MAX_EVENT_ID = 2**63 - 1  # task_events ids are 64-bit
# On shutdown a stream ends by itself within SHUTDOWN_CHECK_SECONDS, well inside the grace
# period, so that its response completes (else the server logs an unfinished response).
SHUTDOWN_CHECK_SECONDS = 0.5
SHUTDOWN_GRACE_SECONDS = 2.0

_STREAM = {
    "description": "`text/event-stream`: `id:` is the event id, `event:` its type "
    "(`subscribed`, `taskProgress`, `taskCompleted`, `taskFailed`, `taskCancelled`), "
    "`data:` the WebSocket payload as JSON; `: ping` comments keep it alive.",
    "content": {"text/event-stream": {"schema": {"type": "string"}}},
}
_BAD_ID = {"model": ErrorEnvelope, "description": "INVALID_LAST_EVENT_ID"}
_TOKEN = Query(
    max_length=4096,
    description="The API key or JWT, for clients that cannot send an Authorization header "
    "(a browser's EventSource), as `/ws` takes it.",
)
_LAST_ID_HEADER = Header(
    alias="Last-Event-ID",
    description="Resume after this event id: every later event once, in order, then live.",
)
_LAST_ID_QUERY = Query(
    alias="lastEventId",
    max_length=32,
    description="Last-Event-ID for clients that cannot set headers; the header wins.",
)


async def _caller(request: Request, runtime: Runtime, token: str | None) -> str:
    """The user: the Authorization header, or the ``token`` query parameter."""
    if token is None or runtime.settings.auth_mode == "none":
        return (await current_principal(request, None)).user_id
    principal = await runtime.authenticator.authenticate(token)
    limits = runtime.settings.limits_for(principal.user_id)
    await runtime.limiter.check(principal.user_id, limits.requests_per_minute)
    return principal.user_id


def _after(header: str | None, query: str | None) -> int | None:
    """The id to resume after; the header wins (a browser's reconnect sends a newer one
    than the URL it was first opened with)."""
    raw = header if header is not None else query
    if raw is None:
        return None
    text = raw.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or int(text) > MAX_EVENT_ID:
        raise InvalidHeader(
            "Last-Event-ID must be an event id: a non-negative integer.",
            code="INVALID_LAST_EVENT_ID",
            details={"field": "Last-Event-ID" if header is not None else "lastEventId"},
        )
    return int(text)


def _render(item: Item) -> ServerSentEvent:
    if isinstance(item, Snapshot):
        note = None
        if item.reason is not None:
            note = f"{item.reason}: cannot replay after the id given; the current state follows"
        return ServerSentEvent(
            data=_json(events.payload(item.task)),
            event=SUBSCRIBED,
            id=None if item.event_id is None else str(item.event_id),
            comment=note,
        )
    return ServerSentEvent(data=_json(item.payload), event=str(item.type), id=str(item.id))


def _json(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"))


Stream = Callable[[anyio.Event], AsyncIterator[ServerSentEvent]]


def _respond(runtime: Runtime, stream: Stream) -> EventSourceResponse:
    """``stream`` is given the event the response sets when the server shuts down."""
    shutdown = anyio.Event()
    return EventSourceResponse(
        stream(shutdown),
        headers={"Cache-Control": "no-cache"},  # X-Accel-Buffering: no is always set
        ping=runtime.settings.sse_ping_seconds,
        ping_message_factory=lambda: ServerSentEvent(comment="ping"),
        shutdown_event=shutdown,
        shutdown_grace_period=SHUTDOWN_GRACE_SECONDS,
    )


async def _pause(waiter: Waiter, shutdown: anyio.Event, at_most: float | None = None) -> bool:
    """Until a wake-up or the poll interval (or ``at_most``); False if the server is
    shutting down meanwhile."""
    clock = anyio.current_time
    until = clock() + (at_most if at_most is not None else waiter.poll_seconds)
    while not shutdown.is_set():
        left = until - clock()
        if left <= 0 or await waiter.wait(min(left, SHUTDOWN_CHECK_SECONDS)):
            return True
    return False


def _notifier(runtime: Runtime) -> Notifier:
    assert runtime.notifier is not None, "SSE routes are only mounted where the api runs"
    return runtime.notifier


@router.get(
    "/api/video/tasks/{video_id}/events",
    response_class=EventSourceResponse,
    openapi_extra={openapi.QUERY_CREDENTIAL: "token"},  # or the bearer token
    responses={
        200: _STREAM,
        204: {"description": "A resume of a finished task with nothing left to send: stop."},
        400: _BAD_ID,
        404: {"model": ErrorEnvelope, "description": "TASK_NOT_FOUND"},
    },
)
async def task_events(
    video_id: str,
    request: Request,
    last_event_id: Annotated[EventId | None, _LAST_ID_HEADER] = None,
    last_event_id_query: Annotated[EventId | None, _LAST_ID_QUERY] = None,
    token: Annotated[str | None, _TOKEN] = None,
) -> Response:
    """One task's events; ends after its terminal event. A fresh stream (no
    Last-Event-ID) starts with `subscribed`: the task's current state, with the id of the
    newest event it reflects."""
    runtime: Runtime = request.app.state.runtime
    user = await _caller(request, runtime, token)
    after = _after(last_event_id, last_event_id_query)
    task = await runtime.service.get(user, video_id)
    opening = await feeds.open_task(runtime.store, task, after)
    if opening is None:
        return Response(status_code=204)
    notifier = _notifier(runtime)
    return _respond(runtime, lambda down: _follow_task(notifier, opening.first, opening.feed, down))


async def _follow_task(
    notifier: Notifier, first: list[Item], feed: TaskFeed, shutdown: anyio.Event
) -> AsyncIterator[ServerSentEvent]:
    yield ServerSentEvent(retry=RETRY_MS)
    for item in first:
        yield _render(item)
        if feeds.ends(item):
            return
    with notifier.watch(feed.video_id) as waiter:
        failing = False
        while True:
            try:
                found = await feed.next()
            except Exception as exc:  # the database is down: keep the stream, read again
                failing = _failed(failing, exc)
                found = []
            else:
                failing = False
            for event in found:
                yield _render(event)
                if feeds.ends(event):
                    return
            if not await _pause(waiter, shutdown):
                return


@router.get(
    "/api/video/events",
    response_class=EventSourceResponse,
    openapi_extra={openapi.QUERY_CREDENTIAL: "token"},  # or the bearer token
    responses={200: _STREAM, 400: _BAD_ID},
)
async def user_events(
    request: Request,
    last_event_id: Annotated[EventId | None, _LAST_ID_HEADER] = None,
    last_event_id_query: Annotated[EventId | None, _LAST_ID_QUERY] = None,
    token: Annotated[str | None, _TOKEN] = None,
) -> Response:
    """The events of all the caller's tasks, in id order; never ends. A fresh stream
    sends what happens from now on (its first frame sets the client's last event id
    without an event, so that a reconnect resumes from there)."""
    runtime: Runtime = request.app.state.runtime
    user = await _caller(request, runtime, token)
    after = _after(last_event_id, last_event_id_query)
    first, feed = await feeds.open_user(runtime.store, user, after)
    start = str(feed.cursor) if after is None else None
    notifier = _notifier(runtime)
    return _respond(runtime, lambda down: _follow_user(notifier, first, feed, start, down))


async def _follow_user(
    notifier: Notifier,
    first: list[Item],
    feed: UserFeed,
    start: str | None,
    shutdown: anyio.Event,
) -> AsyncIterator[ServerSentEvent]:
    yield ServerSentEvent(id=start, retry=RETRY_MS)
    for item in first:
        yield _render(item)
    with notifier.watch(user_id=feed.user_id) as waiter:
        failing = False
        while True:
            try:
                found, more = await feed.next()
            except Exception as exc:
                failing = _failed(failing, exc)
                found, more = [], False
            else:
                failing = False
            for event in found:
                yield _render(event)
            if not more and not await _pause(waiter, shutdown, HELD_SECONDS if feed.held else None):
                return


def _failed(failing: bool, exc: Exception) -> bool:
    if not failing:
        logger.warning(
            "SSE stream cannot read task_events (%s: %s); retrying", type(exc).__name__, exc
        )
    return True
