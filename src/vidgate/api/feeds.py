"""What the SSE streams send, read from ``task_events`` (the source of truth) in id order.

A ``TaskFeed`` follows one task with a cursor: within one task, ids become visible in
order (its writes are serialised by the row's compare-and-set), so "every event after
the cursor" is exact.

A ``UserFeed`` follows every task of a user, and ids are global. On PostgreSQL an id is
taken at insert but visible at commit, so a smaller id may appear after a larger one was
read. A feed that sent the larger one first would break ``Last-Event-ID``: a client whose
last id is the late smaller one would be sent the larger one again on reconnecting, and a
late one committed after a disconnect would be skipped. So the feed moves through the
global sequence of ids in order and sends a user's event only once every smaller id is
visible: an id missing between visible ones (a transaction not yet committed) holds the
feed until it shows up, or for at most ``gap_seconds`` (an id a rolled-back transaction
took never shows up). Events are then always sent in id order, each once, and a resume
from any id sent is exact. The price is the commit time of a concurrent writer (a few
milliseconds) and, after a rollback, ``gap_seconds``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from vidgate.domain import events
from vidgate.domain.events import EventType, TaskEvent
from vidgate.domain.messages import EVENTS_EXPIRED
from vidgate.domain.models import Task
from vidgate.domain.status import TaskStatus
from vidgate.store.base import TaskStore

logger = logging.getLogger(__name__)

TERMINAL_EVENTS = frozenset({EventType.COMPLETED, EventType.FAILED, EventType.CANCELLED})
READ_LIMIT = 500  # events (or ids) per query; more are read in further pages
GAP_SECONDS = 5.0  # how long a missing id holds a UserFeed before it is given up
SNAPSHOT_LIMIT = 1000  # unfinished tasks snapshotted when an all-tasks resume falls back
UNKNOWN_EVENT_ID = "UNKNOWN_EVENT_ID"  # a Last-Event-ID above every id this server has


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    """A task's current state (``subscribed``): what a stream sends first when it cannot
    replay. ``event_id`` is the newest event the state reflects, if known; ``reason``
    says why a resume was not exact (None on a fresh stream)."""

    task: Task
    event_id: int | None = None
    reason: str | None = None


Item = TaskEvent | Snapshot


def ends(item: Item) -> bool:
    """Whether a single-task stream ends after sending ``item``."""
    if isinstance(item, Snapshot):
        return item.task.status.terminal
    return item.type in TERMINAL_EVENTS


async def _exact(store: TaskStore, after: int) -> str | None:
    """None when every event after ``after`` is still stored (call it *after* reading
    them: retention only deletes a prefix, so a check made later covers the read),
    else why not."""
    if not events.replay_is_exact(after, await store.oldest_event_id()):
        return EVENTS_EXPIRED
    newest = await store.newest_event_id()
    if after > (newest or 0):
        return UNKNOWN_EVENT_ID  # another database's id, or a made-up one
    return None


@dataclass(kw_only=True)
class TaskFeed:
    store: TaskStore
    video_id: str
    cursor: int
    floor: int = 0  # task version already shown (a snapshot's); older events are dropped

    async def next(self) -> list[TaskEvent]:
        """The task's events after the cursor, oldest first, each once."""
        found = await self.store.events_after(self.video_id, self.cursor)
        fresh = []
        for event in found:
            self.cursor = event.id
            if event.task_version > self.floor:
                fresh.append(event)
        return fresh


@dataclass(frozen=True, kw_only=True)
class Opening:
    first: list[Item]  # to send before following the feed
    feed: TaskFeed


async def open_task(store: TaskStore, task: Task, after: int | None) -> Opening | None:
    """How a single-task stream starts: the replay after ``after`` when it is exact,
    else (and on a fresh stream) the task's state first. None: a resume of a finished
    task with nothing left to send, which the route answers with 204 so that a browser
    stops reconnecting."""
    reason = None
    if after is not None:
        replay = await store.events_after(task.video_id, after)
        reason = await _exact(store, after)
        if reason is None:
            if not replay and task.status.terminal:
                return None
            cursor = replay[-1].id if replay else after
            return Opening(
                first=list(replay),
                feed=TaskFeed(store=store, video_id=task.video_id, cursor=cursor),
            )
        logger.info(
            "SSE resume of %s after %d is not exact (%s): snapshot", task.video_id, after, reason
        )
    # The task was read before its events: every event its state reflects is among them.
    history = await store.events_after(task.video_id, 0)
    shown = [e for e in history if e.task_version <= task.version]
    snapshot = Snapshot(task=task, event_id=shown[-1].id if shown else None, reason=reason)
    newer: list[Item] = [e for e in history if e.task_version > task.version]
    feed = TaskFeed(
        store=store,
        video_id=task.video_id,
        cursor=history[-1].id if history else 0,
        floor=task.version,
    )
    return Opening(first=[snapshot, *newer], feed=feed)


