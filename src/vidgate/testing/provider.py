"""``FakeProvider``: an upstream implementing the ``Provider`` port, scripted by the test."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vidgate.domain.capabilities import Capabilities
from vidgate.domain.models import TaskError
from vidgate.domain.transitions import clamp_progress
from vidgate.providers import openai
from vidgate.providers.base import (
    ContentStream,
    Features,
    JobError,
    JobRef,
    JobStatus,
    JobView,
    Provider,
    ResultVideo,
    SubmitRequest,
    UpstreamError,
    UpstreamJobSummary,
    UpstreamNotFound,
)


@dataclass(frozen=True, kw_only=True)
class Call:
    """One call a ``FakeProvider`` received, in the order received."""

    method: str  # "create" | "get" | "delete" | "open_content" | "recent_jobs"
    external_id: str | None = None
    request: SubmitRequest | None = None
    idempotency_key: str | None = None
    range_header: str | None = None


@dataclass(kw_only=True)
class FakeJob:
    """A job as the fake upstream holds it: the raw words an upstream would send."""

    external_id: str
    request: SubmitRequest
    idempotency_key: str
    status: str = "queued"
    progress: object = 0  # anything: the adapter's clamping applies, as for real JSON
    url: str | None = None
    error: TaskError | None = None
    created_at: int
    deleted: bool = False


@dataclass(frozen=True)
class Hang:
    """A scripted outcome: the call never answers (until cancelled).

    With ``served`` the upstream does the work first, as when its answer is lost to a
    crash or a timeout: ``create`` then leaves a job behind.
    """

    served: bool = False


Outcome = UpstreamError | JobView | Hang
Hook = Callable[[Call], Awaitable[None]]

_METHODS = ("create", "get", "delete", "open_content", "recent_jobs")


class FakeProvider:
    """A scriptable upstream implementing ``Provider``.

    Jobs only move when the test says so (``advance``, ``complete``, ``fail``). The next
    calls of a method can be scripted (``fail_next``, ``respond_next``, ``hang_next``),
    and ``on_call`` runs a coroutine at every call of a method before it is answered:
    to look at the store at that moment, cancel the task mid-call, or wait for a signal.
    Every call is recorded in ``calls``. With ``honours_idempotency`` a repeated
    idempotency key returns the job created for it first.
    """

    def __init__(
        self,
        name: str = "fake",
        *,
        models: dict[str, str] | None = None,
        honours_idempotency: bool = True,
        content_mode: str = "auto",
        max_concurrency: int = 8,
        content: bytes = b"\x00\x00\x00\x18ftypmp42fake-video",
    ) -> None:
        self.name = name
        self.kind = "openai-videos"
        self.base_url = f"http://{name}.invalid/v1"
        self.credential: str | None = None
        self.result_lifetime: float | None = None
        self.honours_idempotency = honours_idempotency
        self.features = Features(
            cancel=True, list_jobs=True, idempotency_key=honours_idempotency, content_route=True
        )
        self.model_capabilities = Capabilities(audio=True)
        self.content_mode = content_mode
        self.models = dict(models if models is not None else {"sora-2": "sora-2"})
        self.max_concurrency = max_concurrency
        self.content = content
        self.calls: list[Call] = []
        self.jobs: dict[str, FakeJob] = {}
        self.closed = False
        self._by_key: dict[str, str] = {}
        self._numbers = itertools.count(1)
        self._script: dict[str, deque[Outcome]] = {m: deque() for m in _METHODS}
        self._hooks: dict[str, list[Hook]] = {m: [] for m in _METHODS}

    # -- scripting -----------------------------------------------------------------------

    def fail_next(self, method: str, error: UpstreamError, *, times: int = 1) -> None:
        """The next ``times`` calls of ``method`` raise ``error``."""
        self._script[_method(method)].extend([error] * times)

    def respond_next(self, method: str, job: JobView) -> None:
        """The next call of ``create`` or ``get`` returns ``job`` as it is."""
        self._script[_method(method)].append(job)

    def hang_next(self, method: str, *, served: bool = False) -> None:
        """The next call of ``method`` never answers; see ``Hang``."""
        self._script[_method(method)].append(Hang(served))

    def on_call(self, method: str, hook: Hook) -> Callable[[], None]:
        """Run ``hook(call)`` at every call of ``method``; returns a function removing it."""
        hooks = self._hooks[_method(method)]
        hooks.append(hook)
        return lambda: hooks.remove(hook) if hook in hooks else None

    def advance(
        self, external_id: str, *, status: str = "in_progress", progress: object = None
    ) -> FakeJob:
        """Move a job on: any status word (known or not), any progress value."""
        job = self.jobs[external_id]
        job.status = status
        if progress is not None:
            job.progress = progress
        return job

    def complete(self, external_id: str, *, url: str | None = None) -> FakeJob:
        """Finish a job, with its own ``url`` or (like many upstreams) without one."""
        job = self.advance(external_id, status="completed", progress=100)
        job.url = url
        return job

    def fail(
        self,
        external_id: str,
        code: str = "UPSTREAM_FAILED",
        message: str = "The upstream video job failed.",
    ) -> FakeJob:
        job = self.advance(external_id, status="failed")
        job.error = TaskError(code=code, message=message)
        return job

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == _method(method)]

    # -- the Provider port ---------------------------------------------------------------

    def upstream_model(self, model: str) -> str | None:
        return self.models.get(model)

    def capabilities(self, upstream_model: str) -> Capabilities:
        return self.model_capabilities

    async def create(self, request: SubmitRequest, *, idempotency_key: str) -> JobView:
        call = Call(method="create", request=request, idempotency_key=idempotency_key)
        scripted = await self._begin(call)
        if isinstance(scripted, JobView):
            return scripted
        external_id = self._by_key.get(idempotency_key) if self.honours_idempotency else None
        if external_id is None:
            external_id = f"video_{self.name}_{next(self._numbers):04d}"
            self.jobs[external_id] = FakeJob(
                external_id=external_id,
                request=request,
                idempotency_key=idempotency_key,
                created_at=int(time.time()),
            )
            self._by_key.setdefault(idempotency_key, external_id)
        answer = self._answer(self.jobs[external_id])
        await _hang_if(scripted)
        return answer

    async def get(self, job: JobRef) -> JobView:
        external_id = job.external_id
        scripted = await self._begin(Call(method="get", external_id=external_id))
        if isinstance(scripted, JobView):
            return scripted
        answer = self._answer(self._live(external_id))
        await _hang_if(scripted)
        return answer

    async def cancel(self, job: JobRef) -> None:
        external_id = job.external_id
        scripted = await self._begin(Call(method="delete", external_id=external_id))
        found = self.jobs.get(external_id)
        if found is not None:  # deleting a missing job is not an error (as in the adapter)
            found.deleted = True
        await _hang_if(scripted)

    async def open_content(
        self, job: JobRef, *, url: str | None = None, range_header: str | None = None
    ) -> ContentStream:
        external_id = job.external_id
        call = Call(method="open_content", external_id=external_id, range_header=range_header)
        scripted = await self._begin(call)
        found = self._live(external_id)
        if openai.job_status(found.status) is not JobStatus.COMPLETED:
            raise UpstreamNotFound(f"{self.name}: job {external_id} has no content yet", status=404)
        await _hang_if(scripted)
        body = self.content

        async def chunks() -> AsyncIterator[bytes]:
            yield body

        async def close() -> None:
            return None

        return ContentStream(
            status=200,
            headers={"content-type": "video/mp4", "content-length": str(len(body))},
            chunks=chunks(),
            close=close,
        )

    async def find_by_client_id(self, client_id: str) -> JobView | None:
        raise NotImplementedError("the fake upstream has no client-chosen ids")

    async def recent_jobs(self, *, limit: int) -> list[UpstreamJobSummary]:
        scripted = await self._begin(Call(method="recent_jobs"))
        await _hang_if(scripted)
        newest = sorted(self.jobs.values(), key=lambda j: j.created_at, reverse=True)
        return [
            UpstreamJobSummary(
                external_id=job.external_id,
                prompt=job.request.prompt,
                model=job.request.model,
                seconds=job.request.seconds,
                size=job.request.size,
                created_at=job.created_at,
            )
            for job in newest[:limit]
            if not job.deleted
        ]

    async def aclose(self) -> None:
        self.closed = True

    # -- plumbing ------------------------------------------------------------------------

    async def _begin(self, call: Call) -> JobView | Hang | None:
        """Record ``call``, run its hooks, then apply the next scripted outcome, if any."""
        self.calls.append(call)
        for hook in list(self._hooks[call.method]):
            await hook(call)
        script = self._script[call.method]
        outcome = script.popleft() if script else None
        if isinstance(outcome, UpstreamError):
            raise outcome
        if isinstance(outcome, Hang) and not outcome.served:
            await _forever()
        return outcome

    def _live(self, external_id: str) -> FakeJob:
        job = self.jobs.get(external_id)
        if job is None or job.deleted:
            raise UpstreamNotFound(f"{self.name}: no job {external_id}", status=404)
        return job

    @staticmethod
    def _answer(job: FakeJob) -> JobView:
        """What the real /v1/videos adapter would make of this job's JSON."""
        status = openai.job_status(job.status)
        error = None
        if job.error is not None:
            error = JobError(
                code=job.error.code,
                message=job.error.message,
                category=openai.job_error_category(job.error.code),
            )
        return JobView(
            external_id=job.external_id,
            status=status,
            raw_status=job.status,
            progress=clamp_progress(job.progress),
            videos=(ResultVideo(url=job.url),) if status is JobStatus.COMPLETED else (),
            error=error,
            created_at=job.created_at,
        )


def _method(method: str) -> str:
    if method not in _METHODS:
        raise ValueError(f"FakeProvider has no method {method!r}; use one of {_METHODS}")
    return method


async def _hang_if(outcome: JobView | Hang | None) -> None:
    if isinstance(outcome, Hang):
        await _forever()


async def _forever() -> None:
    await asyncio.get_running_loop().create_future()


if TYPE_CHECKING:  # mypy proves the fake fits its port
    _provider: Provider = FakeProvider()
