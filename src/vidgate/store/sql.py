"""``TaskStore`` on SQLAlchemy 2 (async): SQLite (aiosqlite) and PostgreSQL (asyncpg)."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.domain.events import TaskEvent
from vidgate.domain.models import Task
from vidgate.domain.status import ACTIVE, TaskStatus
from vidgate.store import migrate
from vidgate.store.admission import AdmissionQueries
from vidgate.store.api_keys import ApiKeyQueries
from vidgate.store.base import (
    DELETED_AT,
    Created,
    IdempotencyClaim,
    Page,
    Quota,
    Write,
    Written,
    decode_cursor,
    encode_cursor,
)
from vidgate.store.engine import (
    DEFAULT_MAX_OVERFLOW,
    DEFAULT_POOL_SIZE,
    DEFAULT_POOL_TIMEOUT,
    async_url,
    make_engine,
)
from vidgate.store.rows import (
    TASK_WITH_ATTEMPTS,
    _attempt_values,
    _event,
    _task_values,
    _with_attempts,
    read_event_ids,
    task_from_joined,
)
from vidgate.store.schema import attempts, idempotency_keys, task_events, tasks

__all__ = [
    "DEFAULT_MAX_OVERFLOW",
    "DEFAULT_POOL_SIZE",
    "DEFAULT_POOL_TIMEOUT",
    "SqlTaskStore",
    "async_url",
    "make_engine",
]

logger = logging.getLogger(__name__)

# The hot statements, built once: executing a prepared statement with a dict of values
# skips building the statement and walking it for its cache key on every call, which was
# a fifth of the CPU of a create or a poll's write (docs/BENCHMARKS.md). An UPDATE built
# without .values() sets the columns named in the dict it is executed with.
_INSERT_TASK = insert(tasks)
_INSERT_ATTEMPT = insert(attempts)
_INSERT_KEY = insert(idempotency_keys)
_INSERT_EVENT = insert(task_events).returning(task_events.c.id)
_UPDATE_TASK = update(tasks).where(
    tasks.c.video_id == bindparam("b_video_id"), tasks.c.version == bindparam("b_version")
)
_UPDATE_TASK_FENCED = _UPDATE_TASK.where(tasks.c.lease_owner == bindparam("b_fence"))
_UPDATE_ATTEMPT = update(attempts).where(
    attempts.c.video_id == bindparam("b_video_id"), attempts.c.number == bindparam("b_number")
)


class SqlTaskStore(ApiKeyQueries, AdmissionQueries):
    """``TaskStore`` on SQLAlchemy: tasks, leases and events.

    Connections come from ``SqlConnections`` (vidgate.store.engine), API keys and the
    idempotency and quota checks from the mixins, row mapping from vidgate.store.rows.
    """

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        migrate_schema: bool = True,
        pool_size: int | None = None,
        max_overflow: int | None = None,
        pool_timeout: float | None = None,
    ) -> SqlTaskStore:
        """A store on ``url``, brought to the newest schema first unless told not to.

        Many processes may open the same database at once: migrations take a lock
        (see ``migrate``), so exactly one applies them and the others find them done.
        The pool options are ``make_engine``'s.
        """
        engine = make_engine(
            url, pool_size=pool_size, max_overflow=max_overflow, pool_timeout=pool_timeout
        )
        try:
            if migrate_schema:
                await migrate.upgrade(engine)
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine)

    # -- reads -------------------------------------------------------------------------

    async def get(self, video_id: str) -> Task | None:
        async with self._reading(one_statement=True) as conn:
            rows = (await conn.execute(TASK_WITH_ATTEMPTS, {"b_video_id": video_id})).all()
        return task_from_joined(rows)

    async def list_page(
        self,
        *,
        user_id: str,
        status: TaskStatus | None,
        limit: int,
        cursor: str | None,
        ascending: bool = False,
    ) -> Page:
        query = select(tasks).where(
            tasks.c.user_id == user_id, tasks.c["metadata"][DELETED_AT].as_string().is_(None)
        )
        if status is not None:
            query = query.where(tasks.c.status == str(status))
        if cursor:
            created, video_id = decode_cursor(cursor)
            if ascending:
                query = query.where(
                    or_(
                        tasks.c.created_at > created,
                        and_(tasks.c.created_at == created, tasks.c.video_id > video_id),
                    )
                )
            else:
                query = query.where(
                    or_(
                        tasks.c.created_at < created,
                        and_(tasks.c.created_at == created, tasks.c.video_id < video_id),
                    )
                )
        if ascending:
            query = query.order_by(tasks.c.created_at, tasks.c.video_id)
        else:
            query = query.order_by(tasks.c.created_at.desc(), tasks.c.video_id.desc())
        query = query.limit(limit + 1)
        async with self._reading() as conn:
            rows = (await conn.execute(query)).all()
            items = await _with_attempts(conn, rows[:limit])
        next_cursor = None
        if len(rows) > limit:
            last = items[-1]
            next_cursor = encode_cursor(last.created_at, last.video_id)
        return Page(items=items, next_cursor=next_cursor)

    async def extend_leases(self, *, owner: str, video_ids: list[str], until: datetime) -> int:
        if not video_ids:
            return 0
        statement = (
            update(tasks)
            .where(tasks.c.lease_owner == owner, tasks.c.video_id.in_(video_ids))
            .values(lease_until=until)
        )
        async with self._writing() as conn:
            return (await conn.execute(statement)).rowcount

    async def release_owned(self, *, owner: str) -> int:
        # The version moves on, so a step of ours still running somewhere is fenced off.
        statement = (
            update(tasks)
            .where(tasks.c.lease_owner == owner)
            .values(lease_owner=None, lease_until=None, version=tasks.c.version + 1)
        )
        async with self._writing() as conn:
            return (await conn.execute(statement)).rowcount

    async def known_external_ids(self, *, provider: str, external_ids: list[str]) -> set[str]:
        if not external_ids:
            return set()
        query = select(attempts.c.external_id).where(
            attempts.c.provider == provider, attempts.c.external_id.in_(external_ids)
        )
        async with self._reading(one_statement=True) as conn:
            return {row[0] for row in (await conn.execute(query)).all()}

    async def running_jobs(self, *, provider: str) -> int:
        query = (
            select(func.count())
            .select_from(attempts.join(tasks, attempts.c.video_id == tasks.c.video_id))
            .where(
                attempts.c.provider == provider,
                attempts.c.number == tasks.c.attempt,
                attempts.c.state.in_(["submitting", "submitted"]),
                tasks.c.status.in_([str(s) for s in ACTIVE]),
            )
        )
        async with self._reading(one_statement=True) as conn:
            return int((await conn.execute(query)).scalar_one())

    async def next_due(self, now: datetime) -> datetime | None:
        query = select(func.min(tasks.c.next_check_at)).where(
            tasks.c.status.in_([str(s) for s in ACTIVE]),
            or_(tasks.c.lease_until.is_(None), tasks.c.lease_until < now),
        )
        async with self._reading(one_statement=True) as conn:
            value = (await conn.execute(query)).scalar()
        return tasks.c.next_check_at.type.process_result_value(value, self._engine.dialect)  # type: ignore[attr-defined,no-any-return]

    async def count_by_status(self) -> dict[TaskStatus, int]:
        query = select(tasks.c.status, func.count()).group_by(tasks.c.status)
        async with self._reading(one_statement=True) as conn:
            rows = (await conn.execute(query)).all()
        return {TaskStatus(status): int(count) for status, count in rows}

    async def events_after(self, video_id: str, after_id: int) -> list[TaskEvent]:
        query = (
            select(task_events)
            .where(task_events.c.video_id == video_id, task_events.c.id > after_id)
            .order_by(task_events.c.id)
        )
        async with self._reading(one_statement=True) as conn:
            rows = (await conn.execute(query)).all()
        return [_event(row) for row in rows]

    # -- writes ------------------------------------------------------------------------

    async def create(
        self,
        task: Task,
        *,
        idempotency: IdempotencyClaim | None = None,
        quota: Quota | None = None,
    ) -> Created:
        now = task.created_at

        async def insert_task(conn: AsyncConnection) -> Created:
            if idempotency or quota:
                await self._take_turn(conn, task.user_id)
            if idempotency is not None:
                earlier = await self._claimed(conn, task.user_id, idempotency, now)
                if earlier is not None:
                    return Created(task=earlier, replayed=True)
            if quota is not None:
                await self._enforce(conn, task.user_id, quota, now)
            await conn.execute(_INSERT_TASK, _task_values(task))
            if idempotency is not None:
                await conn.execute(
                    _INSERT_KEY,
                    {
                        "user_id": task.user_id,
                        "key": idempotency.key,
                        "fingerprint": idempotency.fingerprint,
                        "video_id": task.video_id,
                        "created_at": now,
                        "expires_at": idempotency.expires_at,
                    },
                )
            return Created(task=task)

        return await self._write_together(insert_task, takes_turns=bool(idempotency or quota))

    async def find_by_external_id(self, external_id: str) -> list[Task]:
        holders = select(attempts.c.video_id).where(attempts.c.external_id == external_id)
        query = (
            select(tasks)
            .where(tasks.c.video_id.in_(holders))
            .order_by(tasks.c.created_at.desc())
            .limit(100)
        )
        async with self._reading() as conn:
            rows = (await conn.execute(query)).all()
            return await _with_attempts(conn, rows)

    async def write(self, change: Write) -> Written | None:
        before, after = change.before, change.after
        values = _task_values(after)
        del values["video_id"]
        values.update(version=before.version + 1, b_video_id=before.video_id)
        values["b_version"] = before.version
        statement = _UPDATE_TASK
        if change.fence is not None:
            statement = _UPDATE_TASK_FENCED
            values["b_fence"] = change.fence

        async def update_task(conn: AsyncConnection) -> tuple[bool, TaskEvent | None]:
            """Whether the task was still as the change saw it, and the event stored."""
            if change.quota is not None:
                await self._take_turn(conn, before.user_id)
                await self._enforce(conn, before.user_id, change.quota, after.updated_at)
            result = await conn.execute(statement, values)
            if result.rowcount != 1:
                return False, None  # nothing written; the transaction goes on for others
            if change.insert_attempt is not None:
                await conn.execute(_INSERT_ATTEMPT, _attempt_values(change.insert_attempt))
            if change.update_attempt is not None:
                a = change.update_attempt
                row = _attempt_values(a)
                row.update(b_video_id=a.video_id, b_number=a.number)
                await conn.execute(_UPDATE_ATTEMPT, row)
            if change.event is None:
                return True, None
            kind, body = change.event
            stamp = int(time.time() * 1000)
            event_id = (
                await conn.execute(
                    _INSERT_EVENT,
                    {
                        "video_id": before.video_id,
                        "type": str(kind),
                        "payload": body,
                        "timestamp_ms": stamp,
                        "task_version": before.version + 1,
                    },
                )
            ).scalar_one()
            return True, TaskEvent(
                id=event_id,
                video_id=before.video_id,
                type=kind,
                payload=body,
                timestamp_ms=stamp,
                task_version=before.version + 1,
            )

        current, stored_event = await self._write_together(
            update_task, takes_turns=change.quota is not None
        )
        if not current:
            return None
        merged = change.merged_attempts()
        written = dataclasses.replace(after, version=before.version + 1, attempts=merged)
        return Written(task=written, event=stored_event)

    async def claim(self, *, owner: str, now: datetime, until: datetime, limit: int) -> list[Task]:
        due = (
            select(tasks.c.video_id)
            .where(
                tasks.c.status.in_([str(s) for s in ACTIVE]),
                tasks.c.next_check_at <= now,
                or_(tasks.c.lease_until.is_(None), tasks.c.lease_until < now),
            )
            .order_by(tasks.c.next_check_at)
            .limit(limit)
        )
        lease = {"lease_owner": owner, "lease_until": until, "version": tasks.c.version + 1}
        if self._engine.dialect.name == "postgresql":
            # Concurrent claimers lock disjoint rows: each skips what another holds. The
            # locking SELECT is a MATERIALIZED CTE so it runs exactly once; written as
            # ``IN (subquery)`` the planner may make it the inner side of a semi-join and
            # re-run it for every row of the outer scan (seen on small tables), so one
            # claim could lock and lease more than ``limit`` rows.
            chosen = (
                due.with_for_update(skip_locked=True)
                .cte("due")
                .prefix_with("MATERIALIZED", dialect="postgresql")
            )
            statement = (
                update(tasks)
                .where(tasks.c.video_id == chosen.c.video_id)
                .values(**lease)
                .returning(*tasks.c)
            )
        else:
            # SQLite: one writer at a time (BEGIN IMMEDIATE), nothing to skip.
            statement = (
                update(tasks)
                .where(tasks.c.video_id.in_(due.scalar_subquery()))
                .values(**lease)
                .returning(*tasks.c)
            )
        async with self._writing() as conn:
            rows = (await conn.execute(statement)).all()
            claimed = await _with_attempts(conn, rows)
        # RETURNING gives storage order; hand out the most overdue first.
        return sorted(claimed, key=lambda t: t.next_check_at or now)

    async def events_for(
        self, video_ids: Sequence[str], after_id: int, limit: int
    ) -> list[TaskEvent]:
        if not video_ids:
            return []
        query = (
            select(task_events)
            .where(task_events.c.video_id.in_(video_ids), task_events.c.id > after_id)
            .order_by(task_events.c.id)
            .limit(limit)
        )
        async with self._reading() as conn:
            rows = (await conn.execute(query)).all()
        return [_event(row) for row in rows]

    async def events_of_user(self, user_id: str, after_id: int, limit: int) -> list[TaskEvent]:
        query = (
            select(task_events)
            .join(tasks, tasks.c.video_id == task_events.c.video_id)
            .where(tasks.c.user_id == user_id, task_events.c.id > after_id)
            .order_by(task_events.c.id)
            .limit(limit)
        )
        async with self._reading(one_statement=True) as conn:
            rows = (await conn.execute(query)).all()
        return [_event(row) for row in rows]

    async def event_ids_after(self, after_id: int, limit: int) -> list[int]:
        async with self._reading(one_statement=True) as conn:
            return await read_event_ids(conn, after_id, limit)

    async def newest_event_id(self) -> int | None:
        async with self._reading(one_statement=True) as conn:
            value = (await conn.execute(select(func.max(task_events.c.id)))).scalar()
        return None if value is None else int(value)

    async def oldest_event_id(self) -> int | None:
        async with self._reading(one_statement=True) as conn:
            value = (await conn.execute(select(func.min(task_events.c.id)))).scalar()
        return None if value is None else int(value)

    async def purge_events(self, *, older_than_ms: int, limit: int) -> int:
        if limit <= 0:
            return 0
        # Walks the primary key from its start: the oldest ``limit`` events, and of
        # them the newest one old enough; everything up to it goes (never the last).
        head = (
            select(task_events.c.id, task_events.c.timestamp_ms)
            .order_by(task_events.c.id)
            .limit(limit)
            .subquery("head")
        )
        upto = select(func.max(head.c.id)).where(head.c.timestamp_ms < older_than_ms)
        newest = select(func.max(task_events.c.id))
        statement = delete(task_events).where(
            task_events.c.id <= upto.scalar_subquery(),
            task_events.c.id < newest.scalar_subquery(),
        )
        async with self._writing() as conn:
            return (await conn.execute(statement)).rowcount
