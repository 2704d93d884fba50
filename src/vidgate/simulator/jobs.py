"""Simulated jobs: immutable records whose status is computed from the clock on every read.

Nothing runs in the background per job, so thousands of jobs in flight cost only their records.
A job is queued for the first 10% of its duration, then in_progress with progress rising
linearly from 0 to 99, then completed (progress 100). A failing job fails halfway through, with
the progress it had reached; a stuck job stays in_progress at 99 forever.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

QUEUED_FRACTION = 0.1
FAIL_FRACTION = 0.5


class Outcome(enum.Enum):
    COMPLETE = "complete"
    FAIL = "fail"
    STUCK = "stuck"


@dataclass(frozen=True, kw_only=True, slots=True)
class JobError:
    code: str
    message: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Job:
    id: str
    model: str
    prompt: str
    size: str
    seconds: str
    created_at: float
    duration: float
    expires_after: float
    outcome: Outcome
    error: JobError | None = None
    remixed_from_video_id: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Phase:
    """A job as seen at one instant."""

    status: str
    progress: int
    finished_at: float | None
    expires_at: float | None

    @property
    def terminal(self) -> bool:
        return self.status in ("completed", "failed")


def new_id() -> str:
    return f"video_{secrets.token_hex(16)}"


def phase(job: Job, now: float) -> Phase:
    elapsed = max(0.0, now - job.created_at)
    queued_for = job.duration * QUEUED_FRACTION
    if job.outcome is Outcome.FAIL:
        failed_after = job.duration * FAIL_FRACTION
        if elapsed >= failed_after:
            return Phase(
                status="failed",
                progress=_progress(job.duration, failed_after),
                finished_at=job.created_at + failed_after,
                expires_at=None,
            )
    elif job.outcome is Outcome.COMPLETE and elapsed >= job.duration:
        finished_at = job.created_at + job.duration
        return Phase(
            status="completed",
            progress=100,
            finished_at=finished_at,
            expires_at=finished_at + job.expires_after,
        )
    if elapsed < queued_for:
        return Phase(status="queued", progress=0, finished_at=None, expires_at=None)
    return Phase(
        status="in_progress",
        progress=_progress(job.duration, elapsed),
        finished_at=None,
        expires_at=None,
    )


def finishes_at(job: Job) -> float | None:
    """When the job ends (completed or failed), exactly; None for a stuck job."""
    if job.outcome is Outcome.FAIL:
        return job.created_at + job.duration * FAIL_FRACTION
    if job.outcome is Outcome.COMPLETE:
        return job.created_at + job.duration
    return None


def _progress(duration: float, elapsed: float) -> int:
    queued_for = duration * QUEUED_FRACTION
    working_for = duration - queued_for
    if working_for <= 0:
        return 99
    fraction = (elapsed - queued_for) / working_for
    return max(0, min(99, int(fraction * 100)))


class JobStore:
    """Jobs in creation order, plus the Idempotency-Key index. Single event loop, no locking."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._by_idempotency_key: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._jobs)

    def __iter__(self) -> Iterator[Job]:
        return iter(list(self._jobs.values()))

    def get(self, video_id: str) -> Job | None:
        return self._jobs.get(video_id)

    def by_idempotency_key(self, key: str) -> Job | None:
        video_id = self._by_idempotency_key.get(key)
        return None if video_id is None else self._jobs.get(video_id)

    def add(self, job: Job, idempotency_key: str | None = None) -> None:
        self._jobs[job.id] = job
        if idempotency_key is not None:
            self._by_idempotency_key[idempotency_key] = job.id

    def delete(self, video_id: str) -> Job | None:
        return self._jobs.pop(video_id, None)

    def page(self, *, after: str | None, limit: int, descending: bool) -> tuple[list[Job], bool]:
        """Up to `limit` jobs following `after` in the given order, and whether more follow.

        An unknown `after` id yields an empty page: the cursor points past everything we know.
        """
        ordered = list(self._jobs.values())
        if descending:
            ordered.reverse()
        if after is not None:
            index = next((i for i, job in enumerate(ordered) if job.id == after), None)
            ordered = [] if index is None else ordered[index + 1 :]
        return ordered[:limit], len(ordered) > limit
