"""Fan-out of task events to subscribed WebSocket connections.

Messages come from ``task_events``, the source of truth, so a subscriber gets the messages
of its tasks once and in order, whichever process wrote them and whatever wake-ups the bus
lost:

- an event this process wrote comes with its wake-up (the in-process bus, or the Redis
  bus's local hand-over) and is delivered as it is, without a read;
- a wake-up from elsewhere (Redis: ids only) marks its video due, if it has local
  subscribers; the hub's reader task reads what the due videos have after the last event
  delivered for each, in one query, and delivers it;
- every ``poll_seconds`` the reader also reads, in one query, the new events of every
  followed video, reaching back to the high-water mark of a few polls ago, so a lost
  wake-up costs at most one poll interval;
- per video, an event is delivered only if its id is above the last one delivered, so reads
  that overlap never send a message twice, and each subscriber drops what is not newer than
  the task version it was last sent (its ``subscribed`` snapshot included).

A subscriber that resumes (``afterEventId``) is sent the stored events after that id,
then whatever is newer; per video it drops what is not above the last event id it sent,
so the replay and the live delivery overlap without a duplicate. A plain subscription's
``subscribed`` snapshot names the id of the newest event it reflects, computed exactly:
events up to the video's cursor when it began were read before the task was, and of the
events after it those with a task version up to the snapshot's are the ones it shows.

Each connection has a bounded outbox drained by its own sender, so one slow browser
never holds up the engine or other subscribers; a connection whose outbox overflows is
closed, and its client reconnects and gets a fresh ``subscribed`` snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from vidgate.domain import events, messages
from vidgate.domain.events import TaskEvent
from vidgate.domain.models import Task
from vidgate.events.base import EventBus, Wakeup
from vidgate.logs import ref
from vidgate.store.base import TaskStore

logger = logging.getLogger(__name__)

OUTBOX_SIZE = 256
POLL_SECONDS = 1.0
# Why reads reach back to the high-water mark of a few polls ago: on PostgreSQL an event's
# id is taken at insert but seen at commit, so a smaller id can become visible after a
# larger one was read. Within one video ids do become visible in order (writes to a task
# are serialised by its row's compare-and-set), which makes the per-video cursors exact.
OVERLAP_POLLS = 5
READ_CHUNK = 500  # videos per query, well under every database's parameter limit
READ_LIMIT = 1000  # events per query; more are read in further pages


class Subscriber:
    """One WebSocket connection's view: what it follows and what it has yet to send."""

    def __init__(self) -> None:
        self.outbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(OUTBOX_SIZE)
        self.floors: dict[str, int] = {}  # videoId -> task version last sent (snapshot or event)
        self.seen: dict[str, int] = {}  # videoId -> id of the last event sent or reflected
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
            return False  # not subscribed, or not newer than what was already sent
        if event.id <= self.seen.get(event.video_id, 0):
            return False  # replayed already (a resume), or reflected by the snapshot
        self.floors[event.video_id] = event.task_version
        self.seen[event.video_id] = event.id
        self.send(event.message())
        return True

    def take_held(self, video_id: str) -> list[TaskEvent] | None:
        """Stop holding ``video_id``'s events; those held (None: no longer subscribing)."""
        return self.pending.pop(video_id, None)


Delivered = Callable[[str, int], None]  # (source: "bus" or "store", connections reached)


