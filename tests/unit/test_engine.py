"""The engine against the in-memory store, the in-process bus and a scripted upstream.

The engine runs its real loop with short real times (no clock patching); the fake
provider decides what the upstream says and when. Tasks are created, cancelled and
retried through ``TaskService``, as the api does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.unit import rig as rigs
from tests.unit.rig import (
    CDN,
    NEW,
    PUBLIC,
    TIMEOUT,
    USER,
    MakeRig,
    Rig,
    polls,
    terminal_events,
    until,
)
from vidgate.domain.events import EventType
from vidgate.domain.ids import shorten
from vidgate.domain.models import AttemptState, Task, TaskError
from vidgate.domain.status import TaskStatus
from vidgate.media import MediaStore
from vidgate.providers.base import (
    RateLimited,
    UpstreamRejected,
    UpstreamUnavailable,
)
from vidgate.store.base import Write
from vidgate.testing import Call

make_rig = rigs.make_rig


# -- the happy path --------------------------------------------------------------------------


async def test_a_task_is_submitted_polled_and_completed(make_rig: MakeRig) -> None:
    rig = await make_rig()
    at_create: list[tuple[Call, Task]] = []

    async def look_at_the_store(call: Call) -> None:
        [task] = (await rig.store.list_page(user_id=USER, status=None, limit=5, cursor=None)).items
        at_create.append((call, task))

    rig.provider.on_call("create", look_at_the_store)
    rig.engine()
    created = await rig.create()
    assert created.status is TaskStatus.QUEUED

    task = await rig.submitted(created.video_id)

    # Engine rule 4: the attempt and its key were durable before the paid call.
    [(call, before_call)] = at_create
    assert before_call.attempt == 1
    [pending] = before_call.attempts
    assert pending.state is AttemptState.SUBMITTING
    assert pending.external_id is None
    assert pending.idempotency_key == call.idempotency_key
    assert call.request is not None and call.request.prompt == NEW.prompt
    external_id = task.external_id
    assert external_id is not None
    [attempt] = task.attempts
    assert attempt.state is AttemptState.SUBMITTED
    assert attempt.external_id == external_id
    assert attempt.idempotency_key == call.idempotency_key
    assert task.metadata["externalTaskId"] == external_id
    assert task.provider == "fake"

    rig.provider.advance(external_id, status="in_progress", progress=40)
    await rig.wait(task.video_id, lambda t: t.progress == 40)
    rig.provider.complete(external_id, url=CDN)
    done = await rig.wait(task.video_id, lambda t: t.status.terminal)

    assert done.status is TaskStatus.COMPLETED
    assert done.progress == 100
    assert done.video_url == CDN
    assert done.completed_at is not None
    assert done.next_check_at is None and done.lease_owner is None
    assert done.attempts[0].state is AttemptState.FINISHED
    assert done.attempts[0].finished_at is not None

    events = rig.events(task.video_id)
    assert [(e.type, e.payload["status"], e.payload["progress"]) for e in events] == [
        (EventType.PROGRESS, "queued", 0),
        (EventType.PROGRESS, "in_progress", 40),
        (EventType.COMPLETED, "completed", 100),
    ]
    for event in events:
        assert event.payload["videoId"] == task.video_id
        assert event.payload["externalVideoId"] == external_id
    assert events[-1].payload["result"] == {"videoUrl": CDN}
    # What was pushed is what was stored, in order.
    assert events == await rig.store.events_after(task.video_id, 0)
    assert [e.task_version for e in events] == sorted(e.task_version for e in events)


@pytest.mark.parametrize(
    ("content_mode", "upstream_url", "played_from"),
    [
        ("auto", None, "stream"),
        ("auto", CDN, "upstream"),
        ("proxy", CDN, "stream"),
        ("url", CDN, "upstream"),
    ],
)
async def test_video_url_comes_from_the_upstream_or_the_stream_route(
    make_rig: MakeRig, content_mode: str, upstream_url: str | None, played_from: str
) -> None:
    rig = await make_rig(content_mode=content_mode)
    rig.engine()
    task = await rig.submitted((await rig.create()).video_id)
    assert task.external_id is not None

    rig.provider.complete(task.external_id, url=upstream_url)
    done = await rig.wait(task.video_id, lambda t: t.status.terminal)

    stream = f"{PUBLIC}/api/video/tasks/{task.video_id}/stream?access_token="
    assert done.status is TaskStatus.COMPLETED
    assert done.video_url is not None
    if played_from == "stream":
        assert done.video_url.startswith(stream) and len(done.video_url) > len(stream) + 20
    else:
        assert done.video_url == upstream_url
    assert rig.events(task.video_id)[-1].payload["result"] == {"videoUrl": done.video_url}


async def test_completed_without_a_url_when_one_is_required_fails(make_rig: MakeRig) -> None:
    rig = await make_rig(content_mode="url")
    rig.engine()
    task = await rig.submitted((await rig.create()).video_id)
    assert task.external_id is not None

    rig.provider.complete(task.external_id, url=None)
    done = await rig.wait(task.video_id, lambda t: t.status.terminal)

    assert done.status is TaskStatus.FAILED
    assert done.error is not None and done.error.code == "UPSTREAM_NO_RESULT"
    assert done.video_url is None and done.progress < 100
    [failed] = terminal_events(rig.events(task.video_id))
    assert failed.type is EventType.FAILED
    assert failed.payload["error"]["code"] == "UPSTREAM_NO_RESULT"


# -- what the upstream says ------------------------------------------------------------------


async def test_polling_an_unchanged_job_publishes_nothing(make_rig: MakeRig) -> None:
    rig = await make_rig()
    rig.engine()
    task = await rig.submitted((await rig.create()).video_id)
    assert task.external_id is not None
    await polls(rig.provider, 4)

    assert len(rig.events(task.video_id)) == 1  # the submission, nothing per poll
    rig.provider.advance(task.external_id, progress=10)
    await rig.wait(task.video_id, lambda t: t.progress == 10)
    await polls(rig.provider, 3)

    assert [e.payload["progress"] for e in rig.events(task.video_id)] == [0, 10]


async def test_an_unknown_status_word_is_logged_and_not_terminal(
    make_rig: MakeRig, caplog: pytest.LogCaptureFixture
) -> None:
    rig = await make_rig()
    rig.engine()
    task = await rig.submitted((await rig.create()).video_id)
    external_id = task.external_id
    assert external_id is not None
    rig.provider.advance(external_id, status="in_progress", progress=20)
    await rig.wait(task.video_id, lambda t: t.progress == 20)

    rig.provider.advance(external_id, status="rendering_frames", progress=30)
    await rig.wait(task.video_id, lambda t: t.progress == 30)
    await polls(rig.provider, 2)

    now = await rig.get(task.video_id)
    assert now.status is TaskStatus.PROCESSING
    assert now.next_check_at is not None  # still being followed
    lines = [r for r in caplog.records if "unknown upstream status" in r.getMessage()]
    assert lines
    line = lines[0]
    assert line.levelno == logging.WARNING
    assert "'rendering_frames'" in line.getMessage()
    assert shorten(task.video_id) in line.getMessage()
    assert shorten(external_id) in line.getMessage()
    assert line.__dict__["videoId"] == task.video_id
    assert line.__dict__["externalVideoId"] == external_id

    rig.provider.complete(external_id, url=CDN)  # a known word still ends it
    done = await rig.wait(task.video_id, lambda t: t.status.terminal)
    assert done.status is TaskStatus.COMPLETED


async def test_progress_never_goes_backwards(make_rig: MakeRig) -> None:
    rig = await make_rig()
    rig.engine()
    task = await rig.submitted((await rig.create()).video_id)
    assert task.external_id is not None
    rig.provider.advance(task.external_id, progress=60)
    await rig.wait(task.video_id, lambda t: t.progress == 60)

    rig.provider.advance(task.external_id, progress=30)
    await polls(rig.provider, 3)
    assert (await rig.get(task.video_id)).progress == 60
    rig.provider.advance(task.external_id, progress=100)  # but not completed
    await rig.wait(task.video_id, lambda t: t.progress == 99)
    rig.provider.advance(task.external_id, progress=float("inf"))
    await polls(rig.provider, 2)

    now = await rig.get(task.video_id)
    assert now.status is TaskStatus.PROCESSING and now.progress == 99
    assert [e.payload["progress"] for e in rig.events(task.video_id)] == [0, 60, 99]


async def test_an_upstream_failure_fails_the_task_with_its_code(make_rig: MakeRig) -> None:
    rig = await make_rig()
    rig.engine()
    task = await rig.submitted((await rig.create()).video_id)
    assert task.external_id is not None
    rig.provider.advance(task.external_id, progress=35)
    await rig.wait(task.video_id, lambda t: t.progress == 35)

    rig.provider.fail(task.external_id, "content_policy_violation", "The prompt was blocked.")
    done = await rig.wait(task.video_id, lambda t: t.status.terminal)

    error = TaskError(code="content_policy_violation", message="The prompt was blocked.")
    assert done.status is TaskStatus.FAILED
    assert done.error == error
    assert done.progress == 35
    assert done.attempts[0].state is AttemptState.FAILED
    assert done.attempts[0].error == error
    [failed] = terminal_events(rig.events(task.video_id))
    assert failed.payload["error"] == {
        "code": "content_policy_violation",
        "message": "The prompt was blocked.",
    }
    assert failed.payload["externalVideoId"] == task.external_id


async def test_a_rejected_submission_fails_at_once(make_rig: MakeRig) -> None:
    rig = await make_rig()
    rig.provider.fail_next("create", UpstreamRejected("prompt is too long", status=400))
    rig.engine()
    created = await rig.create()

    done = await rig.wait(created.video_id, lambda t: t.status.terminal)

    assert done.status is TaskStatus.FAILED
    assert done.error == TaskError(code="UPSTREAM_REJECTED", message="prompt is too long")
    assert done.external_id is None
    [attempt] = done.attempts
    assert attempt.state is AttemptState.FAILED
    assert len(rig.provider.calls_to("create")) == 1
    assert rig.provider.jobs == {}
    [failed] = rig.events(created.video_id)
    assert failed.type is EventType.FAILED
    assert failed.payload["error"]["code"] == "UPSTREAM_REJECTED"


# -- transient errors ------------------------------------------------------------------------


async def test_a_transient_poll_error_is_retried(make_rig: MakeRig) -> None:
    rig = await make_rig()
    rig.engine()
    task = await rig.submitted((await rig.create()).video_id)
    assert task.external_id is not None
    rig.provider.fail_next("get", UpstreamUnavailable("fake: upstream 503"))
    rig.provider.advance(task.external_id, progress=50)

    done = await rig.wait(task.video_id, lambda t: t.progress == 50)

    assert done.status is TaskStatus.PROCESSING
    assert len(rig.provider.calls_to("create")) == 1
    gets = rig.provider.calls_to("get")
    assert len(gets) >= 2 and {c.external_id for c in gets} == {task.external_id}


async def test_a_transient_create_error_resends_with_the_same_key(make_rig: MakeRig) -> None:
    rig = await make_rig()
    rig.provider.fail_next("create", UpstreamUnavailable("fake: connection reset"))
    rig.engine()

    task = await rig.submitted((await rig.create()).video_id)

    first, second = rig.provider.calls_to("create")
    assert first.idempotency_key == second.idempotency_key
    assert len(rig.provider.jobs) == 1
    assert task.attempt == 1 and len(task.attempts) == 1


async def test_rate_limited_waits_for_retry_after(make_rig: MakeRig) -> None:
    rig = await make_rig()
    rig.provider.fail_next("create", RateLimited("fake: upstream 429", retry_after=3.0))
    engine = rig.engine()
    asked = datetime.now(UTC)  # the 429 comes after this
    created = await rig.create()

    await until(lambda: len(rig.provider.calls_to("create")) == 1)
    waiting = await rig.wait(created.video_id, lambda t: t.lease_owner is None and t.attempt == 1)

    # Released, not failed, and not due again before the upstream said (the backoff alone
    # would be at most one second).
    assert waiting.status is TaskStatus.QUEUED
    assert waiting.next_check_at is not None
    assert waiting.next_check_at >= asked + timedelta(seconds=3)
    assert waiting.attempts[0].state is AttemptState.SUBMITTING
    await asyncio.sleep(0.2)
    assert len(rig.provider.calls_to("create")) == 1

    # Let the three seconds pass without waiting for them, then it is sent again.
    moved = await rig.store.write(
        Write(before=waiting, after=dataclasses.replace(waiting, next_check_at=datetime.now(UTC)))
    )
    assert moved is not None
    engine.wake()
    task = await rig.submitted(created.video_id)

    first, second = rig.provider.calls_to("create")
    assert first.idempotency_key == second.idempotency_key
    assert task.status is TaskStatus.QUEUED and task.attempt == 1


async def test_an_upstream_that_keeps_failing_fails_the_task(make_rig: MakeRig) -> None:
    rig = await make_rig()
    rig.engine(submit_retries=2, poll_failures=2)
    task = await rig.submitted((await rig.create()).video_id)
    rig.provider.fail_next("get", UpstreamUnavailable("fake: upstream 502"), times=2)

    done = await rig.wait(task.video_id, lambda t: t.status.terminal)

    assert done.status is TaskStatus.FAILED
    assert done.error is not None and done.error.code == "UPSTREAM_UNAVAILABLE"
    assert "upstream 502" in done.error.message
    assert done.attempts[0].state is AttemptState.FAILED


# -- crash recovery --------------------------------------------------------------------------


async def crash_during_create(rig: Rig) -> Task:
    """Engine A sends the create, the upstream makes the job, A dies before the answer."""
    rig.provider.hang_next("create", served=True)
    crashed = rig.engine("engine-a", lease_seconds=0.2)
    created = await rig.create()
    await until(lambda: len(rig.provider.jobs) == 1)
    await crashed.abort()  # the step is cancelled mid-call: nothing is written or released
    rig.engines.remove(crashed)
    left = await rig.get(created.video_id)
    assert left.lease_owner == "engine-a"
    [attempt] = left.attempts
    assert attempt.state is AttemptState.SUBMITTING and attempt.external_id is None
    return left


async def test_an_interrupted_submission_is_resent_with_the_same_key(make_rig: MakeRig) -> None:
    rig = await make_rig(honours_idempotency=True)
    left = await crash_during_create(rig)
    [job] = rig.provider.jobs.values()

    rig.engine("engine-b")  # takes over once A's lease has run out
    task = await rig.submitted(left.video_id)

    assert task.external_id == job.external_id  # the job A paid for, not a second one
    assert len(rig.provider.jobs) == 1
    first, second = rig.provider.calls_to("create")
    assert first.idempotency_key == second.idempotency_key == left.attempts[0].idempotency_key
    [attempt] = task.attempts
    assert attempt.state is AttemptState.SUBMITTED
    assert attempt.external_id == job.external_id
    rig.provider.complete(job.external_id, url=CDN)
    done = await rig.wait(task.video_id, lambda t: t.status.terminal)
    assert done.status is TaskStatus.COMPLETED


async def test_an_interrupted_submission_without_idempotency_is_not_resent(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig(honours_idempotency=False)
    left = await crash_during_create(rig)

    rig.engine("engine-b")
    done = await rig.wait(left.video_id, lambda t: t.status.terminal)

    assert done.status is TaskStatus.FAILED
    assert done.error is not None and done.error.code == "SUBMISSION_UNCERTAIN"
    [attempt] = done.attempts
    assert attempt.state is AttemptState.UNKNOWN
    assert attempt.error is not None and attempt.error.code == "SUBMISSION_UNCERTAIN"
    assert len(rig.provider.calls_to("create")) == 1  # no second paid job
    [failed] = rig.events(left.video_id)
    assert failed.payload["error"]["code"] == "SUBMISSION_UNCERTAIN"


# -- deadline, cancel, retry -----------------------------------------------------------------


async def test_the_deadline_fails_the_task_and_deletes_the_upstream_job(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig(deadline_seconds=0.5)
    rig.engine()
    task = await rig.submitted((await rig.create()).video_id)
    assert task.external_id is not None
    rig.provider.advance(task.external_id, progress=10)

    done = await rig.wait(task.video_id, lambda t: t.status.terminal)

    assert done.status is TaskStatus.FAILED
    assert done.error is not None and done.error.code == "TASK_TIMEOUT"
    assert done.completed_at is not None and done.completed_at >= task.deadline_at
    assert done.attempts[0].state is AttemptState.FAILED
    assert [c.external_id for c in rig.provider.calls_to("delete")] == [task.external_id]
    assert rig.provider.jobs[task.external_id].deleted
    [failed] = terminal_events(rig.events(task.video_id))
    assert failed.payload["error"]["code"] == "TASK_TIMEOUT"


async def test_cancel_during_a_poll_ends_in_one_cancelled_state(make_rig: MakeRig) -> None:
    rig = await make_rig()
    rig.engine()
    task = await rig.submitted((await rig.create()).video_id)
    assert task.external_id is not None
    cancelled: list[Task] = []

    async def cancel_now(call: Call) -> None:
        if not cancelled:  # the client cancels while the engine waits for the upstream
            cancelled.append(await rig.service.cancel(USER, task.video_id))

    gets = len(rig.provider.calls_to("get"))
    rig.provider.on_call("get", cancel_now)
    rig.provider.advance(task.external_id, progress=50)  # what the poll would have written
    await until(lambda: bool(cancelled))
    await asyncio.sleep(0.3)  # several engine cycles: nothing more may happen
    await rig.service.drain()

    done = await rig.get(task.video_id)
    assert done.status is TaskStatus.CANCELLED
    assert done.progress == 0  # the in-flight poll's answer was refused
    events = rig.events(task.video_id)
    [ended] = terminal_events(events)
    assert ended.type is EventType.CANCELLED
    assert ended is events[-1]
    assert rig.provider.jobs[task.external_id].deleted  # the service cleaned up upstream
    assert len(rig.provider.calls_to("get")) == gets + 1  # a cancelled task is not polled


async def cancel_during_submission(rig: Rig) -> Task:
    """The client cancels while the engine waits for the upstream's create answer."""
    created = await rig.create()

    async def cancel_now(call: Call) -> None:
        await rig.service.cancel(USER, created.video_id)

    remove = rig.provider.on_call("create", cancel_now)
    rig.engine()
    await until(lambda: len(rig.provider.calls_to("delete")) == 1)
    remove()
    return await rig.get(created.video_id)


