"""Adapter for ByteDance Seedance on Volcengine Ark / BytePlus ModelArk (PROTOCOLS.md §1.9).

``POST {base}/contents/generations/tasks`` with a ``content`` array (the prompt as a
``text`` item, images as ``image_url`` items with a role) creates a task and answers
``{id}``; ``GET .../tasks/{id}`` reads it, ``GET .../tasks`` lists recent ones and
``DELETE .../tasks/{id}`` cancels a queued task (a running one cannot be stopped) or
deletes a finished one's record. Auth is ``Bearer <API key>``.

Seedance's older text commands (``--ratio 16:9 --duration 5`` appended to the prompt)
are never used: the ratio, duration, resolution, seed and audio travel as the JSON
fields PROTOCOLS.md lists, which every current model reads and the 2.x ones require.

Errors: Ark's ``error.code`` decides, the HTTP status is the fallback. A finished video
is a plain pre-signed URL (no credentials), valid 24 hours; its own ``X-Tos-Date`` and
``X-Tos-Expires`` say exactly when it lapses.
"""

from __future__ import annotations

import calendar
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any, NoReturn
from urllib.parse import parse_qs, quote, urlsplit

import httpx

from vidgate.config import ProviderConfig
from vidgate.domain.capabilities import Capabilities
from vidgate.domain.request import ImageRole
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
    UpstreamJobSummary,
    UpstreamNotFound,
    UpstreamProtocolError,
    UpstreamRejected,
    UpstreamUnavailable,
    Usage,
)
from vidgate.providers.http import (
    Answer,
    HttpUpstream,
    parse_retry_after,
    raise_for_status,
    resolve_url,
    unix_seconds,
    usable_id,
)

logger = logging.getLogger(__name__)

TASKS = "/contents/generations/tasks"
RESULT_LIFETIME = 86400.0  # video_url lives 24 h (BytePlus docs)
MAX_PAGE_SIZE = 500

# Client model name -> Ark model id, when the provider's config lists none.
DEFAULT_MODELS: dict[str, str] = {
    "seedance-2.0": "dreamina-seedance-2-0-260128",
    "seedance-2.0-fast": "dreamina-seedance-2-0-fast-260128",
    "seedance-2.0-mini": "dreamina-seedance-2-0-mini-260615",
    "seedance-2.5": "dreamina-seedance-2-5-260628",
}

_RATIOS = ("16:9", "4:3", "1:1", "3:4", "9:16", "21:9", "adaptive")
_ALL_ROLES = (ImageRole.FIRST_FRAME, ImageRole.LAST_FRAME, ImageRole.REFERENCE)


def _seedance(max_seconds: int, resolutions: tuple[str, ...]) -> Capabilities:
    # Whole seconds only; first/last frames or up to 9 reference images; sound on request;
    # no negative prompt field exists.
    return Capabilities(
        durations=tuple(float(s) for s in range(4, max_seconds + 1)),
        aspect_ratios=_RATIOS,
        resolutions=resolutions,
        image_roles=_ALL_ROLES,
        max_images=9,
        audio=True,
        negative_prompt=False,
        seed=True,
    )


CAPABILITIES: dict[str, Capabilities] = {
    "dreamina-seedance-2-0-260128": _seedance(15, ("480p", "720p", "1080p")),
    "dreamina-seedance-2-0-fast-260128": _seedance(15, ("480p", "720p")),
    "dreamina-seedance-2-0-mini-260615": _seedance(15, ("480p", "720p")),
    "dreamina-seedance-2-5-260628": _seedance(30, ("480p", "720p", "1080p")),
}
# A custom endpoint id (ep-...) or a model we do not know: only what every Seedance does.
_UNKNOWN_MODEL = Capabilities(
    aspect_ratios=_RATIOS,
    image_roles=_ALL_ROLES,
    max_images=9,
    audio=True,
    negative_prompt=False,
)

