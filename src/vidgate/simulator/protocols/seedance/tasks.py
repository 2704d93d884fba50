"""Seedance tasks: the shared clock-driven ``jobs.Job`` plus what Ark adds to it (ratio,
resolution, seed, a cancellation), their status in Ark's words at any instant, and the
task object Ark answers with.

Ark's words for the shared phases: queued -> ``queued``, in_progress -> ``running``,
completed -> ``succeeded``, failed -> ``failed``. On top of those, a task cancelled while
queued is ``cancelled``, and one still queued when its ``execution_expires_after`` runs out
is ``expired``. Prompt triggers, besides the shared ``[fail]`` and ``[stuck]``:
``[error]`` fails the task with Ark's internal error (worth a retry), ``[expired]`` keeps
it queued until it expires halfway through the job's time, and ``[blocked]`` is refused at
create by the input text moderation (400 ``InputTextSensitiveContentDetected``).
"""

from __future__ import annotations

import logging
import secrets
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vidgate.simulator import faults, jobs
from vidgate.simulator.protocols.seedance import catalog, envelope, validation
from vidgate.simulator.state import SimState

logger = logging.getLogger(__name__)

ERROR_TRIGGER = "[error]"
EXPIRED_TRIGGER = "[expired]"
BLOCKED_TRIGGER = "[blocked]"

OUTPUT_MODERATION = jobs.JobError(
    code="OutputVideoSensitiveContentDetected",
    message="The request failed because the output video may contain sensitive information.",
)
INTERNAL_FAILURE = jobs.JobError(code="InternalServiceError", message=envelope.INTERNAL_MESSAGE)
_ID_ALPHABET = string.ascii_lowercase + string.digits


@dataclass(kw_only=True, slots=True)
class Task:
    job: jobs.Job
    params: validation.CreateParams
    seed: int
    expires_in_queue: bool = False  # the [expired] trigger
    cancelled_at: float | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Moment:
    """A task as seen at one instant."""

    status: str
    updated_at: float
    succeeded_at: float | None = None


@dataclass(kw_only=True)
class Registry:
    """The tasks by id, in creation order, and the key that signs their video URLs."""

    tasks: dict[str, Task] = field(default_factory=dict)
    signing_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))


def registry(state: SimState) -> Registry:
    found = state.protocol_state.get("seedance")
    if not isinstance(found, Registry):
        found = state.protocol_state["seedance"] = Registry()
    return found


def new_id(now: float) -> str:
    """``cgt-20260405024433-sbj8r``: Ark's ids carry their creation time."""
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(now))
    return f"cgt-{stamp}-{''.join(secrets.choice(_ID_ALPHABET) for _ in range(5))}"


def create(state: SimState, params: validation.CreateParams) -> Task:
    prompt = params.prompt
    if BLOCKED_TRIGGER in prompt:
        raise envelope.ArkError(
            400,
            "InputTextSensitiveContentDetected",
            "The request failed because the input text may contain sensitive information.",
            param="content",
        )
    config = state.config
    error: jobs.JobError | None = None
    if ERROR_TRIGGER in prompt:
        outcome, error = jobs.Outcome.FAIL, INTERNAL_FAILURE
    elif EXPIRED_TRIGGER in prompt:
        outcome = jobs.Outcome.STUCK
    else:
        outcome = faults.draw_outcome(prompt, config, state.rng)
        if outcome is jobs.Outcome.FAIL:
            error = OUTPUT_MODERATION if faults.FAIL_TRIGGER in prompt else INTERNAL_FAILURE
    if outcome is jobs.Outcome.FAIL:
        state.stats.count_fault(faults.Fault.JOB_FAIL)
    elif outcome is jobs.Outcome.STUCK:
        state.stats.count_fault(faults.Fault.JOB_STUCK)
    now = state.clock()
    width, height = catalog.PIXELS[params.resolution][params.ratio]
    job = jobs.Job(
        id=new_id(now),
        model=params.model,
        prompt=prompt,
        size=f"{width}x{height}",
        seconds=str(params.duration),
        created_at=now,
        duration=config.job_seconds,
        expires_after=config.expires_after_seconds,
        outcome=outcome,
        error=error,
    )
    task = Task(
        job=job,
        params=params,
        seed=params.seed if params.seed is not None else state.rng.randint(0, 99_999),
        expires_in_queue=EXPIRED_TRIGGER in prompt,
    )
    state.jobs.add(job)
    state.stats.jobs_created += 1
    registry(state).tasks[job.id] = task
    logger.debug(
        "simulator created a seedance task",
        extra={"videoId": job.id, "outcome": outcome.value},
    )
    return task


