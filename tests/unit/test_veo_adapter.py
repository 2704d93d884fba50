"""The Veo adapter: its wire bodies on both surfaces, its reading of operations and of
Google's errors, its credentials, and its behaviour against the Veo simulator running
in-process (a service account exchanging its JWT at the simulator's token endpoint)."""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from vidgate.config import ProviderConfig
from vidgate.domain.capabilities import Capabilities
from vidgate.domain.request import ImageInput, ImageRole, VideoParams
from vidgate.providers.base import (
    ContentStream,
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
)
from vidgate.providers.veo import (
    DEFAULT_MODELS,
    GEMINI_RESULT_LIFETIME,
    VERTEX_DEFAULT_MODELS,
    VeoProvider,
)
from vidgate.simulator.config import SimConfig
from vidgate.simulator.server import RunningSimulator, start

KEY = "AIza-unit-test-key"
GEMINI = "https://generativelanguage.googleapis.com/v1beta"
VERTEX = "https://us-central1-aiplatform.googleapis.com"
MODEL = "veo-3.1-generate-preview"
VERTEX_MODEL = "veo-3.1-generate-001"
OP = f"models/{MODEL}/operations/abc123"
VERTEX_RESOURCE = f"projects/proj/locations/us-central1/publishers/google/models/{VERTEX_MODEL}"
VERTEX_OP = f"{VERTEX_RESOURCE}/operations/0b1c2d3e-aaaa-bbbb-cccc-000000000001"
PNG = b"\x89PNG\r\n\x1a\n-not-really-a-png"

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A MockTransport handler that answers from a function and keeps every request."""

    def __init__(self, answer: Handler) -> None:
        self.answer = answer
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)

    def bodies(self, path_end: str) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests if r.url.path.endswith(path_end)]


def gemini(handler: Handler | None = None, **config: Any) -> VeoProvider:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler)) if handler else None
    settings = ProviderConfig(
        name="veo",
        kind="gemini-veo",
        base_url=config.pop("base_url", GEMINI),
        api_key=KEY,
        **config,
    )
    return VeoProvider(settings, client=client, allow_private_images=True)


@functools.cache
def rsa_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def service_account(path: Path, token_uri: str) -> Path:
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "proj",
                "private_key_id": "0123456789abcdef",
                "private_key": rsa_pem(),
                "client_email": "vidgate@proj.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": token_uri,
            }
        )
    )
    return path


def vertex(
    account: Path, handler: Handler | None = None, *, base_url: str = VERTEX, **config: Any
) -> VeoProvider:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler)) if handler else None
    settings = ProviderConfig(
        name="vertex",
        kind="gemini-veo",
        surface="vertex",
        base_url=base_url,
        project=config.pop("project", "proj"),
        location="us-central1",
        service_account_file=account,
        **config,
    )
    return VeoProvider(settings, client=client, allow_private_images=True)


def submit(prompt: str = "a heron", model: str = MODEL, **params: Any) -> SubmitRequest:
    return SubmitRequest(prompt=prompt, model=model, params=VideoParams(**params))


def operation(name: str = OP, **fields: Any) -> httpx.Response:
    return httpx.Response(200, json={"name": name, **fields})


def done_with_samples(*uris: str) -> dict[str, Any]:
    return {
        "done": True,
        "response": {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta."
            "PredictLongRunningResponse",
            "generateVideoResponse": {"generatedSamples": [{"video": {"uri": u}} for u in uris]},
        },
    }


def google_error(status: int, word: str, message: str, *details: Any) -> httpx.Response:
    error: dict[str, Any] = {"code": status, "message": message, "status": word}
    if details:
        error["details"] = list(details)
    return httpx.Response(status, json={"error": error})


class Body(httpx.AsyncByteStream):
    """A response body that streams (a ``content=`` body counts as already read)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.data


