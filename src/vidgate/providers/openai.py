"""Adapter for the OpenAI ``/v1/videos`` convention (OpenAI, and the resellers that copy it).

Every HTTP detail stops here: base URLs with path prefixes, the API key, model aliases,
relative ``url`` fields, the error envelope, ``Retry-After``. Callers get ``UpstreamJob``
values and the error tree of ``vidgate.providers.base``.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import math
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from vidgate.config import ProviderConfig
from vidgate.domain import status as statuses
from vidgate.domain.models import TaskError
from vidgate.domain.transitions import Observation, clamp_progress
from vidgate.providers.base import (
    ContentStream,
    RateLimited,
    SubmitRequest,
    UpstreamJob,
    UpstreamJobSummary,
    UpstreamNotFound,
    UpstreamProtocolError,
    UpstreamRejected,
    UpstreamUnavailable,
)

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20  # a job object is small; anything bigger is garbage
_FORWARDED_CONTENT_HEADERS = ("content-type", "content-length", "content-range", "accept-ranges")


def resolve_url(base_url: str, url: str) -> str | None:
    """Make an upstream's (possibly relative) file URL absolute; None if it is unusable.

    ``/videos/x.mp4`` is relative to the upstream's origin, ``videos/x.mp4`` to the base
    URL, and an absolute http(s) URL is kept as it is.
    """
    url = url.strip()
    if not url:
        return None
    absolute = urljoin(base_url.rstrip("/") + "/", url)
    parts = urlsplit(absolute)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return absolute


def parse_retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP date)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None  # neither seconds nor an HTTP date: ignore it
    return max(0.0, when.timestamp() - time.time())


class OpenAIVideosProvider:
    """A ``Provider`` for one configured upstream."""

    def __init__(self, config: ProviderConfig, *, client: httpx.AsyncClient | None = None) -> None:
        self.name = config.name
        self.honours_idempotency = config.idempotency
        self.content_mode: str = config.content
        self.models = dict(config.models)
        self.max_concurrency = config.max_concurrency
        self.config = config
        self._base = config.base_url.rstrip("/")
        headers = {"Accept": "application/json", "User-Agent": "vidgate"}
        secret = config.secret()
        if secret:
            headers["Authorization"] = f"Bearer {secret}"
        self._client = client or httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(config.timeout_seconds, connect=min(5.0, config.timeout_seconds)),
            limits=httpx.Limits(
                max_connections=config.max_concurrency,
                max_keepalive_connections=config.max_concurrency,
            ),
        )

    def upstream_model(self, model: str) -> str | None:
        return self.models.get(model)

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- calls ---------------------------------------------------------------------------

    async def create(self, request: SubmitRequest, *, idempotency_key: str) -> UpstreamJob:
        body: dict[str, Any] = {
            "prompt": request.prompt,
            "model": request.model,
            "seconds": request.seconds,
            "size": request.size,
        }
        if request.input_reference:
            body["input_reference"] = {"image_url": request.input_reference}
        data = await self._json(
            "POST", "/videos", json=body, headers={"Idempotency-Key": idempotency_key}
        )
        return self._job(data)

    async def get(self, external_id: str) -> UpstreamJob:
        return self._job(await self._json("GET", f"/videos/{external_id}"))

    async def delete(self, external_id: str) -> None:
        with contextlib.suppress(UpstreamNotFound):
            await self._json("DELETE", f"/videos/{external_id}")

    async def open_content(self, external_id: str, *, range_header: str | None) -> ContentStream:
        headers = {"Accept": "*/*"}
        if range_header:
            headers["Range"] = range_header
        request = self._client.build_request(
            "GET", f"{self._base}/videos/{external_id}/content", headers=headers
        )
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(
                f"{self.name}: content unavailable: {type(exc).__name__}"
            ) from exc
        if response.status_code >= 400:
            await response.aread()
            await response.aclose()
            self._raise_for(response, self._body(response))
        kept = {
            k: v for k, v in response.headers.items() if k.lower() in _FORWARDED_CONTENT_HEADERS
        }
        return ContentStream(
            status=response.status_code,
            headers=kept,
            chunks=self._body_chunks(response),
            close=response.aclose,
        )

    async def _body_chunks(self, response: httpx.Response) -> AsyncIterator[bytes]:
        """The body as it arrives; a broken transfer is an ``UpstreamUnavailable``."""
        try:
            async for chunk in response.aiter_raw():
                yield chunk
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(
                f"{self.name}: content transfer broke off: {type(exc).__name__}"
            ) from exc

    async def recent_jobs(self, *, limit: int) -> list[UpstreamJobSummary]:
        data = await self._json("GET", f"/videos?order=desc&limit={max(1, min(limit, 100))}")
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
                    created_at=_unix_seconds(item.get("created_at")),
                )
            )
        return found

    # -- plumbing ------------------------------------------------------------------------

    async def _json(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        url = f"{self._base}{path}"
        started = time.perf_counter()
        try:
            async with self._client.stream(method, url, json=json, headers=headers) as response:
                raw = await self._read_capped(response)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # Nothing was sent: the upstream certainly did not act on it.
            raise UpstreamUnavailable(
                f"{self.name}: {method} {path}: cannot connect ({type(exc).__name__})",
                maybe_received=False,
            ) from exc
        except httpx.TimeoutException as exc:
            raise UpstreamUnavailable(f"{self.name}: {method} {path} timed out") from exc
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(
                f"{self.name}: {method} {path} failed: {type(exc).__name__}"
            ) from exc
        logger.debug(
            "upstream %s %s %s -> %d in %.0f ms",
            self.name,
            method,
            path,
            response.status_code,
            (time.perf_counter() - started) * 1000,
        )
        body = _decode(raw)
        if response.status_code >= 400:
            self._raise_for(response, body)
        if not isinstance(body, dict):
            raise UpstreamProtocolError(
                f"{self.name}: {method} {path} answered {response.status_code} with a body "
                "that is not a JSON object"
            )
        return body

    @staticmethod
    async def _read_capped(response: httpx.Response) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise UpstreamProtocolError(f"upstream body larger than {MAX_BODY_BYTES} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def _body(response: httpx.Response) -> object:
        return _decode(response.content[:MAX_BODY_BYTES])

    def _raise_for(self, response: httpx.Response, body: object) -> None:
        status_code = response.status_code
        message, code = _error_of(body)
        text = f"{self.name}: upstream {status_code}: {message or response.reason_phrase}"
        if status_code == 429 or (status_code == 503 and "retry-after" in response.headers):
            raise RateLimited(
                text, status=status_code, retry_after=parse_retry_after(response.headers)
            )
        if status_code >= 500 or status_code in (408, 409):
            # A 502/504 comes from a proxy that may have passed the request on.
            raise UpstreamUnavailable(
                text, status=status_code, maybe_received=status_code in (502, 504, 408)
            )
        if status_code == 404:
            raise UpstreamNotFound(text, status=status_code)
        raise UpstreamRejected(message or text, status=status_code, code=code)

    def _job(self, data: dict[str, Any]) -> UpstreamJob:
        external_id = data.get("id")
        if (
            not isinstance(external_id, str)
            or not external_id.strip()
            or len(external_id) > 255
            or not external_id.isprintable()
        ):
            raise UpstreamProtocolError(f"{self.name}: job object without a usable id")
        word = data.get("status")
        task_status = statuses.from_upstream(word)
        raw_url = data.get("url")
        url = resolve_url(self._base, raw_url) if isinstance(raw_url, str) else None
        if url is not None and (len(url) > 4096 or not url.isprintable()):
            url = None
        error = data.get("error")
        task_error = None
        if isinstance(error, dict):
            task_error = TaskError(
                code=_short(error.get("code"), "UPSTREAM_FAILED"),
                message=_short(error.get("message"), "The upstream video job failed."),
            )
        created = data.get("created_at")
        observation = Observation(
            status=task_status,
            raw_status=word if isinstance(word, str) else None,
            progress=clamp_progress(data.get("progress")),
            error=task_error,
            upstream_created_at=_unix_seconds(created),
        )
        return UpstreamJob(external_id=external_id.strip(), observation=observation, raw_url=url)


def _decode(raw: bytes) -> object:
    try:
        return json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError):
        return None


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


def _unix_seconds(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or not 0 <= value < 1e11:
        return None
    return int(value)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _short(value: object, default: str) -> str:
    if isinstance(value, str) and value.replace("\x00", "").strip():
        return value.replace("\x00", "").strip()[:500]
    return default
