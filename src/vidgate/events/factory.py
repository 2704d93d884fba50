"""Choosing the event bus from settings."""

from __future__ import annotations

from typing import Protocol

from vidgate.events.base import EventBus
from vidgate.events.memory import InProcessBus


class BusSettings(Protocol):
    """What ``open_bus`` reads from ``vidgate.config.Settings``."""

    @property
    def redis_url(self) -> str | None: ...


def open_bus(settings: BusSettings) -> EventBus:
    """Redis pub/sub when ``VIDGATE_REDIS_URL`` is set (many processes), else in-process.

    Nothing connects here: the Redis bus connects in the background and retries, so a
    process starts while Redis is down and ``/readyz`` says so.
    """
    if settings.redis_url:
        from vidgate.events.redis import RedisBus  # redis-py only when it is used

        return RedisBus(settings.redis_url)
    return InProcessBus()