@dataclass(kw_only=True)
class UserFeed:
    store: TaskStore
    user_id: str
    cursor: int  # every id up to here is settled: sent, someone else's, or given up
    floors: dict[str, int] = field(default_factory=dict)  # videoId -> version snapshotted
    gap_seconds: float = GAP_SECONDS
    clock: Callable[[], float] = time.monotonic
    _gap_at: int | None = None  # the first missing id holding the feed, since _gap_since
    _gap_since: float = 0.0

    @property
    def held(self) -> bool:
        """Whether a missing id holds the feed (read again soon, it may show up)."""
        return self._gap_at is not None

    async def next(self) -> tuple[list[TaskEvent], bool]:
        """The user's events up to the newest settled id, oldest first; and whether more
        may be read at once (a full page)."""
        ids = await self.store.event_ids_after(self.cursor, READ_LIMIT)
        settled = self._settle(ids)
        if settled <= self.cursor:
            return [], False
        mine: list[TaskEvent] = []
        after = self.cursor
        while True:
            page = await self.store.events_of_user(self.user_id, after, READ_LIMIT)
            mine.extend(e for e in page if e.id <= settled)
            if len(page) < READ_LIMIT or page[-1].id >= settled:
                break
            after = page[-1].id
        self.cursor = settled
        fresh = []
        for event in mine:
            floor = self.floors.get(event.video_id)
            if floor is not None and event.task_version <= floor:
                continue
            fresh.append(event)
        return fresh, len(ids) == READ_LIMIT and not self.held

    def _settle(self, ids: list[int]) -> int:
        """The newest id up to which every id is visible or given up."""
        position = self.cursor
        for event_id in ids:
            if event_id > position + 1:  # position+1 .. event_id-1 are not visible
                now = self.clock()
                if self._gap_at != position + 1:
                    self._gap_at, self._gap_since = position + 1, now
                if now - self._gap_since < self.gap_seconds:
                    return position
                logger.warning(
                    "event ids %d..%d did not show up within %.1f s; going on without them",
                    position + 1,
                    event_id - 1,
                    self.gap_seconds,
                )
            self._gap_at = None
            position = event_id
        return position


async def open_user(
    store: TaskStore, user_id: str, after: int | None
) -> tuple[list[Item], UserFeed]:
    """How an all-tasks stream starts: after ``after`` when that is exact; a fresh stream
    starts at the newest event (it sends what happens next). A resume that is not exact
    sends the state of each unfinished task first, then every event still stored."""
    newest = await store.newest_event_id() or 0
    if after is None:
        return [], UserFeed(store=store, user_id=user_id, cursor=newest)
    reason = await _exact(store, after)
    if reason is None:
        return [], UserFeed(store=store, user_id=user_id, cursor=after)
    logger.info("SSE resume of %s's tasks after %d is not exact (%s)", user_id, after, reason)
    snapshots = await _unfinished(store, user_id, reason)
    oldest = await store.oldest_event_id()
    feed = UserFeed(
        store=store,
        user_id=user_id,
        cursor=(oldest - 1) if oldest is not None else newest,
        floors={s.task.video_id: s.task.version for s in snapshots},
    )
    return list(snapshots), feed


async def _unfinished(store: TaskStore, user_id: str, reason: str) -> list[Snapshot]:
    found: list[Snapshot] = []
    for status in (TaskStatus.QUEUED, TaskStatus.PROCESSING):
        cursor = None
        while len(found) < SNAPSHOT_LIMIT:
            page = await store.list_page(user_id=user_id, status=status, limit=100, cursor=cursor)
            found.extend(Snapshot(task=t, reason=reason) for t in page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
    return found[:SNAPSHOT_LIMIT]
