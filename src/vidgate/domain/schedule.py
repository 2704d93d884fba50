"""When to look at an upstream job next: each task on its own adaptive schedule.

Soon after submission; then by the expected remaining time estimated from the progress
rate so far, so a job is looked at more often as it nears its end; always with jitter so
thousands of tasks created together do not poll in lockstep (engine rule 6).
"""

from __future__ import annotations

import random
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
) -> float:
    """Seconds until the next look at a job ``since_submit`` seconds old at ``progress``%."""
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
