"""An in-memory ``WebhookStore`` for unit tests, with the SQL adapter's rules: one delivery
per (target, event), leases that bump the attempt, outcomes fenced by the lease, and a
task's later delivery to a target held back while an earlier one is pending."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from vidgate.domain.events import EventType, TaskEvent
from vidgate.store import webhooks as port


@dataclasses.dataclass(kw_only=True)
class _Lease:
    owner: str
    until: datetime


class MemoryWebhookStore:
    def __init__(self) -> None:
        self.endpoints: dict[str, port.Endpoint] = {}
        self.deleted: set[str] = set()
        self.task_secrets: dict[str, port.TaskSecret] = {}
        self.rows: dict[str, port.Delivery] = {}
        self.leases: dict[str, _Lease] = {}
        self.events: list[port.DispatchEvent] = []  # what task_events holds, visible now
        self.saved_cursor = 0

    # -- test helpers ------------------------------------------------------------------

    def add_event(
        self,
        event_id: int,
        video_id: str,
        *,
        user_id: str = "u1",
        kind: str = "taskProgress",
        payload: dict[str, Any] | None = None,
        timestamp_ms: int = 2_000_000_000_000,
        webhook_url: str | None = None,
    ) -> None:
        event = TaskEvent(
            id=event_id,
            video_id=video_id,
            type=EventType(kind),
            payload=payload
            or {"videoId": video_id, "externalVideoId": None, "status": "queued", "progress": 0},
            timestamp_ms=timestamp_ms,
            task_version=1,
        )
        self.events.append(
            port.DispatchEvent(event=event, user_id=user_id, webhook_url=webhook_url)
        )

    # -- the port ----------------------------------------------------------------------

    async def add_endpoint(self, endpoint: port.Endpoint) -> None:
        self.endpoints[endpoint.id] = endpoint

    async def get_endpoint(self, endpoint_id: str) -> port.Endpoint | None:
        return None if endpoint_id in self.deleted else self.endpoints.get(endpoint_id)

    async def list_endpoints(self, user_id: str) -> list[port.Endpoint]:
        return [
            e for e in self.endpoints.values() if e.user_id == user_id and e.id not in self.deleted
        ]

    async def delete_endpoint(self, endpoint_id: str, *, at: datetime) -> None:
        self.deleted.add(endpoint_id)
        self._cancel(endpoint_id, at)

    async def rotate_endpoint(
        self, endpoint_id: str, *, secret: str, previous_until: datetime
    ) -> None:
        e = self.endpoints[endpoint_id]
        self.endpoints[endpoint_id] = dataclasses.replace(
            e, secret=secret, previous_secret=e.secret, previous_until=previous_until
        )

    async def task_secret(self, user_id: str, *, new: port.TaskSecret) -> port.TaskSecret:
        return self.task_secrets.setdefault(user_id, new)

    async def rotate_task_secret(self, new: port.TaskSecret, *, previous_until: datetime) -> None:
        old = self.task_secrets[new.user_id]
        self.task_secrets[new.user_id] = dataclasses.replace(
            old, secret=new.secret, previous_secret=old.secret, previous_until=previous_until
        )

    async def cursor(self) -> int:
        return self.saved_cursor

    async def events_after(self, after_id: int, limit: int) -> list[port.DispatchEvent]:
        found = sorted((e for e in self.events if e.event.id > after_id), key=lambda e: e.event.id)
        return found[:limit]

    async def event_ids_after(self, after_id: int, limit: int) -> list[int]:
        return sorted(e.event.id for e in self.events if e.event.id > after_id)[:limit]

    async def events_by_ids(self, ids: Sequence[int]) -> list[port.DispatchEvent]:
        wanted = set(ids)
        return sorted((e for e in self.events if e.event.id in wanted), key=lambda e: e.event.id)

    async def active_endpoints(self, user_ids: Sequence[str]) -> list[port.Endpoint]:
        return [
            e
            for e in self.endpoints.values()
            if e.user_id in user_ids and e.id not in self.deleted and e.disabled_at is None
        ]

    async def record(self, dispatch: port.Dispatch) -> int:
        for secret in dispatch.task_secrets:
            self.task_secrets.setdefault(secret.user_id, secret)
        added = 0
        taken = {(d.target, d.event_id) for d in self.rows.values()}
        for delivery in dispatch.deliveries:
            if (delivery.target, delivery.event_id) not in taken:
                self.rows[delivery.id] = delivery
                taken.add((delivery.target, delivery.event_id))
                added += 1
        self.saved_cursor = max(self.saved_cursor, dispatch.cursor)
        return added

    async def claim(
        self, *, owner: str, now: datetime, until: datetime, limit: int
    ) -> list[port.Claimed]:
        out: list[port.Claimed] = []
        for d in sorted(self.rows.values(), key=lambda d: (d.next_attempt_at, d.event_id)):
            if len(out) >= limit:
                break
            lease = self.leases.get(d.id)
            if d.status != port.PENDING or d.next_attempt_at > now:
                continue
            if lease is not None and lease.until >= now:
                continue
            if any(
                e.target == d.target
                and e.video_id == d.video_id
                and e.event_id < d.event_id
                and e.status == port.PENDING
                for e in self.rows.values()
            ):
                continue
            claimed = dataclasses.replace(d, attempts=d.attempts + 1, last_attempt_at=now)
            self.rows[d.id] = claimed
            self.leases[d.id] = _Lease(owner=owner, until=until)
            out.append(port.Claimed(delivery=claimed, secrets=self._secrets(claimed, now)))
        return out

    def _secrets(self, d: port.Delivery, now: datetime) -> tuple[str, ...]:
        if d.endpoint_id is not None:
            e = self.endpoints.get(d.endpoint_id)
            if e is None or e.id in self.deleted or e.disabled_at is not None:
                return ()
            return port.signing_secrets(e.secret, e.previous_secret, e.previous_until, now)
        s = self.task_secrets.get(d.user_id)
        if s is None:
            return ()
        return port.signing_secrets(s.secret, s.previous_secret, s.previous_until, now)

    async def finish(self, claimed: port.Claimed, *, owner: str, outcome: port.Outcome) -> bool:
        d = self.rows[claimed.delivery.id]
        lease = self.leases.get(d.id)
        fenced = lease is None or lease.owner != owner
        if fenced or d.attempts != claimed.delivery.attempts or d.status != port.PENDING:
            return False
        del self.leases[d.id]
        self.rows[d.id] = dataclasses.replace(
            d,
            status=outcome.status,
            last_status_code=outcome.status_code,
            last_error=outcome.error,
            next_attempt_at=outcome.next_attempt_at or d.next_attempt_at,
            finished_at=outcome.at if outcome.status != port.PENDING else None,
        )
        if outcome.disable_target is not None:
            if d.endpoint_id is not None and d.endpoint_id in self.endpoints:
                self.endpoints[d.endpoint_id] = dataclasses.replace(
                    self.endpoints[d.endpoint_id],
                    disabled_at=outcome.at,
                    disabled_reason=outcome.disable_target,
                )
            self._cancel(d.target, outcome.at)
        return True

    def _cancel(self, target: str, at: datetime) -> None:
        for key, d in list(self.rows.items()):
            if d.target == target and d.status == port.PENDING:
                self.rows[key] = dataclasses.replace(d, status=port.CANCELLED, finished_at=at)
                self.leases.pop(key, None)

    async def deliveries(self, endpoint_id: str, *, limit: int) -> list[port.Delivery]:
        mine = [d for d in self.rows.values() if d.target == endpoint_id]
        return sorted(mine, key=lambda d: -d.event_id)[:limit]

    async def replay(
        self, endpoint_id: str, delivery_id: str, *, at: datetime
    ) -> port.Delivery | None:
        d = self.rows.get(delivery_id)
        if d is None or d.target != endpoint_id:
            return None
        if d.status != port.PENDING:
            d = dataclasses.replace(
                d, status=port.PENDING, next_attempt_at=at, finished_at=None, created_at=at
            )
            self.rows[delivery_id] = d
        return d

    async def purge_finished(self, before: datetime, *, limit: int) -> int:
        old = [
            k
            for k, d in self.rows.items()
            if d.status != port.PENDING and d.finished_at is not None and d.finished_at < before
        ][:limit]
        for key in old:
            del self.rows[key]
        return len(old)

    async def next_due(self) -> datetime | None:
        due = [d.next_attempt_at for d in self.rows.values() if d.status == port.PENDING]
        return min(due, default=None)