async def test_cancel_during_the_submission_keeps_the_job_record(make_rig: MakeRig) -> None:
    rig = await make_rig()

    done = await cancel_during_submission(rig)

    [job] = rig.provider.jobs.values()
    assert done.status is TaskStatus.CANCELLED
    [attempt] = done.attempts
    assert attempt.external_id == job.external_id  # the paid job is on record, closed
    assert attempt.state is AttemptState.FAILED and attempt.finished_at is not None
    assert attempt.error is not None and attempt.error.code == "CANCELLED"
    assert job.deleted
    [ended] = terminal_events(rig.events(done.video_id))
    assert ended.type is EventType.CANCELLED

    await rig.service.retry(USER, done.video_id)  # and the task can start afresh
    again = await rig.wait(done.video_id, lambda t: t.external_id is not None)
    assert again.attempt == 2 and again.external_id != job.external_id


async def test_retry_makes_a_second_attempt_and_keeps_the_first(make_rig: MakeRig) -> None:
    rig = await make_rig()
    rig.engine()
    first = await rig.submitted((await rig.create()).video_id)
    assert first.external_id is not None
    rig.provider.fail(first.external_id, "invalid_prompt", "The prompt is not acceptable.")
    await rig.wait(first.video_id, lambda t: t.status is TaskStatus.FAILED)

    retried = await rig.service.retry(USER, first.video_id)
    assert retried.status is TaskStatus.QUEUED and retried.external_id is None
    second = await rig.submitted(first.video_id)

    assert second.external_id not in (None, first.external_id)
    assert second.attempt == 2
    one, two = second.attempts
    assert one.number == 1 and one.external_id == first.external_id
    assert one.state is AttemptState.FAILED
    assert two.number == 2 and two.external_id == second.external_id
    assert two.idempotency_key != one.idempotency_key
    assert len(rig.provider.jobs) == 2
    assert second.external_id is not None
    rig.provider.complete(second.external_id, url=CDN)
    done = await rig.wait(first.video_id, lambda t: t.status.terminal)
    assert done.status is TaskStatus.COMPLETED and done.error is None
    pushed = [
        (e.payload["status"], e.payload["externalVideoId"]) for e in rig.events(done.video_id)
    ]
    assert pushed == [
        ("queued", first.external_id),
        ("failed", first.external_id),
        ("queued", None),
        ("queued", second.external_id),
        ("completed", second.external_id),
    ]


