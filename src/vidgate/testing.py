"""In-memory fakes of vidgate's ports, for unit tests of the service and the engine.

``MemoryTaskStore`` behaves like ``SqlTaskStore`` (one contract suite,
tests/unit/test_store_contract.py, runs against both); ``FakeProvider`` is an upstream a
test scripts step by step. The event bus needs no fake: ``InProcessBus`` is in memory.

    store = MemoryTaskStore()
    provider = FakeProvider(models={"sora-2": "sora-2"})
    provider.fail_next("create", RateLimited("slow down", retry_after=2))
    ...
    provider.advance(external_id, status="in_progress", progress=40)
    provider.complete(external_id, url="https://cdn.example/v.mp4")
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, overload

from vidgate.domain.capabilities import Capabilities
from vidgate.domain.events import EventType, TaskEvent
from vidgate.domain.models import Attempt, AttemptState, Task, TaskError
from vidgate.domain.status import ACTIVE, TaskStatus
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
from vidgate.store.base import (
    DAY,
    ApiKey,
    Created,
    IdempotencyClaim,
    IdempotencyMismatch,
    Page,
    Quota,
    StoreUnavailable,
    TaskStore,
    Write,
    Written,
    decode_cursor,
    encode_cursor,
    enforce_quota,
)

__all__ = [
    "Call",
    "FakeJob",
    "FakeProvider",
    "Hang",
    "MemoryTaskStore",
]

# -- the store ------------------------------------------------------------------------------


@overload
def _utc(value: datetime) -> datetime: ...
@overload
def _utc(value: datetime | None) -> datetime | None: ...
def _utc(value: datetime | None) -> datetime | None:
    """What a datetime reads back as from the database: aware UTC; naive ones are refused."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store")
    return value.astimezone(UTC)


def _json(value: Any) -> Any:
    """A JSON column's round trip: a fresh copy, and the same refusal of what is not JSON."""
    return json.loads(json.dumps(value))


def _task_row(task: Task) -> Task:
    return dataclasses.replace(
        task,
        metadata=_json(task.metadata),
        created_at=_utc(task.created_at),
        updated_at=_utc(task.updated_at),
        completed_at=_utc(task.completed_at),
        deadline_at=_utc(task.deadline_at),
        next_check_at=_utc(task.next_check_at),
        lease_until=_utc(task.lease_until),
        attempts=(),  # attempts live in their own "table", as in SQL
    )


def _attempt_row(attempt: Attempt) -> Attempt:
    return dataclasses.replace(
        attempt,
        created_at=_utc(attempt.created_at),
        submitted_at=_utc(attempt.submitted_at),
        finished_at=_utc(attempt.finished_at),
    )


