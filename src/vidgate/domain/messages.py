"""Every message a client can see, as typed values, and the one place they become JSON.

The WebSocket (``/ws``), the SSE streams and the webhooks all carry these. A frame is
``{"type", "timestamp", "payload"}`` (the seed's shape), and a frame about a task event
also names that event: ``eventId`` is its ``task_events`` id, which a client hands back
as ``afterEventId`` to resume. ``render`` turns any of them into camelCase JSON; no other
module writes these keys. The JSON Schemas of the same messages are in
``vidgate.api.asyncapi``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any

# A field with this metadata is left out of the JSON when it is None (the seed's payloads
# have ``result`` only when completed and ``error`` only when failed).
OMIT_NONE: Mapping[str, bool] = {"omit_none": True}


class EventType(StrEnum):
    """The types of the messages stored in ``task_events``."""

    PROGRESS = "taskProgress"
    COMPLETED = "taskCompleted"
    FAILED = "taskFailed"
    CANCELLED = "taskCancelled"


SUBSCRIBED = "subscribed"
# Why a resume fell back to a snapshot (``subscribed.reason``).
EVENTS_EXPIRED = "EVENTS_EXPIRED"


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, kw_only=True)
class Result:
    video_url: str | None


@dataclass(frozen=True, kw_only=True)
class Problem:
    """Why a task failed (``payload.error``)."""

    code: str
    message: str


@dataclass(frozen=True, kw_only=True)
class TaskState:
    """The payload of ``subscribed`` and of every task event: a task as clients see it."""

    video_id: str
    external_video_id: str | None
    status: str  # the pushed status word (``TaskStatus.pushed``)
    progress: int
    message: str
    result: Result | None = field(default=None, metadata=OMIT_NONE)
    error: Problem | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True, kw_only=True)
class ErrorInfo:
    """The payload of an ``error`` frame: an error code and, where they apply, details."""

    code: str
    message: str
    video_id: str | None = field(default=None, metadata=OMIT_NONE)
    retry_after_seconds: float | None = field(default=None, metadata=OMIT_NONE)
    received: str | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True, kw_only=True)
class Empty:
    pass


@dataclass(frozen=True, kw_only=True)
class UserRef:
    user_id: str


@dataclass(frozen=True, kw_only=True)
class VideoRef:
    video_id: str


Payload = TaskState | ErrorInfo | Empty | UserRef | VideoRef | Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class Frame:
    """One message: ``event_id`` is rendered only for the frames that carry one.

    ``payload`` is a typed value, or a mapping already in JSON form (a stored event's
    payload, sent exactly as stored).
    """

    type: str
    timestamp: int
    event_id: int | None = None
    payload: Payload
    # ``subscribed`` frames answering a resume (``afterEventId``) only:
    resumed: bool | None = field(default=None, metadata=OMIT_NONE)
    reason: str | None = field(default=None, metadata=OMIT_NONE)


def carries_event_id(kind: str) -> bool:
    """Frames about a task carry ``eventId`` (null in a ``subscribed`` when unknown)."""
    return kind == SUBSCRIBED or kind in _EVENT_TYPES


_EVENT_TYPES = frozenset(str(kind) for kind in EventType)


# -- building ----------------------------------------------------------------------------------


def task_frame(
    kind: str, *, event_id: int | None, timestamp: int, payload: TaskState | Mapping[str, Any]
) -> Frame:
    return Frame(type=kind, timestamp=timestamp, event_id=event_id, payload=payload)


def subscribed(
    state: TaskState | Mapping[str, Any],
    *,
    event_id: int | None,
    resumed: bool | None = None,
    reason: str | None = None,
) -> Frame:
    return Frame(
        type=SUBSCRIBED,
        timestamp=now_ms(),
        event_id=event_id,
        payload=state,
        resumed=resumed,
        reason=reason,
    )


def error(code: str, message: str, **details: Any) -> Frame:
    return Frame(
        type="error", timestamp=now_ms(), payload=ErrorInfo(code=code, message=message, **details)
    )


def pong() -> Frame:
    return Frame(type="pong", timestamp=now_ms(), payload=Empty())


def authenticated(user_id: str) -> Frame:
    return Frame(type="authenticated", timestamp=now_ms(), payload=UserRef(user_id=user_id))


def unsubscribed(video_id: str) -> Frame:
    return Frame(type="unsubscribed", timestamp=now_ms(), payload=VideoRef(video_id=video_id))


# -- rendering: the one place messages become JSON -------------------------------------------


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def render(value: Any) -> Any:
    """``value`` as JSON-ready data: dataclasses as camelCase objects, in field order."""
    if isinstance(value, Frame):
        return _render_frame(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        body: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if item is None and f.metadata.get("omit_none"):
                continue
            body[camel(f.name)] = render(item)
        return body
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): render(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [render(v) for v in value]
    return value


def _render_frame(frame: Frame) -> dict[str, Any]:
    body: dict[str, Any] = {"type": frame.type, "timestamp": frame.timestamp}
    if carries_event_id(frame.type):
        body["eventId"] = frame.event_id
    body["payload"] = render(frame.payload)
    if frame.resumed is not None:
        body["resumed"] = frame.resumed
    if frame.reason is not None:
        body["reason"] = frame.reason
    return body


# -- reading (clients) -----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Received:
    """A frame as a client reads it: only what ``render`` writes, checked loosely."""

    type: str
    event_id: int | None
    payload: Mapping[str, Any]


def read(message: object) -> Received | None:
    """A received frame, or None when it is not a ``{type, payload: {...}}`` object."""
    if not isinstance(message, Mapping):
        return None
    body = message.get("payload")
    if not isinstance(body, Mapping):
        return None
    event_id = message.get("eventId")
    if not isinstance(event_id, int) or isinstance(event_id, bool):
        event_id = None
    return Received(type=str(message.get("type")), event_id=event_id, payload=body)
