"""Recovering a submission that was interrupted: by a transient error, or by a crash.

An attempt left ``submitting`` may or may not have created a job upstream. When this
process knows nothing reached the upstream it simply sends again. Otherwise the
provider's recovery policy decides, from what its adapter declares: ask for the job by
the id we chose for it ("lookup"), resend the same Idempotency-Key ("resend"), look for
it among the upstream's recent jobs ("reconcile"), or fail the task with
SUBMISSION_UNCERTAIN rather than risk paying twice ("fail").
"""

from __future__ import annotations

import logging

from vidgate.domain.models import Attempt, Task
from vidgate.engine.classify import classify
from vidgate.engine.config import EngineConfig
from vidgate.engine.memory import ProcessMemory
from vidgate.engine.outcome import Outcomes
from vidgate.engine.poll import Poller
from vidgate.engine.routing import Router
from vidgate.engine.submit import Submitter
from vidgate.logs import ref
from vidgate.providers.base import JobRef, Provider, UpstreamError
from vidgate.store.base import TaskStore

logger = logging.getLogger(__name__)

_RECONCILE_LIMIT = 100
_RECONCILE_SLACK = 5.0  # seconds of clock difference tolerated between us and the upstream


class Recovery:
    def __init__(
        self,
        *,
        store: TaskStore,
        router: Router,
        outcomes: Outcomes,
        poller: Poller,
        submitter: Submitter,
        config: EngineConfig,
        memory: ProcessMemory,
    ) -> None:
        self.store = store
        self.router = router
        self.outcomes = outcomes
        self.poller = poller
        self.submitter = submitter
        self.config = config
        self.memory = memory

    async def resume(self, task: Task, attempt: Attempt) -> None:
        """An attempt left ``submitting``: by a transient error, or by a crash."""
        provider = self.router.provider_of(attempt)
        if provider is None:
            await self.outcomes.finish(
                task,
                attempt,
                code="NO_PROVIDER",
                message=f"Provider {attempt.provider!r} is no longer configured.",
            )
            return
        key = (task.video_id, attempt.number)
        if not self.memory.maybe_received(*key):
            await self.submitter.send(task, attempt, provider)  # nothing reached the upstream
            return
        policy = self._policy(provider)
        who = ref(task.video_id, None)
        # Loud after a crash (nothing known of the attempt here), quiet on later resends.
        level = logging.INFO if key not in self.memory.uncertain else logging.DEBUG
        logger.log(
            level, "recovering the interrupted submission of %s by %s", who, policy, extra=who.extra
        )
        if policy == "lookup":
            await self._lookup(task, attempt, provider)
        elif policy == "resend":
            await self.submitter.send(task, attempt, provider)  # same key: the upstream dedupes
        elif policy == "reconcile":
            await self._reconcile(task, attempt, provider)
        else:
            await self.outcomes.uncertain_submission(
                task,
                attempt,
                "The submission was interrupted and the upstream cannot be asked safely "
                "whether it created the job; not submitting again.",
            )

    def _policy(self, provider: Provider) -> str:
        """How an interrupted submission to ``provider`` is made safe, from what the
        adapter declares: ask for the job by our own id, resend the same key, or list the
        upstream's jobs, as configured; "fail" when none of them exists."""
        features = provider.features
        if features.client_id:
            return "lookup"
        configured = self.router.policy(provider).recovery
        if configured == "resend" and features.idempotency_key:
            return "resend"
        if configured == "reconcile" and features.list_jobs:
            return "reconcile"
        return "fail"

    async def _lookup(self, task: Task, attempt: Attempt, provider: Provider) -> None:
        """Ask the upstream for the job by the id we chose for it (Kling external_task_id)."""
        gate = self.router.gate(provider)
        try:
            async with gate.request():
                job = await provider.find_by_client_id(attempt.idempotency_key)
        except UpstreamError as exc:
            verdict = classify(exc)
            failures = self.outcomes.count_failure(task, verdict, "lookup")
            if failures >= self.config.submit_retries:
                self.memory.failures.pop(task.video_id, None)
                await self.outcomes.uncertain_submission(
                    task, attempt, f"Could not ask the upstream for the job: {verdict.message}"
                )
            else:
                await self.outcomes.back_off(task, failures, verdict)
            return
        who = ref(task.video_id, job.external_id if job else None)
        if job is None:
            logger.info("no upstream job for %s; submitting", who, extra=who.extra)
            self.memory.uncertain[(task.video_id, attempt.number)] = False
            await self.submitter.send(task, attempt, provider)
            return
        logger.info("found the upstream job of %s by its client id", who, extra=who.extra)
        await self.poller.apply(task, attempt, provider, job, first=True)

    async def _reconcile(self, task: Task, attempt: Attempt, provider: Provider) -> None:
        """Look for our job in the upstream's recent jobs before daring to send again."""
        gate = self.router.gate(provider)
        try:
            async with gate.request():
                jobs = await provider.recent_jobs(limit=_RECONCILE_LIMIT)
        except UpstreamError as exc:
            verdict = classify(exc)
            failures = self.outcomes.count_failure(task, verdict, "reconcile")
            if failures >= self.config.submit_retries:
                self.memory.failures.pop(task.video_id, None)
                await self.outcomes.uncertain_submission(
                    task, attempt, f"Could not list the upstream's jobs: {verdict.message}"
                )
            else:
                await self.outcomes.back_off(task, failures, verdict)
            return
        since = attempt.created_at.timestamp() - _RECONCILE_SLACK
        model = provider.upstream_model(task.model) or task.model
        matches = [
            job
            for job in jobs
            # A field the upstream's listing leaves out (Seedance has no prompt) is unknown.
            if job.prompt in (None, task.prompt)
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
                await self.outcomes.back_off(task, 1, classify(exc))
                return
            await self.poller.apply(task, attempt, provider, job, first=True)
        elif not ours and reaches_back:
            logger.info("no upstream job for %s; submitting", who, extra=who.extra)
            self.memory.uncertain[(task.video_id, attempt.number)] = False
            await self.submitter.send(task, attempt, provider)
        else:
            await self.outcomes.uncertain_submission(
                task,
                attempt,
                f"{len(ours)} upstream jobs could be this task's; not guessing."
                if ours
                else "The upstream's job list does not reach back to the submission.",
            )