async def test_retry_after_cancel_makes_a_second_attempt(make_rig: MakeRig) -> None:
    rig = await make_rig()
    rig.engine()
    first = await rig.submitted((await rig.create()).video_id)
    assert first.external_id is not None
    await rig.service.cancel(USER, first.video_id)
    await rig.service.drain()

    await rig.service.retry(USER, first.video_id)
    second = await rig.wait(
        first.video_id, lambda t: t.external_id is not None or t.status.terminal
    )

    assert second.status is TaskStatus.QUEUED
    assert second.attempt == 2
    assert second.external_id not in (None, first.external_id)
    one, _ = second.attempts
    assert one.state is AttemptState.FAILED
    assert one.error is not None and one.error.code == "CANCELLED"
    assert [c.external_id for c in rig.provider.calls_to("get")].count(first.external_id) == 0


# -- leases ----------------------------------------------------------------------------------


async def test_an_engine_that_lost_its_lease_cannot_write(
    make_rig: MakeRig, caplog: pytest.LogCaptureFixture
) -> None:
    rig = await make_rig()
    # A's heartbeat stalls (say, a long GC pause), so its lease runs out mid-step.
    first = rig.engine("engine-a", lease_seconds=0.2, heartbeat_seconds=3600)
    task = await rig.submitted((await rig.create()).video_id)
    assert task.external_id is not None
    gate = asyncio.Event()

    async def slow_upstream(call: Call) -> None:
        await gate.wait()

    rig.provider.on_call("get", slow_upstream)
    await polls(rig.provider, 1)  # A is inside a poll, holding a 0.2 s lease
    stopping = asyncio.create_task(first.stop(drain_seconds=TIMEOUT))  # claims nothing more
    await asyncio.sleep(0.3)
    [taken] = await rig.store.claim(
        owner="engine-b",
        now=datetime.now(UTC),
        until=datetime.now(UTC) + timedelta(seconds=30),
        limit=10,
    )
    events_before = len(rig.published)

    rig.provider.advance(task.external_id, progress=70)
    gate.set()  # A's poll answers now, after B took the task over
    await stopping

    now = await rig.get(task.video_id)
    assert now == taken  # A's write was refused: nothing changed
    assert now.lease_owner == "engine-b" and now.progress == 0
    assert len(rig.published) == events_before
    refused = [r for r in caplog.records if "write refused" in r.getMessage()]
    assert refused and refused[0].__dict__["videoId"] == task.video_id


