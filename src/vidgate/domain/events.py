"""The messages pushed to subscribers, built from task state in one place.

The message types themselves and their JSON live in ``vidgate.domain.messages``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vidgate.domain import messages
from vidgate.domain.messages import EventType, Problem, Result, TaskState
from vidgate.domain.models import Task
from vidgate.domain.status import TaskStatus

__all__ = [
    "EventType",
    "TaskEvent",
    "change",
    "event_type",
    "observable",
    "payload",
    "replay_is_exact",
    "state",
]


_TYPE_FOR = {
    TaskStatus.QUEUED: EventType.PROGRESS,
    TaskStatus.PROCESSING: EventType.PROGRESS,
    TaskStatus.COMPLETED: EventType.COMPLETED,
    TaskStatus.FAILED: EventType.FAILED,
    TaskStatus.CANCELLED: EventType.CANCELLED,
    # An upstream that dropped the job unrun: a failure to every client that handles
    # taskFailed, with its own status word "expired".
    TaskStatus.EXPIRED: EventType.FAILED,
}


@dataclass(frozen=True, kw_only=True)
class TaskEvent:
    """One pushed message as stored in ``task_events``.

    ``id`` is global and monotonic; ``task_version`` is the task row version the message
    describes, so a subscriber can drop messages older than the snapshot it was sent.
    """

    id: int
    video_id: str
    type: EventType
    payload: dict[str, Any]
    timestamp_ms: int
    task_version: int

    def frame(self) -> messages.Frame:
        return messages.task_frame(
            str(self.type), event_id=self.id, timestamp=self.timestamp_ms, payload=self.payload
        )

    def message(self) -> dict[str, Any]:
        """The WebSocket frame: ``{type, timestamp, eventId, payload}``."""
        rendered: dict[str, Any] = messages.render(self.frame())
        return rendered


def event_type(task: Task) -> EventType:
    return _TYPE_FOR[task.status]


def state(task: Task) -> TaskState:
    """A task's current state as pushed (seed shapes, exactly)."""
    result = Result(video_url=task.video_url) if task.status is TaskStatus.COMPLETED else None
    problem = None
    if task.error is not None and task.status in (TaskStatus.FAILED, TaskStatus.EXPIRED):
        problem = Problem(code=task.error.code, message=task.error.message)
    return TaskState(
        video_id=task.video_id,
        external_video_id=task.external_id,
        status=task.status.pushed,
        progress=task.progress,
        message=task.message,
        result=result,
        error=problem,
    )


def payload(task: Task) -> dict[str, Any]:
    """The pushed payload of a task's current state, as JSON (stored in ``task_events``)."""
    rendered: dict[str, Any] = messages.render(state(task))
    return rendered


def replay_is_exact(after_id: int, oldest_stored: int | None) -> bool:
    """Whether every event after ``after_id`` is still stored, given the smallest id
    stored (``TaskStore.oldest_event_id``): retention deletes a prefix of ids and keeps
    the newest event, so an empty table means no event was ever written."""
    return oldest_stored is None or after_id + 1 >= oldest_stored


def observable(task: Task) -> tuple[object, ...]:
    """What a subscriber can see change; a message is sent only when this differs.

    A new attempt shows as a new (or cleared) ``externalVideoId``.
    """
    return (
        task.status,
        task.progress,
        task.external_id,
        task.video_url,
        task.error,
    )


def change(before: Task, after: Task) -> tuple[EventType, dict[str, Any]] | None:
    """The message to push for ``before -> after``, or None when nothing visible changed."""
    if observable(before) == observable(after):
        return None
    return event_type(after), payload(after)
