"""Error classification (engine rule 7, issue 3 item 4): what the engine does about each failure.

The first half drives the real adapter over an ``httpx.MockTransport`` so the whole chain
is covered: an HTTP-level failure -> the adapter's error -> the engine's verdict. Whether a
failure ``maybe_received`` the request is what decides between a safe failover and a
possible second paid job, so every kind is pinned here.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from vidgate.config import ProviderConfig
from vidgate.engine.classify import Action, Verdict, classify
from vidgate.providers.base import (
    JobError,
    JobRef,
    RateLimited,
    SubmitRequest,
    UpstreamError,
    UpstreamNotFound,
    UpstreamProtocolError,
    UpstreamRejected,
    UpstreamUnavailable,
)
from vidgate.providers.openai import OpenAIVideosProvider, job_error_category

REQUEST = SubmitRequest(prompt="a cat", model="sora-2", seconds="4", size="720x1280")
Answer = Callable[[httpx.Request], httpx.Response]


def raising(error: type[httpx.RequestError]) -> Answer:
    def answer(request: httpx.Request) -> httpx.Response:
        raise error("scripted", request=request)

    return answer


def responding(status: int, body: object = None, **headers: str) -> Answer:
    def answer(request: httpx.Request) -> httpx.Response:
        if isinstance(body, bytes):
            return httpx.Response(status, content=body, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    return answer


async def verdict_of(answer: Answer, *, method: str = "create") -> tuple[UpstreamError, Verdict]:
    """What the adapter raises for ``answer``, and the engine's verdict on it."""
    client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    provider = OpenAIVideosProvider(
        ProviderConfig(name="up", base_url="http://upstream.test/v1"), client=client
    )
    try:
        if method == "create":
            await provider.create(REQUEST, idempotency_key="key-1")
        else:
            await provider.get(JobRef(external_id="video_1"))
    except UpstreamError as exc:
        return exc, classify(exc)
    finally:
        await provider.aclose()
    pytest.fail("the adapter raised nothing")


ERROR_BODY = {"error": {"message": "prompt is too long", "code": "invalid_prompt"}}


@pytest.mark.parametrize(
    ("answer", "action", "retry_after", "maybe_received"),
    [
        # Nothing was sent: a new attempt elsewhere cannot pay twice.
        pytest.param(raising(httpx.ConnectError), Action.RETRY, None, False, id="connect-error"),
        pytest.param(
            raising(httpx.ConnectTimeout), Action.RETRY, None, False, id="connect-timeout"
        ),
        # Sent, answer lost: the upstream may have created the job.
        pytest.param(raising(httpx.ReadTimeout), Action.RETRY, None, True, id="read-timeout"),
        pytest.param(
            raising(httpx.RemoteProtocolError), Action.RETRY, None, True, id="connection-cut"
        ),
        pytest.param(
            responding(429, None, **{"Retry-After": "7"}), Action.RETRY, 7.0, False, id="429"
        ),
        pytest.param(
            responding(429, None, **{"retry-after-ms": "1500"}),
            Action.RETRY,
            1.5,
            False,
            id="429-ms",
        ),
        pytest.param(responding(429), Action.RETRY, None, False, id="429-no-header"),
        pytest.param(
            responding(503, None, **{"Retry-After": "2"}), Action.RETRY, 2.0, False, id="503-ra"
        ),
        pytest.param(responding(500, ERROR_BODY), Action.RETRY, None, False, id="500"),
        pytest.param(responding(503), Action.RETRY, None, False, id="503"),
        # From a proxy in front of the upstream, which may have passed the request on.
        pytest.param(responding(502), Action.RETRY, None, True, id="502"),
        pytest.param(responding(504), Action.RETRY, None, True, id="504"),
        pytest.param(responding(200, b"<html>oops</html>"), Action.RETRY, None, True, id="garbage"),
        pytest.param(responding(200, [1, 2]), Action.RETRY, None, True, id="not-an-object"),
        pytest.param(responding(400, ERROR_BODY), Action.REJECT, None, False, id="400"),
        pytest.param(responding(401, ERROR_BODY), Action.REJECT, None, False, id="401"),
        pytest.param(responding(422, ERROR_BODY), Action.REJECT, None, False, id="422"),
    ],
)
async def test_each_failure_of_a_create_call_is_classified(
    answer: Answer, action: Action, retry_after: float | None, maybe_received: bool
) -> None:
    _, verdict = await verdict_of(answer)

    assert verdict.action is action
    assert verdict.retry_after == retry_after
    assert verdict.maybe_received is maybe_received


async def test_a_rejection_carries_the_upstreams_own_message() -> None:
    error, verdict = await verdict_of(responding(400, ERROR_BODY))

    assert isinstance(error, UpstreamRejected)
    assert verdict.action is Action.REJECT
    assert verdict.message == "prompt is too long"  # what the client will read


async def test_a_missing_job_is_lost_not_retried() -> None:
    error, verdict = await verdict_of(responding(404, ERROR_BODY), method="get")

    assert isinstance(error, UpstreamNotFound)
    assert verdict.action is Action.LOST
    assert verdict.maybe_received is False


@pytest.mark.parametrize(
    ("error", "action", "retry_after", "maybe_received"),
    [
        (UpstreamUnavailable("refused", maybe_received=False), Action.RETRY, None, False),
        (UpstreamUnavailable("timed out"), Action.RETRY, None, True),  # cautious default
        (UpstreamUnavailable("502", status=502, maybe_received=True), Action.RETRY, None, True),
        (RateLimited("slow down", retry_after=3.5), Action.RETRY, 3.5, False),
        (RateLimited("busy", status=503, retry_after=None), Action.RETRY, None, False),
        (UpstreamProtocolError("not JSON"), Action.RETRY, None, True),
        (UpstreamRejected("bad size", status=400), Action.REJECT, None, False),
        (UpstreamNotFound("no such job", status=404), Action.LOST, None, False),
        (UpstreamError("something new"), Action.RETRY, None, True),  # unknown: cautious
    ],
)
def test_classify_each_error_kind(
    error: UpstreamError, action: Action, retry_after: float | None, maybe_received: bool
) -> None:
    verdict = classify(error)

    assert verdict.action is action
    assert verdict.retry_after == retry_after
    assert verdict.maybe_received is maybe_received
    assert verdict.message == error.message


@pytest.mark.parametrize(
    "code",
    [
        "moderation_blocked",
        "content_policy_violation",
        "safety_violation",
        "SAFETY_SYSTEM",
        "content_filter",
        "prompt_blocked",
        "policy_violation",
        # Policy words win even inside an otherwise retryable-looking code.
        "server_error_moderation",
    ],
)
def test_content_policy_failures_are_never_retried(code: str) -> None:
    assert _retryable(code) is False


@pytest.mark.parametrize(
    "code",
    [
        "video_generation_failed",
        "VIDEO_GENERATION_FAILED",
        "generation_failed",
        "server_error",
        "internal_error",
        "service_unavailable",
        "overloaded",
    ],
)
def test_generation_failures_are_worth_another_attempt(code: str) -> None:
    assert _retryable(code) is True


@pytest.mark.parametrize(
    "code", ["UPSTREAM_FAILED", "invalid_prompt", "some_new_code", "", "video_generation"]
)
def test_unknown_job_failure_codes_are_not_retried(code: str) -> None:
    # Another attempt costs money: only known-transient failures earn one.
    assert _retryable(code) is False


def _retryable(code: str) -> bool:
    """What the failover rules make of a /v1/videos job failure with this code."""
    error = JobError(code=code, message="", category=job_error_category(code))
    return error.worth_retrying
