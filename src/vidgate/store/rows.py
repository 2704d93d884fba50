"""Rows <-> domain objects for SqlTaskStore: the values a task or an attempt is written
as, and the Task, Attempt and TaskEvent a row reads back as."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Row, bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.domain.events import EventType, TaskEvent
from vidgate.domain.models import Attempt, AttemptState, Task, TaskError
from vidgate.domain.request import VideoParams
from vidgate.domain.status import TaskStatus
from vidgate.store.schema import attempts, task_events, tasks

# The attempts of a set of tasks: one prepared statement for any number of ids.
_ATTEMPTS_OF = select(attempts).where(attempts.c.video_id.in_(bindparam("b_ids", expanding=True)))

# One task and its attempts in one statement (one row per attempt, or one with NULL
# attempt columns): atomic by itself, so it needs no transaction around it.
_A = "attempt_"
_ATTEMPT_COLUMNS = [column.name for column in attempts.c]
TASK_WITH_ATTEMPTS = (
    select(tasks, *(column.label(_A + column.name) for column in attempts.c))
    .select_from(tasks.outerjoin(attempts, attempts.c.video_id == tasks.c.video_id))
    .where(tasks.c.video_id == bindparam("b_video_id"))
)


async def read_event_ids(conn: AsyncConnection, after_id: int, limit: int) -> list[int]:
    """The ids of the next ``limit`` events after ``after_id``, in order: ids only, for
    readers that look for events they have not seen (SSE, the webhook dispatcher)."""
    query = (
        select(task_events.c.id)
        .where(task_events.c.id > after_id)
        .order_by(task_events.c.id)
        .limit(limit)
    )
    return [int(value) for value in (await conn.execute(query)).scalars()]


def task_from_joined(rows: Sequence[Row[Any]]) -> Task | None:
    """The task of ``TASK_WITH_ATTEMPTS``'s rows (None when there are none)."""
    if not rows:
        return None
    found = [
        _attempt({name: row._mapping[_A + name] for name in _ATTEMPT_COLUMNS})
        for row in rows
        if row._mapping[_A + "number"] is not None
    ]
    return _task(rows[0], found)


# -- mapping -------------------------------------------------------------------------------


def _task_values(task: Task) -> dict[str, Any]:
    return {
        "video_id": task.video_id,
        "user_id": task.user_id,
        "status": str(task.status),
        "progress": task.progress,
        "message": task.message,
        "prompt": task.prompt,
        "model": task.model,
        "seconds": task.seconds,
        "size": task.size,
        "input_reference": task.input_reference,
        "params": task.params.to_json() or None,
        "provider": task.provider,
        "external_id": task.external_id,
        "video_url": task.video_url,
        "error_code": task.error.code if task.error else None,
        "error_message": task.error.message if task.error else None,
        "metadata": task.metadata,
        "created_at": task.created_at,
        "updated_at": task.updated_at,
        "completed_at": task.completed_at,
        "deadline_at": task.deadline_at,
        "next_check_at": task.next_check_at,
        "lease_owner": task.lease_owner,
        "lease_until": task.lease_until,
        "attempt": task.attempt,
        "version": task.version,
    }


def _attempt_values(attempt: Attempt) -> dict[str, Any]:
    return {
        "video_id": attempt.video_id,
        "number": attempt.number,
        "provider": attempt.provider,
        "external_id": attempt.external_id,
        "state": str(attempt.state),
        "idempotency_key": attempt.idempotency_key,
        "upstream_status": attempt.upstream_status,
        "created_at": attempt.created_at,
        "submitted_at": attempt.submitted_at,
        "finished_at": attempt.finished_at,
        "error_code": attempt.error.code if attempt.error else None,
        "error_message": attempt.error.message if attempt.error else None,
        "binding": attempt.binding,
        "result_expires_at": attempt.result_expires_at,
        "usage": attempt.usage,
    }


def _error(code: str | None, message: str | None) -> TaskError | None:
    return TaskError(code=code, message=message or "") if code else None


def _task(row: Row[Any], attempt_rows: Iterable[Attempt]) -> Task:
    m = row._mapping
    return Task(
        video_id=m["video_id"],
        user_id=m["user_id"],
        status=TaskStatus(m["status"]),
        progress=m["progress"],
        message=m["message"],
        prompt=m["prompt"],
        model=m["model"],
        seconds=m["seconds"],
        size=m["size"],
        input_reference=m["input_reference"],
        params=VideoParams.from_json(m["params"]),
        provider=m["provider"],
        external_id=m["external_id"],
        video_url=m["video_url"],
        error=_error(m["error_code"], m["error_message"]),
        metadata=dict(m["metadata"] or {}),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        completed_at=m["completed_at"],
        deadline_at=m["deadline_at"],
        next_check_at=m["next_check_at"],
        lease_owner=m["lease_owner"],
        lease_until=m["lease_until"],
        attempt=m["attempt"],
        version=m["version"],
        attempts=tuple(sorted(attempt_rows, key=lambda a: a.number)),
    )


def _attempt(m: Mapping[Any, Any]) -> Attempt:
    return Attempt(
        video_id=m["video_id"],
        number=m["number"],
        provider=m["provider"],
        idempotency_key=m["idempotency_key"],
        state=AttemptState(m["state"]),
        external_id=m["external_id"],
        upstream_status=m["upstream_status"],
        created_at=m["created_at"],
        submitted_at=m["submitted_at"],
        finished_at=m["finished_at"],
        error=_error(m["error_code"], m["error_message"]),
        binding=m["binding"],
        result_expires_at=m["result_expires_at"],
        usage=m["usage"],
    )


def _event(row: Row[Any]) -> TaskEvent:
    m = row._mapping
    return TaskEvent(
        id=m["id"],
        video_id=m["video_id"],
        type=EventType(m["type"]),
        payload=m["payload"],
        timestamp_ms=m["timestamp_ms"],
        task_version=m["task_version"],
    )


async def _with_attempts(conn: AsyncConnection, rows: Sequence[Row[Any]]) -> list[Task]:
    if not rows:
        return []
    ids = [row._mapping["video_id"] for row in rows]
    found = (await conn.execute(_ATTEMPTS_OF, {"b_ids": ids})).all()
    by_task: dict[str, list[Attempt]] = {}
    for attempt_row in found:
        item = _attempt(attempt_row._mapping)
        by_task.setdefault(item.video_id, []).append(item)
    return [_task(row, by_task.get(row._mapping["video_id"], [])) for row in rows]
