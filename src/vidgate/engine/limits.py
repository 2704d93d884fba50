"""Per-provider protection: concurrency, request rate, and a circuit breaker.

All three are per process: with several workers, each keeps its own share. The
breaker stops sending to a provider that keeps failing and lets one probe through
after a cool-down; the cool-down doubles while probes keep failing (capped). It opens
on ``failures`` failures in a row, but only when failures are also the majority of the
last ``window`` outcomes: with many requests in flight, a burst of concurrent timeouts
from a mostly healthy provider is not an outage.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from enum import StrEnum

logger = logging.getLogger(__name__)


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        failures: int = 5,
        cooldown: float = 10.0,
        max_cooldown: float = 300.0,
        window: int = 20,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        self.name = name
        # Told when the breaker opens, closes, or lets a half-open probe through (metrics);
        # the quiet passing of a cool-down shows when the probe goes.
        self._on_change = on_change
        self._recent: deque[bool] = deque(maxlen=max(window, failures))  # True: a failure
        self._threshold = failures
        self._base_cooldown = cooldown
        self._max_cooldown = max_cooldown
        self._clock = clock
        self._failures = 0
        self._cooldown = cooldown
        self._opened_at: float | None = None
        self._probing = False
        self._probe_started = 0.0

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self._cooldown:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def allows(self) -> bool:
        """Whether a request may go out now (a half-open breaker lets one probe through)."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probe_pending():
            self._probing = True
            self._probe_started = self._clock()
            self._changed(BreakerState.HALF_OPEN)
            return True
        return False

    def _probe_pending(self) -> bool:
        # A probe whose outcome never came back (its step was cancelled) expires.
        return self._probing and self._clock() - self._probe_started < max(self._cooldown, 30.0)

    def available(self) -> bool:
        """Like ``allows`` but without taking the probe: for routing decisions."""
        state = self.state
        return state is BreakerState.CLOSED or (
            state is BreakerState.HALF_OPEN and not self._probe_pending()
        )

    def success(self) -> None:
        was_open = self._opened_at is not None
        if was_open:
            logger.info("provider %s recovered; circuit closed", self.name)
        self._recent.append(False)
        self._failures = 0
        self._opened_at = None
        self._probing = False
        self._cooldown = self._base_cooldown
        if was_open:
            self._changed(BreakerState.CLOSED)

    def failure(self) -> None:
        self._recent.append(True)
        self._failures += 1
        if self._probing:
            self._probing = False
            self._cooldown = min(self._max_cooldown, self._cooldown * 2)
            self._opened_at = self._clock()
            logger.warning(
                "provider %s still failing; circuit open for %.0f s", self.name, self._cooldown
            )
            self._changed(BreakerState.OPEN)
        elif (
            self._opened_at is None
            and self._failures >= self._threshold
            and sum(self._recent) * 2 > len(self._recent)
        ):
            self._opened_at = self._clock()
            logger.warning(
                "provider %s failed %d times in a row; circuit open for %.0f s",
                self.name,
                self._failures,
                self._cooldown,
            )
            self._changed(BreakerState.OPEN)

    def _changed(self, state: BreakerState) -> None:
        if self._on_change is not None:
            self._on_change(state)


class RateLimiter:
    """A token bucket: ``rate`` requests per second, bursts up to ``burst``."""

    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = rate
        self._capacity = burst if burst is not None else max(1.0, rate)
        self._tokens = self._capacity
        self._clock = clock
        self._updated = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self._rate)
        self._updated = now

    async def acquire(self) -> None:
        async with self._lock:  # first come, first served
            self._refill()
            while self._tokens < 1:
                await asyncio.sleep((1 - self._tokens) / self._rate)
                self._refill()
            self._tokens -= 1


class ProviderGate:
    """Everything that must hold before one request goes to a provider."""

    def __init__(
        self,
        name: str,
        *,
        concurrency: int,
        rate: float | None,
        breaker: CircuitBreaker,
    ) -> None:
        self.name = name
        self.breaker = breaker
        self._slots = asyncio.Semaphore(concurrency)
        self._rate = RateLimiter(rate) if rate else None

    @asynccontextmanager
    async def request(self) -> AsyncIterator[None]:
        async with self._slots:
            if self._rate is not None:
                await self._rate.acquire()
            yield
