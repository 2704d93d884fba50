"""``WebhookStore`` (vidgate.store.webhooks) on SQLAlchemy: SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, exists, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Select
from sqlalchemy.sql.dml import Insert

from vidgate.store.engine import SqlConnections
from vidgate.store.rows import _event, read_event_ids
from vidgate.store.schema import (
    task_events,
    tasks,
    webhook_cursors,
    webhook_deliveries,
    webhook_endpoints,
    webhook_task_secrets,
)
from vidgate.store.webhooks import (
    CANCELLED,
    DISPATCH_CURSOR,
    PENDING,
    WEBHOOK_URL_KEY,
    Claimed,
    Delivery,
    Dispatch,
    DispatchEvent,
    Endpoint,
    Outcome,
    TaskSecret,
    signing_secrets,
)


def _endpoint(m: Any) -> Endpoint:
    types = m["event_types"]
    return Endpoint(
        id=m["id"],
        user_id=m["user_id"],
        url=m["url"],
        event_types=None if types is None else tuple(types),
        secret=m["secret"],
        previous_secret=m["previous_secret"],
        previous_until=m["previous_until"],
        created_at=m["created_at"],
        disabled_at=m["disabled_at"],
        disabled_reason=m["disabled_reason"],
    )


def _task_secret(m: Any) -> TaskSecret:
    return TaskSecret(
        user_id=m["user_id"],
        secret=m["secret"],
        previous_secret=m["previous_secret"],
        previous_until=m["previous_until"],
        created_at=m["created_at"],
    )


_DELIVERY_FIELDS = [name for name in Delivery.__dataclass_fields__]


def _dispatch_events() -> Select[Any]:
    """Events with their task's owner and metadata (where a task's own ``webhookUrl`` is)."""
    return select(task_events, tasks.c.user_id, tasks.c.metadata).select_from(
        task_events.join(tasks, tasks.c.video_id == task_events.c.video_id)
    )


def _delivery(m: Any) -> Delivery:
    return Delivery(**{name: m[name] for name in _DELIVERY_FIELDS})


class SqlWebhookStore(SqlConnections):
    """``WebhookStore`` on the same database (and engine) as the task store."""

    def _insert_ignoring(self, table: Any) -> Insert:
        if self._engine.dialect.name == "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing()
        return sqlite.insert(table).on_conflict_do_nothing()

    # -- endpoints and secrets ---------------------------------------------------------

    async def add_endpoint(self, endpoint: Endpoint) -> None:
        values = {
            "id": endpoint.id,
            "user_id": endpoint.user_id,
            "url": endpoint.url,
            "event_types": None if endpoint.event_types is None else list(endpoint.event_types),
            "secret": endpoint.secret,
            "created_at": endpoint.created_at,
        }
        async with self._writing() as conn:
            await conn.execute(insert(webhook_endpoints).values(**values))

    async def get_endpoint(self, endpoint_id: str) -> Endpoint | None:
        query = select(webhook_endpoints).where(
            webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.deleted_at.is_(None)
        )
        async with self._reading(one_statement=True) as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _endpoint(row._mapping)

    async def list_endpoints(self, user_id: str) -> list[Endpoint]:
        query = (
            select(webhook_endpoints)
            .where(webhook_endpoints.c.user_id == user_id, webhook_endpoints.c.deleted_at.is_(None))
            .order_by(webhook_endpoints.c.created_at, webhook_endpoints.c.id)
        )
        async with self._reading(one_statement=True) as conn:
            rows = (await conn.execute(query)).all()
        return [_endpoint(row._mapping) for row in rows]

    async def delete_endpoint(self, endpoint_id: str, *, at: datetime) -> None:
        async with self._writing() as conn:
            await conn.execute(
                update(webhook_endpoints)
                .where(webhook_endpoints.c.id == endpoint_id)
                .values(deleted_at=at)
            )
            await _cancel_pending(conn, webhook_deliveries.c.target == endpoint_id, at)

    async def rotate_endpoint(
        self, endpoint_id: str, *, secret: str, previous_until: datetime
    ) -> None:
        async with self._writing() as conn:
            await conn.execute(
                update(webhook_endpoints)
                .where(webhook_endpoints.c.id == endpoint_id)
                .values(
                    previous_secret=webhook_endpoints.c.secret,
                    previous_until=previous_until,
                    secret=secret,
                )
            )

    async def task_secret(self, user_id: str, *, new: TaskSecret) -> TaskSecret:
        query = select(webhook_task_secrets).where(webhook_task_secrets.c.user_id == user_id)
        async with self._writing() as conn:
            await conn.execute(
                self._insert_ignoring(webhook_task_secrets).values(
                    user_id=user_id, secret=new.secret, created_at=new.created_at
                )
            )
            row = (await conn.execute(query)).one()
        return _task_secret(row._mapping)

    async def rotate_task_secret(self, new: TaskSecret, *, previous_until: datetime) -> None:
        async with self._writing() as conn:
            await conn.execute(
                update(webhook_task_secrets)
                .where(webhook_task_secrets.c.user_id == new.user_id)
                .values(
                    previous_secret=webhook_task_secrets.c.secret,
                    previous_until=previous_until,
                    secret=new.secret,
                )
            )

    # -- the dispatcher ----------------------------------------------------------------

    async def cursor(self) -> int:
        query = select(webhook_cursors.c.event_id).where(webhook_cursors.c.name == DISPATCH_CURSOR)
        async with self._reading(one_statement=True) as conn:
            value = (await conn.execute(query)).scalar()
        return int(value or 0)

    async def events_after(self, after_id: int, limit: int) -> list[DispatchEvent]:
        query = (
            _dispatch_events()
            .where(task_events.c.id > after_id)
            .order_by(task_events.c.id)
            .limit(limit)
        )
        return await self._dispatch_events(query)

    async def event_ids_after(self, after_id: int, limit: int) -> list[int]:
        async with self._reading(one_statement=True) as conn:
            return await read_event_ids(conn, after_id, limit)

    async def events_by_ids(self, ids: Sequence[int]) -> list[DispatchEvent]:
        if not ids:
            return []
        query = _dispatch_events().where(task_events.c.id.in_(list(ids))).order_by(task_events.c.id)
        return await self._dispatch_events(query)

    async def _dispatch_events(self, query: Select[Any]) -> list[DispatchEvent]:
        async with self._reading(one_statement=True) as conn:
            rows = (await conn.execute(query)).all()
        found = []
        for row in rows:
            url = (row._mapping["metadata"] or {}).get(WEBHOOK_URL_KEY)
            found.append(
                DispatchEvent(
                    event=_event(row),
                    user_id=row._mapping["user_id"],
                    webhook_url=url if isinstance(url, str) else None,
                )
            )
        return found

    async def active_endpoints(self, user_ids: Sequence[str]) -> list[Endpoint]:
        if not user_ids:
            return []
        query = select(webhook_endpoints).where(
            webhook_endpoints.c.user_id.in_(list(user_ids)),
            webhook_endpoints.c.deleted_at.is_(None),
            webhook_endpoints.c.disabled_at.is_(None),
        )
        async with self._reading(one_statement=True) as conn:
            rows = (await conn.execute(query)).all()
        return [_endpoint(row._mapping) for row in rows]

    async def record(self, dispatch: Dispatch) -> int:
        # One order for every process: two dispatchers inserting the same rows at once wait
        # for each other instead of deadlocking.
        ordered = sorted(dispatch.deliveries, key=lambda d: (d.event_id, d.target))
        rows = [{name: getattr(d, name) for name in _DELIVERY_FIELDS} for d in ordered]
        async with self._writing() as conn:
            for secret in sorted(dispatch.task_secrets, key=lambda t: t.user_id):
                await conn.execute(
                    self._insert_ignoring(webhook_task_secrets).values(
                        user_id=secret.user_id, secret=secret.secret, created_at=secret.created_at
                    )
                )
            added = 0
            # In event order, one statement each: rowcount tells which were new.
            for row in rows:
                result = await conn.execute(self._insert_ignoring(webhook_deliveries).values(row))
                added += max(result.rowcount, 0)
            await conn.execute(
                self._insert_ignoring(webhook_cursors).values(name=DISPATCH_CURSOR, event_id=0)
            )
            await conn.execute(
                update(webhook_cursors)
                .where(
                    webhook_cursors.c.name == DISPATCH_CURSOR,
                    webhook_cursors.c.event_id < dispatch.cursor,
                )
                .values(event_id=dispatch.cursor)
            )
        return added

    # -- the sender --------------------------------------------------------------------

    async def claim(
        self, *, owner: str, now: datetime, until: datetime, limit: int
    ) -> list[Claimed]:
        d = webhook_deliveries
        earlier = webhook_deliveries.alias("earlier")
        blocked = exists().where(
            earlier.c.target == d.c.target,
            earlier.c.video_id == d.c.video_id,
            earlier.c.event_id < d.c.event_id,
            earlier.c.status == PENDING,
        )
        due = (
            select(d.c.id)
            .where(
                d.c.status == PENDING,
                d.c.next_attempt_at <= now,
                or_(d.c.lease_until.is_(None), d.c.lease_until < now),
                ~blocked,
            )
            .order_by(d.c.next_attempt_at)
            .limit(limit)
        )
        lease = {
            "lease_owner": owner,
            "lease_until": until,
            "attempts": d.c.attempts + 1,
            "last_attempt_at": now,
        }
        if self._engine.dialect.name == "postgresql":
            # As the task claim (store.sql): a MATERIALIZED CTE runs the locking SELECT
            # once; concurrent claimers skip the rows another has locked.
            chosen = (
                due.with_for_update(skip_locked=True, of=d)
                .cte("due")
                .prefix_with("MATERIALIZED", dialect="postgresql")
            )
            statement = update(d).where(d.c.id == chosen.c.id)
        else:
            statement = update(d).where(d.c.id.in_(due.scalar_subquery()))
        statement = statement.values(**lease).returning(*d.c)
        async with self._writing() as conn:
            rows = (await conn.execute(statement)).all()
            claimed = [_delivery(row._mapping) for row in rows]
            endpoint_ids = {c.endpoint_id for c in claimed if c.endpoint_id}
            user_ids = {c.user_id for c in claimed if c.endpoint_id is None}
            endpoints = {}
            if endpoint_ids:
                query = select(webhook_endpoints).where(webhook_endpoints.c.id.in_(endpoint_ids))
                for row in (await conn.execute(query)).all():
                    endpoints[row._mapping["id"]] = _endpoint(row._mapping)
            secrets = {}
            if user_ids:
                query = select(webhook_task_secrets).where(
                    webhook_task_secrets.c.user_id.in_(user_ids)
                )
                for row in (await conn.execute(query)).all():
                    secrets[row._mapping["user_id"]] = _task_secret(row._mapping)
            deleted = set()
            if endpoint_ids:
                query = select(webhook_endpoints.c.id).where(
                    webhook_endpoints.c.id.in_(endpoint_ids),
                    or_(
                        webhook_endpoints.c.deleted_at.is_not(None),
                        webhook_endpoints.c.disabled_at.is_not(None),
                    ),
                )
                deleted = {row[0] for row in (await conn.execute(query)).all()}
        out = []
        for delivery in sorted(claimed, key=lambda c: (c.next_attempt_at, c.event_id)):
            keys: tuple[str, ...] = ()
            if delivery.endpoint_id is not None:
                endpoint = endpoints.get(delivery.endpoint_id)
                if endpoint is not None and endpoint.id not in deleted:
                    keys = signing_secrets(
                        endpoint.secret, endpoint.previous_secret, endpoint.previous_until, now
                    )
            else:
                task_secret = secrets.get(delivery.user_id)
                if task_secret is not None:
                    keys = signing_secrets(
                        task_secret.secret,
                        task_secret.previous_secret,
                        task_secret.previous_until,
                        now,
                    )
            out.append(Claimed(delivery=delivery, secrets=keys))
        return out

    async def finish(self, claimed: Claimed, *, owner: str, outcome: Outcome) -> bool:
        d = webhook_deliveries
        delivery = claimed.delivery
        done = outcome.status != PENDING
        values: dict[str, Any] = {
            "status": outcome.status,
            "lease_owner": None,
            "lease_until": None,
            "last_status_code": outcome.status_code,
            "last_error": None if outcome.error is None else outcome.error[:300],
            "finished_at": outcome.at if done else None,
        }
        if outcome.next_attempt_at is not None:
            values["next_attempt_at"] = outcome.next_attempt_at
        statement = (
            update(d)
            .where(
                d.c.id == delivery.id,
                d.c.lease_owner == owner,
                d.c.attempts == delivery.attempts,
                d.c.status == PENDING,
            )
            .values(**values)
        )
        async with self._writing() as conn:
            if (await conn.execute(statement)).rowcount != 1:
                return False
            if outcome.disable_target is not None:
                if delivery.endpoint_id is not None:
                    await conn.execute(
                        update(webhook_endpoints)
                        .where(
                            webhook_endpoints.c.id == delivery.endpoint_id,
                            webhook_endpoints.c.disabled_at.is_(None),
                        )
                        .values(disabled_at=outcome.at, disabled_reason=outcome.disable_target)
                    )
                await _cancel_pending(conn, d.c.target == delivery.target, outcome.at)
        return True

    async def deliveries(self, endpoint_id: str, *, limit: int) -> list[Delivery]:
        d = webhook_deliveries
        query = (
            select(d)
            .where(d.c.target == endpoint_id)
            .order_by(d.c.event_id.desc(), d.c.id)
            .limit(limit)
        )
        async with self._reading(one_statement=True) as conn:
            rows = (await conn.execute(query)).all()
        return [_delivery(row._mapping) for row in rows]

    async def replay(self, endpoint_id: str, delivery_id: str, *, at: datetime) -> Delivery | None:
        d = webhook_deliveries
        mine = and_(d.c.id == delivery_id, d.c.target == endpoint_id)
        async with self._writing() as conn:
            await conn.execute(
                update(d)
                .where(mine, d.c.status != PENDING)
                .values(status=PENDING, next_attempt_at=at, finished_at=None, created_at=at)
            )
            row = (await conn.execute(select(d).where(mine))).first()
        return None if row is None else _delivery(row._mapping)

    async def purge_finished(self, before: datetime, *, limit: int) -> int:
        async with self._writing() as conn:
            return await _purge_finished(conn, before, limit)

    async def next_due(self) -> datetime | None:
        d = webhook_deliveries
        query = select(func.min(d.c.next_attempt_at)).where(d.c.status == PENDING)
        async with self._reading(one_statement=True) as conn:
            value = (await conn.execute(query)).scalar()
        return d.c.next_attempt_at.type.process_result_value(value, self._engine.dialect)  # type: ignore[attr-defined,no-any-return]


async def _purge_finished(conn: AsyncConnection, before: datetime, limit: int) -> int:
    d = webhook_deliveries
    oldest = (
        select(d.c.id)
        .where(d.c.status != PENDING, d.c.finished_at < before)
        .order_by(d.c.finished_at)
        .limit(limit)
    )
    result = await conn.execute(delete(d).where(d.c.id.in_(oldest.scalar_subquery())))
    return max(result.rowcount, 0)


async def _cancel_pending(conn: AsyncConnection, which: Any, at: datetime) -> None:
    d = webhook_deliveries
    await conn.execute(
        update(d)
        .where(which, d.c.status == PENDING)
        .values(status=CANCELLED, finished_at=at, lease_owner=None, lease_until=None)
    )
