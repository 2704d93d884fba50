"""The messages pushed to subscribers, built from task state in one place."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from vidgate.domain.models import Task
from vidgate.domain.status import TaskStatus


class EventType(StrEnum):
    PROGRESS = "taskProgress"
    COMPLETED = "taskCompleted"
    FAILED = "taskFailed"
    CANCELLED = "taskCancelled"


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

    def message(self) -> dict[str, Any]:
        return {"type": str(self.type), "timestamp": self.timestamp_ms, "payload": self.payload}


def event_type(task: Task) -> EventType:
    return _TYPE_FOR[task.status]


def payload(task: Task) -> dict[str, Any]:
    """The pushed payload of a task's current state (seed shapes, exactly)."""
    body: dict[str, Any] = {
        "videoId": task.video_id,
        "externalVideoId": task.external_id,
        "status": task.status.pushed,
        "progress": task.progress,
        "message": task.message,
    }
    if task.status is TaskStatus.COMPLETED:
        body["result"] = {"videoUrl": task.video_url}
    if task.error is not None and task.status in (TaskStatus.FAILED, TaskStatus.EXPIRED):
        body["error"] = {"code": task.error.code, "message": task.error.message}
    return body


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
