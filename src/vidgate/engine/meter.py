"""The engine's metering port: what a worker reports about itself, and to nobody by default.

The engine stays free of any metrics library: it calls an ``EngineMeter``, which the
wiring (``vidgate.api.runtime``) fills with ``vidgate.metrics.Metrics`` when metrics are
on. ``NO_METER`` swallows every report, for tests and for ``VIDGATE_METRICS=false``.
"""

from __future__ import annotations

from typing import Protocol

from vidgate.engine.limits import BreakerState


class EngineMeter(Protocol):
    def steps_in_flight(self, count: int) -> None:
        """How many task steps this engine runs right now."""
        ...

    def check_lag(self, seconds: float) -> None:
        """A step began ``seconds`` after its task was due (``next_check_at``)."""
        ...

    def breaker_state(self, provider: str, state: BreakerState) -> None:
        """``provider``'s circuit breaker in this process changed to ``state``."""
        ...


class _NoMeter:
    def steps_in_flight(self, count: int) -> None:
        pass

    def check_lag(self, seconds: float) -> None:
        pass

    def breaker_state(self, provider: str, state: BreakerState) -> None:
        pass


NO_METER: EngineMeter = _NoMeter()
