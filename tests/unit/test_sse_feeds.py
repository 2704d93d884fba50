"""The SSE streams' reading rules (vidgate.api.feeds), the store reads they use (on the
fake, SQLite and PostgreSQL), the notifier, and the parsing of ``Prefer``."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from tests.factories import sample_task
from tests.unit import test_store_contract as contract
from vidgate.api import feeds, prefer
from vidgate.api.feeds import Snapshot, UserFeed
from vidgate.api.notify import Notifier, owners_in
from vidgate.domain.errors import InvalidHeader
from vidgate.domain.events import EventType, TaskEvent
from vidgate.domain.messages import EVENTS_EXPIRED
from vidgate.domain.models import Task
from vidgate.domain.status import TaskStatus
from vidgate.events.memory import InProcessBus
from vidgate.store.base import TaskStore, Write
from vidgate.testing import MemoryTaskStore

# The store contract's fixtures: each store test runs on the fake, SQLite and PostgreSQL.
store = contract.store
postgres_url = contract.postgres_url


async def push(store: TaskStore, task: Task, n: int, **changes: Any) -> TaskEvent:
    """Write a change to ``task`` with an event; the event stored."""
    latest = await store.get(task.video_id)
    assert latest is not None
    after = dataclasses.replace(latest, **changes)
    written = await store.write(
        Write(before=latest, after=after, event=(EventType.PROGRESS, {"n": n}))
    )
    assert written is not None and written.event is not None
    return written.event


# -- the store reads ------------------------------------------------------------------------


async def test_events_of_a_user_and_every_id(store: TaskStore) -> None:
    assert await store.newest_event_id() is None
    assert await store.event_ids_after(0, 10) == []
    alice = sample_task(user_id="alice")
    bob = sample_task(user_id="bob")
    other = sample_task(user_id="alice")
    for task in (alice, bob, other):
        await store.create(task)
    stored = [await push(store, task, n) for n, task in enumerate((alice, bob, other, bob, alice))]
    ids = [e.id for e in stored]
    mine = [e for e in stored if e.video_id != bob.video_id]

    assert await store.events_of_user("alice", 0, 100) == mine
    assert await store.events_of_user("alice", mine[0].id, 2) == mine[1:3]
    assert await store.events_of_user("alice", mine[-1].id, 100) == []
    assert await store.events_of_user("carol", 0, 100) == []
    assert await store.event_ids_after(0, 100) == ids
    assert await store.event_ids_after(ids[1], 2) == ids[2:4]
    assert await store.newest_event_id() == ids[-1]


# -- the single-task stream -----------------------------------------------------------------


async def test_a_task_stream_opens_with_its_state_or_its_replay() -> None:
    store = MemoryTaskStore()
    task = sample_task()
    await store.create(task)
    assert await store.get(task.video_id) is not None
    one = await push(store, task, 1, progress=10)
    two = await push(store, task, 2, progress=20)
    now = await store.get(task.video_id)
    assert now is not None

    fresh = await feeds.open_task(store, now, None)
    assert fresh is not None
    assert fresh.first == [Snapshot(task=now, event_id=two.id)]
    assert fresh.feed.cursor == two.id

    resumed = await feeds.open_task(store, now, one.id)
    assert resumed is not None and resumed.first == [two]
    three = await push(store, task, 3, progress=30)
    assert await resumed.feed.next() == [three]
    assert await resumed.feed.next() == []

    # A state read before a newer event was stored: that event follows the snapshot.
    assert await fresh.feed.next() == [three]
    stale = await feeds.open_task(store, now, None)
    assert stale is not None and stale.first == [Snapshot(task=now, event_id=two.id), three]

    # An id this store never gave out cannot be trusted: the state instead.
    unknown = await feeds.open_task(store, now, three.id + 100)
    assert unknown is not None and unknown.first[0] == Snapshot(
        task=now, event_id=two.id, reason=feeds.UNKNOWN_EVENT_ID
    )


async def test_a_resume_older_than_the_retention_gets_the_state() -> None:
    store = MemoryTaskStore()
    task = sample_task()
    await store.create(task)
    stored = [await push(store, task, n, progress=n) for n in range(1, 5)]
    assert await store.purge_events(older_than_ms=stored[-1].timestamp_ms + 1, limit=2) == 2
    now = await store.get(task.video_id)
    assert now is not None

    lost = await feeds.open_task(store, now, stored[0].id)  # stored[1] is gone
    assert lost is not None
    assert lost.first == [Snapshot(task=now, event_id=stored[-1].id, reason=EVENTS_EXPIRED)]
    kept = await feeds.open_task(store, now, stored[1].id)  # everything after it is kept
    assert kept is not None and kept.first == stored[2:]


async def test_a_finished_task_ends_the_stream() -> None:
    store = MemoryTaskStore()
    task = sample_task()
    await store.create(task)
    await push(store, task, 1, progress=50)
    latest = await store.get(task.video_id)
    assert latest is not None
    done = await store.write(
        Write(
            before=latest,
            after=dataclasses.replace(latest, status=TaskStatus.COMPLETED, progress=100),
            event=(EventType.COMPLETED, {"n": 2}),
        )
    )
    assert done is not None and done.event is not None
    assert feeds.ends(done.event)
    assert feeds.ends(Snapshot(task=done.task))
    assert not feeds.ends(Snapshot(task=latest))
    # A resume with nothing left to send: None, which the route answers with 204.
    assert await feeds.open_task(store, done.task, done.event.id) is None
    replay = await feeds.open_task(store, done.task, done.event.id - 1)
    assert replay is not None and replay.first == [done.event]


# -- the all-tasks stream: ids in order, a missing one holds it -----------------------------


@dataclasses.dataclass
class Log:
    """A stand-in for the two reads of a UserFeed: ids become visible when ``commit``ted."""

    visible: dict[int, TaskEvent] = dataclasses.field(default_factory=dict)

    def commit(self, event_id: int, user: str = "alice") -> None:
        self.visible[event_id] = TaskEvent(
            id=event_id,
            video_id=f"video_{user}",
            type=EventType.PROGRESS,
            payload={"id": event_id},
            timestamp_ms=0,
            task_version=event_id,
        )

    async def event_ids_after(self, after_id: int, limit: int) -> list[int]:
        return sorted(i for i in self.visible if i > after_id)[:limit]

    async def events_of_user(self, user_id: str, after_id: int, limit: int) -> list[TaskEvent]:
        found = [
            e
            for i, e in sorted(self.visible.items())
            if i > after_id and e.video_id == f"video_{user_id}"
        ]
        return found[:limit]


async def test_the_all_tasks_feed_waits_for_a_smaller_id_committed_late() -> None:
    log, now = Log(), [0.0]
    feed = UserFeed(store=log, user_id="alice", cursor=0, clock=lambda: now[0])  # type: ignore[arg-type]
    log.commit(1)
    log.commit(2, user="bob")
    log.commit(4)  # 3 is taken by a transaction not yet committed
    found, _ = await feed.next()
    assert [e.id for e in found] == [1] and feed.cursor == 2 and feed.held
    now[0] = 1.0
    assert (await feed.next())[0] == [] and feed.held
    log.commit(3)
    found, _ = await feed.next()
    assert [e.id for e in found] == [3, 4] and not feed.held and feed.cursor == 4


async def test_an_id_that_never_shows_up_holds_the_feed_only_so_long() -> None:
    log, now = Log(), [0.0]
    feed = UserFeed(store=log, user_id="alice", cursor=0, gap_seconds=5.0, clock=lambda: now[0])  # type: ignore[arg-type]
    log.commit(1)
    log.commit(3)  # 2 was rolled back
    assert [e.id for e in (await feed.next())[0]] == [1]
    now[0] = 4.9
    assert (await feed.next())[0] == []
    now[0] = 5.0
    assert [e.id for e in (await feed.next())[0]] == [3]
    assert not feed.held


async def test_the_all_tasks_feed_drops_what_a_snapshot_showed() -> None:
    log = Log()
    feed = UserFeed(store=log, user_id="alice", cursor=0, floors={"video_alice": 2})  # type: ignore[arg-type]
    for event_id in (1, 2, 3):
        log.commit(event_id)
    assert [e.id for e in (await feed.next())[0]] == [3]


async def test_an_all_tasks_resume_older_than_the_retention() -> None:
    store = MemoryTaskStore()
    running, finished = sample_task(), sample_task()
    for task in (running, finished):
        await store.create(task)
    first = await push(store, finished, 1, status=TaskStatus.COMPLETED, progress=100)
    later = [await push(store, running, n, progress=n) for n in (2, 3)]
    await store.purge_events(older_than_ms=later[-1].timestamp_ms + 1, limit=1)
    assert await store.oldest_event_id() == later[0].id

    items, feed = await feeds.open_user(store, "alice", first.id - 1)
    now = await store.get(running.video_id)
    assert now is not None
    assert items == [Snapshot(task=now, reason=EVENTS_EXPIRED)]  # the unfinished one
    assert (await feed.next())[0] == []  # its stored events are older than its snapshot

    items, feed = await feeds.open_user(store, "alice", first.id)  # exact
    assert items == [] and [e.id for e in (await feed.next())[0]] == [e.id for e in later]
    items, feed = await feeds.open_user(store, "alice", None)  # from now on
    assert items == [] and feed.cursor == later[-1].id


# -- the notifier ---------------------------------------------------------------------------


async def test_the_notifier_wakes_the_waiters_of_a_task_and_of_its_owner() -> None:
    store, bus = MemoryTaskStore(), InProcessBus()
    notifier = Notifier(poll_seconds=30, owner_of=owners_in(store))
    notifier.attach(bus)
    task, other = sample_task(user_id="alice"), sample_task(user_id="bob")
    for t in (task, other):
        await store.create(t)
    with (
        notifier.watch(task.video_id) as mine,
        notifier.watch(user_id="alice") as alices,
        notifier.watch(user_id="bob") as bobs,
    ):
        # Whose task it is is not known yet: every all-tasks waiter reads once.
        await bus.publish(await push(store, other, 1))
        assert await alices.wait(0.01) and await bobs.wait(0.01)
        assert await mine.wait(0.01) is False  # another task's wake-up, and no poll yet
        await asyncio.sleep(0.01)  # the owner is looked up meanwhile
        await bus.publish(await push(store, other, 2))
        assert await bobs.wait(0.01) and not await alices.wait(0.01)
        await bus.publish(await push(store, task, 3))
        assert await mine.wait(0.01) is True
        assert await mine.wait(0.01) is False  # consumed
        assert await alices.wait(0.01) and await bobs.wait(0.01)  # not known yet either
        await asyncio.sleep(0.01)
        await bus.publish(await push(store, task, 4))
        assert await alices.wait(0.01) and not await bobs.wait(0.01)
    await bus.publish(await push(store, task, 5))  # nobody waits: nothing kept
    with pytest.raises(ValueError), notifier.watch():
        pass
    notifier.close()
    await bus.close()


async def test_a_bus_that_lost_wake_ups_wakes_every_waiter() -> None:
    class Bus(InProcessBus):
        reconnected: Any = None

        def listen(self, listener: Any, *, on_reconnect: Any = None) -> Any:
            self.reconnected = on_reconnect
            return super().listen(listener, on_reconnect=on_reconnect)

    bus = Bus()
    notifier = Notifier(poll_seconds=30)
    notifier.attach(bus)
    with notifier.watch("video_a") as one, notifier.watch(user_id="alice") as every:
        await bus.reconnected()
        assert await one.wait(0.01) and await every.wait(0.01)
    notifier.close()
    assert bus._listeners == []


async def test_a_waiter_reads_again_after_the_poll_interval() -> None:
    notifier = Notifier(poll_seconds=0.05)
    with notifier.watch("video_x") as waiter:
        started = asyncio.get_running_loop().time()
        assert await waiter.wait(10) is False
        assert asyncio.get_running_loop().time() - started < 1


# -- Prefer ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ([], None),
        (["respond-async"], None),
        (["wait=5"], 5),
        (["WAIT = 7"], 7),
        (['respond-async, wait="12"; foo=bar'], 12),
        (["wait=0"], 0),
        (["wait=60"], 60),
        (["wait=61"], 60),
        (["wait=" + "9" * 5000], 60),
        (['handling=lenient, x="a,wait=3", wait=4'], 4),
        (["waiting=3", "wait=2", "wait=9"], 2),
    ],
)
def test_prefer_wait_is_read_as_rfc_7240_says(headers: list[str], seconds: int | None) -> None:
    assert prefer.requested_wait(headers) == seconds


@pytest.mark.parametrize("header", ["wait=-1", "wait=1.5", "wait", "wait=", 'wait=""', "wait=x"])
def test_a_bad_wait_is_refused(header: str) -> None:
    with pytest.raises(InvalidHeader) as caught:
        prefer.requested_wait([header])
    assert caught.value.code == "INVALID_PREFER" and caught.value.http_status == 400
