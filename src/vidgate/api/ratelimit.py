"""The per-user request rate: at most N authenticated API calls per minute (issue 5).

Counting is done by the ``limits`` library with its *moving window* strategy: a request
is allowed when fewer than N of the user's requests were allowed in the last 60 s. It is
exact (unlike a fixed window, no burst of 2N around a window boundary; unlike the
sliding-window counter, no estimate), and it costs one list of at most N timestamps per
user and limit. Refused requests are not recorded, so hammering does not extend the wait.

Without Redis the counts live in this process. With ``VIDGATE_REDIS_URL`` they live in
Redis, where one Lua script checks and records a request atomically, so the limit holds
across every api process and any number of concurrent requests. When Redis fails, the
limiter lets requests through (fail open): a rate limit is not worth an outage, and
``/readyz`` already reports Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from limits import RateLimitItemPerSecond
from limits.aio import storage, strategies

from vidgate.config import Settings
from vidgate.domain.errors import TooManyRequests

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60
KEY_PREFIX = "vidgate:rate"  # Redis keys: vidgate:rate:requests/USER/N/60/second
NAMESPACE = "requests"
WARN_EVERY_SECONDS = 30.0  # at most one "Redis unavailable" warning this often
# After a failure Redis is left alone this long: a Redis that stops answering would
# otherwise add its timeout to every request.
RETRY_SECONDS = 1.0
REDIS_TIMEOUT = 0.5


class RequestLimiter:
    """Counts each user's requests in a moving window held in ``store``.

    Build one with ``open_limiter`` (or ``memory_limiter`` / ``redis_limiter``). Limits of
    different sizes never share a count: the amount is part of the key.
    """

    def __init__(
        self,
        store: storage.Storage,
        *,
        window_seconds: int = WINDOW_SECONDS,
        storage_errors: tuple[type[Exception], ...] = (),
        on_close: Callable[[], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._strategy = strategies.MovingWindowRateLimiter(store)
        self._window = window_seconds
        self._storage_errors = storage_errors  # these fail open; anything else is a bug
        self._on_close = on_close
        self._clock = clock
        self._skip_until = -math.inf
        self._warned_at = -math.inf
        self._failing = False

    async def check(self, user_id: str, per_minute: int | None) -> None:
        """Count one request of ``user_id``; raise ``TooManyRequests`` (RATE_LIMITED) when
        it goes over ``per_minute``. None = no limit (count nothing)."""
        if per_minute is None or self._clock() < self._skip_until:
            return
        item = RateLimitItemPerSecond(per_minute, self._window, namespace=NAMESPACE)
        try:
            if await self._strategy.hit(item, user_id):
                self._reachable()
                return
            stats = await self._strategy.get_window_stats(item, user_id)
        except self._storage_errors as exc:
            self._unavailable(exc)
            return
        self._reachable()
        # The oldest counted request leaves the window at reset_time: one slot frees then.
        wait = min(self._window, max(1, math.ceil(stats.reset_time - time.time())))
        window = _duration(self._window)
        raise TooManyRequests(
            f"Too many requests: the limit is {per_minute} per "
            f"{window.removeprefix('1 ')}; retry in {wait} s.",
            code="RATE_LIMITED",
            retry_after=wait,
            details={"limit": per_minute, "window": window},
        )

    async def close(self) -> None:
        if self._on_close is not None:
            on_close, self._on_close = self._on_close, None
            await on_close()

    def _unavailable(self, exc: Exception) -> None:
        now = self._clock()
        self._skip_until = now + RETRY_SECONDS
        self._failing = True
        if now - self._warned_at < WARN_EVERY_SECONDS:
            return
        self._warned_at = now
        # The exception names host and port at most; the URL (and its password) stays out.
        logger.warning(
            "request rate limit not enforced: its store is unavailable (%s: %s); "
            "letting requests through",
            type(exc).__name__,
            exc,
            extra={"action": "rateLimitFailOpen"},
        )

    def _reachable(self) -> None:
        if self._failing:
            self._failing = False
            logger.info("request rate limit enforced again: its store is reachable")


def _duration(seconds: int) -> str:
    """``60`` -> "1 minute", ``120`` -> "2 minutes", ``1`` -> "1 second"."""
    count, unit = (seconds // 60, "minute") if seconds % 60 == 0 else (seconds, "second")
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


def memory_limiter(*, window_seconds: int = WINDOW_SECONDS) -> RequestLimiter:
    """Counts in this process only (one api process, or tests)."""
    memory = storage.MemoryStorage()

    async def close() -> None:
        # The storage expires old entries in a background task; do not leave it pending.
        timer = memory.timer
        if timer is not None and not timer.done():
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer

    return RequestLimiter(memory, window_seconds=window_seconds, on_close=close)


def redis_limiter(
    url: str,
    *,
    key_prefix: str = KEY_PREFIX,
    window_seconds: int = WINDOW_SECONDS,
    timeout: float = REDIS_TIMEOUT,
    clock: Callable[[], float] = time.monotonic,
) -> RequestLimiter:
    """Counts in Redis, shared by every process using ``url``. Nothing connects here."""
    from redis.asyncio import ConnectionPool  # redis-py only when it is used
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import RedisError

    # Our own pool: any URL redis-py takes (redis://, rediss://, unix://), our timeouts,
    # and one immediate retry (the pooled connection a Redis restart closed) instead of
    # redis-py's default backoff, which would hold requests during an outage.
    pool = ConnectionPool.from_url(
        url,
        retry=Retry(NoBackoff(), 1),
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
    )
    # limits passes these options on to redis.asyncio.Redis; its annotation
    # (float | str | bool) is narrower than what it accepts.
    options: dict[str, Any] = {"connection_pool": pool}
    redis_store = storage.RedisStorage(
        "async+redis://",  # the pool decides where to connect
        implementation="redispy",
        key_prefix=key_prefix,
        **options,
    )
    return RequestLimiter(
        redis_store,
        window_seconds=window_seconds,
        storage_errors=(RedisError, OSError),
        on_close=pool.aclose,
        clock=clock,
    )


def open_limiter(settings: Settings) -> RequestLimiter:
    """In-process when ``settings.redis_url`` is None; shared across processes through
    Redis otherwise."""
    if settings.redis_url:
        return redis_limiter(settings.redis_url)
    return memory_limiter()
