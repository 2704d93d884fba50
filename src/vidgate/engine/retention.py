"""Event retention: delete ``task_events`` rows older than the configured days.

One bounded batch per tick (``TaskStore.purge_events``: a prefix of ids, never the newest
event), so the table shrinks without long transactions or locks. A full batch is followed
by the next after a short pause; otherwise the loop sleeps ``interval_seconds`` (by
default a minute, or a tenth of the retention if that is shorter). Clients
that resume from an id older than what is left get a snapshot instead of a replay
(``vidgate.domain.events.replay_is_exact``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from vidgate.store.base import TaskStore

logger = logging.getLogger(__name__)

DAY_MS = 86_400_000
BATCH = 1000
INTERVAL_SECONDS = 60.0
BUSY_PAUSE_SECONDS = 0.5  # between full batches: leave the database to the steps


class EventRetention:
    """A loop you can stop: ``run()`` until ``stop()``."""

    def __init__(
        self,
        store: TaskStore,
        *,
        days: float,
        batch: int = BATCH,
        interval_seconds: float | None = None,
        busy_pause_seconds: float = BUSY_PAUSE_SECONDS,
    ) -> None:
        self._store = store
        self._keep_ms = int(days * DAY_MS)
        self._batch = batch
        if interval_seconds is None:
            interval_seconds = max(0.05, min(INTERVAL_SECONDS, self._keep_ms / 10_000))
        self._interval = interval_seconds
        self._busy_pause = min(busy_pause_seconds, interval_seconds)
        self._stopped = asyncio.Event()
        self._failing = False

    def stop(self) -> None:
        self._stopped.set()

    async def tick(self) -> int:
        """Delete one batch of expired events; how many."""
        cutoff = int(time.time() * 1000) - self._keep_ms
        return await self._store.purge_events(older_than_ms=cutoff, limit=self._batch)

    async def run(self) -> None:
        while not self._stopped.is_set():
            try:
                deleted = await self.tick()
            except Exception as exc:
                if not self._failing:
                    logger.warning(
                        "event retention: purge failed (%s: %s)", type(exc).__name__, exc
                    )
                self._failing = True
                deleted = 0
            else:
                if self._failing:
                    logger.info("event retention: purging again")
                self._failing = False
                if deleted:
                    logger.info("event retention: deleted %d event(s)", deleted)
            pause = self._busy_pause if deleted >= self._batch else self._interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), timeout=pause)
