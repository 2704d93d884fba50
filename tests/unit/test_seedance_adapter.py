"""The Seedance (Ark / ModelArk) adapter against the seedance simulator, and against
``httpx.MockTransport`` for the answers the simulator does not give on demand."""

from __future__ import annotations

import asyncio
import calendar
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from vidgate.config import ProviderConfig
from vidgate.domain.capabilities import Capabilities
from vidgate.domain.request import ImageInput, ImageRole, VideoParams
from vidgate.providers import seedance
from vidgate.providers.base import (
    ErrorCategory,
    JobError,
    JobRef,
    JobStatus,
    JobView,
    RateLimited,
    SubmitRequest,
    UpstreamNotFound,
    UpstreamProtocolError,
    UpstreamRejected,
    UpstreamUnavailable,
    Usage,
)
from vidgate.providers.seedance import SeedanceProvider
from vidgate.simulator.config import SimConfig
from vidgate.simulator.server import RunningSimulator, start

KEY = "ark-test-key-0123456789"
MODEL = "dreamina-seedance-2-0-260128"
BASE = "https://ark.ap-southeast.bytepluses.com/api/v3"
TASK_ID = "cgt-20261001120000-abcde"


def config(base_url: str, **options: Any) -> ProviderConfig:
    return ProviderConfig(name="ark", kind="seedance", base_url=base_url, api_key=KEY, **options)


def request(prompt: str = "a red fox in the snow", **params: Any) -> SubmitRequest:
    return SubmitRequest(prompt=prompt, model=MODEL, params=VideoParams(**params))


async def sim_with(**options: Any) -> RunningSimulator:
    settings: dict[str, Any] = {
        "protocol": "seedance",
        "prefix": "/api/v3",
        "job_seconds": 1.0,
        "api_key": KEY,
        **options,
    }
    return await start(SimConfig(**settings))


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    simulator = await sim_with()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def provider(sim: RunningSimulator) -> AsyncIterator[SeedanceProvider]:
    adapter = SeedanceProvider(config(sim.base_url))
    yield adapter
    await adapter.aclose()


async def until(
    provider: SeedanceProvider, ref: JobRef, done: Callable[[JobView], bool]
) -> JobView:
    deadline = time.monotonic() + 10
    while True:
        view = await provider.get(ref)
        if done(view) or time.monotonic() > deadline:
            return view
        await asyncio.sleep(0.05)


def terminal(view: JobView) -> bool:
    return view.status not in (JobStatus.QUEUED, JobStatus.IN_PROGRESS, None)


Handler = Callable[[httpx.Request], httpx.Response]


