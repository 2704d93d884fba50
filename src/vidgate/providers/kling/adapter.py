"""The Kling ``Provider``: the calls, with every request's JWT, and Kling's answers (its
``{code, message, request_id, data}`` envelope, task statuses and results) read back."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any, NoReturn
from urllib.parse import quote

import httpx

from vidgate.config import ConfigError, ProviderConfig
from vidgate.domain.capabilities import Capabilities
from vidgate.providers import http
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
from vidgate.providers.kling.auth import Token
from vidgate.providers.kling.catalogue import DEFAULT_MODELS, FAMILIES, GENERIC, MODELS, wire_body
from vidgate.providers.kling.errors import category_of, error_of, failure

# The package's name, as before the adapter became a package: log records keep it.
logger = logging.getLogger(__name__.rpartition(".")[0])

# "Generated images/videos are cleaned up after 30 days" (PROTOCOLS.md §1.4).
RESULT_LIFETIME = 30 * 86400.0

_STATUSES = {
    "submitted": JobStatus.QUEUED,
    "processing": JobStatus.IN_PROGRESS,
    "succeed": JobStatus.COMPLETED,
    "failed": JobStatus.FAILED,
}


class KlingProvider:
    """A ``Provider`` for one configured Kling account."""

    kind = "kling"
    features = Features(client_id=True, callbacks=True)
    result_lifetime: float | None = RESULT_LIFETIME

    def __init__(
        self,
        config: ProviderConfig,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        access_key, secret_key = config.secret("access_key"), config.secret("secret_key")
        if not access_key or not secret_key:
            raise ConfigError(
                f'provider {config.name!r}: kind = "kling" needs access_key and secret_key '
                "(or access_key_env / secret_key_env, or access_key_file / secret_key_file)"
            )
        self.name = config.name
        self.base_url = config.base_url.rstrip("/")
        self.credential = config.credential_name()
        self.content_mode: str = config.content
        self.models = dict(config.models or DEFAULT_MODELS)
        self.max_concurrency = config.max_concurrency
        self._clock = clock
        self._token = Token(access_key, secret_key, clock)
        self._http = http.HttpUpstream(
            config.name,
            self.base_url,
            timeout=config.timeout_seconds,
            max_concurrency=config.max_concurrency,
            client=client,
        )

    def upstream_model(self, model: str) -> str | None:
        return self.models.get(model)

    def capabilities(self, upstream_model: str) -> Capabilities:
        return MODELS.get(upstream_model, GENERIC).caps

    # -- calls ---------------------------------------------------------------------------

    async def create(self, request: SubmitRequest, *, idempotency_key: str) -> JobView:
        family, body = wire_body(self.name, request, idempotency_key)
        answer = await self._call("POST", f"/v1/videos/{family}", json=body, creating=True)
        return self._view(self._data(answer, "create"), family)

    async def get(self, job: JobRef) -> JobView:
        # The query route is per family; a job bound before its family was known is
        # looked for in both.
        families = (job.poll_handle,) if job.poll_handle in FAMILIES else FAMILIES
        for family in families[:-1]:
            try:
                return await self._query(family, job.external_id)
            except UpstreamNotFound:
                continue
        return await self._query(families[-1], job.external_id)

    async def find_by_client_id(self, client_id: str) -> JobView | None:
        """The task created with ``external_task_id = client_id``: the query route takes
        either id in its path ("choose one of task_id and external_task_id")."""
        for family in FAMILIES:
            try:
                data = await self._task(family, client_id)
            except UpstreamNotFound:
                continue
            info = data.get("task_info")
            echoed = info.get("external_task_id") if isinstance(info, dict) else None
            if echoed is not None and echoed != client_id:
                continue  # a task whose own id happens to equal the key: not ours
            return self._view(data, family)
        return None

    async def _query(self, family: str, task_or_client_id: str) -> JobView:
        return self._view(await self._task(family, task_or_client_id), family)

    async def _task(self, family: str, task_or_client_id: str) -> dict[str, Any]:
        path = f"/v1/videos/{family}/{quote(task_or_client_id, safe='')}"
        return self._data(await self._call("GET", path), "query")

    async def cancel(self, job: JobRef) -> None:
        raise NotImplementedError("Kling has no way to cancel a task")

    async def open_content(
        self, job: JobRef, *, url: str | None = None, range_header: str | None = None
    ) -> ContentStream:
        if url is None:
            raise NotImplementedError("Kling has no content route; use the task's video URL")
        # The URL is public (Kling's CDN): no token goes with it.
        return await self._http.stream(url, range_header=range_header)

    async def recent_jobs(self, *, limit: int) -> list[UpstreamJobSummary]:
        raise NotImplementedError("Kling is reconciled by external_task_id, not by listing")

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- the answer ----------------------------------------------------------------------

    async def _call(
        self, method: str, path: str, *, json: object = None, creating: bool = False
    ) -> http.Answer:
        answer = await self._http.call(
            method, path, json=json, headers={"Authorization": f"Bearer {self._token.current()}"}
        )
        code, _ = error_of(answer.body)
        if answer.status >= 400 or (code is not None and code != 0):
            self._raise_for(answer, creating=creating)
        return answer

    def _raise_for(self, answer: http.Answer, *, creating: bool) -> NoReturn:
        code, message = error_of(answer.body)
        status = answer.status
        text = f"{self.name}: Kling answered {status}" + (f" (code {code})" if code else "")
        text += f": {message or answer.reason}"
        rejected_status = status if status >= 400 else 400
        if code in (1302, 1303):
            raise RateLimited(
                text,
                status=status if status >= 400 else 429,
                retry_after=http.parse_retry_after(answer.headers),
                concurrency=code == 1303,
            )
        category = category_of(code)
        if code == 1203 and not creating:
            raise UpstreamNotFound(text, status=status)
        if category is not None:
            raise UpstreamRejected(text, status=rejected_status, code=str(code), category=category)
        if code in (5000, 5001, 5002):
            # 5002 is Kling timing out inside: the task may exist.
            raise UpstreamUnavailable(
                text, status=status, maybe_received=code == 5002 or status in (502, 504)
            )
        if status < 400:
            raise UpstreamProtocolError(f"{self.name}: Kling answered 200 with code {code}")
        http.raise_for_status(
            self.name, answer, message=message, code=str(code) if code is not None else None
        )

    def _data(self, answer: http.Answer, what: str) -> dict[str, Any]:
        body = answer.object(self.name, what)
        data = body.get("data")
        if body.get("code") != 0 or not isinstance(data, dict):
            raise UpstreamProtocolError(
                f"{self.name}: the {what} answer is not Kling's {{code, data}} envelope"
            )
        return data

    def _view(self, data: dict[str, Any], family: str) -> JobView:
        task_id = http.usable_id(self.name, data.get("task_id"), "Kling task")
        word = data.get("task_status")
        status = _STATUSES.get(word) if isinstance(word, str) else None
        if status is None:
            logger.warning("unknown Kling task status %r", word, extra={"externalVideoId": task_id})
        videos: tuple[ResultVideo, ...] = ()
        error = usage = None
        if status is JobStatus.COMPLETED:
            finished = _seconds(data.get("updated_at")) or self._clock()
            videos = self._videos(data.get("task_result"), finished)
            usage = _usage(data)
            if not videos:
                status = JobStatus.FAILED
                error = JobError(
                    code="succeed_without_video",
                    message="Kling reported success but returned no video.",
                    category=ErrorCategory.GENERATION_FAILED,
                )
        elif status is JobStatus.FAILED:
            error = failure(data.get("task_status_msg"))
        return JobView(
            external_id=task_id,
            status=status,
            raw_status=word if isinstance(word, str) else None,
            progress=None,  # Kling reports none
            videos=videos,
            error=error,
            usage=usage,
            poll_handle=family,
            created_at=_seconds(data.get("created_at")),
        )

    def _videos(self, result: object, finished: float) -> tuple[ResultVideo, ...]:
        items = result.get("videos") if isinstance(result, dict) else None
        found = []
        for item in items if isinstance(items, list) else ():
            raw = item.get("url") if isinstance(item, dict) else None
            url = http.resolve_url(self.base_url, raw) if isinstance(raw, str) else None
            if url is not None:
                found.append(ResultVideo(url=url, expires_at=finished + RESULT_LIFETIME))
        return tuple(found)


def _usage(data: Mapping[str, Any]) -> Usage | None:
    result = data.get("task_result")
    videos = result.get("videos") if isinstance(result, dict) else None
    first = videos[0] if isinstance(videos, list) and videos else None
    seconds = _number(first.get("duration")) if isinstance(first, dict) else None
    units = _number(data.get("final_unit_deduction"))
    if seconds is None and units is None:
        return None
    # Kling bills resource-pack units, not money.
    return Usage(seconds=seconds, cost=units, currency="units" if units is not None else None)


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value) if isinstance(value, int | float | str) else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) and number >= 0 else None


def _seconds(value: object) -> int | None:
    """Kling's millisecond timestamps as Unix seconds."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or not 0 <= value < 1e14:
        return None
    return int(value / 1000)
