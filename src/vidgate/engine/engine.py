"""The engine: the scheduler loop, its leases, and one step per claimed task.

The loop claims due tasks with a lease and runs each step as its own asyncio task, so
many tasks are in flight at once and a slow upstream never delays the others. A
heartbeat keeps the leases of running steps alive; a crashed process's leases simply
run out. Every write a step makes is compare-and-set and fenced by the lease: a step
that lost its lease or raced a client's cancel changes nothing.

A step does one of four things, each in its own module: fail a task past its deadline
(``outcome``), start a new attempt (``submit``, choosing a provider by ``routing``),
recover an interrupted submission (``recovery``), or poll a submitted job (``poll``).
What the process remembers between steps is in ``memory``. docs/RELIABILITY.md lists
every promise and the test proving it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import socket
from datetime import timedelta

from vidgate.domain.models import AttemptState, Task
from vidgate.engine.config import EngineConfig, utcnow
from vidgate.engine.memory import ProcessMemory
from vidgate.engine.meter import NO_METER, EngineMeter
from vidgate.engine.outcome import Outcomes
from vidgate.engine.poll import Poller
from vidgate.engine.recovery import Recovery
from vidgate.engine.retention import EventRetention
from vidgate.engine.routing import CLOSED, Router
from vidgate.engine.submit import Submitter
from vidgate.events.base import EventBus
from vidgate.logs import TaskRef, ref
from vidgate.media import MediaStore
from vidgate.providers.base import ProviderDirectory
from vidgate.store.base import TaskStore

__all__ = ["Engine", "EngineConfig", "utcnow"]

logger = logging.getLogger(__name__)


class Engine:
    def __init__(
        self,
        *,
        store: TaskStore,
        bus: EventBus,
        providers: ProviderDirectory,
        config: EngineConfig,
        owner: str | None = None,
        media: MediaStore | None = None,
        meter: EngineMeter = NO_METER,
    ) -> None:
        self.store = store
        self.bus = bus
        self.providers = providers
        self.config = config
        self.media = media  # where providers with content = "mirror" keep their videos
        self.meter = meter  # metrics (vidgate.metrics), or nothing
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{random.getrandbits(32):08x}"
        self.memory = ProcessMemory()
        self._wake = asyncio.Event()
        self._stopping = False
        self._active: dict[str, asyncio.Task[None]] = {}
        self._next: dict[str, Task] = {}  # claimed while its previous step was finishing
        self._loop_task: asyncio.Task[None] | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self.retention: EventRetention | None = None
        self._retention_task: asyncio.Task[None] | None = None
        # The steps' collaborators, each on the one before.
        self.router = Router(providers=providers, config=config, memory=self.memory, meter=meter)
        self.outcomes = Outcomes(
            store=store,
            bus=bus,
            router=self.router,
            config=config,
            memory=self.memory,
            owner=self.owner,
        )
        self.poller = Poller(
            router=self.router,
            outcomes=self.outcomes,
            config=config,
            memory=self.memory,
            media=media,
        )
        self.submitter = Submitter(
            store=store,
            router=self.router,
            outcomes=self.outcomes,
            poller=self.poller,
            config=config,
            memory=self.memory,
            owner=self.owner,
        )
        self.recovery = Recovery(
            store=store,
            router=self.router,
            outcomes=self.outcomes,
            poller=self.poller,
            submitter=self.submitter,
            config=config,
            memory=self.memory,
        )

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._run(), name="vidgate-engine")
        self._heartbeat_task = asyncio.create_task(self._heartbeat(), name="vidgate-heartbeat")
        if self.config.event_retention_days is not None:
            self.retention = EventRetention(self.store, days=self.config.event_retention_days)
            self._retention_task = asyncio.create_task(
                self.retention.run(), name="vidgate-event-retention"
            )

    def wake(self) -> None:
        """Look for due work now (a task was just created or retried)."""
        self._wake.set()

    async def stop(self, drain_seconds: float = 10.0) -> None:
        """Stop claiming, let in-flight steps finish within ``drain_seconds``, cancel the
        rest, then give up every lease this engine holds so another takes over at once."""
        self._stopping = True
        self._wake.set()
        if self.retention is not None:
            self.retention.stop()
        if self._loop_task is not None:
            await self._loop_task
        if self._retention_task is not None:
            await self._retention_task
        steps = list(self._active.values())
        if steps:
            _, pending = await asyncio.wait(steps, timeout=drain_seconds)
            for step in pending:
                step.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            await asyncio.gather(self._heartbeat_task, return_exceptions=True)
        try:
            released = await self.store.release_owned(owner=self.owner)
        except Exception:
            logger.exception("could not release the leases of %s", self.owner)
            released = 0
        logger.info("engine %s stopped; released %d lease(s)", self.owner, released)

    async def abort(self) -> None:
        """Stop at once, as a crash would: steps are cancelled mid-call, nothing is written
        and no lease is released (they run out). For tests of crash recovery."""
        self._stopping = True
        running = [
            t
            for t in (self._loop_task, self._heartbeat_task, self._retention_task)
            if t is not None
        ]
        running += self._active.values()
        for job in running:
            job.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    async def _run(self) -> None:
        logger.info("engine %s started", self.owner)
        while not self._stopping:
            try:
                claimed = await self._claim()
            except Exception:
                logger.exception("claiming due tasks failed; retrying shortly")
                claimed = 0
            if claimed and claimed == self.config.claim_batch:
                continue  # more may be due right now
            await self._sleep()

    async def _claim(self) -> int:
        room = self.config.max_in_flight - len(self._active)
        if room <= 0:
            return 0
        now = utcnow()
        batch = await self.store.claim(
            owner=self.owner,
            now=now,
            until=now + timedelta(seconds=self.config.lease_seconds),
            limit=min(room, self.config.claim_batch),
        )
        for task in batch:
            if task.video_id in self._active:
                # Our previous step released the task but has not quite finished (it is
                # publishing): run this claim right after it rather than hold the lease.
                self._next[task.video_id] = task
                continue
            self._launch(task)
        return len(batch)

    def _launch(self, task: Task) -> None:
        step = asyncio.create_task(self._step(task), name=f"step-{task.video_id}")
        self._active[task.video_id] = step
        self.meter.steps_in_flight(len(self._active))
        step.add_done_callback(functools.partial(self._step_done, task.video_id))

    def _step_done(self, video_id: str, _: asyncio.Task[None]) -> None:
        self._active.pop(video_id, None)
        self.meter.steps_in_flight(len(self._active))
        queued = self._next.pop(video_id, None)
        if queued is not None and not self._stopping:
            self._launch(queued)
        elif len(self._active) == self.config.max_in_flight - 1:
            self._wake.set()  # we were full: there is room to claim again

    async def _sleep(self) -> None:
        wait = self.config.idle_wait
        if len(self._active) < self.config.max_in_flight:
            try:
                due = await self.store.next_due(utcnow())
            except Exception:
                due = None
            if due is not None:
                wait = min(wait, max(0.0, (due - utcnow()).total_seconds()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=max(wait, 0.005))
        self._wake.clear()

    async def _heartbeat(self) -> None:
        """Keep the leases of running steps alive, so only a dead process loses them."""
        interval = self.config.heartbeat_seconds or max(0.1, self.config.lease_seconds / 3)
        while True:
            await asyncio.sleep(interval)
            running = list(self._active)
            if not running:
                continue
            until = utcnow() + timedelta(seconds=self.config.lease_seconds)
            try:
                await self.store.extend_leases(owner=self.owner, video_ids=running, until=until)
            except Exception as exc:
                logger.warning("lease heartbeat failed: %s", exc)

    # -- one step ----------------------------------------------------------------------

    async def _step(self, task: Task) -> None:
        who = ref(task.video_id, task.external_id)
        logger.debug("step.begin %s", who, extra=self._fields(who, "step.begin"))
        try:
            now = utcnow()
            if task.next_check_at is not None:
                # How far behind schedule the engine is: the reliability core's first symptom.
                self.meter.check_lag((now - task.next_check_at).total_seconds())
            attempt = task.current_attempt
            if now >= task.deadline_at:
                await self.outcomes.deadline(task, attempt)
            elif attempt is None or attempt.state in CLOSED:
                await self.submitter.new_attempt(task)
            elif attempt.state is AttemptState.SUBMITTING:
                await self.recovery.resume(task, attempt)
            else:
                await self.poller.poll(task, attempt)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Never let one task stop the loop: release it and look again later.
            logger.exception("step failed for %s", who, extra=who.extra)
            await self.outcomes.release_after_error(task)
        finally:
            logger.debug("step.end %s", who, extra=self._fields(who, "step.end"))

    def _fields(self, who: TaskRef, action: str) -> dict[str, object]:
        return who.extra | {"action": action, "owner": self.owner}
