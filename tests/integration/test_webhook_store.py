"""``SqlWebhookStore`` on SQLite and PostgreSQL: one delivery per (target, event), a task's
order per target, leases that concurrent claimers (two engines, as two processes would have)
never share, outcomes fenced by the lease, a cursor that only moves up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.databases import DATABASES, Kind
from vidgate.store import webhooks as port
from vidgate.store.engine import make_engine
from vidgate.store.sql import SqlTaskStore
from vidgate.store.webhooks_sql import SqlWebhookStore

database_kind = pytest.fixture(params=DATABASES)(lambda request: request.param)


@pytest.fixture
async def stores(database_url: str, database_kind: Kind) -> AsyncIterator[list[SqlWebhookStore]]:
    migrated = await SqlTaskStore.open(database_url)
    other = make_engine(database_url)
    try:
        yield [SqlWebhookStore(migrated.engine), SqlWebhookStore(other)]
    finally:
        await other.dispose()
        await migrated.close()


def delivery(event_id: int, video_id: str, *, target: str = "wh_1") -> port.Delivery:
    now = datetime.now(UTC) - timedelta(seconds=1)
    return port.Delivery(
        id=f"msg_{target}_{event_id}",
        target=target,
        endpoint_id=target,
        user_id="u1",
        video_id=video_id,
        event_id=event_id,
        event_type="taskProgress",
        url="https://hooks.example.com/",
        body="{}",
        next_attempt_at=now,
        created_at=now,
    )


def lease(seconds: float = 30) -> dict[str, datetime]:
    now = datetime.now(UTC)
    return {"now": now, "until": now + timedelta(seconds=seconds)}


async def test_unique_per_target_and_event_and_in_order_per_task(
    stores: list[SqlWebhookStore],
) -> None:
    store = stores[0]
    batch = [delivery(1, "video_a"), delivery(2, "video_a"), delivery(3, "video_b")]
    assert await store.record(port.Dispatch(deliveries=batch, cursor=3)) == 3
    again = [
        port.Delivery(**{**vars(d), "id": d.id + "_again"}) for d in batch
    ]  # the same events read again by another dispatcher
    assert await store.record(port.Dispatch(deliveries=again, cursor=1)) == 0
    assert await store.cursor() == 3  # never moves back
    first = await store.claim(owner="w1", limit=10, **lease())
    assert sorted(c.delivery.event_id for c in first) == [1, 3]
    assert all(c.delivery.attempts == 1 for c in first)
    one = next(c for c in first if c.delivery.event_id == 1)
    done = port.Outcome(status=port.SUCCEEDED, at=datetime.now(UTC), status_code=200)
    assert not await store.finish(one, owner="w2", outcome=done)
    assert await store.finish(one, owner="w1", outcome=done)
    assert not await store.finish(one, owner="w1", outcome=done)  # once
    second = await store.claim(owner="w1", limit=10, **lease())
    assert [c.delivery.event_id for c in second] == [2]
    # A lapsed lease goes to another claimer as the next attempt; the old holder is fenced.
    expired = await store.claim(
        owner="w2",
        limit=10,
        now=datetime.now(UTC) + timedelta(hours=1),
        until=datetime.now(UTC) + timedelta(hours=2),
    )
    assert sorted((c.delivery.event_id, c.delivery.attempts) for c in expired) == [(2, 2), (3, 2)]
    assert not await store.finish(second[0], owner="w1", outcome=done)


async def test_concurrent_claimers_never_take_the_same_delivery(
    stores: list[SqlWebhookStore],
) -> None:
    batch = [delivery(n, f"video_{n}") for n in range(1, 121)]
    await stores[0].record(port.Dispatch(deliveries=batch, cursor=120))

    async def claimer(store: SqlWebhookStore, owner: str) -> list[str]:
        taken: list[str] = []
        while True:
            got = await store.claim(owner=owner, limit=7, **lease())
            if not got:
                return taken
            taken += [c.delivery.id for c in got]

    results = await asyncio.gather(*(claimer(stores[n % 2], f"w{n}") for n in range(6)))
    every = [item for taken in results for item in taken]
    assert len(every) == len(set(every)) == 120


async def test_finished_deliveries_are_purged_in_batches_and_pending_ones_kept(
    stores: list[SqlWebhookStore],
) -> None:
    store = stores[0]
    batch = [delivery(n, f"video_{n}") for n in range(1, 6)]
    await store.record(port.Dispatch(deliveries=batch, cursor=5))
    claimed = await store.claim(owner="w1", limit=3, **lease())
    done = port.Outcome(status=port.SUCCEEDED, at=datetime.now(UTC), status_code=200)
    for item in claimed:
        assert await store.finish(item, owner="w1", outcome=done)
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert await store.purge_finished(datetime.now(UTC) - timedelta(hours=1), limit=10) == 0
    assert await store.purge_finished(later, limit=2) == 2
    assert await store.purge_finished(later, limit=2) == 1
    left = await store.deliveries("wh_1", limit=10)
    assert sorted(d.status for d in left) == ["pending", "pending"]


async def test_an_upgraded_database_dispatches_after_its_older_events(database_url: str) -> None:
    """Events from before webhooks existed can reach no one: not read again on upgrade."""
    from sqlalchemy import insert

    from vidgate.store import migrate
    from vidgate.store.schema import task_events

    engine = make_engine(database_url)
    try:
        await migrate.upgrade(engine, "0003")
        async with engine.begin() as conn:
            for n in range(3):
                await conn.execute(
                    insert(task_events).values(
                        video_id="video_old",
                        type="taskProgress",
                        payload={},
                        timestamp_ms=n,
                        task_version=n,
                    )
                )
        await migrate.upgrade(engine)
        newest = await SqlTaskStore(engine).newest_event_id()
        assert newest is not None
        assert await SqlWebhookStore(engine).cursor() == newest
    finally:
        await engine.dispose()
