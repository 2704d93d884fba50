"""The ``WebhookStore`` port: endpoints, per-task secrets, and the delivery outbox (one row
per target and event) that makes webhooks durable. The SQL adapter is
``vidgate.store.webhooks_sql``, the in-memory fake ``vidgate.testing.webhooks``.

Two rules hold the delivery guarantees (vidgate.webhooks):

- a delivery row is unique per (target, event), so the dispatcher may read events again
  (it does, with an overlap) without ever sending one twice;
- a delivery is claimed with a lease that bumps its attempt number, in one statement
  (PostgreSQL: ``FOR UPDATE SKIP LOCKED``; SQLite: an immediate transaction), and the
  outcome is written only by the lease holder of that attempt: two workers never send the
  same attempt. An earlier delivery of the same task to the same target that is still
  pending keeps a later one from being claimed, so each target sees a task's events in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from vidgate.domain.events import TaskEvent

PENDING = "pending"
SUCCEEDED = "succeeded"
FAILED = "failed"  # given up: retries exhausted, a 410, or a refused address
CANCELLED = "cancelled"  # its endpoint was deleted or disabled before it was sent
TASK_TARGET = "task:"  # target of a task's own webhookUrl: "task:<videoId>"
WEBHOOK_URL_KEY = "webhookUrl"  # where a task keeps its own webhook URL (task metadata)
DISPATCH_CURSOR = "dispatcher"


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    id: str
    user_id: str
    url: str
    event_types: tuple[str, ...] | None  # None: every type
    secret: str
    previous_secret: str | None = None
    previous_until: datetime | None = None
    created_at: datetime
    disabled_at: datetime | None = None
    disabled_reason: str | None = None

    def wants(self, event_type: str) -> bool:
        return self.event_types is None or event_type in self.event_types


@dataclass(frozen=True, kw_only=True)
class TaskSecret:
    user_id: str
    secret: str
    previous_secret: str | None = None
    previous_until: datetime | None = None
    created_at: datetime


@dataclass(frozen=True, kw_only=True)
class Delivery:
    id: str  # the webhook-id header
    target: str
    endpoint_id: str | None
    user_id: str
    video_id: str
    event_id: int
    event_type: str
    url: str
    body: str
    status: str = PENDING
    attempts: int = 0
    next_attempt_at: datetime
    last_status_code: int | None = None
    last_error: str | None = None
    last_attempt_at: datetime | None = None
    created_at: datetime
    finished_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class Claimed:
    """A delivery leased for one attempt (``delivery.attempts`` is its number), with the
    secrets that sign it now; ``secrets`` is empty when its endpoint is gone or disabled."""

    delivery: Delivery
    secrets: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """What one attempt came to; written only by the holder of that attempt's lease."""

    status: str  # PENDING (retry at next_attempt_at), SUCCEEDED, FAILED or CANCELLED
    at: datetime
    next_attempt_at: datetime | None = None
    status_code: int | None = None
    error: str | None = None
    disable_target: str | None = None  # a reason: the target answered 410 Gone


@dataclass(frozen=True, kw_only=True)
class DispatchEvent:
    """A ``task_events`` row with what the dispatcher needs of its task."""

    event: TaskEvent
    user_id: str
    webhook_url: str | None


@dataclass(frozen=True, kw_only=True)
class Dispatch:
    """The deliveries made from a batch of events, stored with the new cursor at once."""

    deliveries: list[Delivery] = field(default_factory=list)
    task_secrets: list[TaskSecret] = field(default_factory=list)  # created if missing
    cursor: int = 0


class WebhookStore(Protocol):
    async def add_endpoint(self, endpoint: Endpoint) -> None: ...

    async def get_endpoint(self, endpoint_id: str) -> Endpoint | None:
        """The endpoint unless deleted (disabled ones are returned)."""
        ...

    async def list_endpoints(self, user_id: str) -> list[Endpoint]: ...

    async def delete_endpoint(self, endpoint_id: str, *, at: datetime) -> None:
        """Delete it and cancel its pending deliveries."""
        ...

    async def rotate_endpoint(
        self, endpoint_id: str, *, secret: str, previous_until: datetime
    ) -> None: ...

    async def task_secret(self, user_id: str, *, new: TaskSecret) -> TaskSecret:
        """The user's per-task secret; ``new`` is stored first if they have none."""
        ...

    async def rotate_task_secret(self, new: TaskSecret, *, previous_until: datetime) -> None: ...

    async def cursor(self) -> int: ...

    async def events_after(self, after_id: int, limit: int) -> list[DispatchEvent]: ...

    async def event_ids_after(self, after_id: int, limit: int) -> list[int]:
        """The ids of the next ``limit`` events after ``after_id``, in order (ids only)."""
        ...

    async def events_by_ids(self, ids: Sequence[int]) -> list[DispatchEvent]:
        """The events with these ids that exist, in id order."""
        ...

    async def active_endpoints(self, user_ids: Sequence[str]) -> list[Endpoint]: ...

    async def record(self, dispatch: Dispatch) -> int:
        """Insert the deliveries not yet there and move the cursor up; how many were new."""
        ...

    async def claim(
        self, *, owner: str, now: datetime, until: datetime, limit: int
    ) -> list[Claimed]: ...

    async def finish(self, claimed: Claimed, *, owner: str, outcome: Outcome) -> bool:
        """Record an attempt's outcome; False if the lease was lost meanwhile."""
        ...

    async def deliveries(self, endpoint_id: str, *, limit: int) -> list[Delivery]: ...

    async def replay(self, endpoint_id: str, delivery_id: str, *, at: datetime) -> Delivery | None:
        """Make the delivery due again now (same webhook-id); None if there is none."""
        ...

    async def next_due(self) -> datetime | None: ...

    async def purge_finished(self, before: datetime, *, limit: int) -> int:
        """Forget up to ``limit`` deliveries that ended before ``before``; how many."""
        ...


def signing_secrets(
    secret: str, previous: str | None, until: datetime | None, now: datetime
) -> tuple[str, ...]:
    """The current secret, and the previous one while its rotation overlap lasts."""
    if previous is not None and until is not None and until > now:
        return (secret, previous)
    return (secret,)