_STATUSES = {
    "queued": JobStatus.QUEUED,
    "running": JobStatus.IN_PROGRESS,
    "succeeded": JobStatus.COMPLETED,
    "failed": JobStatus.FAILED,
    "cancelled": JobStatus.CANCELLED,
    "expired": JobStatus.EXPIRED,
}
_ROLES = {
    ImageRole.FIRST_FRAME: "first_frame",
    ImageRole.LAST_FRAME: "last_frame",
    ImageRole.REFERENCE: "reference_image",
}
_RATE_CODES = ("RequestBurstTooFast", "QuotaExceeded")
_CREDIT_CODES = ("AccountOverdueError", "SetLimitExceeded", "OperationDenied.ServiceOverdue")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# The Ark fields a request may add through ``params.extra``, and what each must be.
EXTRA_FIELDS: dict[str, Callable[[object], bool]] = {
    "watermark": lambda v: isinstance(v, bool),
    "camera_fixed": lambda v: isinstance(v, bool),
    "return_last_frame": lambda v: isinstance(v, bool),
    "draft": lambda v: isinstance(v, bool),
    "service_tier": lambda v: v in ("default", "flex"),
    "execution_expires_after": lambda v: _is_int(v) and v in range(3600, 259_201),
    "safety_identifier": lambda v: isinstance(v, str) and 0 < len(v) <= 64,
}


def category_of(code: str) -> ErrorCategory:
    """Ark's error code (of a refused request or a failed task) as a neutral category."""
    if "SensitiveContentDetected" in code or "RiskDetection" in code:
        return ErrorCategory.CONTENT_POLICY
    if code.startswith("RateLimitExceeded") or code in _RATE_CODES:
        return ErrorCategory.RATE_LIMITED
    if code in _CREDIT_CODES:
        return ErrorCategory.INSUFFICIENT_CREDITS
    if code == "ServerOverloaded":
        return ErrorCategory.PROVIDER_UNAVAILABLE
    if code.startswith(
        (
            "InvalidParameter",
            "MissingParameter",
            "InvalidEndpoint",
            "ModelNotOpen",
            "AccessDenied",
            "AuthenticationError",
            "OperationDenied",
        )
    ):
        return ErrorCategory.INVALID_REQUEST
    return ErrorCategory.GENERATION_FAILED


