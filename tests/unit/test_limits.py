"""Per-provider protection: the circuit breaker, the request-rate limiter, the gate.

Time is a fake clock the test moves by hand; the rate limiter's sleeps move that clock
instead of waiting, so the spacing of requests is checked exactly and instantly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from vidgate.engine.limits import BreakerState, CircuitBreaker, ProviderGate, RateLimiter

_real_sleep = asyncio.sleep


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def state(breaker: CircuitBreaker) -> BreakerState:
    return breaker.state  # read afresh: the clock moves it


def opened(clock: Clock, *, failures: int = 3, cooldown: float = 10.0) -> CircuitBreaker:
    """A breaker that has just opened."""
    breaker = CircuitBreaker("up", failures=failures, cooldown=cooldown, clock=clock)
    for _ in range(failures):
        breaker.failure()
    assert state(breaker) is BreakerState.OPEN
    return breaker


# -- the circuit breaker ---------------------------------------------------------------------


def test_the_breaker_opens_after_n_failures_in_a_row() -> None:
    clock = Clock()
    breaker = CircuitBreaker("up", failures=3, cooldown=10.0, clock=clock)

    breaker.failure()
    breaker.failure()
    assert state(breaker) is BreakerState.CLOSED
    assert breaker.allows() and breaker.available()

    breaker.failure()
    assert state(breaker) is BreakerState.OPEN
    assert not breaker.allows()
    assert not breaker.available()


def test_a_success_resets_the_count_of_failures() -> None:
    clock = Clock()
    breaker = CircuitBreaker("up", failures=3, cooldown=10.0, clock=clock)

    for _ in range(5):  # never three in a row
        breaker.failure()
        breaker.failure()
        breaker.success()

    assert state(breaker) is BreakerState.CLOSED
    assert breaker.allows()


def test_the_breaker_stays_open_for_the_cooldown() -> None:
    clock = Clock()
    breaker = opened(clock, cooldown=10.0)

    clock.advance(9.9)
    assert state(breaker) is BreakerState.OPEN
    assert not breaker.allows() and not breaker.available()
    clock.advance(0.1)
    assert state(breaker) is BreakerState.HALF_OPEN
    assert breaker.available()


def test_a_half_open_breaker_lets_exactly_one_probe_through() -> None:
    clock = Clock()
    breaker = opened(clock, cooldown=10.0)
    clock.advance(10.0)

    assert breaker.available()  # routing may consider it ...
    assert breaker.allows()  # ... and the first request goes out as the probe
    assert [breaker.allows() for _ in range(5)] == [False] * 5
    assert not breaker.available()  # nobody else is routed there while it probes
    clock.advance(5.0)
    assert not breaker.allows()  # still waiting for the probe's outcome


def test_a_successful_probe_closes_the_breaker() -> None:
    clock = Clock()
    breaker = opened(clock, failures=3, cooldown=10.0)
    clock.advance(10.0)
    assert breaker.allows()

    breaker.success()

    assert state(breaker) is BreakerState.CLOSED
    assert all(breaker.allows() for _ in range(10))
    # Back to normal: it takes the full count of failures to open again, for the base time.
    breaker.failure()
    breaker.failure()
    assert state(breaker) is BreakerState.CLOSED
    breaker.failure()
    assert state(breaker) is BreakerState.OPEN
    clock.advance(10.0)
    assert state(breaker) is BreakerState.HALF_OPEN


def test_a_failed_probe_doubles_the_cooldown() -> None:
    clock = Clock()
    breaker = opened(clock, cooldown=10.0)
    clock.advance(10.0)
    assert breaker.allows()

    breaker.failure()  # the probe failed

    assert state(breaker) is BreakerState.OPEN
    clock.advance(19.9)
    assert not breaker.allows()
    clock.advance(0.1)
    assert breaker.allows()  # the next probe, after twice the cool-down
    breaker.failure()
    clock.advance(39.9)
    assert not breaker.allows()
    clock.advance(0.1)
    assert breaker.allows()


def test_the_cooldown_stops_doubling_at_its_cap() -> None:
    clock = Clock()
    breaker = CircuitBreaker("up", failures=1, cooldown=10.0, max_cooldown=25.0, clock=clock)
    breaker.failure()
    for _ in range(4):  # 10 -> 20 -> 25 -> 25 ...
        clock.advance(25.0)
        assert breaker.allows()
        breaker.failure()

    clock.advance(24.9)
    assert not breaker.allows()
    clock.advance(0.1)
    assert breaker.allows()


def test_a_success_after_failed_probes_restores_the_base_cooldown() -> None:
    clock = Clock()
    breaker = opened(clock, failures=1, cooldown=10.0)
    clock.advance(10.0)
    assert breaker.allows()
    breaker.failure()  # cool-down now 20
    clock.advance(20.0)
    assert breaker.allows()
    breaker.success()

    breaker.failure()  # opens again, for the base cool-down
    clock.advance(10.0)
    assert breaker.allows()


def test_an_abandoned_probe_expires() -> None:
    # The probe's step was cancelled (a shutdown): no outcome ever comes back. The breaker
    # must not stay shut for good.
    clock = Clock()
    breaker = opened(clock, cooldown=10.0)
    clock.advance(10.0)
    assert breaker.allows()

    clock.advance(29.9)  # a probe is given max(cool-down, 30 s) to answer
    assert not breaker.allows()
    assert not breaker.available()
    clock.advance(0.1)
    assert breaker.available()
    assert breaker.allows()  # a new probe
    assert not breaker.allows()  # and again only one


def test_available_does_not_take_the_probe() -> None:
    clock = Clock()
    breaker = opened(clock, cooldown=10.0)
    clock.advance(10.0)

    assert all(breaker.available() for _ in range(5))
    assert breaker.allows()


# -- the rate limiter ------------------------------------------------------------------------


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """A fake clock that the limiter's sleeps advance instead of waiting."""
    fake = Clock()

    async def sleep(seconds: float) -> None:
        assert seconds > 0, "the limiter slept for nothing"
        # A real sleep takes at least a little time; float dust in the bucket can ask for
        # a sleep too short to move a clock of this size, which would never end.
        fake.advance(max(seconds, 1e-6))
        await _real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", sleep)  # as limits sees it
    return fake


