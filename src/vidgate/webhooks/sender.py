"""Claim due deliveries and send them: one attempt per lease, outcome fenced by it.

2xx within the timeout is success. A redirect is a failure (never followed). 410 Gone
gives up and disables the endpoint. Anything else is retried with exponential backoff and
full jitter until the retry window (24 h by default) from the delivery's creation is over.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from vidgate.store import webhooks as store
from vidgate.webhooks import egress, signing

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    base_seconds: float = 5.0  # the delay after the first failed attempt, doubled each time
    max_seconds: float = 3600.0  # no wait longer than this between two attempts
    window_seconds: float = 24 * 3600.0  # give up once the next try would be past this

    def next_attempt(
        self,
        *,
        attempts: int,
        created_at: datetime,
        now: datetime,
        rng: Callable[[], float] = random.random,
    ) -> datetime | None:
        """When to try again after ``attempts`` failed attempts; None: give up."""
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** min(attempts - 1, 40))
        # Jitter in [ceiling/2, ceiling]: receivers recovering from an outage are not hit
        # by every delivery at the same moment, and the backoff still grows.
        delay = ceiling * (0.5 + 0.5 * rng())
        when = now + timedelta(seconds=delay)
        if when > created_at + timedelta(seconds=self.window_seconds):
            return None
        return when


def outcome_of(
    claimed: store.Claimed,
    answer: egress.Answer,
    *,
    policy: RetryPolicy,
    now: datetime,
) -> store.Outcome:
    code = answer.status_code
    if code is not None and 200 <= code < 300:
        return store.Outcome(status=store.SUCCEEDED, at=now, status_code=code)
    if code == 410:
        return store.Outcome(
            status=store.FAILED,
            at=now,
            status_code=code,
            error="410 Gone: the receiver asked for no more deliveries",
            disable_target="410 Gone",
        )
    error = answer.error
    if code is not None:
        error = f"HTTP {code}" + (": redirects are not followed" if 300 <= code < 400 else "")
    delivery = claimed.delivery
    when = policy.next_attempt(attempts=delivery.attempts, created_at=delivery.created_at, now=now)
    if when is None:
        return store.Outcome(
            status=store.FAILED, at=now, status_code=code, error=f"gave up: {error}"
        )
    return store.Outcome(
        status=store.PENDING, at=now, status_code=code, error=error, next_attempt_at=when
    )


class Sender:
    def __init__(
        self,
        webhook_store: store.WebhookStore,
        poster: egress.Poster,
        *,
        owner: str,
        policy: RetryPolicy,
    ) -> None:
        self.store = webhook_store
        self.poster = poster
        self.owner = owner
        self.policy = policy

    async def send(self, claimed: store.Claimed) -> store.Outcome:
        """One attempt of ``claimed``; its outcome is recorded before this returns."""
        delivery = claimed.delivery
        now = datetime.now(UTC)
        if not claimed.secrets:  # its endpoint was deleted or disabled meanwhile
            outcome = store.Outcome(status=store.CANCELLED, at=now, error="endpoint removed")
        else:
            headers = signing.headers(
                msg_id=delivery.id, at=now, body=delivery.body, keys=claimed.secrets
            )
            try:
                answer = await self.poster.post(delivery.url, body=delivery.body, headers=headers)
            except egress.Refused as exc:
                outcome = store.Outcome(
                    status=store.FAILED, at=datetime.now(UTC), error=f"address refused: {exc}"
                )
            except Exception as exc:
                # Whatever else went wrong is a failed attempt, retried within the window:
                # left unrecorded, the delivery would be sent again at every lease's end,
                # forever, holding back the task's later events.
                logger.exception("webhook %s: the attempt failed", delivery.id)
                answer = egress.Answer(status_code=None, error=type(exc).__name__)
                outcome = outcome_of(claimed, answer, policy=self.policy, now=datetime.now(UTC))
            else:
                outcome = outcome_of(claimed, answer, policy=self.policy, now=datetime.now(UTC))
        recorded = await self.store.finish(claimed, owner=self.owner, outcome=outcome)
        log = logger.info if outcome.status == store.SUCCEEDED else logger.warning
        log(
            "webhook %s %s of %s (event %d, attempt %d) -> %s %s%s%s",
            delivery.id,
            delivery.event_type,
            delivery.video_id,
            delivery.event_id,
            delivery.attempts,
            outcome.status,
            outcome.status_code or "",
            f" ({outcome.error})" if outcome.error else "",
            "" if recorded else " (lease lost; not recorded)",
            extra={
                "videoId": delivery.video_id,
                "webhookId": delivery.id,
                "attempt": delivery.attempts,
                "action": "webhook",
            },
        )
        return outcome
