"""Runway tasks on top of the simulator's clock-driven jobs: creation, the task object in
Runway's words, and the signed output URLs that expire.

A task is a ``jobs.Job`` (so ``/_sim/stats`` and ``/_sim/jobs/{id}`` count it) plus what
Runway adds: its model, credits and failure code. Its status is read from the clock:

===========  ====================================================================
job phase    Runway task
===========  ====================================================================
queued       PENDING (THROTTLED when the prompt says ``[throttled]``), estimatedCost
in_progress  RUNNING with ``progress`` 0..1 (a ``[stuck]`` task never leaves it)
completed    SUCCEEDED with ``output`` (signed URLs) and ``cost``
failed       FAILED with ``failure``, ``failureCode`` and ``cost``
===========  ====================================================================

Output URLs are signed anew on every read, as Runway's are ("fetch the task again to get
fresh URLs"): each carries a ``_jwt`` whose ``exp`` is ``expires_after_seconds`` ahead, and
the artifact route refuses it once that has passed.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt

from vidgate.simulator import faults, jobs
from vidgate.simulator.protocols.runway.wire import TaskRequest
from vidgate.simulator.state import SimState

logger = logging.getLogger(__name__)

NAME = "runway"
ERROR_TRIGGER = "[error]"
THROTTLED_TRIGGER = "[throttled]"
NO_CREDITS_TRIGGER = "[nocredits]"
ARTIFACT_PATH = "/runway-artifacts/{task_id}.mp4"
BUCKET = "runway-task-artifacts"

# The failures the simulator produces, with Runway's documented codes.
SAFETY_FAILURE = jobs.JobError(
    code="SAFETY.INPUT.TEXT",
    message="The prompt text was rejected by content moderation.",
)
INTERNAL_FAILURE = jobs.JobError(
    code="INTERNAL.BAD_OUTPUT.CODE01",
    message="The generation was rejected by our internal systems. Please try again.",
)


@dataclass(frozen=True, kw_only=True, slots=True)
class TaskInfo:
    """What Runway keeps of a task beside the simulator's job."""

    model: str
    credits: int
    throttled: bool


@dataclass(kw_only=True)
class RunwayState:
    signing_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    tasks: dict[str, TaskInfo] = field(default_factory=dict)


def runway_state(state: SimState) -> RunwayState:
    found = state.protocol_state.get(NAME)
    if not isinstance(found, RunwayState):
        found = RunwayState()
        state.protocol_state[NAME] = found
    return found


def create(state: SimState, request: TaskRequest) -> jobs.Job:
    """A new task; its outcome is drawn once, from the prompt's triggers or the fault rates."""
    config = state.config
    prompt = request.prompt_text
    outcome = faults.draw_outcome(prompt, config, state.rng)
    if ERROR_TRIGGER in prompt and outcome is jobs.Outcome.COMPLETE:
        outcome = jobs.Outcome.FAIL
    error = None
    if outcome is jobs.Outcome.FAIL:
        state.stats.count_fault(faults.Fault.JOB_FAIL)
        error = SAFETY_FAILURE if faults.FAIL_TRIGGER in prompt else INTERNAL_FAILURE
    elif outcome is jobs.Outcome.STUCK:
        state.stats.count_fault(faults.Fault.JOB_STUCK)
    width, _, height = request.ratio.partition(":")
    job = jobs.Job(
        id=str(uuid.uuid4()),
        model=request.model,
        prompt=prompt,
        size=f"{width}x{height}",  # the rendered clip keeps the requested shape
        seconds=str(request.duration),
        created_at=state.clock(),
        duration=config.job_seconds,
        expires_after=config.expires_after_seconds,
        outcome=outcome,
        error=error,
    )
    state.jobs.add(job)
    state.stats.jobs_created += 1
    runway_state(state).tasks[job.id] = TaskInfo(
        model=request.model, credits=request.credits, throttled=THROTTLED_TRIGGER in prompt
    )
    logger.debug(
        "simulator created a runway task", extra={"videoId": job.id, "outcome": outcome.value}
    )
    return job


def delete(state: SimState, task_id: str) -> bool:
    """Cancel (or delete) a task: either way Runway never shows it again."""
    runway_state(state).tasks.pop(task_id, None)
    return state.jobs.delete(task_id) is not None


def view(state: SimState, job: jobs.Job, *, origin: str) -> dict[str, Any]:
    """The task object ``GET /v1/tasks/{id}`` answers, keys in Runway's order."""
    now = state.clock()
    info = runway_state(state).tasks[job.id]
    phase = jobs.phase(job, now)
    body: dict[str, Any] = {"id": job.id, "createdAt": _iso(job.created_at)}
    if phase.status == "queued":
        body["status"] = "THROTTLED" if info.throttled else "PENDING"
        body["estimatedCost"] = {"credits": info.credits}
    elif phase.status == "in_progress":
        body["status"] = "RUNNING"
        body["progress"] = round(phase.progress / 100, 2)
        body["estimatedCost"] = {"credits": info.credits}
    elif phase.status == "completed":
        body["status"] = "SUCCEEDED"
        body["output"] = [signed_url(state, job, origin=origin, now=now)]
        body["cost"] = {"credits": info.credits}
    else:
        error = job.error or INTERNAL_FAILURE
        body["status"] = "FAILED"
        body["failure"] = error.message
        body["failureCode"] = error.code
        # Internal failures are refunded; a moderated input is still charged.
        charged = info.credits if error.code.startswith("SAFETY.") else 0
        body["cost"] = {"credits": charged}
    return body


def signed_url(state: SimState, job: jobs.Job, *, origin: str, now: float) -> str:
    # Whole seconds, rounded up, so a URL never lives shorter than configured.
    expires = math.ceil(now + state.config.expires_after_seconds)
    claims = {"keyHash": _key_hash(job.id), "bucket": BUCKET, "stage": "sim", "exp": expires}
    token = jwt.encode(claims, runway_state(state).signing_key, algorithm="HS256")
    return f"{origin}{ARTIFACT_PATH.format(task_id=job.id)}?_jwt={token}"


def url_valid(state: SimState, task_id: str, token: str | None) -> bool:
    """Whether an artifact URL's token is genuine, for this task, and not expired yet."""
    if not token:
        return False
    try:
        claims = jwt.decode(
            token,
            runway_state(state).signing_key,
            algorithms=["HS256"],
            # Expiry is judged on the simulator's clock, not PyJWT's.
            options={"require": ["exp"], "verify_exp": False},
        )
    except jwt.PyJWTError:
        return False
    expires = claims.get("exp")
    if isinstance(expires, bool) or not isinstance(expires, int | float):
        return False
    return claims.get("keyHash") == _key_hash(task_id) and state.clock() < expires


def _key_hash(task_id: str) -> str:
    return hashlib.sha256(task_id.encode()).hexdigest()[:32]


def _iso(timestamp: float) -> str:
    """``2026-08-26T06:30:33.796Z``: milliseconds and a Z, as Runway writes times."""
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
