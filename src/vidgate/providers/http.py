"""The HTTP plumbing every adapter shares: one pooled client, capped JSON reads, and the
mapping of transport failures and HTTP statuses into the ``UpstreamError`` tree.

Adapters call :meth:`HttpUpstream.call` and read the vendor's own envelope from the
:class:`Answer`; :func:`raise_for_status` is the common reading of an error status that
an adapter applies after looking for its vendor-specific signals.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import urljoin, urlsplit

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from vidgate.providers import meter
from vidgate.providers.base import (
    ContentStream,
    ErrorCategory,
    RateLimited,
    UpstreamNotFound,
    UpstreamProtocolError,
    UpstreamRejected,
    UpstreamUnavailable,
)

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20  # a job object is small; anything bigger is garbage
# Content types a video download never has: an error in disguise.
NOT_A_VIDEO = frozenset({"application/json", "application/problem+json", "application/xml"})
FORWARDED_CONTENT_HEADERS = ("content-type", "content-length", "content-range", "accept-ranges")


@dataclass(frozen=True, kw_only=True)
class Answer:
    """An upstream's answer: its status, headers and body decoded as JSON (None if not)."""

    status: int
    headers: httpx.Headers
    body: object
    reason: str

    def object(self, name: str, what: str) -> dict[str, Any]:
        """The body as a JSON object, or an ``UpstreamProtocolError`` naming ``what``."""
        if not isinstance(self.body, dict):
            raise UpstreamProtocolError(
                f"{name}: {what} answered {self.status} with a body that is not a JSON object"
            )
        return self.body


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
    if len(absolute) > 4096 or not absolute.isprintable():
        return None
    return absolute


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
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


def raise_for_status(
    name: str,
    answer: Answer,
    *,
    message: str | None = None,
    code: str | None = None,
    category: ErrorCategory | None = None,
) -> NoReturn:
    """The common reading of an error status (the caller has checked ``status >= 400``).

    429 (and 503 with Retry-After) is a rate limit; 5xx, 408 and 409 are transient (a
    502/504 or 408 may have been acted upon by what sits behind a proxy); 404 is a lost
    job; any other 4xx is a rejection of the request itself.
    """
    status = answer.status
    text = f"{name}: upstream {status}: {message or answer.reason}"
    if status == 429 or (status == 503 and "retry-after" in answer.headers):
        raise RateLimited(text, status=status, retry_after=parse_retry_after(answer.headers))
    if status >= 500 or status in (408, 409):
        raise UpstreamUnavailable(text, status=status, maybe_received=status in (502, 504, 408))
    if status == 404:
        raise UpstreamNotFound(text, status=status)
    raise UpstreamRejected(message or text, status=status, code=code, category=category)


def usable_id(name: str, value: object, what: str = "job") -> str:
    """An upstream's id for a job, checked before it is stored: a non-empty printable string
    of at most 255 characters; anything else is an ``UpstreamProtocolError``."""
    if (
        not isinstance(value, str)
        or not value.strip()
        or len(value) > 255
        or not value.isprintable()
    ):
        raise UpstreamProtocolError(f"{name}: answer without a usable {what} id")
    return value.strip()


