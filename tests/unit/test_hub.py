"""The WebSocket hub: catch-up from ``task_events`` whatever the bus delivers or loses.

A ``FakeBus`` at the ``EventBus`` port decides which wake-ups arrive, and carries either
the events themselves (as the in-process bus does) or their ids only (as Redis does); the
events live in a ``MemoryTaskStore``. Subscribers are driven as ``api/ws.py`` drives them
(``begin``, read the task, ``snapshot``) and their outboxes are read directly.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest

from tests.factories import new_task
from vidgate.api.hub import OVERLAP_POLLS, Hub, Subscriber
from vidgate.domain import events
from vidgate.domain.events import TaskEvent
from vidgate.domain.status import TaskStatus
from vidgate.events.base import EventBus, EventRef, Listener, Reconnected
from vidgate.store.base import StoreUnavailable, Write
from vidgate.testing import MemoryTaskStore

POLL = 0.25  # the hub's poll interval in these tests


def ids_of(event: TaskEvent) -> EventRef:
    return EventRef(video_id=event.video_id, id=event.id, task_version=event.task_version)


class FakeBus:
    """An ``EventBus`` whose wake-ups a test can lose, repeat or follow by a reconnect.

    ``carries="event"`` hands listeners the event, as the in-process bus does (and the
    Redis bus for its own process's events); ``"ids"`` only its ids, as Redis does.
    """

    def __init__(self, carries: str = "ids") -> None:
        self.carries = carries
        self.losing = False
        self._listeners: list[tuple[Listener, Reconnected | None]] = []

    async def publish(self, event: TaskEvent) -> None:
        if self.losing:
            return
        for listener, _ in list(self._listeners):
            await listener(event if self.carries == "event" else ids_of(event))

    def listen(
        self, listener: Listener, *, on_reconnect: Reconnected | None = None
    ) -> Callable[[], None]:
        entry = (listener, on_reconnect)
        self._listeners.append(entry)
        return lambda: self._listeners.remove(entry)

    async def reconnected(self) -> None:
        for _, hook in list(self._listeners):
            if hook is not None:
                await hook()

    def announce_work(self) -> None:
        return None

    def on_work(self, callback: Callable[[], None]) -> Callable[[], None]:
        return lambda: None

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._listeners.clear()


class CountingStore(MemoryTaskStore):
    """Counts event reads; can fail them, or hide events not yet "committed"."""

    def __init__(self) -> None:
        super().__init__()
        self.reads_after: list[str] = []
        self.reads_for: list[list[str]] = []
        self.rows_read: list[int] = []  # events returned by each events_for
        self.failing = False
        self.uncommitted: set[int] = set()  # ids taken but not yet visible (PostgreSQL)

    async def events_after(self, video_id: str, after_id: int) -> list[TaskEvent]:
        self.reads_after.append(video_id)
        if self.failing:
            raise StoreUnavailable("database read failed: test")
        found = await super().events_after(video_id, after_id)
        return [e for e in found if e.id not in self.uncommitted]

    async def events_for(
        self, video_ids: Sequence[str], after_id: int, limit: int
    ) -> list[TaskEvent]:
        self.reads_for.append(list(video_ids))
        if self.failing:
            raise StoreUnavailable("database read failed: test")
        found = await super().events_for(video_ids, after_id, limit)
        visible = [e for e in found if e.id not in self.uncommitted]
        self.rows_read.append(len(visible))
        return visible


@pytest.fixture
def store() -> CountingStore:
    return CountingStore()


@pytest.fixture
def bus(request: pytest.FixtureRequest) -> FakeBus:
    return FakeBus(carries=getattr(request, "param", "ids"))


# For tests where it matters what the bus carries.
either_bus = pytest.mark.parametrize("bus", ["event", "ids"], indirect=True)


@pytest.fixture
async def hub(store: CountingStore, bus: FakeBus) -> AsyncIterator[Hub]:
    hub = Hub(store, poll_seconds=POLL)
    hub.attach(bus)
    yield hub
    await hub.close()


async def advance(store: MemoryTaskStore, video_id: str, progress: int) -> TaskEvent:
    """Commit one visible change (and its ``task_events`` row); returns the event."""
    before = await store.get(video_id)
    assert before is not None
    status = TaskStatus.COMPLETED if progress == 100 else TaskStatus.PROCESSING
    after = dataclasses.replace(before, status=status, progress=progress)
    written = await store.write(
        Write(before=before, after=after, event=events.change(before, after))
    )
    assert written is not None and written.event is not None
    return written.event


async def subscribe(hub: Hub, store: MemoryTaskStore, video_id: str) -> Subscriber:
    sub = Subscriber()
    hub.begin(sub, video_id)
    task = await store.get(video_id)
    assert task is not None
    hub.snapshot(sub, task)
    return sub


async def next_message(sub: Subscriber, within: float = 2.0) -> dict[str, Any]:
    message = await asyncio.wait_for(sub.outbox.get(), within)
    assert message is not None, "the subscriber overflowed"
    return message


def shown(message: dict[str, Any]) -> tuple[str, int]:
    return message["type"], message["payload"]["progress"]


async def quiet(sub: Subscriber, seconds: float = 2 * POLL) -> None:
    """Nothing more arrives over a few polls (each re-reading the recent events)."""
    await asyncio.sleep(seconds)
    assert sub.outbox.empty(), f"unexpected: {sub.outbox.get_nowait()}"


async def test_a_wakeup_delivers_the_new_events_in_order_at_once(
    store: CountingStore, bus: FakeBus
) -> None:
    hub = Hub(store, poll_seconds=60)  # no poll can help: the wake-up alone must do it
    hub.attach(bus)
    try:
        video_id = await new_task(store)
        sub = await subscribe(hub, store, video_id)
        assert shown(await next_message(sub)) == ("subscribed", 0)
        for progress in (10, 20, 100):
            await bus.publish(await advance(store, video_id, progress))
        started = time.monotonic()
        got = [shown(await next_message(sub)) for _ in range(3)]
        assert got == [("taskProgress", 10), ("taskProgress", 20), ("taskCompleted", 100)]
        assert time.monotonic() - started < 0.5
    finally:
        await hub.close()


async def test_lost_wakeups_are_delivered_by_the_poll_within_its_interval(
    hub: Hub, store: CountingStore, bus: FakeBus
) -> None:
    video_id = await new_task(store)
    sub = await subscribe(hub, store, video_id)
    await next_message(sub)
    bus.losing = True
    for progress in (30, 60):
        await bus.publish(await advance(store, video_id, progress))
        started = time.monotonic()
        assert shown(await next_message(sub, within=2 * POLL)) == ("taskProgress", progress)
        assert time.monotonic() - started <= POLL + 0.15
    await quiet(sub)


async def test_the_poll_reads_all_followed_videos_in_one_query(
    hub: Hub, store: CountingStore, bus: FakeBus
) -> None:
    videos = [await new_task(store) for _ in range(20)]
    subs = [await subscribe(hub, store, v) for v in videos]
    unfollowed = await new_task(store)
    bus.losing = True
    for video_id in [*videos, unfollowed]:
        await bus.publish(await advance(store, video_id, 50))
    polls_before = len(store.reads_for)
    for sub in subs:
        assert shown(await next_message(sub)) == ("subscribed", 0)
        assert shown(await next_message(sub, within=2 * POLL)) == ("taskProgress", 50)
    assert len(store.reads_for) - polls_before == 1
    assert sorted(store.reads_for[-1]) == sorted(videos)  # never the unfollowed one
    assert store.reads_after == []  # the lost wake-ups caused no read


async def test_repeated_wakeups_and_overlapping_reads_send_each_message_once(
    hub: Hub, store: CountingStore, bus: FakeBus
) -> None:
    # Ids only, as from other processes: every event is read, and in order.
    video_id = await new_task(store)
    sub = await subscribe(hub, store, video_id)
    await next_message(sub)
    first = await advance(store, video_id, 40)
    second = await advance(store, video_id, 80)
    for event in (second, first, second, first):  # late, repeated, out of order
        await bus.publish(event)
    await bus.reconnected()  # and an immediate poll on top
    got = [shown(await next_message(sub)) for _ in range(2)]
    assert got == [("taskProgress", 40), ("taskProgress", 80)]
    await bus.publish(first)  # a stale echo, after everything was delivered
    await quiet(sub)


@either_bus
async def test_nothing_older_than_the_snapshot_is_sent(
    hub: Hub, store: CountingStore, bus: FakeBus
) -> None:
    video_id = await new_task(store)
    old = [await advance(store, video_id, p) for p in (10, 20)]  # before anyone followed
    sub = await subscribe(hub, store, video_id)
    assert shown(await next_message(sub)) == ("subscribed", 20)
    for event in old:
        await bus.publish(event)  # wake-ups for events the snapshot already shows
    await bus.reconnected()
    await quiet(sub)
    await bus.publish(await advance(store, video_id, 30))
    assert shown(await next_message(sub)) == ("taskProgress", 30)


@either_bus
async def test_an_event_committed_while_the_snapshot_is_read_is_sent_after_it(
    hub: Hub, store: CountingStore, bus: FakeBus
) -> None:
    video_id = await new_task(store)
    sub = Subscriber()
    hub.begin(sub, video_id)
    stale = await store.get(video_id)  # the snapshot read ...
    assert stale is not None
    await bus.publish(await advance(store, video_id, 70))  # ... races this commit
    await asyncio.sleep(0.05)  # the hub reads it and holds it for the snapshot
    hub.snapshot(sub, stale)
    assert [shown(await next_message(sub)) for _ in range(2)] == [
        ("subscribed", 0),
        ("taskProgress", 70),
    ]
    await quiet(sub)

    late = Subscriber()  # the same race, but the snapshot read sees the commit
    hub.begin(late, video_id)
    await bus.publish(await advance(store, video_id, 90))
    await asyncio.sleep(0.05)
    fresh = await store.get(video_id)
    assert fresh is not None
    hub.snapshot(late, fresh)
    assert shown(await next_message(late)) == ("subscribed", 90)
    await quiet(late)
    assert shown(await next_message(sub)) == ("taskProgress", 90)


async def test_a_smaller_id_committed_after_a_larger_one_is_still_delivered(
    hub: Hub, store: CountingStore, bus: FakeBus
) -> None:
    """PostgreSQL takes event ids at insert and shows them at commit, so id 1 can become
    visible after id 2 was read; the poll re-reads a few polls back to find it."""
    slow, fast = await new_task(store), await new_task(store)
    slow_sub = await subscribe(hub, store, slow)
    fast_sub = await subscribe(hub, store, fast)
    await next_message(slow_sub)
    await next_message(fast_sub)
    bus.losing = True  # and no wake-up helps
    hidden = await advance(store, slow, 25)
    store.uncommitted.add(hidden.id)
    await advance(store, fast, 35)
    assert shown(await next_message(fast_sub, within=2 * POLL)) == ("taskProgress", 35)
    await asyncio.sleep(2 * POLL)  # polls read past id 2 meanwhile
    store.uncommitted.discard(hidden.id)
    assert shown(await next_message(slow_sub, within=2 * POLL)) == ("taskProgress", 25)
    await quiet(slow_sub)
    await quiet(fast_sub, 0)


@either_bus
async def test_a_late_commit_on_a_video_followed_meanwhile_is_delivered(
    hub: Hub, store: CountingStore, bus: FakeBus
) -> None:
    """The same race when the slow video is subscribed to after the hub read past its id:
    its snapshot (read before the commit) is older than the event, so the event is due."""
    fast, slow = await new_task(store), await new_task(store)
    fast_sub = await subscribe(hub, store, fast)
    await next_message(fast_sub)
    before_commit = await store.get(slow)  # what a snapshot read would see meanwhile
    assert before_commit is not None
    hidden = await advance(store, slow, 45)
    store.uncommitted.add(hidden.id)
    await bus.publish(await advance(store, fast, 5))
    assert shown(await next_message(fast_sub)) == ("taskProgress", 5)  # read past the id
    slow_sub = Subscriber()
    hub.begin(slow_sub, slow)
    hub.snapshot(slow_sub, before_commit)
    assert shown(await next_message(slow_sub)) == ("subscribed", 0)
    store.uncommitted.discard(hidden.id)
    await bus.publish(hidden)
    assert shown(await next_message(slow_sub, within=2 * POLL)) == ("taskProgress", 45)
    await quiet(slow_sub)


async def test_polls_stop_rereading_once_past_the_overlap(
    hub: Hub, store: CountingStore, bus: FakeBus
) -> None:
    """An idle follower's old cursor must not make every poll read the history again."""
    idle, busy = await new_task(store), await new_task(store)
    await next_message(await subscribe(hub, store, idle))
    sub = await subscribe(hub, store, busy)
    await next_message(sub)
    bus.losing = True
    for progress in range(1, 41):
        await bus.publish(await advance(store, busy, progress))
    assert [shown(await next_message(sub))[1] for _ in range(40)] == list(range(1, 41))
    await asyncio.sleep((OVERLAP_POLLS + 2) * POLL)
    assert store.rows_read[-1] == 0


@either_bus
async def test_wakeups_for_videos_nobody_follows_here_cost_no_read(
    hub: Hub, store: CountingStore, bus: FakeBus
) -> None:
    video_id = await new_task(store)
    await bus.publish(await advance(store, video_id, 10))
    sub = await subscribe(hub, store, video_id)
    await next_message(sub)
    hub.unsubscribe(sub, video_id)
    await bus.publish(await advance(store, video_id, 20))
    await asyncio.sleep(2 * POLL)
    assert store.reads_after == []
    assert all(videos == [] for videos in store.reads_for)
    assert sub.outbox.empty()


async def test_a_reconnect_polls_at_once(store: CountingStore, bus: FakeBus) -> None:
    hub = Hub(store, poll_seconds=60)
    hub.attach(bus)
    try:
        video_id = await new_task(store)
        sub = await subscribe(hub, store, video_id)
        await next_message(sub)
        bus.losing = True  # Redis went away ...
        await bus.publish(await advance(store, video_id, 55))
        await asyncio.sleep(0.1)
        assert sub.outbox.empty()
        bus.losing = False
        await bus.reconnected()  # ... and came back
        assert shown(await next_message(sub, within=0.5)) == ("taskProgress", 55)
    finally:
        await hub.close()


async def test_failed_reads_are_logged_once_and_retried(
    hub: Hub, store: CountingStore, bus: FakeBus, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="vidgate.api.hub")
    video_id = await new_task(store)
    sub = await subscribe(hub, store, video_id)
    await next_message(sub)
    store.failing = True
    bus.losing = True  # so that only reads can deliver
    await bus.publish(await advance(store, video_id, 15))
    await asyncio.sleep(4 * POLL)
    assert sub.outbox.empty()
    store.failing = False
    assert shown(await next_message(sub, within=2 * POLL)) == ("taskProgress", 15)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "cannot read task_events" in warnings[0].getMessage()
    assert any("reading task_events again" in r.getMessage() for r in caplog.records)


async def test_events_of_this_process_are_delivered_without_a_read(store: CountingStore) -> None:
    bus = FakeBus(carries="event")
    hub = Hub(store, poll_seconds=60)
    hub.attach(bus)
    try:
        video_id = await new_task(store)
        sub = await subscribe(hub, store, video_id)
        await next_message(sub)
        for progress in (10, 20):
            await bus.publish(await advance(store, video_id, progress))
        assert [shown(await next_message(sub)) for _ in range(2)] == [
            ("taskProgress", 10),
            ("taskProgress", 20),
        ]
        assert store.reads_for == []
    finally:
        await hub.close()


async def test_a_newer_event_announced_first_is_never_followed_by_an_older_one(
    hub: Hub, store: CountingStore
) -> None:
    """Two writes of one task announced in reverse order, each with its event: the
    subscriber goes straight to the newer state and never steps back."""
    video_id = await new_task(store)
    sub = await subscribe(hub, store, video_id)
    await next_message(sub)
    older = await advance(store, video_id, 40)
    newer = await advance(store, video_id, 100)
    await hub.wake(newer)
    await hub.wake(older)
    assert shown(await next_message(sub)) == ("taskCompleted", 100)
    await quiet(sub)


async def test_an_event_for_a_video_with_a_read_pending_joins_the_read(
    hub: Hub, store: CountingStore
) -> None:
    video_id = await new_task(store)
    sub = await subscribe(hub, store, video_id)
    await next_message(sub)
    remote = await advance(store, video_id, 30)  # written by another process
    local = await advance(store, video_id, 60)
    await hub.wake(ids_of(remote))  # a read is now due ...
    await hub.wake(local)  # ... so this must not jump ahead of it
    assert [shown(await next_message(sub)) for _ in range(2)] == [
        ("taskProgress", 30),
        ("taskProgress", 60),
    ]
    await quiet(sub)


async def test_fake_bus_fits_the_port() -> None:
    port: EventBus = FakeBus()
    await port.ping()
    await port.close()


# -- resume (afterEventId) and the snapshot's eventId ------------------------------------------


async def drain(sub: Subscriber) -> list[dict[str, Any]]:
    found = []
    while not sub.outbox.empty():
        message = sub.outbox.get_nowait()
        assert message is not None
        found.append(message)
    return found


def ids_and_types(messages: list[dict[str, Any]]) -> list[tuple[str, int | None]]:
    return [(m["type"], m.get("eventId")) for m in messages]


@either_bus
async def test_resume_replays_then_goes_live_with_no_duplicate(
    hub: Hub, store: CountingStore, bus: FakeBus
) -> None:
    video_id = await new_task(store)
    e1 = await advance(store, video_id, 10)
    e2 = await advance(store, video_id, 20)
    watcher = await subscribe(hub, store, video_id)  # the hub follows the video already
    sub = Subscriber()
    since = hub.begin(sub, video_id)
    e3 = await advance(store, video_id, 30)  # committed while the resume reads
    await bus.publish(e3)
    task = await store.get(video_id)
    assert task is not None
    await hub.start(sub, task, since=since, after_id=e1.id)
    e4 = await advance(store, video_id, 100)
    await bus.publish(e4)
    await asyncio.sleep(3 * POLL)  # the poll re-reads what the wake-ups delivered

    got = await drain(sub)
    assert ids_and_types(got) == [
        ("taskProgress", e2.id),
        ("taskProgress", e3.id),
        ("subscribed", e3.id),
        ("taskCompleted", e4.id),
    ]
    assert got[2]["resumed"] is True and got[2]["payload"] == e3.payload
    assert [m["eventId"] for m in await drain(watcher)][-1] == e4.id


async def test_resume_with_nothing_newer_answers_the_current_state(
    hub: Hub, store: CountingStore
) -> None:
    video_id = await new_task(store)
    e1 = await advance(store, video_id, 40)
    sub = Subscriber()
    since = hub.begin(sub, video_id)
    task = await store.get(video_id)
    assert task is not None
    await hub.start(sub, task, since=since, after_id=e1.id + 5)  # ahead: nothing to replay
    (answer,) = await drain(sub)
    assert answer["type"] == "subscribed" and answer["resumed"] is True
    assert answer["eventId"] == e1.id + 5
    assert answer["payload"]["progress"] == 40
    await advance(store, video_id, 60)  # id e1 + 1: not above what the client has
    await quiet(sub)


async def test_resume_from_before_the_retention_falls_back_to_the_snapshot(
    hub: Hub, store: CountingStore
) -> None:
    video_id = await new_task(store)
    e1 = await advance(store, video_id, 10)
    await advance(store, video_id, 20)
    e3 = await advance(store, video_id, 30)
    assert await store.purge_events(older_than_ms=e3.timestamp_ms + 10_000, limit=10) == 2
    sub = Subscriber()
    since = hub.begin(sub, video_id)
    task = await store.get(video_id)
    assert task is not None
    await hub.start(sub, task, since=since, after_id=e1.id)
    (answer,) = await drain(sub)
    assert answer["type"] == "subscribed"
    assert (answer["resumed"], answer["reason"]) == (False, "EVENTS_EXPIRED")
    assert answer["eventId"] == e3.id
    assert answer["payload"]["progress"] == 30
    # At the edge the replay is exact again: nothing after e2 was deleted.
    sub2 = Subscriber()
    since = hub.begin(sub2, video_id)
    await hub.start(sub2, task, since=since, after_id=e3.id - 1)
    assert ids_and_types(await drain(sub2)) == [("taskProgress", e3.id), ("subscribed", e3.id)]


async def test_a_snapshot_names_the_newest_event_it_reflects(
    hub: Hub, store: CountingStore
) -> None:
    video_id = await new_task(store)
    await advance(store, video_id, 10)
    sub = Subscriber()
    since = hub.begin(sub, video_id)
    e2 = await advance(store, video_id, 20)  # before the task is read: the snapshot shows it
    task = await store.get(video_id)
    assert task is not None
    e3 = await advance(store, video_id, 30)  # after: it follows the snapshot
    await hub.start(sub, task, since=since)
    answer = await next_message(sub)
    assert answer["type"] == "subscribed" and "resumed" not in answer
    assert (answer["eventId"], answer["payload"]["progress"]) == (e2.id, 20)
    nxt = await next_message(sub, within=3 * POLL)
    assert (nxt["eventId"], shown(nxt)) == (e3.id, ("taskProgress", 30))
    await quiet(sub)