class Hub:
    def __init__(
        self,
        store: TaskStore,
        *,
        poll_seconds: float = POLL_SECONDS,
        on_delivered: Delivered | None = None,
    ) -> None:
        self._store = store
        self._poll_seconds = poll_seconds
        self._on_delivered = on_delivered  # metrics (vidgate.metrics), or nothing
        self._by_task: dict[str, set[Subscriber]] = {}
        self._cursor: dict[str, int] = {}  # followed videoId -> id of the last event delivered
        self._high = 0  # the largest event id read so far: the high-water mark
        # The high-water mark after each of the last polls; a poll reads after the oldest.
        self._marks: deque[int] = deque([0], maxlen=OVERLAP_POLLS + 1)
        self._due: set[str] = set()  # videos woken since their events were last read
        self._reading: set[str] = set()  # videos whose events a query is reading now
        self._woken = asyncio.Event()
        self._poll_now = False
        self._failing = False
        self._reader: asyncio.Task[None] | None = None
        self._stop_listening: Callable[[], None] | None = None

    def attach(self, bus: EventBus) -> None:
        """Follow ``bus`` and start the reader task (call it from the running loop)."""
        self._stop_listening = bus.listen(self.wake, on_reconnect=self.resync)
        if self._reader is None:
            self._reader = asyncio.create_task(self._run(), name="vidgate-hub")

    async def wake(self, wakeup: Wakeup) -> None:
        """The bus listener: deliver or note that a video has news. Never waits."""
        video_id = wakeup.video_id
        cursor = self._cursor.get(video_id)
        if cursor is None or wakeup.id <= cursor:
            return  # nobody here follows it, or it was delivered already
        if (
            isinstance(wakeup, TaskEvent)
            and video_id not in self._due
            and video_id not in self._reading
        ):
            # The committed event itself, written by this process: no read needed, which
            # keeps the embedded default as fast as a direct hand-over. (If a same-task
            # write committed just before is announced after it, that one is skipped:
            # the subscriber goes straight to the newer state, still in order.)
            self._deliver([wakeup], "bus")
            return
        self._due.add(video_id)
        self._woken.set()

    async def resync(self) -> None:
        """The bus lost wake-ups (it reconnected): poll now rather than at the next tick."""
        self._poll_now = True
        self._woken.set()

    def begin(self, sub: Subscriber, video_id: str) -> int:
        """Start following ``video_id``; events are held until ``snapshot`` is called.

        Holding them closes the gap between reading the task and being registered: an
        event committed meanwhile is neither lost nor sent before an older snapshot.
        Returns the video's cursor: every event up to it shows in a task read from now.
        """
        if video_id not in self._cursor:
            # Events up to the oldest poll mark were committed polls ago, so the snapshot
            # about to be read shows them: delivery starts after them.
            self._cursor[video_id] = self._marks[0]
        self._by_task.setdefault(video_id, set()).add(sub)
        sub.pending.setdefault(video_id, [])
        return self._cursor[video_id]

    async def start(
        self, sub: Subscriber, task: Task, *, since: int, after_id: int | None = None
    ) -> None:
        """Answer a subscription once ``task`` was read (``since``: what ``begin`` said).

        With ``after_id``, replay the stored events after it if all of them are still
        stored, else fall back to a snapshot that says so (``resumed: false``).
        """
        reason = None
        if after_id is not None:
            oldest = await self._store.oldest_event_id()
            if events.replay_is_exact(after_id, oldest):
                replay = await self._store.events_after(task.video_id, after_id)
                self.resume(sub, task, replay, after_id=after_id)
                return
            reason = messages.EVENTS_EXPIRED
        found = await self._store.events_after(task.video_id, since)
        shown = [e.id for e in found if e.task_version <= task.version]
        self.snapshot(
            sub,
            task,
            event_id=max([since, *shown]),
            resumed=None if reason is None else False,
            reason=reason,
        )

    def snapshot(
        self,
        sub: Subscriber,
        task: Task,
        *,
        event_id: int | None = None,
        resumed: bool | None = None,
        reason: str | None = None,
    ) -> None:
        """Queue ``task``'s current state as ``subscribed``, then anything newer held.
        ``event_id``: the newest event the state reflects, when known."""
        held = sub.take_held(task.video_id)
        if held is None:
            return  # unsubscribed (or answered) while the snapshot was read
        sub.floors[task.video_id] = task.version
        if event_id is not None:
            sub.seen[task.video_id] = event_id
        frame = messages.subscribed(
            events.state(task), event_id=event_id, resumed=resumed, reason=reason
        )
        sub.send(messages.render(frame))
        for event in held:
            sub.offer(event)

    def resume(
        self, sub: Subscriber, task: Task, replay: list[TaskEvent], *, after_id: int
    ) -> None:
        """Queue the stored events after ``after_id`` (``replay``, oldest first), then
        ``subscribed`` (``resumed: true``) with the state of the last one, then anything
        newer held. Nothing is sent twice: events are filtered by id."""
        held = sub.take_held(task.video_id)
        if held is None:
            return
        sub.floors[task.video_id] = 0
        sub.seen[task.video_id] = after_id
        state: messages.TaskState | dict[str, Any] = events.state(task)
        for event in replay:
            if sub.offer(event):
                state = event.payload
        frame = messages.subscribed(state, event_id=sub.seen[task.video_id], resumed=True)
        sub.send(messages.render(frame))
        for event in held:
            sub.offer(event)

    def unsubscribe(self, sub: Subscriber, video_id: str) -> None:
        sub.floors.pop(video_id, None)
        sub.seen.pop(video_id, None)
        sub.pending.pop(video_id, None)
        followers = self._by_task.get(video_id)
        if followers is not None:
            followers.discard(sub)
            if not followers:
                del self._by_task[video_id]
                self._cursor.pop(video_id, None)
                self._due.discard(video_id)

    def drop(self, sub: Subscriber) -> None:
        for video_id in list(sub.floors) + list(sub.pending):
            self.unsubscribe(sub, video_id)

    async def close(self) -> None:
        if self._stop_listening is not None:
            self._stop_listening()
            self._stop_listening = None
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
            self._reader = None
        self._by_task.clear()
        self._cursor.clear()
        self._due.clear()

    # -- the reader task -----------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_poll = loop.time() + self._poll_seconds
        while True:
            try:
                if not self._due and not self._poll_now:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(
                            self._woken.wait(), max(0.0, next_poll - loop.time())
                        )
                self._woken.clear()
                if self._due:
                    due, self._due = self._due, set()
                    await self._catch_up(due)
                if self._poll_now or loop.time() >= next_poll:
                    self._poll_now = False
                    next_poll = loop.time() + self._poll_seconds
                    await self._poll()
            except Exception:  # a dead reader would silence every socket: log and go on
                logger.exception("WebSocket hub reader failed; continuing")
                await asyncio.sleep(self._poll_seconds)

    async def _poll(self) -> None:
        """The fallback: deliver whatever any followed video has after its cursor."""
        try:
            await self._read(list(self._by_task))
        except Exception as exc:
            self._health(exc)
            return
        self._health(None)
        self._marks.append(self._high)

    async def _catch_up(self, videos: Iterable[str]) -> None:
        """Deliver what woken videos have after their cursors (a failure waits for the poll)."""
        try:
            await self._read(list(videos))
        except Exception as exc:
            self._health(exc)
            return
        self._health(None)

    async def _read(self, videos: list[str]) -> None:
        """Read and deliver the new events of ``videos``: one query per ``READ_CHUNK``.

        A query starts after the smallest cursor among its videos, but not before the
        oldest poll mark: polls have read every followed video up to that mark, so an
        idle video's old cursor does not make each read long. (Starting after the other
        videos' cursors is exact: within one video ids become visible in order.)
        """
        for start in range(0, len(videos), READ_CHUNK):
            chunk = videos[start : start + READ_CHUNK]
            cursors = {v: self._cursor[v] for v in chunk if v in self._cursor}
            if not cursors:
                continue  # all unfollowed meanwhile
            after = max(self._marks[0], min(cursors.values()))
            self._reading.update(cursors)
            try:
                while True:
                    found = await self._store.events_for(list(cursors), after, READ_LIMIT)
                    self._deliver(found, "store")
                    if len(found) < READ_LIMIT:
                        break
                    after = found[-1].id
            finally:
                self._reading.difference_update(cursors)

    def _deliver(self, found: Iterable[TaskEvent], source: str) -> None:
        """Hand events (oldest first) to the subscribers of their videos, each video's once.
        ``source`` says how they came: with their wake-up (``bus``) or read (``store``)."""
        for event in found:
            self._high = max(self._high, event.id)
            cursor = self._cursor.get(event.video_id)
            if cursor is None or event.id <= cursor:
                continue  # unfollowed meanwhile, or delivered by an overlapping read
            self._cursor[event.video_id] = event.id
            followers = list(self._by_task.get(event.video_id, ()))
            sent = sum(1 for sub in followers if sub.offer(event))
            if sent:
                if self._on_delivered is not None:
                    self._on_delivered(source, sent)
                task = ref(event.video_id, event.payload.get("externalVideoId"))
                logger.debug(
                    "[WS] broadcast: %s -> %d client(s)",
                    task,
                    sent,
                    extra=task.extra | {"type": str(event.type)},
                )

    def _health(self, error: Exception | None) -> None:
        """Log a run of failed reads once, when it starts, and once when it ends."""
        if error is None:
            if self._failing:
                self._failing = False
                logger.info("reading task_events again; WebSocket messages flow")
        elif not self._failing:
            self._failing = True
            logger.warning(
                "cannot read task_events (%s: %s); WebSocket messages wait, retrying every %.1f s",
                type(error).__name__,
                error,
                self._poll_seconds,
            )
