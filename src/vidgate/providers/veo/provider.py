"""``VeoProvider``: the ``Provider`` port over Veo's long-running operations."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from vidgate.config import ProviderConfig
from vidgate.domain.capabilities import Capabilities
from vidgate.domain.request import ImageInput, ImageRole
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
    UpstreamError,
    UpstreamJobSummary,
    UpstreamNotFound,
    UpstreamProtocolError,
    UpstreamRejected,
)
from vidgate.providers.http import (
    Answer,
    HttpUpstream,
    parse_retry_after,
    raise_for_status,
    resolve_url,
)
from vidgate.providers.veo import media, wire
from vidgate.providers.veo.auth import ServiceAccountToken

# Gemini keeps generated videos for two days (PROTOCOLS.md 1.1); a file's own
# expirationTime wins when it can be read.
GEMINI_RESULT_LIFETIME = 2 * 24 * 3600.0
# A Vertex operation carries its videos inline unless storageUri is set: up to four
# samples of a 4k clip, base64. A bigger answer is refused rather than held in memory.
VERTEX_MAX_OPERATION_BYTES = 256 << 20


class VeoProvider:
    """A ``Provider`` for Veo on the Gemini API or on Vertex AI (see the package doc)."""

    kind = "gemini-veo"

    # Veo takes images inline: this adapter downloads them (see registry.build).
    fetches_images = True

    def __init__(
        self,
        config: ProviderConfig,
        *,
        client: httpx.AsyncClient | None = None,
        allow_private_images: bool = False,
    ) -> None:
        self.name = config.name
        self.config = config
        self.base_url = config.base_url.rstrip("/")
        self.credential = config.credential_name()
        self.content_mode: str = config.content
        self.max_concurrency = config.max_concurrency
        api_key = config.secret("api_key")
        self.vertex = config.surface == "vertex" or (
            config.service_account_file is not None and not api_key
        )
        self.models = dict(
            config.models or (wire.VERTEX_DEFAULT_MODELS if self.vertex else wire.DEFAULT_MODELS)
        )
        # Inline Vertex videos do not expire; a gs:// object lives as long as its bucket.
        self.result_lifetime: float | None = None if self.vertex else GEMINI_RESULT_LIFETIME
        self.features = Features(
            cancel=False,
            list_jobs=False,
            idempotency_key=False,
            client_id=False,
            # A job's video is found again from its operation when no URL is at hand.
            content_route=True,
            callbacks=False,
        )
        self._api_key = api_key
        self._allow_private_images = allow_private_images
        # Vertex paths carry the API version; a base URL that already ends with one
        # (".../v1") is taken as it is.
        self._version = "" if re.search(r"/v1(beta1)?$", self.base_url) else "/v1"
        self._http = HttpUpstream(
            config.name,
            self.base_url,
            timeout=config.timeout_seconds,
            max_concurrency=config.max_concurrency,
            credentials={"x-goog-api-key": api_key} if api_key and not self.vertex else None,
            client=client,
        )
        self._token = ServiceAccountToken(
            config.name, config.service_account_file, timeout=config.timeout_seconds
        )

    def upstream_model(self, model: str) -> str | None:
        return self.models.get(model)

    def capabilities(self, upstream_model: str) -> Capabilities:
        return wire.capabilities(upstream_model, vertex=self.vertex)

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- calls ---------------------------------------------------------------------------

    async def create(self, request: SubmitRequest, *, idempotency_key: str) -> JobView:
        # Veo has no idempotency key: `idempotency_key` is not sent anywhere.
        model = request.model
        if not wire.MODEL_ID.match(model):
            raise wire.rejected(f"{self.name}: {model!r} is not a Veo model id")
        parameters = self._parameters(request)
        self._check_images(request.params.images)
        if self.vertex:
            resource = self._publisher_model(model)
            await self._authorize()
            path = f"{self._version}/{resource}:predictLongRunning"
        else:
            path = f"/models/{model}:predictLongRunning"
        instance: dict[str, Any] = {"prompt": request.prompt}
        instance.update(await self._images(request.params.images))
        answer = await self._http.call(
            "POST", path, json={"instances": [instance], "parameters": parameters}
        )
        if answer.status == 404:
            # The model, not a job, is what is missing.
            message, word, _reason, _wait = wire.error_of(answer.body)
            raise UpstreamRejected(
                message or f"{self.name}: model {model!r} not found",
                status=404,
                code=word or "NOT_FOUND",
                category=ErrorCategory.INVALID_REQUEST,
            )
        return await self._view(self._checked(answer, "predictLongRunning"))

    async def get(self, job: JobRef) -> JobView:
        return await self._view(await self._operation(job.external_id))

    async def cancel(self, job: JobRef) -> None:
        raise NotImplementedError("Veo operations cannot be cancelled")

    async def open_content(
        self, job: JobRef, *, url: str | None = None, range_header: str | None = None
    ) -> ContentStream:
        if url is None:
            found = self._videos(await self._operation(job.external_id))
            if not found:
                raise UpstreamNotFound(f"{self.name}: the operation has no video", status=404)
            if "bytes" in found[0]:
                return media.inline_stream(found[0]["bytes"], range_header)
            url = found[0]["url"]
        return await self._http.stream(
            url,
            headers=await self._content_credentials(url),
            range_header=range_header,
            on_error=self._content_error,
        )

    async def recent_jobs(self, *, limit: int) -> list[UpstreamJobSummary]:
        raise NotImplementedError("Veo has no list of operations")

    async def find_by_client_id(self, client_id: str) -> JobView | None:
        raise NotImplementedError("Veo has no client-chosen operation id")

    # -- the request ---------------------------------------------------------------------

    def _parameters(self, request: SubmitRequest) -> dict[str, Any]:
        params = request.params
        out: dict[str, Any] = {}
        if params.aspect_ratio is not None:
            out["aspectRatio"] = params.aspect_ratio
        if params.duration_seconds is not None:
            seconds = params.duration_seconds
            if not float(seconds).is_integer():
                raise wire.rejected(f"{self.name}: Veo makes whole-second clips, not {seconds:g} s")
            out["durationSeconds"] = int(seconds)
        if params.resolution is not None:
            out["resolution"] = params.resolution
            if (
                wire.known_model(request.model)
                and params.resolution in wire.FULL_LENGTH_ONLY
                and out.get("durationSeconds", 8) != 8
            ):
                raise wire.rejected(f"{self.name}: Veo makes {params.resolution} clips of 8 s only")
        if params.negative_prompt is not None:
            out["negativePrompt"] = params.negative_prompt
        if params.seed is not None:
            out["seed"] = params.seed
        if params.audio is not None:
            if self.vertex:
                out["generateAudio"] = params.audio
            elif not params.audio:
                raise wire.rejected(
                    f"{self.name}: Veo on the Gemini API always makes sound; "
                    "a silent clip needs the Vertex surface"
                )
        out.update(wire.checked_extra(params.extra, vertex=self.vertex, name=self.name))
        return out

    def _check_images(self, images: tuple[ImageInput, ...]) -> None:
        count = {role: sum(1 for i in images if i.role is role) for role in ImageRole}
        if count[ImageRole.FIRST_FRAME] > 1 or count[ImageRole.LAST_FRAME] > 1:
            raise wire.rejected(f"{self.name}: Veo takes one first frame and one last frame")
        if count[ImageRole.LAST_FRAME] and not count[ImageRole.FIRST_FRAME]:
            raise wire.rejected(f"{self.name}: Veo needs a first frame with a last frame")
        if count[ImageRole.REFERENCE] > 3:
            raise wire.rejected(f"{self.name}: Veo takes at most 3 reference images")
        for image in images:
            if urlsplit(image.url).scheme not in ("http", "https"):
                raise wire.rejected(f"{self.name}: image URLs must be http(s)", "invalid_image_url")

    async def _images(self, images: tuple[ImageInput, ...]) -> dict[str, Any]:
        """Veo takes images inline: each is fetched and placed by its role."""
        out: dict[str, Any] = {}
        references = []
        for image in images:
            inline = await media.fetch_image(
                self._http.client,
                image.url,
                name=self.name,
                allow_private=self._allow_private_images,
            )
            if image.role is ImageRole.FIRST_FRAME:
                out["image"] = inline
            elif image.role is ImageRole.LAST_FRAME:
                out["lastFrame"] = inline
            else:
                references.append({"image": inline, "referenceType": "asset"})
        if references:
            out["referenceImages"] = references
        return out

    def _publisher_model(self, model: str) -> str:
        project, location = self.config.project, self.config.location
        if not project or not location:
            raise UpstreamRejected(
                f"{self.name}: the vertex surface needs project and location in its config",
                status=400,
                code="vertex_config",
                category=ErrorCategory.PROVIDER_UNAVAILABLE,
            )
        return f"projects/{project}/locations/{location}/publishers/google/models/{model}"

    # -- the operation -------------------------------------------------------------------

    async def _operation(self, name: str) -> dict[str, Any]:
        """The operation as the upstream answers it now."""
        if self.vertex:
            if not wire.VERTEX_NAME.match(name):
                raise UpstreamProtocolError(f"{self.name}: {name!r} is no Vertex operation name")
            await self._authorize()
            resource = name.rpartition("/operations/")[0]
            answer = await self._http.call(
                "POST",
                f"{self._version}/{resource}:fetchPredictOperation",
                json={"operationName": name},
                max_bytes=VERTEX_MAX_OPERATION_BYTES,
            )
            return self._checked(answer, "fetchPredictOperation")
        if not wire.GEMINI_NAME.match(name):
            raise UpstreamProtocolError(f"{self.name}: {name!r} is no Gemini operation name")
        return self._checked(await self._http.call("GET", f"/{name}"), "GET operation")

    async def _view(self, operation: dict[str, Any]) -> JobView:
        name = operation.get("name")
        pattern = wire.VERTEX_NAME if self.vertex else wire.GEMINI_NAME
        if not isinstance(name, str) or not pattern.match(name):
            raise UpstreamProtocolError(f"{self.name}: an answer without an operation name")
        done = operation.get("done", False)
        if not isinstance(done, bool):
            raise UpstreamProtocolError(f"{self.name}: operation with a non-boolean done")
        if not done:
            # Veo says nothing between "created" and "done", not even queued or running.
            return JobView(external_id=name, status=JobStatus.IN_PROGRESS, raw_status="running")
        error = operation.get("error")
        if isinstance(error, dict):
            return JobView(
                external_id=name,
                status=JobStatus.FAILED,
                raw_status="done:error",
                error=wire.job_error(error),
            )
        found = self._videos(operation)
        if found:
            videos = tuple(ResultVideo(url=v.get("url"), needs_credentials=True) for v in found)
            if not self.vertex:
                videos = await self._with_expiry(videos)
            return JobView(
                external_id=name, status=JobStatus.COMPLETED, raw_status="done", videos=videos
            )
        withheld, reasons = wire.filtered(self._generated(operation))
        if withheld:
            failure = JobError(
                code="RAI_MEDIA_FILTERED",
                message="; ".join(reasons)[:500] or "Veo's safety filter withheld the video.",
                category=ErrorCategory.CONTENT_POLICY,
            )
        else:
            failure = JobError(
                code="NO_VIDEO",
                message="Veo finished the operation without a video.",
                category=ErrorCategory.GENERATION_FAILED,
            )
        return JobView(
            external_id=name, status=JobStatus.FAILED, raw_status="done:empty", error=failure
        )

    def _generated(self, operation: Mapping[str, Any]) -> dict[str, Any]:
        """The part of a finished operation holding videos and the RAI count: Gemini's
        ``response.generateVideoResponse``, Vertex's ``response``."""
        response = operation.get("response")
        if not isinstance(response, dict):
            raise UpstreamProtocolError(f"{self.name}: finished operation without a response")
        if self.vertex:
            if "videos" not in response and "raiMediaFilteredCount" not in response:
                raise UpstreamProtocolError(f"{self.name}: not a Vertex video response")
            return response
        generated = response.get("generateVideoResponse")
        if not isinstance(generated, dict):
            raise UpstreamProtocolError(f"{self.name}: not a Gemini video response")
        return generated

    def _videos(self, operation: Mapping[str, Any]) -> list[dict[str, str]]:
        """Each usable sample of a finished operation: ``{"url"}`` or, for an inline
        Vertex video, ``{"bytes"}`` (still base64)."""
        if operation.get("done") is not True or isinstance(operation.get("error"), dict):
            return []
        generated = self._generated(operation)
        samples = generated.get("videos" if self.vertex else "generatedSamples")
        found: list[dict[str, str]] = []
        for sample in samples if isinstance(samples, list) else ():
            if not isinstance(sample, dict):
                continue
            if self.vertex:
                gcs, inline = sample.get("gcsUri"), sample.get("bytesBase64Encoded")
                if isinstance(gcs, str) and (url := wire.gcs_download_url(gcs)):
                    found.append({"url": url})
                elif isinstance(inline, str) and inline:
                    found.append({"bytes": inline})
                continue
            video = sample.get("video")
            uri = video.get("uri") if isinstance(video, dict) else None
            if isinstance(uri, str) and (url := resolve_url(self.base_url, uri)):
                found.append({"url": url})
        return found

    async def _with_expiry(self, videos: tuple[ResultVideo, ...]) -> tuple[ResultVideo, ...]:
        """Each Gemini file's own ``expirationTime``, else the documented two days."""
        out = []
        for video in videos:
            expires = None
            if video.url is not None and ":download" in video.url:
                expires = await self._file_expiry(video.url.partition(":download")[0])
            if expires is None:
                expires = time.time() + GEMINI_RESULT_LIFETIME
            out.append(ResultVideo(url=video.url, expires_at=expires, needs_credentials=True))
        return tuple(out)

    async def _file_expiry(self, file_url: str) -> float | None:
        try:
            answer = await self._http.call(
                "GET", file_url, headers=await self._content_credentials(file_url)
            )
        except UpstreamError:
            return None  # the documented lifetime will do
        if answer.status >= 400 or not isinstance(answer.body, dict):
            return None
        return wire.parse_time(answer.body.get("expirationTime"))

    # -- credentials and errors ----------------------------------------------------------

    async def _authorize(self) -> None:
        # HttpUpstream sends its credentials to our own origin only.
        self._http.credentials["Authorization"] = await self._token.header()

    async def _content_credentials(self, url: str) -> dict[str, str]:
        """Credentials for a result URL on Google's own host for it when that is not the
        base URL's origin (HttpUpstream adds ours to our origin by itself)."""
        parts = urlsplit(url)
        if parts.scheme != "https":
            return {}
        if not self.vertex and parts.hostname == wire.GEMINI_HOST and self._api_key:
            return {"x-goog-api-key": self._api_key}
        if self.vertex and parts.hostname == wire.STORAGE_HOST:
            return {"Authorization": await self._token.header()}
        return {}

    def _content_error(self, answer: Answer) -> None:
        # Gemini answers 403 for a file that expired; either way the video is gone.
        if answer.status in (403, 404):
            raise UpstreamNotFound(
                f"{self.name}: the video has expired or is gone ({answer.status})",
                status=answer.status,
            )

    def _checked(self, answer: Answer, what: str) -> dict[str, Any]:
        if answer.status >= 400:
            self._raise_for(answer)
        return answer.object(self.name, what)

    def _raise_for(self, answer: Answer) -> None:
        message, word, reason, wait = wire.error_of(answer.body)
        if wait is None:
            wait = parse_retry_after(answer.headers)
        text = f"{self.name}: upstream {answer.status}: {message or answer.reason}"
        if answer.status == 429 or word == "RESOURCE_EXHAUSTED":
            raise RateLimited(text, status=answer.status, retry_after=wait)
        if answer.status == 503 and wait is not None:
            raise RateLimited(text, status=503, retry_after=wait)
        category = None
        if answer.status in (401, 403) or reason == "API_KEY_INVALID":
            # Our credentials, not the client's request: another provider may serve it.
            category = ErrorCategory.PROVIDER_UNAVAILABLE
        elif message and wire.about_policy(message):
            category = ErrorCategory.CONTENT_POLICY
        elif word == "FAILED_PRECONDITION":
            billing = "billing" in (message or "").lower()
            category = (
                ErrorCategory.INSUFFICIENT_CREDITS
                if billing
                else ErrorCategory.PROVIDER_UNAVAILABLE
            )
        raise_for_status(self.name, answer, message=message, code=reason or word, category=category)
