"""Error classification, in one place: what the engine does about each upstream failure."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from vidgate.providers.base import (
    RateLimited,
    UpstreamError,
    UpstreamNotFound,
    UpstreamRejected,
    UpstreamUnavailable,
)


class Action(StrEnum):
    RETRY = "retry"  # transient: the same attempt again after a backoff
    REJECT = "reject"  # the request itself is wrong: fail the task with the upstream's words
    LOST = "lost"  # the upstream does not know the job


@dataclass(frozen=True, kw_only=True)
class Verdict:
    action: Action
    message: str
    retry_after: float | None = None
    maybe_received: bool = True


def classify(exc: UpstreamError) -> Verdict:
    """Connection errors, timeouts, 5xx and 429 are transient; other 4xx are permanent."""
    if isinstance(exc, RateLimited):
        return Verdict(
            action=Action.RETRY,
            message=exc.message,
            retry_after=exc.retry_after,
            maybe_received=False,
        )
    if isinstance(exc, UpstreamUnavailable):
        return Verdict(action=Action.RETRY, message=exc.message, maybe_received=exc.maybe_received)
    if isinstance(exc, UpstreamNotFound):
        return Verdict(action=Action.LOST, message=exc.message, maybe_received=False)
    if isinstance(exc, UpstreamRejected):
        return Verdict(action=Action.REJECT, message=exc.message, maybe_received=False)
    return Verdict(action=Action.RETRY, message=exc.message)