def mocked(handler: Handler) -> tuple[SeedanceProvider, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(sent: httpx.Request) -> httpx.Response:
        seen.append(sent)
        return handler(sent)

    client = httpx.AsyncClient(transport=httpx.MockTransport(record))
    return SeedanceProvider(config(BASE), client=client), seen


def ark_error(status: int, code: str, message: str = "refused", **headers: str) -> Handler:
    body = {"error": {"code": code, "message": message, "param": "", "type": "x"}}
    return lambda _request: httpx.Response(status, json=body, headers=headers)


def task(**fields: Any) -> dict[str, Any]:
    return {
        "id": TASK_ID,
        "model": MODEL,
        "status": "running",
        "created_at": 1790000000,
        "updated_at": 1790000010,
        "duration": 5,
        "ratio": "16:9",
        "resolution": "720p",
        **fields,
    }


def answering(body: object, status: int = 200) -> Handler:
    return lambda _request: httpx.Response(status, json=body)


# -- the wire body -------------------------------------------------------------------------


def test_every_neutral_field_has_its_place_in_the_body() -> None:
    adapter = SeedanceProvider(config(BASE))
    wanted = SubmitRequest(
        prompt="a lighthouse at dusk",
        model=MODEL,
        params=VideoParams(
            duration_seconds=8.0,
            aspect_ratio="9:16",
            resolution="1080p",
            seed=42,
            audio=False,
            images=(
                ImageInput(url="https://img.example/first.png", role=ImageRole.FIRST_FRAME),
                ImageInput(url="https://img.example/last.png", role=ImageRole.LAST_FRAME),
            ),
            extra={"watermark": True, "service_tier": "flex"},
        ),
        callback_url="https://vidgate.example/callbacks/ark",
    )
    assert adapter.wire_body(wanted) == {
        "model": MODEL,
        "content": [
            {"type": "text", "text": "a lighthouse at dusk"},
            {
                "type": "image_url",
                "image_url": {"url": "https://img.example/first.png"},
                "role": "first_frame",
            },
            {
                "type": "image_url",
                "image_url": {"url": "https://img.example/last.png"},
                "role": "last_frame",
            },
        ],
        "ratio": "9:16",
        "duration": 8,
        "resolution": "1080p",
        "seed": 42,
        "generate_audio": False,
        "callback_url": "https://vidgate.example/callbacks/ark",
        "watermark": True,
        "service_tier": "flex",
    }


def test_reference_images_and_defaults() -> None:
    adapter = SeedanceProvider(config(BASE))
    refs = tuple(
        ImageInput(url=f"https://img.example/{n}.png", role=ImageRole.REFERENCE) for n in range(2)
    )
    # Unset neutral fields send nothing: the upstream's defaults apply.
    assert adapter.wire_body(request("two friends", images=refs)) == {
        "model": MODEL,
        "content": [
            {"type": "text", "text": "two friends"},
            {
                "type": "image_url",
                "image_url": {"url": "https://img.example/0.png"},
                "role": "reference_image",
            },
            {
                "type": "image_url",
                "image_url": {"url": "https://img.example/1.png"},
                "role": "reference_image",
            },
        ],
    }


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"extra": {"wattermark": True}}, "Unknown Seedance parameter 'wattermark'"),
        ({"extra": {"watermark": "yes"}}, "Invalid value for the Seedance parameter 'watermark'"),
        ({"extra": {"execution_expires_after": 60}}, "'execution_expires_after'"),
        ({"extra": {"execution_expires_after": True}}, "'execution_expires_after'"),
        ({"extra": {"service_tier": "turbo"}}, "'service_tier'"),
        ({"extra": {"model": "other"}}, "Unknown Seedance parameter 'model'"),
        ({"extra": {"ratio": "1:1"}}, "Unknown Seedance parameter 'ratio'"),
        ({"duration_seconds": 4.5}, "whole seconds"),
        ({"negative_prompt": "blur"}, "no negative prompt"),
        ({"seed": 2**33}, "seed"),
    ],
)
async def test_impossible_requests_are_refused_before_any_http_call(
    params: dict[str, Any], fragment: str
) -> None:
    adapter, seen = mocked(answering({"id": TASK_ID}))
    with pytest.raises(UpstreamRejected) as caught:
        await adapter.create(request(**params), idempotency_key="k1")
    assert caught.value.category is ErrorCategory.INVALID_REQUEST
    assert caught.value.status == 400
    assert fragment in caught.value.message
    assert seen == []
    await adapter.aclose()


async def test_create_sends_one_authorised_json_post_and_no_idempotency_key() -> None:
    adapter, seen = mocked(answering({"id": TASK_ID}))
    view = await adapter.create(request(duration_seconds=5.0), idempotency_key="attempt-1")
    assert view == JobView(external_id=TASK_ID, status=JobStatus.QUEUED)
    [sent] = seen
    assert sent.method == "POST"
    assert str(sent.url) == f"{BASE}/contents/generations/tasks"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert "idempotency-key" not in sent.headers
    assert json.loads(sent.content) == {
        "model": MODEL,
        "content": [{"type": "text", "text": "a red fox in the snow"}],
        "duration": 5,
    }
    await adapter.aclose()


# -- declared things -----------------------------------------------------------------------