def video_answer(data: bytes, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(
        status, stream=Body(data), headers={"content-type": "video/mp4", **headers}
    )


async def read(stream: ContentStream) -> bytes:
    try:
        return b"".join([chunk async for chunk in stream.chunks])
    finally:
        await stream.aclose()


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    simulator = await start(
        SimConfig(
            protocol="gemini-veo",
            prefix="/v1beta",
            job_seconds=0.3,
            api_key=KEY,
            expires_after_seconds=30.0,
        )
    )
    yield simulator
    await simulator.stop()


async def until_done(provider: VeoProvider, view: JobView) -> JobView:
    deadline = time.monotonic() + 10
    while view.status is JobStatus.IN_PROGRESS and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        view = await provider.get(JobRef(external_id=view.external_id))
    return view


# -- what the adapter declares ---------------------------------------------------------


def test_declares_features_models_and_lifetimes(tmp_path: Path) -> None:
    provider = gemini()
    assert provider.kind == "gemini-veo"
    assert provider.features == Features(
        cancel=False,
        list_jobs=False,
        idempotency_key=False,
        client_id=False,
        content_route=True,
        callbacks=False,
    )
    assert provider.models == DEFAULT_MODELS
    assert provider.upstream_model("veo-3.1-fast") == "veo-3.1-fast-generate-preview"
    assert provider.result_lifetime == GEMINI_RESULT_LIFETIME == 172800.0
    assert provider.credential == "api_key=inline"
    on_vertex = vertex(tmp_path / "sa.json")
    assert on_vertex.models == VERTEX_DEFAULT_MODELS
    assert on_vertex.upstream_model("veo-3.1") == "veo-3.1-generate-001"
    assert on_vertex.result_lifetime is None  # inline videos do not expire
    assert on_vertex.credential == f"service_account=file:{tmp_path / 'sa.json'}"
    configured = gemini(models={"fast": "veo-3.1-fast-generate-preview"})
    assert configured.models == {"fast": "veo-3.1-fast-generate-preview"}


def test_a_service_account_without_key_means_vertex(tmp_path: Path) -> None:
    # What a provider rebuilt from an attempt's binding looks like: no surface field.
    rebuilt = VeoProvider(
        ProviderConfig(
            name="old", kind="gemini-veo", base_url=VERTEX, service_account_file=tmp_path / "sa"
        )
    )
    assert rebuilt.vertex is True


def test_capability_tables() -> None:
    all_roles = (ImageRole.FIRST_FRAME, ImageRole.LAST_FRAME, ImageRole.REFERENCE)
    assert gemini().capabilities(MODEL) == Capabilities(
        durations=(4.0, 6.0, 8.0),
        aspect_ratios=("16:9", "9:16"),
        resolutions=("720p", "1080p", "4k"),
        image_roles=all_roles,
        max_images=3,
        audio=True,
        negative_prompt=True,
        seed=False,  # the Gemini API takes no seed
    )
    lite = gemini().capabilities("veo-3.1-lite-generate-preview")
    assert lite.resolutions == ("720p", "1080p")
    assert lite.image_roles == (ImageRole.FIRST_FRAME, ImageRole.LAST_FRAME)
    on_vertex = vertex(Path("/nonexistent")).capabilities(VERTEX_MODEL)
    assert on_vertex.seed is True and on_vertex.durations == (4.0, 6.0, 8.0)
    assert gemini().capabilities("veo-9-future") == Capabilities(
        image_roles=all_roles, audio=True, seed=False
    )


# -- the wire body ---------------------------------------------------------------------


async def test_gemini_body_maps_every_neutral_field() -> None:
    recorder = Recorder(lambda r: operation())
    provider = gemini(recorder)
    view = await provider.create(
        submit(
            "a heron at dawn",
            aspect_ratio="9:16",
            duration_seconds=8.0,
            resolution="1080p",
            negative_prompt="fog",
            audio=True,
            extra={"personGeneration": "allow_all", "enhancePrompt": True},
        ),
        idempotency_key="attempt-1",
    )
    await provider.aclose()
    assert view == JobView(external_id=OP, status=JobStatus.IN_PROGRESS, raw_status="running")
    [request] = recorder.requests
    assert request.method == "POST"
    assert str(request.url) == f"{GEMINI}/models/{MODEL}:predictLongRunning"
    assert request.headers["x-goog-api-key"] == KEY
    assert "idempotency-key" not in request.headers  # Veo has none
    assert json.loads(request.content) == {
        "instances": [{"prompt": "a heron at dawn"}],
        "parameters": {
            "aspectRatio": "9:16",
            "durationSeconds": 8,
            "resolution": "1080p",
            "negativePrompt": "fog",
            "personGeneration": "allow_all",
            "enhancePrompt": True,
        },
    }


async def test_gemini_seed_is_sent_for_the_upstream_to_judge() -> None:
    recorder = Recorder(lambda r: operation())
    provider = gemini(recorder)
    await provider.create(submit(seed=42), idempotency_key="k")
    await provider.aclose()
    assert recorder.bodies(":predictLongRunning")[0]["parameters"] == {"seed": 42}


async def test_images_are_fetched_without_the_key_and_placed_by_role() -> None:
    images = {
        "/first.png": ("image/png", PNG),
        "/last.jpg": ("image/jpeg", b"\xff\xd8jpeg-bytes"),
        "/ref.webp": ("image/webp; charset=binary", b"RIFFxxxxWEBP"),
    }

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.host == "images.example":
            mime, data = images[request.url.path]
            return httpx.Response(200, content=data, headers={"content-type": mime})
        return operation()

    recorder = Recorder(answer)
    provider = gemini(recorder)
    await provider.create(
        submit(
            images=(
                ImageInput(url="https://images.example/ref.webp", role=ImageRole.REFERENCE),
                ImageInput(url="https://images.example/first.png", role=ImageRole.FIRST_FRAME),
                ImageInput(url="https://images.example/last.jpg", role=ImageRole.LAST_FRAME),
            )
        ),
        idempotency_key="k",
    )
    await provider.aclose()
    fetches = [r for r in recorder.requests if r.url.host == "images.example"]
    assert len(fetches) == 3
    assert all("x-goog-api-key" not in r.headers for r in fetches)
    [body] = recorder.bodies(":predictLongRunning")

    def inline(data: bytes, mime: str) -> dict[str, str]:
        return {"bytesBase64Encoded": base64.b64encode(data).decode(), "mimeType": mime}

    assert body["instances"] == [
        {
            "prompt": "a heron",
            "image": inline(PNG, "image/png"),
            "lastFrame": inline(b"\xff\xd8jpeg-bytes", "image/jpeg"),
            "referenceImages": [
                {"image": inline(b"RIFFxxxxWEBP", "image/webp"), "referenceType": "asset"}
            ],
        }
    ]


@pytest.mark.parametrize(
    ("image_answer", "error", "code"),
    [
        (
            httpx.Response(302, headers={"location": "http://169.254.169.254/"}),
            UpstreamRejected,
            "image_unavailable",
        ),
        (httpx.Response(404), UpstreamRejected, "image_unavailable"),
        (
            httpx.Response(200, content=b"<html>", headers={"content-type": "text/html"}),
            UpstreamRejected,
            "invalid_image",
        ),
        (httpx.Response(503), UpstreamUnavailable, None),
    ],
)
async def test_image_problems_stop_before_veo(
    image_answer: httpx.Response, error: type[Exception], code: str | None
) -> None:
    recorder = Recorder(lambda r: image_answer if r.url.host == "images.example" else operation())
    provider = gemini(recorder)
    with pytest.raises(error) as caught:
        await provider.create(
            submit(images=(ImageInput(url="https://images.example/a.png?sig=SECRET"),)),
            idempotency_key="k",
        )
    await provider.aclose()
    assert [r.url.host for r in recorder.requests] == ["images.example"]  # no redirect followed
    assert "SECRET" not in str(caught.value)  # a signed URL's query stays out of messages
    if code is not None:
        assert isinstance(caught.value, UpstreamRejected)
        assert caught.value.code == code
        assert caught.value.category is ErrorCategory.INVALID_REQUEST
    else:
        assert isinstance(caught.value, UpstreamUnavailable)
        assert caught.value.maybe_received is False


async def test_private_image_addresses_are_refused_when_not_allowed() -> None:
    recorder = Recorder(lambda r: operation())
    provider = VeoProvider(
        ProviderConfig(name="veo", kind="gemini-veo", base_url=GEMINI, api_key=KEY),
        client=httpx.AsyncClient(transport=httpx.MockTransport(recorder)),
    )
    with pytest.raises(UpstreamRejected) as caught:
        await provider.create(
            submit(images=(ImageInput(url="http://127.0.0.1:6379/x.png"),)), idempotency_key="k"
        )
    await provider.aclose()
    assert caught.value.code == "invalid_image_url"
    assert recorder.requests == []


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"extra": {"colour": "red"}}, "invalid_extra"),
        ({"extra": {"sampleCount": "2"}}, "invalid_extra"),
        ({"extra": {"enhancePrompt": 1}}, "invalid_extra"),
        ({"extra": {"sampleCount": True}}, "invalid_extra"),
        ({"extra": {"personGeneration": "everyone"}}, "invalid_extra"),
        ({"extra": {"aspectRatio": "16:9"}}, "invalid_extra"),
        ({"extra": {"seed": 1}}, "invalid_extra"),
        ({"extra": {"storageUri": "gs://b/o"}}, "invalid_extra"),  # Vertex only
        ({"duration_seconds": 5.5}, "invalid_request"),
        ({"duration_seconds": 4.0, "resolution": "4k"}, "invalid_request"),
        ({"audio": False}, "invalid_request"),  # Gemini's Veo always makes sound
        (
            {"images": (ImageInput(url="https://i.example/l.png", role=ImageRole.LAST_FRAME),)},
            "invalid_request",
        ),
        (
            {
                "images": tuple(
                    ImageInput(url=f"https://i.example/{n}.png", role=ImageRole.REFERENCE)
                    for n in range(4)
                )
            },
            "invalid_request",
        ),
        ({"images": (ImageInput(url="ftp://i.example/a.png"),)}, "invalid_image_url"),
    ],
)
async def test_refused_before_any_http(params: dict[str, Any], code: str) -> None:
    recorder = Recorder(lambda r: operation())
    provider = gemini(recorder)
    with pytest.raises(UpstreamRejected) as caught:
        await provider.create(submit(**params), idempotency_key="k")
    await provider.aclose()
    assert recorder.requests == []
    assert caught.value.code == code
    assert caught.value.category is ErrorCategory.INVALID_REQUEST
    assert caught.value.status == 400


