"""A test rig for the engine: in-memory store, in-process bus, scripted upstream(s).

The engine runs its real loop with short real times (no clock patching); fake providers
decide what the upstream says and when. Tasks are created, cancelled and retried through
``TaskService``, as the api does. Test modules use the fixture as ``make_rig = rig.make_rig``
(an assignment, so linters do not take the fixture argument for a shadowed import).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from vidgate.config import ProviderConfig
from vidgate.domain.events import EventType, TaskEvent
from vidgate.domain.models import Task
from vidgate.domain.schedule import PollPolicy
from vidgate.engine.engine import Engine, EngineConfig
from vidgate.events.memory import InProcessBus
from vidgate.media import MediaStore
from vidgate.providers.registry import ProviderRegistry
from vidgate.service import NewTask, TaskService
from vidgate.testing import FakeProvider, MemoryTaskStore

PUBLIC = "http://vidgate.test:8000"
USER = "alice"
NEW = NewTask(prompt="a cat on a skateboard", model="sora-2", seconds="4", size="720x1280")
CDN = "https://cdn.example/v.mp4"
TIMEOUT = 5.0  # generous for a loaded machine; a passing test takes a fraction of it


def fast_config(**changes: Any) -> EngineConfig:
    config = EngineConfig(
        public_url=PUBLIC,
        lease_seconds=5.0,
        idle_wait=0.05,
        submit_retries=4,
        poll_failures=4,
        backoff_base=0.05,
        backoff_cap=0.2,
        busy_wait=0.05,
        poll=PollPolicy(first=0.05, minimum=0.02, maximum=0.2),
    )
    return dataclasses.replace(config, **changes)


def provider_config(fake: FakeProvider, **fields: Any) -> ProviderConfig:
    """A provider's config for a fake (its idempotency as the fake behaves)."""
    fields.setdefault("idempotency", fake.honours_idempotency)
    return ProviderConfig(name=fake.name, base_url="http://unused", **fields)


@dataclass
class Rig:
    store: MemoryTaskStore
    bus: InProcessBus
    fakes: dict[str, FakeProvider]
    registry: ProviderRegistry
    service: TaskService
    engines: list[Engine] = field(default_factory=list)
    published: list[TaskEvent] = field(default_factory=list)

    @property
    def provider(self) -> FakeProvider:
        """The first (or only) provider."""
        return next(iter(self.fakes.values()))

    def engine(
        self, owner: str = "engine-a", *, media: MediaStore | None = None, **config: Any
    ) -> Engine:
        """A started engine on this rig's store, bus and providers."""
        engine = Engine(
            store=self.store,
            bus=self.bus,
            providers=self.registry,
            config=fast_config(**config),
            owner=owner,
            media=media,
        )
        self.engines.append(engine)
        engine.start()
        return engine

    async def crash(self, engine: Engine) -> None:
        """Kill ``engine`` as a crash would (nothing written, no lease released)."""
        await engine.abort()
        self.engines.remove(engine)

    async def create(self, new: NewTask = NEW) -> Task:
        return (await self.service.create(USER, new)).task

    async def get(self, video_id: str) -> Task:
        task = await self.store.get(video_id)
        assert task is not None
        return task

    async def wait(self, video_id: str, check: Callable[[Task], bool]) -> Task:
        """The task once ``check`` holds for it; fails with its last state otherwise."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            task = await self.get(video_id)
            if check(task):
                return task
            if time.monotonic() > deadline:
                pytest.fail(f"condition not reached in {TIMEOUT}s; task is {task}")
            await asyncio.sleep(0.01)

    async def submitted(self, video_id: str) -> Task:
        return await self.wait(video_id, lambda t: t.external_id is not None)

    async def done(self, video_id: str) -> Task:
        return await self.wait(video_id, lambda t: t.status.terminal)

    def events(self, video_id: str) -> list[TaskEvent]:
        return [e for e in self.published if e.video_id == video_id]


async def until(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not reached in {TIMEOUT}s")
        await asyncio.sleep(0.01)


async def polls(provider: FakeProvider, more: int) -> None:
    """Wait until the upstream has been asked about its jobs ``more`` more times."""
    target = len(provider.calls_to("get")) + more
    await until(lambda: len(provider.calls_to("get")) >= target)


MakeRig = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def make_rig(caplog: pytest.LogCaptureFixture) -> AsyncIterator[MakeRig]:
    """Build a rig; on teardown stop its engines and insist nothing logged an error.

    ``make_rig(**fake)`` has one ``FakeProvider(**fake)``; ``make_rig(providers=[...],
    configs=[...])`` routes between several (configs from ``provider_config``).
    """
    caplog.set_level(logging.INFO, logger="vidgate")
    rigs: list[Rig] = []

    async def make(
        *,
        deadline_seconds: float = 60.0,
        providers: Sequence[FakeProvider] | None = None,
        configs: Sequence[ProviderConfig] = (),
        **provider: Any,
    ) -> Rig:
        store = MemoryTaskStore()
        bus = InProcessBus()
        fakes = list(providers) if providers is not None else [FakeProvider(**provider)]
        registry = ProviderRegistry(fakes, configs=configs)
        rig = Rig(
            store=store,
            bus=bus,
            fakes={fake.name: fake for fake in fakes},
            registry=registry,
            service=TaskService(
                store=store, bus=bus, providers=registry, deadline_seconds=deadline_seconds
            ),
        )

        def wake_engines() -> None:
            for engine in rig.engines:
                engine.wake()

        async def collect(event: TaskEvent) -> None:
            rig.published.append(event)

        rig.service.on_work = wake_engines
        bus.listen(collect)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        for engine in rig.engines:
            await engine.stop(drain_seconds=1.0)
        await rig.service.drain()
    # caplog.records holds only the current phase (teardown): look at all three.
    records = [*caplog.get_records("setup"), *caplog.get_records("call"), *caplog.records]
    errors = [r for r in records if r.levelno >= logging.ERROR]
    assert not errors, f"errors were logged: {[r.getMessage() for r in errors]}"


def terminal_events(events: list[TaskEvent]) -> list[TaskEvent]:
    return [e for e in events if e.type is not EventType.PROGRESS]
