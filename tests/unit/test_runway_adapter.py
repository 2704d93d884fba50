"""The Runway adapter: against the Runway simulator in-process, and against hand-written
answers (``httpx.MockTransport``) for the shapes the simulator never produces."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import jwt
import pytest

from vidgate.config import ProviderConfig
from vidgate.domain.capabilities import Capabilities
from vidgate.domain.request import ImageInput, ImageRole, VideoParams
from vidgate.providers import registry
from vidgate.providers.base import (
    ErrorCategory,
    Features,
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
from vidgate.providers.runway import (
    API_VERSION,
    DEFAULT_MODELS,
    RESULT_LIFETIME,
    RunwayProvider,
    failure_category,
)
from vidgate.simulator.config import SimConfig
from vidgate.simulator.server import RunningSimulator, start

KEY = "key_" + "ab12" * 32
FIRST = "https://images.example.com/first.png"
LAST = "https://images.example.com/last.png"
TERMINAL = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


@asynccontextmanager
async def simulator(**overrides: Any) -> AsyncIterator[RunningSimulator]:
    settings: dict[str, Any] = {
        "protocol": "runway",
        "prefix": "",
        "job_seconds": 0.5,
        "api_key": KEY,
        **overrides,
    }
    running = await start(SimConfig(**settings))
    try:
        yield running
    finally:
        await running.stop()


@asynccontextmanager
async def provider(base_url: str, **options: Any) -> AsyncIterator[RunwayProvider]:
    settings: dict[str, Any] = {
        "name": "rw",
        "kind": "runway",
        "base_url": base_url,
        "api_key": KEY,
        "idempotency": False,
        **options,
    }
    adapter = RunwayProvider(ProviderConfig(**settings))
    try:
        yield adapter
    finally:
        await adapter.aclose()


Handler = Callable[[httpx.Request], httpx.Response]


@asynccontextmanager
async def mocked(handler: Handler, **options: Any) -> AsyncIterator[RunwayProvider]:
    """The adapter over a MockTransport answering with ``handler``."""
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    settings: dict[str, Any] = {
        "name": "rw",
        "kind": "runway",
        "base_url": "https://api.dev.runwayml.com",
        "api_key": KEY,
        "idempotency": False,
        **options,
    }
    adapter = RunwayProvider(ProviderConfig(**settings), client=client)
    try:
        yield adapter
    finally:
        await adapter.aclose()


def submit(model: str, prompt: str = "a heron at dawn", **params: Any) -> SubmitRequest:
    return SubmitRequest(prompt=prompt, model=model, params=VideoParams(**params))


async def until_terminal(adapter: RunwayProvider, external_id: str) -> list[JobView]:
    seen: list[JobView] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        view = await adapter.get(JobRef(external_id=external_id))
        seen.append(view)
        if view.status in TERMINAL:
            return seen
        await asyncio.sleep(0.05)
    raise AssertionError(f"task {external_id} never finished: {seen[-1]}")


async def read_all(adapter: RunwayProvider, job: JobRef, url: str | None) -> bytes:
    stream = await adapter.open_content(job, url=url)
    try:
        return b"".join([chunk async for chunk in stream.chunks])
    finally:
        await stream.aclose()


# -- against the simulator -----------------------------------------------------------------


async def test_text_to_video_lifecycle_and_result() -> None:
    async with simulator(expires_after_seconds=600) as sim, provider(sim.origin) as adapter:
        created = await adapter.create(
            submit(
                "veo3.1",
                duration_seconds=4,
                aspect_ratio="9:16",
                resolution="1080p",
                audio=False,
                seed=7,
                negative_prompt="rain",
            ),
            idempotency_key="attempt-1",
        )
        assert created == JobView(external_id=created.external_id, status=JobStatus.QUEUED)
        job = sim.state.jobs.get(created.external_id)
        assert job is not None
        assert (job.model, job.size, job.seconds) == ("veo3.1", "1080x1920", "4")

        seen = await until_terminal(adapter, created.external_id)
        words = [view.raw_status for view in seen]
        assert words[-1] == "SUCCEEDED"
        assert set(words) <= {"PENDING", "RUNNING", "SUCCEEDED"}
        running = [view for view in seen if view.raw_status == "RUNNING"]
        assert running and all(view.status is JobStatus.IN_PROGRESS for view in running)
        assert all(view.progress is not None and 0 <= view.progress <= 99 for view in running)
        assert [v.progress for v in running] == sorted(v.progress or 0 for v in running)

        done = seen[-1]
        assert done.status is JobStatus.COMPLETED and done.error is None and done.progress is None
        # 20 credits a second for veo3.1 without sound, charged in full on success.
        assert done.usage == Usage(cost=80.0, currency="credits")
        assert done.created_at == int(job.created_at)
        (video,) = done.videos
        assert video.url is not None
        assert video.url.startswith(f"{sim.origin}/runway-artifacts/{done.external_id}.mp4?_jwt=")
        assert not video.needs_credentials
        # The expiry is the URL's own (its token's exp), not the documented fallback.
        assert video.expires_at is not None
        assert 599 <= video.expires_at - time.time() <= 602
        content = await read_all(adapter, JobRef(external_id=done.external_id), video.url)
        assert content[4:8] == b"ftyp"


async def test_image_to_video_with_first_and_last_frames() -> None:
    async with simulator() as sim, provider(sim.origin) as adapter:
        created = await adapter.create(
            submit(
                "veo3.1_fast",
                images=(
                    ImageInput(url=FIRST, role=ImageRole.FIRST_FRAME),
                    ImageInput(url=LAST, role=ImageRole.LAST_FRAME),
                ),
                duration_seconds=6,
            ),
            idempotency_key="attempt-1",
        )
        job = sim.state.jobs.get(created.external_id)
        assert job is not None
        assert (job.model, job.size, job.seconds) == ("veo3.1_fast", "1280x720", "6")
        assert sim.stats()["requests"]["POST /v1/image_to_video"] == 1
        done = (await until_terminal(adapter, created.external_id))[-1]
        # veo3.1_fast with sound (its default): 15 credits a second.
        assert done.status is JobStatus.COMPLETED
        assert done.usage == Usage(cost=90.0, currency="credits")


async def test_content_policy_failure() -> None:
    async with simulator() as sim, provider(sim.origin) as adapter:
        created = await adapter.create(submit("gen4.5", "a [fail] scene"), idempotency_key="k")
        done = (await until_terminal(adapter, created.external_id))[-1]
        assert done.status is JobStatus.FAILED and done.raw_status == "FAILED"
        assert done.error is not None
        assert done.error.code == "SAFETY.INPUT.TEXT"
        assert done.error.category is ErrorCategory.CONTENT_POLICY
        assert done.error.worth_retrying is False
        assert done.videos == ()
        # A moderated input is charged (gen4.5: 12 credits a second, 5 s by default).
        assert done.usage == Usage(cost=60.0, currency="credits")


async def test_internal_failure_is_worth_retrying() -> None:
    async with simulator() as sim, provider(sim.origin) as adapter:
        created = await adapter.create(submit("gen4.5", "an [error] scene"), idempotency_key="k")
        done = (await until_terminal(adapter, created.external_id))[-1]
        assert done.status is JobStatus.FAILED
        assert done.error is not None
        assert done.error.code == "INTERNAL.BAD_OUTPUT.CODE01"
        assert done.error.category is ErrorCategory.GENERATION_FAILED
        assert done.error.worth_retrying is True
        assert done.usage == Usage(cost=0.0, currency="credits")  # refunded


async def test_throttled_is_queued_not_failed() -> None:
    async with simulator(job_seconds=30) as sim, provider(sim.origin) as adapter:
        created = await adapter.create(submit("gen4.5", "[throttled] crowd"), idempotency_key="k")
        view = await adapter.get(JobRef(external_id=created.external_id))
        assert (view.status, view.raw_status, view.progress) == (
            JobStatus.QUEUED,
            "THROTTLED",
            None,
        )
        assert view.usage is None and view.error is None


async def test_cancel_then_gone_and_cancel_again_is_fine() -> None:
    async with simulator() as sim, provider(sim.origin) as adapter:
        created = await adapter.create(submit("gen4.5", "[stuck] forever"), idempotency_key="k")
        job = JobRef(external_id=created.external_id)
        await adapter.cancel(job)
        assert sim.stats()["requests"]["DELETE /v1/tasks/{task_id}"] == 1
        with pytest.raises(UpstreamNotFound):
            await adapter.get(job)
        await adapter.cancel(job)  # already gone: not an error


async def test_expired_output_url_is_refreshed_from_the_task() -> None:
    async with simulator(expires_after_seconds=1) as sim, provider(sim.origin) as adapter:
        created = await adapter.create(
            submit("gen4_turbo", images=(ImageInput(url=FIRST),)), idempotency_key="k"
        )
        done = (await until_terminal(adapter, created.external_id))[-1]
        (video,) = done.videos
        assert video.url is not None and video.expires_at is not None
        assert video.expires_at - time.time() <= 2.01
        await asyncio.sleep(max(0.0, video.expires_at - time.time()) + 0.2)
        async with httpx.AsyncClient() as plain:
            assert (await plain.get(video.url)).status_code == 403
        job = JobRef(external_id=created.external_id)
        # The stale URL is replaced by a fresh one from the task; no URL at all works too.
        assert (await read_all(adapter, job, video.url))[4:8] == b"ftyp"
        assert (await read_all(adapter, job, None))[4:8] == b"ftyp"
        assert sim.stats()["requests"]["GET /runway-artifacts/{task_id}.mp4"] == 4


async def test_rate_limit_signal() -> None:
    faults = {"error_429_rate": 1.0, "retry_after_seconds": 2.5}
    async with simulator(**faults) as sim, provider(sim.origin) as adapter:
        with pytest.raises(RateLimited) as caught:
            await adapter.create(submit("gen4.5"), idempotency_key="k")
    assert caught.value.status == 429
    assert caught.value.retry_after == 2.5
    assert caught.value.concurrency is False
    assert caught.value.maybe_received is False
    assert sim.state.stats.jobs_created == 0


async def test_insufficient_credits() -> None:
    async with simulator() as sim, provider(sim.origin) as adapter:
        with pytest.raises(UpstreamRejected) as caught:
            await adapter.create(submit("gen4.5", "[nocredits] please"), idempotency_key="k")
    assert caught.value.status == 400
    assert caught.value.category is ErrorCategory.INSUFFICIENT_CREDITS
    assert caught.value.code == "INSUFFICIENT_CREDITS"
    assert "enough credits" in caught.value.message


async def test_upstream_validation_error_is_an_invalid_request() -> None:
    # A model this adapter does not know is passed through; Runway's schema refuses it.
    async with simulator() as sim, provider(sim.origin) as adapter:
        with pytest.raises(UpstreamRejected) as caught:
            await adapter.create(submit("gen9_imaginary"), idempotency_key="k")
    assert caught.value.status == 400
    assert caught.value.category is ErrorCategory.INVALID_REQUEST
    assert caught.value.code == "VALIDATION_FAILED"
    assert caught.value.message.startswith(
        "Validation of body failed: model: Invalid discriminator"
    )


async def test_wrong_key_is_refused_and_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with simulator() as sim, provider(sim.origin, api_key="key_wrong_secret") as adapter:
        with pytest.raises(UpstreamRejected) as caught:
            await adapter.get(JobRef(external_id="00000000-0000-0000-0000-000000000000"))
    assert caught.value.status == 401
    assert caught.value.code == "UNAUTHORIZED"
    assert "key_wrong_secret" not in str(caught.value)
    assert "key_wrong_secret" not in caplog.text


async def test_unknown_api_version_is_refused() -> None:
    async with simulator() as sim, provider(sim.origin, api_version="2024-09-13") as adapter:
        with pytest.raises(UpstreamRejected) as caught:
            await adapter.create(submit("gen4.5"), idempotency_key="k")
    assert caught.value.status == 400
    assert "X-Runway-Version" in caught.value.message


async def test_secret_stays_out_of_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with simulator() as sim, provider(sim.origin) as adapter:
        created = await adapter.create(submit("gen4.5"), idempotency_key="k")
        await adapter.get(JobRef(external_id=created.external_id))
    assert "upstream rw POST /v1/text_to_video -> 200" in caplog.text
    assert "upstream rw GET /v1/tasks/" in caplog.text
    assert KEY not in caplog.text


# -- the wire body -------------------------------------------------------------------------


class Recorder:
    """A MockTransport handler that records requests and answers a created task."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, json={"id": "task-1", "estimatedCost": {"credits": 10}})

    def body(self) -> dict[str, Any]:
        (request,) = self.requests
        data: dict[str, Any] = json.loads(request.content)
        return data


