"""State transitions as pure functions: (task, input, now) -> new task.

The rules of ARCHITECTURE.md "Engine rules" 5 live here: terminal states are immutable
(only ``retry`` leaves FAILED or CANCELLED), progress never goes backwards within an
attempt, an upstream ``completed`` without a usable result is a failure, and an unknown
upstream word changes nothing. Persisting the result (compare-and-set) is the store's job.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

from vidgate.domain.models import Task, TaskError
from vidgate.domain.status import TaskStatus

MESSAGES = {
    TaskStatus.QUEUED: "Queued",
    TaskStatus.PROCESSING: "Generating video...",
    TaskStatus.COMPLETED: "Video ready",
    TaskStatus.CANCELLED: "Cancelled",
    TaskStatus.EXPIRED: "Expired upstream before it ran",
}


class IllegalTransition(Exception):
    """A change that the state machine forbids (e.g. leaving a terminal state)."""


@dataclass(frozen=True, kw_only=True)
class Observation:
    """What one look at the upstream job said, already sanitised by the adapter."""

    status: TaskStatus | None  # None: an upstream word we do not know
    raw_status: str | None = None
    progress: int | None = None
    video_url: str | None = None
    error: TaskError | None = None
    upstream_created_at: int | None = None
    message: str | None = None  # instead of the status's own (e.g. "progress estimated")


def clamp_progress(value: object) -> int | None:
    """An upstream progress value as an int 0..100, or None when it is not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if value != value:  # NaN
        return None
    # Clamp before int(): JSON's ``Infinity`` or ``1e999`` reads as inf, which int() refuses.
    return int(max(0, min(100, value)))


def _require_active(task: Task) -> None:
    if task.status.terminal:
        raise IllegalTransition(f"{task.video_id} is {task.status}; terminal states are final")


def observe(task: Task, seen: Observation, *, now: datetime) -> Task:
    """Apply one upstream observation to an active task."""
    _require_active(task)
    progress = task.progress
    if seen.progress is not None:
        # Never backwards; 100 is reserved for a completed task with a result.
        progress = max(progress, min(seen.progress, 99))

    match seen.status:
        case None | TaskStatus.QUEUED:
            status = task.status
        case TaskStatus.EXPIRED:
            error = seen.error or TaskError(
                code="UPSTREAM_EXPIRED", message="The upstream dropped the job before running it."
            )
            return dataclasses.replace(
                fail(task, code=error.code, message=error.message, now=now),
                status=TaskStatus.EXPIRED,
            )
        case TaskStatus.PROCESSING:
            status = TaskStatus.PROCESSING
        case TaskStatus.COMPLETED:
            if not seen.video_url:
                return fail(
                    task,
                    code="UPSTREAM_NO_RESULT",
                    message="The upstream reported the job completed but gave no video.",
                    now=now,
                )
            return dataclasses.replace(
                task,
                status=TaskStatus.COMPLETED,
                progress=100,
                message=MESSAGES[TaskStatus.COMPLETED],
                video_url=seen.video_url,
                completed_at=now,
                updated_at=now,
            )
        case TaskStatus.FAILED | TaskStatus.CANCELLED:
            error = seen.error or TaskError(
                code="UPSTREAM_FAILED", message="The upstream video job failed."
            )
            return fail(task, code=error.code, message=error.message, now=now, progress=progress)

    message = seen.message if seen.message and status is TaskStatus.PROCESSING else None
    return dataclasses.replace(
        task,
        status=status,
        progress=progress,
        message=message or MESSAGES[status],
        updated_at=now,
    )


def submitted(
    task: Task, *, provider: str, external_id: str, seen: Observation, now: datetime
) -> Task:
    """The upstream accepted the current attempt: record its id, then apply what it said."""
    _require_active(task)
    metadata = dict(task.metadata)
    metadata["externalTaskId"] = external_id
    metadata["provider"] = provider
    metadata["createdAt"] = seen.upstream_created_at
    bound = dataclasses.replace(
        task, provider=provider, external_id=external_id, metadata=metadata, updated_at=now
    )
    return observe(bound, seen, now=now)


def fail(
    task: Task, *, code: str, message: str, now: datetime, progress: int | None = None
) -> Task:
    _require_active(task)
    return dataclasses.replace(
        task,
        status=TaskStatus.FAILED,
        progress=task.progress if progress is None else progress,
        message=message,
        error=TaskError(code=code, message=message),
        completed_at=now,
        updated_at=now,
    )


def cancel(task: Task, *, now: datetime) -> Task:
    """Cancel an active task. Cancelling a cancelled task is a no-op (idempotent)."""
    if task.status is TaskStatus.CANCELLED:
        return task
    _require_active(task)
    return dataclasses.replace(
        task,
        status=TaskStatus.CANCELLED,
        message=MESSAGES[TaskStatus.CANCELLED],
        completed_at=now,
        updated_at=now,
        next_check_at=None,
    )


def requeue(task: Task, *, now: datetime, message: str) -> Task:
    """An active task whose attempt failed in a way worth another try: back to QUEUED.

    The next attempt starts from nothing (progress 0, no external id yet); the failed
    attempt stays in the task's history.
    """
    _require_active(task)
    metadata = {k: v for k, v in task.metadata.items() if k not in ("externalTaskId", "createdAt")}
    return dataclasses.replace(
        task,
        status=TaskStatus.QUEUED,
        progress=0,
        message=message,
        external_id=None,
        video_url=None,
        error=None,
        metadata=metadata,
        updated_at=now,
    )


def retry(task: Task, *, now: datetime, deadline_at: datetime) -> Task:
    """Queue a FAILED or CANCELLED task again; the next submission is a new attempt."""
    if task.status not in (TaskStatus.FAILED, TaskStatus.CANCELLED):
        raise IllegalTransition(f"{task.video_id} is {task.status}; only FAILED or CANCELLED")
    metadata = {k: v for k, v in task.metadata.items() if k not in ("externalTaskId", "createdAt")}
    return dataclasses.replace(
        task,
        status=TaskStatus.QUEUED,
        progress=0,
        message=MESSAGES[TaskStatus.QUEUED],
        external_id=None,
        video_url=None,
        error=None,
        metadata=metadata,
        completed_at=None,
        updated_at=now,
        deadline_at=deadline_at,
        next_check_at=now,
    )
