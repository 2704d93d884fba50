"""Wake-ups for requests that wait on tasks: SSE streams and held ``Prefer: wait`` creates.

One ``Notifier`` per api process listens on the event bus once (not once per request)
and wakes the waiters of the video a wake-up names, and the all-tasks waiters of the
video's owner. It carries no data: a woken waiter reads
``task_events`` or the task, the source of truth. Wake-ups may be lost (the bus lost its
broker, or a wake-up came from nowhere at all), so waiters also wake on their own every
``poll_seconds``: a lost wake-up delays a message by at most that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator

from vidgate.events.base import EventBus, Wakeup
from vidgate.store.base import TaskStore

logger = logging.getLogger(__name__)

POLL_SECONDS = 1.0
OWNERS_KEPT = 10_000  # videoId -> owner entries remembered (least recently woken go first)


class Waiter:
    """One waiting request: set by wake-ups, consumed by ``wait``.

    A wake-up that arrives while the request is reading is kept, so the next ``wait``
    returns at once and the request reads again: nothing committed in between is missed.
    """

    def __init__(self, poll_seconds: float) -> None:
        self._event = asyncio.Event()
        self.poll_seconds = poll_seconds

    def set(self) -> None:
        self._event.set()

    async def wait(self, at_most: float | None = None) -> bool:
        """Until woken, or ``at_most`` seconds (never more than the poll interval);
        whether it was woken."""
        limit = self.poll_seconds if at_most is None else min(at_most, self.poll_seconds)
        woken = True
        if not self._event.is_set():
            try:
                await asyncio.wait_for(self._event.wait(), max(0.0, limit))
            except TimeoutError:
                woken = False
        self._event.clear()
        return woken


OwnerOf = Callable[[str], Awaitable[str | None]]  # videoId -> its user (None: no such task)


def owners_in(store: TaskStore) -> OwnerOf:
    async def owner_of(video_id: str) -> str | None:
        task = await store.get(video_id)
        return None if task is None else task.user_id

    return owner_of


class Notifier:
    """Wakes the waiters of a task, and the all-tasks waiters of the task's owner.

    A wake-up names a video, not its user: the owner is looked up once per video (a task
    never changes hands) and remembered, up to ``OWNERS_KEPT`` of them. Until it is
    known, every all-tasks waiter is woken, which costs a read, never a message.
    """

    def __init__(
        self, *, poll_seconds: float = POLL_SECONDS, owner_of: OwnerOf | None = None
    ) -> None:
        self.poll_seconds = poll_seconds
        self._owner_of = owner_of
        self._by_video: dict[str, set[Waiter]] = {}
        self._by_user: dict[str, set[Waiter]] = {}  # all-tasks streams, by their user
        self._owners: OrderedDict[str, str] = OrderedDict()
        self._looking: dict[str, asyncio.Task[None]] = {}
        self._stop_listening: Callable[[], None] | None = None

    def attach(self, bus: EventBus) -> None:
        self._stop_listening = bus.listen(self._wake, on_reconnect=self._wake_all)

    @contextlib.contextmanager
    def watch(self, video_id: str | None = None, *, user_id: str | None = None) -> Iterator[Waiter]:
        """A waiter, while inside, for ``video_id``'s wake-ups, or else for those of
        every task of ``user_id``."""
        if (video_id is None) == (user_id is None):
            raise ValueError("watch one video or one user's tasks")
        waiter = Waiter(self.poll_seconds)
        groups, key = (
            (self._by_video, video_id) if video_id is not None else (self._by_user, user_id)
        )
        assert key is not None
        group = groups.setdefault(key, set())
        group.add(waiter)
        try:
            yield waiter
        finally:
            group.discard(waiter)
            if not group:
                groups.pop(key, None)

    async def _wake(self, wakeup: Wakeup) -> None:
        """The bus listener: sets waiters, never waits."""
        video_id = wakeup.video_id
        for waiter in self._by_video.get(video_id, ()):
            waiter.set()
        if not self._by_user:
            return
        owner = self._owners.get(video_id)
        if owner is not None:
            self._owners.move_to_end(video_id)
            for waiter in self._by_user.get(owner, ()):
                waiter.set()
            return
        for group in self._by_user.values():
            for waiter in group:
                waiter.set()
        if self._owner_of is not None and video_id not in self._looking:
            lookup = asyncio.create_task(self._learn(video_id))
            self._looking[video_id] = lookup
            lookup.add_done_callback(lambda _: self._looking.pop(video_id, None))

    async def _learn(self, video_id: str) -> None:
        assert self._owner_of is not None
        try:
            owner = await self._owner_of(video_id)
        except Exception as exc:  # the next wake-up of this video wakes everyone again
            logger.debug("owner of %s unknown for now: %s", video_id, exc)
            return
        if owner is not None:
            self.remember(video_id, owner)

    def remember(self, video_id: str, user_id: str) -> None:
        self._owners[video_id] = user_id
        self._owners.move_to_end(video_id)
        while len(self._owners) > OWNERS_KEPT:
            self._owners.popitem(last=False)

    async def _wake_all(self) -> None:
        """The bus reconnected and lost wake-ups meanwhile: every waiter reads again."""
        for group in (*self._by_video.values(), *self._by_user.values()):
            for waiter in group:
                waiter.set()

    def close(self) -> None:
        if self._stop_listening is not None:
            self._stop_listening()
            self._stop_listening = None
        for lookup in self._looking.values():
            lookup.cancel()
