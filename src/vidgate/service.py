"""Use cases: create, get, list, cancel, retry, content. Authorisation of the caller.

Routes call these and nothing else; the engine is told about new work through
``on_work`` (a wake-up, never a direct call into its loop).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from vidgate.domain import events, ids, transitions
from vidgate.domain.errors import (
    Conflict,
    ContentExpired,
    ContentUnavailable,
    IdempotencyKeyReused,
    TaskAlreadyFinished,
    TaskNotCompleted,
    TaskNotFound,
    TaskNotRetryable,
    TooManyRequests,
    ValidationFailed,
)
from vidgate.domain.models import Attempt, AttemptState, Task, TaskError
from vidgate.domain.request import VideoParams
from vidgate.domain.status import TaskStatus
from vidgate.engine.urls import ACCESS_PARAM
from vidgate.events.base import EventBus
from vidgate.logs import ref
from vidgate.media import MediaStore
from vidgate.providers.base import ContentStream, JobRef, ProviderDirectory, UpstreamError
from vidgate.providers.cleanup import delete_job
from vidgate.store.base import (
    DELETED_AT,
    BadCursor,
    Created,
    IdempotencyClaim,
    IdempotencyMismatch,
    Page,
    Quota,
    QuotaReached,
    TaskStore,
    Write,
    encode_cursor,
)

logger = logging.getLogger(__name__)

_CAS_TRIES = 8


@dataclass(frozen=True, kw_only=True)
class NewTask:
    prompt: str
    model: str
    seconds: str
    size: str
    input_reference: str | None = None
    params: VideoParams = dataclasses.field(default_factory=VideoParams)
    # Which of the seed's Sora-style fields the client sent (errors use its names).
    legacy_fields: tuple[str, ...] = ()
    webhook_url: str | None = None  # kept in metadata, stored with the task at once


@dataclass(frozen=True, kw_only=True)
class Content:
    video_id: str
    external_video_id: str | None
    url: str


class TaskService:
    def __init__(
        self,
        *,
        store: TaskStore,
        bus: EventBus,
        providers: ProviderDirectory,
        deadline_seconds: float,
        on_work: Callable[[], None] = lambda: None,
        quota_for: Callable[[str], Quota] = lambda _user: Quota(),
        idempotency_ttl: timedelta = timedelta(hours=24),
        media: MediaStore | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.providers = providers
        self.deadline = timedelta(seconds=deadline_seconds)
        self.on_work = on_work
        self.quota_for = quota_for
        self.idempotency_ttl = idempotency_ttl
        self.media = media
        self._background: set[asyncio.Task[bool]] = set()

    async def create(
        self, user_id: str, new: NewTask, *, idempotency_key: str | None = None
    ) -> Created:
        """A new task, durable before this returns. With an ``idempotency_key`` the same
        user's earlier task for the same key and request is returned instead
        (``replayed``); the same key with another request is refused."""
        now = datetime.now(UTC)
        renamed = {}
        if "seconds" in new.legacy_fields:
            renamed["durationSeconds"] = "seconds"
        if "size" in new.legacy_fields:
            renamed.update(aspectRatio="size", resolution="size")
        self.providers.catalogue.check(new.model, new.params, now=now, field_names=renamed)
        task = Task(
            video_id=ids.new_video_id(),
            user_id=user_id,
            prompt=new.prompt,
            model=new.model,
            seconds=new.seconds,
            size=new.size,
            input_reference=new.input_reference,
            params=new.params,
            created_at=now,
            updated_at=now,
            deadline_at=now + self.deadline,
            next_check_at=now,
            metadata={"webhookUrl": new.webhook_url} if new.webhook_url else {},
        )
        claim = None
        if idempotency_key is not None:
            claim = IdempotencyClaim(
                key=idempotency_key,
                fingerprint=_fingerprint(new),
                expires_at=now + self.idempotency_ttl,
            )
        try:
            # Engine rule 1: durable before we answer.
            created = await self.store.create(
                task, idempotency=claim, quota=self.quota_for(user_id)
            )
        except IdempotencyMismatch as exc:
            raise IdempotencyKeyReused(
                "This Idempotency-Key was already used with a different request; "
                "use a new key for a new task.",
                details={"videoId": exc.video_id},
            ) from exc
        except QuotaReached as exc:
            raise _quota_error(exc) from exc
        if created.replayed:
            return created
        logger.info("created %s", ref(task.video_id, None), extra=ref(task.video_id, None).extra)
        self.on_work()
        return created

    async def get(self, user_id: str, video_id: str) -> Task:
        task = await self.store.get(video_id) if ids.is_video_id(video_id) else None
        # Another user's task, or one its owner deleted, is answered like a missing one.
        if task is None or task.user_id != user_id or task.metadata.get(DELETED_AT) is not None:
            raise TaskNotFound(video_id)
        return task

    async def find_any(
        self, admin_id: str, *, video_id: str | None, external_video_id: str | None
    ) -> list[Task]:
        """Any user's tasks with this videoId or upstream id: the admin's support lookup
        (the caller has checked the admin role). Logged, as every cross-user read is."""
        logger.info(
            "admin %s looked up videoId=%s externalVideoId=%s",
            admin_id,
            video_id,
            external_video_id,
        )
        if external_video_id is not None:
            return await self.store.find_by_external_id(external_video_id)
        task = await self.store.get(video_id) if video_id and ids.is_video_id(video_id) else None
        return [] if task is None else [task]

    async def list(
        self, user_id: str, *, status: TaskStatus | None, limit: int, cursor: str | None
    ) -> Page:
        try:
            return await self.store.list_page(
                user_id=user_id, status=status, limit=limit, cursor=cursor
            )
        except BadCursor as exc:
            raise ValidationFailed(str(exc), details={"field": "cursor"}) from exc

    async def list_after(
        self, user_id: str, *, after: str | None, limit: int, ascending: bool
    ) -> Page:
        """A page that continues after the caller's task ``after`` (OpenAI-style paging
        by id; ``TaskNotFound`` if there is no such task), newest first unless ``ascending``.
        ``after`` may be a task its owner deleted since: a client that deletes what it pages
        through still gets the next page."""
        cursor = None
        if after is not None:
            task = await self.store.get(after) if ids.is_video_id(after) else None
            if task is None or task.user_id != user_id:
                raise TaskNotFound(after)
            cursor = encode_cursor(task.created_at, task.video_id)
        return await self.store.list_page(
            user_id=user_id, status=None, limit=limit, cursor=cursor, ascending=ascending
        )

    async def delete(self, user_id: str, video_id: str) -> Task:
        """Delete a task for its owner: cancelled first if still running, then marked
        deleted (hidden from every owner route; the row stays for quotas and support),
        its mirrored file removed and its upstream job deleted where the upstream allows."""
        for _ in range(_CAS_TRIES):
            task = await self.get(user_id, video_id)
            now = datetime.now(UTC)
            after = task if task.status.terminal else transitions.cancel(task, now=now)
            stamp = now.isoformat().replace("+00:00", "Z")
            after = dataclasses.replace(
                after, metadata={**after.metadata, DELETED_AT: stamp}, updated_at=now
            )
            closed = None if task.status.terminal else _closed(task, now)
            written = await self._write(task, after, attempt=closed)
            if written is not None:
                who = ref(task.video_id, task.external_id)
                logger.info("deleted %s", who, extra=who.extra)
                self._cleanup_upstream(written)
                await self._forget_mirror(task.video_id)
                return written
        raise Conflict("The task kept changing; try again.")

    async def _forget_mirror(self, video_id: str) -> None:
        if self.media is None:
            return
        mirrored = await asyncio.to_thread(self.media.find, video_id)
        if mirrored is not None:
            try:
                await asyncio.to_thread(mirrored.unlink, missing_ok=True)
            except OSError as exc:  # the task is deleted all the same; the file is logged
                logger.warning("could not remove the mirrored file %s: %s", mirrored, exc)

    async def cancel(self, user_id: str, video_id: str) -> Task:
        for _ in range(_CAS_TRIES):
            task = await self.get(user_id, video_id)
            if task.status is TaskStatus.CANCELLED:
                return task  # idempotent
            if task.status.terminal:
                raise TaskAlreadyFinished(
                    f"The task already ended as {task.status}; there is nothing to cancel.",
                    details={"status": str(task.status)},
                )
            now = datetime.now(UTC)
            after = transitions.cancel(task, now=now)
            written = await self._write(task, after, attempt=_closed(task, now))
            if written is not None:
                self._cleanup_upstream(written)
                return written
        raise Conflict("The task kept changing; try again.")

    async def retry(self, user_id: str, video_id: str) -> Task:
        for _ in range(_CAS_TRIES):
            task = await self.get(user_id, video_id)
            if task.status not in (TaskStatus.FAILED, TaskStatus.CANCELLED):
                raise TaskNotRetryable(
                    f"Only FAILED or CANCELLED tasks can be retried; this one is {task.status}.",
                    details={"status": str(task.status)},
                )
            now = datetime.now(UTC)
            after = transitions.retry(task, now=now, deadline_at=now + self.deadline)
            after = dataclasses.replace(after, lease_owner=None, lease_until=None)
            # A retried task is active again: it counts against the active-task limit
            # (not the daily one, which counts tasks created).
            quota = Quota(max_active=self.quota_for(user_id).max_active)
            try:
                written = await self._write(task, after, attempt=_closed(task, now), quota=quota)
            except QuotaReached as exc:
                raise _quota_error(exc) from exc
            if written is not None:
                self.on_work()
                return written
        raise Conflict("The task kept changing; try again.")

    async def content(self, user_id: str, video_id: str) -> Content:
        task = await self.get(user_id, video_id)
        if task.status is not TaskStatus.COMPLETED or not task.video_url:
            raise TaskNotCompleted(
                f"The task is {task.status}; its video is not ready.",
                details={"status": str(task.status), "progress": task.progress},
            )
        return Content(
            video_id=task.video_id, external_video_id=task.external_id, url=task.video_url
        )

    async def open_stream(
        self, user_id: str, video_id: str, *, range_header: str | None
    ) -> ContentStream | Path:
        """The video bytes through vidgate, for upstreams without a public URL."""
        return await self._open_stream(await self.get(user_id, video_id), range_header)

    async def open_stream_with_access(
        self, video_id: str, access_token: str, *, range_header: str | None
    ) -> ContentStream | Path:
        """The video bytes for whoever holds the ``access_token`` of its ``videoUrl``
        (a ``<video>`` element cannot send credentials); a wrong token is answered like
        a missing task."""
        task = await self.store.get(video_id) if ids.is_video_id(video_id) else None
        if task is None or not _grants(task.video_url, access_token):
            raise TaskNotFound(video_id)
        return await self._open_stream(task, range_header)

    async def _open_stream(self, task: Task, range_header: str | None) -> ContentStream | Path:
        """The mirrored file when there is one (the route serves ranges of it), else the
        upstream's content streamed through."""
        if task.status is not TaskStatus.COMPLETED or task.external_id is None:
            raise TaskNotCompleted(
                f"The task is {task.status}; its video is not ready.",
                details={"status": str(task.status)},
            )
        if self.media is not None:
            mirrored = await asyncio.to_thread(self.media.find, task.video_id)
            if mirrored is not None:
                return mirrored
        attempt = task.current_attempt
        binding = (attempt.binding if attempt is not None else None) or {}
        provider = self.providers.resolve(task.provider or "", binding or None)
        if provider is None:
            raise ContentUnavailable("The provider of this task is no longer configured.")
        expires = attempt.result_expires_at if attempt is not None else None
        # An upstream with a content route (Runway re-signs its URLs) can still deliver.
        refreshable = provider.features.content_route
        if expires is not None and expires <= datetime.now(UTC) and not refreshable:
            raise ContentExpired(
                "The upstream's copy of this video has expired and no mirror was kept.",
                details={"expiredAt": expires.isoformat().replace("+00:00", "Z")},
            )
        handle = binding.get("pollHandle")
        url = binding.get("resultUrl")
        job = JobRef(
            external_id=task.external_id,
            poll_handle=handle if isinstance(handle, str) else None,
        )
        try:
            return await provider.open_content(
                job, url=url if isinstance(url, str) else None, range_header=range_header
            )
        except UpstreamError as exc:
            logger.warning(
                "content of %s unavailable: %s", ref(task.video_id, task.external_id), exc.message
            )
            raise ContentUnavailable(
                "The upstream could not deliver the video.", details={"upstreamStatus": exc.status}
            ) from exc

    async def _write(
        self,
        before: Task,
        after: Task,
        *,
        attempt: Attempt | None = None,
        quota: Quota | None = None,
    ) -> Task | None:
        written = await self.store.write(
            Write(
                before=before,
                after=after,
                update_attempt=attempt,
                event=events.change(before, after),
                quota=quota,
            )
        )
        if written is None:
            return None
        if written.event is not None:
            await self.bus.publish(written.event)
        return written.task

    def _cleanup_upstream(self, task: Task) -> None:
        """Delete a cancelled task's upstream job where the upstream allows it (best effort)."""
        if task.external_id is None or task.provider is None:
            return
        attempt = task.current_attempt
        binding = attempt.binding if attempt is not None else None
        provider = self.providers.resolve(task.provider, binding)
        if provider is None:
            return
        external_id = task.external_id
        handle = (binding or {}).get("pollHandle")
        job = asyncio.create_task(
            delete_job(
                provider,
                external_id,
                video_id=task.video_id,
                poll_handle=handle if isinstance(handle, str) else None,
            )
        )
        self._background.add(job)
        job.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)


