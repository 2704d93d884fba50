"""Fresh, throwaway databases for tests: SQLite files and PostgreSQL databases.

Every test that touches a database gets its own, so tests never see each other's rows.

    from tests.databases import DATABASES, fresh_database

    @pytest.fixture(params=DATABASES)
    def database_url(request, tmp_path):
        with fresh_database(request.param, tmp_path) as url:
            yield url          # sqlite:///... or postgresql://postgres@127.0.0.1:5432/vidgate_t_...

PostgreSQL is the server named by ``VIDGATE_TEST_POSTGRES_URL`` (default: this machine's
``postgresql://postgres@127.0.0.1:5432/test``); each fresh database is created on it with
``CREATE DATABASE vidgate_t_<random>`` and dropped with ``WITH (FORCE)`` afterwards, so
connections a test leaves open (a killed process, an unclosed store) do not keep it.

When that server cannot be reached, PostgreSQL tests are skipped with the reason on a
laptop and fail when ``CI=true`` (``require_postgres``): CI must not go green by skipping.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import secrets
import threading
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

import asyncpg
import pytest
from sqlalchemy.engine import make_url

Kind = Literal["sqlite", "postgresql"]
DATABASES: tuple[Kind, ...] = ("sqlite", "postgresql")

ADMIN_URL = os.environ.get("VIDGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
PREFIX = "vidgate_t_"
_PROBE_TIMEOUT = 3.0

T = TypeVar("T")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def _shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def url_of(name: str) -> str:
    """The URL of database ``name`` on the test server, as ``VIDGATE_DATABASE_URL`` takes it."""
    return make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)


async def _admin() -> asyncpg.Connection:
    return await asyncpg.connect(ADMIN_URL, timeout=_PROBE_TIMEOUT)


@functools.cache
def _probe() -> str | None:
    """None when the server answers; otherwise why not (asked once per test process)."""

    async def probe() -> None:
        conn = await _admin()
        try:
            await conn.fetchval("SELECT 1")
        finally:
            await conn.close()

    try:
        _run(probe())
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return f"{type(exc).__name__}: {exc}".strip()
    return None


def postgres_available() -> bool:
    return _probe() is None


def require_postgres() -> None:
    """Skip the calling test when PostgreSQL is unreachable; fail it instead when CI=true."""
    why = _probe()
    if why is None:
        return
    reason = f"PostgreSQL unreachable at {_shown(ADMIN_URL)} ({why})"
    if in_ci():
        pytest.fail(f"{reason}; CI=true requires it", pytrace=False)
    pytest.skip(f"{reason}; set VIDGATE_TEST_POSTGRES_URL or start PostgreSQL")


async def create_postgres_database() -> str:
    """Create an empty database on the test server; returns its name.

    The name carries its creation time, so the first call of a test process also drops
    test databases left over from runs killed hours ago (``STALE_AFTER``).
    """
    name = f"{PREFIX}{int(time.time())}_{secrets.token_hex(5)}"
    conn = await _admin()
    try:
        global _swept
        if not _swept:
            _swept = True
            await _drop_stale(conn)
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


STALE_AFTER = 6 * 3600.0
_swept = False


async def _drop_stale(conn: asyncpg.Connection) -> None:
    rows = await conn.fetch(
        "SELECT datname FROM pg_database WHERE datname LIKE $1", PREFIX.replace("_", r"\_") + "%"
    )
    for row in rows:
        stamp = row["datname"].removeprefix(PREFIX).split("_", 1)[0]
        if stamp.isdigit() and time.time() - int(stamp) > STALE_AFTER:
            # Without FORCE: a database somebody still uses stays.
            with contextlib.suppress(asyncpg.PostgresError):
                await conn.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}"')


async def drop_postgres_database(name: str) -> None:
    if not name.startswith(PREFIX):
        raise ValueError(f"refusing to drop {name!r}: not a test database")
    conn = await _admin()
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def fresh_postgres() -> AsyncIterator[str]:
    """An empty PostgreSQL database for one test (async); yields its ``postgresql://`` URL.

    Calls ``require_postgres`` first, so it skips or fails like any PostgreSQL test.
    """
    require_postgres()
    name = await create_postgres_database()
    try:
        yield url_of(name)
    finally:
        await drop_postgres_database(name)


@contextlib.contextmanager
def fresh_postgres_sync() -> Iterator[str]:
    """``fresh_postgres`` for synchronous fixtures (runs its SQL on a private event loop).

    Fine in session- or module-scoped fixtures too, with ``empty_postgres`` per test.
    """
    require_postgres()
    name = _run(create_postgres_database())
    try:
        yield url_of(name)
    finally:
        _run(drop_postgres_database(name))


async def empty_postgres(url: str) -> None:
    """Delete every row of every table but ``alembic_version``, and restart the sequences.

    What a fresh, migrated database looks like, in milliseconds instead of the tenths of
    a second ``CREATE DATABASE`` takes: for suites that keep one database per process
    (``fresh_postgres_sync`` in a session fixture) and empty it before each test.
    """
    conn = await asyncpg.connect(url, timeout=_PROBE_TIMEOUT)
    try:
        tables = await conn.fetch(
            "SELECT quote_ident(tablename) AS name FROM pg_tables"
            " WHERE schemaname = current_schema() AND tablename <> 'alembic_version'"
        )
        if tables:
            names = ", ".join(row["name"] for row in tables)
            await conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()


def new_sqlite_url(directory: Path) -> str:
    """A ``sqlite:///`` URL of a database file not yet created, in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{directory / f'vidgate-{secrets.token_hex(4)}.db'}"


@contextlib.contextmanager
def fresh_sqlite(directory: Path) -> Iterator[str]:
    """``new_sqlite_url`` as a context manager, the twin of ``fresh_postgres_sync``.

    The file is left for the test's ``tmp_path`` to clean up (and for a post-mortem).
    """
    yield new_sqlite_url(directory)


@contextlib.contextmanager
def fresh_database(kind: Kind, directory: Path) -> Iterator[str]:
    """A clean database of ``kind`` for one test; usable from sync and async code alike."""
    if kind == "sqlite":
        with fresh_sqlite(directory) as url:
            yield url
    elif kind == "postgresql":
        with fresh_postgres_sync() as url:
            yield url
    else:
        raise ValueError(f"unknown database kind {kind!r}")


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to the end on a fresh loop in a helper thread.

    A thread, because the caller may itself be running inside an event loop (an async
    test using a sync fixture helper), where ``asyncio.run`` is refused.
    """
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coroutine))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target, name="tests.databases")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def query(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` (placeholders ``$1``, ``$2``...) on a test database of either kind."""
    if url.startswith("sqlite"):
        import re
        import sqlite3

        path = url.split(":///", 1)[1]
        with contextlib.closing(sqlite3.connect(path)) as conn:
            return [tuple(row) for row in conn.execute(re.sub(r"\$\d+", "?", sql), args)]

    async def fetch() -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(url)
        try:
            return [tuple(row) for row in await conn.fetch(sql, *args)]
        finally:
            await conn.close()

    return _run(fetch())


def stored_event_ids(url: str, video_id: str) -> list[int]:
    """The ids of a task's rows in ``task_events``, oldest first (the source of truth a
    client's resume is checked against)."""
    rows = query(url, "SELECT id FROM task_events WHERE video_id = $1 ORDER BY id", video_id)
    return [int(row[0]) for row in rows]
