"""Frozen value objects for tasks and their upstream attempts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from vidgate.domain.request import VideoParams
from vidgate.domain.status import TaskStatus


class AttemptState(StrEnum):
    """One upstream submission's life (ARCHITECTURE.md "Data")."""

    SUBMITTING = "submitting"  # row written, create call not (yet) answered
    SUBMITTED = "submitted"  # upstream accepted it; external id known
    FINISHED = "finished"  # upstream job completed
    FAILED = "failed"  # upstream refused or the job failed
    UNKNOWN = "unknown"  # we cannot tell whether the upstream created a job


@dataclass(frozen=True, kw_only=True)
class TaskError:
    code: str
    message: str


@dataclass(frozen=True, kw_only=True)
class Attempt:
    video_id: str
    number: int
    provider: str
    idempotency_key: str
    state: AttemptState = AttemptState.SUBMITTING
    external_id: str | None = None
    upstream_status: str | None = None  # pushed-style word of the upstream job
    created_at: datetime
    submitted_at: datetime | None = None
    finished_at: datetime | None = None
    error: TaskError | None = None
    # How to reach the job again whatever the config says now (providers.base.Binding,
    # as JSON): protocol, provider, upstream model, base URL, credential name, handle.
    binding: dict[str, Any] | None = None
    result_expires_at: datetime | None = None  # when the upstream's copy of the video goes
    usage: dict[str, Any] | None = None  # what the upstream reported it used


@dataclass(frozen=True, kw_only=True)
class Task:
    video_id: str
    user_id: str
    status: TaskStatus = TaskStatus.QUEUED
    progress: int = 0
    message: str = "Queued"
    prompt: str
    model: str
    seconds: str
    size: str
    input_reference: str | None = None
    params: VideoParams = field(default_factory=VideoParams)  # the neutral request fields
    provider: str | None = None
    external_id: str | None = None
    video_url: str | None = None
    error: TaskError | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    deadline_at: datetime
    # Scheduling and ownership. ``attempt`` is the current attempt number (0 before the
    # first submission) and, with ``version``, the fencing token of every engine write.
    next_check_at: datetime | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = None
    attempt: int = 0
    version: int = 1
    attempts: tuple[Attempt, ...] = ()

    @property
    def current_attempt(self) -> Attempt | None:
        for item in self.attempts:
            if item.number == self.attempt:
                return item
        return None
