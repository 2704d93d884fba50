"""The scheduler loop and the submit / recover / poll steps (ARCHITECTURE.md "Engine rules").

The loop claims due tasks with a lease and runs each step as its own asyncio task, so
many tasks are in flight at once and a slow upstream never delays the others. A
heartbeat keeps the leases of running steps alive; a crashed process's leases simply
run out. Every write a step makes is compare-and-set and fenced by the lease: a step
that lost its lease or raced a client's cancel changes nothing.

Submission is where money is at stake. The attempt row and its Idempotency-Key are
written before the create call; an attempt whose create call may have reached the
upstream without an answer (a crash, a timeout) is recovered by the provider's policy
(resend the same key, reconcile with the upstream's job list, or fail), never by a
blind second create. docs/RELIABILITY.md lists every promise and the test proving it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import random
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from vidgate.domain import events, transitions
from vidgate.domain.models import Attempt, AttemptState, Task, TaskError
from vidgate.domain.schedule import PollPolicy, backoff_delay, next_poll_delay
from vidgate.domain.status import TaskStatus
from vidgate.engine.classify import Action, Verdict, classify
from vidgate.engine.limits import CircuitBreaker, ProviderGate
from vidgate.engine.memory import ProcessMemory
from vidgate.engine.observe import observation_of
from vidgate.engine.urls import new_access_token, stream_url
from vidgate.events.base import EventBus
from vidgate.logs import TaskRef, ref
from vidgate.media import MediaStore, TooLarge
from vidgate.providers.base import (
    Binding,
    ErrorCategory,
    JobRef,
    JobView,
    Provider,
    ProviderDirectory,
    RateLimited,
    ResultVideo,
    SubmitRequest,
    UpstreamError,
    UpstreamNotFound,
    UpstreamProtocolError,
    UpstreamRejected,
)
from vidgate.providers.cleanup import delete_job
from vidgate.store.base import TaskStore, Write

logger = logging.getLogger(__name__)

_CLOSED = frozenset({AttemptState.FINISHED, AttemptState.FAILED, AttemptState.UNKNOWN})
_RECONCILE_LIMIT = 100
_RECONCILE_SLACK = 5.0  # seconds of clock difference tolerated between us and the upstream


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True)
class EngineConfig:
    public_url: str
    lease_seconds: float = 30.0
    max_in_flight: int = 256
    claim_batch: int = 64
    idle_wait: float = 1.0  # longest sleep between looks at the store
    max_attempts: int = 3  # upstream jobs per task, failovers and retries included
    submit_retries: int = 5  # transient failures of one submission before giving it up
    failover_after: int = 2  # ... or before moving on, when another provider could take it
    poll_failures: int = 10  # transient failures in a row while polling before giving up
    unconfirmed_completions: int = 3  # "completed" answers without a video before failing
    backoff_base: float = 1.0
    backoff_cap: float = 30.0
    busy_wait: float = 2.0  # no provider can take the task now: look again after this
    heartbeat_seconds: float | None = None  # lease renewal interval; default a third of it
    poll: PollPolicy = dataclasses.field(default_factory=PollPolicy)
    # content = "auto": results that expire sooner than this are mirrored at completion.
    mirror_before_seconds: float = 86400.0
    # A job whose upstream reports no progress is shown an estimate, as if it took this.
    expected_job_seconds: float = 60.0
    concurrency_wait: float = 5.0  # the upstream runs too many of our jobs: look again after


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
    ) -> None:
        self.store = store
        self.bus = bus
        self.providers = providers
        self.config = config
        self.media = media  # where providers with content = "mirror" keep their videos
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{random.getrandbits(32):08x}"
        self._wake = asyncio.Event()
        self._stopping = False
        self._active: dict[str, asyncio.Task[None]] = {}
        self._next: dict[str, Task] = {}  # claimed while its previous step was finishing
        self._loop_task: asyncio.Task[None] | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self.memory = ProcessMemory(gates={p.name: self._gate(p) for p in providers.all()})

    def _gate_of(self, provider: Provider) -> ProviderGate:
        gate = self.memory.gates.get(provider.name)
        if gate is None:  # a provider rebuilt from a binding
            gate = self.memory.gates[provider.name] = self._gate(provider)
        return gate

    def _provider_of(self, attempt: Attempt) -> Provider | None:
        """The provider the attempt is bound to, even if its config changed since."""
        return self.providers.resolve(attempt.provider, attempt.binding)

    def _gate(self, provider: Provider) -> ProviderGate:
        policy = self.providers.policy(provider.name)
        return ProviderGate(
            provider.name,
            concurrency=provider.max_concurrency,
            rate=policy.requests_per_second,
            breaker=CircuitBreaker(
                provider.name,
                failures=policy.breaker_failures,
                cooldown=policy.breaker_cooldown_seconds,
            ),
        )

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._run(), name="vidgate-engine")
        self._heartbeat_task = asyncio.create_task(self._heartbeat(), name="vidgate-heartbeat")

    def wake(self) -> None:
        """Look for due work now (a task was just created or retried)."""
        self._wake.set()

    async def stop(self, drain_seconds: float = 10.0) -> None:
        """Stop claiming, let in-flight steps finish within ``drain_seconds``, cancel the
        rest, then give up every lease this engine holds so another takes over at once."""
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            await self._loop_task
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
        running = [t for t in (self._loop_task, self._heartbeat_task) if t is not None]
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
        step.add_done_callback(functools.partial(self._step_done, task.video_id))

    def _step_done(self, video_id: str, _: asyncio.Task[None]) -> None:
        self._active.pop(video_id, None)
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
            attempt = task.current_attempt
            if now >= task.deadline_at:
                await self._deadline(task, attempt)
            elif attempt is None or attempt.state in _CLOSED:
                await self._new_attempt(task)
            elif attempt.state is AttemptState.SUBMITTING:
                await self._resume(task, attempt)
            else:
                await self._poll(task, attempt)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Never let one task stop the loop: release it and look again later.
            logger.exception("step failed for %s", who, extra=who.extra)
            await self._release_after_error(task)
        finally:
            logger.debug("step.end %s", who, extra=self._fields(who, "step.end"))

    def _fields(self, who: TaskRef, action: str) -> dict[str, object]:
        return who.extra | {"action": action, "owner": self.owner}

    async def _new_attempt(self, task: Task) -> None:
        if task.attempt >= self.config.max_attempts:
            last = task.current_attempt
            error = last.error if last is not None and last.error is not None else None
            await self._finish(
                task,
                None,
                code=error.code if error else "UPSTREAM_UNAVAILABLE",
                message=error.message if error else "No attempt succeeded.",
            )
            return
        for provider in self._preference(task):
            limit = self.providers.policy(provider.name).max_jobs
            if limit is None:
                written = await self._begin_attempt(task, provider)
            else:
                # Count and claim a job slot as one step, or tasks claimed together
                # would all see the same free slot (exact per process).
                async with self.memory.slot_locks.setdefault(provider.name, asyncio.Lock()):
                    if await self.store.running_jobs(provider=provider.name) >= limit:
                        continue
                    written = await self._begin_attempt(task, provider)
            if written is not None:
                await self._send(written, written.attempts[-1], provider)
            return
        if not self.providers.candidates(task.model):
            await self._finish(
                task, None, code="NO_PROVIDER", message=f"No provider offers {task.model!r}."
            )
        else:
            await self._release_later(task, self.config.busy_wait)  # all busy or failing

    async def _begin_attempt(self, task: Task, provider: Provider) -> Task | None:
        now = utcnow()
        number = task.attempt + 1
        binding = Binding(
            protocol=provider.kind,
            provider=provider.name,
            model=provider.upstream_model(task.model) or task.model,
            base_url=provider.base_url,
            credential=provider.credential,
        )
        attempt = Attempt(
            video_id=task.video_id,
            number=number,
            provider=provider.name,
            idempotency_key=f"vidgate-{task.video_id}-{number}",
            created_at=now,
            binding=binding.to_json(),
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
            self._refused(task)
            return None
        self.memory.uncertain[(task.video_id, number)] = False  # nothing sent yet
        return written.task

    def _preference(self, task: Task) -> list[Provider]:
        """Routing: healthy providers, untried ones first, by priority, then by weight."""
        tried = {a.provider for a in task.attempts if a.state in _CLOSED}
        healthy = [
            p
            for p in self.providers.candidates(task.model)
            if self._gate_of(p).breaker.available()
            and self.providers.catalogue.can(task.model, p.name, task.params)
        ]
        ordered: list[Provider] = []
        for group in (
            [p for p in healthy if p.name not in tried],
            [p for p in healthy if p.name in tried],
        ):
            by_priority: dict[int, list[Provider]] = {}
            for provider in group:
                by_priority.setdefault(self.providers.policy(provider.name).priority, []).append(
                    provider
                )
            for priority in sorted(by_priority):
                ordered += self._weighted_order(by_priority[priority])
        return ordered

    def _weighted_order(self, group: list[Provider]) -> list[Provider]:
        """``group`` in a random order where heavier providers tend to come first."""
        rest = list(group)
        ordered = []
        while rest:
            weights = [self.providers.policy(p.name).weight for p in rest]
            pick = random.choices(rest, weights=weights)[0]
            ordered.append(pick)
            rest.remove(pick)
        return ordered

    async def _send(self, task: Task, attempt: Attempt, provider: Provider) -> None:
        gate = self._gate_of(provider)
        key = (task.video_id, attempt.number)
        if not gate.breaker.allows():
            if not self.memory.maybe_received(task.video_id, attempt.number) and self._alternative(
                task, provider
            ):
                # Nothing of this attempt reached the provider: move on without waiting.
                error = TaskError(
                    code="UPSTREAM_UNAVAILABLE",
                    message=f"Provider {provider.name!r} is failing; circuit open.",
                )
                await self._end_attempt(task, attempt, error, retry=True)
            else:
                await self._release_later(task, self.config.busy_wait)
            return
        request = SubmitRequest(
            prompt=task.prompt,
            model=self._upstream_model(task, attempt, provider),
            params=task.params,
            seconds=task.seconds,
            size=task.size,
        )
        try:
            async with gate.request():
                job = await provider.create(request, idempotency_key=attempt.idempotency_key)
        except UpstreamError as exc:
            verdict = classify(exc)
            if verdict.action is Action.REJECT:
                gate.breaker.success()  # it answered; the request was the problem
                assert isinstance(exc, UpstreamRejected)
                await self._rejected(task, attempt, provider, exc)
                return
            if isinstance(exc, RateLimited) and exc.concurrency:
                # Our jobs fill the upstream's slots: not a failure of the upstream, and
                # nothing was created. Wait for one to finish (or go elsewhere).
                gate.breaker.success()
                if self._alternative(task, provider):
                    error = TaskError(code="UPSTREAM_BUSY", message=exc.message)
                    await self._end_attempt(task, attempt, error, retry=True)
                else:
                    wait = max(self.config.concurrency_wait, exc.retry_after or 0.0)
                    await self._release_later(task, wait)
                return
            gate.breaker.failure()
            if verdict.maybe_received:
                self.memory.uncertain[key] = True
            failures = self._count_failure(task, verdict, "submit")
            moving_on = (
                failures >= self.config.failover_after
                and not self.memory.maybe_received(task.video_id, attempt.number)
                and self._alternative(task, provider)
            )
            if moving_on or failures >= self.config.submit_retries:
                await self._abandon_submission(task, attempt, verdict)
            else:
                await self._release_later(task, self._backoff(failures, verdict))
            return
        gate.breaker.success()
        self.memory.failures.pop(task.video_id, None)
        if await self.store.known_external_ids(
            provider=provider.name, external_ids=[job.external_id]
        ):
            # The upstream answered with a job another attempt already owns: its
            # idempotency is broken. Sending again could pay twice; stop here.
            await self._uncertain_submission(
                task,
                attempt,
                f"The upstream answered with job {job.external_id}, which belongs to another "
                "task; not submitting again.",
            )
            return
        self.memory.uncertain.pop(key, None)
        await self._apply(task, attempt, provider, job, first=True)

    @staticmethod
    def _upstream_model(task: Task, attempt: Attempt, provider: Provider) -> str:
        bound = (attempt.binding or {}).get("model")
        if isinstance(bound, str) and bound:
            return bound
        return provider.upstream_model(task.model) or task.model

    async def _rejected(
        self, task: Task, attempt: Attempt, provider: Provider, exc: UpstreamRejected
    ) -> None:
        """The upstream refused the request. Out of credits there is no verdict on the
        request: another provider may take it. Anything else is final."""
        if exc.category is ErrorCategory.INSUFFICIENT_CREDITS and self._alternative(task, provider):
            error = TaskError(code="INSUFFICIENT_CREDITS", message=exc.message)
            await self._end_attempt(task, attempt, error, retry=True)
            return
        code = {
            ErrorCategory.CONTENT_POLICY: "CONTENT_POLICY",
            ErrorCategory.INSUFFICIENT_CREDITS: "INSUFFICIENT_CREDITS",
        }.get(exc.category, "UPSTREAM_REJECTED")
        await self._finish(task, attempt, code=code, message=exc.message)

    def _alternative(self, task: Task, provider: Provider) -> bool:
        """Whether another healthy provider could take this task now."""
        if task.attempt >= self.config.max_attempts:
            return False
        others = [p for p in self.providers.candidates(task.model) if p.name != provider.name]
        return any(self._gate_of(p).breaker.available() for p in others)

    async def _abandon_submission(self, task: Task, attempt: Attempt, verdict: Verdict) -> None:
        """The submission kept failing. Fail over, unless the upstream may hold a job."""
        self.memory.failures.pop(task.video_id, None)
        if self.memory.uncertain.pop((task.video_id, attempt.number), True):
            # A job may exist upstream for this attempt: another attempt could pay twice.
            await self._finish(
                task,
                dataclasses.replace(attempt, state=AttemptState.UNKNOWN),
                code="UPSTREAM_UNAVAILABLE",
                message="The upstream kept failing and may have created the job: "
                + verdict.message,
            )
            return
        error = TaskError(code="UPSTREAM_UNAVAILABLE", message=verdict.message)
        await self._end_attempt(task, attempt, error, retry=True)

    async def _resume(self, task: Task, attempt: Attempt) -> None:
        """An attempt left ``submitting``: by a transient error, or by a crash."""
        provider = self._provider_of(attempt)
        if provider is None:
            await self._finish(
                task,
                attempt,
                code="NO_PROVIDER",
                message=f"Provider {attempt.provider!r} is no longer configured.",
            )
            return
        if not self.memory.maybe_received(task.video_id, attempt.number):
            await self._send(task, attempt, provider)  # nothing reached the upstream
            return
        policy = self._recovery(provider)
        who = ref(task.video_id, None)
        # Loud after a crash (nothing known of the attempt here), quiet on later resends.
        level = (
            logging.INFO
            if (task.video_id, attempt.number) not in self.memory.uncertain
            else logging.DEBUG
        )
        logger.log(
            level, "recovering the interrupted submission of %s by %s", who, policy, extra=who.extra
        )
        if policy == "lookup":
            await self._lookup(task, attempt, provider)
        elif policy == "resend":
            await self._send(task, attempt, provider)  # same key: the upstream dedupes
        elif policy == "reconcile":
            await self._reconcile(task, attempt, provider)
        else:
            await self._uncertain_submission(
                task,
                attempt,
                "The submission was interrupted and the upstream cannot be asked safely "
                "whether it created the job; not submitting again.",
            )

    def _recovery(self, provider: Provider) -> str:
        """How an interrupted submission to ``provider`` is made safe, from what the
        adapter declares: ask for the job by our own id, resend the same key, or list the
        upstream's jobs, as configured; "fail" when none of them exists."""
        features = provider.features
        if features.client_id:
            return "lookup"
        configured = self.providers.policy(provider.name).recovery
        if configured == "resend" and features.idempotency_key:
            return "resend"
        if configured == "reconcile" and features.list_jobs:
            return "reconcile"
        return "fail"

    async def _lookup(self, task: Task, attempt: Attempt, provider: Provider) -> None:
        """Ask the upstream for the job by the id we chose for it (Kling external_task_id)."""
        gate = self._gate_of(provider)
        try:
            async with gate.request():
                job = await provider.find_by_client_id(attempt.idempotency_key)
        except UpstreamError as exc:
            verdict = classify(exc)
            failures = self._count_failure(task, verdict, "lookup")
            if failures >= self.config.submit_retries:
                self.memory.failures.pop(task.video_id, None)
                await self._uncertain_submission(
                    task, attempt, f"Could not ask the upstream for the job: {verdict.message}"
                )
            else:
                await self._release_later(task, self._backoff(failures, verdict))
            return
        who = ref(task.video_id, job.external_id if job else None)
        if job is None:
            logger.info("no upstream job for %s; submitting", who, extra=who.extra)
            self.memory.uncertain[(task.video_id, attempt.number)] = False
            await self._send(task, attempt, provider)
            return
        logger.info("found the upstream job of %s by its client id", who, extra=who.extra)
        await self._apply(task, attempt, provider, job, first=True)

    async def _reconcile(self, task: Task, attempt: Attempt, provider: Provider) -> None:
        """Look for our job in the upstream's recent jobs before daring to send again."""
        gate = self._gate_of(provider)
        try:
            async with gate.request():
                jobs = await provider.recent_jobs(limit=_RECONCILE_LIMIT)
        except UpstreamError as exc:
            verdict = classify(exc)
            failures = self._count_failure(task, verdict, "reconcile")
            if failures >= self.config.submit_retries:
                self.memory.failures.pop(task.video_id, None)
                await self._uncertain_submission(
                    task, attempt, f"Could not list the upstream's jobs: {verdict.message}"
                )
            else:
                await self._release_later(task, self._backoff(failures, verdict))
            return
        since = attempt.created_at.timestamp() - _RECONCILE_SLACK
        model = provider.upstream_model(task.model) or task.model
        matches = [
            job
            for job in jobs
            if job.prompt == task.prompt
            and job.model in (None, model)
            and job.seconds in (None, task.seconds)
            and job.size in (None, task.size)
            and (job.created_at is None or job.created_at >= since)
        ]
        known = await self.store.known_external_ids(
            provider=provider.name, external_ids=[job.external_id for job in matches]
        )
        ours = [job for job in matches if job.external_id not in known]
        reaches_back = len(jobs) < _RECONCILE_LIMIT or any(
            job.created_at is not None and job.created_at < since for job in jobs
        )
        who = ref(task.video_id, ours[0].external_id if len(ours) == 1 else None)
        if len(ours) == 1:
            logger.info("reconciled %s with an upstream job", who, extra=who.extra)
            try:
                async with gate.request():
                    job = await provider.get(JobRef(external_id=ours[0].external_id))
            except UpstreamError as exc:
                await self._release_later(task, self._backoff(1, classify(exc)))
                return
            await self._apply(task, attempt, provider, job, first=True)
        elif not ours and reaches_back:
            logger.info("no upstream job for %s; submitting", who, extra=who.extra)
            self.memory.uncertain[(task.video_id, attempt.number)] = False
            await self._send(task, attempt, provider)
        else:
            await self._uncertain_submission(
                task,
                attempt,
                f"{len(ours)} upstream jobs could be this task's; not guessing."
                if ours
                else "The upstream's job list does not reach back to the submission.",
            )

    async def _uncertain_submission(self, task: Task, attempt: Attempt, message: str) -> None:
        await self._finish(
            task,
            dataclasses.replace(attempt, state=AttemptState.UNKNOWN),
            code="SUBMISSION_UNCERTAIN",
            message=message,
        )

    async def _poll(self, task: Task, attempt: Attempt) -> None:
        provider = self._provider_of(attempt)
        if provider is None or attempt.external_id is None:
            await self._finish(
                task, attempt, code="NO_PROVIDER", message=f"Provider {attempt.provider!r} is gone."
            )
            return
        gate = self._gate_of(provider)
        if not gate.breaker.allows():
            await self._release_later(task, self.config.busy_wait)
            return
        try:
            async with gate.request():
                job = await provider.get(_job_ref(attempt))
            if job.external_id != attempt.external_id:
                # Never apply what the upstream says of another job (rule 5).
                raise UpstreamProtocolError(
                    f"{provider.name}: asked for job {attempt.external_id}, "
                    f"answered about {job.external_id}"
                )
        except UpstreamError as exc:
            verdict = classify(exc)
            if verdict.action is Action.LOST:
                gate.breaker.success()
                error = TaskError(
                    code="UPSTREAM_JOB_LOST", message="The upstream no longer knows the job."
                )
                await self._end_attempt(task, attempt, error, retry=False)
                return
            gate.breaker.failure()
            failures = self._count_failure(task, verdict, "poll")
            if failures >= self.config.poll_failures:
                self.memory.failures.pop(task.video_id, None)
                await self._finish(
                    task,
                    attempt,
                    code="UPSTREAM_UNAVAILABLE",
                    message=f"The upstream kept failing: {verdict.message}",
                )
            else:
                await self._release_later(task, self._backoff(failures, verdict))
            return
        gate.breaker.success()
        self.memory.failures.pop(task.video_id, None)
        await self._apply(task, attempt, provider, job, first=False)

    async def _apply(
        self, task: Task, attempt: Attempt, provider: Provider, job: JobView, *, first: bool
    ) -> None:
        """Apply what the upstream said of the attempt's job (just created, or polled)."""
        now = utcnow()
        since = 0.0 if first else (now - (attempt.submitted_at or now)).total_seconds()
        seen = observation_of(job, since_submit=since, expected=self.config.expected_job_seconds)
        video: ResultVideo | None = None
        if seen.status is TaskStatus.COMPLETED:
            seen, video = await self._confirm_completion(task, attempt, provider, job)
        who = ref(task.video_id, job.external_id)
        if seen.status is None and seen.raw_status is not None:
            logger.warning(
                "unknown upstream status %r for %s; treating it as not finished",
                seen.raw_status,
                who,
                extra=who.extra,
            )
        if first:
            after = transitions.submitted(
                task, provider=provider.name, external_id=job.external_id, seen=seen, now=now
            )
        else:
            after = transitions.observe(task, seen, now=now)
        if job.error is not None and after.status.terminal:
            metadata = dict(after.metadata)
            metadata["errorCategory"] = str(job.error.category)
            after = dataclasses.replace(after, metadata=metadata)
        binding = dict(attempt.binding or {})
        if job.poll_handle is not None:
            binding["pollHandle"] = job.poll_handle
        if video is not None and video.url is not None and video.needs_credentials:
            binding["resultUrl"] = video.url  # fetched with the provider's key by /stream
        bound = dataclasses.replace(
            attempt,
            external_id=job.external_id,
            binding=binding or None,
            usage=job.usage.to_json() if job.usage is not None else attempt.usage,
        )
        if seen.status is TaskStatus.FAILED and after.error is not None:
            # The job itself failed: worth another attempt only if the reason allows it.
            retry = job.error.worth_retrying if job.error is not None else False
            await self._end_attempt(task, bound, after.error, retry=retry, failed=after)
            return
        updated = dataclasses.replace(
            bound,
            state=_attempt_state(after),
            upstream_status=after.status.pushed,
            submitted_at=now if first else attempt.submitted_at,
            finished_at=now if after.status.terminal else None,
            error=after.error,
            result_expires_at=_as_datetime(_expires_at(video, provider))
            if video is not None
            else attempt.result_expires_at,
        )
        delay = next_poll_delay(
            since_submit=since, progress=after.progress, policy=self.config.poll
        )
        result = await self._commit(task, after, delay=delay, attempt=updated)
        if first and result is not None:
            logger.info(
                "submitted to %s: %s",
                provider.name,
                who,
                extra=who.extra | {"attempt": attempt.number, "provider": provider.name},
            )
        elif first and result is None:
            await self._orphaned(task, updated, provider)

    async def _confirm_completion(
        self, task: Task, attempt: Attempt, provider: Provider, job: JobView
    ) -> tuple[transitions.Observation, ResultVideo | None]:
        """An upstream "completed" counts once there is a video a browser can play.

        A public result URL that outlives ``mirror_before_seconds`` is handed out as it
        is. A result that needs the provider's key (Veo) or expires sooner is mirrored
        when a media store exists, else streamed through vidgate. Without a URL the video
        must answer on the upstream's content route. One inconsistent answer is not
        trusted either way: the task stays open and is looked at again; only a repeated
        "completed" without a video fails it (UPSTREAM_NO_RESULT).
        """
        seen = observation_of(job, since_submit=0.0, expected=self.config.expected_job_seconds)
        video = job.videos[0] if job.videos else None
        mode = provider.content_mode
        public = video.url if video is not None and not video.needs_credentials else None
        expires = _expires_at(video, provider)
        expiring = expires is not None and expires - time.time() < self.config.mirror_before_seconds
        if public and (mode == "url" or (mode == "auto" and not (expiring and self.media))):
            self.memory.unconfirmed.pop(task.video_id, None)
            return dataclasses.replace(seen, video_url=public), video
        if mode != "url" and (video is not None or provider.features.content_route):
            target = _job_ref(attempt, job)
            url = video.url if video is not None else None
            mirror = self.media is not None and (
                mode == "mirror" or (mode == "auto" and (expiring or url is not None))
            )
            try:
                async with self._gate_of(provider).request():
                    if mirror:
                        await self._mirror(task, provider, target, url)
                    else:
                        stream = await provider.open_content(
                            target, url=url, range_header="bytes=0-0"
                        )
                        await stream.aclose()
            except (UpstreamNotFound, UpstreamRejected):
                pass  # completed, yet no video: unconfirmed
            except UpstreamError:
                return dataclasses.replace(seen, status=None, raw_status=None), None
            else:
                self.memory.unconfirmed.pop(task.video_id, None)
                stream_at = stream_url(
                    self.config.public_url, task.video_id, access_token=new_access_token()
                )
                return dataclasses.replace(seen, video_url=stream_at), video
        count = self.memory.unconfirmed.get(task.video_id, 0) + 1
        if count >= self.config.unconfirmed_completions:
            self.memory.unconfirmed.pop(task.video_id, None)
            return dataclasses.replace(seen, video_url=None), None  # observe() fails it
        self.memory.unconfirmed[task.video_id] = count
        return dataclasses.replace(seen, status=None, raw_status=None), None

    async def _mirror(self, task: Task, provider: Provider, job: JobRef, url: str | None) -> None:
        """Download the finished video into the media store (the completion check too).

        Upstream errors go to the caller, as the plain check's do. A video the store cannot
        keep (too large, disk trouble, an encoded body) is logged and left to the
        streaming proxy, which ``/stream`` falls back to: completion does not wait on it.
        """
        assert self.media is not None
        who = ref(task.video_id, job.external_id)
        stream = await provider.open_content(job, url=url, range_header=None)
        try:
            encoding = {k.lower(): v for k, v in stream.headers.items()}.get("content-encoding")
            if stream.status != 200 or encoding not in (None, "identity"):
                logger.warning(
                    "not mirroring %s: the upstream answered %d (encoding %s); streaming it",
                    who,
                    stream.status,
                    encoding,
                    extra=who.extra,
                )
                return
            size = await self.media.save(task.video_id, stream.chunks)
        except (TooLarge, OSError) as exc:
            logger.warning("not mirroring %s: %s; streaming it", who, exc, extra=who.extra)
        else:
            logger.info("mirrored %s (%d bytes)", who, size, extra=who.extra)
        finally:
            await stream.aclose()

    async def _end_attempt(
        self,
        task: Task,
        attempt: Attempt,
        error: TaskError,
        *,
        retry: bool,
        failed: Task | None = None,
    ) -> None:
        """Close ``attempt`` as failed; queue a new one if allowed, else fail the task.

        ``failed`` is the task as the upstream's answer left it, when there is one.
        """
        now = utcnow()
        closed = dataclasses.replace(
            attempt,
            state=AttemptState.FAILED,
            upstream_status="failed",
            finished_at=now,
            error=error,
        )
        if retry and task.attempt < self.config.max_attempts:
            who = ref(task.video_id, attempt.external_id)
            logger.info(
                "attempt %d of %s failed (%s); trying again",
                attempt.number,
                who,
                error.code,
                extra=who.extra,
            )
            again = transitions.requeue(
                task, now=now, message=f"Trying again after: {error.message}"
            )
            await self._commit(task, again, delay=0.0, attempt=closed)
            return
        if failed is None:
            failed = transitions.fail(task, code=error.code, message=error.message, now=now)
        await self._commit(task, failed, delay=None, attempt=closed)

    async def _orphaned(self, task: Task, attempt: Attempt, provider: Provider) -> None:
        """Our submission was answered, but the task changed meanwhile (a client's cancel).

        Keep the record of the upstream job and do not leave it running for nothing.
        """
        current = await self.store.get(task.video_id)
        if current is None or not current.status.terminal:
            return  # retried meanwhile: the same key finds this job again
        closed = dataclasses.replace(
            attempt,
            state=AttemptState.FAILED,
            upstream_status="cancelled",
            finished_at=utcnow(),
            error=TaskError(code="CANCELLED", message="Cancelled while being submitted."),
        )
        await self.store.write(Write(before=current, after=current, update_attempt=closed))
        if attempt.external_id is not None:
            await delete_job(
                provider,
                attempt.external_id,
                video_id=task.video_id,
                poll_handle=_job_ref(attempt).poll_handle,
            )

    async def _deadline(self, task: Task, attempt: Attempt | None) -> None:
        # Delete first, then fail: a crash in between leaves the task due, so the next
        # step deletes again (a 404 is fine) instead of forgetting a job that still runs.
        if attempt is not None and attempt.external_id:
            provider = self._provider_of(attempt)
            if provider is not None:
                await delete_job(
                    provider,
                    attempt.external_id,
                    video_id=task.video_id,
                    poll_handle=_job_ref(attempt).poll_handle,
                )
        await self._finish(
            task,
            attempt,
            code="TASK_TIMEOUT",
            message="The task did not finish before its deadline.",
        )

    # -- helpers -----------------------------------------------------------------------

    def _count_failure(self, task: Task, verdict: Verdict, action: str) -> int:
        failures = self.memory.failures.get(task.video_id, 0) + 1
        self.memory.failures[task.video_id] = failures
        who = ref(task.video_id, task.external_id)
        logger.warning(
            "%s failed for %s (%d in a row): %s",
            action,
            who,
            failures,
            verdict.message,
            extra=who.extra | {"action": action},
        )
        return failures

    def _backoff(self, failures: int, verdict: Verdict) -> float:
        delay = backoff_delay(failures, base=self.config.backoff_base, cap=self.config.backoff_cap)
        if verdict.retry_after is not None:
            # Obey the upstream: never before Retry-After, plus a little to absorb clocks.
            delay = max(delay, verdict.retry_after + 0.05)
        return delay

    async def _finish(
        self, task: Task, attempt: Attempt | None, *, code: str, message: str
    ) -> None:
        now = utcnow()
        after = transitions.fail(task, code=code, message=message, now=now)
        closed = None
        if attempt is not None:
            state = attempt.state if attempt.state in _CLOSED else AttemptState.FAILED
            closed = dataclasses.replace(
                attempt,
                state=state,
                upstream_status="failed" if state is AttemptState.FAILED else None,
                finished_at=attempt.finished_at or now,
                error=attempt.error or TaskError(code=code, message=message),
            )
        await self._commit(task, after, delay=None, attempt=closed)

    async def _release_later(self, task: Task, delay: float) -> None:
        try:
            await self._commit(task, task, delay=delay)
        except Exception:
            logger.exception("could not release %s", ref(task.video_id, task.external_id))

    async def _release_after_error(self, task: Task) -> None:
        """Release the task as the store has it now (the step may have written already)."""
        try:
            current = await self.store.get(task.video_id)
        except Exception:
            return  # the lease runs out by itself
        if current is not None and current.lease_owner == self.owner:
            await self._release_later(current, backoff_delay(3))

    def _refused(self, task: Task) -> None:
        who = ref(task.video_id, task.external_id)
        logger.warning(
            "write refused for %s: the task changed or our lease was lost",
            who,
            extra=who.extra | {"owner": self.owner, "action": "fenced"},
        )

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
            self._refused(before)
            return None
        if written.task.status.terminal:
            self.memory.forget(before.video_id)
        if written.event is not None:
            await self.bus.publish(written.event)
            if written.task.status.terminal:
                who = ref(after.video_id, after.external_id)
                logger.info("%s %s", who, written.task.status, extra=who.extra)
        return written.task


def _job_ref(attempt: Attempt, job: JobView | None = None) -> JobRef:
    """How to address the attempt's job: its id, and the handle the adapter gave."""
    handle = job.poll_handle if job is not None else None
    if handle is None:
        bound = (attempt.binding or {}).get("pollHandle")
        handle = bound if isinstance(bound, str) else None
    external_id = job.external_id if job is not None else attempt.external_id
    assert external_id is not None
    return JobRef(external_id=external_id, poll_handle=handle)


def _expires_at(video: ResultVideo | None, provider: Provider) -> float | None:
    """When the upstream's copy goes (unix time): its own figure, else the documented
    lifetime from now; None when neither is known."""
    if video is not None and video.expires_at is not None:
        return video.expires_at
    if provider.result_lifetime is not None:
        return time.time() + provider.result_lifetime
    return None


def _as_datetime(when: float | None) -> datetime | None:
    return None if when is None else datetime.fromtimestamp(when, UTC)


def _attempt_state(task: Task) -> AttemptState:
    if task.status is TaskStatus.COMPLETED:
        return AttemptState.FINISHED
    if task.status is TaskStatus.FAILED:
        return AttemptState.FAILED
    return AttemptState.SUBMITTED