@pytest.mark.parametrize(
    ("request_", "path", "body"),
    [
        (
            submit("gen4.5"),
            "/v1/text_to_video",
            # gen4.5 requires ratio and duration: the neutral defaults are sent.
            {
                "model": "gen4.5",
                "promptText": "a heron at dawn",
                "ratio": "1280:720",
                "duration": 5,
            },
        ),
        (
            submit(
                "gen4_turbo",
                images=(ImageInput(url=FIRST),),
                aspect_ratio="9:16",
                duration_seconds=10,
                seed=4294967295,
            ),
            "/v1/image_to_video",
            {
                "model": "gen4_turbo",
                "promptText": "a heron at dawn",
                "promptImage": FIRST,
                "ratio": "720:1280",
                "duration": 10,
                "seed": 4294967295,
            },
        ),
        (
            submit("gen4_turbo", "", images=(ImageInput(url=FIRST),), aspect_ratio="21:9"),
            "/v1/image_to_video",
            {"model": "gen4_turbo", "promptImage": FIRST, "ratio": "1584:672"},
        ),
        (
            submit(
                "veo3.1",
                images=(
                    ImageInput(url=LAST, role=ImageRole.LAST_FRAME),
                    ImageInput(url=FIRST, role=ImageRole.FIRST_FRAME),
                ),
                aspect_ratio="16:9",
                resolution="1080p",
                duration_seconds=8,
                negative_prompt="text overlays",
                audio=True,
            ),
            "/v1/image_to_video",
            {
                "model": "veo3.1",
                "promptText": "a heron at dawn",
                "promptImage": [
                    {"uri": FIRST, "position": "first"},
                    {"uri": LAST, "position": "last"},
                ],
                "ratio": "1920:1080",
                "duration": 8,
                "negativePrompt": "text overlays",
                "audio": True,
            },
        ),
        (
            submit("veo3.1_fast", aspect_ratio="9:16", audio=False),
            "/v1/text_to_video",
            {
                "model": "veo3.1_fast",
                "promptText": "a heron at dawn",
                "ratio": "720:1280",
                "audio": False,
            },
        ),
        (
            submit(
                "gen4.5",
                images=(ImageInput(url=FIRST),),
                extra={"ratio": "960:960", "contentModeration": {"publicFigureThreshold": "low"}},
            ),
            "/v1/image_to_video",
            {
                "model": "gen4.5",
                "promptText": "a heron at dawn",
                "promptImage": FIRST,
                "ratio": "960:960",
                "duration": 5,
                "contentModeration": {"publicFigureThreshold": "low"},
            },
        ),
    ],
    ids=[
        "gen45-text-defaults",
        "turbo-image",
        "turbo-no-prompt",
        "veo-frames",
        "veo-fast",
        "extra",
    ],
)
async def test_wire_body(request_: SubmitRequest, path: str, body: dict[str, Any]) -> None:
    recorder = Recorder()
    async with mocked(recorder) as adapter:
        created = await adapter.create(request_, idempotency_key="attempt-key")
    assert created == JobView(external_id="task-1", status=JobStatus.QUEUED)
    (sent,) = recorder.requests
    assert (sent.method, sent.url.path) == ("POST", path)
    assert recorder.body() == body
    assert list(recorder.body()) == list(body)  # Runway's documented key order
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["x-runway-version"] == API_VERSION
    assert "idempotency-key" not in sent.headers  # Runway has none; it would mislead


