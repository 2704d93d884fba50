"""The ``EventBus`` port. It only wakes listeners; ``task_events`` is the source of truth.

A listener is handed a ``Wakeup``: which video has a new ``task_events`` row, with the row's
id and task version. An event published in this process arrives as the ``TaskEvent``
itself (it has those fields, so it is a ``Wakeup``), which a listener may use as is; one
from another process arrives as an ``EventRef``, ids only, and the listener reads the rows
from ``task_events``. Wake-ups may come late, twice or never: listeners catch up from
``task_events`` (the hub also polls it), so that changes when a message is sent, not which.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from vidgate.domain.events import TaskEvent

logger = logging.getLogger(__name__)


class BusUnavailable(Exception):
    """The bus's broker (Redis) cannot be reached; raised by ``ping`` only."""


class Wakeup(Protocol):
    """A new row in ``task_events``: the ids of a ``TaskEvent``, maybe the event itself."""

    @property
    def video_id(self) -> str: ...

    @property
    def id(self) -> int: ...

    @property
    def task_version(self) -> int: ...


@dataclass(frozen=True, kw_only=True)
class EventRef:
    """A wake-up that crossed the network: the ids of a ``task_events`` row, no payload."""

    video_id: str
    id: int
    task_version: int


Listener = Callable[[Wakeup], Awaitable[None]]
Reconnected = Callable[[], Awaitable[None]]


class EventBus(Protocol):
    async def publish(self, event: TaskEvent) -> None:
        """Wake every listener, here and in other processes. Never raises for the broker:
        a committed event must not fail the request or engine step that wrote it."""
        ...

    def listen(
        self, listener: Listener, *, on_reconnect: Reconnected | None = None
    ) -> Callable[[], None]:
        """Call ``listener`` for every wake-up; returns a function that stops it.

        ``on_reconnect`` is awaited each time the bus has (re)subscribed after losing its
        broker: wake-ups published meanwhile are gone, so the listener should catch up.
        """
        ...

    def announce_work(self) -> None:
        """Tell every engine, here and in other processes, that a task is due now (it was
        created or retried), so one claims it at once instead of at its next idle look.
        Best effort and never blocking: engines also look at the store on their own."""
        ...

    def on_work(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` (quick, synchronous) on every announced piece of work, and
        after a reconnection to the broker; returns a function that stops it."""
        ...

    async def ping(self) -> None:
        """Return if the broker answers; raise ``BusUnavailable`` otherwise."""
        ...

    async def close(self) -> None: ...


def subscribe(
    callbacks: list[Callable[[], None]], callback: Callable[[], None]
) -> Callable[[], None]:
    """Add ``callback`` to ``callbacks``; the function that takes it out again."""
    callbacks.append(callback)

    def stop() -> None:
        if callback in callbacks:
            callbacks.remove(callback)

    return stop


def call_each(callbacks: list[Callable[[], None]]) -> None:
    """Call every callback; one that fails is logged and does not stop the others."""
    for callback in list(callbacks):
        try:
            callback()
        except Exception:
            logger.exception("work wake-up callback failed")
