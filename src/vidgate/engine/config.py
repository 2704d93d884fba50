"""The engine's settings, and the clock its steps read."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime

from vidgate.domain.schedule import PollPolicy


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
    # task_events rows older than this are deleted (vidgate.engine.retention); None keeps all.
    event_retention_days: float | None = None
