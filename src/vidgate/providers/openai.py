"""Adapter for the OpenAI ``/v1/videos`` convention (OpenAI, and the resellers that copy it).

Every HTTP detail stops here: base URLs with path prefixes, the API key, model aliases,
relative ``url`` fields, the error envelope, ``Retry-After``. Callers get ``JobView``
values and the error tree of ``vidgate.providers.base``.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import httpx

from vidgate.config import ProviderConfig
from vidgate.domain.capabilities import Capabilities
from vidgate.domain.request import ImageRole, duration_text, neutral_to_size
from vidgate.domain.transitions import clamp_progress
from vidgate.providers.base import (
    ContentStream,
    ErrorCategory,
    Features,
    JobError,
    JobRef,
    JobStatus,
    JobView,
    ResultVideo,
    SubmitRequest,
    UpstreamJobSummary,
    UpstreamNotFound,
    UpstreamProtocolError,
    UpstreamRejected,
)
from vidgate.providers.http import (
    Answer,
    HttpUpstream,
    raise_for_status,
    resolve_url,
    unix_seconds,
    usable_id,
)

logger = logging.getLogger(__name__)

DEFAULT_MODELS = {
    "sora_video2": "sora-2",
    "sora_video2_pro": "sora-2-pro",
    "sora-2": "sora-2",
    "sora-2-pro": "sora-2-pro",
}

# OpenAI documents downloads for about an hour after completion (PROTOCOLS.md).
RESULT_LIFETIME = 3600.0

_SORA_2 = Capabilities(
    durations=(4.0, 8.0, 12.0),
    aspect_ratios=("16:9", "9:16"),
    resolutions=("720p",),
    image_roles=(ImageRole.FIRST_FRAME,),
    max_images=1,
    audio=True,
    negative_prompt=False,
    seed=False,
)
_SORA_2_PRO = Capabilities(
    durations=(4.0, 8.0, 12.0),
    aspect_ratios=("16:9", "9:16"),
    resolutions=("720p", "1080p"),
    image_roles=(ImageRole.FIRST_FRAME,),
    max_images=1,
    audio=True,
    negative_prompt=False,
    seed=False,
)
# A reseller may serve anything under any name: unknown models are not restricted.
_ANY = Capabilities(image_roles=(ImageRole.FIRST_FRAME,), max_images=1, audio=True)

_STATUS = {
    "queued": JobStatus.QUEUED,
    "pending": JobStatus.QUEUED,
    "submitted": JobStatus.QUEUED,
    "in_progress": JobStatus.IN_PROGRESS,
    "processing": JobStatus.IN_PROGRESS,
    "running": JobStatus.IN_PROGRESS,
    "generating": JobStatus.IN_PROGRESS,
    "completed": JobStatus.COMPLETED,
    "succeeded": JobStatus.COMPLETED,
    "success": JobStatus.COMPLETED,
    "failed": JobStatus.FAILED,
    "failure": JobStatus.FAILED,
    "error": JobStatus.FAILED,
    # An upstream "cancelled" we did not ask for ends the attempt as a failure.
    "cancelled": JobStatus.FAILED,
    "canceled": JobStatus.FAILED,
    "expired": JobStatus.EXPIRED,
}

# Job failures worth another (paid) attempt: the upstream says the generation itself
# broke, not that the request was unacceptable.
_RETRYABLE_JOB_CODES = frozenset(
    {
        "video_generation_failed",
        "generation_failed",
        "internal_error",
        "internal_server_error",
        "server_error",
        "service_unavailable",
        "timeout",
        "overloaded",
        "capacity_exceeded",
    }
)
_POLICY_WORDS = ("moderation", "policy", "safety", "content_filter", "blocked")


def job_status(word: object) -> JobStatus | None:
    """The neutral status of a ``/v1/videos`` status word; None for a word we do not know."""
    return _STATUS.get(word.strip().lower()) if isinstance(word, str) else None


def job_error_category(code: str) -> ErrorCategory:
    """The category of a ``/v1/videos`` job error code (a content decision is final)."""
    lowered = code.lower()
    if any(word in lowered for word in _POLICY_WORDS):
        return ErrorCategory.CONTENT_POLICY
    if lowered in _RETRYABLE_JOB_CODES:
        return ErrorCategory.GENERATION_FAILED
    if "quota" in lowered or "billing" in lowered or "credit" in lowered:
        return ErrorCategory.INSUFFICIENT_CREDITS
    return ErrorCategory.INVALID_REQUEST


class OpenAIVideosProvider:
    """A ``Provider`` for one upstream speaking the ``/v1/videos`` convention."""

    kind = "openai-videos"

    def __init__(self, config: ProviderConfig, *, client: httpx.AsyncClient | None = None) -> None:
        self.name = config.name
        self.base_url = config.base_url.rstrip("/")
        self.credential = config.credential_name()
        self.content_mode: str = config.content
        self.models = dict(config.models or DEFAULT_MODELS)
        self.max_concurrency = config.max_concurrency
        self.result_lifetime: float | None = RESULT_LIFETIME
        self.features = Features(
            cancel=True,
            list_jobs=True,
            idempotency_key=config.idempotency,
            content_route=True,
        )
        self.config = config
        headers = {}
        secret = config.secret()
        if secret:
            headers["Authorization"] = f"Bearer {secret}"
        self._http = HttpUpstream(
            config.name,
            self.base_url,
            timeout=config.timeout_seconds,
            max_concurrency=config.max_concurrency,
            credentials=headers,
            client=client,
        )

    def upstream_model(self, model: str) -> str | None:
        return self.models.get(model)

    def capabilities(self, upstream_model: str) -> Capabilities:
        if upstream_model == "sora-2":
            return _SORA_2
        if upstream_model == "sora-2-pro":
            return _SORA_2_PRO
        return _ANY

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- calls ---------------------------------------------------------------------------

    async def create(self, request: SubmitRequest, *, idempotency_key: str) -> JobView:
        params = request.params
        seconds = request.seconds
        if seconds is None and params.duration_seconds is not None:
            seconds = duration_text(params.duration_seconds)
        size = request.size or neutral_to_size(params.aspect_ratio, params.resolution)
        body: dict[str, Any] = {"prompt": request.prompt, "model": request.model}
        if seconds is not None:
            body["seconds"] = seconds
        if size is not None:
            body["size"] = size
        if request.input_reference:
            body["input_reference"] = {"image_url": request.input_reference}
        extra = dict(params.extra)
        clash = sorted(set(extra) & {"prompt", "model", "seconds", "size", "input_reference"})
        if clash:
            raise UpstreamRejected(
                f"extra may not set {', '.join(clash)}: use the request's own fields",
                status=400,
                code="invalid_extra",
            )
        body.update(extra)
        answer = await self._http.call(
            "POST", "/videos", json=body, headers={"Idempotency-Key": idempotency_key}
        )
        return self._job(self._checked(answer, "POST /videos"))

    async def get(self, job: JobRef) -> JobView:
        answer = await self._http.call("GET", f"/videos/{job.external_id}")
        return self._job(self._checked(answer, "GET /videos/{id}"))

    async def cancel(self, job: JobRef) -> None:
        with contextlib.suppress(UpstreamNotFound):
            self._checked(
                await self._http.call("DELETE", f"/videos/{job.external_id}"), "DELETE /videos/{id}"
            )

    async def open_content(
        self, job: JobRef, *, url: str | None = None, range_header: str | None = None
    ) -> ContentStream:
        if url is not None:
            # A reseller's public `url`: fetched as a browser would (our key only goes
            # to our own origin, see HttpUpstream).
            return await self._http.stream(url, range_header=range_header)
        return await self._http.stream(
            f"/videos/{job.external_id}/content",
            range_header=range_header,
            on_error=self._raise_for,
        )

    async def recent_jobs(self, *, limit: int) -> list[UpstreamJobSummary]:
        answer = await self._http.call(
            "GET", "/videos", params={"order": "desc", "limit": str(max(1, min(limit, 100)))}
        )
        data = self._checked(answer, "GET /videos")
        items = data.get("data")
        if not isinstance(items, list):
            raise UpstreamProtocolError(f"{self.name}: job list without a data array")
        found = []
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                continue
            found.append(
                UpstreamJobSummary(
                    external_id=item["id"],
                    prompt=_text(item.get("prompt")),
                    model=_text(item.get("model")),
                    seconds=_text(item.get("seconds")),
                    size=_text(item.get("size")),
                    created_at=unix_seconds(item.get("created_at")),
                )
            )
        return found

    async def find_by_client_id(self, client_id: str) -> JobView | None:
        raise NotImplementedError("/v1/videos has no client-chosen job id")

    # -- plumbing ------------------------------------------------------------------------

    def _checked(self, answer: Answer, what: str) -> dict[str, Any]:
        if answer.status >= 400:
            self._raise_for(answer)
        return answer.object(self.name, what)

    def _raise_for(self, answer: Answer) -> None:
        message, code = _error_of(answer.body)
        category = None
        if code is not None:
            category = job_error_category(code)
            if category is ErrorCategory.GENERATION_FAILED:
                category = None
        raise_for_status(self.name, answer, message=message, code=code, category=category)

    def _job(self, data: dict[str, Any]) -> JobView:
        external_id = usable_id(self.name, data.get("id"))
        word = data.get("status")
        status = job_status(word)
        raw_url = data.get("url")
        url = resolve_url(self.base_url, raw_url) if isinstance(raw_url, str) else None
        expires_at = unix_seconds(data.get("expires_at"))
        videos: tuple[ResultVideo, ...] = ()
        if status is JobStatus.COMPLETED:
            # Without a `url`, the video is behind the authenticated content route.
            videos = (
                ResultVideo(
                    url=url,
                    expires_at=float(expires_at) if expires_at is not None else None,
                ),
            )
        error = data.get("error")
        job_error = None
        if isinstance(error, dict):
            code = _short(error.get("code"), "UPSTREAM_FAILED")
            job_error = JobError(
                code=code,
                message=_short(error.get("message"), "The upstream video job failed."),
                category=job_error_category(code),
            )
        elif status is JobStatus.EXPIRED:
            job_error = JobError(
                code="UPSTREAM_EXPIRED",
                message="The upstream dropped the job before running it.",
                category=ErrorCategory.PROVIDER_UNAVAILABLE,
            )
        return JobView(
            external_id=external_id,
            status=status,
            raw_status=word if isinstance(word, str) else None,
            progress=clamp_progress(data.get("progress")),
            videos=videos,
            error=job_error,
            created_at=unix_seconds(data.get("created_at")),
        )


def _error_of(body: object) -> tuple[str | None, str | None]:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        message = error.get("message")
        code = error.get("code")
        return (
            message if isinstance(message, str) else None,
            code if isinstance(code, str) else None,
        )
    return None, None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _short(value: object, default: str) -> str:
    if isinstance(value, str) and value.replace("\x00", "").strip():
        return value.replace("\x00", "").strip()[:500]
    return default
