"""Fan-out of task events to subscribed WebSocket connections.

Each connection has a bounded outbox drained by its own sender, so one slow browser
never holds up the engine or other subscribers; a connection whose outbox overflows is
closed, and its client reconnects and gets a fresh ``subscribed`` snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from vidgate.domain import events
from vidgate.domain.events import TaskEvent
from vidgate.domain.models import Task
from vidgate.events.base import EventBus
from vidgate.logs import ref
from vidgate.store.base import TaskStore

logger = logging.getLogger(__name__)

OUTBOX_SIZE = 256


def now_ms() -> int:
    return int(time.time() * 1000)


class Subscriber:
    """One WebSocket connection's view: what it follows and what it has yet to send."""

    def __init__(self) -> None:
        self.outbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(OUTBOX_SIZE)
        self.floors: dict[str, int] = {}  # videoId -> task version of the last snapshot
        self.pending: dict[str, list[TaskEvent]] = {}  # held while a snapshot is read
        self.overflowed = False

    def send(self, message: dict[str, Any]) -> None:
        if self.overflowed:
            return
        try:
            self.outbox.put_nowait(message)
        except asyncio.QueueFull:
            self.overflowed = True
            self.outbox = asyncio.Queue(1)
            self.outbox.put_nowait(None)  # tells the sender to close the socket

    def offer(self, event: TaskEvent) -> bool:
        held = self.pending.get(event.video_id)
        if held is not None:
            held.append(event)
            return True
        floor = self.floors.get(event.video_id)
        if floor is None or event.task_version <= floor:
            return False  # not subscribed, or older than the snapshot already sent
        self.send(event.message())
        return True


class Hub:
    def __init__(self, store: TaskStore) -> None:
        self._store = store
        self._by_task: dict[str, set[Subscriber]] = {}
        self._stop_listening: Callable[[], None] | None = None

    def attach(self, bus: EventBus) -> None:
        self._stop_listening = bus.listen(self.deliver)

    async def deliver(self, event: TaskEvent) -> None:
        sent = sum(1 for sub in list(self._by_task.get(event.video_id, ())) if sub.offer(event))
        if sent:
            external = event.payload.get("externalVideoId")
            logger.debug(
                "[WS] broadcast: %s -> %d client(s)",
                ref(event.video_id, external),
                sent,
                extra=ref(event.video_id, external).extra | {"type": str(event.type)},
            )

    def begin(self, sub: Subscriber, video_id: str) -> None:
        """Start following ``video_id``; events are held until ``snapshot`` is called.

        Holding them closes the gap between reading the task and being registered: an
        event committed meanwhile is neither lost nor sent before an older snapshot.
        """
        self._by_task.setdefault(video_id, set()).add(sub)
        sub.pending.setdefault(video_id, [])

    def snapshot(self, sub: Subscriber, task: Task) -> None:
        """Queue ``task``'s current state as ``subscribed``, then anything newer held."""
        if task.video_id not in sub.pending:
            return  # unsubscribed (or answered) while the snapshot was read
        held = sub.pending.pop(task.video_id)
        sub.floors[task.video_id] = task.version
        sub.send({"type": "subscribed", "timestamp": now_ms(), "payload": events.payload(task)})
        for event in held:
            sub.offer(event)

    def unsubscribe(self, sub: Subscriber, video_id: str) -> None:
        sub.floors.pop(video_id, None)
        sub.pending.pop(video_id, None)
        followers = self._by_task.get(video_id)
        if followers is not None:
            followers.discard(sub)
            if not followers:
                del self._by_task[video_id]

    def drop(self, sub: Subscriber) -> None:
        for video_id in list(sub.floors) + list(sub.pending):
            self.unsubscribe(sub, video_id)

    async def close(self) -> None:
        if self._stop_listening is not None:
            self._stop_listening()
        self._by_task.clear()