def test_features_models_and_capabilities() -> None:
    adapter = SeedanceProvider(config(BASE))
    assert adapter.kind == "seedance"
    assert adapter.base_url == BASE
    assert adapter.credential == config(BASE).credential_name()
    assert adapter.result_lifetime == 86400.0
    assert adapter.features.cancel and not adapter.features.cancel_running
    assert adapter.features.list_jobs and adapter.features.callbacks
    assert not adapter.features.idempotency_key and not adapter.features.client_id
    assert not adapter.features.content_route
    assert adapter.models == seedance.DEFAULT_MODELS
    assert adapter.upstream_model("seedance-2.0") == MODEL
    assert adapter.upstream_model("sora-2") is None
    caps = adapter.capabilities(MODEL)
    assert caps.durations == tuple(float(s) for s in range(4, 16))
    assert caps.resolutions == ("480p", "720p", "1080p")
    assert caps.aspect_ratios == ("16:9", "4:3", "1:1", "3:4", "9:16", "21:9", "adaptive")
    assert caps.image_roles == (ImageRole.FIRST_FRAME, ImageRole.LAST_FRAME, ImageRole.REFERENCE)
    assert (caps.max_images, caps.audio, caps.negative_prompt, caps.seed) == (9, True, False, True)
    assert adapter.capabilities("dreamina-seedance-2-5-260628").durations == tuple(
        float(s) for s in range(4, 31)
    )
    assert adapter.capabilities("dreamina-seedance-2-0-fast-260128").resolutions == ("480p", "720p")
    assert adapter.capabilities("ep-20261001-xyz") == Capabilities(
        aspect_ratios=caps.aspect_ratios,
        image_roles=caps.image_roles,
        max_images=9,
        audio=True,
        negative_prompt=False,
    )
    custom = SeedanceProvider(config(BASE, models={"fast": "ep-1"}))
    assert custom.models == {"fast": "ep-1"}


# -- against the simulator -----------------------------------------------------------------


