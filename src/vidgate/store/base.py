"""The ``TaskStore`` port: what the service and engine need from persistence."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from vidgate.domain.events import EventType, TaskEvent
from vidgate.domain.models import Attempt, Task
from vidgate.domain.status import TaskStatus


class StoreUnavailable(Exception):
    """The database cannot be reached or refused the operation."""


# The metadata key of a task its owner deleted (OpenAI-style ``DELETE /v1/videos/{id}``):
# the row stays, so quotas and support lookups still count it, but no owner route shows it.
DELETED_AT = "deletedAt"


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
    # Checked in the same transaction (a retry makes a finished task active again).
    quota: Quota | None = None

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
class IdempotencyClaim:
    """Create at most one task per (user, key): a second create with the same key and
    the same ``fingerprint`` (a hash of the request) gets the first task back."""

    key: str
    fingerprint: str
    expires_at: datetime


@dataclass(frozen=True, kw_only=True)
class Quota:
    """Checked in the create's own transaction, so concurrent creates cannot overshoot."""

    max_active: int | None = None  # tasks of the user not yet finished
    max_per_day: int | None = None  # tasks the user created in the 24 h before ``now``


@dataclass(frozen=True, kw_only=True)
class Created:
    task: Task
    replayed: bool = False  # an earlier task returned for the same Idempotency-Key


class IdempotencyMismatch(Exception):
    """The Idempotency-Key was used before with a different request."""

    def __init__(self, video_id: str) -> None:
        super().__init__(video_id)
        self.video_id = video_id


class QuotaReached(Exception):
    def __init__(self, which: str, limit: int, retry_after: float) -> None:
        super().__init__(which)
        self.which = which  # "active" or "daily"
        self.limit = limit
        self.retry_after = retry_after


DAY = timedelta(hours=24)
# A task's end cannot be foreseen; a client at its active-task limit is told to look again
# after this long (the WebSocket tells it sooner when one of its tasks ends).
ACTIVE_RETRY_SECONDS = 10.0


def enforce_quota(quota: Quota, *, active: int, newest: Sequence[datetime], now: datetime) -> None:
    """Raise ``QuotaReached`` if a new task would break ``quota``, given the user's
    ``active`` tasks and the creation times of their tasks of the last 24 h, newest
    first (at most ``quota.max_per_day`` of them are needed)."""
    if quota.max_active is not None and active >= quota.max_active:
        raise QuotaReached("active", quota.max_active, ACTIVE_RETRY_SECONDS)
    if quota.max_per_day is not None and len(newest) >= quota.max_per_day:
        # Room comes back when the max_per_day-th newest task leaves the 24 h window.
        frees_at = newest[quota.max_per_day - 1] + DAY
        raise QuotaReached("daily", quota.max_per_day, max(1.0, (frees_at - now).total_seconds()))


@dataclass(frozen=True, kw_only=True)
class ApiKey:
    """A stored API key: the secret itself is never stored, only its hash."""

    key_id: str
    user_id: str
    secret_hash: str
    label: str = ""
    admin: bool = False
    created_at: datetime
    revoked_at: datetime | None = None


class KeyStore(Protocol):
    async def add_api_key(self, key: ApiKey) -> None: ...

    async def get_api_key(self, key_id: str) -> ApiKey | None: ...

    async def list_api_keys(self, user_id: str | None = None) -> list[ApiKey]: ...

    async def revoke_api_key(self, key_id: str, *, at: datetime) -> bool:
        """Mark the key revoked; False if there is no such key."""
        ...


@dataclass(frozen=True, kw_only=True)
class Page:
    items: list[Task]
    next_cursor: str | None


class TaskStore(Protocol):
    async def create(
        self,
        task: Task,
        *,
        idempotency: IdempotencyClaim | None = None,
        quota: Quota | None = None,
    ) -> Created:
        """Insert ``task`` durably. With ``idempotency``, an earlier task of the same user
        and key is returned instead (``replayed``), or ``IdempotencyMismatch`` raised if
        its fingerprint differs. With ``quota``, ``QuotaReached`` when over it."""
        ...

    async def find_by_external_id(self, external_id: str) -> list[Task]:
        """Tasks any of whose attempts has this upstream job id (admin support lookup)."""
        ...

    async def purge_idempotency_keys(self, now: datetime) -> int:
        """Forget keys that expired before ``now``; how many."""
        ...

    async def get(self, video_id: str) -> Task | None: ...

    async def list_page(
        self,
        *,
        user_id: str,
        status: TaskStatus | None,
        limit: int,
        cursor: str | None,
        ascending: bool = False,
    ) -> Page:
        """The user's tasks newest first (oldest first if ``ascending``), after ``cursor``;
        tasks marked deleted (``DELETED_AT`` in their metadata) are left out."""
        ...

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

    async def count_by_status(self) -> dict[TaskStatus, int]:
        """How many tasks have each status, in one query (metrics); absent means none."""
        ...

    async def events_after(self, video_id: str, after_id: int) -> list[TaskEvent]: ...

    async def events_for(
        self, video_ids: Sequence[str], after_id: int, limit: int
    ) -> list[TaskEvent]:
        """Events of any of ``video_ids`` with an id above ``after_id``: the oldest
        ``limit`` of them, oldest first (the WebSocket hub's poll, one query)."""
        ...

    async def events_of_user(self, user_id: str, after_id: int, limit: int) -> list[TaskEvent]:
        """Events of ``user_id``'s tasks with an id above ``after_id``: the oldest
        ``limit`` of them, oldest first (the all-tasks SSE stream)."""
        ...

    async def event_ids_after(self, after_id: int, limit: int) -> list[int]:
        """The ids of every task's events above ``after_id``: the smallest ``limit`` of
        them, ascending. Readers in id order see in it which ids are not yet visible
        (PostgreSQL takes an id at insert and shows the row at commit)."""
        ...

    async def newest_event_id(self) -> int | None:
        """The largest event id visible now (None: no event stored)."""
        ...

    async def oldest_event_id(self) -> int | None:
        """The smallest event id still stored (None: no event stored). A replay after
        ``N`` is exact iff ``N + 1 >= oldest_event_id()`` (see ``replay_is_exact``)."""
        ...

    async def purge_events(self, *, older_than_ms: int, limit: int) -> int:
        """Delete one batch of old events; how many.

        Deletes a prefix of ids: of the oldest ``limit`` events, every one up to the
        newest whose ``timestamp_ms`` is below ``older_than_ms``. The newest event of
        all is always kept, so ids never restart (SQLite reuses a freed highest rowid).
        """
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