class SeedanceProvider:
    """A ``Provider`` for one Ark (Volcengine) or ModelArk (BytePlus) account and region."""

    kind = "seedance"
    features = Features(
        cancel=True,
        cancel_running=False,  # Ark refuses DELETE on a running task
        list_jobs=True,
        callbacks=True,  # callback_url, unsigned: a wake-up, never trusted as a result
    )
    result_lifetime: float | None = RESULT_LIFETIME

    def __init__(self, config: ProviderConfig, *, client: httpx.AsyncClient | None = None) -> None:
        self.name = config.name
        self.base_url = config.base_url.rstrip("/")
        self.credential = config.credential_name()
        self.content_mode: str = config.content
        self.models = dict(config.models) or dict(DEFAULT_MODELS)
        self.max_concurrency = config.max_concurrency
        self._secret = config.secret()
        # The key goes on API calls only (see _auth), never on the client: result URLs
        # live on a storage host that must not see it.
        self._http = HttpUpstream(
            config.name,
            self.base_url,
            timeout=config.timeout_seconds,
            max_concurrency=config.max_concurrency,
            client=client,
        )

    def upstream_model(self, model: str) -> str | None:
        return self.models.get(model)

    def capabilities(self, upstream_model: str) -> Capabilities:
        return CAPABILITIES.get(upstream_model, _UNKNOWN_MODEL)

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- calls ---------------------------------------------------------------------------

    async def create(self, request: SubmitRequest, *, idempotency_key: str) -> JobView:
        # Ark has no idempotency key nor client-chosen id: the key is not sent.
        body = self.wire_body(request)
        answer = await self._api("POST", TASKS, json=body)
        if answer.status >= 400:
            self._raise_for(answer, creating=True)
        data = answer.object(self.name, "create")
        return JobView(external_id=self._task_id(data), status=JobStatus.QUEUED)

    async def get(self, job: JobRef) -> JobView:
        answer = await self._api("GET", f"{TASKS}/{_quote(job.external_id)}")
        if answer.status >= 400:
            self._raise_for(answer)
        view = self.view(answer.object(self.name, "task"))
        if view.external_id != job.external_id:
            raise UpstreamProtocolError(f"{self.name}: asked for one task, answered another")
        return view

    async def cancel(self, job: JobRef) -> None:
        answer = await self._api("DELETE", f"{TASKS}/{_quote(job.external_id)}")
        if answer.status == 404:
            return  # already gone: nothing left to stop
        if answer.status == 400 and (await self.get(job)).status is JobStatus.CANCELLED:
            return  # Ark refuses to cancel twice; a repeated cancel has what it wanted
        if answer.status >= 400:
            self._raise_for(answer)

    async def open_content(
        self, job: JobRef, *, url: str | None = None, range_header: str | None = None
    ) -> ContentStream:
        """Stream a finished video. Ark has no content route: without a ``url`` the task
        is read again for its (pre-signed) one."""
        if url is None:
            view = await self.get(job)
            url = next((video.url for video in view.videos if video.url), None)
            if url is None:
                raise UpstreamNotFound(f"{self.name}: task {job.external_id} has no video")
        return await self._http.stream(url, range_header=range_header, on_error=self._storage_error)

    async def recent_jobs(self, *, limit: int) -> list[UpstreamJobSummary]:
        size = max(1, min(limit, MAX_PAGE_SIZE))
        answer = await self._api("GET", TASKS, params={"page_num": "1", "page_size": str(size)})
        if answer.status >= 400:
            self._raise_for(answer)
        items = answer.object(self.name, "task list").get("items")
        if not isinstance(items, list):
            raise UpstreamProtocolError(f"{self.name}: task list without an items array")
        found = [summary for item in items if (summary := _summary(item)) is not None]
        found.sort(key=lambda s: s.created_at or 0, reverse=True)
        return found

    async def find_by_client_id(self, client_id: str) -> JobView | None:
        raise NotImplementedError("Ark tasks have no client-chosen id")

    # -- mapping -------------------------------------------------------------------------

    def wire_body(self, request: SubmitRequest) -> dict[str, Any]:
        """The create body for ``request``; an impossible request is refused here, before
        anything is sent."""
        params = request.params
        if params.negative_prompt:
            raise _refuse("Seedance has no negative prompt")
        content: list[dict[str, Any]] = []
        if request.prompt:
            content.append({"type": "text", "text": request.prompt})
        for image in params.images:
            content.append(
                {"type": "image_url", "image_url": {"url": image.url}, "role": _ROLES[image.role]}
            )
        body: dict[str, Any] = {"model": request.model, "content": content}
        if params.aspect_ratio is not None:
            body["ratio"] = params.aspect_ratio
        if params.duration_seconds is not None:
            duration = params.duration_seconds
            if not math.isfinite(duration) or not float(duration).is_integer():
                raise _refuse(f"Seedance takes whole seconds, not {duration:g}")
            body["duration"] = int(duration)
        if params.resolution is not None:
            body["resolution"] = params.resolution
        if params.seed is not None:
            if not -1 <= params.seed <= 4_294_967_295:
                raise _refuse("seed must be between -1 and 4294967295")
            body["seed"] = params.seed
        if params.audio is not None:
            body["generate_audio"] = params.audio
        if request.callback_url:
            body["callback_url"] = request.callback_url
        body.update(_extra(params.extra))
        return body

    def view(self, data: Mapping[str, Any]) -> JobView:
        """A task object as a ``JobView``."""
        task_id = self._task_id(data)
        word = data.get("status")
        if not isinstance(word, str):
            raise UpstreamProtocolError(f"{self.name}: task {task_id} without a status word")
        status = _STATUSES.get(word)
        videos: tuple[ResultVideo, ...] = ()
        error = None
        if status is JobStatus.COMPLETED:
            video = self._video(data)
            if video is None:
                status = JobStatus.FAILED
                error = JobError(
                    code="NoVideo",
                    message="The task succeeded without a video URL.",
                    category=ErrorCategory.GENERATION_FAILED,
                )
            else:
                videos = (video,)
        elif status is JobStatus.FAILED:
            error = _job_error(data, "TaskFailed", "The Seedance task failed.")
        elif status is JobStatus.EXPIRED:
            # Still queued when execution_expires_after ran out: Ark was too busy, which
            # another attempt (or provider) may not be.
            error = _job_error(
                data,
                "TaskExpired",
                "The task expired in Ark's queue before it ran.",
                category=ErrorCategory.PROVIDER_UNAVAILABLE,
            )
        if status is None:
            logger.info(
                "upstream reported an unknown status word",
                extra={"provider": self.name, "externalVideoId": task_id, "status": word[:64]},
            )
        return JobView(
            external_id=task_id,
            status=status,
            raw_status=word[:64],
            progress=None,  # Ark reports none
            videos=videos,
            error=error,
            usage=_usage(data),
            created_at=unix_seconds(data.get("created_at")),
        )

    def _video(self, data: Mapping[str, Any]) -> ResultVideo | None:
        content = data.get("content")
        raw = content.get("video_url") if isinstance(content, dict) else None
        url = resolve_url(self.base_url, raw) if isinstance(raw, str) else None
        if url is None:
            return None
        expires_at = _signed_expiry(url)
        if expires_at is None:
            finished = unix_seconds(data.get("updated_at"))
            expires_at = finished + RESULT_LIFETIME if finished is not None else None
        return ResultVideo(url=url, expires_at=expires_at, needs_credentials=False)

    def _task_id(self, data: Mapping[str, Any]) -> str:
        return usable_id(self.name, data.get("id"), "task")

    # -- plumbing ------------------------------------------------------------------------

    async def _api(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        params: Mapping[str, str] | None = None,
    ) -> Answer:
        headers = {"Authorization": f"Bearer {self._secret}"} if self._secret else None
        return await self._http.call(method, path, json=json, params=params, headers=headers)

    def _raise_for(self, answer: Answer, *, creating: bool = False) -> NoReturn:
        """Ark's reading of an error answer: its code first, the HTTP status after."""
        code, message = _error_of(answer.body)
        status = answer.status
        text = f"{self.name}: upstream {status} {code or ''}: {message or answer.reason}"
        category = category_of(code) if code else None
        if category is ErrorCategory.RATE_LIMITED:
            # QuotaExceeded counts queued tasks: wait for one to start, not for a window.
            raise RateLimited(
                text,
                status=status,
                retry_after=parse_retry_after(answer.headers),
                concurrency=code == "QuotaExceeded",
            )
        if category is ErrorCategory.PROVIDER_UNAVAILABLE:
            raise UpstreamUnavailable(text, status=status, maybe_received=False)
        if category in (ErrorCategory.CONTENT_POLICY, ErrorCategory.INSUFFICIENT_CREDITS):
            raise UpstreamRejected(message or text, status=status, code=code, category=category)
        if creating and status == 404:
            # At create, a 404 is a model or endpoint the account cannot call, not a lost job.
            raise UpstreamRejected(
                message or text, status=status, code=code, category=ErrorCategory.INVALID_REQUEST
            )
        raise_for_status(self.name, answer, message=message, code=code, category=category)

    def _storage_error(self, answer: Answer) -> None:
        """TOS refuses an expired (or deleted) result with 403/404: the video is gone."""
        if answer.status in (403, 404):
            code = answer.body.get("Code") if isinstance(answer.body, dict) else None
            shown = code if isinstance(code, str) else str(answer.status)
            raise UpstreamNotFound(
                f"{self.name}: the result URL is no longer valid ({shown[:64]})",
                status=answer.status,
            )


