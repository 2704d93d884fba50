"""The per-user request rate limiter, in memory and over the real Redis at 127.0.0.1:6379.

The Redis tests skip when that Redis is down, except in CI (``CI=true``), where they fail.
Each uses its own key prefix and deletes its keys. Windows are shortened to 1 s where a
test needs the window to pass; fail-open runs against a closed port with a fake clock.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
import redis
from redis.asyncio import Redis

from tests.databases import in_ci
from tests.support import free_port
from vidgate.api import ratelimit
from vidgate.config import Settings
from vidgate.domain.errors import TooManyRequests

REDIS_URL = os.environ.get("VIDGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

MakeLimiter = Callable[..., ratelimit.RequestLimiter]


@pytest.fixture
async def limiters() -> AsyncIterator[list[ratelimit.RequestLimiter]]:
    """Limiters a test opens; all closed after it."""
    opened: list[ratelimit.RequestLimiter] = []
    yield opened
    for limiter in opened:
        await limiter.close()


@pytest.fixture
def memory(limiters: list[ratelimit.RequestLimiter]) -> MakeLimiter:
    def make(window_seconds: int = ratelimit.WINDOW_SECONDS) -> ratelimit.RequestLimiter:
        limiter = ratelimit.memory_limiter(window_seconds=window_seconds)
        limiters.append(limiter)
        return limiter

    return make


async def allowed(limiter: ratelimit.RequestLimiter, user: str, limit: int | None) -> bool:
    try:
        await limiter.check(user, limit)
    except TooManyRequests as exc:
        assert exc.code == "RATE_LIMITED"
        return False
    return True


async def refusal(limiter: ratelimit.RequestLimiter, user: str, limit: int) -> TooManyRequests:
    with pytest.raises(TooManyRequests) as caught:
        await limiter.check(user, limit)
    return caught.value


# -- in memory -------------------------------------------------------------------------------


async def test_the_limit_is_reached_exactly(memory: MakeLimiter) -> None:
    limiter = memory()

    for _ in range(5):
        await limiter.check("alice", 5)
    error = await refusal(limiter, "alice", 5)

    assert error.code == "RATE_LIMITED"
    assert error.http_status == 429
    assert 1 <= error.retry_after <= 60
    assert error.headers == {"Retry-After": str(error.retry_after)}
    assert error.details == {
        "limit": 5,
        "window": "1 minute",
        "retryAfterSeconds": error.retry_after,
    }
    assert error.message == (
        f"Too many requests: the limit is 5 per minute; retry in {error.retry_after} s."
    )
    # Refusals are not counted, but do not free a slot either.
    assert not await allowed(limiter, "alice", 5)


async def test_users_are_counted_apart(memory: MakeLimiter) -> None:
    limiter = memory()
    for _ in range(3):
        await limiter.check("alice", 3)
    assert not await allowed(limiter, "alice", 3)

    assert [await allowed(limiter, "bob", 3) for _ in range(4)] == [True, True, True, False]
    assert not await allowed(limiter, "alice", 3)


async def test_none_is_unlimited_and_counts_nothing(memory: MakeLimiter) -> None:
    limiter = memory()
    for _ in range(500):
        await limiter.check("alice", None)

    assert [await allowed(limiter, "alice", 1) for _ in range(2)] == [True, False]


async def test_limits_of_different_sizes_count_apart(memory: MakeLimiter) -> None:
    limiter = memory()
    for _ in range(2):
        await limiter.check("alice", 2)
    assert not await allowed(limiter, "alice", 2)

    assert await allowed(limiter, "alice", 3)  # a plan change starts a new count


async def test_the_limit_recovers_after_the_window(memory: MakeLimiter) -> None:
    limiter = memory(window_seconds=1)
    await limiter.check("alice", 2)
    await limiter.check("alice", 2)
    error = await refusal(limiter, "alice", 2)
    assert error.retry_after == 1
    assert error.details["window"] == "1 second"
    assert "the limit is 2 per second;" in error.message

    await asyncio.sleep(1.05)

    assert [await allowed(limiter, "alice", 2) for _ in range(3)] == [True, True, False]


async def test_close_twice_is_harmless(memory: MakeLimiter) -> None:
    limiter = memory()
    await limiter.check("alice", 1)
    await limiter.close()
    await limiter.close()


async def test_open_limiter_without_redis_counts_in_this_limiter(
    limiters: list[ratelimit.RequestLimiter],
) -> None:
    settings = Settings(redis_url=None)
    one, two = ratelimit.open_limiter(settings), ratelimit.open_limiter(settings)
    limiters += [one, two]

    await one.check("alice", 1)
    assert not await allowed(one, "alice", 1)
    assert await allowed(two, "alice", 1)  # nothing shared: another process counts anew


# -- Redis -----------------------------------------------------------------------------------


@functools.cache
def _redis_down() -> str | None:
    """None when the test Redis answers; otherwise why not (asked once per process)."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        client.close()
    return None


