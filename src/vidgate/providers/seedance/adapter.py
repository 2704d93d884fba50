"""The Seedance ``Provider``: Ark's task calls (create, read, list, cancel) and its task
objects read back as jobs, results and usage."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, NoReturn
from urllib.parse import quote

import httpx

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
    RateLimited,
    ResultVideo,
    SubmitRequest,
    UpstreamJobSummary,
    UpstreamNotFound,
    UpstreamProtocolError,
    UpstreamRejected,
    UpstreamUnavailable,
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
from vidgate.providers.seedance import catalogue
from vidgate.providers.seedance.catalogue import CAPABILITIES, DEFAULT_MODELS, UNKNOWN_MODEL
from vidgate.providers.seedance.errors import category_of, error_of, job_error
from vidgate.providers.seedance.tasks import signed_expiry, summary_of, usage_of

# The package's name, as before the adapter became a package: log records keep it.
logger = logging.getLogger(__name__.rpartition(".")[0])

TASKS = "/contents/generations/tasks"
RESULT_LIFETIME = 86400.0  # video_url lives 24 h (BytePlus docs)
MAX_PAGE_SIZE = 500

_STATUSES = {
    "queued": JobStatus.QUEUED,
    "running": JobStatus.IN_PROGRESS,
    "succeeded": JobStatus.COMPLETED,
    "failed": JobStatus.FAILED,
    "cancelled": JobStatus.CANCELLED,
    "expired": JobStatus.EXPIRED,
}


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
        return CAPABILITIES.get(upstream_model, UNKNOWN_MODEL)

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
        found = [summary for item in items if (summary := summary_of(item)) is not None]
        found.sort(key=lambda s: s.created_at or 0, reverse=True)
        return found

    async def find_by_client_id(self, client_id: str) -> JobView | None:
        raise NotImplementedError("Ark tasks have no client-chosen id")

    # -- mapping -------------------------------------------------------------------------

    def wire_body(self, request: SubmitRequest) -> dict[str, Any]:
        """The create body for ``request``; an impossible request is refused here, before
        anything is sent."""
        return catalogue.wire_body(request)

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
            error = job_error(data, "TaskFailed", "The Seedance task failed.")
        elif status is JobStatus.EXPIRED:
            # Still queued when execution_expires_after ran out: Ark was too busy, which
            # another attempt (or provider) may not be.
            error = job_error(
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
            usage=usage_of(data),
            created_at=unix_seconds(data.get("created_at")),
        )

    def _video(self, data: Mapping[str, Any]) -> ResultVideo | None:
        content = data.get("content")
        raw = content.get("video_url") if isinstance(content, dict) else None
        url = resolve_url(self.base_url, raw) if isinstance(raw, str) else None
        if url is None:
            return None
        expires_at = signed_expiry(url)
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
        code, message = error_of(answer.body)
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


def _quote(task_id: str) -> str:
    return quote(task_id, safe="")
