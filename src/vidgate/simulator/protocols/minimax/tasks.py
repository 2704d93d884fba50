"""MiniMax tasks on top of the simulator's clock-driven jobs, and the files they produce.

A task's id and its file's id are 15-digit numbers, as MiniMax hands them out; both live
here beside the shared `JobStore`, whose jobs carry the task id as their own. Prompt
triggers pick the outcome: `[fail]` ends the task `Fail` with 1027 (the generated video was
judged sensitive), `[error]` with 1024 (an internal failure worth another try), `[stuck]`
never finishes, and `[sensitive]` is refused at creation with 1026, as MiniMax refuses a
prompt it will not render.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field

from vidgate.simulator import faults, jobs
from vidgate.simulator.protocols.minimax import rules, wire
from vidgate.simulator.state import SimState

logger = logging.getLogger(__name__)

NAME = "minimax"
ERROR_TRIGGER = "[error]"
SENSITIVE_TRIGGER = "[sensitive]"

OUTPUT_SENSITIVE = jobs.JobError(
    code=str(wire.OUTPUT_SENSITIVE), message=wire.OUTPUT_SENSITIVE_MESSAGE
)
INTERNAL_FAILURE = jobs.JobError(code=str(wire.INTERNAL_ERROR), message=wire.INTERNAL_ERROR_MESSAGE)


@dataclass
class MiniMaxState:
    """What MiniMax keeps beside the jobs: file ids, frame sizes, the URL-signing secret."""

    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    file_of: dict[str, str] = field(default_factory=dict)  # task id -> file id
    task_of: dict[str, str] = field(default_factory=dict)  # file id -> task id
    frames: dict[str, tuple[int, int]] = field(default_factory=dict)  # task id -> (w, h)
    used: set[str] = field(default_factory=set)  # every id handed out, tasks and files


def of(state: SimState) -> MiniMaxState:
    found: MiniMaxState = state.protocol_state[NAME]
    return found


def create(state: SimState, spec: rules.CreateSpec) -> jobs.Job:
    if SENSITIVE_TRIGGER in spec.prompt:
        raise wire.MiniMaxError(wire.INPUT_SENSITIVE, wire.INPUT_SENSITIVE_MESSAGE)
    mine = of(state)
    outcome, error = _outcome(spec.prompt, state)
    width, height = spec.frame_size
    job = jobs.Job(
        id=_new_id(state, mine),
        model=spec.model,
        prompt=spec.prompt,
        size=f"{width}x{height}",
        seconds=str(spec.duration),
        created_at=state.clock(),
        duration=state.config.job_seconds,
        expires_after=state.config.expires_after_seconds,
        outcome=outcome,
        error=error,
    )
    file_id = _new_id(state, mine)
    mine.file_of[job.id] = file_id
    mine.task_of[file_id] = job.id
    mine.frames[job.id] = (width, height)
    state.jobs.add(job)
    state.stats.jobs_created += 1
    logger.debug(
        "simulator created a MiniMax task", extra={"taskId": job.id, "outcome": outcome.value}
    )
    return job


def _outcome(prompt: str, state: SimState) -> tuple[jobs.Outcome, jobs.JobError | None]:
    error: jobs.JobError | None
    if faults.FAIL_TRIGGER in prompt:
        outcome, error = jobs.Outcome.FAIL, OUTPUT_SENSITIVE
    elif ERROR_TRIGGER in prompt:
        outcome, error = jobs.Outcome.FAIL, INTERNAL_FAILURE
    else:
        outcome = faults.draw_outcome(prompt, state.config, state.rng)
        error = INTERNAL_FAILURE if outcome is jobs.Outcome.FAIL else None
    if outcome is jobs.Outcome.FAIL:
        state.stats.count_fault(faults.Fault.JOB_FAIL)
    elif outcome is jobs.Outcome.STUCK:
        state.stats.count_fault(faults.Fault.JOB_STUCK)
    return outcome, error


def _new_id(state: SimState, mine: MiniMaxState) -> str:
    while True:
        candidate = str(state.rng.randrange(10**14, 10**15))
        if candidate not in mine.used:
            mine.used.add(candidate)
            return candidate