def _grants(video_url: str | None, access_token: str) -> bool:
    """Whether ``access_token`` is the one in the task's own ``videoUrl``."""
    if not video_url:
        return False
    issued = parse_qs(urlsplit(video_url).query).get(ACCESS_PARAM, [""])[0]
    return bool(issued) and hmac.compare_digest(issued.encode(), access_token.encode())


def _fingerprint(new: NewTask) -> str:
    """What makes two creates "the same request" for an Idempotency-Key."""
    canonical = json.dumps(dataclasses.asdict(new), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _quota_error(exc: QuotaReached) -> TooManyRequests:
    if exc.which == "active":
        return TooManyRequests(
            f"You already have {exc.limit} unfinished tasks, the most allowed at once; "
            "wait for one to finish or cancel one.",
            code="ACTIVE_TASK_LIMIT",
            retry_after=exc.retry_after,
            details={"limit": exc.limit},
        )
    return TooManyRequests(
        f"You have created {exc.limit} tasks in the last 24 hours, the most allowed.",
        code="DAILY_TASK_LIMIT",
        retry_after=exc.retry_after,
        details={"limit": exc.limit, "window": "24 hours"},
    )


def _closed(task: Task, now: datetime) -> Attempt | None:
    """The task's current attempt marked as ended by the client, if it is still open.

    An attempt still ``submitting`` is left to the engine, which is waiting for the
    upstream's answer and will record the job (and delete it) when it comes.
    """
    attempt = task.current_attempt
    if attempt is None or attempt.state is not AttemptState.SUBMITTED:
        return None
    return dataclasses.replace(
        attempt,
        state=AttemptState.FAILED,
        upstream_status="cancelled",
        finished_at=now,
        error=TaskError(code="CANCELLED", message="Cancelled by the owner."),
    )
