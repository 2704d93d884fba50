"""Alembic migrations on SQLite and PostgreSQL: from empty to head and back, idempotent,
matching ``vidgate.store.schema``, through ``vidgate migrate``, and safe when several
processes migrate one database on start at the same time."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.databases import DATABASES, Kind, fresh_database
from tests.support import VIDGATE, clean_env
from vidgate.domain import ids
from vidgate.domain.models import Task
from vidgate.store import migrate
from vidgate.store.schema import metadata
from vidgate.store.sql import SqlTaskStore, make_engine

TABLES = {"tasks", "attempts", "task_events", "api_keys", "idempotency_keys"}
TABLES |= {"webhook_endpoints", "webhook_task_secrets", "webhook_deliveries", "webhook_cursors"}
INDEXES = {
    "tasks": {"ix_tasks_due", "ix_tasks_user_created"},
    "task_events": {"ix_task_events_video"},
}


@pytest.fixture(params=DATABASES)
def kind(request: pytest.FixtureRequest) -> Kind:
    value: Kind = request.param
    return value


@pytest.fixture
def database_url(kind: Kind, tmp_path: Path) -> Iterator[str]:
    """An empty database: a new SQLite file or a new PostgreSQL database."""
    with fresh_database(kind, tmp_path) as url:
        yield url


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    made = make_engine(database_url)
    yield made
    await made.dispose()


async def tables_of(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))


async def indexes_of(engine: AsyncEngine, table: str) -> set[str]:
    async with engine.connect() as conn:
        found = await conn.run_sync(lambda sync: inspect(sync).get_indexes(table))
    return {str(index["name"]) for index in found}


def run_vidgate(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [VIDGATE, "migrate", *args],
        env=clean_env(VIDGATE_DATABASE_URL=url),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_upgrade_from_empty_to_head_and_down_to_base(engine: AsyncEngine) -> None:
    assert await tables_of(engine) == set()
    assert await migrate.current(engine) is None

    await migrate.upgrade(engine)

    assert await tables_of(engine) == TABLES | {"alembic_version"}
    for table, names in INDEXES.items():
        assert names <= await indexes_of(engine, table)
    assert await migrate.current(engine) == migrate.head()

    await migrate.downgrade(engine)

    assert await tables_of(engine) & TABLES == set()
    assert await migrate.current(engine) is None


async def test_upgrade_is_idempotent_and_keeps_the_data(database_url: str) -> None:
    store = await SqlTaskStore.open(database_url)
    try:
        video_id = await _one_task(store)
        for _ in range(2):
            await migrate.upgrade(store.engine)
        assert await migrate.current(store.engine) == migrate.head()
        assert await store.get(video_id) is not None
    finally:
        await store.close()
    # Opening again (migrate-on-start) is the same no-op.
    again = await SqlTaskStore.open(database_url)
    try:
        assert await again.get(video_id) is not None
    finally:
        await again.close()


async def test_migrations_build_exactly_the_schema_the_store_uses(engine: AsyncEngine) -> None:
    await migrate.upgrade(engine)

    def differences(sync: Connection) -> list[Any]:
        context = MigrationContext.configure(sync, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    async with engine.connect() as conn:
        assert await conn.run_sync(differences) == []


async def test_downgrade_then_upgrade_again(engine: AsyncEngine) -> None:
    await migrate.upgrade(engine)
    await migrate.downgrade(engine)
    await migrate.upgrade(engine)

    assert await tables_of(engine) >= TABLES
    assert await migrate.current(engine) == migrate.head()


def test_the_vidgate_migrate_command_upgrades_and_downgrades(database_url: str) -> None:
    up = run_vidgate(database_url)
    assert up.returncode == 0, up.stderr
    assert "database migrated" in up.stdout
    assert asyncio.run(_tables(database_url)) >= TABLES

    down = run_vidgate(database_url, "--down")
    assert down.returncode == 0, down.stderr
    assert asyncio.run(_tables(database_url)) & TABLES == set()


def test_three_processes_migrating_at_once_all_succeed(database_url: str) -> None:
    processes = [
        subprocess.Popen(
            [VIDGATE, "migrate"],
            env=clean_env(VIDGATE_DATABASE_URL=database_url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = [(p.wait(timeout=60), *p.communicate()) for p in processes]

    for code, _out, err in results:
        assert code == 0, err
    assert asyncio.run(_tables(database_url)) >= TABLES


async def test_stores_opening_at_once_migrate_once(database_url: str) -> None:
    # Migrate-on-start of many processes, squeezed together: each store has its own
    # engine (its own connections), as separate processes would.
    stores = await asyncio.gather(*(SqlTaskStore.open(database_url) for _ in range(5)))
    try:
        for store in stores:
            assert await migrate.current(store.engine) == migrate.head()
        video_id = await _one_task(stores[0])
        assert await stores[-1].get(video_id) is not None
    finally:
        await asyncio.gather(*(store.close() for store in stores))


async def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return await tables_of(engine)
    finally:
        await engine.dispose()


async def _one_task(store: SqlTaskStore) -> str:
    now = datetime.now(UTC)
    task = Task(
        video_id=ids.new_video_id(),
        user_id="alice",
        prompt="a fox",
        model="sora-2",
        seconds="4",
        size="720x1280",
        created_at=now,
        updated_at=now,
        deadline_at=now,
    )
    await store.create(task)
    return task.video_id
