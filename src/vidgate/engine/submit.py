"""Submitting a task upstream, where money is at stake.

A new attempt picks a provider (``routing``), takes a job slot where the provider has
``max_jobs``, and is written with its Idempotency-Key before the create call (rule 4).
The create call then either answers with a job, which is applied as the first poll; or
fails, and the failure decides: retry the same attempt after a backoff, move on to
another provider when nothing can have reached this one, or fail the task. An attempt
whose create call may have reached the upstream never gets a blind second one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from vidgate.domain.models import Attempt, AttemptState, Task, TaskError
from vidgate.engine.classify import Action, Verdict, classify
from vidgate.engine.config import EngineConfig, utcnow
from vidgate.engine.memory import ProcessMemory
from vidgate.engine.outcome import Outcomes
from vidgate.engine.poll import Poller
from vidgate.engine.routing import Router
from vidgate.providers.base import (
    Binding,
    ErrorCategory,
    Provider,
    RateLimited,
    SubmitRequest,
    UpstreamError,
    UpstreamRejected,
)
from vidgate.store.base import StoreUnavailable, TaskStore, Write

logger = logging.getLogger(__name__)


# Refusals that say nothing of the request itself: worth another provider.
_NOT_ABOUT_THE_REQUEST = frozenset(
    {
        ErrorCategory.INSUFFICIENT_CREDITS,
        ErrorCategory.PROVIDER_UNAVAILABLE,
        ErrorCategory.RATE_LIMITED,
    }
)


class Submitter:
    def __init__(
        self,
        *,
        store: TaskStore,
        router: Router,
        outcomes: Outcomes,
        poller: Poller,
        config: EngineConfig,
        memory: ProcessMemory,
        owner: str,
    ) -> None:
        self.store = store
        self.router = router
        self.outcomes = outcomes
        self.poller = poller
        self.config = config
        self.memory = memory
        self.owner = owner

    async def new_attempt(self, task: Task) -> None:
        if task.attempt >= self.config.max_attempts:
            last = task.current_attempt
            error = last.error if last is not None and last.error is not None else None
            await self.outcomes.finish(
                task,
                None,
                code=error.code if error else "UPSTREAM_UNAVAILABLE",
                message=error.message if error else "No attempt succeeded.",
            )
            return
        for provider in self.router.preference(task):
            limit = self.router.policy(provider).max_jobs
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
                await self.send(written, written.attempts[-1], provider)
            return
        if not self.router.offered(task.model):
            await self.outcomes.finish(
                task, None, code="NO_PROVIDER", message=f"No provider offers {task.model!r}."
            )
        else:
            await self.outcomes.release_later(task, self.config.busy_wait)  # all busy or failing

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
            self.outcomes.refused(task)
            return None
        self.memory.uncertain[(task.video_id, number)] = False  # nothing sent yet
        return written.task

    async def send(self, task: Task, attempt: Attempt, provider: Provider) -> None:
        """The create call of ``attempt``, and what its answer (or failure) means."""
        gate = self.router.gate(provider)
        key = (task.video_id, attempt.number)
        if not gate.breaker.allows():
            untouched = not self.memory.maybe_received(task.video_id, attempt.number)
            if untouched and self.router.alternative(task, provider):
                # Nothing of this attempt reached the provider: move on without waiting.
                error = TaskError(
                    code="UPSTREAM_UNAVAILABLE",
                    message=f"Provider {provider.name!r} is failing; circuit open.",
                )
                await self.outcomes.end_attempt(task, attempt, error, retry=True)
            else:
                await self.outcomes.release_later(task, self.config.busy_wait)
            return
        request = SubmitRequest(
            prompt=task.prompt,
            model=_upstream_model(task, attempt, provider),
            params=task.params,
            seconds=task.seconds,
            size=task.size,
        )
        try:
            async with gate.request():
                job = await provider.create(request, idempotency_key=attempt.idempotency_key)
        except UpstreamError as exc:
            verdict = classify(exc)
            if verdict.action is Action.LOST:
                # A create answered 404 made no job: the route (or the model) does not exist
                # there, a configuration error (a wrong `kind` or `base_url`), not a blip.
                exc = UpstreamRejected(
                    f"{exc.message} (is this provider's kind or base_url wrong?)",
                    status=exc.status or 404,
                    category=ErrorCategory.PROVIDER_UNAVAILABLE,
                )
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
                if self.router.alternative(task, provider):
                    error = TaskError(code="UPSTREAM_BUSY", message=exc.message)
                    await self.outcomes.end_attempt(task, attempt, error, retry=True)
                else:
                    wait = max(self.config.concurrency_wait, exc.retry_after or 0.0)
                    await self.outcomes.release_later(task, wait)
                return
            gate.breaker.failure()
            if verdict.maybe_received:
                self.memory.uncertain[key] = True
            failures = self.outcomes.count_failure(task, verdict, "submit")
            moving_on = (
                failures >= self.config.failover_after
                and not self.memory.maybe_received(task.video_id, attempt.number)
                and self.router.alternative(task, provider)
            )
            if moving_on or failures >= self.config.submit_retries:
                await self._abandon(task, attempt, verdict)
            else:
                await self.outcomes.back_off(task, failures, verdict)
            return
        gate.breaker.success()
        self.memory.failures.pop(task.video_id, None)
        self.memory.uncertain.pop(key, None)
        try:
            await self.poller.apply(task, attempt, provider, job, first=True)
        except StoreUnavailable:
            # The store keeps each upstream job to one attempt, and refused this one: the
            # upstream answered with a job another attempt owns, so its idempotency is
            # broken. Sending again could pay twice; stop here. (Asked only now, after
            # the refusal: one read fewer for every submission that is fine.)
            if not await self._owned_elsewhere(task, attempt, provider, job.external_id):
                raise
            await self.outcomes.uncertain_submission(
                task,
                attempt,
                f"The upstream answered with job {job.external_id}, which belongs to another "
                "task; not submitting again.",
            )

    async def _owned_elsewhere(
        self, task: Task, attempt: Attempt, provider: Provider, external_id: str
    ) -> bool:
        """Whether another attempt (of this task or another) has recorded the job."""
        for holder in await self.store.find_by_external_id(external_id):
            for other in holder.attempts:
                if (
                    other.external_id == external_id
                    and other.provider == provider.name
                    and (holder.video_id, other.number) != (task.video_id, attempt.number)
                ):
                    return True
        return False

    async def _rejected(
        self, task: Task, attempt: Attempt, provider: Provider, exc: UpstreamRejected
    ) -> None:
        """The upstream refused the request. Out of credits, or refusing our credentials,
        it gave no verdict on the request: another provider may take it. Anything else
        (the request itself, a content decision) is final."""
        if exc.category in _NOT_ABOUT_THE_REQUEST and self.router.alternative(task, provider):
            code = (
                "INSUFFICIENT_CREDITS"
                if exc.category is ErrorCategory.INSUFFICIENT_CREDITS
                else "UPSTREAM_REJECTED"
            )
            await self.outcomes.end_attempt(
                task, attempt, TaskError(code=code, message=exc.message), retry=True
            )
            return
        code = {
            ErrorCategory.CONTENT_POLICY: "CONTENT_POLICY",
            ErrorCategory.INSUFFICIENT_CREDITS: "INSUFFICIENT_CREDITS",
        }.get(exc.category, "UPSTREAM_REJECTED")
        await self.outcomes.finish(task, attempt, code=code, message=exc.message)

    async def _abandon(self, task: Task, attempt: Attempt, verdict: Verdict) -> None:
        """The submission kept failing. Fail over, unless the upstream may hold a job."""
        self.memory.failures.pop(task.video_id, None)
        if self.memory.uncertain.pop((task.video_id, attempt.number), True):
            # A job may exist upstream for this attempt: another attempt could pay twice.
            await self.outcomes.finish(
                task,
                dataclasses.replace(attempt, state=AttemptState.UNKNOWN),
                code="UPSTREAM_UNAVAILABLE",
                message="The upstream kept failing and may have created the job: "
                + verdict.message,
            )
            return
        error = TaskError(code="UPSTREAM_UNAVAILABLE", message=verdict.message)
        await self.outcomes.end_attempt(task, attempt, error, retry=True)


def _upstream_model(task: Task, attempt: Attempt, provider: Provider) -> str:
    """The upstream model the attempt was bound to (a config edit does not change it)."""
    bound = (attempt.binding or {}).get("model")
    if isinstance(bound, str) and bound:
        return bound
    return provider.upstream_model(task.model) or task.model