async def test_configured_api_version_is_sent() -> None:
    recorder = Recorder()
    async with mocked(recorder, api_version="2025-01-01") as adapter:
        await adapter.create(submit("gen4.5"), idempotency_key="k")
    assert recorder.requests[0].headers["x-runway-version"] == "2025-01-01"


@pytest.mark.parametrize(
    ("request_", "fragment"),
    [
        (submit("gen4.5", extra={"outputFormat": "prores"}), "extra may only set"),
        (submit("gen4.5", extra={"ratio": 1280}), "extra.ratio must be one of"),
        (submit("gen4.5", extra={"ratio": "1920:1080"}), "extra.ratio must be one of"),
        (submit("veo3.1", extra={"contentModeration": {}}), "extra.contentModeration"),
        (
            submit("gen4.5", extra={"contentModeration": {"publicFigureThreshold": "none"}}),
            "extra.contentModeration",
        ),
        (submit("gen4_turbo"), "needs a first-frame image"),
        (
            submit("veo3.1", images=(ImageInput(url=FIRST, role=ImageRole.REFERENCE),)),
            "not a reference image",
        ),
        (
            submit("veo3.1", images=(ImageInput(url=LAST, role=ImageRole.LAST_FRAME),)),
            "needs a first frame",
        ),
        (submit("gen4.5", resolution="1080p"), "cannot render 16:9 at 1080p"),
        (submit("gen4.5", aspect_ratio="1:1"), "from text alone"),
        (submit("veo3.1", aspect_ratio="4:3"), "cannot render 4:3"),
        (submit("veo3.1", duration_seconds=5), "cannot make 5 s; it offers 4, 6, 8"),
        (submit("gen4.5", duration_seconds=2.5), "cannot make 2.5 s"),
        (submit("mystery_model", duration_seconds=7.5), "cannot make 7.5 s"),
        (submit("gen4.5", audio=True), "renders no sound"),
        (submit("gen4_turbo", negative_prompt="x", images=(ImageInput(url=FIRST),)), "negative"),
    ],
)
async def test_refused_before_any_call(request_: SubmitRequest, fragment: str) -> None:
    recorder = Recorder()
    async with mocked(recorder) as adapter:
        with pytest.raises(UpstreamRejected) as caught:
            await adapter.create(request_, idempotency_key="k")
    assert recorder.requests == []
    assert caught.value.category is ErrorCategory.INVALID_REQUEST
    assert caught.value.status == 400
    assert fragment in caught.value.message


