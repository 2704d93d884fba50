"""Event retention: the store's ``oldest_event_id`` and ``purge_events`` (the in-memory fake,
SQLite and PostgreSQL alike), the engine's ``EventRetention`` loop, and the replay rule."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from tests.unit import test_store_contract as contract
from vidgate.domain.events import EventType, TaskEvent, replay_is_exact
from vidgate.engine.retention import EventRetention
from vidgate.store.base import TaskStore, Write
from vidgate.testing import MemoryTaskStore

DAY_MS = 86_400_000

# The store contract's fixtures: each test runs on the fake, SQLite and PostgreSQL.
store = contract.store
postgres_url = contract.postgres_url
created = contract.created


async def write_events(store: TaskStore, count: int) -> list[TaskEvent]:
    task = await created(store)
    stored = []
    for n in range(count):
        written = await store.write(
            Write(before=task, after=task, event=(EventType.PROGRESS, {"n": n}))
        )
        assert written is not None and written.event is not None
        task = written.task
        stored.append(written.event)
    return stored


async def test_oldest_event_id_is_none_without_events(store: TaskStore) -> None:
    assert await store.oldest_event_id() is None
    assert await store.purge_events(older_than_ms=time.time_ns(), limit=100) == 0


async def test_purge_deletes_a_bounded_prefix_and_keeps_the_newest(store: TaskStore) -> None:
    stored = await write_events(store, 5)
    future = stored[-1].timestamp_ms + DAY_MS
    assert await store.oldest_event_id() == stored[0].id

    assert await store.purge_events(older_than_ms=future, limit=2) == 2
    assert await store.oldest_event_id() == stored[2].id
    assert await store.events_after(stored[0].video_id, 0) == stored[2:]

    # Everything is old enough, but the newest event stays so ids never restart.
    assert await store.purge_events(older_than_ms=future, limit=100) == 2
    assert await store.oldest_event_id() == stored[4].id
    assert await store.purge_events(older_than_ms=future, limit=100) == 0

    # New ids go on from there.
    more = await write_events(store, 1)
    assert more[0].id > stored[-1].id


async def test_purge_keeps_events_newer_than_the_cutoff(store: TaskStore) -> None:
    stored = await write_events(store, 3)
    assert await store.purge_events(older_than_ms=stored[0].timestamp_ms, limit=100) == 0
    assert await store.purge_events(older_than_ms=stored[0].timestamp_ms - DAY_MS, limit=9) == 0
    assert await store.oldest_event_id() == stored[0].id
    assert await store.purge_events(older_than_ms=stored[-1].timestamp_ms, limit=0) == 0


def test_replay_is_exact_iff_nothing_after_it_was_deleted() -> None:
    assert replay_is_exact(0, None)
    assert replay_is_exact(0, 1)
    assert replay_is_exact(4, 5)
    assert replay_is_exact(9, 5)
    assert not replay_is_exact(3, 5)
    assert not replay_is_exact(0, 2)


# -- the engine's loop ---------------------------------------------------------------------------


class AgedStore(MemoryTaskStore):
    """Events written ``age_ms`` in the past; counts purge calls."""

    def __init__(self, age_ms: int) -> None:
        super().__init__()
        self.age_ms = age_ms
        self.purges: list[tuple[int, int]] = []

    async def purge_events(self, *, older_than_ms: int, limit: int) -> int:
        self.purges.append((older_than_ms, limit))
        self._events = [
            dataclasses.replace(e, timestamp_ms=e.timestamp_ms - self.age_ms) for e in self._events
        ]
        self.age_ms = 0
        return await super().purge_events(older_than_ms=older_than_ms, limit=limit)


async def test_the_loop_deletes_old_events_in_batches_then_waits() -> None:
    aged = AgedStore(age_ms=8 * DAY_MS)
    stored = await write_events(aged, 7)
    retention = EventRetention(aged, days=7, batch=3, interval_seconds=0.05)

    assert await retention.tick() == 3
    assert await retention.tick() == 3
    assert await retention.tick() == 0  # the newest is kept
    assert await aged.oldest_event_id() == stored[-1].id
    cutoff, limit = aged.purges[0]
    assert limit == 3
    assert abs(cutoff - (time.time() * 1000 - 7 * DAY_MS)) < 60_000


async def test_the_loop_runs_until_stopped_and_survives_a_failing_store(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Failing(MemoryTaskStore):
        calls = 0

        async def purge_events(self, *, older_than_ms: int, limit: int) -> int:
            self.calls += 1
            raise RuntimeError("database down")

    failing = Failing()
    retention = EventRetention(failing, days=7, batch=10, interval_seconds=0.01)
    runner = asyncio.create_task(retention.run())
    await asyncio.sleep(0.1)
    retention.stop()
    await asyncio.wait_for(runner, 2)
    assert failing.calls >= 2
    assert "event retention" in caplog.text


async def test_a_full_batch_is_followed_at_once_by_the_next() -> None:
    aged = AgedStore(age_ms=8 * DAY_MS)
    await write_events(aged, 10)
    retention = EventRetention(aged, days=7, batch=2, interval_seconds=60, busy_pause_seconds=0.01)
    runner = asyncio.create_task(retention.run())
    for _ in range(100):
        if await aged.oldest_event_id() == aged._events[-1].id:
            break
        await asyncio.sleep(0.01)
    retention.stop()
    await asyncio.wait_for(runner, 2)
    assert len(aged._events) == 1  # not one batch per minute: batches follow each other
