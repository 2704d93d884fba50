"""Idempotency keys and quotas of SqlTaskStore: the checks a create or a write makes
before it changes anything."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.domain.models import Task
from vidgate.domain.status import ACTIVE
from vidgate.store.base import DAY, IdempotencyClaim, IdempotencyMismatch, Quota, enforce_quota
from vidgate.store.engine import SqlConnections
from vidgate.store.rows import _with_attempts
from vidgate.store.schema import idempotency_keys, tasks

_ACTIVE_WORDS = sorted(str(status) for status in ACTIVE)


class AdmissionQueries(SqlConnections):
    """Idempotency claims and quota checks, made inside the write that creates or moves a task."""

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