async def times_of(limiter: RateLimiter, clock: Clock, count: int) -> list[float]:
    """When each of ``count`` requests in a row was let through, from the start."""
    start = clock.now
    seen = []
    for _ in range(count):
        await limiter.acquire()
        seen.append(round(clock.now - start, 4))
    return seen


async def test_requests_are_spaced_at_the_configured_rate(clock: Clock) -> None:
    limiter = RateLimiter(4.0, burst=1, clock=clock)

    assert await times_of(limiter, clock, 5) == [0.0, 0.25, 0.5, 0.75, 1.0]


async def test_a_burst_goes_at_once_then_the_rate_holds(clock: Clock) -> None:
    limiter = RateLimiter(5.0, clock=clock)  # burst defaults to one second's worth

    seen = await times_of(limiter, clock, 8)

    assert seen == [0.0] * 5 + [0.2, 0.4, 0.6]


async def test_idle_time_refills_no_more_than_the_burst(clock: Clock) -> None:
    limiter = RateLimiter(2.0, burst=2, clock=clock)
    await times_of(limiter, clock, 2)

    clock.advance(3600.0)  # an hour of silence does not bank 7200 requests

    assert await times_of(limiter, clock, 4) == [0.0, 0.0, 0.5, 1.0]


async def test_a_slow_rate_below_one_per_second(clock: Clock) -> None:
    limiter = RateLimiter(0.5, clock=clock)

    assert await times_of(limiter, clock, 3) == [0.0, 2.0, 4.0]


async def test_concurrent_callers_share_the_rate(clock: Clock) -> None:
    limiter = RateLimiter(10.0, burst=1, clock=clock)
    start = clock.now
    seen: list[float] = []

    async def caller() -> None:
        await limiter.acquire()
        seen.append(round(clock.now - start, 4))

    await asyncio.gather(*(caller() for _ in range(6)))

    assert sorted(seen) == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]


# -- the gate --------------------------------------------------------------------------------


def gate(*, concurrency: int, rate: float | None = None) -> ProviderGate:
    return ProviderGate(
        "up", concurrency=concurrency, rate=rate, breaker=CircuitBreaker("up", failures=5)
    )


async def test_the_gate_bounds_concurrent_requests() -> None:
    provider = gate(concurrency=3)
    inside = 0
    most = 0
    release = asyncio.Event()
    entered: list[int] = []

    async def request(n: int) -> None:
        nonlocal inside, most
        async with provider.request():
            inside += 1
            most = max(most, inside)
            entered.append(n)
            await release.wait()
            inside -= 1

    calls = [asyncio.create_task(request(n)) for n in range(10)]
    await until_settled(lambda: len(entered) >= 3)
    await asyncio.sleep(0.05)

    assert len(entered) == 3  # the other seven wait for a slot
    release.set()
    await asyncio.gather(*calls)
    assert most == 3
    assert sorted(entered) == list(range(10))  # every one got through in the end


async def test_a_slot_frees_when_a_request_fails() -> None:
    provider = gate(concurrency=1)

    with pytest.raises(RuntimeError):
        async with provider.request():
            raise RuntimeError("upstream blew up")

    async with asyncio.timeout(1.0), provider.request():
        pass  # the slot was given back


async def test_the_gate_applies_its_rate() -> None:
    # The gate's limiter runs on the real clock: a lower bound only, so never flaky.
    provider = gate(concurrency=8, rate=20.0)  # bursts of 20, then one per 50 ms
    started = time.monotonic()
    for _ in range(25):
        async with provider.request():
            pass

    assert time.monotonic() - started >= 5 * 0.05 * 0.9


async def test_a_gate_without_a_rate_does_not_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", sleep)  # as limits sees it
    provider = gate(concurrency=4, rate=None)
    for _ in range(50):
        async with provider.request():
            pass

    assert slept == []


async def until_settled(check: Callable[[], bool]) -> None:
    for _ in range(200):
        if check():
            return
        await asyncio.sleep(0.005)
    pytest.fail("condition not reached")