def _refuse(message: str) -> UpstreamRejected:
    return UpstreamRejected(message, status=400, category=ErrorCategory.INVALID_REQUEST)


def _extra(extra: Mapping[str, Any]) -> dict[str, Any]:
    """``params.extra`` checked against the Ark fields it may set (unknown or mistyped keys
    are refused: a typo must not silently change nothing, or a core field)."""
    for key, value in extra.items():
        check = EXTRA_FIELDS.get(key)
        if check is None:
            raise _refuse(
                f"Unknown Seedance parameter {key!r}; allowed: {', '.join(sorted(EXTRA_FIELDS))}."
            )
        if not check(value):
            raise _refuse(f"Invalid value for the Seedance parameter {key!r}.")
    return dict(extra)


def _quote(task_id: str) -> str:
    return quote(task_id, safe="")


def _error_of(body: object) -> tuple[str | None, str | None]:
    """``(code, message)`` of Ark's ``{"error": {...}}`` envelope, capped in length."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, None
    code, message = error.get("code"), error.get("message")
    return (
        code[:128] if isinstance(code, str) and code else None,
        message[:500] if isinstance(message, str) and message else None,
    )


def _job_error(
    data: Mapping[str, Any],
    default_code: str,
    default_message: str,
    *,
    category: ErrorCategory | None = None,
) -> JobError:
    code, message = _error_of(data)
    return JobError(
        code=code or default_code,
        message=message or default_message,
        category=category or (category_of(code) if code else ErrorCategory.GENERATION_FAILED),
    )


def _usage(data: Mapping[str, Any]) -> Usage | None:
    usage = data.get("usage")
    if not isinstance(usage, dict):
        return None
    total, completion = usage.get("total_tokens"), usage.get("completion_tokens")
    tokens = total if _is_int(total) else completion if _is_int(completion) else None
    duration = data.get("duration")
    resolution = data.get("resolution")
    seconds = (
        float(duration)
        if isinstance(duration, int) and not isinstance(duration, bool) and duration > 0
        else None
    )
    return Usage(
        tokens=tokens,
        seconds=seconds,
        resolution=resolution if isinstance(resolution, str) else None,
    )


def _signed_expiry(url: str) -> float | None:
    """When a pre-signed URL lapses, from its own query (TOS or S3 style), if it says."""
    query = parse_qs(urlsplit(url).query)
    for prefix in ("X-Tos-", "X-Amz-"):
        dates, lifetimes = query.get(prefix + "Date"), query.get(prefix + "Expires")
        if not dates or not lifetimes or not lifetimes[0].isdigit():
            continue
        try:
            signed = calendar.timegm(time.strptime(dates[0], "%Y%m%dT%H%M%SZ"))
        except ValueError:
            continue
        return float(signed + int(lifetimes[0]))
    return None


def _summary(item: object) -> UpstreamJobSummary | None:
    """One listed task, for recognising an interrupted submission. Ark's task objects do
    not repeat the prompt, and their duration and size are what Ark chose when the request
    left them unset: only the model and the creation time are given, since a field that
    differs from the request would wrongly rule our own task out."""
    if not isinstance(item, dict):
        return None
    task_id = item.get("id")
    if not isinstance(task_id, str) or not task_id:
        return None
    model = item.get("model")
    return UpstreamJobSummary(
        external_id=task_id,
        prompt=None,
        model=model if isinstance(model, str) else None,
        seconds=None,
        size=None,
        created_at=unix_seconds(item.get("created_at")),
    )