async def test_model_ids_that_would_change_the_path_are_refused() -> None:
    recorder = Recorder(lambda r: operation())
    provider = gemini(recorder)
    with pytest.raises(UpstreamRejected):
        await provider.create(submit(model="../files/x"), idempotency_key="k")
    await provider.aclose()
    assert recorder.requests == []


# -- reading operations ----------------------------------------------------------------


async def test_completed_sample_becomes_a_keyed_result_with_the_files_expiry() -> None:
    uri = f"{GEMINI}/files/f1le:download?alt=media"

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/files/f1le"):
            return httpx.Response(
                200, json={"name": "files/f1le", "expirationTime": "2026-12-01T10:00:00.123456789Z"}
            )
        return operation(**done_with_samples(uri))

    recorder = Recorder(answer)
    provider = gemini(recorder)
    view = await provider.get(JobRef(external_id=OP))
    await provider.aclose()
    assert view == JobView(
        external_id=OP,
        status=JobStatus.COMPLETED,
        raw_status="done",
        videos=(ResultVideo(url=uri, expires_at=1796119200.123456, needs_credentials=True),),
    )
    assert [str(r.url) for r in recorder.requests] == [f"{GEMINI}/{OP}", f"{GEMINI}/files/f1le"]


async def test_unreadable_file_metadata_falls_back_to_two_days() -> None:
    uri = f"{GEMINI}/files/f1le:download?alt=media"

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/files/f1le"):
            return google_error(500, "INTERNAL", "boom")
        return operation(**done_with_samples(uri))

    provider = gemini(Recorder(answer))
    before = time.time()
    view = await provider.get(JobRef(external_id=OP))
    await provider.aclose()
    [video] = view.videos
    assert video.expires_at is not None
    assert (
        before + GEMINI_RESULT_LIFETIME <= video.expires_at <= time.time() + GEMINI_RESULT_LIFETIME
    )


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"done": True, "error": {"code": 13, "message": "Internal error."}},
            JobError(
                code="INTERNAL", message="Internal error.", category=ErrorCategory.GENERATION_FAILED
            ),
        ),
        (
            {
                "done": True,
                "error": {
                    "code": 3,
                    "message": "The prompt contains words that violate Google's Responsible "
                    "AI practices.",
                },
            },
            JobError(
                code="INVALID_ARGUMENT",
                message="The prompt contains words that violate Google's Responsible AI practices.",
                category=ErrorCategory.CONTENT_POLICY,
            ),
        ),
        (
            {"done": True, "error": {"code": 3, "message": "bad image"}},
            JobError(
                code="INVALID_ARGUMENT", message="bad image", category=ErrorCategory.INVALID_REQUEST
            ),
        ),
        (
            {"done": True, "error": {"code": 8, "message": "quota"}},
            JobError(
                code="RESOURCE_EXHAUSTED", message="quota", category=ErrorCategory.RATE_LIMITED
            ),
        ),
        (
            {"done": True, "error": {"code": 99}},
            JobError(
                code="99",
                message="The Veo operation failed.",
                category=ErrorCategory.GENERATION_FAILED,
            ),
        ),
        (
            {
                "done": True,
                "response": {
                    "generateVideoResponse": {
                        "raiMediaFilteredCount": 1,
                        "raiMediaFilteredReasons": ["Filtered for safety."],
                    }
                },
            },
            JobError(
                code="RAI_MEDIA_FILTERED",
                message="Filtered for safety.",
                category=ErrorCategory.CONTENT_POLICY,
            ),
        ),
        (
            {"done": True, "response": {"generateVideoResponse": {"generatedSamples": []}}},
            JobError(
                code="NO_VIDEO",
                message="Veo finished the operation without a video.",
                category=ErrorCategory.GENERATION_FAILED,
            ),
        ),
    ],
)
async def test_finished_without_a_video_is_a_failure(
    fields: dict[str, Any], expected: JobError
) -> None:
    provider = gemini(Recorder(lambda r: operation(**fields)))
    view = await provider.get(JobRef(external_id=OP))
    await provider.aclose()
    assert view.status is JobStatus.FAILED
    assert view.videos == ()
    assert view.error == expected
    assert view.progress is None


