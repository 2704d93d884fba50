"""Events to deliveries: follow ``task_events`` with a durable cursor.

On PostgreSQL an event's id is taken at insert but visible at commit, so an id below one
already read can still appear. Each pass reads whole events above the highest id seen;
below it, at most every ``gap_seconds``, it reads only the ids from a floor that trails
the ids it has seen by ``overlap_seconds``, and fetches whole only those it has not seen:
a busy gateway does not re-read its last seconds of events on every wake-up. The floor
is stored as the cursor; a delivery row is unique per (target, event), so reading an
event again never makes a second delivery. Within one task ids become visible in order
(its writes are serialised by the row's compare-and-set), so a task's deliveries are made
in order.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime

from vidgate.store import webhooks as store
from vidgate.webhooks import payload, signing

logger = logging.getLogger(__name__)

READ_LIMIT = 500
ID_READ_LIMIT = 5000
DEFAULT_OVERLAP_SECONDS = 10.0
DEFAULT_GAP_SECONDS = 1.0


def delivery_id() -> str:
    return "msg_" + uuid.uuid4().hex


class Dispatcher:
    def __init__(
        self,
        webhook_store: store.WebhookStore,
        *,
        overlap_seconds: float = DEFAULT_OVERLAP_SECONDS,
        gap_seconds: float = DEFAULT_GAP_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = webhook_store
        self.overlap = overlap_seconds
        self.gap_seconds = gap_seconds
        self.clock = clock
        self._gaps_checked = float("-inf")
        self._floor: int | None = None  # None: not yet read from the store
        self._high = 0
        self._marks: deque[tuple[float, int]] = deque()  # (when, high-water mark then)
        self._seen: dict[int, float] = {}  # event ids handled in the overlap window

    async def run_once(self) -> int:
        """One pass; how many deliveries it created."""
        if self._floor is None:
            self._floor = await self.store.cursor()
            self._high = self._floor
        now = self.clock()
        created = 0
        while True:  # what is new above the high-water mark, read whole
            batch = await self.store.events_after(self._high, READ_LIMIT)
            created += await self._take(batch, now)
            if len(batch) < READ_LIMIT:
                break
        if now - self._gaps_checked >= self.gap_seconds:
            self._gaps_checked = now
            created += await self._fill_gaps(now)
        self._marks.append((now, self._high))
        # The floor moves up to the high-water mark of a pass at least `overlap` ago: by
        # then every event below it has been committed (or never will be).
        while self._marks and now - self._marks[0][0] >= self.overlap:
            _, mark = self._marks.popleft()
            if mark > self._floor:
                self._floor = mark
                await self.store.record(store.Dispatch(cursor=mark))
        self._seen = {k: t for k, t in self._seen.items() if now - t < 2 * self.overlap}
        return created

    async def _fill_gaps(self, now: float) -> int:
        """Events between the floor and the high-water mark that were not visible when the
        mark passed them: found by id, then read whole."""
        assert self._floor is not None
        high, after, missing = self._high, self._floor, []
        while after < high:
            ids = await self.store.event_ids_after(after, ID_READ_LIMIT)
            missing += [i for i in ids if i <= high and i not in self._seen]
            if len(ids) < ID_READ_LIMIT:
                break
            after = ids[-1]
        created = 0
        for start in range(0, len(missing), READ_LIMIT):
            found = await self.store.events_by_ids(missing[start : start + READ_LIMIT])
            created += await self._take(found, now)
        return created

    async def _take(self, batch: list[store.DispatchEvent], now: float) -> int:
        """Dispatch the events of ``batch`` not seen yet, and remember them."""
        if not batch:
            return 0
        self._high = max(self._high, batch[-1].event.id)
        fresh = [e for e in batch if e.event.id not in self._seen]
        created = await self._dispatch(fresh, cursor=self._floor or 0)
        for item in fresh:
            self._seen[item.event.id] = now
        return created

    async def _dispatch(self, items: list[store.DispatchEvent], *, cursor: int) -> int:
        if not items:
            return 0
        users = sorted({item.user_id for item in items})
        endpoints = await self.store.active_endpoints(users)
        by_user: dict[str, list[store.Endpoint]] = {}
        for endpoint in endpoints:
            by_user.setdefault(endpoint.user_id, []).append(endpoint)
        now = datetime.now(UTC)
        deliveries: list[store.Delivery] = []
        secrets: dict[str, store.TaskSecret] = {}
        for item in items:
            event = item.event
            body = payload.body(event)
            kind = str(event.type)
            targets: list[tuple[str, str | None, str]] = []
            for endpoint in by_user.get(item.user_id, []):
                registered_ms = int(endpoint.created_at.timestamp() * 1000)
                if endpoint.wants(kind) and event.timestamp_ms >= registered_ms:
                    targets.append((endpoint.id, endpoint.id, endpoint.url))
            if item.webhook_url:
                targets.append((store.TASK_TARGET + event.video_id, None, item.webhook_url))
                secrets.setdefault(
                    item.user_id,
                    store.TaskSecret(
                        user_id=item.user_id, secret=signing.new_secret(), created_at=now
                    ),
                )
            for target, endpoint_id, url in targets:
                deliveries.append(
                    store.Delivery(
                        id=delivery_id(),
                        target=target,
                        endpoint_id=endpoint_id,
                        user_id=item.user_id,
                        video_id=event.video_id,
                        event_id=event.id,
                        event_type=kind,
                        url=url,
                        body=body,
                        next_attempt_at=now,
                        created_at=now,
                    )
                )
        if not deliveries:
            return 0
        added = await self.store.record(
            store.Dispatch(
                deliveries=deliveries, task_secrets=list(secrets.values()), cursor=cursor
            )
        )
        if added:
            logger.debug("webhooks: %d new deliveries", added)
        return added
