"""Following a submitted job: ask the upstream, apply its answer, confirm a completion.

What the upstream says of a job is applied as a compare-and-set transition (rule 5): a
job that is not ours is never applied, an unknown status word is logged and not
terminal, and "completed" counts only once there is a video a browser can play, which
for some providers means mirroring it into the media store first.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from datetime import UTC, datetime

from vidgate.domain import transitions
from vidgate.domain.models import Attempt, AttemptState, Task, TaskError
from vidgate.domain.schedule import next_poll_delay
from vidgate.domain.status import TaskStatus
from vidgate.engine.classify import Action, classify
from vidgate.engine.config import EngineConfig, utcnow
from vidgate.engine.memory import ProcessMemory
from vidgate.engine.observe import observation_of
from vidgate.engine.outcome import Outcomes
from vidgate.engine.routing import Router, job_ref
from vidgate.engine.urls import new_access_token, stream_url
from vidgate.logs import ref
from vidgate.media import MediaStore, TooLarge
from vidgate.providers.base import (
    JobRef,
    JobView,
    Provider,
    ResultVideo,
    UpstreamError,
    UpstreamNotFound,
    UpstreamProtocolError,
    UpstreamRejected,
)

logger = logging.getLogger(__name__)


class Poller:
    def __init__(
        self,
        *,
        router: Router,
        outcomes: Outcomes,
        config: EngineConfig,
        memory: ProcessMemory,
        media: MediaStore | None,
    ) -> None:
        self.router = router
        self.outcomes = outcomes
        self.config = config
        self.memory = memory
        self.media = media  # where providers with content = "mirror" keep their videos

    async def poll(self, task: Task, attempt: Attempt) -> None:
        provider = self.router.provider_of(attempt)
        if provider is None or attempt.external_id is None:
            await self.outcomes.finish(
                task, attempt, code="NO_PROVIDER", message=f"Provider {attempt.provider!r} is gone."
            )
            return
        gate = self.router.gate(provider)
        if not gate.breaker.allows():
            await self.outcomes.release_later(task, self.config.busy_wait)
            return
        try:
            async with gate.request():
                job = await provider.get(job_ref(attempt))
            if job.external_id != attempt.external_id:
                # Never apply what the upstream says of another job (rule 5).
                raise UpstreamProtocolError(
                    f"{provider.name}: asked for job {attempt.external_id}, "
                    f"answered about {job.external_id}"
                )
        except UpstreamError as exc:
            verdict = classify(exc)
            if verdict.action is Action.LOST:
                gate.breaker.success()
                error = TaskError(
                    code="UPSTREAM_JOB_LOST", message="The upstream no longer knows the job."
                )
                await self.outcomes.end_attempt(task, attempt, error, retry=False)
                return
            gate.breaker.failure()
            failures = self.outcomes.count_failure(task, verdict, "poll")
            if failures >= self.config.poll_failures:
                self.memory.failures.pop(task.video_id, None)
                await self.outcomes.finish(
                    task,
                    attempt,
                    code="UPSTREAM_UNAVAILABLE",
                    message=f"The upstream kept failing: {verdict.message}",
                )
            else:
                await self.outcomes.back_off(task, failures, verdict)
            return
        gate.breaker.success()
        self.memory.failures.pop(task.video_id, None)
        await self.apply(task, attempt, provider, job, first=False)

    async def apply(
        self, task: Task, attempt: Attempt, provider: Provider, job: JobView, *, first: bool
    ) -> None:
        """Apply what the upstream said of the attempt's job (just created, or polled)."""
        now = utcnow()
        since = 0.0 if first else (now - (attempt.submitted_at or now)).total_seconds()
        seen = observation_of(job, since_submit=since, expected=self.config.expected_job_seconds)
        video: ResultVideo | None = None
        if seen.status is TaskStatus.COMPLETED:
            seen, video = await self._confirm_completion(task, attempt, provider, job, seen)
        who = ref(task.video_id, job.external_id)
        if seen.status is None and seen.raw_status is not None:
            logger.warning(
                "unknown upstream status %r for %s; treating it as not finished",
                seen.raw_status,
                who,
                extra=who.extra,
            )
        if first:
            after = transitions.submitted(
                task, provider=provider.name, external_id=job.external_id, seen=seen, now=now
            )
        else:
            after = transitions.observe(task, seen, now=now)
        if job.error is not None and after.status.terminal:
            metadata = dict(after.metadata)
            metadata["errorCategory"] = str(job.error.category)
            after = dataclasses.replace(after, metadata=metadata)
        binding = dict(attempt.binding or {})
        if job.poll_handle is not None:
            binding["pollHandle"] = job.poll_handle
        if video is not None and video.url is not None and after.video_url != video.url:
            # vidgate serves this video itself (/stream): from its mirror, else from this
            # URL (with the provider's key when it needs one).
            binding["resultUrl"] = video.url
        bound = dataclasses.replace(
            attempt,
            external_id=job.external_id,
            binding=binding or None,
            usage=job.usage.to_json() if job.usage is not None else attempt.usage,
        )
        if seen.status is TaskStatus.FAILED and after.error is not None:
            # The job itself failed: worth another attempt only if the reason allows it.
            retry = job.error.worth_retrying if job.error is not None else False
            await self.outcomes.end_attempt(task, bound, after.error, retry=retry, failed=after)
            return
        updated = dataclasses.replace(
            bound,
            state=_attempt_state(after),
            upstream_status=after.status.pushed,
            submitted_at=now if first else attempt.submitted_at,
            finished_at=now if after.status.terminal else None,
            error=after.error,
            result_expires_at=_as_datetime(_expires_at(video, provider))
            if video is not None
            else attempt.result_expires_at,
        )
        # An estimated progress says nothing of the job's real pace: schedule by age alone.
        pace = after.progress if job.progress is not None else 0
        kind = (provider.name, task.model, task.seconds or "")
        if after.status is TaskStatus.COMPLETED and not first:
            # Up to when this look was due: a look the engine started late (under load)
            # must not teach it that such jobs take longer.
            late = (now - task.next_check_at).total_seconds() if task.next_check_at else 0.0
            self.memory.durations.observe(kind, since - max(0.0, late))
        delay = next_poll_delay(
            since_submit=since,
            progress=pace,
            policy=self.config.poll,
            expected=self.memory.durations.expected(kind),
        )
        result = await self.outcomes.commit(task, after, delay=delay, attempt=updated)
        if first and result is not None:
            logger.info(
                "submitted to %s: %s",
                provider.name,
                who,
                extra=who.extra | {"attempt": attempt.number, "provider": provider.name},
            )
        elif first and result is None:
            await self.outcomes.orphaned(task, updated, provider)

    async def _confirm_completion(
        self,
        task: Task,
        attempt: Attempt,
        provider: Provider,
        job: JobView,
        seen: transitions.Observation,
    ) -> tuple[transitions.Observation, ResultVideo | None]:
        """An upstream "completed" counts once there is a video a browser can play.

        A public result URL that outlives ``mirror_before_seconds`` is handed out as it
        is. A result that needs the provider's key (Veo) or expires sooner is mirrored
        when a media store exists, else streamed through vidgate. Without a URL the video
        must answer on the upstream's content route. One inconsistent answer is not
        trusted either way: the task stays open and is looked at again; only a repeated
        "completed" without a video fails it (UPSTREAM_NO_RESULT).
        """
        video = job.videos[0] if job.videos else None
        mode = provider.content_mode
        public = video.url if video is not None and not video.needs_credentials else None
        expires = _expires_at(video, provider)
        expiring = expires is not None and expires - time.time() < self.config.mirror_before_seconds
        unconfirmed = self.memory.unconfirmed
        if public and (mode == "url" or (mode == "auto" and not (expiring and self.media))):
            unconfirmed.pop(task.video_id, None)
            return dataclasses.replace(seen, video_url=public), video
        if mode != "url" and (video is not None or provider.features.content_route):
            target = job_ref(attempt, job)
            url = video.url if video is not None else None
            mirror = self.media is not None and (
                mode == "mirror" or (mode == "auto" and (expiring or url is not None))
            )
            try:
                async with self.router.gate(provider).request():
                    if mirror:
                        await self._mirror(task, provider, target, url)
                    else:
                        stream = await provider.open_content(
                            target, url=url, range_header="bytes=0-0"
                        )
                        await stream.aclose()
            except (UpstreamNotFound, UpstreamRejected):
                pass  # completed, yet no video: unconfirmed
            except UpstreamError:
                return dataclasses.replace(seen, status=None, raw_status=None), None
            else:
                unconfirmed.pop(task.video_id, None)
                stream_at = stream_url(
                    self.config.public_url, task.video_id, access_token=new_access_token()
                )
                return dataclasses.replace(seen, video_url=stream_at), video
        count = unconfirmed.get(task.video_id, 0) + 1
        if count >= self.config.unconfirmed_completions:
            unconfirmed.pop(task.video_id, None)
            return dataclasses.replace(seen, video_url=None), None  # observe() fails it
        unconfirmed[task.video_id] = count
        return dataclasses.replace(seen, status=None, raw_status=None), None

    async def _mirror(self, task: Task, provider: Provider, job: JobRef, url: str | None) -> None:
        """Download the finished video into the media store (the completion check too).

        Upstream errors go to the caller, as the plain check's do. A video the store cannot
        keep (too large, disk trouble, an encoded body) is logged and left to the
        streaming proxy, which ``/stream`` falls back to: completion does not wait on it.
        """
        assert self.media is not None
        who = ref(task.video_id, job.external_id)
        stream = await provider.open_content(job, url=url, range_header=None)
        try:
            encoding = {k.lower(): v for k, v in stream.headers.items()}.get("content-encoding")
            if stream.status != 200 or encoding not in (None, "identity"):
                logger.warning(
                    "not mirroring %s: the upstream answered %d (encoding %s); streaming it",
                    who,
                    stream.status,
                    encoding,
                    extra=who.extra,
                )
                return
            size = await self.media.save(task.video_id, stream.chunks)
        except (TooLarge, OSError) as exc:
            logger.warning("not mirroring %s: %s; streaming it", who, exc, extra=who.extra)
        else:
            logger.info("mirrored %s (%d bytes)", who, size, extra=who.extra)
        finally:
            await stream.aclose()


def _expires_at(video: ResultVideo | None, provider: Provider) -> float | None:
    """When the upstream's copy goes (unix time): its own figure, else the documented
    lifetime from now; None when neither is known."""
    if video is not None and video.expires_at is not None:
        return video.expires_at
    if provider.result_lifetime is not None:
        return time.time() + provider.result_lifetime
    return None


def _as_datetime(when: float | None) -> datetime | None:
    return None if when is None else datetime.fromtimestamp(when, UTC)


def _attempt_state(task: Task) -> AttemptState:
    if task.status is TaskStatus.COMPLETED:
        return AttemptState.FINISHED
    if task.status is TaskStatus.FAILED:
        return AttemptState.FAILED
    return AttemptState.SUBMITTED
