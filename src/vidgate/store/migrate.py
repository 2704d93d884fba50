"""Alembic migrations, run programmatically (``vidgate migrate``, or on start).

Several api and worker processes may start at once against one database, each
migrating on start. Every run therefore holds a database-wide lock for its whole
transaction, so one process applies the migrations and the rest, let in after it
commits, find the schema at head and do nothing:

- PostgreSQL: ``pg_advisory_xact_lock`` on a fixed key, taken as the transaction's
  first statement and released by its commit or rollback. DDL is transactional there,
  so a failed upgrade leaves the previous schema.
- SQLite: ``BEGIN IMMEDIATE`` (the store's write transaction), which waits for other
  writers through the busy timeout instead of failing on a lock upgrade.
"""

from __future__ import annotations

from collections.abc import Callable

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

SCRIPT_LOCATION = "vidgate.store:migrations"

# pg_advisory_xact_lock key for schema changes: "vidgate" in ASCII, well inside int64.
ADVISORY_LOCK_KEY = int.from_bytes(b"vidgate", "big")


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["connection"] = connection
    return config


async def _locked(engine: AsyncEngine, step: Callable[[Config], None]) -> None:
    # vidgate_write makes the SQLite adapter begin with BEGIN IMMEDIATE (sql._tune_sqlite).
    async with engine.execution_options(vidgate_write=True).begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text(f"SELECT pg_advisory_xact_lock({ADVISORY_LOCK_KEY})"))
        await conn.run_sync(lambda sync: step(_config(sync)))


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    await _locked(engine, lambda config: command.upgrade(config, revision))


async def downgrade(engine: AsyncEngine, revision: str = "base") -> None:
    await _locked(engine, lambda config: command.downgrade(config, revision))


def head() -> str | None:
    """The newest revision this version of vidgate knows."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    return ScriptDirectory.from_config(config).get_current_head()


async def current(engine: AsyncEngine) -> str | None:
    """The revision the database is at (None: never migrated, or migrated down to base)."""
    async with engine.connect() as conn:
        return await conn.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )
