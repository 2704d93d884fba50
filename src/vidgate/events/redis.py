"""``EventBus`` over Redis pub/sub: wake-ups across many api and worker processes.

One channel carries small JSON wake-ups, ids only (``{"id", "videoId", "taskVersion",
"origin"}``), never a payload: listeners read the events from ``task_events``. The same
channel carries ``{"work": true, "origin"}``: a task is due now, for the engines. Redis
pub/sub keeps nothing and delivers at most once, so a lost wake-up must only delay a
message until the hub's poll. Hence nothing here makes a caller wait for Redis:

- ``publish`` hands the event to this process's listeners at once and queues the wake-up
  for a background publisher; while Redis is down queued wake-ups are dropped.
- a background reader subscribes and passes other processes' wake-ups on; when Redis
  goes away (or stops answering its pings) it retries with backoff, logging once per
  outage, resubscribes, and awaits every listener's ``on_reconnect`` so it can catch up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from vidgate.domain.events import TaskEvent
from vidgate.events.base import (
    BusUnavailable,
    EventRef,
    Listener,
    Reconnected,
    Wakeup,
    call_each,
    subscribe,
)

logger = logging.getLogger(__name__)

CHANNEL = "vidgate:events"
OUTBOX_SIZE = 10_000  # wake-ups waiting for the publisher; more are dropped
BATCH = 500  # wake-ups sent in one pipeline
FLUSH_SECONDS = 1.0  # how long ``close`` lets queued wake-ups go out


class _Silent(Exception):
    """The subscription's connection is open but Redis stopped answering pings."""


class _Outage:
    """Logs the start and the end of a Redis outage once each, however many retries fail."""

    def __init__(self, where: str) -> None:
        self._where = where
        self._since: float | None = None

    @property
    def down(self) -> bool:
        return self._since is not None

    def begin(self, exc: BaseException) -> None:
        if self._since is not None:
            return
        self._since = time.monotonic()
        logger.warning(
            "Redis at %s unavailable (%s: %s); retrying with backoff, WebSocket messages "
            "come from polling task_events meanwhile",
            self._where,
            type(exc).__name__,
            exc,
        )

    def end(self) -> None:
        if self._since is None:
            return
        logger.info(
            "Redis at %s reachable again after %.1f s", self._where, time.monotonic() - self._since
        )
        self._since = None


def _shown(url: str) -> str:
    """``url`` without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


class RedisBus:
    """The ``EventBus`` for scale-out, selected by ``VIDGATE_REDIS_URL``.

    Background tasks start on first use (``listen`` starts the reader, ``publish`` the
    publisher), so a worker process that only publishes holds no subscription.
    """

    def __init__(
        self,
        url: str,
        *,
        channel: str = CHANNEL,
        min_backoff: float = 0.05,
        max_backoff: float = 1.0,
        keepalive: float = 5.0,
        timeout: float = 2.0,
    ) -> None:
        self._channel = channel
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._keepalive = keepalive
        # redis-py's own retries would sleep inside our calls and hide an outage. Commands
        # get one immediate retry: the pooled connection a Redis restart closed.
        self._commands = Redis.from_url(
            url,
            retry=Retry(NoBackoff(), 1),
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
        )
        # The subscription gets none: every break must reach ``_read`` so that it
        # resubscribes and calls ``on_reconnect``.
        self._subscriber = Redis.from_url(
            url,
            retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
        )
        self._origin = secrets.token_hex(8)  # our own wake-ups come back: skip them
        self._outage = _Outage(_shown(url))
        self._listeners: list[tuple[Listener, Reconnected | None]] = []
        self._work: list[Callable[[], None]] = []
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue(OUTBOX_SIZE)
        self._overflowing = False
        self._subscribed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._publisher: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def subscribed(self) -> bool:
        return self._subscribed.is_set()

    async def wait_subscribed(self) -> None:
        """Until the reader is subscribed (wake-ups published from now on reach us)."""
        await self._subscribed.wait()

    # -- the port ------------------------------------------------------------------------

    async def publish(self, event: TaskEvent) -> None:
        await self._hand_over(event)  # at once, and whether Redis is up or not
        if self._closed:
            return
        self._queue(
            {
                "id": event.id,
                "videoId": event.video_id,
                "taskVersion": event.task_version,
                "origin": self._origin,
            }
        )

    def announce_work(self) -> None:
        call_each(self._work)  # this process's engine at once
        if not self._closed:
            self._queue({"work": True, "origin": self._origin})

    def on_work(self, callback: Callable[[], None]) -> Callable[[], None]:
        stop = subscribe(self._work, callback)
        self._start_reader()
        return stop

    def _queue(self, body: dict[str, Any]) -> None:
        message = json.dumps(body).encode()
        try:
            self._outbox.put_nowait(message)
        except asyncio.QueueFull:
            if not self._overflowing:
                self._overflowing = True
                logger.warning("Redis publisher is %d wake-ups behind; dropping", OUTBOX_SIZE)
            return
        if self._publisher is None:
            self._publisher = asyncio.create_task(self._send(), name="vidgate-redis-publisher")

    def listen(
        self, listener: Listener, *, on_reconnect: Reconnected | None = None
    ) -> Callable[[], None]:
        entry = (listener, on_reconnect)
        self._listeners.append(entry)
        self._start_reader()

        def stop() -> None:
            if entry in self._listeners:
                self._listeners.remove(entry)

        return stop

    def _start_reader(self) -> None:
        if self._reader is None and not self._closed:
            self._reader = asyncio.create_task(self._read(), name="vidgate-redis-reader")

    async def ping(self) -> None:
        try:
            await self._commands.ping()
        except (RedisError, OSError) as exc:
            raise BusUnavailable(f"Redis did not answer: {type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._listeners.clear()
        self._work.clear()
        if self._publisher is not None and not self._outage.down:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._outbox.join(), FLUSH_SECONDS)
        tasks = [task for task in (self._reader, self._publisher) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._subscriber.aclose()
        await self._commands.aclose()

    # -- delivery ------------------------------------------------------------------------

    async def _hand_over(self, wakeup: Wakeup) -> None:
        for listener, _ in list(self._listeners):
            try:
                await listener(wakeup)
            except Exception:  # one broken listener must not starve the others
                logger.exception("event listener failed for event %d", wakeup.id)

    async def _reconnected(self) -> None:
        call_each(self._work)  # work announced while we were away: look now
        for _, hook in list(self._listeners):
            if hook is None:
                continue
            try:
                await hook()
            except Exception:
                logger.exception("on_reconnect hook failed")

    def _parse(self, data: Any) -> EventRef | None:
        """The wake-up in a channel message; None for our own, a work announcement
        (handed to the work callbacks here) or a malformed one."""
        try:
            body = json.loads(data)
            if body.get("origin") == self._origin:
                return None
            if body.get("work") is True:
                call_each(self._work)
                return None
            video_id, event_id, version = body["videoId"], body["id"], body["taskVersion"]
            if not (isinstance(video_id, str) and type(event_id) is int and type(version) is int):
                raise TypeError("wrong field types")
        except (ValueError, TypeError, KeyError, AttributeError):
            logger.warning("ignoring a malformed wake-up on %s: %.200r", self._channel, data)
            return None
        return EventRef(video_id=video_id, id=event_id, task_version=version)

    # -- background tasks ----------------------------------------------------------------

    async def _read(self) -> None:
        """Stay subscribed: subscribe, pump, and on any break back off and start over."""
        delay = self._min_backoff
        while True:
            pubsub = self._subscriber.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                self._subscribed.set()
                self._outage.end()
                delay = self._min_backoff
                # Wake-ups published while we were not subscribed are lost: catch up.
                await self._reconnected()
                await self._pump(pubsub)
            except (RedisError, OSError, _Silent) as exc:
                self._outage.begin(exc)
            except Exception:  # a bug here must not end the subscription for good
                logger.exception("Redis reader failed; subscribing again")
            finally:
                self._subscribed.clear()
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped upstream
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # spread a fleet's retries
            delay = min(delay * 2, self._max_backoff)

    async def _pump(self, pubsub: PubSub) -> None:
        """Pass wake-ups on until the connection breaks or Redis stops answering pings."""
        loop = asyncio.get_running_loop()
        heard = pinged = loop.time()
        tick = min(1.0, self._keepalive / 2)
        while True:
            message = await pubsub.get_message(timeout=tick)
            now = loop.time()
            if message is not None:
                heard = now  # any message, our pongs included, shows the link is alive
                if message["type"] == "message":
                    wakeup = self._parse(message["data"])
                    if wakeup is not None:
                        await self._hand_over(wakeup)
            elif now - heard > 3 * self._keepalive:
                raise _Silent(f"no answer to pings for {now - heard:.0f} s")
            elif now - max(heard, pinged) > self._keepalive:
                await pubsub.ping()
                pinged = now

    async def _send(self) -> None:
        """Publish queued wake-ups in batches; drop them while Redis is unreachable."""
        delay = self._min_backoff
        while True:
            batch = [await self._outbox.get()]
            while len(batch) < BATCH and not self._outbox.empty():
                batch.append(self._outbox.get_nowait())
            failed = False
            try:
                async with self._commands.pipeline(transaction=False) as pipe:
                    for message in batch:
                        pipe.publish(self._channel, message)
                    await pipe.execute()
            except (RedisError, OSError) as exc:
                self._outage.begin(exc)
                failed = True
            except Exception:  # a bug here must not end publishing for good
                logger.exception("Redis publisher failed; dropping %d wake-up(s)", len(batch))
                failed = True
            finally:
                for _ in batch:
                    self._outbox.task_done()
            if not failed:
                self._outage.end()
                self._overflowing = False
                delay = self._min_backoff
                continue
            # Old wake-ups are worth nothing once the listeners' poll has run: drop them
            # rather than replay a backlog when Redis returns.
            while not self._outbox.empty():
                self._outbox.get_nowait()
                self._outbox.task_done()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_backoff)
