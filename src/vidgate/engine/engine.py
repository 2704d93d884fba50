"""The scheduler loop and the submit / poll steps (ARCHITECTURE.md "Engine rules").

The loop claims due tasks with a lease and runs each step as its own asyncio task, so
many tasks are in flight at once and a slow upstream never delays the others. Every
write a step makes is compare-and-set and fenced by the lease; a step that lost its
lease or raced a client's cancel changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import random
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from vidgate.domain import events, transitions
from vidgate.domain.models import Attempt, AttemptState, Task, TaskError
from vidgate.domain.schedule import PollPolicy, backoff_delay, next_poll_delay
from vidgate.domain.status import TaskStatus
from vidgate.engine.urls import choose_video_url
from vidgate.events.base import EventBus
from vidgate.logs import ref
from vidgate.providers.base import (
    Provider,
    RateLimited,
    SubmitRequest,
    UpstreamError,
    UpstreamJob,
    UpstreamNotFound,
    UpstreamRejected,
)
from vidgate.providers.registry import ProviderRegistry
from vidgate.store.base import TaskStore, Write

logger = logging.getLogger(__name__)

_CLOSED = frozenset({AttemptState.FINISHED, AttemptState.FAILED, AttemptState.UNKNOWN})


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True)
class EngineConfig:
    public_url: str
    lease_seconds: float = 30.0
    max_in_flight: int = 256
    claim_batch: int = 64
    idle_wait: float = 1.0  # longest sleep between looks at the store
    max_transient_failures: int = 8  # consecutive, per task, before giving up
    poll: PollPolicy = dataclasses.field(default_factory=PollPolicy)


class Engine:
    def __init__(
        self,
        *,
        store: TaskStore,
        bus: EventBus,
        providers: ProviderRegistry,
        config: EngineConfig,
        owner: str | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.providers = providers
        self.config = config
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{random.getrandbits(32):08x}"
        self._wake = asyncio.Event()
        self._stopping = False
        self._inflight: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._limits = {p.name: asyncio.Semaphore(p.max_concurrency) for p in providers.all()}
        self._failures: dict[str, int] = {}

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._run(), name="vidgate-engine")

    def wake(self) -> None:
        """Look for due work now (a task was just created or retried)."""
        self._wake.set()

    async def stop(self, drain_seconds: float = 10.0) -> None:
        """Stop claiming, let in-flight steps finish within ``drain_seconds``, then cancel."""
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            await self._loop_task
        if self._inflight:
            _, pending = await asyncio.wait(self._inflight, timeout=drain_seconds)
            for step in pending:
                step.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

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
        logger.info("engine %s stopped claiming", self.owner)

    async def _claim(self) -> int:
        room = self.config.max_in_flight - len(self._inflight)
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
            step = asyncio.create_task(self._step(task), name=f"step-{task.video_id}")
            self._inflight.add(step)
            step.add_done_callback(self._step_done)
        return len(batch)

    def _step_done(self, step: asyncio.Task[None]) -> None:
        self._inflight.discard(step)
        if len(self._inflight) == self.config.max_in_flight - 1:
            self._wake.set()  # we were full: there is room to claim again

    async def _sleep(self) -> None:
        wait = self.config.idle_wait
        try:
            due = await self.store.next_due(utcnow())
        except Exception:
            due = None
        if due is not None:
            wait = min(wait, max(0.0, (due - utcnow()).total_seconds()))
        if len(self._inflight) >= self.config.max_in_flight:
            wait = self.config.idle_wait  # full: a finishing step wakes us
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=max(wait, 0.005))
        self._wake.clear()

    # -- one step ----------------------------------------------------------------------

    async def _step(self, task: Task) -> None:
        try:
            now = utcnow()
            attempt = task.current_attempt
            if now >= task.deadline_at:
                await self._deadline(task, attempt)
            elif attempt is None or attempt.state in _CLOSED:
                await self._submit(task, None)  # first attempt, or a retry's new one
            elif attempt.state is AttemptState.SUBMITTING:
                await self._submit(task, attempt)
            else:
                await self._poll(task, attempt)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Never let one task stop the loop: release it and look again later.
            logger.exception("step failed for %s", ref(task.video_id, task.external_id))
            await self._release_later(task, backoff_delay(3))

    async def _submit(self, task: Task, resume: Attempt | None) -> None:
        now = utcnow()
        if resume is None:
            provider = self.providers.route(task.model)
            if provider is None:
                await self._finish(
                    task, None, code="NO_PROVIDER", message=f"No provider offers {task.model!r}."
                )
                return
            number = task.attempt + 1
            attempt = Attempt(
                video_id=task.video_id,
                number=number,
                provider=provider.name,
                idempotency_key=f"vidgate-{task.video_id}-{number}",
                created_at=now,
            )
            # Engine rule 4: the attempt and its key are durable before the paid call.
            written = await self.store.write(
                Write(
                    before=task,
                    after=dataclasses.replace(task, attempt=number, updated_at=now),
                    fence=self.owner,
                    insert_attempt=attempt,
                )
            )
            if written is None:
                logger.warning("lost the lease on %s before submitting", ref(task.video_id, None))
                return
            task = written.task
        else:
            attempt = resume
            found = self.providers.get(resume.provider)
            if found is None:
                await self._finish(
                    task,
                    resume,
                    code="NO_PROVIDER",
                    message=f"Provider {resume.provider!r} is no longer configured.",
                )
                return
            provider = found
            if not provider.honours_idempotency:
                # The create call may have reached the upstream before we crashed; without
                # an honoured Idempotency-Key a second call could start a second paid job.
                await self._finish(
                    task,
                    dataclasses.replace(resume, state=AttemptState.UNKNOWN),
                    code="SUBMISSION_UNCERTAIN",
                    message="The submission was interrupted and the upstream cannot be asked "
                    "safely whether it created the job; not submitting again.",
                )
                return

        request = SubmitRequest(
            prompt=task.prompt,
            model=provider.upstream_model(task.model) or task.model,
            seconds=task.seconds,
            size=task.size,
            input_reference=task.input_reference,
        )
        try:
            async with self._limits[provider.name]:
                job = await provider.create(request, idempotency_key=attempt.idempotency_key)
        except UpstreamRejected as exc:
            await self._finish(
                task,
                attempt,
                code="UPSTREAM_REJECTED",
                message=exc.message,
            )
            return
        except UpstreamError as exc:
            await self._transient(task, exc, "submit")
            return
        self._failures.pop(task.video_id, None)
        await self._submitted(task, attempt, provider, job)

    async def _submitted(
        self, task: Task, attempt: Attempt, provider: Provider, job: UpstreamJob
    ) -> None:
        now = utcnow()
        seen = self._observation(task, provider, job)
        after = transitions.submitted(
            task, provider=provider.name, external_id=job.external_id, seen=seen, now=now
        )
        done = dataclasses.replace(
            attempt,
            state=_attempt_state(after),
            external_id=job.external_id,
            upstream_status=after.status.pushed,
            submitted_at=now,
            finished_at=now if after.status.terminal else None,
            error=after.error,
        )
        delay = next_poll_delay(since_submit=0, progress=after.progress, policy=self.config.poll)
        result = await self._commit(task, after, delay=delay, attempt=done)
        if result is not None:
            logger.info(
                "submitted to %s: %s",
                provider.name,
                ref(task.video_id, job.external_id),
                extra=ref(task.video_id, job.external_id).extra | {"attempt": attempt.number},
            )
            return
        # A client cancelled (or someone else wrote) while we were submitting: keep the
        # record of the upstream job and do not leave it running for nothing.
        current = await self.store.get(task.video_id)
        if current is not None and current.status.terminal:
            closed = dataclasses.replace(
                done,
                state=AttemptState.FAILED,
                upstream_status="cancelled",
                finished_at=now,
                error=TaskError(code="CANCELLED", message="Cancelled while being submitted."),
            )
            await self.store.write(Write(before=current, after=current, update_attempt=closed))
            await self._delete_upstream(provider, job.external_id, task.video_id)

    async def _poll(self, task: Task, attempt: Attempt) -> None:
        provider = self.providers.get(attempt.provider)
        if provider is None or attempt.external_id is None:
            await self._finish(
                task, attempt, code="NO_PROVIDER", message=f"Provider {attempt.provider!r} is gone."
            )
            return
        try:
            async with self._limits[provider.name]:
                job = await provider.get(attempt.external_id)
        except UpstreamNotFound:
            await self._finish(
                task,
                attempt,
                code="UPSTREAM_JOB_LOST",
                message="The upstream no longer knows the job.",
            )
            return
        except UpstreamError as exc:
            await self._transient(task, exc, "poll")
            return
        self._failures.pop(task.video_id, None)
        now = utcnow()
        seen = self._observation(task, provider, job)
        if seen.status is None:
            logger.warning(
                "unknown upstream status %r for %s; treating it as not finished",
                seen.raw_status,
                ref(task.video_id, attempt.external_id),
                extra=ref(task.video_id, attempt.external_id).extra,
            )
        after = transitions.observe(task, seen, now=now)
        updated = dataclasses.replace(
            attempt,
            state=_attempt_state(after),
            upstream_status=after.status.pushed,
            finished_at=now if after.status.terminal else None,
            error=after.error,
        )
        since = (now - (attempt.submitted_at or now)).total_seconds()
        delay = next_poll_delay(
            since_submit=since, progress=after.progress, policy=self.config.poll
        )
        await self._commit(task, after, delay=delay, attempt=updated)

    async def _deadline(self, task: Task, attempt: Attempt | None) -> None:
        await self._finish(
            task,
            attempt,
            code="TASK_TIMEOUT",
            message="The task did not finish before its deadline.",
        )
        if attempt is not None and attempt.external_id:
            provider = self.providers.get(attempt.provider)
            if provider is not None:
                await self._delete_upstream(provider, attempt.external_id, task.video_id)

    # -- helpers -----------------------------------------------------------------------

    def _observation(
        self, task: Task, provider: Provider, job: UpstreamJob
    ) -> transitions.Observation:
        seen = job.observation
        if seen.status is not TaskStatus.COMPLETED:
            return seen
        url = choose_video_url(
            content_mode=provider.content_mode,
            upstream_url=job.raw_url,
            public_url=self.config.public_url,
            video_id=task.video_id,
        )
        return dataclasses.replace(seen, video_url=url)

    async def _finish(
        self, task: Task, attempt: Attempt | None, *, code: str, message: str
    ) -> None:
        now = utcnow()
        after = transitions.fail(task, code=code, message=message, now=now)
        closed = None
        if attempt is not None:
            state = attempt.state if attempt.state is AttemptState.UNKNOWN else AttemptState.FAILED
            closed = dataclasses.replace(
                attempt, state=state, finished_at=now, error=TaskError(code=code, message=message)
            )
        await self._commit(task, after, delay=None, attempt=closed)

    async def _transient(self, task: Task, exc: UpstreamError, action: str) -> None:
        failures = self._failures.get(task.video_id, 0) + 1
        self._failures[task.video_id] = failures
        logger.warning(
            "%s failed for %s (%d in a row): %s",
            action,
            ref(task.video_id, task.external_id),
            failures,
            exc.message,
            extra=ref(task.video_id, task.external_id).extra,
        )
        if failures >= self.config.max_transient_failures and not isinstance(exc, UpstreamRejected):
            self._failures.pop(task.video_id, None)
            await self._finish(
                task,
                task.current_attempt,
                code="UPSTREAM_UNAVAILABLE",
                message=f"The upstream kept failing: {exc.message}",
            )
            return
        delay = backoff_delay(failures)
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        await self._release_later(task, delay)

    async def _release_later(self, task: Task, delay: float) -> None:
        try:
            await self._commit(task, task, delay=delay)
        except Exception:
            logger.exception("could not release %s", ref(task.video_id, task.external_id))

    async def _commit(
        self, before: Task, after: Task, *, delay: float | None, attempt: Attempt | None = None
    ) -> Task | None:
        """Write ``after`` (releasing the lease) and push its message if anything changed."""
        now = utcnow()
        after = dataclasses.replace(
            after,
            lease_owner=None,
            lease_until=None,
            next_check_at=None
            if after.status.terminal or delay is None
            else now + timedelta(seconds=delay),
        )
        written = await self.store.write(
            Write(
                before=before,
                after=after,
                fence=self.owner,
                update_attempt=attempt,
                event=events.change(before, after),
            )
        )
        if written is None:
            logger.warning(
                "write refused for %s: the task changed or the lease was lost",
                ref(before.video_id, before.external_id),
                extra=ref(before.video_id, before.external_id).extra,
            )
            return None
        if written.event is not None:
            await self.bus.publish(written.event)
            if written.task.status.terminal:
                logger.info(
                    "%s %s",
                    ref(after.video_id, after.external_id),
                    written.task.status,
                    extra=ref(after.video_id, after.external_id).extra,
                )
        return written.task

    async def _delete_upstream(self, provider: Provider, external_id: str, video_id: str) -> None:
        try:
            await provider.delete(external_id)
        except UpstreamError as exc:
            logger.info(
                "could not delete upstream job of %s: %s", ref(video_id, external_id), exc.message
            )


def _attempt_state(task: Task) -> AttemptState:
    if task.status is TaskStatus.COMPLETED:
        return AttemptState.FINISHED
    if task.status is TaskStatus.FAILED:
        return AttemptState.FAILED
    return AttemptState.SUBMITTED
