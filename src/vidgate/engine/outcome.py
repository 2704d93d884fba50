"""How a step ends: the task written back under its lease, and its message pushed.

Every step ends here, whatever happened: the task released to be looked at again after a
delay, an attempt closed (and another queued, or the task failed), or the task finished.
A write is compare-and-set and fenced by the lease, so a step that lost its lease or
raced a client's cancel changes nothing and says so.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta

from vidgate.domain import events, transitions
from vidgate.domain.models import Attempt, AttemptState, Task, TaskError
from vidgate.domain.schedule import backoff_delay
from vidgate.engine.classify import Verdict
from vidgate.engine.config import EngineConfig, utcnow
from vidgate.engine.memory import ProcessMemory
from vidgate.engine.routing import CLOSED, Router, job_ref
from vidgate.events.base import EventBus
from vidgate.logs import ref
from vidgate.providers.base import Provider
from vidgate.providers.cleanup import delete_job
from vidgate.store.base import TaskStore, Write

logger = logging.getLogger(__name__)


class Outcomes:
    def __init__(
        self,
        *,
        store: TaskStore,
        bus: EventBus,
        router: Router,
        config: EngineConfig,
        memory: ProcessMemory,
        owner: str,
    ) -> None:
        self.store = store
        self.bus = bus
        self.router = router
        self.config = config
        self.memory = memory
        self.owner = owner

    async def end_attempt(
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
            await self.commit(task, again, delay=0.0, attempt=closed)
            return
        if failed is None:
            failed = transitions.fail(task, code=error.code, message=error.message, now=now)
        await self.commit(task, failed, delay=None, attempt=closed)

    async def finish(self, task: Task, attempt: Attempt | None, *, code: str, message: str) -> None:
        """Fail the task with ``code``, closing ``attempt`` if it is still open."""
        now = utcnow()
        after = transitions.fail(task, code=code, message=message, now=now)
        closed = None
        if attempt is not None:
            state = attempt.state if attempt.state in CLOSED else AttemptState.FAILED
            closed = dataclasses.replace(
                attempt,
                state=state,
                upstream_status="failed" if state is AttemptState.FAILED else None,
                finished_at=attempt.finished_at or now,
                error=attempt.error or TaskError(code=code, message=message),
            )
        await self.commit(task, after, delay=None, attempt=closed)

    async def uncertain_submission(self, task: Task, attempt: Attempt, message: str) -> None:
        """Fail the task without sending again: the upstream may hold a job of it."""
        await self.finish(
            task,
            dataclasses.replace(attempt, state=AttemptState.UNKNOWN),
            code="SUBMISSION_UNCERTAIN",
            message=message,
        )

    async def orphaned(self, task: Task, attempt: Attempt, provider: Provider) -> None:
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
                poll_handle=job_ref(attempt).poll_handle,
            )

    async def deadline(self, task: Task, attempt: Attempt | None) -> None:
        # Delete first, then fail: a crash in between leaves the task due, so the next
        # step deletes again (a 404 is fine) instead of forgetting a job that still runs.
        if attempt is not None and attempt.external_id:
            provider = self.router.provider_of(attempt)
            if provider is not None:
                await delete_job(
                    provider,
                    attempt.external_id,
                    video_id=task.video_id,
                    poll_handle=job_ref(attempt).poll_handle,
                )
        await self.finish(
            task,
            attempt,
            code="TASK_TIMEOUT",
            message="The task did not finish before its deadline.",
        )

    def count_failure(self, task: Task, verdict: Verdict, action: str) -> int:
        """Count a transient failure of ``action`` for the task; how many in a row."""
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

    async def back_off(self, task: Task, failures: int, verdict: Verdict) -> None:
        """Release the task to try again after the ``failures``-th transient failure."""
        delay = backoff_delay(failures, base=self.config.backoff_base, cap=self.config.backoff_cap)
        if verdict.retry_after is not None:
            # Obey the upstream: never before Retry-After, plus a little to absorb clocks.
            delay = max(delay, verdict.retry_after + 0.05)
        await self.release_later(task, delay)

    async def release_later(self, task: Task, delay: float) -> None:
        try:
            await self.commit(task, task, delay=delay)
        except Exception:
            logger.exception("could not release %s", ref(task.video_id, task.external_id))

    async def release_after_error(self, task: Task) -> None:
        """Release the task as the store has it now (the step may have written already)."""
        try:
            current = await self.store.get(task.video_id)
        except Exception:
            return  # the lease runs out by itself
        if current is not None and current.lease_owner == self.owner:
            await self.release_later(current, backoff_delay(3))

    def refused(self, task: Task) -> None:
        who = ref(task.video_id, task.external_id)
        logger.warning(
            "write refused for %s: the task changed or our lease was lost",
            who,
            extra=who.extra | {"owner": self.owner, "action": "fenced"},
        )

    async def commit(
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
            self.refused(before)
            return None
        if written.task.status.terminal:
            self.memory.forget(before.video_id)
        if written.event is not None:
            await self.bus.publish(written.event)
            if written.task.status.terminal:
                who = ref(after.video_id, after.external_id)
                logger.info("%s %s", who, written.task.status, extra=who.extra)
        return written.task