# -- reading answers -----------------------------------------------------------------------


def token(exp: int) -> str:
    return jwt.encode(
        {"exp": exp, "bucket": "b"}, "a key that is not ours, 32 bytes long", algorithm="HS256"
    )


def task(status: str, **fields: Any) -> dict[str, Any]:
    return {"id": "task-1", "createdAt": "2026-08-26T06:30:33.796Z", "status": status, **fields}


async def answer_get(body: object, status: int = 200, **headers: str) -> JobView:
    def handler(request: httpx.Request) -> httpx.Response:
        assert (request.method, request.url.path) == ("GET", "/v1/tasks/task-1")
        if isinstance(body, bytes):
            return httpx.Response(status, content=body, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    async with mocked(handler) as adapter:
        return await adapter.get(JobRef(external_id="task-1"))


CREATED_AT = 1787725833  # 2026-08-26T06:30:33Z


@pytest.mark.parametrize(
    ("body", "status", "raw", "progress"),
    [
        (task("PENDING", estimatedCost={"credits": 50}), JobStatus.QUEUED, "PENDING", None),
        (task("THROTTLED", estimatedCost={"credits": 50}), JobStatus.QUEUED, "THROTTLED", None),
        (task("RUNNING", progress=0.29), JobStatus.IN_PROGRESS, "RUNNING", 29),
        (task("RUNNING", progress=0), JobStatus.IN_PROGRESS, "RUNNING", 0),
        (task("RUNNING", progress=1), JobStatus.IN_PROGRESS, "RUNNING", 100),
        (task("RUNNING", progress=42), JobStatus.IN_PROGRESS, "RUNNING", None),
        (task("RUNNING", progress="0.5"), JobStatus.IN_PROGRESS, "RUNNING", None),
        (task("RUNNING"), JobStatus.IN_PROGRESS, "RUNNING", None),
        (task("PAUSED"), None, "PAUSED", None),
        (task("queued"), None, "queued", None),
    ],
)
async def test_status_and_progress(
    body: dict[str, Any], status: JobStatus | None, raw: str, progress: int | None
) -> None:
    view = await answer_get(body)
    assert view == JobView(
        external_id="task-1",
        status=status,
        raw_status=raw,
        progress=progress,
        created_at=CREATED_AT,
    )


async def test_succeeded_reads_urls_expiry_and_cost() -> None:
    signed = f"https://cdn.example.net/x/task-1.mp4?_jwt={token(1_900_000_000)}"
    unsigned = "https://cdn.example.net/x/task-1-b.mp4"
    before = time.time()
    view = await answer_get(
        task(
            "SUCCEEDED", output=[signed, 12, "javascript:alert(1)", unsigned], cost={"credits": 63}
        )
    )
    assert view.status is JobStatus.COMPLETED and view.error is None
    assert view.usage == Usage(cost=63.0, currency="credits")
    first, second = view.videos
    assert (first.url, first.expires_at, first.needs_credentials) == (signed, 1_900_000_000, False)
    assert second.url == unsigned
    assert second.expires_at is not None
    assert before + RESULT_LIFETIME <= second.expires_at <= time.time() + RESULT_LIFETIME


@pytest.mark.parametrize(
    "output", [[], None, ["ftp://cdn.example.net/x.mp4", ""], "https://cdn.example.net/x.mp4"]
)
async def test_succeeded_without_a_video_is_a_failure(output: object) -> None:
    view = await answer_get(task("SUCCEEDED", output=output, cost={"credits": 5}))
    assert view.status is JobStatus.FAILED
    assert view.raw_status == "SUCCEEDED"
    assert view.videos == ()
    assert view.error is not None
    assert (view.error.code, view.error.category) == ("NO_OUTPUT", ErrorCategory.GENERATION_FAILED)


@pytest.mark.parametrize(
    ("fields", "code", "category", "retry"),
    [
        (
            {"failure": "Prompt rejected.", "failureCode": "SAFETY.INPUT.TEXT"},
            "SAFETY.INPUT.TEXT",
            ErrorCategory.CONTENT_POLICY,
            False,
        ),
        (
            {"failure": "Output rejected.", "failureCode": "SAFETY.OUTPUT.VIDEO"},
            "SAFETY.OUTPUT.VIDEO",
            ErrorCategory.CONTENT_POLICY,
            False,
        ),
        (
            {"failure": "x", "failureCode": "INPUT_PREPROCESSING.SAFETY.TEXT"},
            "INPUT_PREPROCESSING.SAFETY.TEXT",
            ErrorCategory.CONTENT_POLICY,
            False,
        ),
        (
            {"failure": "x", "failureCode": "INPUT_PREPROCESSING.INTERNAL"},
            "INPUT_PREPROCESSING.INTERNAL",
            ErrorCategory.PROVIDER_UNAVAILABLE,
            True,
        ),
        (
            {"failure": "x", "failureCode": "ASSET.INVALID"},
            "ASSET.INVALID",
            ErrorCategory.INVALID_REQUEST,
            False,
        ),
        (
            {"failure": "x", "failureCode": "INTERNAL.BAD_OUTPUT.CODE01"},
            "INTERNAL.BAD_OUTPUT.CODE01",
            ErrorCategory.GENERATION_FAILED,
            True,
        ),
        (
            {"failure": "x", "failureCode": "INTERNAL"},
            "INTERNAL",
            ErrorCategory.GENERATION_FAILED,
            True,
        ),
        (
            {"failure": "You do not have enough credits to run this task."},
            "UPSTREAM_FAILED",
            ErrorCategory.INSUFFICIENT_CREDITS,
            False,
        ),
        ({}, "UPSTREAM_FAILED", ErrorCategory.GENERATION_FAILED, True),
        (
            {"failure": "x", "failureCode": "SOMETHING.NEW"},
            "SOMETHING.NEW",
            ErrorCategory.GENERATION_FAILED,
            True,
        ),
    ],
)
async def test_failure_codes(
    fields: dict[str, Any], code: str, category: ErrorCategory, retry: bool
) -> None:
    view = await answer_get(task("FAILED", cost={"credits": 0}, **fields))
    assert view.status is JobStatus.FAILED
    assert view.error is not None
    assert (view.error.code, view.error.category, view.error.worth_retrying) == (
        code,
        category,
        retry,
    )
    assert view.error.message == fields.get("failure", "The Runway task failed.")
    assert view.usage == Usage(cost=0.0, currency="credits")


def test_failure_category_table() -> None:
    assert failure_category("safety.input.image") == (ErrorCategory.CONTENT_POLICY, False)
    assert failure_category("INTERNAL.BAD_OUTPUT.CODE02") == (
        ErrorCategory.GENERATION_FAILED,
        True,
    )
    assert failure_category("INTERNALS") == (ErrorCategory.GENERATION_FAILED, None)


async def test_cancelled_upstream_is_a_cancelled_job_with_a_reason() -> None:
    view = await answer_get(task("CANCELLED", cost={"credits": 0}))
    assert view.status is JobStatus.CANCELLED
    assert view.error is not None
    assert (view.error.code, view.error.category, view.error.worth_retrying) == (
        "CANCELLED",
        ErrorCategory.PROVIDER_UNAVAILABLE,
        False,
    )


@pytest.mark.parametrize(
    "body",
    [
        {"object": "video", "status": "queued", "progress": 0},  # another protocol, no id
        {"code": 0, "data": {"task_id": "x", "task_status": "submitted"}},  # Kling's shape
        {"id": "task-1"},  # no status
        {"id": "task-1", "status": 3},
        {"id": "", "status": "PENDING"},
        {"id": "task\n1", "status": "PENDING"},
        ["task-1"],
        b"<html>gateway</html>",
        b"",
    ],
)
async def test_wrong_shape_is_a_protocol_error(body: object) -> None:
    with pytest.raises(UpstreamProtocolError):
        await answer_get(body)


async def test_create_answer_without_an_id_is_a_protocol_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"task_id": "abc", "estimatedCost": {"credits": 1}})

    async with mocked(handler) as adapter:
        with pytest.raises(UpstreamProtocolError):
            await adapter.create(submit("gen4.5"), idempotency_key="k")


