"""The Kling adapter: its wire body, its reading of Kling's answers and errors, its JWT,
and its behaviour against the Kling simulator running in-process."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import jwt
import pytest

from vidgate.config import ConfigError, ProviderConfig
from vidgate.domain.capabilities import Capabilities
from vidgate.domain.request import ImageInput, ImageRole, VideoParams
from vidgate.providers.base import (
    ErrorCategory,
    Features,
    JobError,
    JobRef,
    JobStatus,
    JobView,
    RateLimited,
    ResultVideo,
    SubmitRequest,
    UpstreamNotFound,
    UpstreamProtocolError,
    UpstreamRejected,
    UpstreamUnavailable,
    Usage,
)
from vidgate.providers.kling import DEFAULT_MODELS, RESULT_LIFETIME, KlingProvider
from vidgate.simulator.config import SimConfig
from vidgate.simulator.server import RunningSimulator, start

# At least 32 bytes: shorter HMAC keys make PyJWT warn (and warnings are errors here).
AK = "ak-unit-test-access-key-0123456789"
SK = "sk-unit-test-secret-key-0123456789"
BASE = "https://api-singapore.klingai.com"
NOW = 1_790_000_000.0

Handler = Callable[[httpx.Request], httpx.Response]


def make_provider(
    handler: Handler | None = None,
    *,
    base_url: str = BASE,
    clock: Callable[[], float] = time.time,
    secret: str = SK,
    **config: Any,
) -> KlingProvider:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler)) if handler else None
    settings = ProviderConfig(
        name="kling", kind="kling", base_url=base_url, access_key=AK, secret_key=secret, **config
    )
    return KlingProvider(settings, client=client, clock=clock)


class Recorder:
    """A MockTransport handler that answers one fixed response and keeps the requests."""

    def __init__(self, status: int = 200, body: object = None, **kwargs: Any) -> None:
        self.requests: list[httpx.Request] = []
        self.status = status
        self.body = body if body is not None else created_answer()
        self.kwargs = kwargs

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if isinstance(self.body, bytes):
            return httpx.Response(self.status, content=self.body, **self.kwargs)
        return httpx.Response(self.status, json=self.body, **self.kwargs)

    def sent(self) -> dict[str, Any]:
        assert len(self.requests) == 1
        body: dict[str, Any] = json.loads(self.requests[0].content)
        return body


def created_answer(task_id: str = "866889456698785798") -> dict[str, Any]:
    return {
        "code": 0,
        "message": "SUCCEED",
        "request_id": "3d67a2e2-cec7-4571-ba0d-556668ff7e82",
        "data": {
            "task_id": task_id,
            "task_status": "submitted",
            "task_info": {"external_task_id": "attempt-1"},
            "created_at": 1774711071284,
            "updated_at": 1774711071284,
        },
    }


def task_answer(**data: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "task_id": "866889456698785798",
        "task_status": "processing",
        "task_status_msg": "",
        "task_info": {"external_task_id": "attempt-1"},
        "created_at": 1774711071284,
        "updated_at": 1774711075000,
    }
    base.update(data)
    return {"code": 0, "message": "SUCCEED", "request_id": "r-1", "data": base}


def error_answer(code: int, message: str = "refused") -> dict[str, Any]:
    return {"code": code, "message": message, "request_id": "r-err"}


def submit(prompt: str = "a heron", model: str = "kling-v2-6", **params: Any) -> SubmitRequest:
    callback = params.pop("callback_url", None)
    return SubmitRequest(
        prompt=prompt, model=model, params=VideoParams(**params), callback_url=callback
    )


# -- the request ---------------------------------------------------------------------------


async def test_text_request_maps_every_neutral_field() -> None:
    recorder = Recorder()
    provider = make_provider(recorder)
    view = await provider.create(
        submit(
            duration_seconds=10.0,
            aspect_ratio="9:16",
            resolution="1080p",
            negative_prompt="blur",
            audio=True,
            callback_url="https://hooks.example/kling",
            extra={"cfg_scale": 0.5, "camera_control": {"type": "forward_up"}},
        ),
        idempotency_key="attempt-1",
    )
    request = recorder.requests[0]
    assert (request.method, request.url.path) == ("POST", "/v1/videos/text2video")
    assert recorder.sent() == {
        "model_name": "kling-v2-6",
        "prompt": "a heron",
        "negative_prompt": "blur",
        "duration": "10",
        "sound": "on",
        "mode": "pro",
        "aspect_ratio": "9:16",
        "callback_url": "https://hooks.example/kling",
        "external_task_id": "attempt-1",
        "cfg_scale": 0.5,
        "camera_control": {"type": "forward_up"},
    }
    assert view == JobView(
        external_id="866889456698785798",
        status=JobStatus.QUEUED,
        raw_status="submitted",
        poll_handle="text2video",
        created_at=1774711071,
    )


async def test_frames_go_to_image2video_and_a_data_url_becomes_bare_base64() -> None:
    recorder = Recorder()
    provider = make_provider(recorder)
    frames = (
        ImageInput(url="data:image/png;base64,iVBORw0KGgo=", role=ImageRole.FIRST_FRAME),
        ImageInput(url="https://cdn.example/end.jpg", role=ImageRole.LAST_FRAME),
    )
    view = await provider.create(
        submit(prompt="", model="kling-v2-5-turbo", images=frames, aspect_ratio="16:9"),
        idempotency_key="attempt-2",
    )
    assert recorder.requests[0].url.path == "/v1/videos/image2video"
    # No prompt (optional there) and no aspect_ratio: the frame's own shape decides.
    assert recorder.sent() == {
        "model_name": "kling-v2-5-turbo",
        "image": "iVBORw0KGgo=",
        "image_tail": "https://cdn.example/end.jpg",
        "external_task_id": "attempt-2",
    }
    assert view.poll_handle == "image2video"


@pytest.mark.parametrize(
    ("model", "params", "expected"),
    [
        ("kling-v2-6", {"resolution": "720p"}, {"mode": "std"}),
        ("kling-v3", {"resolution": "1080p"}, {"mode": "pro"}),
        ("kling-v2-1-master", {"resolution": "1080p"}, {}),  # one resolution, no mode
        ("kling-v2-6", {"audio": True}, {"sound": "on", "mode": "pro"}),  # sound needs pro
        ("kling-v3", {"audio": True, "resolution": "720p"}, {"sound": "on", "mode": "std"}),
        ("kling-v3", {"audio": False}, {"sound": "off"}),
        ("kling-v2-5-turbo", {"audio": False}, {}),  # no sound field on a silent model
        ("kling-v2-6", {"extra": {"mode": "std"}}, {"mode": "std"}),
        ("kling-v3", {"duration_seconds": 7.0}, {"duration": "7"}),
    ],
)
async def test_resolution_audio_and_duration_on_the_wire(
    model: str, params: dict[str, Any], expected: dict[str, Any]
) -> None:
    recorder = Recorder()
    await make_provider(recorder).create(submit(model=model, **params), idempotency_key="k")
    body = recorder.sent()
    assert body == {
        "model_name": model,
        "prompt": "a heron",
        **expected,
        "external_task_id": "k",
    }


@pytest.mark.parametrize(
    ("model", "params", "fragment"),
    [
        ("kling-v2-6", {"extra": {"fps": 30}}, "unknown Kling parameter 'fps'"),
        ("kling-v2-6", {"extra": {"prompt": "other"}}, "unknown Kling parameter 'prompt'"),
        ("kling-v2-6", {"extra": {"cfg_scale": "high"}}, "'cfg_scale' must be a number in [0, 1]"),
        ("kling-v2-6", {"extra": {"cfg_scale": 1.5}}, "'cfg_scale' must be a number in [0, 1]"),
        ("kling-v2-6", {"extra": {"mode": "ultra"}}, '\'mode\' must be "std" or "pro"'),
        ("kling-v2-6", {"extra": {"multi_shot": "yes"}}, "'multi_shot' must be a boolean"),
        ("kling-v2-6", {"extra": {"static_mask": "https://m/x.png"}}, "only applies to image2v"),
        ("kling-v2-6", {"seed": 7}, "no seed parameter"),
        (
            "kling-v2-6",
            {"images": (ImageInput(url="https://a/b.png", role=ImageRole.REFERENCE),)},
            "not reference images",
        ),
        (
            "kling-v2-6",
            {"images": (ImageInput(url="https://a/1.png"), ImageInput(url="https://a/2.png"))},
            "at most one first frame",
        ),
        ("kling-v2-6", {"images": (ImageInput(url="data:image/png,xyz"),)}, "Base64-encoded"),
        ("kling-v2-6", {"duration_seconds": 7.5}, "whole seconds, not 7.5"),
        ("kling-v2-6", {"resolution": "4k"}, "renders 720p or 1080p, not 4k"),
        ("kling-v2-master", {"resolution": "1080p"}, "renders 720p only"),
        ("kling-v2-5-turbo", {"audio": True}, "cannot generate sound"),
        ("kling-v2-6", {"audio": True, "resolution": "720p"}, "sound only in pro mode"),
        (
            "kling-v2-6",
            {"resolution": "720p", "extra": {"mode": "pro"}},
            'mode "pro" contradicts resolution 720p',
        ),
    ],
)
async def test_refused_before_any_http_call(
    model: str, params: dict[str, Any], fragment: str
) -> None:
    recorder = Recorder()
    with pytest.raises(UpstreamRejected) as caught:
        await make_provider(recorder).create(submit(model=model, **params), idempotency_key="k")
    assert recorder.requests == []
    assert caught.value.category is ErrorCategory.INVALID_REQUEST
    assert caught.value.status == 400
    assert fragment in caught.value.message


# -- statuses, results, failures -----------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("submitted", JobStatus.QUEUED),
        ("processing", JobStatus.IN_PROGRESS),
        ("failed", JobStatus.FAILED),
        ("paused", None),  # a word we do not know: not terminal, kept raw
        (7, None),
    ],
)
async def test_status_words(word: object, status: JobStatus | None) -> None:
    provider = make_provider(Recorder(body=task_answer(task_status=word)))
    view = await provider.get(JobRef(external_id="866889456698785798", poll_handle="text2video"))
    assert view.status is status
    assert view.raw_status == (word if isinstance(word, str) else None)
    assert view.progress is None  # Kling reports none


async def test_a_succeeded_task_gives_its_video_with_the_30_day_lifetime() -> None:
    answer = task_answer(
        task_status="succeed",
        updated_at=1774711100500,
        final_unit_deduction="3.5",
        task_result={
            "videos": [{"id": "v-1", "url": "https://cdn.klingai.com/v/1.mp4", "duration": "5.1"}]
        },
    )
    provider = make_provider(Recorder(body=answer))
    view = await provider.get(JobRef(external_id="866889456698785798", poll_handle="text2video"))
    assert view == JobView(
        external_id="866889456698785798",
        status=JobStatus.COMPLETED,
        raw_status="succeed",
        videos=(
            ResultVideo(
                url="https://cdn.klingai.com/v/1.mp4",
                expires_at=1774711100 + RESULT_LIFETIME,
                needs_credentials=False,
            ),
        ),
        usage=Usage(seconds=5.1, cost=3.5, currency="units"),
        poll_handle="text2video",
        created_at=1774711071,
    )
    assert RESULT_LIFETIME == 30 * 86400


@pytest.mark.parametrize(
    "result",
    [{"videos": []}, {}, None, {"videos": [{"id": "v-1", "url": ""}]}, {"videos": "x"}],
)
async def test_succeed_without_a_video_is_a_failure(result: object) -> None:
    provider = make_provider(Recorder(body=task_answer(task_status="succeed", task_result=result)))
    view = await provider.get(JobRef(external_id="866889456698785798", poll_handle="text2video"))
    assert view.status is JobStatus.FAILED
    assert view.raw_status == "succeed"
    assert view.videos == ()
    assert view.error == JobError(
        code="succeed_without_video",
        message="Kling reported success but returned no video.",
        category=ErrorCategory.GENERATION_FAILED,
    )


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (
            "The content triggered the platform's content security policy",
            JobError(
                code="1301",
                message="The content triggered the platform's content security policy",
                category=ErrorCategory.CONTENT_POLICY,
            ),
        ),
        (
            "Failure to pass the risk control system",
            JobError(
                code="1301",
                message="Failure to pass the risk control system",
                category=ErrorCategory.CONTENT_POLICY,
            ),
        ),
        (
            "Image pixel is invalid",
            JobError(
                code="failed",
                message="Image pixel is invalid",
                category=ErrorCategory.GENERATION_FAILED,
            ),
        ),
        (
            "",
            JobError(
                code="failed",
                message="The Kling task failed.",
                category=ErrorCategory.GENERATION_FAILED,
            ),
        ),
    ],
)
async def test_failed_tasks(message: str, error: JobError) -> None:
    answer = task_answer(task_status="failed", task_status_msg=message, task_result={})
    provider = make_provider(Recorder(body=answer))
    view = await provider.get(JobRef(external_id="866889456698785798", poll_handle="text2video"))
    assert view.status is JobStatus.FAILED
    assert view.error == error
    assert view.error.worth_retrying is (error.category is ErrorCategory.GENERATION_FAILED)


# -- errors --------------------------------------------------------------------------------


async def test_rate_limit_1302_with_retry_after() -> None:
    recorder = Recorder(429, error_answer(1302), headers={"Retry-After": "7"})
    with pytest.raises(RateLimited) as caught:
        await make_provider(recorder).create(submit(), idempotency_key="k")
    assert (caught.value.retry_after, caught.value.concurrency) == (7.0, False)
    assert caught.value.maybe_received is False


async def test_concurrency_1303_is_a_wait_for_running_tasks() -> None:
    recorder = Recorder(429, error_answer(1303, "parallel task over resource pack limit"))
    with pytest.raises(RateLimited) as caught:
        await make_provider(recorder).create(submit(), idempotency_key="k")
    assert (caught.value.retry_after, caught.value.concurrency) == (None, True)
    assert "parallel task over resource pack limit" in caught.value.message


@pytest.mark.parametrize(
    ("status", "code", "category"),
    [
        (429, 1100, ErrorCategory.INSUFFICIENT_CREDITS),  # 429, yet not a rate limit
        (429, 1101, ErrorCategory.INSUFFICIENT_CREDITS),
        (429, 1102, ErrorCategory.INSUFFICIENT_CREDITS),
        (400, 1300, ErrorCategory.CONTENT_POLICY),
        (400, 1301, ErrorCategory.CONTENT_POLICY),
        (400, 1200, ErrorCategory.INVALID_REQUEST),
        (400, 1201, ErrorCategory.INVALID_REQUEST),
        (404, 1202, ErrorCategory.INVALID_REQUEST),
        (404, 1203, ErrorCategory.INVALID_REQUEST),  # an unknown model at create
        (401, 1000, ErrorCategory.PROVIDER_UNAVAILABLE),
        (401, 1004, ErrorCategory.PROVIDER_UNAVAILABLE),
        (403, 1103, ErrorCategory.PROVIDER_UNAVAILABLE),
        (429, 1304, ErrorCategory.PROVIDER_UNAVAILABLE),
        (200, 1201, ErrorCategory.INVALID_REQUEST),  # an error code under HTTP 200
    ],
)
async def test_refusals_by_service_code(status: int, code: int, category: ErrorCategory) -> None:
    recorder = Recorder(status, error_answer(code, "kling says no"))
    with pytest.raises(UpstreamRejected) as caught:
        await make_provider(recorder).create(submit(), idempotency_key="k")
    assert type(caught.value) is UpstreamRejected
    assert caught.value.category is category
    assert caught.value.code == str(code)
    assert caught.value.status == (status if status >= 400 else 400)
    assert "kling says no" in caught.value.message


@pytest.mark.parametrize(
    ("status", "body", "maybe_received"),
    [
        (500, error_answer(5000), False),
        (503, error_answer(5001), False),
        (504, error_answer(5002), True),
        (502, b"<html>bad gateway</html>", True),
        (500, b"", False),
    ],
)
async def test_server_errors_are_transient(status: int, body: object, maybe_received: bool) -> None:
    with pytest.raises(UpstreamUnavailable) as caught:
        await make_provider(Recorder(status, body)).create(submit(), idempotency_key="k")
    assert type(caught.value) is UpstreamUnavailable
    assert caught.value.maybe_received is maybe_received


async def test_an_unknown_task_is_not_found_in_its_family() -> None:
    recorder = Recorder(404, error_answer(1203, "task does not exist"))
    with pytest.raises(UpstreamNotFound):
        await make_provider(recorder).get(JobRef(external_id="1", poll_handle="image2video"))
    assert [r.url.path for r in recorder.requests] == ["/v1/videos/image2video/1"]


async def test_a_job_without_its_family_is_looked_for_in_both() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if "text2video" in request.url.path:
            return httpx.Response(404, json=error_answer(1203))
        return httpx.Response(200, json=task_answer())

    view = await make_provider(handler).get(JobRef(external_id="866889456698785798"))
    assert seen == [
        "/v1/videos/text2video/866889456698785798",
        "/v1/videos/image2video/866889456698785798",
    ]
    assert (view.status, view.poll_handle) == (JobStatus.IN_PROGRESS, "image2video")


@pytest.mark.parametrize(
    "body",
    [
        # Another protocol's JSON (OpenAI's video object).
        {"id": "video_1", "object": "video", "status": "completed", "progress": 100},
        {"code": 0, "message": "SUCCEED", "data": {"task_status": "submitted"}},  # no task_id
        {"code": 0, "message": "SUCCEED", "data": {"task_id": 866889456698785798}},
        {"code": 0, "message": "SUCCEED", "data": {"task_id": "  "}},
        {"code": 0, "message": "SUCCEED", "data": ["x"]},
        ["not", "an", "object"],
        b"<html>upstream temporarily garbled</html>",
    ],
)
async def test_wrong_shapes_are_protocol_errors(body: object) -> None:
    for call in ("create", "get"):
        provider = make_provider(Recorder(200, body))
        with pytest.raises(UpstreamProtocolError):
            if call == "create":
                await provider.create(submit(), idempotency_key="k")
            else:
                await provider.get(JobRef(external_id="1", poll_handle="text2video"))


# -- credentials ---------------------------------------------------------------------------


async def test_the_jwt_is_kling_s_recipe_and_renewed_before_expiry() -> None:
    now = [NOW]
    recorder = Recorder(body=task_answer())
    provider = make_provider(recorder, clock=lambda: now[0])
    ref = JobRef(external_id="866889456698785798", poll_handle="text2video")

    def token(index: int) -> str:
        scheme, _, value = recorder.requests[index].headers["authorization"].partition(" ")
        assert scheme == "Bearer"
        return value

    await provider.get(ref)
    first = token(0)
    assert jwt.get_unverified_header(first) == {"alg": "HS256", "typ": "JWT"}
    claims = jwt.decode(first, SK, algorithms=["HS256"], options={"verify_exp": False})
    assert claims == {"iss": AK, "exp": int(NOW) + 1800, "nbf": int(NOW) - 5}
    now[0] = NOW + 1499  # 301 s left: still good
    await provider.get(ref)
    assert token(1) == first
    now[0] = NOW + 1500  # 300 s left: renewed before it can expire in flight
    await provider.get(ref)
    renewed = jwt.decode(token(2), SK, algorithms=["HS256"], options={"verify_exp": False})
    assert renewed == {"iss": AK, "exp": int(NOW) + 3300, "nbf": int(NOW) + 1495}


async def test_secrets_stay_out_of_errors_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    recorder = Recorder(401, error_answer(1002, "Authorization is invalid"))
    with pytest.raises(UpstreamRejected) as caught:
        await make_provider(recorder).create(submit(), idempotency_key="k")
    token = recorder.requests[0].headers["authorization"].partition(" ")[2]
    for text in (str(caught.value), caught.value.message, caplog.text):
        assert SK not in text
        assert token not in text
    assert "Authorization is invalid" in caught.value.message


def test_both_keys_are_required() -> None:
    with pytest.raises(ConfigError, match="needs access_key and secret_key"):
        KlingProvider(ProviderConfig(name="k", kind="kling", base_url=BASE, access_key=AK))


# -- declarations --------------------------------------------------------------------------


def test_declarations() -> None:
    provider = make_provider()
    assert provider.kind == "kling"
    assert provider.features == Features(client_id=True, callbacks=True)
    assert provider.models == DEFAULT_MODELS
    assert provider.upstream_model("kling-v3") == "kling-v3"
    assert provider.upstream_model("sora-2") is None
    assert provider.credential == "access_key=inline;secret_key=inline"
    assert provider.result_lifetime == 30 * 86400
    assert provider.capabilities("kling-v3") == Capabilities(
        durations=tuple(float(s) for s in range(3, 16)),
        aspect_ratios=("16:9", "9:16", "1:1"),
        resolutions=("720p", "1080p"),
        image_roles=(ImageRole.FIRST_FRAME, ImageRole.LAST_FRAME),
        max_images=2,
        audio=True,
        seed=False,
    )
    assert provider.capabilities("kling-v2-1-master") == Capabilities(
        durations=(5.0, 10.0),
        aspect_ratios=("16:9", "9:16", "1:1"),
        resolutions=("1080p",),
        image_roles=(ImageRole.FIRST_FRAME,),
        max_images=1,
        audio=False,
        seed=False,
    )
    mapped = make_provider(models={"fast": "kling-v2-5-turbo"})
    assert mapped.models == {"fast": "kling-v2-5-turbo"}


async def test_no_cancel_no_listing_no_content_route() -> None:
    provider = make_provider(Recorder())
    ref = JobRef(external_id="1", poll_handle="text2video")
    with pytest.raises(NotImplementedError):
        await provider.cancel(ref)
    with pytest.raises(NotImplementedError):
        await provider.recent_jobs(limit=10)
    with pytest.raises(NotImplementedError):
        await provider.open_content(ref)


# -- against the simulator -----------------------------------------------------------------


@pytest.fixture
async def simulator() -> AsyncIterator[RunningSimulator]:
    running = await start(
        SimConfig(protocol="kling", prefix="", api_key=f"{AK}:{SK}", job_seconds=1.0)
    )
    yield running
    await running.stop()


@pytest.fixture
async def kling(simulator: RunningSimulator) -> AsyncIterator[KlingProvider]:
    provider = make_provider(base_url=simulator.base_url)
    yield provider
    await provider.aclose()


async def settle(provider: KlingProvider, view: JobView) -> JobView:
    deadline = time.monotonic() + 5
    ref = JobRef(external_id=view.external_id, poll_handle=view.poll_handle)
    while view.status in (JobStatus.QUEUED, JobStatus.IN_PROGRESS):
        assert time.monotonic() < deadline, view
        await asyncio.sleep(0.1)
        view = await provider.get(ref)
    return view


async def test_lifecycle_against_the_simulator(
    simulator: RunningSimulator, kling: KlingProvider
) -> None:
    provider = kling
    created = await provider.create(
        submit(duration_seconds=10.0, resolution="1080p", audio=True), idempotency_key="life-1"
    )
    assert (created.status, created.poll_handle) == (JobStatus.QUEUED, "text2video")
    done = await settle(provider, created)
    assert done.status is JobStatus.COMPLETED
    assert done.usage == Usage(seconds=10.0, cost=7.0, currency="units")
    (video,) = done.videos
    assert video.url is not None and video.url.startswith(simulator.origin + "/bs2/")
    assert video.needs_credentials is False
    stream = await provider.open_content(JobRef(external_id=done.external_id), url=video.url)
    try:
        data = b"".join([chunk async for chunk in stream.chunks])
    finally:
        await stream.aclose()
    assert stream.status == 200
    assert data[4:8] == b"ftyp"


@pytest.mark.parametrize(
    ("prompt", "error"),
    [
        (
            "[fail] a heron",
            JobError(
                code="1301",
                message="The content triggered the platform's content security policy",
                category=ErrorCategory.CONTENT_POLICY,
            ),
        ),
        (
            "[error] a heron",
            JobError(
                code="failed",
                message="Video generation failed due to an internal error, please try again",
                category=ErrorCategory.GENERATION_FAILED,
            ),
        ),
    ],
)
async def test_failures_from_the_simulator(
    kling: KlingProvider, prompt: str, error: JobError
) -> None:
    provider = kling
    done = await settle(provider, await provider.create(submit(prompt), idempotency_key=prompt))
    assert done.status is JobStatus.FAILED
    assert done.error == error


async def test_create_time_refusals_from_the_simulator(
    simulator: RunningSimulator, kling: KlingProvider
) -> None:
    provider = kling
    with pytest.raises(UpstreamRejected) as blocked:
        await provider.create(submit("[blocked] a heron"), idempotency_key="b")
    assert (blocked.value.category, blocked.value.code) == (ErrorCategory.CONTENT_POLICY, "1301")
    with pytest.raises(RateLimited) as busy:
        await provider.create(submit("[concurrency] a heron"), idempotency_key="c")
    assert busy.value.concurrency is True
    async with httpx.AsyncClient() as client:
        await client.post(f"{simulator.origin}/_sim/faults", json={"error_429_rate": 1.0})
    with pytest.raises(RateLimited) as limited:
        await provider.create(submit(), idempotency_key="r")
    assert (limited.value.concurrency, limited.value.retry_after) == (False, 1.0)


async def test_wrong_secret_is_refused_by_the_simulator(simulator: RunningSimulator) -> None:
    provider = make_provider(base_url=simulator.base_url, secret="not-the-secret-key-0123456789abc")
    try:
        with pytest.raises(UpstreamRejected) as caught:
            await provider.create(submit(), idempotency_key="k")
    finally:
        await provider.aclose()
    assert (caught.value.status, caught.value.code) == (401, "1000")
    assert caught.value.category is ErrorCategory.PROVIDER_UNAVAILABLE


async def test_find_by_client_id(kling: KlingProvider) -> None:
    provider = kling
    text = await provider.create(submit(), idempotency_key="attempt-text")
    frame = ImageInput(url="https://cdn.example/first.jpg")
    image = await provider.create(submit(images=(frame,)), idempotency_key="attempt-image")
    found_text = await provider.find_by_client_id("attempt-text")
    found_image = await provider.find_by_client_id("attempt-image")
    assert found_text is not None and found_image is not None
    assert (found_text.external_id, found_text.poll_handle) == (text.external_id, "text2video")
    assert (found_image.external_id, found_image.poll_handle) == (image.external_id, "image2video")
    assert await provider.find_by_client_id("attempt-never-sent") is None
    # A job bound without its family is still found (in the second family).
    again = await provider.get(JobRef(external_id=image.external_id))
    assert again.external_id == image.external_id


async def test_an_expired_result_url_is_gone() -> None:
    simulator = await start(
        SimConfig(
            protocol="kling",
            prefix="",
            api_key=f"{AK}:{SK}",
            job_seconds=0.5,
            expires_after_seconds=0.5,
        )
    )
    provider = make_provider(base_url=simulator.base_url)
    try:
        done = await settle(provider, await provider.create(submit(), idempotency_key="x"))
        await asyncio.sleep(0.6)
        url = done.videos[0].url
        with pytest.raises(UpstreamNotFound):
            await provider.open_content(JobRef(external_id=done.external_id), url=url)
    finally:
        await provider.aclose()
        await simulator.stop()
