"""What the in-memory store keeps of a task or an attempt: values as a database would
read them back (aware UTC datetimes, JSON round-tripped), attempts in their own table."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any, overload

from vidgate.domain.models import Attempt, Task
from vidgate.domain.status import ACTIVE


@overload
def _utc(value: datetime) -> datetime: ...
@overload
def _utc(value: datetime | None) -> datetime | None: ...
def _utc(value: datetime | None) -> datetime | None:
    """What a datetime reads back as from the database: aware UTC; naive ones are refused."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store")
    return value.astimezone(UTC)


def _json(value: Any) -> Any:
    """A JSON column's round trip: a fresh copy, and the same refusal of what is not JSON."""
    return json.loads(json.dumps(value))


def _task_row(task: Task) -> Task:
    return dataclasses.replace(
        task,
        metadata=_json(task.metadata),
        created_at=_utc(task.created_at),
        updated_at=_utc(task.updated_at),
        completed_at=_utc(task.completed_at),
        deadline_at=_utc(task.deadline_at),
        next_check_at=_utc(task.next_check_at),
        lease_until=_utc(task.lease_until),
        attempts=(),  # attempts live in their own "table", as in SQL
    )


def _attempt_row(attempt: Attempt) -> Attempt:
    return dataclasses.replace(
        attempt,
        created_at=_utc(attempt.created_at),
        submitted_at=_utc(attempt.submitted_at),
        finished_at=_utc(attempt.finished_at),
    )


def _claimable(row: Task, now: datetime) -> bool:
    """Active, and not leased (or the lease ran out)."""
    return row.status in ACTIVE and (row.lease_until is None or row.lease_until < now)
