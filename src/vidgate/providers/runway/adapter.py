"""``RunwayProvider``: the calls, and the reading of Runway's answers.

Statuses (``THROTTLED`` is a queue, not a failure), ``progress`` 0..1 as 0..100,
``failureCode`` families as error categories, signed output URLs with their expiry, and
the error envelope (``{"error": ...}``, plus ``issues`` for a validation failure).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import jwt

from vidgate.config import ProviderConfig
from vidgate.domain.capabilities import Capabilities
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
    Usage,
)
from vidgate.providers.http import (
    Answer,
    HttpUpstream,
    raise_for_status,
    resolve_url,
    usable_id,
)
from vidgate.providers.runway import catalogue

logger = logging.getLogger(__name__)

# The current version in Runway's docs and the official SDKs' default.
API_VERSION = "2024-11-06"
# Output URLs "will expire within 24-48 hours": the short end, when a URL does not say.
RESULT_LIFETIME = 24 * 3600.0

_STATUS = {
    "PENDING": JobStatus.QUEUED,
    "THROTTLED": JobStatus.QUEUED,  # over the account's concurrency: queued, not failed
    "RUNNING": JobStatus.IN_PROGRESS,
    "SUCCEEDED": JobStatus.COMPLETED,
    "FAILED": JobStatus.FAILED,
    "CANCELLED": JobStatus.CANCELLED,
}


def failure_category(code: str, message: str = "") -> tuple[ErrorCategory, bool | None]:
    """The category of a task's ``failureCode`` and whether another attempt may help
    (None: as the category says). Runway's task-failure guide says which to retry."""
    upper = code.upper()
    if upper.startswith(("SAFETY.", "INPUT_PREPROCESSING.SAFETY")):
        return ErrorCategory.CONTENT_POLICY, False
    if upper.startswith("INPUT_PREPROCESSING.INTERNAL"):
        # The moderation step itself broke, not the request.
        return ErrorCategory.PROVIDER_UNAVAILABLE, True
    if upper.startswith(("INPUT_PREPROCESSING.", "ASSET.")):
        return ErrorCategory.INVALID_REQUEST, False
    if upper == "INTERNAL" or upper.startswith("INTERNAL."):
        return ErrorCategory.GENERATION_FAILED, True
    if "credit" in message.lower():
        return ErrorCategory.INSUFFICIENT_CREDITS, False
    return ErrorCategory.GENERATION_FAILED, None