@pytest.mark.parametrize(
    "body",
    [
        {"id": "video_123", "object": "video", "status": "completed"},  # /v1/videos
        {"name": "tasks/123"},  # not an operation name
        {"name": OP, "done": "yes"},
        {"name": OP, "done": True},  # neither error nor response
        {
            "name": OP,
            "done": True,
            "response": {"videos": [{"gcsUri": "gs://b/o.mp4"}]},
        },  # Vertex's
        {"name": VERTEX_OP},  # Vertex's name on the Gemini surface
        ["not", "an", "object"],
    ],
)
async def test_wrong_shapes_are_protocol_errors(body: Any) -> None:
    provider = gemini(Recorder(lambda r: httpx.Response(200, json=body)))
    with pytest.raises(UpstreamProtocolError):
        await provider.get(JobRef(external_id=OP))
    await provider.aclose()


async def test_garbage_and_bad_stored_names_are_protocol_errors() -> None:
    recorder = Recorder(lambda r: httpx.Response(200, content=b"<html>oops</html>"))
    provider = gemini(recorder)
    with pytest.raises(UpstreamProtocolError):
        await provider.get(JobRef(external_id=OP))
    with pytest.raises(UpstreamProtocolError):
        await provider.get(JobRef(external_id="models/x/operations/../../files/y"))
    await provider.aclose()
    assert len(recorder.requests) == 1