@pytest.fixture
def redis_url() -> str:
    if (why := _redis_down()) is not None:
        message = f"no Redis at {REDIS_URL} ({why}); start one or set VIDGATE_TEST_REDIS_URL"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return REDIS_URL


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    name = f"vidgate-test:rate:{uuid.uuid4().hex}"
    yield name
    client = Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{name}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
def shared(redis_url: str, prefix: str, limiters: list[ratelimit.RequestLimiter]) -> MakeLimiter:
    """A new Redis limiter on the test's prefix: each one stands for another process."""

    def make(window_seconds: int = ratelimit.WINDOW_SECONDS) -> ratelimit.RequestLimiter:
        limiter = ratelimit.redis_limiter(
            redis_url, key_prefix=prefix, window_seconds=window_seconds
        )
        limiters.append(limiter)
        return limiter

    return make


async def test_processes_share_the_count_through_redis(shared: MakeLimiter) -> None:
    one, two = shared(), shared()

    assert [await allowed(limiter, "alice", 4) for limiter in (one, two, one, two)] == [True] * 4
    error = await refusal(one, "alice", 4)
    assert 1 <= error.retry_after <= 60
    assert error.details["limit"] == 4
    assert not await allowed(two, "alice", 4)
    assert await allowed(two, "bob", 4)


async def test_concurrent_requests_never_pass_the_limit(shared: MakeLimiter) -> None:
    one, two = shared(), shared()

    results = await asyncio.gather(
        *(allowed(one if i % 2 else two, "alice", 20) for i in range(50))
    )

    assert results.count(True) == 20
    assert results.count(False) == 30


async def test_redis_count_recovers_after_the_window(shared: MakeLimiter) -> None:
    one, two = shared(window_seconds=1), shared(window_seconds=1)
    await one.check("alice", 2)
    await two.check("alice", 2)
    assert (await refusal(one, "alice", 2)).retry_after == 1

    await asyncio.sleep(1.05)

    assert [await allowed(two, "alice", 2) for _ in range(3)] == [True, True, False]


async def test_open_limiter_with_redis_shares_the_count(
    redis_url: str, limiters: list[ratelimit.RequestLimiter]
) -> None:
    user = f"test-{uuid.uuid4().hex}"  # the default prefix is shared: a user of our own
    settings = Settings(redis_url=redis_url)
    one, two = ratelimit.open_limiter(settings), ratelimit.open_limiter(settings)
    limiters += [one, two]
    try:
        await one.check(user, 1)
        assert not await allowed(two, user, 1)
    finally:
        client = Redis.from_url(redis_url)
        try:
            match = f"{ratelimit.KEY_PREFIX}:*/{user}/*"
            keys = [key async for key in client.scan_iter(match=match)]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_an_unreachable_redis_lets_requests_through_and_warns_rarely(
    limiters: list[ratelimit.RequestLimiter],
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    # free_port binds a port and closes it: connecting is refused at once.
    url = f"redis://vidgate:s3cret-pw@127.0.0.1:{free_port()}/0"
    limiter = ratelimit.redis_limiter(url, clock=clock)
    limiters.append(limiter)
    caplog.set_level(logging.WARNING, logger="vidgate.api.ratelimit")

    for _ in range(10):  # over the limit, and Redis is asked again after each second
        await limiter.check("alice", 2)
        clock.now += 2
    warnings = [r for r in caplog.records if r.name == "vidgate.api.ratelimit"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "letting requests through" in warnings[0].getMessage()
    assert "ConnectionError" in warnings[0].getMessage()

    clock.now += ratelimit.WARN_EVERY_SECONDS
    await limiter.check("alice", 2)
    assert len([r for r in caplog.records if r.name == "vidgate.api.ratelimit"]) == 2

    assert "s3cret-pw" not in caplog.text
    assert url not in caplog.text
