"""In-process event bus: the embedded default, one process serving api and engine."""

from __future__ import annotations

import logging
from collections.abc import Callable

from vidgate.domain.events import TaskEvent
from vidgate.events.base import Listener, Reconnected, call_each, subscribe

logger = logging.getLogger(__name__)


class InProcessBus:
    """Hands each published ``TaskEvent`` to the listeners, inline.

    Nothing can be lost between publisher and listener here, so ``on_reconnect`` is
    accepted for the port's sake and never called.
    """

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._work: list[Callable[[], None]] = []

    async def publish(self, event: TaskEvent) -> None:
        for listener in list(self._listeners):
            try:
                await listener(event)
            except Exception:  # one broken listener must not starve the others
                logger.exception("event listener failed for event %d", event.id)

    def listen(
        self, listener: Listener, *, on_reconnect: Reconnected | None = None
    ) -> Callable[[], None]:
        self._listeners.append(listener)

        def stop() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return stop

    def announce_work(self) -> None:
        call_each(self._work)

    def on_work(self, callback: Callable[[], None]) -> Callable[[], None]:
        return subscribe(self._work, callback)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._listeners.clear()
        self._work.clear()