def moment(task: Task, now: float) -> Moment:
    job = task.job
    if task.cancelled_at is not None:
        return Moment(status="cancelled", updated_at=task.cancelled_at)
    started_at = job.created_at + job.duration * jobs.QUEUED_FRACTION
    if task.expires_in_queue:
        expiry = job.created_at + job.duration * jobs.FAIL_FRACTION
        if now >= expiry:
            return Moment(status="expired", updated_at=expiry)
        return Moment(status="queued", updated_at=job.created_at)
    deadline = job.created_at + task.params.execution_expires_after
    if started_at > deadline and now >= deadline:
        return Moment(status="expired", updated_at=deadline)
    phase = jobs.phase(job, now)
    if phase.status == "queued":
        return Moment(status="queued", updated_at=job.created_at)
    if phase.status == "in_progress":
        return Moment(status="running", updated_at=started_at)
    finished = phase.finished_at if phase.finished_at is not None else now
    if phase.status == "completed":
        return Moment(status="succeeded", updated_at=finished, succeeded_at=finished)
    return Moment(status="failed", updated_at=finished)


def visible(task: Task, now: float) -> bool:
    """Ark keeps task records 7 days, and a cancelled one 24 hours."""
    if task.cancelled_at is not None:
        return now < task.cancelled_at + catalog.CANCELLED_RECORD_SECONDS
    return now < task.job.created_at + catalog.RECORD_SECONDS


def find(state: SimState, task_id: str) -> Task:
    task = registry(state).tasks.get(task_id)
    if task is None or not visible(task, state.clock()):
        raise envelope.task_not_found(task_id)
    return task


def delete(state: SimState, task_id: str) -> None:
    """Ark's DELETE: a queued task is cancelled, a finished one's record is deleted, and a
    running (or already cancelled) one is refused."""
    task = find(state, task_id)
    now = state.clock()
    status = moment(task, now).status
    if status == "queued":
        task.cancelled_at = now
    elif status in ("succeeded", "failed", "expired"):
        del registry(state).tasks[task_id]
        state.jobs.delete(task_id)
    else:
        raise envelope.invalid(
            "id", f"the task {task_id} is {status} and cannot be cancelled or deleted"
        )


def listing(state: SimState, query: validation.ListParams) -> tuple[int, list[Task]]:
    """The matching tasks (newest first) and their total, one page of them."""
    now = state.clock()
    matching = [
        task
        for task in reversed(registry(state).tasks.values())
        if visible(task, now)
        and (query.status is None or moment(task, now).status == query.status)
        and (not query.task_ids or task.job.id in query.task_ids)
        and (query.model is None or task.job.model == query.model)
        and (query.service_tier is None or task.params.service_tier == query.service_tier)
    ]
    start = (query.page_num - 1) * query.page_size
    return len(matching), matching[start : start + query.page_size]


def task_object(
    task: Task, now: float, *, file_url: Callable[[Task, str, float], str]
) -> dict[str, Any]:
    """The task as ``GET /contents/generations/tasks/{id}`` shows it; ``file_url`` signs the
    URL of its ``video`` or ``last_frame`` file."""
    job, params = task.job, task.params
    seen = moment(task, now)
    body: dict[str, Any] = {"id": job.id, "model": job.model, "status": seen.status}
    if seen.status == "failed" and job.error is not None:
        body["error"] = {"code": job.error.code, "message": job.error.message}
    if seen.succeeded_at is not None:
        content = {"video_url": file_url(task, "video", seen.succeeded_at)}
        if params.return_last_frame:
            content["last_frame_url"] = file_url(task, "last_frame", seen.succeeded_at)
        body["content"] = content
        used = catalog.tokens(params.duration, params.resolution, params.ratio)
        body["usage"] = {"completion_tokens": used, "total_tokens": used}
    body.update(
        created_at=int(job.created_at),
        updated_at=int(seen.updated_at),
        seed=task.seed,
        resolution=params.resolution,
        ratio=params.ratio,
        duration=params.duration,
        framespersecond=catalog.FRAMES_PER_SECOND,
        generate_audio=params.generate_audio,
        draft=params.draft,
        service_tier=params.service_tier,
        execution_expires_after=params.execution_expires_after,
    )
    if params.safety_identifier is not None:
        body["safety_identifier"] = params.safety_identifier
    return body
