"""The ``Provider`` port and the error tree adapters raise.

Adapters translate foreign exceptions (httpx, JSON) into this tree at the edge, so the
engine never sees a library exception::

    UpstreamError
     +-- UpstreamUnavailable      network error, timeout, 5xx: transient
     |    +-- RateLimited          429 (or 503) with an optional retry_after
     |    +-- UpstreamProtocolError  an answer we cannot read (not JSON, wrong shape)
     +-- UpstreamRejected         4xx: the request itself is wrong; permanent
     +-- UpstreamNotFound         the job does not exist (any more)

``UpstreamUnavailable.maybe_received`` says whether the upstream may have acted on the
request despite the error (a read timeout, a cut connection, a 502/504 from a proxy in
front of it, an unreadable answer); it is False when the request certainly had no
effect (connection refused, 429, 500, 503). Crash-safe submission depends on it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from vidgate.domain.transitions import Observation


class UpstreamError(Exception):
    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class UpstreamUnavailable(UpstreamError):
    def __init__(
        self, message: str, *, status: int | None = None, maybe_received: bool = True
    ) -> None:
        super().__init__(message, status=status)
        self.maybe_received = maybe_received


class RateLimited(UpstreamUnavailable):
    def __init__(self, message: str, *, status: int = 429, retry_after: float | None) -> None:
        super().__init__(message, status=status, maybe_received=False)
        self.retry_after = retry_after


class UpstreamProtocolError(UpstreamUnavailable):
    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message, status=status, maybe_received=True)


class UpstreamRejected(UpstreamError):
    def __init__(self, message: str, *, status: int, code: str | None = None) -> None:
        super().__init__(message, status=status)
        self.code = code


class UpstreamNotFound(UpstreamError):
    pass


@dataclass(frozen=True, kw_only=True)
class SubmitRequest:
    prompt: str
    model: str  # the upstream's model name, after alias mapping
    seconds: str
    size: str
    input_reference: str | None = None  # an image URL


@dataclass(frozen=True, kw_only=True)
class UpstreamJob:
    external_id: str
    observation: Observation
    raw_url: str | None = None  # the job's own `url` field, already absolute


@dataclass(frozen=True, kw_only=True)
class UpstreamJobSummary:
    """What a job listing says of one job: enough to recognise our own submission."""

    external_id: str
    prompt: str | None
    model: str | None
    seconds: str | None
    size: str | None
    created_at: int | None


@dataclass(kw_only=True)
class ContentStream:
    """An upstream file being streamed through vidgate; the caller must ``aclose`` it."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    chunks: AsyncIterator[bytes]
    close: Callable[[], Awaitable[None]]

    async def aclose(self) -> None:
        await self.close()


class Provider(Protocol):
    name: str
    honours_idempotency: bool
    content_mode: str  # "auto" | "url" | "proxy", see ProviderConfig.content
    models: dict[str, str]  # client model -> upstream model
    max_concurrency: int  # upstream requests in flight at once

    def upstream_model(self, model: str) -> str | None:
        """The upstream's name for a client model, or None if this provider lacks it."""
        ...

    async def create(self, request: SubmitRequest, *, idempotency_key: str) -> UpstreamJob: ...

    async def get(self, external_id: str) -> UpstreamJob: ...

    async def delete(self, external_id: str) -> None: ...

    async def open_content(
        self, external_id: str, *, range_header: str | None
    ) -> ContentStream: ...

    async def recent_jobs(self, *, limit: int) -> list[UpstreamJobSummary]:
        """The upstream's most recent jobs, newest first (to reconcile a lost submission)."""
        ...

    async def aclose(self) -> None: ...
