"""``RedisBus`` against a real Redis: wake-ups between processes, and Redis going away.

Each test runs its own ``redis-server`` on a free loopback port, so it can stop, pause and
restart it without touching the Redis other tests use. Two "processes" are two stores on
one SQLite file, each with its own ``RedisBus`` and ``Hub``, as two api nodes would be.
Without a ``redis-server`` binary the tests skip, or fail when ``CI=true``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.databases import fresh_sqlite, in_ci
from tests.factories import new_task
from tests.support import free_port
from vidgate.api.hub import Hub, Subscriber
from vidgate.domain import events
from vidgate.domain.events import TaskEvent
from vidgate.domain.status import TaskStatus
from vidgate.events.base import BusUnavailable, EventBus, Wakeup
from vidgate.events.factory import open_bus
from vidgate.events.memory import InProcessBus
from vidgate.events.redis import RedisBus
from vidgate.store.base import TaskStore, Write
from vidgate.store.sql import SqlTaskStore

SLOW_POLL = 30.0  # hubs that must not be rescued by their poll within a test


@dataclass
class RedisServer:
    """A private ``redis-server``, nothing persisted, that a test may stop and restart."""

    binary: str
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no"]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        try:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"redis-server exited:\n{self.log.read_text()}")
                try:
                    client.ping()
                    return
                except redis.RedisError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


def redis_binary() -> str:
    """The ``redis-server`` to run; skips the test without one, fails it when CI=true."""
    found = os.environ.get("VIDGATE_TEST_REDIS_SERVER") or shutil.which("redis-server")
    if found:
        return found
    reason = "redis-server not found on PATH (or VIDGATE_TEST_REDIS_SERVER)"
    if in_ci():
        pytest.fail(f"{reason}; CI=true requires it", pytrace=False)
    pytest.skip(f"{reason}; install Redis to run the Redis event bus tests")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(redis_binary(), free_port(), tmp_path / "redis.log")
    server.start()
    yield server
    if server.process is not None and server.process.poll() is None:
        server.resume()  # a paused server would ignore SIGTERM
    server.stop()


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[SqlTaskStore, SqlTaskStore]]:
    """Two stores on one SQLite file: two processes' views of one database."""
    with fresh_sqlite(tmp_path) as url:
        one = await SqlTaskStore.open(url)
        two = await SqlTaskStore.open(url)
        yield one, two
        await one.close()
        await two.close()


class Node:
    """What one api process holds for WebSockets: a store, a bus and a hub."""

    def __init__(self, store: TaskStore, bus: EventBus, *, poll_seconds: float) -> None:
        self.store, self.bus = store, bus
        self.hub = Hub(store, poll_seconds=poll_seconds)
        self.hub.attach(bus)

    async def close(self) -> None:
        await self.hub.close()
        await self.bus.close()


@pytest.fixture
async def nodes() -> AsyncIterator[list[Node]]:
    made: list[Node] = []
    yield made
    for node in made:
        await node.close()


async def step(node: Node, video_id: str, progress: int) -> TaskEvent:
    """What the engine does: commit a change with its event, then publish it."""
    before = await node.store.get(video_id)
    assert before is not None
    status = TaskStatus.COMPLETED if progress == 100 else TaskStatus.PROCESSING
    after = dataclasses.replace(before, status=status, progress=progress)
    change = Write(before=before, after=after, event=events.change(before, after))
    written = await node.store.write(change)
    assert written is not None and written.event is not None
    await node.bus.publish(written.event)
    return written.event


async def subscribe(node: Node, video_id: str) -> Subscriber:
    sub = Subscriber()
    node.hub.begin(sub, video_id)
    task = await node.store.get(video_id)
    assert task is not None
    node.hub.snapshot(sub, task)
    return sub


async def received(sub: Subscriber, count: int, within: float = 2.0) -> list[tuple[str, int]]:
    got = []
    async with asyncio.timeout(within):
        for _ in range(count):
            message = await sub.outbox.get()
            assert message is not None, "the subscriber overflowed"
            got.append((message["type"], message["payload"]["progress"]))
    return got


async def wait_subscribed(*buses: RedisBus) -> None:
    async with asyncio.timeout(5):
        for bus in buses:
            await bus.wait_subscribed()


