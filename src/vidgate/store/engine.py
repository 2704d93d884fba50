"""Engines for SqlTaskStore: database URLs, connection pools, SQLite's tuning, and the
connection scopes every query of the store runs in."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event, select
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from vidgate.store.base import StoreUnavailable
from vidgate.store.group import GroupCommit

T = TypeVar("T")


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
# Write transactions open at once per process on PostgreSQL (vidgate.store.group).
GROUP_LANES = 4


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
        options = conn.get_execution_options()
        if options.get("vidgate_single", False):
            return  # one statement in autocommit mode: a transaction by itself
        writes = options.get("vidgate_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")


class SqlConnections:
    """An engine and the two ways the store uses it: reading, and writing in turns.

    The base of ``SqlTaskStore`` and of its query mixins.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = engine.execution_options(vidgate_write=True)
        self._reader = engine
        # A read of one statement needs no transaction around it: no BEGIN and no
        # ROLLBACK, two round trips (and on SQLite two thread hops) fewer.
        # (SQLite: no BEGIN is sent, see _tune_sqlite; PostgreSQL: autocommit.)
        self._one_reader = engine.execution_options(vidgate_single=True)
        if engine.dialect.name == "postgresql":
            # A read that takes several statements (a task, then its attempts) sees one
            # snapshot, as it does in SQLite's WAL mode; read-only transactions at this
            # level never fail to serialize. Writes keep READ COMMITTED: the claim's
            # SKIP LOCKED and the compare-and-set UPDATEs rely on its row-lock rechecks.
            self._reader = engine.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
            self._one_reader = engine.execution_options(isolation_level="AUTOCOMMIT")
        # SQLite has one writer at a time. Writers of this process queue here instead of
        # racing for the file lock, whose busy handler sleeps in fixed steps of up to
        # 100 ms; other processes are still kept out by the lock and busy_timeout.
        self._write_turn: asyncio.Lock | None = (
            asyncio.Lock() if engine.dialect.name == "sqlite" else None
        )
        # The hot writes (creates, a task's transitions) queued behind that turn commit
        # together (vidgate.store.group). PostgreSQL has writers side by side: a few
        # transactions at once, each taking what queued meanwhile.
        sqlite = engine.dialect.name == "sqlite"
        self._group = GroupCommit(self._writing, lanes=1 if sqlite else GROUP_LANES)

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    # Database errors stop here: callers see StoreUnavailable, never SQLAlchemy.
    @contextlib.asynccontextmanager
    async def _reading(self, *, one_statement: bool = False) -> AsyncIterator[AsyncConnection]:
        """A connection to read with: in one snapshot, or (``one_statement``) outside any
        transaction for a read that is a single statement, atomic by itself."""
        try:
            async with (self._one_reader if one_statement else self._reader).connect() as conn:
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

    async def _write_together(
        self, work: Callable[[AsyncConnection], Awaitable[T]], *, takes_turns: bool = False
    ) -> T:
        """``work`` in a write transaction shared with other writes queued beside it; it
        returns once that transaction committed. ``work`` must leave the transaction to
        its caller (no commit, no rollback). A write that ``takes_turns`` (a user's turn
        lock, for idempotency keys and quotas) has a transaction of its own on
        PostgreSQL: two batches taking two users' turns in opposite orders would deadlock.
        """
        if takes_turns and self._write_turn is None:
            async with self._writing() as conn:
                return await work(conn)
        return await self._group.run(work)

    async def close(self) -> None:
        await self._group.close()
        await self._engine.dispose()

    async def ping(self) -> None:
        async with self._reading() as conn:
            await conn.execute(select(1))
