"""When to look at an upstream job next: each task on its own adaptive schedule.

Soon after submission; then by the expected remaining time estimated from the progress
rate so far, so a job is looked at more often as it nears its end; always with jitter so
thousands of tasks created together do not poll in lockstep (engine rule 6).
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class PollPolicy:
    first: float = 1.0  # seconds after submission
    minimum: float = 0.5
    maximum: float = 20.0
    fraction_of_remaining: float = 0.3
    jitter: float = 0.1  # +-10 %


def next_poll_delay(
    *,
    since_submit: float,
    progress: int,
    policy: PollPolicy = PollPolicy(),
    rng: random.Random | None = None,
    expected: float | None = None,
) -> float:
    """Seconds until the next look at a job ``since_submit`` seconds old at ``progress``%.

    ``expected``: how long such jobs have taken lately (``JobDurations``). Until then the
    job is looked at once, just after that time, instead of ever more often as it nears
    its end: one poll where the progress rate alone takes four or five.
    """
    if expected is not None and since_submit < expected:
        base = min(policy.maximum, max(policy.minimum, expected - since_submit))
        # Jitter only later: early, the look would find the job still running.
        spread = (rng or random).uniform(0, policy.jitter)
        return base * (1 + spread)
    if since_submit <= 0:
        base = policy.first
    elif progress <= 0:
        # No rate yet: back off gently with the job's age.
        base = max(policy.first, since_submit * 0.5)
    else:
        rate = progress / since_submit  # percent per second
        remaining = (100 - progress) / rate
        base = remaining * policy.fraction_of_remaining
    base = min(policy.maximum, max(policy.minimum, base))
    spread = (rng or random).uniform(-policy.jitter, policy.jitter)
    return max(policy.minimum * (1 - policy.jitter), base * (1 + spread))


def backoff_delay(
    failures: int,
    *,
    base: float = 1.0,
    cap: float = 30.0,
    rng: random.Random | None = None,
) -> float:
    """Exponential backoff with full jitter after ``failures`` consecutive failures (>= 1)."""
    ceiling = min(cap, base * (2 ** max(0, failures - 1)))
    return (rng or random).uniform(ceiling / 2, ceiling)


class JobDurations:
    """How long recent jobs of a kind (a provider, model and clip length) took, learned
    by one engine process from the jobs it saw complete.

    ``expected`` is the lower quartile of the last ``window`` durations, once there are
    ``least`` of them: a duration is measured up to the poll that found the job done, so
    it runs long by up to one poll interval, and the quartile leans to the jobs found soon
    after they finished. Kinds are few (a model and a clip length each), and each keeps
    ``window`` floats.
    """

    def __init__(self, *, window: int = 32, least: int = 3) -> None:
        self._window = window
        self._least = least
        self._seen: dict[tuple[str, ...], deque[float]] = {}

    def observe(self, kind: tuple[str, ...], seconds: float) -> None:
        if seconds > 0:
            self._seen.setdefault(kind, deque(maxlen=self._window)).append(seconds)

    def expected(self, kind: tuple[str, ...]) -> float | None:
        seen = self._seen.get(kind)
        if seen is None or len(seen) < self._least:
            return None
        ordered = sorted(seen)
        return ordered[(len(ordered) - 1) // 4]
