"""The ``Provider`` port, the ``ProviderDirectory`` port over all of them, and the error
tree adapters raise.

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

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, Protocol

from vidgate.domain.capabilities import Capabilities
from vidgate.domain.catalogue import Catalogue
from vidgate.domain.request import ImageRole, VideoParams


class JobStatus(StrEnum):
    """The neutral status of an upstream job, whatever words the upstream uses."""

    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"  # the upstream dropped the job before running it


class ErrorCategory(StrEnum):
    """Why a job failed, in words every adapter maps its error codes to."""

    CONTENT_POLICY = "content_policy"
    RATE_LIMITED = "rate_limited"
    INSUFFICIENT_CREDITS = "insufficient_credits"
    INVALID_REQUEST = "invalid_request"
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    GENERATION_FAILED = "generation_failed"


# Categories worth a new (paid) attempt, possibly elsewhere; the failover rules use it.
RETRYABLE_CATEGORIES = frozenset(
    {
        ErrorCategory.RATE_LIMITED,
        ErrorCategory.PROVIDER_UNAVAILABLE,
        ErrorCategory.GENERATION_FAILED,
    }
)


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
    """Too many requests (or, with ``concurrency``, too many jobs running at once: wait
    for one to finish rather than for a rate window, e.g. Kling's 1303)."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 429,
        retry_after: float | None,
        concurrency: bool = False,
    ) -> None:
        super().__init__(message, status=status, maybe_received=False)
        self.retry_after = retry_after
        self.concurrency = concurrency


class UpstreamProtocolError(UpstreamUnavailable):
    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message, status=status, maybe_received=True)


class UpstreamRejected(UpstreamError):
    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str | None = None,
        category: ErrorCategory | None = None,
    ) -> None:
        super().__init__(message, status=status)
        self.code = code
        self.category = category or ErrorCategory.INVALID_REQUEST


class UpstreamNotFound(UpstreamError):
    pass


@dataclass(frozen=True, kw_only=True)
class JobError:
    code: str  # the upstream's own code, as text
    message: str
    category: ErrorCategory
    retryable: bool | None = None  # None: decided by the category

    @property
    def worth_retrying(self) -> bool:
        if self.retryable is not None:
            return self.retryable
        return self.category in RETRYABLE_CATEGORIES


@dataclass(frozen=True, kw_only=True)
class ResultVideo:
    """One finished video.

    ``url`` is absolute. ``needs_credentials`` means a browser cannot play it as it is (it
    wants the provider's key): vidgate streams or mirrors it through ``open_content``.
    ``url = None`` means the video is only reachable through the provider's content route.
    ``expires_at`` is a unix time: the upstream's own figure, else the documented lifetime.
    """

    url: str | None
    expires_at: float | None = None
    needs_credentials: bool = False


@dataclass(frozen=True, kw_only=True)
class Usage:
    """What the upstream reported it used; every field optional."""

    seconds: float | None = None
    resolution: str | None = None
    tokens: int | None = None
    cost: float | None = None
    currency: str | None = None

    def to_json(self) -> dict[str, object]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(frozen=True, kw_only=True)
class JobView:
    """What one look at an upstream job said, in neutral terms."""

    external_id: str
    status: JobStatus | None  # None: a word we do not know (logged, not terminal)
    raw_status: str | None = None
    progress: int | None = None  # 0..100, None when the upstream reports none
    videos: tuple[ResultVideo, ...] = ()
    error: JobError | None = None
    usage: Usage | None = None
    # How to find the job again when its id alone is not enough (a status URL).
    poll_handle: str | None = None
    created_at: int | None = None  # unix seconds, as the upstream says


@dataclass(frozen=True, kw_only=True)
class JobRef:
    """How to address an upstream job: its id and, if the adapter gave one, its handle."""

    external_id: str
    poll_handle: str | None = None


@dataclass(frozen=True, kw_only=True)
class Features:
    """The optional capabilities an adapter declares, instead of the engine assuming them."""

    cancel: bool = False  # stop a job (Provider.cancel)
    cancel_running: bool = True  # ... also once it runs (Seedance: only while queued)
    list_jobs: bool = False  # recent_jobs(), for crash reconciliation
    idempotency_key: bool = False  # a repeated Idempotency-Key returns the same job
    client_id: bool = False  # the key is sent as the job's own id; find_by_client_id() works
    content_route: bool = False  # open_content() works without a result URL
    callbacks: bool = False  # the upstream can call us back when the job changes


@dataclass(frozen=True, kw_only=True)
class Binding:
    """Everything needed to reach an attempt's job again, persisted with the attempt.

    Never the secret: ``credential`` names where it is configured (an environment
    variable, a file), so a task keeps working when the provider's config is edited.
    """

    protocol: str
    provider: str
    model: str  # the upstream model id
    base_url: str
    credential: str | None = None
    poll_handle: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "protocol": self.protocol,
            "provider": self.provider,
            "model": self.model,
            "baseUrl": self.base_url,
            "credential": self.credential,
            "pollHandle": self.poll_handle,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Binding:
        def text(key: str) -> str | None:
            value = data.get(key)
            return value if isinstance(value, str) else None

        return cls(
            protocol=text("protocol") or "openai-videos",
            provider=text("provider") or "",
            model=text("model") or "",
            base_url=text("baseUrl") or "",
            credential=text("credential"),
            poll_handle=text("pollHandle"),
        )