class MemoryTaskStore:
    """A ``TaskStore`` in a few dicts, with ``SqlTaskStore``'s semantics.

    Every method yields to the event loop once (a real store awaits I/O), then does its
    check and its write with no ``await`` in between, so it is atomic under asyncio.
    A broken constraint (duplicate ``videoId``, attempt number or provider + external
    id) raises ``StoreUnavailable`` and changes nothing.
    """

    def __init__(self) -> None:
        self._tasks: dict[str, Task] = {}
        self._attempts: dict[str, dict[int, Attempt]] = {}
        # (provider, external id) -> (video id, number): the unique index on attempts
        self._jobs: dict[tuple[str, str], tuple[str, int]] = {}
        self._events: list[TaskEvent] = []
        self._event_ids = itertools.count(1)
        # (user id, key) -> (fingerprint, video id, expires at)
        self._idempotency: dict[tuple[str, str], tuple[str, str, datetime]] = {}
        self._keys: dict[str, ApiKey] = {}

    # -- reads ---------------------------------------------------------------------------

    async def get(self, video_id: str) -> Task | None:
        await asyncio.sleep(0)
        row = self._tasks.get(video_id)
        return None if row is None else self._load(row)

    async def list_page(
        self, *, user_id: str, status: TaskStatus | None, limit: int, cursor: str | None
    ) -> Page:
        await asyncio.sleep(0)
        rows = [
            row
            for row in self._tasks.values()
            if row.user_id == user_id and (status is None or row.status is status)
        ]
        if cursor:
            after = decode_cursor(cursor)
            rows = [row for row in rows if (row.created_at, row.video_id) < after]
        rows.sort(key=lambda row: (row.created_at, row.video_id), reverse=True)
        items = [self._load(row) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = items[-1]
            next_cursor = encode_cursor(last.created_at, last.video_id)
        return Page(items=items, next_cursor=next_cursor)

    async def next_due(self, now: datetime) -> datetime | None:
        await asyncio.sleep(0)
        now = _utc(now)
        due = [
            row.next_check_at
            for row in self._tasks.values()
            if row.next_check_at is not None and _claimable(row, now)
        ]
        return min(due, default=None)

    async def events_after(self, video_id: str, after_id: int) -> list[TaskEvent]:
        await asyncio.sleep(0)
        return [
            dataclasses.replace(e, payload=_json(e.payload))
            for e in self._events
            if e.video_id == video_id and e.id > after_id
        ]

    async def events_for(
        self, video_ids: Sequence[str], after_id: int, limit: int
    ) -> list[TaskEvent]:
        await asyncio.sleep(0)
        wanted = set(video_ids)
        found = [e for e in self._events if e.video_id in wanted and e.id > after_id]
        return [dataclasses.replace(e, payload=_json(e.payload)) for e in found[: max(0, limit)]]

    async def ping(self) -> None:
        await asyncio.sleep(0)

    async def close(self) -> None:
        await asyncio.sleep(0)

    # -- writes --------------------------------------------------------------------------

    async def create(
        self,
        task: Task,
        *,
        idempotency: IdempotencyClaim | None = None,
        quota: Quota | None = None,
    ) -> Created:
        await asyncio.sleep(0)
        now = task.created_at
        if idempotency is not None:
            held = self._idempotency.get((task.user_id, idempotency.key))
            if held is not None and held[2] > now:
                fingerprint, video_id, _ = held
                if fingerprint != idempotency.fingerprint:
                    raise IdempotencyMismatch(video_id)
                if video_id in self._tasks:
                    return Created(task=self._load(self._tasks[video_id]), replayed=True)
        if quota is not None:
            mine = [row for row in self._tasks.values() if row.user_id == task.user_id]
            newest = sorted(
                (row.created_at for row in mine if row.created_at > now - DAY), reverse=True
            )
            active = sum(1 for row in mine if row.status in ACTIVE)
            enforce_quota(quota, active=active, newest=newest, now=now)
        if task.video_id in self._tasks:
            raise StoreUnavailable(f"a task {task.video_id!r} already exists")
        self._tasks[task.video_id] = _task_row(task)
        if idempotency is not None:
            self._idempotency[(task.user_id, idempotency.key)] = (
                idempotency.fingerprint,
                task.video_id,
                idempotency.expires_at,
            )
        return Created(task=task)

    async def purge_idempotency_keys(self, now: datetime) -> int:
        await asyncio.sleep(0)
        expired = [k for k, held in self._idempotency.items() if held[2] <= now]
        for k in expired:
            del self._idempotency[k]
        return len(expired)

    async def find_by_external_id(self, external_id: str) -> list[Task]:
        await asyncio.sleep(0)
        holders = {
            video_id
            for video_id, numbered in self._attempts.items()
            if any(a.external_id == external_id for a in numbered.values())
        }
        found = [self._load(self._tasks[v]) for v in holders if v in self._tasks]
        return sorted(found, key=lambda t: t.created_at, reverse=True)

    # -- API keys --------------------------------------------------------------------------

    async def add_api_key(self, key: ApiKey) -> None:
        await asyncio.sleep(0)
        if key.key_id in self._keys:
            raise StoreUnavailable(f"an API key {key.key_id!r} already exists")
        self._keys[key.key_id] = key

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        await asyncio.sleep(0)
        return self._keys.get(key_id)

    async def list_api_keys(self, user_id: str | None = None) -> list[ApiKey]:
        await asyncio.sleep(0)
        keys = [k for k in self._keys.values() if user_id is None or k.user_id == user_id]
        return sorted(keys, key=lambda k: (k.created_at, k.key_id))

    async def revoke_api_key(self, key_id: str, *, at: datetime) -> bool:
        await asyncio.sleep(0)
        key = self._keys.get(key_id)
        if key is None:
            return False
        if key.revoked_at is None:
            self._keys[key_id] = dataclasses.replace(key, revoked_at=at)
        return True

    async def write(self, change: Write) -> Written | None:
        await asyncio.sleep(0)
        before, after = change.before, change.after
        row = self._tasks.get(before.video_id)
        if row is None or row.version != before.version:
            return None
        if change.fence is not None and row.lease_owner != change.fence:
            return None
        if change.quota is not None:
            active = sum(
                1 for r in self._tasks.values() if r.user_id == row.user_id and r.status in ACTIVE
            )
            enforce_quota(change.quota, active=active, newest=[], now=after.updated_at)
        version = before.version + 1
        new_row = _task_row(dataclasses.replace(after, video_id=before.video_id, version=version))
        attempts = self._attempt_rows(change)
        event: TaskEvent | None = None
        body: dict[str, Any] = {}
        if change.event is not None:
            kind, body = change.event
            event = TaskEvent(
                id=0,  # numbered at commit
                video_id=before.video_id,
                type=EventType(kind),
                payload=_json(body),
                timestamp_ms=int(time.time() * 1000),
                task_version=version,
            )
        # Everything checked: commit all of it.
        self._tasks[before.video_id] = new_row
        for attempt in attempts.values():
            self._put_attempt(attempt)
        if event is not None:
            event = dataclasses.replace(event, id=next(self._event_ids))
            self._events.append(event)
            event = dataclasses.replace(event, payload=body)  # returned as given, as in SQL
        merged = change.merged_attempts()
        written = dataclasses.replace(after, version=version, attempts=merged)
        return Written(task=written, event=event)

    async def extend_leases(self, *, owner: str, video_ids: list[str], until: datetime) -> int:
        await asyncio.sleep(0)
        extended = 0
        for video_id in video_ids:
            row = self._tasks.get(video_id)
            if row is not None and row.lease_owner == owner:
                self._tasks[video_id] = dataclasses.replace(row, lease_until=_utc(until))
                extended += 1
        return extended

    async def release_owned(self, *, owner: str) -> int:
        await asyncio.sleep(0)
        released = 0
        for video_id, row in list(self._tasks.items()):
            if row.lease_owner == owner:
                self._tasks[video_id] = dataclasses.replace(
                    row, lease_owner=None, lease_until=None, version=row.version + 1
                )
                released += 1
        return released

    async def known_external_ids(self, *, provider: str, external_ids: list[str]) -> set[str]:
        await asyncio.sleep(0)
        return {e for e in external_ids if (provider, e) in self._jobs}

    async def running_jobs(self, *, provider: str) -> int:
        await asyncio.sleep(0)
        running = 0
        for video_id, row in self._tasks.items():
            attempt = self._attempts.get(video_id, {}).get(row.attempt)
            if (
                not row.status.terminal
                and attempt is not None
                and attempt.provider == provider
                and attempt.state in (AttemptState.SUBMITTING, AttemptState.SUBMITTED)
            ):
                running += 1
        return running

    async def claim(self, *, owner: str, now: datetime, until: datetime, limit: int) -> list[Task]:
        await asyncio.sleep(0)
        now = _utc(now)
        lease_until = _utc(until)
        due = sorted(
            (
                row
                for row in self._tasks.values()
                if row.next_check_at is not None
                and row.next_check_at <= now
                and _claimable(row, now)
            ),
            key=lambda row: row.next_check_at or now,
        )[: max(0, limit)]
        claimed = []
        for row in due:
            leased = dataclasses.replace(
                row, lease_owner=owner, lease_until=lease_until, version=row.version + 1
            )
            self._tasks[row.video_id] = leased
            claimed.append(self._load(leased))
        return claimed

    # -- helpers -------------------------------------------------------------------------

    def _load(self, row: Task) -> Task:
        found = self._attempts.get(row.video_id, {})
        return dataclasses.replace(
            row,
            metadata=_json(row.metadata),
            attempts=tuple(found[n] for n in sorted(found)),
        )

    def _attempt_rows(self, change: Write) -> dict[tuple[str, int], Attempt]:
        """The attempt rows ``change`` writes, once the constraints SQL enforces hold."""
        rows: dict[tuple[str, int], Attempt] = {}
        if change.insert_attempt is not None:
            new = _attempt_row(change.insert_attempt)
            if new.video_id not in self._tasks:
                raise StoreUnavailable(f"no task {new.video_id!r} for the attempt")
            if new.number in self._attempts.get(new.video_id, {}):
                raise StoreUnavailable(f"attempt {new.number} of {new.video_id} exists")
            rows[(new.video_id, new.number)] = new
        if change.update_attempt is not None:
            new = _attempt_row(change.update_attempt)
            key = (new.video_id, new.number)
            # An UPDATE that matches no row changes nothing.
            if key in rows or new.number in self._attempts.get(new.video_id, {}):
                rows[key] = new
        jobs: set[tuple[str, str]] = set()
        for row in rows.values():
            if row.external_id is None:
                continue
            job = (row.provider, row.external_id)
            holder = self._jobs.get(job)
            if job in jobs or (holder is not None and holder not in rows):
                raise StoreUnavailable(f"two attempts would share the upstream job {job}")
            jobs.add(job)
        return rows

    def _put_attempt(self, row: Attempt) -> None:
        table = self._attempts.setdefault(row.video_id, {})
        old = table.get(row.number)
        if old is not None and old.external_id is not None:
            self._jobs.pop((old.provider, old.external_id), None)
        table[row.number] = row
        if row.external_id is not None:
            self._jobs[(row.provider, row.external_id)] = (row.video_id, row.number)


def _claimable(row: Task, now: datetime) -> bool:
    """Active, and not leased (or the lease ran out)."""
    return row.status in ACTIVE and (row.lease_until is None or row.lease_until < now)


# -- the provider ---------------------------------------------------------------------------


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


if TYPE_CHECKING:  # mypy proves the fakes fit their ports
    _store: TaskStore = MemoryTaskStore()
    _provider: Provider = FakeProvider()
