"""``MemoryTaskStore``: the ``TaskStore`` port in a few dicts."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from vidgate.domain.events import EventType, TaskEvent
from vidgate.domain.models import Attempt, AttemptState, Task
from vidgate.domain.status import ACTIVE, TaskStatus
from vidgate.store.base import (
    DAY,
    DELETED_AT,
    ApiKey,
    Created,
    IdempotencyClaim,
    IdempotencyMismatch,
    Page,
    Quota,
    StoreUnavailable,
    TaskStore,
    Write,
    Written,
    decode_cursor,
    encode_cursor,
    enforce_quota,
)
from vidgate.testing.rows import _attempt_row, _claimable, _json, _task_row, _utc


class MemoryTaskStore:
    """A ``TaskStore`` in a few dicts, with ``SqlTaskStore``'s semantics.

    Every method yields to the event loop once (a real store awaits I/O), then does its
    check and its write with no ``await`` in between, so it is atomic under asyncio.
    A broken constraint (duplicate ``videoId``, attempt number or provider + external
    id) raises ``StoreUnavailable`` and changes nothing.
    """

    def __init__(self) -> None:
        self._tasks: dict[str, Task] = {}
        self._attempts: dict[str, dict[int, Attempt]] = {}
        # (provider, external id) -> (video id, number): the unique index on attempts
        self._jobs: dict[tuple[str, str], tuple[str, int]] = {}
        self._events: list[TaskEvent] = []
        self._event_ids = itertools.count(1)
        # (user id, key) -> (fingerprint, video id, expires at)
        self._idempotency: dict[tuple[str, str], tuple[str, str, datetime]] = {}
        self._keys: dict[str, ApiKey] = {}

    # -- reads ---------------------------------------------------------------------------

    async def get(self, video_id: str) -> Task | None:
        await asyncio.sleep(0)
        row = self._tasks.get(video_id)
        return None if row is None else self._load(row)

    async def list_page(
        self,
        *,
        user_id: str,
        status: TaskStatus | None,
        limit: int,
        cursor: str | None,
        ascending: bool = False,
    ) -> Page:
        await asyncio.sleep(0)
        rows = [
            row
            for row in self._tasks.values()
            if row.user_id == user_id
            and (status is None or row.status is status)
            and row.metadata.get(DELETED_AT) is None
        ]
        if cursor:
            after = decode_cursor(cursor)
            rows = [
                row
                for row in rows
                if (
                    (row.created_at, row.video_id) > after
                    if ascending
                    else (row.created_at, row.video_id) < after
                )
            ]
        rows.sort(key=lambda row: (row.created_at, row.video_id), reverse=not ascending)
        items = [self._load(row) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = items[-1]
            next_cursor = encode_cursor(last.created_at, last.video_id)
        return Page(items=items, next_cursor=next_cursor)

    async def next_due(self, now: datetime) -> datetime | None:
        await asyncio.sleep(0)
        now = _utc(now)
        due = [
            row.next_check_at
            for row in self._tasks.values()
            if row.next_check_at is not None and _claimable(row, now)
        ]
        return min(due, default=None)

    async def count_by_status(self) -> dict[TaskStatus, int]:
        await asyncio.sleep(0)
        counts: dict[TaskStatus, int] = {}
        for row in self._tasks.values():
            counts[row.status] = counts.get(row.status, 0) + 1
        return counts

    async def events_after(self, video_id: str, after_id: int) -> list[TaskEvent]:
        await asyncio.sleep(0)
        return [
            dataclasses.replace(e, payload=_json(e.payload))
            for e in self._events
            if e.video_id == video_id and e.id > after_id
        ]

    async def events_for(
        self, video_ids: Sequence[str], after_id: int, limit: int
    ) -> list[TaskEvent]:
        await asyncio.sleep(0)
        wanted = set(video_ids)
        found = [e for e in self._events if e.video_id in wanted and e.id > after_id]
        return [dataclasses.replace(e, payload=_json(e.payload)) for e in found[: max(0, limit)]]

    async def events_of_user(self, user_id: str, after_id: int, limit: int) -> list[TaskEvent]:
        await asyncio.sleep(0)
        mine = {v for v, row in self._tasks.items() if row.user_id == user_id}
        found = [e for e in self._events if e.video_id in mine and e.id > after_id]
        return [dataclasses.replace(e, payload=_json(e.payload)) for e in found[: max(0, limit)]]

    async def event_ids_after(self, after_id: int, limit: int) -> list[int]:
        await asyncio.sleep(0)
        return [e.id for e in self._events if e.id > after_id][: max(0, limit)]

    async def newest_event_id(self) -> int | None:
        await asyncio.sleep(0)
        return self._events[-1].id if self._events else None

    async def oldest_event_id(self) -> int | None:
        await asyncio.sleep(0)
        return self._events[0].id if self._events else None

    async def purge_events(self, *, older_than_ms: int, limit: int) -> int:
        await asyncio.sleep(0)
        head = self._events[: max(0, limit)]
        old = [i for i, e in enumerate(head) if e.timestamp_ms < older_than_ms]
        if not old:
            return 0
        # A prefix of ids, never the newest event (SQL keeps it so ids never restart).
        count = min(old[-1] + 1, len(self._events) - 1)
        del self._events[:count]
        return count

    async def ping(self) -> None:
        await asyncio.sleep(0)

    async def close(self) -> None:
        await asyncio.sleep(0)

    # -- writes --------------------------------------------------------------------------

    async def create(
        self,
        task: Task,
        *,
        idempotency: IdempotencyClaim | None = None,
        quota: Quota | None = None,
    ) -> Created:
        await asyncio.sleep(0)
        now = task.created_at
        if idempotency is not None:
            held = self._idempotency.get((task.user_id, idempotency.key))
            if held is not None and held[2] > now:
                fingerprint, video_id, _ = held
                if fingerprint != idempotency.fingerprint:
                    raise IdempotencyMismatch(video_id)
                if video_id in self._tasks:
                    return Created(task=self._load(self._tasks[video_id]), replayed=True)
        if quota is not None:
            mine = [row for row in self._tasks.values() if row.user_id == task.user_id]
            newest = sorted(
                (row.created_at for row in mine if row.created_at > now - DAY), reverse=True
            )
            active = sum(1 for row in mine if row.status in ACTIVE)
            enforce_quota(quota, active=active, newest=newest, now=now)
        if task.video_id in self._tasks:
            raise StoreUnavailable(f"a task {task.video_id!r} already exists")
        self._tasks[task.video_id] = _task_row(task)
        if idempotency is not None:
            self._idempotency[(task.user_id, idempotency.key)] = (
                idempotency.fingerprint,
                task.video_id,
                idempotency.expires_at,
            )
        return Created(task=task)

    async def purge_idempotency_keys(self, now: datetime) -> int:
        await asyncio.sleep(0)
        expired = [k for k, held in self._idempotency.items() if held[2] <= now]
        for k in expired:
            del self._idempotency[k]
        return len(expired)

    async def find_by_external_id(self, external_id: str) -> list[Task]:
        await asyncio.sleep(0)
        holders = {
            video_id
            for video_id, numbered in self._attempts.items()
            if any(a.external_id == external_id for a in numbered.values())
        }
        found = [self._load(self._tasks[v]) for v in holders if v in self._tasks]
        return sorted(found, key=lambda t: t.created_at, reverse=True)

    # -- API keys --------------------------------------------------------------------------

    async def add_api_key(self, key: ApiKey) -> None:
        await asyncio.sleep(0)
        if key.key_id in self._keys:
            raise StoreUnavailable(f"an API key {key.key_id!r} already exists")
        self._keys[key.key_id] = key

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        await asyncio.sleep(0)
        return self._keys.get(key_id)

    async def list_api_keys(self, user_id: str | None = None) -> list[ApiKey]:
        await asyncio.sleep(0)
        keys = [k for k in self._keys.values() if user_id is None or k.user_id == user_id]
        return sorted(keys, key=lambda k: (k.created_at, k.key_id))

    async def revoke_api_key(self, key_id: str, *, at: datetime) -> bool:
        await asyncio.sleep(0)
        key = self._keys.get(key_id)
        if key is None:
            return False
        if key.revoked_at is None:
            self._keys[key_id] = dataclasses.replace(key, revoked_at=at)
        return True

    async def write(self, change: Write) -> Written | None:
        await asyncio.sleep(0)
        before, after = change.before, change.after
        row = self._tasks.get(before.video_id)
        if row is None or row.version != before.version:
            return None
        if change.fence is not None and row.lease_owner != change.fence:
            return None
        if change.quota is not None:
            active = sum(
                1 for r in self._tasks.values() if r.user_id == row.user_id and r.status in ACTIVE
            )
            enforce_quota(change.quota, active=active, newest=[], now=after.updated_at)
        version = before.version + 1
        new_row = _task_row(dataclasses.replace(after, video_id=before.video_id, version=version))
        attempts = self._attempt_rows(change)
        event: TaskEvent | None = None
        body: dict[str, Any] = {}
        if change.event is not None:
            kind, body = change.event
            event = TaskEvent(
                id=0,  # numbered at commit
                video_id=before.video_id,
                type=EventType(kind),
                payload=_json(body),
                timestamp_ms=int(time.time() * 1000),
                task_version=version,
            )
        # Everything checked: commit all of it.
        self._tasks[before.video_id] = new_row
        for attempt in attempts.values():
            self._put_attempt(attempt)
        if event is not None:
            event = dataclasses.replace(event, id=next(self._event_ids))
            self._events.append(event)
            event = dataclasses.replace(event, payload=body)  # returned as given, as in SQL
        merged = change.merged_attempts()
        written = dataclasses.replace(after, version=version, attempts=merged)
        return Written(task=written, event=event)

    async def extend_leases(self, *, owner: str, video_ids: list[str], until: datetime) -> int:
        await asyncio.sleep(0)
        extended = 0
        for video_id in video_ids:
            row = self._tasks.get(video_id)
            if row is not None and row.lease_owner == owner:
                self._tasks[video_id] = dataclasses.replace(row, lease_until=_utc(until))
                extended += 1
        return extended

    async def release_owned(self, *, owner: str) -> int:
        await asyncio.sleep(0)
        released = 0
        for video_id, row in list(self._tasks.items()):
            if row.lease_owner == owner:
                self._tasks[video_id] = dataclasses.replace(
                    row, lease_owner=None, lease_until=None, version=row.version + 1
                )
                released += 1
        return released

    async def known_external_ids(self, *, provider: str, external_ids: list[str]) -> set[str]:
        await asyncio.sleep(0)
        return {e for e in external_ids if (provider, e) in self._jobs}

    async def running_jobs(self, *, provider: str) -> int:
        await asyncio.sleep(0)
        running = 0
        for video_id, row in self._tasks.items():
            attempt = self._attempts.get(video_id, {}).get(row.attempt)
            if (
                not row.status.terminal
                and attempt is not None
                and attempt.provider == provider
                and attempt.state in (AttemptState.SUBMITTING, AttemptState.SUBMITTED)
            ):
                running += 1
        return running

    async def claim(self, *, owner: str, now: datetime, until: datetime, limit: int) -> list[Task]:
        await asyncio.sleep(0)
        now = _utc(now)
        lease_until = _utc(until)
        due = sorted(
            (
                row
                for row in self._tasks.values()
                if row.next_check_at is not None
                and row.next_check_at <= now
                and _claimable(row, now)
            ),
            key=lambda row: row.next_check_at or now,
        )[: max(0, limit)]
        claimed = []
        for row in due:
            leased = dataclasses.replace(
                row, lease_owner=owner, lease_until=lease_until, version=row.version + 1
            )
            self._tasks[row.video_id] = leased
            claimed.append(self._load(leased))
        return claimed

    # -- helpers -------------------------------------------------------------------------

    def _load(self, row: Task) -> Task:
        found = self._attempts.get(row.video_id, {})
        return dataclasses.replace(
            row,
            metadata=_json(row.metadata),
            attempts=tuple(found[n] for n in sorted(found)),
        )

    def _attempt_rows(self, change: Write) -> dict[tuple[str, int], Attempt]:
        """The attempt rows ``change`` writes, once the constraints SQL enforces hold."""
        rows: dict[tuple[str, int], Attempt] = {}
        if change.insert_attempt is not None:
            new = _attempt_row(change.insert_attempt)
            if new.video_id not in self._tasks:
                raise StoreUnavailable(f"no task {new.video_id!r} for the attempt")
            if new.number in self._attempts.get(new.video_id, {}):
                raise StoreUnavailable(f"attempt {new.number} of {new.video_id} exists")
            rows[(new.video_id, new.number)] = new
        if change.update_attempt is not None:
            new = _attempt_row(change.update_attempt)
            key = (new.video_id, new.number)
            # An UPDATE that matches no row changes nothing.
            if key in rows or new.number in self._attempts.get(new.video_id, {}):
                rows[key] = new
        jobs: set[tuple[str, str]] = set()
        for row in rows.values():
            if row.external_id is None:
                continue
            job = (row.provider, row.external_id)
            holder = self._jobs.get(job)
            if job in jobs or (holder is not None and holder not in rows):
                raise StoreUnavailable(f"two attempts would share the upstream job {job}")
            jobs.add(job)
        return rows

    def _put_attempt(self, row: Attempt) -> None:
        table = self._attempts.setdefault(row.video_id, {})
        old = table.get(row.number)
        if old is not None and old.external_id is not None:
            self._jobs.pop((old.provider, old.external_id), None)
        table[row.number] = row
        if row.external_id is not None:
            self._jobs[(row.provider, row.external_id)] = (row.video_id, row.number)


if TYPE_CHECKING:  # mypy proves the fake fits its port
    _store: TaskStore = MemoryTaskStore()