# -- errors ----------------------------------------------------------------------------


async def test_gemini_429_is_rate_limited_with_retry_info() -> None:
    answer = google_error(
        429,
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota",
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "39.5s"},
    )
    provider = gemini(Recorder(lambda r: answer))
    with pytest.raises(RateLimited) as caught:
        await provider.create(submit(), idempotency_key="k")
    await provider.aclose()
    assert caught.value.retry_after == 39.5
    assert caught.value.concurrency is False
    assert caught.value.maybe_received is False
    assert caught.value.status == 429


@pytest.mark.parametrize(
    ("answer", "kind", "code", "category"),
    [
        (
            google_error(
                400,
                "INVALID_ARGUMENT",
                "API key not valid. Please pass a valid API key.",
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"},
            ),
            UpstreamRejected,
            "API_KEY_INVALID",
            ErrorCategory.PROVIDER_UNAVAILABLE,
        ),
        (
            google_error(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers"),
            UpstreamRejected,
            "PERMISSION_DENIED",
            ErrorCategory.PROVIDER_UNAVAILABLE,
        ),
        (
            google_error(400, "INVALID_ARGUMENT", "`seed` isn't supported by this model."),
            UpstreamRejected,
            "INVALID_ARGUMENT",
            ErrorCategory.INVALID_REQUEST,
        ),
        (
            google_error(
                400,
                "INVALID_ARGUMENT",
                "The prompt could not be submitted. This prompt contains sensitive words that "
                "violate Google's Responsible AI practices.",
            ),
            UpstreamRejected,
            "INVALID_ARGUMENT",
            ErrorCategory.CONTENT_POLICY,
        ),
        (
            google_error(
                400, "FAILED_PRECONDITION", "Please enable billing on your project to use Veo."
            ),
            UpstreamRejected,
            "FAILED_PRECONDITION",
            ErrorCategory.INSUFFICIENT_CREDITS,
        ),
        (
            google_error(404, "NOT_FOUND", "models/veo-9 is not found for API version v1beta"),
            UpstreamRejected,
            "NOT_FOUND",
            ErrorCategory.INVALID_REQUEST,
        ),
        (google_error(500, "INTERNAL", "boom"), UpstreamUnavailable, None, None),
        (
            google_error(503, "UNAVAILABLE", "The model is overloaded."),
            UpstreamUnavailable,
            None,
            None,
        ),
    ],
)
async def test_create_errors(
    answer: httpx.Response,
    kind: type[Exception],
    code: str | None,
    category: ErrorCategory | None,
) -> None:
    provider = gemini(Recorder(lambda r: answer))
    with pytest.raises(kind) as caught:
        await provider.create(submit(), idempotency_key="k")
    await provider.aclose()
    assert type(caught.value) is kind
    assert KEY not in str(caught.value)
    if isinstance(caught.value, UpstreamRejected):
        assert (caught.value.code, caught.value.category) == (code, category)
    else:
        assert isinstance(caught.value, UpstreamUnavailable)
        assert caught.value.maybe_received is False


async def test_a_lost_operation_is_not_found() -> None:
    provider = gemini(
        Recorder(lambda r: google_error(404, "NOT_FOUND", "Requested entity was not found."))
    )
    with pytest.raises(UpstreamNotFound):
        await provider.get(JobRef(external_id=OP))
    await provider.aclose()


async def test_not_supported_calls_say_so() -> None:
    provider = gemini()
    with pytest.raises(NotImplementedError):
        await provider.cancel(JobRef(external_id=OP))
    with pytest.raises(NotImplementedError):
        await provider.recent_jobs(limit=5)
    with pytest.raises(NotImplementedError):
        await provider.find_by_client_id("x")
    await provider.aclose()


# -- content ---------------------------------------------------------------------------


async def test_content_gets_the_key_only_on_googles_host() -> None:
    recorder = Recorder(lambda r: video_answer(b"mp4"))
    provider = gemini(recorder, base_url="https://veo-proxy.example/v1beta")
    for url in (
        f"{GEMINI}/files/a:download?alt=media",  # Google's own file host: the key is added
        "https://veo-proxy.example/v1beta/files/b:download?alt=media",  # our origin
        "https://cdn.example/files/c.mp4",  # anywhere else: never
    ):
        await read(await provider.open_content(JobRef(external_id=OP), url=url))
    await provider.aclose()
    keys = [r.headers.get("x-goog-api-key") for r in recorder.requests]
    assert keys == [KEY, KEY, None]


async def test_expired_content_is_not_found() -> None:
    provider = gemini(
        Recorder(lambda r: google_error(403, "PERMISSION_DENIED", "You do not have permission"))
    )
    with pytest.raises(UpstreamNotFound):
        await provider.open_content(JobRef(external_id=OP), url=f"{GEMINI}/files/a:download")
    await provider.aclose()


# -- against the simulator: Gemini API -------------------------------------------------


async def test_gemini_job_end_to_end_on_the_simulator(sim: RunningSimulator) -> None:
    provider = gemini(base_url=sim.base_url)
    created = await provider.create(
        submit(aspect_ratio="9:16", duration_seconds=4.0), idempotency_key="k"
    )
    assert created.status is JobStatus.IN_PROGRESS and created.progress is None
    assert created.external_id.startswith(f"models/{MODEL}/operations/")
    view = await until_done(provider, created)
    assert view.status is JobStatus.COMPLETED and view.error is None
    [video] = view.videos
    assert video.needs_credentials is True
    assert video.url is not None and video.url.startswith(f"{sim.base_url}/files/")
    job = next(iter(sim.state.jobs))
    assert (job.size, job.seconds) == ("720x1280", "4")
    # The file's own expirationTime: completion + the simulator's 30 s, not two days.
    assert video.expires_at == pytest.approx(job.created_at + job.duration + 30.0, abs=1e-3)
    ref = JobRef(external_id=view.external_id)
    head = await read(await provider.open_content(ref, url=video.url, range_header="bytes=0-7"))
    assert head[4:8] == b"ftyp" and len(head) == 8
    # Without a URL, the operation is read again for it (the content route).
    whole = await read(await provider.open_content(ref))
    assert whole[:8] == head and len(whole) > 1000
    await provider.aclose()


async def test_gemini_filter_error_and_expiry_on_the_simulator() -> None:
    simulator = await start(
        SimConfig(
            protocol="gemini-veo",
            prefix="/v1beta",
            job_seconds=0.2,
            api_key=KEY,
            expires_after_seconds=0.3,
        )
    )
    provider = gemini(base_url=simulator.base_url)
    try:
        views = [
            await provider.create(submit(prompt), idempotency_key="k")
            for prompt in ("[fail] x", "[error] x", "ok")
        ]
        filtered, failed, ok = [await until_done(provider, v) for v in views]
        assert filtered.status is JobStatus.FAILED and filtered.error is not None
        assert filtered.error.code == "RAI_MEDIA_FILTERED"
        assert filtered.error.category is ErrorCategory.CONTENT_POLICY
        assert failed.error == JobError(
            code="INTERNAL",
            message="Video generation failed due to an internal error.",
            category=ErrorCategory.GENERATION_FAILED,
        )
        assert failed.error.worth_retrying
        [video] = ok.videos
        await asyncio.sleep(max(0.0, (video.expires_at or 0) - time.time()) + 0.05)
        with pytest.raises(UpstreamNotFound):
            await provider.open_content(JobRef(external_id=ok.external_id), url=video.url)
    finally:
        await provider.aclose()
        await simulator.stop()


async def test_gemini_rate_limit_and_wrong_key_on_the_simulator(sim: RunningSimulator) -> None:
    sim.state.update_runtime({"error_429_rate": 1.0, "retry_after_seconds": 2.0})
    provider = gemini(base_url=sim.base_url)
    with pytest.raises(RateLimited) as caught:
        await provider.create(submit(), idempotency_key="k")
    assert caught.value.retry_after == 2.0
    sim.state.update_runtime({"error_429_rate": 0.0})
    await provider.aclose()
    wrong = VeoProvider(
        ProviderConfig(name="veo", kind="gemini-veo", base_url=sim.base_url, api_key="nope")
    )
    with pytest.raises(UpstreamRejected) as refused:
        await wrong.create(submit(), idempotency_key="k")
    await wrong.aclose()
    assert refused.value.code == "API_KEY_INVALID"
    assert refused.value.category is ErrorCategory.PROVIDER_UNAVAILABLE


# -- Vertex ----------------------------------------------------------------------------


async def test_vertex_body_path_and_bearer(sim: RunningSimulator, tmp_path: Path) -> None:
    account = service_account(tmp_path / "sa.json", f"{sim.origin}/token")
    recorder = Recorder(lambda r: operation(VERTEX_OP))
    provider = vertex(account, recorder)
    view = await provider.create(
        submit(
            model=VERTEX_MODEL,
            seed=7,
            audio=False,
            extra={"storageUri": "gs://bucket/out", "sampleCount": 2, "resizeMode": "crop"},
        ),
        idempotency_key="k",
    )
    await provider.get(JobRef(external_id=view.external_id))
    await provider.aclose()
    create, fetch = recorder.requests
    assert str(create.url) == f"{VERTEX}/v1/{VERTEX_RESOURCE}:predictLongRunning"
    assert create.headers["authorization"].startswith("Bearer ya29.sim-")
    assert "x-goog-api-key" not in create.headers
    assert json.loads(create.content) == {
        "instances": [{"prompt": "a heron"}],
        "parameters": {
            "seed": 7,
            "generateAudio": False,
            "storageUri": "gs://bucket/out",
            "sampleCount": 2,
            "resizeMode": "crop",
        },
    }
    assert str(fetch.url) == f"{VERTEX}/v1/{VERTEX_RESOURCE}:fetchPredictOperation"
    assert json.loads(fetch.content) == {"operationName": VERTEX_OP}
    assert fetch.headers["authorization"] == create.headers["authorization"]  # token reused
    assert sim.stats()["requests"]["POST /token"] == 1


async def test_vertex_gcs_result_is_streamed_with_the_bearer(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    account = service_account(tmp_path / "sa.json", f"{sim.origin}/token")
    finished = {
        "done": True,
        "response": {
            "@type": "type.googleapis.com/cloud.ai.large_models.vision.GenerateVideoResponse",
            "raiMediaFilteredCount": 0,
            "videos": [{"gcsUri": "gs://bucket/out/a b/sample_0.mp4", "mimeType": "video/mp4"}],
        },
    }

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.host == "storage.googleapis.com":
            return video_answer(b"mp", 206, **{"content-range": "bytes 0-1/9"})
        return operation(VERTEX_OP, **finished)

    recorder = Recorder(answer)
    provider = vertex(account, recorder)
    view = await provider.get(JobRef(external_id=VERTEX_OP))
    url = (
        "https://storage.googleapis.com/download/storage/v1/b/bucket/o/"
        "out%2Fa%20b%2Fsample_0.mp4?alt=media"
    )
    assert view.videos == (ResultVideo(url=url, expires_at=None, needs_credentials=True),)
    stream = await provider.open_content(
        JobRef(external_id=VERTEX_OP), url=url, range_header="bytes=0-1"
    )
    assert stream.status == 206 and stream.headers["content-range"] == "bytes 0-1/9"
    assert await read(stream) == b"mp"
    await provider.aclose()
    download = recorder.requests[-1]
    assert download.headers["authorization"].startswith("Bearer ya29.sim-")
    assert download.headers["range"] == "bytes=0-1"


async def test_vertex_end_to_end_inline_video(sim: RunningSimulator, tmp_path: Path) -> None:
    account = service_account(tmp_path / "sa.json", f"{sim.origin}/token")
    provider = vertex(account, base_url=sim.origin)
    created = await provider.create(submit(model=VERTEX_MODEL, seed=3), idempotency_key="k")
    assert created.external_id.startswith(f"{VERTEX_RESOURCE}/operations/")
    view = await until_done(provider, created)
    assert view.status is JobStatus.COMPLETED
    # Inline bytes have no URL: they are served through the content route.
    assert view.videos == (ResultVideo(url=None, expires_at=None, needs_credentials=True),)
    ref = JobRef(external_id=view.external_id)
    tail = await provider.open_content(ref, range_header="bytes=-4")
    assert tail.status == 206
    total = int(tail.headers["content-range"].rpartition("/")[2])
    assert tail.headers["content-range"] == f"bytes {total - 4}-{total - 1}/{total}"
    assert len(await read(tail)) == 4
    whole = await provider.open_content(ref)
    data = await read(whole)
    assert whole.status == 200 and data[4:8] == b"ftyp" and len(data) == total
    filtered = await until_done(
        provider, await provider.create(submit("[fail] x", model=VERTEX_MODEL), idempotency_key="k")
    )
    assert filtered.error is not None and filtered.error.category is ErrorCategory.CONTENT_POLICY
    await provider.aclose()


async def test_vertex_429_has_no_wait_and_missing_setup_is_the_providers_fault(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    account = service_account(tmp_path / "sa.json", f"{sim.origin}/token")
    provider = vertex(account, base_url=sim.origin)
    sim.state.update_runtime({"error_429_rate": 1.0})
    try:
        with pytest.raises(RateLimited) as caught:
            await provider.create(submit(model=VERTEX_MODEL), idempotency_key="k")
    finally:
        sim.state.update_runtime({"error_429_rate": 0.0})
    assert caught.value.retry_after is None  # Vertex tells no wait
    await provider.aclose()
    for broken in (
        vertex(tmp_path / "missing.json", base_url=sim.origin),
        vertex(account, base_url=sim.origin, project=None),
    ):
        with pytest.raises(UpstreamRejected) as refused:
            await broken.create(submit(model=VERTEX_MODEL), idempotency_key="k")
        await broken.aclose()
        assert refused.value.category is ErrorCategory.PROVIDER_UNAVAILABLE


async def test_vertex_refused_token_is_the_providers_fault(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    # The token endpoint refuses an assertion whose issuer is no account email.
    account = service_account(tmp_path / "sa.json", f"{sim.origin}/token")
    settings = json.loads(account.read_text())
    account.write_text(json.dumps({**settings, "client_email": "not-an-account"}))
    provider = vertex(account, base_url=sim.origin)
    with pytest.raises(UpstreamRejected) as caught:
        await provider.create(submit(model=VERTEX_MODEL), idempotency_key="k")
    await provider.aclose()
    assert caught.value.category is ErrorCategory.PROVIDER_UNAVAILABLE
    assert caught.value.code == "UNAUTHENTICATED"
    assert "PRIVATE KEY" not in str(caught.value)
    assert sim.state.stats.jobs_created == 0
    assert sim.stats()["requests"]["POST /token"] == 1
