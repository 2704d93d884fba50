"""The ``TaskStore`` port: what the service and engine need from persistence."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from vidgate.domain.events import EventType, TaskEvent
from vidgate.domain.models import Attempt, Task
from vidgate.domain.status import TaskStatus


class StoreUnavailable(Exception):
    """The database cannot be reached or refused the operation."""


class BadCursor(ValueError):
    """A ``list_page`` cursor that no store issued."""


@dataclass(frozen=True, kw_only=True)
class Write:
    """One atomic, compare-and-set change to a task.

    Applied only if the row still has ``before.version`` (and, when ``fence`` is set,
    is still leased by that owner): a writer that lost a race or its lease changes
    nothing. Attempt rows and the event row are written in the same transaction.
    """

    before: Task
    after: Task
    fence: str | None = None
    insert_attempt: Attempt | None = None
    update_attempt: Attempt | None = None
    event: tuple[EventType, dict[str, Any]] | None = None

    def merged_attempts(self) -> tuple[Attempt, ...]:
        """``before``'s attempts with this change's inserted and updated ones, by number."""
        merged = {a.number: a for a in self.before.attempts}
        for item in (self.insert_attempt, self.update_attempt):
            if item is not None:
                merged[item.number] = item
        return tuple(merged[n] for n in sorted(merged))


@dataclass(frozen=True, kw_only=True)
class Written:
    task: Task
    event: TaskEvent | None


@dataclass(frozen=True, kw_only=True)
class Page:
    items: list[Task]
    next_cursor: str | None


class TaskStore(Protocol):
    async def create(self, task: Task) -> None: ...

    async def get(self, video_id: str) -> Task | None: ...

    async def list_page(
        self, *, user_id: str, status: TaskStatus | None, limit: int, cursor: str | None
    ) -> Page: ...

    async def write(self, change: Write) -> Written | None:
        """Apply ``change``; None when the compare-and-set or the fence refused it."""
        ...

    async def claim(self, *, owner: str, now: datetime, until: datetime, limit: int) -> list[Task]:
        """Lease up to ``limit`` due, active, unleased tasks to ``owner``."""
        ...

    async def extend_leases(self, *, owner: str, video_ids: list[str], until: datetime) -> int:
        """Heartbeat: push ``lease_until`` of tasks still leased by ``owner``; how many."""
        ...

    async def release_owned(self, *, owner: str) -> int:
        """Give up every lease ``owner`` holds (graceful shutdown); how many."""
        ...

    async def known_external_ids(self, *, provider: str, external_ids: list[str]) -> set[str]:
        """Which of these upstream job ids some attempt already recorded."""
        ...

    async def running_jobs(self, *, provider: str) -> int:
        """Upstream jobs of ``provider`` that active tasks are waiting for."""
        ...

    async def next_due(self, now: datetime) -> datetime | None:
        """When the earliest unleased active task is due (None: nothing to do)."""
        ...

    async def events_after(self, video_id: str, after_id: int) -> list[TaskEvent]: ...

    async def events_for(
        self, video_ids: Sequence[str], after_id: int, limit: int
    ) -> list[TaskEvent]:
        """Events of any of ``video_ids`` with an id above ``after_id``: the oldest
        ``limit`` of them, oldest first (the WebSocket hub's poll, one query)."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


# The listing cursor: opaque to clients, the same for every adapter.


def encode_cursor(created: datetime, video_id: str) -> str:
    raw = f"{created.isoformat()}|{video_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (created_at, video_id) after which a page continues; ``BadCursor`` if garbled."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, video_id = base64.urlsafe_b64decode(padded).decode().split("|", 1)
        when = datetime.fromisoformat(created)
        if when.tzinfo is None:
            raise ValueError("cursor time without zone")
        return when, video_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadCursor("cursor is not one this server issued") from exc