def unix_seconds(value: object) -> int | None:
    """A plausible unix time in seconds (a JSON number), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or not 0 <= value < 1e11:
        return None
    return int(value)


def decode(raw: bytes) -> object:
    try:
        return json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError):
        return None


class HttpUpstream:
    """One pooled ``httpx.AsyncClient`` for one provider, with errors mapped at the edge.

    ``credentials`` (an ``Authorization`` header, an API-key header) go only to the base
    URL's origin: a result URL on a CDN or another host never sees the provider's key.
    """

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        timeout: float,
        max_concurrency: int,
        headers: Mapping[str, str] | None = None,
        credentials: Mapping[str, str] | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.credentials = dict(credentials or {})
        self._origin = _origin(self.base_url)
        self.client = client or httpx.AsyncClient(
            headers={"Accept": "application/json", "User-Agent": "vidgate", **(headers or {})},
            timeout=httpx.Timeout(timeout, connect=min(5.0, timeout)),
            transport=PooledTransport(max_concurrency),
        )

    def headers_for(self, url: str, extra: Mapping[str, str] | None) -> dict[str, str]:
        """The credentials (for our own origin only), then the request's own headers."""
        sent = dict(self.credentials) if _origin(url) == self._origin else {}
        sent.update(extra or {})
        return sent

    def url(self, path: str) -> str:
        """``path`` under the base URL; an absolute URL is kept as it is."""
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}{path}"

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        max_bytes: int = MAX_BODY_BYTES,
    ) -> Answer:
        """Send one request and read its (capped) answer; transport errors are raised as
        ``UpstreamUnavailable`` saying whether the upstream may have received it.
        ``max_bytes`` raises the cap for an answer that carries media inline (Vertex)."""
        url = self.url(path)
        shown = urlsplit(url).path
        started = time.perf_counter()
        try:
            async with self.client.stream(
                method,
                url,
                json=json,
                params=params,
                headers=self.headers_for(url, headers),
            ) as response:
                raw = await _read_capped(response, max_bytes)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            meter.record(self.name, method, path, "connect_error", started)
            # Nothing was sent: the upstream certainly did not act on it.
            raise UpstreamUnavailable(
                f"{self.name}: {method} {shown}: cannot connect ({type(exc).__name__})",
                maybe_received=False,
            ) from exc
        except httpx.TimeoutException as exc:
            meter.record(self.name, method, path, "timeout", started)
            raise UpstreamUnavailable(f"{self.name}: {method} {shown} timed out") from exc
        except httpx.HTTPError as exc:
            meter.record(self.name, method, path, "transport_error", started)
            raise UpstreamUnavailable(
                f"{self.name}: {method} {shown} failed: {type(exc).__name__}"
            ) from exc
        except (TypeError, ValueError) as exc:
            meter.record(self.name, method, path, "encode_error", started)
            # The body could not even be encoded (text that is not valid Unicode): nothing
            # was sent, and sending again will not help.
            raise UpstreamRejected(
                f"{self.name}: {method} {shown}: the request cannot be encoded "
                f"({type(exc).__name__})",
                status=400,
                category=ErrorCategory.INVALID_REQUEST,
            ) from exc
        meter.record(self.name, method, path, response.status_code, started)
        logger.debug(
            "upstream %s %s %s -> %d in %.0f ms",
            self.name,
            method,
            shown,
            response.status_code,
            (time.perf_counter() - started) * 1000,
        )
        return Answer(
            status=response.status_code,
            headers=response.headers,
            body=decode(raw),
            reason=response.reason_phrase,
        )

    async def stream(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        range_header: str | None = None,
        on_error: Any = None,
    ) -> ContentStream:
        """Open a file download; an error status is read and raised (``on_error`` may
        raise the vendor's own reading of it first)."""
        target = self.url(url)
        sent = self.headers_for(target, {"Accept": "*/*", **(headers or {})})
        if range_header:
            sent["Range"] = range_header
        request = self.client.build_request("GET", target, headers=sent)
        try:
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(
                f"{self.name}: content unavailable: {type(exc).__name__}"
            ) from exc
        if response.status_code >= 400:
            raw = await response.aread()
            await response.aclose()
            answer = Answer(
                status=response.status_code,
                headers=response.headers,
                body=decode(raw[:MAX_BODY_BYTES]),
                reason=response.reason_phrase,
            )
            if on_error is not None:
                on_error(answer)
            raise_for_status(self.name, answer)
        kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind in NOT_A_VIDEO or kind.startswith("text/"):
            # A "success" with a page or a JSON body instead of the file (a proxy's error
            # page, a broken upstream): nothing to play, and nothing to keep as a mirror.
            await response.aclose()
            raise UpstreamProtocolError(
                f"{self.name}: the video download answered {response.status_code} with a "
                f"{kind} body"
            )
        kept = {k: v for k, v in response.headers.items() if k.lower() in FORWARDED_CONTENT_HEADERS}
        return ContentStream(
            status=response.status_code,
            headers=kept,
            chunks=self._chunks(response),
            close=response.aclose,
        )

    async def _chunks(self, response: httpx.Response) -> AsyncIterator[bytes]:
        """The body as it arrives; a broken transfer is an ``UpstreamUnavailable``."""
        try:
            async for chunk in response.aiter_raw():
                yield chunk
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(
                f"{self.name}: content transfer broke off: {type(exc).__name__}"
            ) from exc

    async def aclose(self) -> None:
        await self.client.aclose()


class PooledTransport(AiohttpTransport):
    """httpx's API on aiohttp's connection pool.

    httpx's own pool checks every idle connection's socket on each request, which costs
    about 2 ms of CPU per request at 64 connections against 0.4 ms here (docs/BENCHMARKS.md).
    The exceptions are re-read from aiohttp's, so that ``HttpUpstream.call`` still knows
    whether a failed request may have reached the upstream: only a refused or timed-out
    connect means it did not.
    """

    def __init__(self, max_connections: int) -> None:
        def session() -> aiohttp.ClientSession:
            return aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=max_connections),
                cookie_jar=aiohttp.DummyCookieJar(),  # an API client keeps no cookies
                trust_env=True,  # HTTP(S)_PROXY and NO_PROXY, as httpx honours them
            )

        super().__init__(client=session)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await super().handle_async_request(request)
        except httpx.TransportError as exc:
            raise transport_error(exc.__cause__ or exc) from exc.__cause__
        except aiohttp.ClientError as exc:  # one the library does not map
            raise transport_error(exc) from exc
        response.stream = _ReclassifiedStream(response.stream)
        return response


class _ReclassifiedStream(httpx.AsyncByteStream):
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                yield chunk
        except httpx.TransportError as exc:
            raise transport_error(exc.__cause__ or exc) from exc.__cause__
        except aiohttp.ClientError as exc:
            raise transport_error(exc) from exc

    async def aclose(self) -> None:
        await self._inner.aclose()


def transport_error(cause: BaseException) -> httpx.TransportError:
    """The httpx error that says what an aiohttp failure means for the request."""
    message = str(cause) or type(cause).__name__
    if isinstance(cause, httpx.TransportError):
        return cause
    if isinstance(cause, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message)  # no connection (or pool slot) in time
    if isinstance(cause, aiohttp.ClientConnectorError):
        return httpx.ConnectError(message)  # refused, unreachable, DNS: nothing sent
    if isinstance(cause, aiohttp.ServerTimeoutError | TimeoutError):
        return httpx.ReadTimeout(message)
    # The connection broke after the request went out, or the answer was malformed.
    return httpx.ReadError(message)


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


async def _read_capped(response: httpx.Response, max_bytes: int = MAX_BODY_BYTES) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise UpstreamProtocolError(f"upstream body larger than {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