@pytest.mark.parametrize(
    ("status", "headers", "kind", "retry_after"),
    [
        (429, {}, RateLimited, None),
        (429, {"Retry-After": "30"}, RateLimited, 30.0),
        (503, {"Retry-After": "4"}, RateLimited, 4.0),
        (503, {}, UpstreamUnavailable, None),
        (502, {}, UpstreamUnavailable, None),
        (500, {}, UpstreamUnavailable, None),
    ],
)
async def test_transient_statuses(
    status: int, headers: dict[str, str], kind: type[Exception], retry_after: float | None
) -> None:
    with pytest.raises(kind) as caught:
        await answer_get({"error": "busy"}, status, **headers)
    assert type(caught.value) is kind
    if isinstance(caught.value, RateLimited):
        assert caught.value.retry_after == retry_after
        assert caught.value.concurrency is False
    else:
        assert isinstance(caught.value, UpstreamUnavailable)
        assert caught.value.maybe_received is (status == 502)


async def test_task_not_found() -> None:
    with pytest.raises(UpstreamNotFound):
        await answer_get({"error": "Could not find Task"}, 404)


async def test_task_ids_are_path_quoted() -> None:
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.raw_path.decode())
        return httpx.Response(204)

    async with mocked(handler) as adapter:
        await adapter.cancel(JobRef(external_id="a/../b?c"))
    assert paths == ["/v1/tasks/a%2F..%2Fb%3Fc"]