async def test_a_task_runs_to_a_playable_expiring_video(
    sim: RunningSimulator, provider: SeedanceProvider
) -> None:
    created = await provider.create(
        request(duration_seconds=6.0, aspect_ratio="9:16", resolution="480p", seed=7, audio=False),
        idempotency_key="k",
    )
    ref = JobRef(external_id=created.external_id)
    assert created.external_id.startswith("cgt-")
    first = await provider.get(ref)
    assert (first.status, first.raw_status, first.progress) == (JobStatus.QUEUED, "queued", None)
    running = await until(provider, ref, lambda v: v.status is not JobStatus.QUEUED)
    assert (running.status, running.raw_status) == (JobStatus.IN_PROGRESS, "running")
    done = await until(provider, ref, terminal)
    assert (done.status, done.raw_status, done.error) == (JobStatus.COMPLETED, "succeeded", None)
    [video] = done.videos
    assert video.url is not None and not video.needs_credentials
    # expires_at is the URL's own figure: signed at completion, for the simulator's 3600 s.
    query = parse_qs(urlsplit(video.url).query)
    signed = calendar.timegm(time.strptime(query["X-Tos-Date"][0], "%Y%m%dT%H%M%SZ"))
    assert video.expires_at == signed + 3600
    assert done.usage == Usage(tokens=6 * 496 * 864 * 24 // 1024, seconds=6.0, resolution="480p")
    assert done.created_at is not None and abs(done.created_at - time.time()) < 5
    # What the simulator kept is what the body said.
    async with httpx.AsyncClient() as client:
        answer = await client.get(
            f"{sim.base_url}/contents/generations/tasks/{created.external_id}",
            headers={"Authorization": f"Bearer {KEY}"},
        )
    raw = answer.json()
    assert (raw["ratio"], raw["duration"], raw["resolution"], raw["seed"]) == ("9:16", 6, "480p", 7)
    assert raw["generate_audio"] is False
    # The URL plays without credentials, in ranges.
    async with httpx.AsyncClient() as client:
        whole = await client.get(video.url)
    assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
    assert whole.content[4:8] == b"ftyp"
    stream = await provider.open_content(ref, url=video.url, range_header="bytes=0-99")
    body = b"".join([chunk async for chunk in stream.chunks])
    await stream.aclose()
    assert stream.status == 206 and body == whole.content[:100]
    assert stream.headers["content-range"] == f"bytes 0-99/{len(whole.content)}"
    # Without a URL, the task is read again for its own.
    again = await provider.open_content(ref)
    assert b"".join([chunk async for chunk in again.chunks]) == whole.content
    await again.aclose()


async def test_the_result_url_expires_like_the_vendors_storage() -> None:
    simulator = await sim_with(job_seconds=0.3, expires_after_seconds=1.0)
    adapter = SeedanceProvider(config(simulator.base_url))
    try:
        created = await adapter.create(request(), idempotency_key="k")
        ref = JobRef(external_id=created.external_id)
        done = await until(adapter, ref, terminal)
        [video] = done.videos
        assert video.url is not None and video.expires_at is not None
        await asyncio.sleep(max(0.0, video.expires_at - time.time()) + 0.1)
        with pytest.raises(UpstreamNotFound, match="no longer valid \\(AccessDenied\\)"):
            await adapter.open_content(ref, url=video.url)
        tampered = video.url.replace("X-Tos-Expires=1", "X-Tos-Expires=99")
        with pytest.raises(UpstreamNotFound, match="SignatureDoesNotMatch"):
            await adapter.open_content(ref, url=tampered)
    finally:
        await adapter.aclose()
        await simulator.stop()


@pytest.mark.parametrize(
    ("prompt", "status", "error"),
    [
        (
            "a duel [fail]",
            JobStatus.FAILED,
            JobError(
                code="OutputVideoSensitiveContentDetected",
                message="The request failed because the output video may contain sensitive "
                "information.",
                category=ErrorCategory.CONTENT_POLICY,
            ),
        ),
        (
            "a storm [error]",
            JobStatus.FAILED,
            JobError(
                code="InternalServiceError",
                message="The service encountered an unexpected internal error.",
                category=ErrorCategory.GENERATION_FAILED,
            ),
        ),
        (
            "a queue [expired]",
            JobStatus.EXPIRED,
            JobError(
                code="TaskExpired",
                message="The task expired in Ark's queue before it ran.",
                category=ErrorCategory.PROVIDER_UNAVAILABLE,
            ),
        ),
    ],
)
async def test_failures_map_to_categories(
    provider: SeedanceProvider, prompt: str, status: JobStatus, error: JobError
) -> None:
    created = await provider.create(request(prompt), idempotency_key="k")
    done = await until(provider, JobRef(external_id=created.external_id), terminal)
    assert (done.status, done.videos, done.usage) == (status, (), None)
    assert done.error == error
    assert done.error.worth_retrying is (error.category is not ErrorCategory.CONTENT_POLICY)


async def test_input_moderation_refuses_at_create(provider: SeedanceProvider) -> None:
    with pytest.raises(UpstreamRejected) as caught:
        await provider.create(request("something [blocked]"), idempotency_key="k")
    assert caught.value.category is ErrorCategory.CONTENT_POLICY
    assert caught.value.code == "InputTextSensitiveContentDetected"
    assert caught.value.status == 400


async def test_cancel_works_only_while_queued() -> None:
    simulator = await sim_with(job_seconds=4.0)  # queued for 0.4 s
    adapter = SeedanceProvider(config(simulator.base_url))
    try:
        queued = await adapter.create(request(), idempotency_key="a")
        await adapter.cancel(JobRef(external_id=queued.external_id))
        view = await adapter.get(JobRef(external_id=queued.external_id))
        assert (view.status, view.raw_status, view.error) == (
            JobStatus.CANCELLED,
            "cancelled",
            None,
        )
        # Ark refuses a second DELETE; the adapter sees the task is cancelled already.
        await adapter.cancel(JobRef(external_id=queued.external_id))

        running = await adapter.create(request(), idempotency_key="b")
        ref = JobRef(external_id=running.external_id)
        await until(adapter, ref, lambda v: v.status is JobStatus.IN_PROGRESS)
        with pytest.raises(UpstreamRejected) as caught:
            await adapter.cancel(ref)
        assert (caught.value.status, caught.value.code) == (400, "InvalidParameter")
        assert (await adapter.get(ref)).status is JobStatus.IN_PROGRESS
        # A task the upstream does not know is not an error.
        await adapter.cancel(JobRef(external_id="cgt-20200101000000-zzzzz"))
    finally:
        await adapter.aclose()
        await simulator.stop()


async def test_recent_jobs_newest_first(provider: SeedanceProvider) -> None:
    first = await provider.create(request(duration_seconds=4.0), idempotency_key="a")
    await asyncio.sleep(1.05)  # created_at is in whole seconds
    second = await provider.create(
        request(aspect_ratio="1:1", resolution="720p"), idempotency_key="b"
    )
    found = await provider.recent_jobs(limit=10)
    assert [(s.external_id, s.model, s.seconds, s.size, s.prompt) for s in found] == [
        (second.external_id, MODEL, None, None, None),
        (first.external_id, MODEL, None, None, None),
    ]
    assert found[0].created_at is not None and found[1].created_at is not None
    assert found[0].created_at > found[1].created_at
    assert [s.external_id for s in await provider.recent_jobs(limit=1)] == [second.external_id]


async def test_unknown_task_is_not_found(provider: SeedanceProvider) -> None:
    with pytest.raises(UpstreamNotFound):
        await provider.get(JobRef(external_id="cgt-20200101000000-zzzzz"))


async def test_a_wrong_key_is_refused_and_never_shown(
    sim: RunningSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    adapter = SeedanceProvider(
        ProviderConfig(
            name="ark", kind="seedance", base_url=sim.base_url, api_key="wrong-secret-77"
        )
    )
    try:
        with pytest.raises(UpstreamRejected) as caught:
            await adapter.create(request(), idempotency_key="k")
    finally:
        await adapter.aclose()
    assert (caught.value.status, caught.value.code) == (401, "AuthenticationError")
    assert caught.value.category is ErrorCategory.INVALID_REQUEST
    assert "wrong-secret-77" not in str(caught.value)
    assert "wrong-secret-77" not in caplog.text


async def test_injected_rate_limit_is_a_rate_limit_with_its_wait() -> None:
    simulator = await sim_with(error_429_rate=1.0, retry_after_seconds=3.0)
    adapter = SeedanceProvider(config(simulator.base_url))
    try:
        with pytest.raises(RateLimited) as caught:
            await adapter.create(request(), idempotency_key="k")
    finally:
        await adapter.aclose()
        await simulator.stop()
    assert (caught.value.status, caught.value.retry_after) == (429, 3.0)
    assert caught.value.concurrency is False
    assert "RateLimitExceeded.EndpointRPMExceeded" in caught.value.message


# -- answers the simulator only gives rarely -----------------------------------------------


@pytest.mark.parametrize(
    ("handler", "kind", "details"),
    [
        (
            ark_error(429, "RateLimitExceeded.EndpointRPMExceeded", **{"retry-after": "7"}),
            RateLimited,
            {"retry_after": 7.0, "concurrency": False},
        ),
        (ark_error(429, "RequestBurstTooFast"), RateLimited, {"retry_after": None}),
        (ark_error(429, "QuotaExceeded"), RateLimited, {"concurrency": True}),
        (
            ark_error(429, "ServerOverloaded"),
            UpstreamUnavailable,
            {"maybe_received": False, "status": 429},
        ),
        (
            ark_error(403, "AccountOverdueError"),
            UpstreamRejected,
            {"category": ErrorCategory.INSUFFICIENT_CREDITS, "code": "AccountOverdueError"},
        ),
        (
            ark_error(429, "SetLimitExceeded"),
            UpstreamRejected,
            {"category": ErrorCategory.INSUFFICIENT_CREDITS},
        ),
        (
            ark_error(400, "InputImageSensitiveContentDetected.PrivacyInformation"),
            UpstreamRejected,
            {"category": ErrorCategory.CONTENT_POLICY},
        ),
        (
            ark_error(400, "InvalidParameter", "bad ratio"),
            UpstreamRejected,
            {
                "category": ErrorCategory.INVALID_REQUEST,
                "code": "InvalidParameter",
                "message": "bad ratio",
            },
        ),
        (
            ark_error(404, "InvalidEndpointOrModel.NotFound"),
            UpstreamRejected,
            {"category": ErrorCategory.INVALID_REQUEST, "status": 404},
        ),
        (ark_error(500, "InternalServiceError"), UpstreamUnavailable, {"status": 500}),
        (
            lambda _r: httpx.Response(502, text="<html>bad gateway</html>"),
            UpstreamUnavailable,
            {"maybe_received": True},
        ),
        (
            lambda _r: httpx.Response(429, text="slow down", headers={"retry-after": "2"}),
            RateLimited,
            {"retry_after": 2.0},
        ),
    ],
)
async def test_create_errors_by_code_then_status(
    handler: Handler, kind: type[Exception], details: dict[str, Any]
) -> None:
    adapter, _ = mocked(handler)
    with pytest.raises(kind) as caught:
        await adapter.create(request(), idempotency_key="k")
    assert type(caught.value) is kind
    for name, value in details.items():
        assert getattr(caught.value, name) == value
    await adapter.aclose()


@pytest.mark.parametrize(
    "body",
    [
        {"code": 0, "data": {"task_id": "123"}},  # Kling's envelope
        {"id": ""},
        {"id": 12},
        ["cgt-1"],
    ],
)
async def test_a_create_answer_without_an_id_is_a_protocol_error(body: object) -> None:
    adapter, _ = mocked(answering(body))
    with pytest.raises(UpstreamProtocolError):
        await adapter.create(request(), idempotency_key="k")
    await adapter.aclose()


@pytest.mark.parametrize(
    "handler",
    [
        answering({"id": "video_123", "object": "video", "status": "completed"}),  # another id
        answering({"id": TASK_ID, "model": MODEL}),  # no status word
        answering({"output": {"task_id": TASK_ID, "task_status": "SUCCEEDED"}}),
        lambda _r: httpx.Response(200, text="<html>garbled</html>"),
    ],
)
async def test_a_task_answer_in_the_wrong_shape_is_a_protocol_error(handler: Handler) -> None:
    adapter, _ = mocked(handler)
    with pytest.raises(UpstreamProtocolError):
        await adapter.get(JobRef(external_id=TASK_ID))
    await adapter.aclose()


async def test_get_of_a_lost_task_is_not_found_and_ids_are_quoted() -> None:
    adapter, seen = mocked(ark_error(404, "ResourceNotFound"))
    with pytest.raises(UpstreamNotFound):
        await adapter.get(JobRef(external_id="../x?y"))
    assert seen[0].url.raw_path == b"/api/v3/contents/generations/tasks/..%2Fx%3Fy"
    await adapter.aclose()


@pytest.mark.parametrize(
    ("fields", "status", "error"),
    [
        (
            {"status": "succeeded", "content": {}},
            JobStatus.FAILED,
            JobError(
                code="NoVideo",
                message="The task succeeded without a video URL.",
                category=ErrorCategory.GENERATION_FAILED,
            ),
        ),
        (
            {"status": "succeeded", "content": {"video_url": "javascript:alert(1)"}},
            JobStatus.FAILED,
            JobError(
                code="NoVideo",
                message="The task succeeded without a video URL.",
                category=ErrorCategory.GENERATION_FAILED,
            ),
        ),
        (
            {"status": "failed"},
            JobStatus.FAILED,
            JobError(
                code="TaskFailed",
                message="The Seedance task failed.",
                category=ErrorCategory.GENERATION_FAILED,
            ),
        ),
        (
            {
                "status": "failed",
                "error": {"code": "InputVideoSensitiveContentDetected", "message": "m"},
            },
            JobStatus.FAILED,
            JobError(
                code="InputVideoSensitiveContentDetected",
                message="m",
                category=ErrorCategory.CONTENT_POLICY,
            ),
        ),
        (
            {"status": "expired", "error": {"code": "TaskTimeout", "message": "too long"}},
            JobStatus.EXPIRED,
            JobError(
                code="TaskTimeout", message="too long", category=ErrorCategory.PROVIDER_UNAVAILABLE
            ),
        ),
        ({"status": "cancelled"}, JobStatus.CANCELLED, None),
    ],
)
async def test_terminal_task_objects(
    fields: dict[str, Any], status: JobStatus, error: JobError | None
) -> None:
    adapter, _ = mocked(answering(task(**fields)))
    view = await adapter.get(JobRef(external_id=TASK_ID))
    assert (view.status, view.raw_status, view.videos, view.error) == (
        status,
        fields["status"],
        (),
        error,
    )
    await adapter.aclose()


async def test_an_unknown_status_word_is_kept_but_not_terminal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="vidgate.providers.seedance")
    adapter, _ = mocked(answering(task(status="paused")))
    view = await adapter.get(JobRef(external_id=TASK_ID))
    assert (view.status, view.raw_status, view.error) == (None, "paused", None)
    assert [r.getMessage() for r in caplog.records] == ["upstream reported an unknown status word"]
    await adapter.aclose()


async def test_video_expiry_usage_and_a_relative_url() -> None:
    signed = (
        "https://tos.example/v.mp4?X-Tos-Date=20261001T000000Z&X-Tos-Expires=600&X-Tos-Signature=s"
    )
    adapter, _ = mocked(
        answering(
            task(
                status="succeeded",
                content={"video_url": signed},
                usage={"completion_tokens": 108000, "total_tokens": 108900},
            )
        )
    )
    view = await adapter.get(JobRef(external_id=TASK_ID))
    [video] = view.videos
    assert (video.url, video.needs_credentials) == (signed, False)
    assert video.expires_at == 1790812800.0 + 600  # 2026-10-01T00:00:00Z
    assert view.usage == Usage(tokens=108900, seconds=5.0, resolution="720p")
    await adapter.aclose()

    # Unsigned (and relative): the documented 24 hours from completion.
    adapter, _ = mocked(
        answering(
            task(
                status="succeeded",
                content={"video_url": "/files/v.mp4"},
                usage={"completion_tokens": 9},
            )
        )
    )
    view = await adapter.get(JobRef(external_id=TASK_ID))
    [video] = view.videos
    assert video.url == "https://ark.ap-southeast.bytepluses.com/files/v.mp4"
    assert video.expires_at == 1790000010 + 86400.0
    assert view.usage == Usage(tokens=9, seconds=5.0, resolution="720p")
    await adapter.aclose()


async def test_the_storage_host_never_sees_the_key() -> None:
    def handler(sent: httpx.Request) -> httpx.Response:
        if sent.url.host == "tos.example":
            return httpx.Response(
                200,
                stream=httpx.ByteStream(b"\x00\x00\x00\x18ftypmp42"),
                headers={"content-type": "video/mp4"},
            )
        return httpx.Response(
            200, json=task(status="succeeded", content={"video_url": "https://tos.example/v.mp4"})
        )

    adapter, seen = mocked(handler)
    stream = await adapter.open_content(JobRef(external_id=TASK_ID))
    assert b"".join([chunk async for chunk in stream.chunks]) == b"\x00\x00\x00\x18ftypmp42"
    await stream.aclose()
    api, storage = seen
    assert api.headers["authorization"] == f"Bearer {KEY}"
    assert "authorization" not in storage.headers
    await adapter.aclose()


async def test_cancel_listing_and_client_ids_by_mock() -> None:
    adapter, seen = mocked(answering({}))
    await adapter.cancel(JobRef(external_id=TASK_ID))
    assert [(r.method, r.url.path) for r in seen] == [
        ("DELETE", f"/api/v3/contents/generations/tasks/{TASK_ID}")
    ]
    await adapter.aclose()

    adapter, _ = mocked(answering({"data": []}))
    with pytest.raises(UpstreamProtocolError):
        await adapter.recent_jobs(limit=5)
    await adapter.aclose()

    adapter, seen = mocked(answering({"total": 2, "items": [task(), "junk", {"id": 3}]}))
    [summary] = await adapter.recent_jobs(limit=9999)
    assert (summary.external_id, summary.model, summary.created_at) == (TASK_ID, MODEL, 1790000000)
    assert seen[0].url.params["page_size"] == "500" and seen[0].url.params["page_num"] == "1"
    await adapter.aclose()

    adapter, _ = mocked(answering({}))
    with pytest.raises(NotImplementedError):
        await adapter.find_by_client_id("x")
    await adapter.aclose()
