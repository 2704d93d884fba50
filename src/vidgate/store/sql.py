"""``TaskStore`` on SQLAlchemy 2 (async): SQLite (aiosqlite) and PostgreSQL (asyncpg)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Row, and_, delete, event, func, insert, or_, select, update
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from vidgate.domain.events import EventType, TaskEvent
from vidgate.domain.models import Attempt, AttemptState, Task, TaskError
from vidgate.domain.request import VideoParams
from vidgate.domain.status import ACTIVE, TaskStatus
from vidgate.store import migrate
from vidgate.store.base import (
    DAY,
    ApiKey,
    Created,
    IdempotencyClaim,
    IdempotencyMismatch,
    Page,
    Quota,
    StoreUnavailable,
    Write,
    Written,
    decode_cursor,
    encode_cursor,
    enforce_quota,
)
from vidgate.store.schema import api_keys, attempts, idempotency_keys, task_events, tasks

logger = logging.getLogger(__name__)

_ACTIVE_WORDS = sorted(str(status) for status in ACTIVE)


def _sqlite_file(url: str) -> Path | None:
    path = url.split(":///", 1)[1] if ":///" in url else ""
    if not path or path.startswith(":memory:"):
        return None
    return Path(path.split("?", 1)[0])


def async_url(url: str) -> str:
    """Accept the plain URLs people write; use the async drivers vidgate runs on.

    ``sqlite:///`` becomes ``sqlite+aiosqlite:///``; ``postgresql://`` and ``postgres://``
    become ``postgresql+asyncpg://``, with libpq's ``sslmode=`` (what hosted databases
    hand out) spelled as asyncpg's ``ssl=``. URLs naming a driver are left alone.
    """
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url.removeprefix("sqlite:///")
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("postgresql+asyncpg://"):
        parsed = make_url(url)
        if "sslmode" in parsed.query and "ssl" not in parsed.query:
            query = dict(parsed.query)
            query["ssl"] = query.pop("sslmode")
            url = parsed.set(query=query).render_as_string(hide_password=False)
    return url


# Connections per process on PostgreSQL: ``pool_size`` kept open, up to ``max_overflow``
# more under bursts, a caller waits ``pool_timeout`` seconds for one before the store
# reports StoreUnavailable. Every api and worker process has its own pool: keep
# processes x (pool_size + max_overflow) under the server's max_connections.
DEFAULT_POOL_SIZE = 10
DEFAULT_MAX_OVERFLOW = 10
DEFAULT_POOL_TIMEOUT = 30.0


def make_engine(
    url: str,
    *,
    pool_size: int | None = None,
    max_overflow: int | None = None,
    pool_timeout: float | None = None,
) -> AsyncEngine:
    """An engine tuned for vidgate's access pattern on either database.

    The pool options apply to PostgreSQL (None: the defaults above); SQLite keeps
    SQLAlchemy's pool, since it has one writer at a time anyway.
    """
    url = async_url(url)
    if url.startswith("sqlite"):
        file = _sqlite_file(url)
        if file is not None:
            file.parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})
        _tune_sqlite(engine)
        return engine
    connect_args: dict[str, Any] = {}
    if url.startswith("postgresql+asyncpg"):
        # Names vidgate's sessions in pg_stat_activity.
        connect_args["server_settings"] = {"application_name": "vidgate"}
    return create_async_engine(
        url,
        pool_size=DEFAULT_POOL_SIZE if pool_size is None else pool_size,
        max_overflow=DEFAULT_MAX_OVERFLOW if max_overflow is None else max_overflow,
        pool_timeout=DEFAULT_POOL_TIMEOUT if pool_timeout is None else pool_timeout,
        # Connections dropped by a database restart are replaced on checkout instead of
        # failing one call each.
        pool_pre_ping=True,
        connect_args=connect_args,
    )


def _tune_sqlite(engine: AsyncEngine) -> None:
    # WAL lets readers run beside the writer. Transactions that write start with
    # BEGIN IMMEDIATE, so two processes never deadlock upgrading a read lock; the
    # busy timeout makes a writer wait for the other instead of failing.
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        writes = conn.get_execution_options().get("vidgate_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")


class SqlTaskStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = engine.execution_options(vidgate_write=True)
        self._reader = engine
        if engine.dialect.name == "postgresql":
            # A read that takes several statements (a task, then its attempts) sees one
            # snapshot, as it does in SQLite's WAL mode; read-only transactions at this
            # level never fail to serialize. Writes keep READ COMMITTED: the claim's
            # SKIP LOCKED and the compare-and-set UPDATEs rely on its row-lock rechecks.
            self._reader = engine.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
        # SQLite has one writer at a time. Writers of this process queue here instead of
        # racing for the file lock, whose busy handler sleeps in fixed steps of up to
        # 100 ms; other processes are still kept out by the lock and busy_timeout.
        self._write_turn: asyncio.Lock | None = (
            asyncio.Lock() if engine.dialect.name == "sqlite" else None
        )

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

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    # Database errors stop here: callers see StoreUnavailable, never SQLAlchemy.
    @contextlib.asynccontextmanager
    async def _reading(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self._reader.connect() as conn:
                yield conn
        except (SQLAlchemyError, OSError) as exc:
            raise StoreUnavailable(f"database read failed: {type(exc).__name__}: {exc}") from exc

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with contextlib.AsyncExitStack() as stack:
                if self._write_turn is not None:
                    await stack.enter_async_context(self._write_turn)
                conn = await stack.enter_async_context(self._writer.begin())
                yield conn
        except (SQLAlchemyError, OSError) as exc:
            raise StoreUnavailable(f"database write failed: {type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        await self._engine.dispose()

    async def ping(self) -> None:
        async with self._reading() as conn:
            await conn.execute(select(1))

    # -- reads -------------------------------------------------------------------------

    async def get(self, video_id: str) -> Task | None:
        async with self._reading() as conn:
            row = (await conn.execute(select(tasks).where(tasks.c.video_id == video_id))).first()
            if row is None:
                return None
            loaded = await _with_attempts(conn, [row])
        return loaded[0]

    async def list_page(
        self, *, user_id: str, status: TaskStatus | None, limit: int, cursor: str | None
    ) -> Page:
        query = select(tasks).where(tasks.c.user_id == user_id)
        if status is not None:
            query = query.where(tasks.c.status == str(status))
        if cursor:
            created, video_id = decode_cursor(cursor)
            query = query.where(
                or_(
                    tasks.c.created_at < created,
                    and_(tasks.c.created_at == created, tasks.c.video_id < video_id),
                )
            )
        query = query.order_by(tasks.c.created_at.desc(), tasks.c.video_id.desc()).limit(limit + 1)
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
        async with self._reading() as conn:
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
        async with self._reading() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def next_due(self, now: datetime) -> datetime | None:
        query = select(func.min(tasks.c.next_check_at)).where(
            tasks.c.status.in_([str(s) for s in ACTIVE]),
            or_(tasks.c.lease_until.is_(None), tasks.c.lease_until < now),
        )
        async with self._reading() as conn:
            value = (await conn.execute(query)).scalar()
        return tasks.c.next_check_at.type.process_result_value(value, self._engine.dialect)  # type: ignore[attr-defined,no-any-return]

    async def events_after(self, video_id: str, after_id: int) -> list[TaskEvent]:
        query = (
            select(task_events)
            .where(task_events.c.video_id == video_id, task_events.c.id > after_id)
            .order_by(task_events.c.id)
        )
        async with self._reading() as conn:
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
        async with self._writing() as conn:
            if idempotency or quota:
                await self._take_turn(conn, task.user_id)
            if idempotency is not None:
                earlier = await self._claimed(conn, task.user_id, idempotency, now)
                if earlier is not None:
                    return Created(task=earlier, replayed=True)
            if quota is not None:
                await self._enforce(conn, task.user_id, quota, now)
            await conn.execute(insert(tasks).values(**_task_values(task)))
            if idempotency is not None:
                await conn.execute(
                    insert(idempotency_keys).values(
                        user_id=task.user_id,
                        key=idempotency.key,
                        fingerprint=idempotency.fingerprint,
                        video_id=task.video_id,
                        created_at=now,
                        expires_at=idempotency.expires_at,
                    )
                )
        return Created(task=task)

    async def _take_turn(self, conn: AsyncConnection, user_id: str) -> None:
        """One user's checked writes take turns, so two concurrent requests with the same
        Idempotency-Key, or at the edge of a quota, see each other. SQLite's single
        writer already serialises every write; PostgreSQL takes a transaction lock."""
        if self._engine.dialect.name == "postgresql":
            lock = func.pg_advisory_xact_lock(func.hashtext("vidgate:user:" + user_id))
            await conn.execute(select(lock))

    async def _claimed(
        self, conn: AsyncConnection, user_id: str, claim: IdempotencyClaim, now: datetime
    ) -> Task | None:
        """The task an unexpired use of the same key created, or None (the key is free)."""
        where = (idempotency_keys.c.user_id == user_id, idempotency_keys.c.key == claim.key)
        row = (await conn.execute(select(idempotency_keys).where(*where))).first()
        if row is None:
            return None
        m = row._mapping
        if m["expires_at"] > now:
            if m["fingerprint"] != claim.fingerprint:
                raise IdempotencyMismatch(m["video_id"])
            found = (
                await conn.execute(select(tasks).where(tasks.c.video_id == m["video_id"]))
            ).first()
            if found is not None:
                return (await _with_attempts(conn, [found]))[0]
        await conn.execute(delete(idempotency_keys).where(*where))  # expired: reuse it
        return None

    async def _enforce(
        self, conn: AsyncConnection, user_id: str, quota: Quota, now: datetime
    ) -> None:
        active = 0
        if quota.max_active is not None:
            active = (
                await conn.execute(
                    select(func.count())
                    .select_from(tasks)
                    .where(tasks.c.user_id == user_id, tasks.c.status.in_(_ACTIVE_WORDS))
                )
            ).scalar_one()
        newest: list[datetime] = []
        if quota.max_per_day is not None:
            newest = list(
                (
                    await conn.execute(
                        select(tasks.c.created_at)
                        .where(tasks.c.user_id == user_id, tasks.c.created_at > now - DAY)
                        .order_by(tasks.c.created_at.desc())
                        .limit(quota.max_per_day)
                    )
                ).scalars()
            )
        enforce_quota(quota, active=active, newest=newest, now=now)

    async def purge_idempotency_keys(self, now: datetime) -> int:
        async with self._writing() as conn:
            result = await conn.execute(
                delete(idempotency_keys).where(idempotency_keys.c.expires_at <= now)
            )
        return int(result.rowcount or 0)

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

    # -- API keys ------------------------------------------------------------------------

    async def add_api_key(self, key: ApiKey) -> None:
        async with self._writing() as conn:
            await conn.execute(insert(api_keys).values(**dataclasses.asdict(key)))

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        async with self._reading() as conn:
            row = (await conn.execute(select(api_keys).where(api_keys.c.key_id == key_id))).first()
        return None if row is None else ApiKey(**row._mapping)

    async def list_api_keys(self, user_id: str | None = None) -> list[ApiKey]:
        query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.key_id)
        if user_id is not None:
            query = query.where(api_keys.c.user_id == user_id)
        async with self._reading() as conn:
            rows = (await conn.execute(query)).all()
        return [ApiKey(**row._mapping) for row in rows]

    async def revoke_api_key(self, key_id: str, *, at: datetime) -> bool:
        async with self._writing() as conn:
            found = (
                await conn.execute(select(api_keys.c.revoked_at).where(api_keys.c.key_id == key_id))
            ).first()
            if found is None:
                return False
            if found[0] is None:
                await conn.execute(
                    update(api_keys).where(api_keys.c.key_id == key_id).values(revoked_at=at)
                )
        return True

    async def write(self, change: Write) -> Written | None:
        before, after = change.before, change.after
        conditions = [tasks.c.video_id == before.video_id, tasks.c.version == before.version]
        if change.fence is not None:
            conditions.append(tasks.c.lease_owner == change.fence)
        values = _task_values(after)
        values["version"] = before.version + 1
        del values["video_id"]
        stored_event: TaskEvent | None = None
        async with self._writing() as conn:
            if change.quota is not None:
                await self._take_turn(conn, before.user_id)
                await self._enforce(conn, before.user_id, change.quota, after.updated_at)
            result = await conn.execute(update(tasks).where(*conditions).values(**values))
            if result.rowcount != 1:
                await conn.rollback()
                return None
            if change.insert_attempt is not None:
                await conn.execute(
                    insert(attempts).values(**_attempt_values(change.insert_attempt))
                )
            if change.update_attempt is not None:
                a = change.update_attempt
                await conn.execute(
                    update(attempts)
                    .where(attempts.c.video_id == a.video_id, attempts.c.number == a.number)
                    .values(**_attempt_values(a))
                )
            if change.event is not None:
                kind, body = change.event
                stamp = int(time.time() * 1000)
                event_id = (
                    await conn.execute(
                        insert(task_events)
                        .values(
                            video_id=before.video_id,
                            type=str(kind),
                            payload=body,
                            timestamp_ms=stamp,
                            task_version=before.version + 1,
                        )
                        .returning(task_events.c.id)
                    )
                ).scalar_one()
                stored_event = TaskEvent(
                    id=event_id,
                    video_id=before.video_id,
                    type=kind,
                    payload=body,
                    timestamp_ms=stamp,
                    task_version=before.version + 1,
                )
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


def _attempt(row: Row[Any]) -> Attempt:
    m = row._mapping
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
    found = (await conn.execute(select(attempts).where(attempts.c.video_id.in_(ids)))).all()
    by_task: dict[str, list[Attempt]] = {}
    for attempt_row in found:
        item = _attempt(attempt_row)
        by_task.setdefault(item.video_id, []).append(item)
    return [_task(row, by_task.get(row._mapping["video_id"], [])) for row in rows]