class RunwayProvider:
    """A ``Provider`` for Runway's API (or anything speaking it)."""

    kind = "runway"

    def __init__(self, config: ProviderConfig, *, client: httpx.AsyncClient | None = None) -> None:
        self.name = config.name
        self.base_url = config.base_url.rstrip("/")
        self.credential = config.credential_name()
        self.content_mode: str = config.content
        self.models = dict(config.models or catalogue.DEFAULT_MODELS)
        self.max_concurrency = config.max_concurrency
        self.result_lifetime: float | None = RESULT_LIFETIME
        self.features = Features(
            cancel=True,
            # No Idempotency-Key and no task listing: a lost create cannot be found again.
            # open_content works without a URL: reading the task signs fresh ones.
            content_route=True,
        )
        self.config = config
        credentials = {"X-Runway-Version": config.api_version or API_VERSION}
        secret = config.secret()
        if secret:
            credentials["Authorization"] = f"Bearer {secret}"
        self._http = HttpUpstream(
            config.name,
            self.base_url,
            timeout=config.timeout_seconds,
            max_concurrency=config.max_concurrency,
            credentials=credentials,
            client=client,
        )

    def upstream_model(self, model: str) -> str | None:
        return self.models.get(model)

    def capabilities(self, upstream_model: str) -> Capabilities:
        return catalogue.spec_of(upstream_model).capabilities

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- calls ---------------------------------------------------------------------------

    async def create(self, request: SubmitRequest, *, idempotency_key: str) -> JobView:
        # Runway has no idempotency key: the key is ours alone (see Features).
        path, body = catalogue.wire_body(request)
        answer = await self._http.call("POST", path, json=body)
        data = self._checked(answer, f"POST {path}")
        return JobView(external_id=_task_id(self.name, data), status=JobStatus.QUEUED)

    async def get(self, job: JobRef) -> JobView:
        answer = await self._http.call("GET", _task_path(job.external_id))
        return self._job(self._checked(answer, "GET /v1/tasks/{id}"))

    async def cancel(self, job: JobRef) -> None:
        # Runway cancels a queued or running task and deletes a finished one; either way
        # it is gone afterwards, and a task already gone is what we wanted.
        with contextlib.suppress(UpstreamNotFound):
            answer = await self._http.call("DELETE", _task_path(job.external_id))
            if answer.status >= 400:
                self._raise_for(answer)

    async def open_content(
        self, job: JobRef, *, url: str | None = None, range_header: str | None = None
    ) -> ContentStream:
        if url is None:
            url = await self._fresh_url(job)
            return await self._http.stream(url, range_header=range_header, on_error=_gone)
        try:
            return await self._http.stream(url, range_header=range_header, on_error=_gone)
        except UpstreamNotFound:
            # A signed URL lives a day or two; the task hands out a fresh one.
            fresh = await self._fresh_url(job)
            return await self._http.stream(fresh, range_header=range_header, on_error=_gone)

    async def recent_jobs(self, *, limit: int) -> list[UpstreamJobSummary]:
        raise NotImplementedError("Runway has no endpoint listing tasks")

    async def find_by_client_id(self, client_id: str) -> JobView | None:
        raise NotImplementedError("Runway tasks have no client-chosen id")

    # -- plumbing ------------------------------------------------------------------------

    async def _fresh_url(self, job: JobRef) -> str:
        view = await self.get(job)
        for video in view.videos:
            if video.url is not None:
                return video.url
        raise UpstreamNotFound(
            f"{self.name}: task {job.external_id} has no output (status {view.raw_status})"
        )

    def _checked(self, answer: Answer, what: str) -> dict[str, Any]:
        if answer.status >= 400:
            self._raise_for(answer)
        return answer.object(self.name, what)

    def _raise_for(self, answer: Answer) -> None:
        message, issues = _error_of(answer.body)
        if issues:
            message = f"{message or 'Invalid request'}: {'; '.join(issues)}"
        code = None
        category = None
        if answer.status == 400 and message is not None and "credit" in message.lower():
            code, category = "INSUFFICIENT_CREDITS", ErrorCategory.INSUFFICIENT_CREDITS
        elif answer.status == 400 and issues:
            code = "VALIDATION_FAILED"
        elif answer.status == 401:
            code = "UNAUTHORIZED"
        raise_for_status(self.name, answer, message=message, code=code, category=category)

    def _job(self, data: dict[str, Any]) -> JobView:
        external_id = _task_id(self.name, data)
        word = data.get("status")
        if not isinstance(word, str):
            raise UpstreamProtocolError(f"{self.name}: task {external_id} without a status")
        status = _STATUS.get(word.strip().upper())
        progress = _progress(data.get("progress")) if status is JobStatus.IN_PROGRESS else None
        videos: tuple[ResultVideo, ...] = ()
        error = None
        if status is JobStatus.COMPLETED:
            videos = self._videos(data.get("output"))
            if not videos:
                status = JobStatus.FAILED
                error = JobError(
                    code="NO_OUTPUT",
                    message="Runway reported the task SUCCEEDED without an output URL.",
                    category=ErrorCategory.GENERATION_FAILED,
                )
        elif status is JobStatus.FAILED:
            code = _short(data.get("failureCode"), 200) or "UPSTREAM_FAILED"
            message = _short(data.get("failure"), 500) or "The Runway task failed."
            category, retryable = failure_category(code, message)
            error = JobError(code=code, message=message, category=category, retryable=retryable)
        elif status is JobStatus.CANCELLED:
            error = JobError(
                code="CANCELLED",
                message="The task was cancelled at Runway.",
                category=ErrorCategory.PROVIDER_UNAVAILABLE,
                retryable=False,
            )
        usage = None
        cost = data.get("cost")
        if status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED) and isinstance(
            cost, dict
        ):
            credits = _number(cost.get("credits"))
            if credits is not None:
                usage = Usage(cost=credits, currency="credits")
        return JobView(
            external_id=external_id,
            status=status,
            raw_status=word,
            progress=progress,
            videos=videos,
            error=error,
            usage=usage,
            created_at=_created_at(data.get("createdAt")),
        )

    def _videos(self, output: object) -> tuple[ResultVideo, ...]:
        if not isinstance(output, list):
            return ()
        found = []
        for item in output:
            url = resolve_url(self.base_url, item) if isinstance(item, str) else None
            if url is not None:
                found.append(ResultVideo(url=url, expires_at=_url_expiry(url)))
        return tuple(found)


# -- the answers ---------------------------------------------------------------------------


def _task_path(external_id: str) -> str:
    return f"/v1/tasks/{quote(external_id, safe='')}"


def _task_id(name: str, data: Mapping[str, Any]) -> str:
    return usable_id(name, data.get("id"), "task")


def _error_of(body: object) -> tuple[str | None, list[str]]:
    """Runway's ``error`` text and its validation ``issues`` as ``path: message``."""
    if not isinstance(body, dict):
        return None, []
    error = body.get("error")
    message = _short(error, 500) if isinstance(error, str) else None
    issues = []
    raw = body.get("issues")
    for issue in raw[:5] if isinstance(raw, list) else ():
        if not isinstance(issue, dict):
            continue
        path = issue.get("path")
        where = ".".join(str(p) for p in path) if isinstance(path, list) and path else "body"
        text = _short(issue.get("message"), 200) or "invalid"
        issues.append(f"{where}: {text}")
    return message, issues


def _progress(value: object) -> int | None:
    number = _number(value)
    if number is None or not 0 <= number <= 1:
        return None
    return min(100, int(round(number * 100, 6)))


def _url_expiry(url: str) -> float:
    """When a signed output URL stops working: its ``_jwt``'s ``exp`` when it has one
    (read, not verified: it is Runway's to check), else the documented lifetime."""
    token = parse_qs(urlsplit(url).query).get("_jwt", [None])[0]
    if token:
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            claims = {}
        expires = _number(claims.get("exp"))
        if expires is not None and 0 < expires < 1e11:
            return expires
    return time.time() + RESULT_LIFETIME


def _created_at(value: object) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return int(moment.timestamp())


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _short(value: object, limit: int) -> str | None:
    if not isinstance(value, str):
        return None
    cleaned = value.replace("\x00", "").strip()
    return cleaned[:limit] if cleaned else None


def _gone(answer: Answer) -> None:
    """A signed output URL that answers 401/403/404/410 has expired or was deleted."""
    if answer.status in (401, 403, 404, 410):
        raise UpstreamNotFound(
            f"output URL answered {answer.status}: expired or deleted", status=answer.status
        )
