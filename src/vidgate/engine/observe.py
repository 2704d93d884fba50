"""An adapter's neutral job view, read as the domain's observation of a task.

The one place the engine turns ``JobStatus`` into task statuses and fills in what an
upstream leaves out: a job that reports no progress (Kling, Veo, MiniMax) is shown an
estimate from its age, and its message says so.
"""

from __future__ import annotations

import math

from vidgate.domain.models import TaskError
from vidgate.domain.status import TaskStatus
from vidgate.domain.transitions import Observation
from vidgate.providers.base import JobStatus, JobView

_TASK_STATUS = {
    JobStatus.QUEUED: TaskStatus.QUEUED,
    JobStatus.IN_PROGRESS: TaskStatus.PROCESSING,
    JobStatus.COMPLETED: TaskStatus.COMPLETED,
    JobStatus.FAILED: TaskStatus.FAILED,
    # A cancel we did not ask for ends the attempt as a failure.
    JobStatus.CANCELLED: TaskStatus.FAILED,
    JobStatus.EXPIRED: TaskStatus.EXPIRED,
}

ESTIMATED = "Generating video... (progress estimated from elapsed time)"


def estimate_progress(since_submit: float, expected: float) -> int:
    """A progress figure for an upstream that reports none: rises with the job's age
    towards (never to) 99, reaching about 63 % at ``expected`` seconds."""
    if since_submit <= 0 or expected <= 0:
        return 0
    return min(99, int(99 * (1 - math.exp(-since_submit / expected))))


def task_status_of(status: JobStatus | None) -> TaskStatus | None:
    """The task status an upstream job's neutral status means; None for an unknown word."""
    return _TASK_STATUS.get(status) if status is not None else None


def observation_of(job: JobView, *, since_submit: float, expected: float) -> Observation:
    status = task_status_of(job.status)
    progress = job.progress
    message = None
    if progress is None and status is TaskStatus.PROCESSING:
        progress = estimate_progress(since_submit, expected)
        message = ESTIMATED
    error = None
    if job.error is not None:
        error = TaskError(code=job.error.code, message=job.error.message)
    return Observation(
        status=status,
        raw_status=job.raw_status,
        progress=progress,
        error=error,
        upstream_created_at=job.created_at,
        message=message,
    )