@dataclass(frozen=True, kw_only=True)
class SubmitRequest:
    """A neutral request for one upstream, after the model alias is resolved."""

    prompt: str
    model: str  # the upstream's model name, after alias mapping
    params: VideoParams = dataclasses.field(default_factory=VideoParams)
    # The seed's Sora-style fields as the task has them (the openai-videos adapter sends
    # them as they are; others read ``params``, which always carries their meaning too).
    seconds: str | None = None
    size: str | None = None
    callback_url: str | None = None  # where the upstream may call us back, if public

    @property
    def input_reference(self) -> str | None:
        """The first-frame image, as the seed's single ``inputReference`` had it."""
        for image in self.params.images:
            if image.role is ImageRole.FIRST_FRAME:
                return image.url
        return None


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
    """One configured upstream, speaking one protocol (``kind``).

    Adapters build their wire bodies from ``SubmitRequest`` and answer with ``JobView``;
    every foreign exception becomes one of the ``UpstreamError`` tree above. Optional
    calls are declared in ``features``; calling one that is not declared raises
    ``NotImplementedError``.
    """

    name: str
    kind: str  # the protocol: "openai-videos", "gemini-veo", "seedance", ...
    base_url: str  # the API root, with any path prefix
    credential: str | None  # where the secret is configured (env var, file), never the secret
    features: Features
    content_mode: str  # "auto" | "url" | "proxy" | "mirror", see ProviderConfig.content
    models: dict[str, str]  # client model -> upstream model
    max_concurrency: int  # upstream requests in flight at once
    # How long a result URL lives when the upstream does not say (seconds), None: unknown.
    result_lifetime: float | None

    def upstream_model(self, model: str) -> str | None:
        """The upstream's name for a client model, or None if this provider lacks it."""
        ...

    def capabilities(self, upstream_model: str) -> Capabilities:
        """The built-in capability table of an upstream model (the TOML file may override)."""
        ...

    async def create(self, request: SubmitRequest, *, idempotency_key: str) -> JobView:
        """Create a job. ``idempotency_key`` is unique per attempt: adapters send it as an
        ``Idempotency-Key`` (``features.idempotency_key``) or as the job's client-chosen id
        (``features.client_id``) where the upstream has one of them."""
        ...

    async def get(self, job: JobRef) -> JobView: ...

    async def cancel(self, job: JobRef) -> None:
        """Stop (or delete) the job; a job the upstream no longer knows is not an error."""
        ...

    async def open_content(
        self, job: JobRef, *, url: str | None = None, range_header: str | None = None
    ) -> ContentStream:
        """Stream a finished video: ``url`` (a ``ResultVideo.url``, with credentials added
        when it needs them) or, without one, the upstream's content route."""
        ...

    async def recent_jobs(self, *, limit: int) -> list[UpstreamJobSummary]:
        """The upstream's most recent jobs, newest first (``features.list_jobs``)."""
        ...

    async def find_by_client_id(self, client_id: str) -> JobView | None:
        """The job created with this client-chosen id, None if none (``features.client_id``)."""
        ...

    async def aclose(self) -> None: ...


Recovery = Literal["resend", "reconcile", "fail"]


@dataclass(frozen=True, kw_only=True)
class ProviderPolicy:
    """How vidgate treats one provider: what the engine reads of its configuration.

    Routing tries lower ``priority`` numbers first and splits equals by ``weight``;
    ``max_jobs`` bounds its jobs running upstream at once, ``requests_per_second`` its
    request rate; the circuit breaker opens after ``breaker_failures`` failures in a row
    for ``breaker_cooldown_seconds``; ``recovery`` says how an interrupted submission is
    made safe (docs/RELIABILITY.md).
    """

    priority: int
    weight: float
    max_jobs: int | None
    requests_per_second: float | None
    breaker_failures: int
    breaker_cooldown_seconds: float
    recovery: Recovery


class ProviderDirectory(Protocol):
    """The configured providers, as the engine and the use cases see them.

    The registry in ``vidgate.providers.registry`` builds the adapters from config and
    implements this; the core reaches providers only through it, so it never imports the
    config or an adapter.
    """

    @property
    def catalogue(self) -> Catalogue:
        """Every client model some provider offers, and what each can do."""
        ...

    def get(self, name: str) -> Provider | None: ...

    def resolve(self, name: str, binding: dict[str, object] | None) -> Provider | None:
        """The provider an attempt was bound to, even if its config changed since; None
        when it cannot be reached any more."""
        ...

    def policy(self, name: str) -> ProviderPolicy:
        """The policy of a provider this directory returned (configured or resolved)."""
        ...

    def candidates(self, model: str) -> list[Provider]:
        """Providers offering ``model``, by priority (lower first), then config order."""
        ...

    def all(self) -> list[Provider]:
        """Every configured provider."""
        ...
