"""Fault injection: which fault (if any) hits a request, and how each one is answered.

Request faults are drawn from one roll per API request, in the order 500, 503, 429, timeout,
garbage, hostile, so `error_500_rate=0.1, error_503_rate=0.1` fails 20% of requests. A timeout
makes the request hang for `hang_seconds` and is then handled normally: a create whose client
gave up still creates the job, which is exactly the ambiguity Idempotency-Key exists to resolve.
A hostile draw only matters to `GET /videos/{id}`, whose answer it corrupts (hostile.py).

Job outcomes are drawn once, when a job is created. Prompts can force them deterministically:
`[fail]` ends the job failed with code `moderation_blocked`, `[stuck]` never finishes.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Mapping

from fastapi.responses import Response

from vidgate.simulator import errors, jobs
from vidgate.simulator.config import SimConfig

FAIL_TRIGGER = "[fail]"
STUCK_TRIGGER = "[stuck]"

MODERATION_ERROR = jobs.JobError(
    code="moderation_blocked",
    message="Your request was blocked by our moderation system.",
)
GENERATION_ERROR = jobs.JobError(
    code="video_generation_failed",
    message="Video generation failed. Please try again.",
)

# A 200 whose body is not JSON, the way a misbehaving proxy answers. The content type still
# claims JSON so clients must cope with a parse failure, not just a surprising header.
GARBAGE_BODY = b"<html><body><h1>upstream temporarily garbled</h1></body></html>"


class Fault(enum.Enum):
    """Counted in stats under these values."""

    ERROR_500 = "error500"
    ERROR_503 = "error503"
    ERROR_429 = "error429"
    TIMEOUT = "timeout"
    GARBAGE = "garbage"
    HOSTILE = "hostile"
    JOB_FAIL = "jobFail"
    JOB_STUCK = "jobStuck"


_REQUEST_FAULTS = (
    ("error_500_rate", Fault.ERROR_500),
    ("error_503_rate", Fault.ERROR_503),
    ("error_429_rate", Fault.ERROR_429),
    ("timeout_rate", Fault.TIMEOUT),
    ("garbage_rate", Fault.GARBAGE),
    ("hostile_rate", Fault.HOSTILE),
)


def draw_request_fault(config: SimConfig, rng: random.Random) -> Fault | None:
    roll = rng.random()
    threshold = 0.0
    for field, fault in _REQUEST_FAULTS:
        threshold += getattr(config, field)
        if roll < threshold:
            return fault
    return None


def draw_outcome(prompt: str, config: SimConfig, rng: random.Random) -> jobs.Outcome:
    if FAIL_TRIGGER in prompt:
        return jobs.Outcome.FAIL
    if STUCK_TRIGGER in prompt:
        return jobs.Outcome.STUCK
    roll = rng.random()
    if roll < config.job_fail_rate:
        return jobs.Outcome.FAIL
    if roll < config.job_fail_rate + config.job_stuck_rate:
        return jobs.Outcome.STUCK
    return jobs.Outcome.COMPLETE


def job_error(prompt: str, outcome: jobs.Outcome) -> jobs.JobError | None:
    if outcome is not jobs.Outcome.FAIL:
        return None
    return MODERATION_ERROR if FAIL_TRIGGER in prompt else GENERATION_ERROR


class GarbageAnswer(errors.SimError):
    """Not an error to the client's HTTP stack at all: a 200 it cannot parse."""

    def __init__(self) -> None:
        super().__init__(200, "garbage")

    def response(self) -> Response:
        return Response(GARBAGE_BODY, status_code=200, media_type="application/json")


def injected_error(fault: Fault, config: SimConfig) -> errors.SimError:
    """The answer for a fault that replaces the response (everything but TIMEOUT)."""
    if fault is Fault.ERROR_500:
        return errors.SimError(
            500,
            "The server had an error while processing your request. Sorry about that!",
            type="server_error",
        )
    if fault is Fault.ERROR_503:
        wait = config.retry_after_503_seconds
        return errors.SimError(
            503,
            "The server is overloaded or not ready yet.",
            type="server_error",
            headers=retry_after_headers(wait) if wait > 0 else None,
        )
    if fault is Fault.ERROR_429:
        wait = config.retry_after_seconds
        return errors.SimError(
            429,
            f"Rate limit reached for requests. Please try again in {wait:g}s.",
            type="requests",
            code="rate_limit_exceeded",
            headers=retry_after_headers(wait),
        )
    if fault is Fault.GARBAGE:
        return GarbageAnswer()
    raise ValueError(f"{fault} does not replace the response")


def retry_after_headers(wait: float) -> dict[str, str]:
    # Retry-After only takes whole seconds; retry-after-ms carries the exact value.
    return {"retry-after": str(math.ceil(wait)), "retry-after-ms": str(round(wait * 1000))}


def retry_after_of(headers: Mapping[str, str]) -> float | None:
    """The shortest wait an answer's headers ask for (retry-after-ms wins, as clients read it),
    or None when they ask for none."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            return max(0.0, float(raw) / scale)
        except ValueError:
            continue
    return None