async def test_wakeups_reach_the_other_process_at_once(
    redis_server: RedisServer, stores: tuple[SqlTaskStore, SqlTaskStore], nodes: list[Node]
) -> None:
    buses = RedisBus(redis_server.url), RedisBus(redis_server.url)
    worker, api = (Node(s, b, poll_seconds=SLOW_POLL) for s, b in zip(stores, buses, strict=True))
    nodes += [worker, api]
    await wait_subscribed(*buses)
    video_id = await new_task(worker.store)
    remote, local = await subscribe(api, video_id), await subscribe(worker, video_id)
    assert await received(remote, 1) == await received(local, 1) == [("subscribed", 0)]
    started = time.monotonic()
    for progress in (20, 40, 60, 80, 100):
        await step(worker, video_id, progress)
    expected = [("taskProgress", p) for p in (20, 40, 60, 80)] + [("taskCompleted", 100)]
    assert await received(remote, 5) == expected
    assert time.monotonic() - started < 1.0  # wake-ups, not the 30 s poll
    assert await received(local, 5) == expected
    await asyncio.sleep(0.2)
    assert remote.outbox.empty() and local.outbox.empty()  # each message once


async def test_subscribers_get_every_later_state_across_a_redis_restart(
    redis_server: RedisServer,
    stores: tuple[SqlTaskStore, SqlTaskStore],
    nodes: list[Node],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="vidgate.events.redis")
    buses = RedisBus(redis_server.url), RedisBus(redis_server.url)
    worker, api = (Node(s, b, poll_seconds=SLOW_POLL) for s, b in zip(stores, buses, strict=True))
    nodes += [worker, api]
    await wait_subscribed(*buses)
    video_id = await new_task(worker.store)
    sub = await subscribe(api, video_id)
    await step(worker, video_id, 10)
    assert await received(sub, 2) == [("subscribed", 0), ("taskProgress", 10)]

    redis_server.stop()
    for bus in buses:
        with pytest.raises(BusUnavailable):
            await bus.ping()
    started = time.monotonic()
    for progress in (20, 30):  # published while Redis is down: must not raise or stall
        await step(worker, video_id, progress)
    assert time.monotonic() - started < 0.5
    await asyncio.sleep(0.5)  # several reconnect attempts fail meanwhile
    assert sub.outbox.empty()  # no wake-up, and the poll is 30 s away

    redis_server.start()
    await wait_subscribed(*buses)  # resubscribed: on_reconnect makes the hub catch up
    assert await received(sub, 2) == [("taskProgress", 20), ("taskProgress", 30)]
    for bus in buses:
        await bus.ping()
    await step(worker, video_id, 100)
    assert await received(sub, 1, within=1.0) == [("taskCompleted", 100)]

    records = [r for r in caplog.records if r.name == "vidgate.events.redis"]
    down = [r for r in records if r.levelno == logging.WARNING]
    up = [r for r in records if "reachable again" in r.getMessage()]
    assert len(down) == 2, [r.getMessage() for r in down]  # once per bus, not per retry
    assert all("unavailable" in r.getMessage() for r in down)
    assert len(up) == 2


