"""The ``EventBus`` port. It only wakes listeners; ``task_events`` is the source of truth."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from vidgate.domain.events import TaskEvent

Listener = Callable[[TaskEvent], Awaitable[None]]


class EventBus(Protocol):
    async def publish(self, event: TaskEvent) -> None: ...

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` for every published event; returns a function that stops it."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...
