"""The MiniMax (video API v1) adapter: against the simulator speaking MiniMax in-process,
and against scripted answers (``httpx.MockTransport``) for the edges the simulator does
not produce."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from vidgate.config import ProviderConfig
from vidgate.domain.request import ImageInput, ImageRole, VideoParams
from vidgate.providers import minimax
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
from vidgate.simulator.config import SimConfig
from vidgate.simulator.server import RunningSimulator, start

KEY = "sk-api-unit-secret-0123456789"
BASE = "https://api.minimax.io"
OK = {"status_code": 0, "status_msg": "success"}


def config(base_url: str = BASE, **options: Any) -> ProviderConfig:
    values: dict[str, Any] = {"name": "hailuo", "kind": "minimax", "api_key": KEY}
    values.update(options)
    return ProviderConfig(base_url=base_url, idempotency=False, **values)


def submit(
    prompt: str = "a heron lands on a pier", model: str = "MiniMax-Hailuo-2.3", **params: Any
) -> SubmitRequest:
    return SubmitRequest(prompt=prompt, model=model, params=VideoParams(**params))


# -- against the simulator --------------------------------------------------------------


@pytest.fixture
async def simulator() -> AsyncIterator[RunningSimulator]:
    sim = await start(SimConfig(protocol="minimax", prefix="", job_seconds=1.0, api_key=KEY))
    yield sim
    await sim.stop()


@pytest.fixture
async def provider(simulator: RunningSimulator) -> AsyncIterator[minimax.MiniMaxProvider]:
    adapter = minimax.MiniMaxProvider(config(simulator.base_url))
    yield adapter
    await adapter.aclose()


async def follow(
    provider: minimax.MiniMaxProvider, ref: JobRef, within: float = 10.0
) -> tuple[JobView, list[JobView]]:
    """Poll until a terminal status; every view seen on the way."""
    seen: list[JobView] = []
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        view = await provider.get(ref)
        seen.append(view)
        if view.status in (JobStatus.COMPLETED, JobStatus.FAILED):
            return view, seen
        await asyncio.sleep(0.03)
    raise AssertionError(f"not finished: {seen[-1]}")


async def test_a_task_completes_with_a_playable_url_that_carries_its_expiry(
    provider: minimax.MiniMaxProvider, simulator: RunningSimulator
) -> None:
    created = await provider.create(submit(), idempotency_key="attempt-1")
    assert created == JobView(external_id=created.external_id, status=JobStatus.QUEUED)
    assert created.external_id.isdigit() and len(created.external_id) == 15

    done, seen = await follow(provider, JobRef(external_id=created.external_id))

    words = [view.raw_status for view in seen]
    assert set(words) <= {"Preparing", "Queueing", "Processing", "Success"}
    assert "Processing" in words and words[-1] == "Success"
    expected = {
        "Preparing": JobStatus.QUEUED,
        "Queueing": JobStatus.QUEUED,
        "Processing": JobStatus.IN_PROGRESS,
        "Success": JobStatus.COMPLETED,
    }
    assert all(view.status is expected[view.raw_status or ""] for view in seen)
    assert all(view.progress is None for view in seen)  # MiniMax reports none
    assert done.usage == Usage(resolution="1366x768")  # 768P, the default
    assert len(done.videos) == 1
    video = done.videos[0]
    assert video.url is not None
    assert video.url.startswith(f"{simulator.origin}/minimax-cdn/")
    assert video.needs_credentials is False
    # The signed URL's own expiry: the simulator's default lifetime from now.
    assert video.expires_at is not None
    assert abs(video.expires_at - (time.time() + simulator.config.expires_after_seconds)) < 5

    stream = await provider.open_content(JobRef(external_id=done.external_id), url=video.url)
    try:
        body = b"".join([chunk async for chunk in stream.chunks])
    finally:
        await stream.aclose()
    assert stream.status == 200
    assert stream.headers["content-type"] == "video/mp4"
    assert body[4:8] == b"ftyp"


async def test_open_content_without_or_with_a_dead_url_asks_for_a_fresh_one(
    provider: minimax.MiniMaxProvider,
) -> None:
    created = await provider.create(submit(), idempotency_key="k")
    done, _ = await follow(provider, JobRef(external_id=created.external_id))
    ref = JobRef(external_id=done.external_id)
    url = done.videos[0].url
    assert url is not None
    tampered = url.replace("Signature=", "Signature=0")
    for given in (None, tampered):
        stream = await provider.open_content(ref, url=given, range_header="bytes=0-7")
        try:
            head = b"".join([chunk async for chunk in stream.chunks])
        finally:
            await stream.aclose()
        assert stream.status == 206
        assert head[4:8] == b"ftyp" and len(head) == 8


async def test_fail_trigger_is_a_content_policy_failure(
    provider: minimax.MiniMaxProvider,
) -> None:
    created = await provider.create(submit("a heron [fail]"), idempotency_key="k")
    done, _ = await follow(provider, JobRef(external_id=created.external_id))
    assert done.status is JobStatus.FAILED
    assert done.raw_status == "Fail"
    assert done.videos == ()
    assert done.error is not None
    assert (done.error.code, done.error.message, done.error.category) == (
        "1027",
        "output new_sensitive",
        ErrorCategory.CONTENT_POLICY,
    )
    assert done.error.worth_retrying is False


async def test_error_trigger_is_a_retryable_generation_failure(
    provider: minimax.MiniMaxProvider,
) -> None:
    created = await provider.create(submit("a heron [error]"), idempotency_key="k")
    done, _ = await follow(provider, JobRef(external_id=created.external_id))
    assert done.status is JobStatus.FAILED
    assert done.error is not None
    assert (done.error.code, done.error.category) == ("1024", ErrorCategory.GENERATION_FAILED)
    assert done.error.worth_retrying is True


async def test_sensitive_prompt_is_refused_at_creation(
    provider: minimax.MiniMaxProvider, simulator: RunningSimulator
) -> None:
    with pytest.raises(UpstreamRejected) as caught:
        await provider.create(submit("a heron [sensitive]"), idempotency_key="k")
    assert (caught.value.code, caught.value.category) == ("1026", ErrorCategory.CONTENT_POLICY)
    assert "input new_sensitive" in caught.value.message
    assert simulator.stats()["jobsCreated"] == 0


async def test_documented_combination_limits_come_back_as_invalid_params(
    provider: minimax.MiniMaxProvider,
) -> None:
    with pytest.raises(UpstreamRejected) as caught:
        await provider.create(submit(duration_seconds=10, resolution="1080p"), idempotency_key="k")
    assert (caught.value.code, caught.value.category) == ("2013", ErrorCategory.INVALID_REQUEST)
    assert "1080P" in caught.value.message


async def test_a_wrong_key_is_refused_without_echoing_it(simulator: RunningSimulator) -> None:
    adapter = minimax.MiniMaxProvider(config(simulator.base_url, api_key="sk-api-wrong-key-42"))
    try:
        with pytest.raises(UpstreamRejected) as caught:
            await adapter.create(submit(), idempotency_key="k")
    finally:
        await adapter.aclose()
    assert caught.value.status == 401
    assert (caught.value.code, caught.value.category) == (
        "1004",
        ErrorCategory.PROVIDER_UNAVAILABLE,
    )
    assert "login fail" in caught.value.message
    assert "sk-api-wrong-key-42" not in str(caught.value)


async def test_injected_rate_limit_is_rate_limited_then_the_task_goes_through(
    provider: minimax.MiniMaxProvider, simulator: RunningSimulator
) -> None:
    simulator.state.update_runtime({"error_429_rate": 1.0})
    with pytest.raises(RateLimited) as caught:
        await provider.create(submit(), idempotency_key="k")
    assert (caught.value.retry_after, caught.value.concurrency) == (None, False)
    assert caught.value.maybe_received is False
    simulator.state.update_runtime({"error_429_rate": 0.0})
    created = await provider.create(submit(), idempotency_key="k")
    done, _ = await follow(provider, JobRef(external_id=created.external_id))
    assert done.status is JobStatus.COMPLETED


async def test_an_unknown_task_is_not_found(provider: minimax.MiniMaxProvider) -> None:
    with pytest.raises(UpstreamNotFound):
        await provider.get(JobRef(external_id="123456789012345"))


# -- scripted answers -------------------------------------------------------------------


Handler = Callable[[httpx.Request], httpx.Response]


class Scripted:
    """An adapter whose upstream is a function; every request it sent is kept."""

    def __init__(self, handler: Handler, **options: Any) -> None:
        self.requests: list[httpx.Request] = []

        def record(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return handler(request)

        client = httpx.AsyncClient(transport=httpx.MockTransport(record))
        self.provider = minimax.MiniMaxProvider(config(**options), client=client)

    async def __aenter__(self) -> Scripted:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.provider.aclose()

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests if r.method == "POST"]


def answer(body: object, status: int = 200, headers: dict[str, str] | None = None) -> Handler:
    def handler(_request: httpx.Request) -> httpx.Response:
        if isinstance(body, bytes):
            return httpx.Response(status, content=body, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    return handler


def routes(**by_path: object) -> Handler:
    """Answers by path: ``query=``, ``retrieve=``, ``create=`` (JSON bodies)."""
    paths = {
        minimax.CREATE_PATH: by_path.get("create"),
        minimax.QUERY_PATH: by_path.get("query"),
        minimax.RETRIEVE_PATH: by_path.get("retrieve"),
    }

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "cdn.example":
            return httpx.Response(200, content=b"\x00\x00\x00\x18ftypmp42")
        return httpx.Response(200, json=paths[request.url.path])

    return handler


CREATED = {"task_id": "106916112212032", "base_resp": OK}


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        # The text-to-video page's example, from neutral fields.
        (
            submit(
                "A man picks up a book [Pedestal up], then reads [Static shot].",
                duration_seconds=6.0,
                resolution="1080p",
            ),
            {
                "model": "MiniMax-Hailuo-2.3",
                "prompt": "A man picks up a book [Pedestal up], then reads [Static shot].",
                "duration": 6,
                "resolution": "1080P",
            },
        ),
        (
            submit(
                "A mouse runs toward the camera.",
                images=(ImageInput(url="https://cdn.example/first.jpeg"),),
                resolution="768p",
                extra={"prompt_optimizer": False, "fast_pretreatment": True},
            ),
            {
                "model": "MiniMax-Hailuo-2.3",
                "prompt": "A mouse runs toward the camera.",
                "first_frame_image": "https://cdn.example/first.jpeg",
                "resolution": "768P",
                "prompt_optimizer": False,
                "fast_pretreatment": True,
            },
        ),
        (
            submit(
                "A little girl grow up.",
                model="MiniMax-Hailuo-02",
                images=(
                    ImageInput(url="https://cdn.example/last.jpeg", role=ImageRole.LAST_FRAME),
                    ImageInput(url="data:image/png;base64,AAAA", role=ImageRole.FIRST_FRAME),
                ),
                duration_seconds=10,
                aspect_ratio="9:16",  # follows the image: nothing to send
                extra={"aigc_watermark": True},
            ),
            {
                "model": "MiniMax-Hailuo-02",
                "prompt": "A little girl grow up.",
                "first_frame_image": "data:image/png;base64,AAAA",
                "last_frame_image": "https://cdn.example/last.jpeg",
                "duration": 10,
                "aigc_watermark": True,
            },
        ),
        # S2V-01 takes neither duration nor resolution: their only values are the defaults.
        (
            submit(
                "A girl runs toward the camera and winks with a smile.",
                model="S2V-01",
                images=(ImageInput(url="https://cdn.example/face.jpg", role=ImageRole.REFERENCE),),
                duration_seconds=6,
                resolution="720p",
            ),
            {
                "model": "S2V-01",
                "prompt": "A girl runs toward the camera and winks with a smile.",
                "subject_reference": [
                    {"type": "character", "image": ["https://cdn.example/face.jpg"]}
                ],
            },
        ),
        (
            submit("", model="I2V-01", images=(ImageInput(url="https://cdn.example/a.png"),)),
            {"model": "I2V-01", "first_frame_image": "https://cdn.example/a.png"},
        ),
    ],
)
async def test_neutral_fields_map_to_the_wire_body(
    request_: SubmitRequest, expected: dict[str, Any]
) -> None:
    async with Scripted(answer(CREATED)) as scripted:
        view = await scripted.provider.create(request_, idempotency_key="attempt-7")
    assert view.external_id == "106916112212032"
    assert scripted.bodies() == [expected]
    sent = scripted.requests[0]
    assert (sent.method, str(sent.url)) == ("POST", f"{BASE}/v1/video_generation")
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["content-type"] == "application/json"
    assert "idempotency-key" not in sent.headers  # MiniMax has none


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"extra": {"callback_url": "https://me.example/hook"}}, "extra.callback_url"),
        ({"extra": {"model": "T2V-01"}}, "extra.model"),
        ({"extra": {"prompt_optimizer": "false"}}, "extra.prompt_optimizer"),
        ({"extra": {"aigc_watermark": 1}}, "extra.aigc_watermark"),
        ({"seed": 7}, "seed"),
        ({"negative_prompt": "blur"}, "negativePrompt"),
        ({"audio": True}, "audio"),
        ({"duration_seconds": 6.5}, "durationSeconds"),
        ({"resolution": "4k"}, "resolution"),
        ({"aspect_ratio": "9:16"}, "aspectRatio"),
        (
            {
                "images": (
                    ImageInput(url="https://cdn.example/a.png"),
                    ImageInput(url="https://cdn.example/b.png"),
                )
            },
            "images",
        ),
    ],
)
async def test_what_the_wire_cannot_carry_is_refused_before_any_call(
    params: dict[str, Any], field: str
) -> None:
    async with Scripted(answer(CREATED)) as scripted:
        with pytest.raises(UpstreamRejected) as caught:
            await scripted.provider.create(submit(**params), idempotency_key="k")
    assert caught.value.category is ErrorCategory.INVALID_REQUEST
    assert caught.value.status == 400
    assert caught.value.message.startswith(f"hailuo: {field}: ")
    assert scripted.requests == []


@pytest.mark.parametrize(
    ("code", "message", "kind", "category"),
    [
        (1008, "insufficient balance", UpstreamRejected, ErrorCategory.INSUFFICIENT_CREDITS),
        (2056, "usage limit exceeded", UpstreamRejected, ErrorCategory.INSUFFICIENT_CREDITS),
        (1026, "input new_sensitive", UpstreamRejected, ErrorCategory.CONTENT_POLICY),
        (2013, "invalid params, model", UpstreamRejected, ErrorCategory.INVALID_REQUEST),
        (1004, "login fail", UpstreamRejected, ErrorCategory.PROVIDER_UNAVAILABLE),
        (2049, "invalid api key", UpstreamRejected, ErrorCategory.PROVIDER_UNAVAILABLE),
    ],
)
async def test_create_refusals_under_http_200_map_to_categories(
    code: int, message: str, kind: type[UpstreamRejected], category: ErrorCategory
) -> None:
    body = {"task_id": "", "base_resp": {"status_code": code, "status_msg": message}}
    async with Scripted(answer(body)) as scripted:
        with pytest.raises(kind) as caught:
            await scripted.provider.create(submit(), idempotency_key="k")
    assert (caught.value.code, caught.value.category) == (str(code), category)
    assert caught.value.message == f"hailuo: MiniMax {code}: {message}"


@pytest.mark.parametrize(
    ("code", "concurrency"), [(1002, False), (1039, False), (2045, False), (1041, True)]
)
async def test_limit_codes_are_rate_limits(code: int, concurrency: bool) -> None:
    body = {"task_id": "", "base_resp": {"status_code": code, "status_msg": "limit"}}
    async with Scripted(answer(body)) as scripted:
        with pytest.raises(RateLimited) as caught:
            await scripted.provider.create(submit(), idempotency_key="k")
        with pytest.raises(RateLimited):
            await scripted.provider.get(JobRef(external_id="1"))
    assert (caught.value.retry_after, caught.value.concurrency) == (None, concurrency)
    assert caught.value.maybe_received is False


@pytest.mark.parametrize(("code", "maybe_received"), [(1000, False), (1024, False), (1001, True)])
async def test_server_side_codes_are_transient(code: int, maybe_received: bool) -> None:
    body = {"task_id": "", "base_resp": {"status_code": code, "status_msg": "oops"}}
    async with Scripted(answer(body)) as scripted:
        with pytest.raises(UpstreamUnavailable) as caught:
            await scripted.provider.create(submit(), idempotency_key="k")
    assert type(caught.value) is UpstreamUnavailable
    assert caught.value.maybe_received is maybe_received


async def test_http_error_statuses() -> None:
    async with Scripted(answer({"base_resp": {}}, 429, {"Retry-After": "3"})) as scripted:
        with pytest.raises(RateLimited) as limited:
            await scripted.provider.create(submit(), idempotency_key="k")
    assert limited.value.retry_after == 3.0
    gateway = {"base_resp": {"status_code": 1024, "status_msg": "internal error"}}
    async with Scripted(answer(gateway, 500)) as scripted:
        with pytest.raises(UpstreamUnavailable) as failed:
            await scripted.provider.create(submit(), idempotency_key="k")
    assert (failed.value.status, failed.value.maybe_received) == (500, False)
    refused = {"base_resp": {"status_code": 1004, "status_msg": "login fail"}}
    async with Scripted(answer(refused, 401)) as scripted:
        with pytest.raises(UpstreamRejected) as rejected:
            await scripted.provider.get(JobRef(external_id="1"))
    assert (rejected.value.code, rejected.value.category) == (
        "1004",
        ErrorCategory.PROVIDER_UNAVAILABLE,
    )


@pytest.mark.parametrize(
    "body",
    [
        {"id": "video_123", "object": "video", "status": "queued"},  # another protocol's job
        {"task_id": "", "base_resp": OK},
        {"task_id": 17.5, "base_resp": OK},
        {"task_id": "1", "base_resp": {"status_code": "zero"}},
        b"<html>upstream garbled</html>",
        [CREATED],
    ],
)
async def test_a_create_answer_in_the_wrong_shape_is_a_protocol_error(body: object) -> None:
    async with Scripted(answer(body)) as scripted:
        with pytest.raises(UpstreamProtocolError):
            await scripted.provider.create(submit(), idempotency_key="k")


def query(status: object, **fields: object) -> dict[str, Any]:
    return {"task_id": "176843862716480", "status": status, "base_resp": OK, **fields}


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("Preparing", JobStatus.QUEUED),
        ("Queueing", JobStatus.QUEUED),
        ("Processing", JobStatus.IN_PROGRESS),
        ("Rendering", None),  # a word we do not know: not terminal
    ],
)
async def test_status_words(word: str, status: JobStatus | None) -> None:
    async with Scripted(routes(query=query(word, file_id=""))) as scripted:
        view = await scripted.provider.get(JobRef(external_id="176843862716480"))
    assert view == JobView(external_id="176843862716480", status=status, raw_status=word)
    sent = scripted.requests[0]
    assert str(sent.url) == f"{BASE}/v1/query/video_generation?task_id=176843862716480"
    assert sent.headers["authorization"] == f"Bearer {KEY}"


async def test_success_fetches_the_download_url_and_its_documented_lifetime() -> None:
    documented_query = query(
        "Success", file_id="176844028768320", video_width=1920, video_height=1080
    )
    retrieve = {
        "file": {
            "file_id": 176844028768320,
            "bytes": 0,
            "created_at": 1700469398,
            "filename": "output_aigc.mp4",
            "purpose": "video_generation",
            "download_url": "https://cdn.example/output_aigc.mp4",
        },
        "base_resp": OK,
    }
    async with Scripted(routes(query=documented_query, retrieve=retrieve)) as scripted:
        before = time.time()
        view = await scripted.provider.get(JobRef(external_id="176843862716480"))
        stream = await scripted.provider.open_content(
            JobRef(external_id="176843862716480"), url=view.videos[0].url
        )
        await stream.aclose()
    assert view.status is JobStatus.COMPLETED and view.raw_status == "Success"
    assert view.usage == Usage(resolution="1920x1080")
    video = view.videos[0]
    assert video.url == "https://cdn.example/output_aigc.mp4"
    assert video.expires_at is not None
    assert before + 3600 <= video.expires_at <= time.time() + 3600
    retrieved, downloaded = scripted.requests[1], scripted.requests[2]
    assert str(retrieved.url) == f"{BASE}/v1/files/retrieve?file_id=176844028768320"
    assert retrieved.headers["authorization"] == f"Bearer {KEY}"
    # The key never travels to the CDN.
    assert "authorization" not in downloaded.headers


@pytest.mark.parametrize("file_id", [None, "", "not-a-number"])
async def test_success_without_a_file_is_a_failure(file_id: object) -> None:
    fields = {} if file_id is None else {"file_id": file_id}
    async with Scripted(routes(query=query("Success", **fields))) as scripted:
        view = await scripted.provider.get(JobRef(external_id="176843862716480"))
    assert view.status is JobStatus.FAILED
    assert view.videos == ()
    assert view.error is not None
    assert (view.error.code, view.error.category) == ("no_file", ErrorCategory.GENERATION_FAILED)
    assert len(scripted.requests) == 1


async def test_a_deleted_file_is_a_failure_and_a_url_less_file_a_protocol_error() -> None:
    success = query("Success", file_id="42")
    gone = {"base_resp": {"status_code": 2013, "status_msg": "invalid params, file_id"}}
    async with Scripted(routes(query=success, retrieve=gone)) as scripted:
        view = await scripted.provider.get(JobRef(external_id="176843862716480"))
    assert view.status is JobStatus.FAILED
    assert view.error is not None and view.error.code == "2013"
    no_url = {"file": {"file_id": 42, "download_url": ""}, "base_resp": OK}
    async with Scripted(routes(query=success, retrieve=no_url)) as scripted:
        with pytest.raises(UpstreamProtocolError):
            await scripted.provider.get(JobRef(external_id="176843862716480"))


@pytest.mark.parametrize(
    ("body", "code", "category"),
    [
        (query("Fail"), "Fail", ErrorCategory.GENERATION_FAILED),
        (
            query("Fail", base_resp={"status_code": 1027, "status_msg": "output new_sensitive"}),
            "1027",
            ErrorCategory.CONTENT_POLICY,
        ),
        # The verdict may come without a status word at all.
        (
            {"base_resp": {"status_code": 1026, "status_msg": "input new_sensitive"}},
            "1026",
            ErrorCategory.CONTENT_POLICY,
        ),
    ],
)
async def test_failures(body: dict[str, Any], code: str, category: ErrorCategory) -> None:
    async with Scripted(routes(query=body)) as scripted:
        view = await scripted.provider.get(JobRef(external_id="176843862716480"))
    assert view.status is JobStatus.FAILED
    assert view.error is not None
    assert (view.error.code, view.error.category) == (code, category)


@pytest.mark.parametrize(
    "body",
    [
        {"id": "176843862716480", "status": "completed"},  # no base_resp
        {"task_id": "176843862716480", "base_resp": OK},  # no status
        query(["Success"]),
        query("Processing", task_id="999"),  # another task's answer
    ],
)
async def test_a_query_answer_in_the_wrong_shape_is_a_protocol_error(
    body: dict[str, Any],
) -> None:
    async with Scripted(routes(query=body)) as scripted:
        with pytest.raises(UpstreamProtocolError):
            await scripted.provider.get(JobRef(external_id="176843862716480"))


async def test_the_key_is_scrubbed_from_upstream_messages() -> None:
    echoed = f"Authorization: Bearer {KEY} rate limited; key={KEY}"
    body = {"task_id": "", "base_resp": {"status_code": 2013, "status_msg": echoed}}
    async with Scripted(answer(body)) as scripted:
        with pytest.raises(UpstreamRejected) as caught:
            await scripted.provider.create(submit(), idempotency_key="k")
    assert KEY not in str(caught.value)
    assert (
        caught.value.message
        == "hailuo: MiniMax 2013: Authorization: Bearer *** rate limited; key=***"
    )


def test_expiry_prefers_the_signed_urls_own_figure() -> None:
    now = 1_800_000_000.0
    signed = "https://cdn.example/v.mp4?Expires=1800003600&Signature=abc"
    assert minimax._expiry(signed, now=now) == 1_800_003_600.0
    assert minimax._expiry("https://cdn.example/v.mp4", now=now) == now + 3600
    # A figure in the past or absurdly far ahead is not believed.
    assert minimax._expiry("https://cdn.example/v.mp4?Expires=17", now=now) == now + 3600


async def test_models_capabilities_and_features() -> None:
    async with Scripted(answer(CREATED)) as scripted:
        adapter = scripted.provider
        assert adapter.kind == "minimax"
        assert adapter.features == Features(content_route=True)
        assert adapter.result_lifetime == 3600
        # Where the key is configured, never the key.
        assert adapter.credential == config().credential_name()
        assert adapter.credential is not None and KEY not in adapter.credential
        assert adapter.upstream_model("hailuo-02") == "MiniMax-Hailuo-02"
        assert adapter.upstream_model("MiniMax-Hailuo-2.3") == "MiniMax-Hailuo-2.3"
        assert adapter.upstream_model("sora-2") is None
        caps = adapter.capabilities("MiniMax-Hailuo-02")
        assert (caps.durations, caps.resolutions, caps.image_roles, caps.max_images) == (
            (6.0, 10.0),
            ("512p", "768p", "1080p"),
            (ImageRole.FIRST_FRAME, ImageRole.LAST_FRAME),
            2,
        )
        assert (caps.audio, caps.seed, caps.negative_prompt, caps.aspect_ratios) == (
            False,
            False,
            False,
            None,
        )
        t2v = adapter.capabilities("T2V-01")
        assert (t2v.aspect_ratios, t2v.image_roles, t2v.resolutions) == (("16:9",), (), ("720p",))
        assert adapter.capabilities("S2V-01").image_roles == (ImageRole.REFERENCE,)
        with pytest.raises(NotImplementedError):
            await adapter.cancel(JobRef(external_id="1"))
        with pytest.raises(NotImplementedError):
            await adapter.recent_jobs(limit=5)
        with pytest.raises(NotImplementedError):
            await adapter.find_by_client_id("k")
    async with Scripted(answer(CREATED), models={"fast": "MiniMax-Hailuo-2.3-Fast"}) as mine:
        assert mine.provider.models == {"fast": "MiniMax-Hailuo-2.3-Fast"}
        assert mine.provider.upstream_model("hailuo-02") is None