async def test_two_engines_submit_each_task_once(make_rig: MakeRig) -> None:
    rig = await make_rig()
    rig.engine("engine-a")
    rig.engine("engine-b")
    created = [await rig.create() for _ in range(12)]

    for task in created:
        await rig.submitted(task.video_id)

    keys = [c.idempotency_key for c in rig.provider.calls_to("create")]
    assert len(keys) == len(set(keys)) == 12
    assert len(rig.provider.jobs) == 12


async def test_a_mirrored_video_is_kept_and_served_after_the_upstream_forgets_it(
    make_rig: MakeRig, tmp_path: Path
) -> None:
    media = MediaStore(tmp_path / "media", max_bytes=1024)
    rig = await make_rig(content_mode="mirror")
    rig.service.media = media
    rig.engine(media=media)
    task = await rig.submitted((await rig.create()).video_id)
    assert task.external_id is not None
    # The first download breaks off: the task stays open and the download is tried again.
    rig.provider.fail_next("open_content", UpstreamUnavailable("fake: reset"))
    rig.provider.complete(task.external_id, url=CDN)  # mirror ignores the job's own URL

    done = await rig.wait(task.video_id, lambda t: t.status.terminal)

    assert done.status is TaskStatus.COMPLETED
    assert done.video_url is not None
    assert done.video_url.startswith(f"{PUBLIC}/api/video/tasks/{task.video_id}/stream?")
    mirrored = media.find(task.video_id)
    assert mirrored is not None and mirrored.read_bytes() == rig.provider.content
    assert [c.range_header for c in rig.provider.calls_to("open_content")] == [None, None]
    del rig.provider.jobs[task.external_id]  # the upstream's copy expired
    served = await rig.service.open_stream(USER, task.video_id, range_header=None)
    assert served == mirrored
    assert list((tmp_path / "media").iterdir()) == [mirrored]  # no partial file left


async def test_a_video_too_large_to_mirror_is_streamed_instead(
    make_rig: MakeRig, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    media = MediaStore(tmp_path / "media", max_bytes=4)
    rig = await make_rig(content_mode="mirror")
    rig.service.media = media
    rig.engine(media=media)
    task = await rig.submitted((await rig.create()).video_id)
    assert task.external_id is not None
    rig.provider.complete(task.external_id, url=None)

    done = await rig.wait(task.video_id, lambda t: t.status.terminal)

    assert done.status is TaskStatus.COMPLETED
    assert media.find(task.video_id) is None
    assert list((tmp_path / "media").iterdir()) == []
    assert "not mirroring" in caplog.text
    streamed = await rig.service.open_stream(USER, task.video_id, range_header=None)
    assert not isinstance(streamed, Path)
    await streamed.aclose()