# -- what the adapter declares -------------------------------------------------------------


async def test_declarations() -> None:
    async with provider("http://127.0.0.1:9") as adapter:
        assert adapter.kind == "runway"
        assert adapter.base_url == "http://127.0.0.1:9"
        assert adapter.credential == adapter.config.credential_name()
        assert adapter.credential is not None and KEY not in adapter.credential
        assert adapter.features == Features(cancel=True, content_route=True)
        assert adapter.features.idempotency_key is False
        assert adapter.models == DEFAULT_MODELS
        assert adapter.upstream_model("veo3.1") == "veo3.1"
        assert adapter.upstream_model("sora-2") is None
        assert adapter.result_lifetime == RESULT_LIFETIME == 86400.0
        with pytest.raises(NotImplementedError):
            await adapter.recent_jobs(limit=5)
        with pytest.raises(NotImplementedError):
            await adapter.find_by_client_id("x")
        assert adapter.capabilities("veo3.1") == Capabilities(
            durations=(4.0, 6.0, 8.0),
            aspect_ratios=("16:9", "9:16"),
            resolutions=("720p", "1080p"),
            image_roles=(ImageRole.FIRST_FRAME, ImageRole.LAST_FRAME),
            max_images=2,
            audio=True,
            negative_prompt=True,
            seed=True,
        )
        assert adapter.capabilities("gen4_turbo") == Capabilities(
            durations=(2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0),
            aspect_ratios=("16:9", "9:16", "4:3", "3:4", "1:1", "21:9"),
            resolutions=("720p",),
            image_roles=(ImageRole.FIRST_FRAME,),
            max_images=1,
            audio=False,
            negative_prompt=False,
            seed=True,
        )
        unknown = adapter.capabilities("gen9_imaginary")
        assert (unknown.durations, unknown.aspect_ratios, unknown.resolutions) == (
            None,
            None,
            None,
        )


async def test_configured_models_and_registry() -> None:
    config = ProviderConfig(
        name="rw",
        kind="runway",
        base_url="https://api.dev.runwayml.com",
        api_key_env="RUNWAYML_API_SECRET",
        models={"fast": "veo3.1_fast"},
        idempotency=False,
    )
    adapter = registry.build(config)
    try:
        assert isinstance(adapter, RunwayProvider)
        assert adapter.models == {"fast": "veo3.1_fast"}
        assert adapter.credential == config.credential_name()
        assert adapter.credential is not None and "RUNWAYML_API_SECRET" in adapter.credential
    finally:
        await adapter.aclose()