async def test_a_redis_that_stops_answering_is_detected_and_left(
    redis_server: RedisServer,
    stores: tuple[SqlTaskStore, SqlTaskStore],
    nodes: list[Node],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A hung Redis (or a dead network path) keeps the socket open: pings find it out."""
    options: dict[str, Any] = {"keepalive": 0.2, "timeout": 0.3, "max_backoff": 0.2}
    buses = RedisBus(redis_server.url, **options), RedisBus(redis_server.url, **options)
    worker, api = (Node(s, b, poll_seconds=SLOW_POLL) for s, b in zip(stores, buses, strict=True))
    nodes += [worker, api]
    await wait_subscribed(*buses)
    video_id = await new_task(worker.store)
    sub = await subscribe(api, video_id)
    assert await received(sub, 1) == [("subscribed", 0)]

    redis_server.pause()
    with pytest.raises(BusUnavailable):
        await buses[1].ping()
    await step(worker, video_id, 50)  # its wake-up is lost
    await asyncio.sleep(1.0)  # three keepalives without an answer, then failed retries
    assert not buses[1].subscribed
    assert any("no answer to pings" in r.getMessage() for r in caplog.records)
    redis_server.resume()
    await wait_subscribed(*buses)
    assert await received(sub, 1) == [("taskProgress", 50)]


async def test_malformed_wakeups_are_ignored(
    redis_server: RedisServer,
    stores: tuple[SqlTaskStore, SqlTaskStore],
    nodes: list[Node],
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = RedisBus(redis_server.url)
    seen: list[Wakeup] = []
    arrived = asyncio.Event()

    async def listener(wakeup: Wakeup) -> None:
        seen.append(wakeup)
        arrived.set()

    bus.listen(listener)
    nodes.append(Node(stores[0], bus, poll_seconds=SLOW_POLL))
    await bus.wait_subscribed()
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        for junk in (b"not json", b"[1, 2]", b'{"id": "7", "videoId": "v", "taskVersion": 1}'):
            await client.publish("vidgate:events", junk)
        await client.publish("vidgate:events", b'{"id": 7, "videoId": "v", "taskVersion": 2}')
    finally:
        await client.aclose()
    await asyncio.wait_for(arrived.wait(), 2)
    assert [(w.video_id, w.id, w.task_version) for w in seen] == [("v", 7, 2)]
    assert sum("malformed wake-up" in r.getMessage() for r in caplog.records) == 3


async def test_publishing_without_redis_never_fails_and_still_wakes_this_process() -> None:
    bus = RedisBus(f"redis://127.0.0.1:{free_port()}/0", timeout=0.2)  # nothing listens there
    seen: list[Wakeup] = []

    async def listener(wakeup: Wakeup) -> None:
        seen.append(wakeup)

    bus.listen(listener)
    event = TaskEvent(
        id=1,
        video_id="video_x",
        type=events.EventType.PROGRESS,
        payload={},
        timestamp_ms=0,
        task_version=2,
    )
    started = time.monotonic()
    for _ in range(100):
        await bus.publish(event)
    assert time.monotonic() - started < 0.1
    assert len(seen) == 100  # local listeners do not depend on Redis
    with pytest.raises(BusUnavailable):
        await bus.ping()
    await bus.close()


async def test_events_for_reads_followed_videos_after_an_id_in_one_query(
    stores: tuple[SqlTaskStore, SqlTaskStore],
) -> None:
    node = Node(stores[0], InProcessBus(), poll_seconds=SLOW_POLL)
    try:
        a, b, c = [await new_task(node.store) for _ in range(3)]
        written = [await step(node, video, p) for p in (10, 20) for video in (a, b, c)]
        store = stores[1]
        assert await store.events_for([a, c], 0, 10) == [e for e in written if e.video_id != b]
        after = written[1].id
        assert await store.events_for([a, b], after, 10) == [
            e for e in written if e.id > after and e.video_id != c
        ]
        assert await store.events_for([a, b, c], 0, 2) == written[:2]
        assert await store.events_for([], 0, 10) == []
    finally:
        await node.close()


def test_open_bus_follows_the_redis_url() -> None:
    @dataclass
    class Settings:
        redis_url: str | None

    assert isinstance(open_bus(Settings(redis_url=None)), InProcessBus)
    assert isinstance(open_bus(Settings(redis_url="redis://127.0.0.1:1/0")), RedisBus)


class WorkCounter:
    """An engine's ``wake``: counts the work wake-ups it is handed."""

    def __init__(self) -> None:
        self.count = 0
        self.woken = asyncio.Event()

    def __call__(self) -> None:
        self.count += 1
        self.woken.set()


async def test_announced_work_wakes_the_engines_of_every_process(
    redis_server: RedisServer,
) -> None:
    api, worker = RedisBus(redis_server.url), RedisBus(redis_server.url)
    try:
        at_api, at_worker = WorkCounter(), WorkCounter()
        api.on_work(at_api)
        worker.on_work(at_worker)
        await wait_subscribed(api, worker)
        at_api.count = at_worker.count = 0  # subscribing counts as a reconnection
        api.announce_work()  # a task created on the api process
        assert at_api.count == 1  # the local engine at once
        async with asyncio.timeout(2):
            await at_worker.woken.wait()  # the worker's within moments, not at its idle look
        await asyncio.sleep(0.2)
        assert (at_api.count, at_worker.count) == (1, 1)  # our own announcement is not replayed
    finally:
        await api.close()
        await worker.close()


async def test_work_announced_during_an_outage_is_looked_at_on_reconnect(
    redis_server: RedisServer,
) -> None:
    bus = RedisBus(redis_server.url, max_backoff=0.2)
    try:
        engine = WorkCounter()
        bus.on_work(engine)
        await wait_subscribed(bus)
        engine.count = 0
        engine.woken.clear()
        redis_server.stop()
        redis_server.start()
        async with asyncio.timeout(10):
            await engine.woken.wait()  # resubscribed: the engine looks at the store now
    finally:
        await bus.close()


def test_the_in_process_bus_wakes_its_engine_at_once() -> None:
    bus = InProcessBus()
    engine = WorkCounter()
    stop = bus.on_work(engine)
    bus.announce_work()
    assert engine.count == 1
    stop()
    bus.announce_work()
    assert engine.count == 1
