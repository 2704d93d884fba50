"""The engine under failure (issue 3): Retry-After, rejection, failover, circuit breaker,
routing, max_jobs, crash recovery per policy, heartbeat leases, graceful stop, completion
confirmation and hostile upstream answers.

Real engine loops with short real times against ``MemoryTaskStore`` and scripted
``FakeProvider`` upstreams (see tests/unit/rig.py). Every upstream call is recorded with
the moment it was made, so "not before Retry-After" and "never touched A" are checked on
what the upstream actually received.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.unit import rig as rigs
from tests.unit.rig import CDN, NEW, PUBLIC, TIMEOUT, MakeRig, Rig, polls, provider_config, until
from vidgate.domain.models import AttemptState, Task, TaskError
from vidgate.domain.status import TaskStatus
from vidgate.engine import routing as routing_module
from vidgate.providers.base import (
    ErrorCategory,
    JobError,
    JobStatus,
    JobView,
    RateLimited,
    ResultVideo,
    SubmitRequest,
    UpstreamNotFound,
    UpstreamRejected,
    UpstreamUnavailable,
)
from vidgate.testing import Call, FakeProvider

make_rig = rigs.make_rig


@dataclass(frozen=True)
class Seen:
    """One upstream call and when it arrived."""

    call: Call
    at: float  # time.monotonic()
    wall: datetime


def record(fake: FakeProvider, method: str) -> list[Seen]:
    """Every later call of ``method``, timed (appended before the call is answered)."""
    seen: list[Seen] = []

    async def hook(call: Call) -> None:
        seen.append(Seen(call, time.monotonic(), datetime.now(UTC)))

    fake.on_call(method, hook)
    return seen


async def two_providers(
    make_rig: MakeRig, a: dict[str, Any] | None = None, b: dict[str, Any] | None = None
) -> tuple[Rig, FakeProvider, FakeProvider]:
    """Providers A (priority 0) and B (priority 1), both offering the model."""
    fake_a, fake_b = FakeProvider("A"), FakeProvider("B")
    configs = [
        provider_config(fake_a, **({"priority": 0} | (a or {}))),
        provider_config(fake_b, **({"priority": 1} | (b or {}))),
    ]
    rig = await make_rig(providers=[fake_a, fake_b], configs=configs)
    return rig, fake_a, fake_b


def pushed(rig: Rig, video_id: str) -> list[tuple[str, str | None, int]]:
    return [
        (e.payload["status"], e.payload["externalVideoId"], e.payload["progress"])
        for e in rig.events(video_id)
    ]


def refused(message: str = "cannot connect") -> UpstreamUnavailable:
    """A connection error: the request certainly did not reach the upstream."""
    return UpstreamUnavailable(f"fake: {message}", maybe_received=False)


def timed_out() -> UpstreamUnavailable:
    """A read timeout: the upstream may have acted on the request."""
    return UpstreamUnavailable("fake: read timed out", maybe_received=True)


# -- Retry-After -----------------------------------------------------------------------------

WAIT = 0.5  # a Retry-After longer than the engine's whole backoff range (0.2 s)


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_on_create_is_obeyed(make_rig: MakeRig, status: int) -> None:
    rig = await make_rig()
    rig.provider.fail_next(
        "create", RateLimited("fake: slow down", status=status, retry_after=WAIT)
    )
    creates = record(rig.provider, "create")
    rig.engine()
    created = await rig.create()

    waiting = await rig.wait(created.video_id, lambda t: t.attempt == 1 and t.lease_owner is None)

    [first] = creates
    assert waiting.status is TaskStatus.QUEUED
    assert waiting.next_check_at is not None
    assert waiting.next_check_at >= first.wall + timedelta(seconds=WAIT)
    assert waiting.attempts[0].state is AttemptState.SUBMITTING

    task = await rig.submitted(created.video_id)
    one, two = creates
    assert two.at - one.at >= WAIT  # nothing reached the upstream before Retry-After
    assert one.call.idempotency_key == two.call.idempotency_key
    assert task.attempt == 1 and len(rig.provider.jobs) == 1


async def test_retry_after_on_poll_is_obeyed(make_rig: MakeRig) -> None:
    rig = await make_rig()
    gets = record(rig.provider, "get")
    rig.engine()
    task = await rig.submitted((await rig.create()).video_id)
    assert task.external_id is not None
    await polls(rig.provider, 2)

    failing = len(gets)  # the next poll is refused
    rig.provider.fail_next("get", RateLimited("fake: upstream 429", retry_after=WAIT))
    await until(lambda: len(gets) > failing)
    waiting = await rig.wait(task.video_id, lambda t: t.lease_owner is None)
    rig.provider.advance(task.external_id, progress=30)
    await rig.wait(task.video_id, lambda t: t.progress == 30)

    refused_at, then = gets[failing], gets[failing + 1]
    assert waiting.next_check_at is not None
    assert waiting.next_check_at >= refused_at.wall + timedelta(seconds=WAIT)
    assert then.at - refused_at.at >= WAIT
    assert {s.call.external_id for s in gets} == {task.external_id}
    assert (await rig.get(task.video_id)).status is TaskStatus.PROCESSING


# -- rejection -------------------------------------------------------------------------------


async def test_a_rejected_create_fails_at_once_and_does_not_fail_over(
    make_rig: MakeRig,
) -> None:
    rig, a, b = await two_providers(make_rig)
    a.fail_next("create", UpstreamRejected("size 9999x1 is not supported", status=400))
    rig.engine()
    created = await rig.create()

    done = await rig.done(created.video_id)

    assert done.status is TaskStatus.FAILED
    assert done.error == TaskError(code="UPSTREAM_REJECTED", message="size 9999x1 is not supported")
    assert len(a.calls_to("create")) == 1
    assert b.calls == []  # the request is wrong: sending it elsewhere would not help
    [attempt] = done.attempts
    assert attempt.state is AttemptState.FAILED and attempt.provider == "A"
    [(status, _, _)] = pushed(rig, created.video_id)
    assert status == "failed"


# -- failover on submission ------------------------------------------------------------------


async def test_connection_errors_fail_over_to_the_next_provider(make_rig: MakeRig) -> None:
    rig, a, b = await two_providers(make_rig)
    engine = rig.engine()
    a.fail_next("create", refused(), times=engine.config.submit_retries)
    created = await rig.create()

    task = await rig.submitted(created.video_id)

    assert task.provider == "B"
    assert 2 <= len(a.calls_to("create")) == engine.config.failover_after
    assert len({c.idempotency_key for c in a.calls_to("create")}) == 1  # one attempt on A
    [b_create] = b.calls_to("create")
    first, second = task.attempts
    assert (first.number, first.provider, first.state) == (1, "A", AttemptState.FAILED)
    assert first.external_id is None
    assert first.error is not None and first.error.code == "UPSTREAM_UNAVAILABLE"
    assert (second.number, second.provider) == (2, "B")
    assert second.external_id == task.external_id
    assert b_create.idempotency_key == second.idempotency_key != first.idempotency_key

    assert task.external_id is not None
    b.complete(task.external_id, url=CDN)
    done = await rig.done(created.video_id)
    assert done.status is TaskStatus.COMPLETED and done.video_url == CDN
    assert [a.state for a in done.attempts] == [AttemptState.FAILED, AttemptState.FINISHED]
    # The client saw one smooth task, never a failure.
    assert pushed(rig, created.video_id) == [
        ("queued", task.external_id, 0),
        ("completed", task.external_id, 100),
    ]


@pytest.mark.parametrize("then", ["timeouts", "connection-errors"])
async def test_a_create_that_may_have_been_received_never_fails_over(
    make_rig: MakeRig, then: str
) -> None:
    # A may hold a paid job for this attempt: a second attempt on B could pay twice.
    rig, a, b = await two_providers(make_rig)
    engine = rig.engine()
    retries = engine.config.submit_retries
    a.fail_next("create", timed_out())
    a.fail_next("create", timed_out() if then == "timeouts" else refused(), times=retries - 1)
    created = await rig.create()

    done = await rig.done(created.video_id)

    assert done.status is TaskStatus.FAILED
    assert done.error is not None and done.error.code == "UPSTREAM_UNAVAILABLE"
    assert b.calls == []
    creates = a.calls_to("create")
    assert len(creates) == retries
    assert len({c.idempotency_key for c in creates}) == 1  # the same key every time
    [attempt] = done.attempts
    assert attempt.state is AttemptState.UNKNOWN


# -- failover on a failed job ----------------------------------------------------------------


async def test_a_retryable_job_failure_moves_to_an_untried_provider(make_rig: MakeRig) -> None:
    rig, a, b = await two_providers(make_rig)
    rig.engine()
    created = await rig.create()
    on_a = await rig.submitted(created.video_id)
    assert on_a.provider == "A" and on_a.external_id is not None
    a.advance(on_a.external_id, progress=30)
    await rig.wait(created.video_id, lambda t: t.progress == 30)

    a.fail(on_a.external_id, "video_generation_failed", "The render farm fell over.")
    on_b = await rig.wait(
        created.video_id, lambda t: t.provider == "B" and t.external_id is not None
    )

    assert on_b.status is TaskStatus.QUEUED and on_b.attempt == 2
    assert len(a.calls_to("create")) == 1  # A (priority 0) was not asked again
    assert on_b.external_id is not None
    b.complete(on_b.external_id, url=CDN)
    done = await rig.done(created.video_id)

    assert done.status is TaskStatus.COMPLETED and done.error is None
    first, second = done.attempts
    assert (first.provider, first.state, first.external_id) == (
        "A",
        AttemptState.FAILED,
        on_a.external_id,
    )
    assert first.error is not None and first.error.code == "video_generation_failed"
    assert (second.provider, second.state) == ("B", AttemptState.FINISHED)
    assert second.idempotency_key != first.idempotency_key
    assert pushed(rig, created.video_id) == [
        ("queued", on_a.external_id, 0),
        ("in_progress", on_a.external_id, 30),
        ("queued", None, 0),  # the requeue: the first job is gone
        ("queued", on_b.external_id, 0),
        ("completed", on_b.external_id, 100),
    ]


@pytest.mark.parametrize("code", ["moderation_blocked", "content_policy_violation"])
async def test_a_content_policy_failure_is_final(make_rig: MakeRig, code: str) -> None:
    rig, a, b = await two_providers(make_rig)
    rig.engine()
    task = await rig.submitted((await rig.create()).video_id)
    assert task.external_id is not None

    a.fail(task.external_id, code, "The prompt was blocked.")
    done = await rig.done(task.video_id)
    await asyncio.sleep(0.2)  # several engine cycles: no second attempt comes

    assert done.status is TaskStatus.FAILED
    assert done.error == TaskError(code=code, message="The prompt was blocked.")
    assert len((await rig.get(task.video_id)).attempts) == 1
    assert len(a.calls_to("create")) == 1 and b.calls == []


def failed_job(external_id: str) -> JobView:
    return JobView(
        external_id=external_id,
        status=JobStatus.FAILED,
        raw_status="failed",
        progress=0,
        error=JobError(
            code="video_generation_failed",
            message=f"{external_id} broke",
            category=ErrorCategory.GENERATION_FAILED,
        ),
    )


@pytest.mark.parametrize("max_attempts", [2, 3])
async def test_max_attempts_bounds_the_retries(make_rig: MakeRig, max_attempts: int) -> None:
    rig, a, b = await two_providers(make_rig)
    for fake in (a, b):
        for n in range(max_attempts + 1):  # every job either of them makes fails
            fake.respond_next("create", failed_job(f"{fake.name}-{n}"))
    rig.engine(max_attempts=max_attempts)
    created = await rig.create()

    done = await rig.done(created.video_id)
    await asyncio.sleep(0.2)

    assert done.status is TaskStatus.FAILED
    assert done.error is not None and done.error.code == "video_generation_failed"
    assert len(a.calls_to("create")) + len(b.calls_to("create")) == max_attempts
    assert [x.number for x in done.attempts] == list(range(1, max_attempts + 1))
    assert all(x.state is AttemptState.FAILED for x in done.attempts)
    assert [x.provider for x in done.attempts][:2] == ["A", "B"]  # untried first
    assert (await rig.get(created.video_id)).attempt == max_attempts


# -- circuit breaker -------------------------------------------------------------------------


async def test_an_open_breaker_routes_around_a_provider_and_probes_it_later(
    make_rig: MakeRig,
) -> None:
    cooldown = 0.5
    rig, a, _ = await two_providers(
        make_rig, a={"breaker_failures": 2, "breaker_cooldown_seconds": cooldown}
    )
    down = True
    a_calls = record(a, "create")

    async def a_is_down(call: Call) -> None:
        if down:
            raise refused()

    a.on_call("create", a_is_down)
    rig.engine()

    async def submit(count: int) -> list[Task]:
        made = [await rig.create() for _ in range(count)]
        return [await rig.submitted(t.video_id) for t in made]

    # A fails twice: its breaker opens and the task moves to B.
    [first] = await submit(1)
    assert first.provider == "B" and len(a_calls) == 2
    opened = a_calls[-1].at

    # While open, new tasks go straight to B: A is not touched.
    later = await submit(3)
    assert time.monotonic() - opened < cooldown, "too slow to observe the open breaker"
    assert len(a_calls) == 2
    assert all(t.provider == "B" and len(t.attempts) == 1 for t in later)

    # After the cool-down A gets one probe, however many tasks arrive; it fails.
    await asyncio.sleep(opened + cooldown + 0.05 - time.monotonic())
    probed = await submit(2)
    assert len(a_calls) == 3
    assert all(t.provider == "B" for t in probed)
    probe = a_calls[-1].at

    # A failed probe doubles the cool-down: past the first one, A is still left alone.
    await asyncio.sleep(probe + cooldown + 0.1 - time.monotonic())
    [still_b] = await submit(1)
    assert time.monotonic() - probe < 2 * cooldown, "too slow to observe the doubled cool-down"
    assert still_b.provider == "B" and len(a_calls) == 3

    # A recovers: the next probe succeeds, the breaker closes and A is first choice again.
    down = False
    await asyncio.sleep(probe + 2 * cooldown + 0.05 - time.monotonic())
    back = await submit(2)
    assert [t.provider for t in back] == ["A", "A"]
    assert len(a_calls) == 5


# -- routing ---------------------------------------------------------------------------------


async def test_the_lowest_priority_number_wins(make_rig: MakeRig) -> None:
    fakes = [FakeProvider("third"), FakeProvider("first"), FakeProvider("second")]
    configs = [
        provider_config(fakes[0], priority=7),
        provider_config(fakes[1], priority=-1),
        provider_config(fakes[2], priority=3, weight=1000.0),  # weight never beats priority
    ]
    rig = await make_rig(providers=fakes, configs=configs)
    rig.engine()

    made = [await rig.create() for _ in range(8)]
    tasks = [await rig.submitted(t.video_id) for t in made]

    assert {t.provider for t in tasks} == {"first"}
    assert len(rig.fakes["first"].jobs) == 8
    assert rig.fakes["second"].calls == rig.fakes["third"].calls == []


async def test_equal_priorities_split_by_weight(
    make_rig: MakeRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A seeded generator for the engine's routing draws alone, so the split is the same
    # on every run whatever else (poll jitter, backoff) draws random numbers meanwhile.
    monkeypatch.setattr(routing_module, "random", random.Random(20251))
    light, heavy, spare = FakeProvider("light"), FakeProvider("heavy"), FakeProvider("spare")
    configs = [
        provider_config(light, weight=1.0),
        provider_config(heavy, weight=3.0),
        provider_config(spare, priority=1, weight=100.0),
    ]
    rig = await make_rig(providers=[light, heavy, spare], configs=configs)
    rig.engine()

    made = [await rig.create() for _ in range(80)]
    tasks = [await rig.submitted(t.video_id) for t in made]

    on_light = sum(t.provider == "light" for t in tasks)
    on_heavy = sum(t.provider == "heavy" for t in tasks)
    assert on_light + on_heavy == 80 and spare.calls == []
    assert 8 <= on_light <= 32  # 20 expected; +-3 standard deviations
    assert on_heavy > on_light


# -- max_jobs --------------------------------------------------------------------------------


async def test_a_provider_at_max_jobs_is_skipped(make_rig: MakeRig) -> None:
    rig, a, _ = await two_providers(make_rig, a={"max_jobs": 1})
    rig.engine()
    one = await rig.submitted((await rig.create()).video_id)
    two = await rig.submitted((await rig.create()).video_id)

    assert (one.provider, two.provider) == ("A", "B")
    assert one.external_id is not None
    a.complete(one.external_id, url=CDN)
    await rig.done(one.video_id)

    three = await rig.submitted((await rig.create()).video_id)
    assert three.provider == "A"  # the slot is free again


async def test_a_task_waits_for_a_free_slot_on_its_only_provider(make_rig: MakeRig) -> None:
    fake = FakeProvider("only")
    rig = await make_rig(providers=[fake], configs=[provider_config(fake, max_jobs=1)])
    rig.engine()
    one = await rig.submitted((await rig.create()).video_id)
    two = await rig.create()
    await asyncio.sleep(0.3)  # several busy-waits

    waiting = await rig.get(two.video_id)
    assert waiting.status is TaskStatus.QUEUED
    assert waiting.attempt == 0 and waiting.attempts == ()
    assert waiting.next_check_at is not None  # still scheduled, not dropped
    assert len(fake.calls_to("create")) == 1

    assert one.external_id is not None
    fake.complete(one.external_id, url=CDN)
    moved = await rig.submitted(two.video_id)
    assert moved.provider == "only" and len(fake.calls_to("create")) == 2


async def test_max_jobs_holds_when_many_tasks_are_claimed_together(make_rig: MakeRig) -> None:
    fake = FakeProvider("only")
    rig = await make_rig(providers=[fake], configs=[provider_config(fake, max_jobs=2)])
    running_at_create: list[int] = []

    async def count_running(call: Call) -> None:
        running_at_create.append(sum(job.status != "completed" for job in fake.jobs.values()))

    fake.on_call("create", count_running)
    made = [await rig.create() for _ in range(6)]  # all due before the engine starts
    rig.engine()

    # Finish jobs one at a time, in whatever order the engine started them, giving any
    # overshoot time to show before each completion.
    for _ in made:
        await until(lambda: any(job.status != "completed" for job in fake.jobs.values()))
        await asyncio.sleep(0.05)
        running = [job for job in fake.jobs.values() if job.status != "completed"]
        assert len(running) <= 2, f"{len(running)} jobs running at once"
        fake.complete(running[0].external_id, url=CDN)
    for task in made:
        done = await rig.wait(task.video_id, lambda t: t.status.terminal)
        assert done.status is TaskStatus.COMPLETED

    assert len(running_at_create) == 6
    assert max(running_at_create) < 2, f"running jobs at each create: {running_at_create}"


# -- crash recovery by policy ----------------------------------------------------------------


async def crash_mid_create(rig: Rig, *, served: bool) -> Task:
    """Engine A sends the create (the upstream makes the job if ``served``) and dies."""
    before = len(rig.provider.calls_to("create"))
    rig.provider.hang_next("create", served=served)
    crashed = rig.engine("engine-a", lease_seconds=0.2)
    created = await rig.create()
    await until(lambda: len(rig.provider.calls_to("create")) > before)
    await rig.crash(crashed)
    left = await rig.get(created.video_id)
    [attempt] = left.attempts
    assert attempt.state is AttemptState.SUBMITTING and attempt.external_id is None
    assert left.lease_owner == "engine-a"
    return left


def engine_creates(fake: FakeProvider) -> list[Call]:
    return [c for c in fake.calls_to("create") if c.idempotency_key != "someone-else"]


async def recovery_rig(make_rig: MakeRig, policy: str) -> Rig:
    fake = FakeProvider(honours_idempotency=policy == "resend")
    return await make_rig(providers=[fake], configs=[provider_config(fake, recovery=policy)])


async def test_recovery_resend_sends_the_same_key_for_one_job(make_rig: MakeRig) -> None:
    rig = await recovery_rig(make_rig, "resend")
    left = await crash_mid_create(rig, served=True)
    [job] = rig.provider.jobs.values()

    rig.engine("engine-b")
    task = await rig.submitted(left.video_id)

    first, second = rig.provider.calls_to("create")
    assert first.idempotency_key == second.idempotency_key == left.attempts[0].idempotency_key
    assert task.external_id == job.external_id and len(rig.provider.jobs) == 1
    rig.provider.complete(job.external_id, url=CDN)
    assert (await rig.done(left.video_id)).status is TaskStatus.COMPLETED


async def test_recovery_reconcile_adopts_the_job_it_finds(make_rig: MakeRig) -> None:
    rig = await recovery_rig(make_rig, "reconcile")
    left = await crash_mid_create(rig, served=True)
    [job] = rig.provider.jobs.values()

    rig.engine("engine-b")
    task = await rig.submitted(left.video_id)

    assert len(rig.provider.calls_to("create")) == 1  # no second paid job
    assert rig.provider.calls_to("recent_jobs")
    assert task.external_id == job.external_id
    [attempt] = task.attempts
    assert attempt.state is AttemptState.SUBMITTED and attempt.external_id == job.external_id
    rig.provider.complete(job.external_id, url=CDN)
    assert (await rig.done(left.video_id)).status is TaskStatus.COMPLETED


async def test_recovery_reconcile_sends_when_the_upstream_has_no_such_job(
    make_rig: MakeRig,
) -> None:
    rig = await recovery_rig(make_rig, "reconcile")
    left = await crash_mid_create(rig, served=False)  # the create never arrived
    assert rig.provider.jobs == {}

    rig.engine("engine-b")
    task = await rig.submitted(left.video_id)

    assert rig.provider.calls_to("recent_jobs")
    assert len(rig.provider.calls_to("create")) == 2
    [job] = rig.provider.jobs.values()  # one job in the end
    assert task.external_id == job.external_id and task.attempt == 1


async def test_recovery_reconcile_does_not_take_another_tasks_job(make_rig: MakeRig) -> None:
    rig = await recovery_rig(make_rig, "reconcile")
    # A twin task (the same prompt) was submitted first: its job is on record.
    before = rig.engine("engine-before")
    twin = await rig.submitted((await rig.create()).video_id)
    await before.stop()
    rig.engines.remove(before)
    left = await crash_mid_create(rig, served=True)
    [ours] = [j for j in rig.provider.jobs.values() if j.external_id != twin.external_id]

    rig.engine("engine-b")
    task = await rig.submitted(left.video_id)

    assert task.external_id == ours.external_id  # both match; only one can be ours
    assert len(rig.provider.calls_to("create")) == 2 and len(rig.provider.jobs) == 2
    assert (await rig.get(twin.video_id)).external_id == twin.external_id


async def test_recovery_reconcile_with_two_candidates_does_not_guess(make_rig: MakeRig) -> None:
    rig = await recovery_rig(make_rig, "reconcile")
    # Someone else on the same upstream account made an identical job meanwhile.
    request = SubmitRequest(prompt=NEW.prompt, model="sora-2", seconds=NEW.seconds, size=NEW.size)
    await rig.provider.create(request, idempotency_key="someone-else")
    left = await crash_mid_create(rig, served=True)
    assert len(rig.provider.jobs) == 2

    rig.engine("engine-b")
    done = await rig.done(left.video_id)

    assert done.status is TaskStatus.FAILED
    assert done.error is not None and done.error.code == "SUBMISSION_UNCERTAIN"
    [attempt] = done.attempts
    assert attempt.state is AttemptState.UNKNOWN and attempt.external_id is None
    assert len(engine_creates(rig.provider)) == 1


async def test_recovery_fail_does_not_submit_again(make_rig: MakeRig) -> None:
    rig = await recovery_rig(make_rig, "fail")
    left = await crash_mid_create(rig, served=True)

    rig.engine("engine-b")
    done = await rig.done(left.video_id)

    assert done.status is TaskStatus.FAILED
    assert done.error is not None and done.error.code == "SUBMISSION_UNCERTAIN"
    [attempt] = done.attempts
    assert attempt.state is AttemptState.UNKNOWN
    assert len(rig.provider.calls_to("create")) == 1
    assert rig.provider.calls_to("recent_jobs") == []
    [(status, _, _)] = pushed(rig, left.video_id)
    assert status == "failed"


# -- leases: heartbeat, crash, graceful stop -------------------------------------------------


def hold(fake: FakeProvider, method: str) -> asyncio.Event:
    """Every call of ``method`` waits (inside the upstream) until the event is set."""
    release = asyncio.Event()

    async def wait(call: Call) -> None:
        await release.wait()

    fake.on_call(method, wait)
    return release


async def test_the_heartbeat_keeps_a_long_step_leased(make_rig: MakeRig) -> None:
    lease = 0.3
    rig = await make_rig()
    first = rig.engine("engine-a", lease_seconds=lease)
    task = await rig.submitted((await rig.create()).video_id)
    assert task.external_id is not None
    gets = record(rig.provider, "get")
    release = hold(rig.provider, "get")
    await until(lambda: len(gets) == 1)  # A is inside a poll
    rig.engine("engine-b", lease_seconds=lease)  # and B is looking for work
    held = await rig.get(task.video_id)

    held_until = time.monotonic() + 4 * lease
    while time.monotonic() < held_until:
        now = await rig.get(task.video_id)
        # Not claimed again by anyone, A itself included (a claim bumps the version and
        # would fence off A's running step).
        assert now.version == held.version
        assert now.lease_owner == "engine-a"
        assert now.lease_until is not None and now.lease_until > datetime.now(UTC)
        intruder = await rig.store.claim(
            owner="intruder",
            now=datetime.now(UTC),
            until=datetime.now(UTC) + timedelta(seconds=30),
            limit=10,
        )
        assert intruder == []
        await asyncio.sleep(0.05)
    assert len(gets) == 1  # B never got the task

    await rig.crash(first)  # A dies mid-poll; its lease is left to run out
    left = await rig.get(task.video_id)
    assert left.lease_owner == "engine-a" and left.lease_until is not None
    release.set()
    rig.provider.advance(task.external_id, progress=40)

    taken = await rig.wait(task.video_id, lambda t: t.progress == 40)
    assert len(gets) >= 2
    assert gets[1].wall >= left.lease_until  # B waited for the lease to run out
    assert gets[1].at - gets[0].at < 4 * lease + 2.0  # and did not wait much longer
    assert taken.status is TaskStatus.PROCESSING


async def test_stop_drains_the_step_in_flight_then_releases(make_rig: MakeRig) -> None:
    rig = await make_rig()
    engine = rig.engine("engine-a")  # 5 s leases
    task = await rig.submitted((await rig.create()).video_id)
    assert task.external_id is not None
    release = hold(rig.provider, "get")
    await polls(rig.provider, 1)
    rig.provider.advance(task.external_id, progress=40)

    stopping = asyncio.create_task(engine.stop(drain_seconds=TIMEOUT))
    await asyncio.sleep(0.2)
    assert not stopping.done()  # waiting for the poll
    late = await rig.create()  # a stopping engine claims nothing new
    await asyncio.sleep(0.1)
    assert len(rig.provider.calls_to("create")) == 1

    release.set()
    async with asyncio.timeout(TIMEOUT):
        await stopping

    now = await rig.get(task.video_id)
    assert now.progress == 40  # the step finished and its write was kept
    assert now.lease_owner is None and now.lease_until is None
    assert (await rig.get(late.video_id)).lease_owner is None

    started = time.monotonic()
    rig.engine("engine-b")
    await rig.submitted(late.video_id)
    await polls(rig.provider, 1)
    assert time.monotonic() - started < 2.0  # not after A's 5 s leases


async def test_stop_without_drain_cancels_the_step_and_still_releases(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig()
    engine = rig.engine("engine-a")  # 5 s leases
    task = await rig.submitted((await rig.create()).video_id)
    assert task.external_id is not None
    release = hold(rig.provider, "get")
    await polls(rig.provider, 1)
    rig.provider.advance(task.external_id, progress=40)
    assert (await rig.get(task.video_id)).lease_owner == "engine-a"

    started = time.monotonic()
    await engine.stop(drain_seconds=0)
    assert time.monotonic() - started < 1.0

    now = await rig.get(task.video_id)
    assert now.progress == 0  # the cancelled step wrote nothing
    assert now.lease_owner is None and now.lease_until is None
    [claimed] = await rig.store.claim(
        owner="engine-b",
        now=datetime.now(UTC),
        until=datetime.now(UTC) + timedelta(seconds=30),
        limit=10,
    )
    assert claimed.video_id == task.video_id  # another engine takes it over at once
    release.set()


# -- completion confirmation -----------------------------------------------------------------


@pytest.mark.parametrize("misses", [1, 2, 3])
async def test_a_completion_without_a_video_is_confirmed_before_trusted(
    make_rig: MakeRig, misses: int
) -> None:
    rig = await make_rig(content_mode="auto")
    engine = rig.engine()
    needed = engine.config.unconfirmed_completions
    assert needed == 3
    task = await rig.submitted((await rig.create()).video_id)
    assert task.external_id is not None
    rig.provider.fail_next(
        "open_content", UpstreamNotFound("fake: no content yet", status=404), times=misses
    )
    states: list[TaskStatus] = []

    async def look(call: Call) -> None:
        states.append((await rig.get(task.video_id)).status)

    rig.provider.on_call("open_content", look)
    rig.provider.complete(task.external_id, url=None)  # "completed", no url

    done = await rig.done(task.video_id)
    await asyncio.sleep(0.1)

    looks = rig.provider.calls_to("open_content")
    assert all(not status.terminal for status in states)  # each look saw an open task
    assert {c.range_header for c in looks} == {"bytes=0-0"}
    if misses < needed:
        assert done.status is TaskStatus.COMPLETED
        assert is_stream_url(done.video_url, task.video_id)
        assert len(looks) == misses + 1
    else:
        assert done.status is TaskStatus.FAILED
        assert done.error is not None and done.error.code == "UPSTREAM_NO_RESULT"
        assert done.video_url is None
        assert len(looks) == needed
        assert "completed" not in [s for s, _, _ in pushed(rig, task.video_id)]


async def test_transient_content_errors_do_not_count_as_missing_video(make_rig: MakeRig) -> None:
    rig = await make_rig(content_mode="auto")
    rig.engine()
    task = await rig.submitted((await rig.create()).video_id)
    assert task.external_id is not None
    rig.provider.fail_next("open_content", UpstreamUnavailable("fake: upstream 503"), times=5)
    rig.provider.complete(task.external_id, url=None)

    done = await rig.done(task.video_id)

    assert done.status is TaskStatus.COMPLETED
    assert is_stream_url(done.video_url, task.video_id)
    assert len(rig.provider.calls_to("open_content")) == 6


def is_stream_url(url: str | None, video_id: str) -> bool:
    """vidgate's streaming route for ``video_id``, with its access token."""
    own = f"{PUBLIC}/api/video/tasks/{video_id}/stream?access_token="
    return url is not None and url.startswith(own) and len(url) > len(own) + 20


# -- hostile upstream answers ----------------------------------------------------------------


_JOB_STATUS = {
    TaskStatus.QUEUED: JobStatus.QUEUED,
    TaskStatus.PROCESSING: JobStatus.IN_PROGRESS,
    TaskStatus.COMPLETED: JobStatus.COMPLETED,
}


def job(
    external_id: str,
    *,
    status: TaskStatus | None,
    raw_status: str | None = None,
    progress: int | None = None,
    error: TaskError | None = None,
    raw_url: str | None = None,
) -> JobView:
    """A job view as a (misbehaving) adapter might hand it over."""
    job_status = _JOB_STATUS[status] if status is not None else None
    return JobView(
        external_id=external_id,
        status=job_status,
        raw_status=raw_status,
        progress=progress,
        videos=(ResultVideo(url=raw_url),) if job_status is JobStatus.COMPLETED else (),
        error=JobError(
            code=error.code, message=error.message, category=ErrorCategory.GENERATION_FAILED
        )
        if error
        else None,
    )


async def test_hostile_job_states_never_end_a_task_by_mistake(make_rig: MakeRig) -> None:
    rig = await make_rig()
    rig.engine()
    hostile = await rig.submitted((await rig.create()).video_id)
    bystander = await rig.submitted((await rig.create()).video_id)
    external_id = hostile.external_id
    assert external_id is not None and bystander.external_id is not None
    rig.provider.advance(external_id, status="in_progress", progress=30)
    await rig.wait(hostile.video_id, lambda t: t.progress == 30)

    odd_states: list[tuple[str, object]] = [
        ("rendering_frames", 20),  # unknown word, backwards
        ("", -5),
        ("COMPLETE", 100),  # not a word we know: not a completion
        ("done", float("nan")),
        ("in_progress", "55%"),
        ("in_progress", float("inf")),
        ("in_progress", 150),
        ("queued", 10),  # back to queued, with progress going backwards
        ("in_progress", True),
    ]
    for status, progress in odd_states:
        rig.provider.advance(external_id, status=status, progress=progress)
        await polls(rig.provider, 3)
        now = await rig.get(hostile.video_id)
        assert not now.status.terminal, (status, progress, now)
        assert now.next_check_at is not None  # still followed

    # Answers no adapter should produce, straight from the script.
    for answer in [
        job(external_id, status=None, raw_status="weird", progress=500),
        job(external_id, status=TaskStatus.PROCESSING, progress=-40),
        job(
            external_id,
            status=TaskStatus.QUEUED,
            progress=None,
            error=TaskError(code="x", message="y"),
        ),
        # "completed" without a url while the job is still running: not trusted once.
        job(external_id, status=TaskStatus.COMPLETED, raw_status="completed", progress=100),
    ]:
        rig.provider.respond_next("get", answer)
        await polls(rig.provider, 3)
        now = await rig.get(hostile.video_id)
        assert not now.status.terminal, (answer, now)

    assert now.progress == 99  # clamped below 100, never back down
    progress = [p for _, _, p in pushed(rig, hostile.video_id)]
    assert progress == sorted(progress)
    assert all(s in ("queued", "in_progress") for s, _, _ in pushed(rig, hostile.video_id))

    # The engine kept going: both tasks still finish normally.
    rig.provider.complete(bystander.external_id, url=CDN)
    rig.provider.complete(external_id, url=CDN)
    assert (await rig.done(bystander.video_id)).status is TaskStatus.COMPLETED
    done = await rig.done(hostile.video_id)
    assert done.status is TaskStatus.COMPLETED and done.progress == 100
    late = await rig.submitted((await rig.create()).video_id)
    assert late.status is TaskStatus.QUEUED


async def test_an_answer_about_another_job_is_not_applied(make_rig: MakeRig) -> None:
    rig = await make_rig()
    rig.engine()
    task = await rig.submitted((await rig.create()).video_id)
    assert task.external_id is not None

    rig.provider.respond_next(
        "get",
        job(
            "video_someone_else",
            status=TaskStatus.COMPLETED,
            raw_status="completed",
            progress=100,
            raw_url="https://cdn.example/someone-elses.mp4",
        ),
    )
    gets = len(rig.provider.calls_to("get"))
    await rig.wait(
        task.video_id,
        lambda t: t.status.terminal or len(rig.provider.calls_to("get")) >= gets + 3,
    )

    now = await rig.get(task.video_id)
    assert now.status is not TaskStatus.COMPLETED, now
    assert now.video_url is None
    assert now.attempts[0].external_id == task.external_id
    assert {c.external_id for c in rig.provider.calls_to("get")} == {task.external_id}
    rig.provider.complete(task.external_id, url=CDN)  # its own job still counts
    done = await rig.done(task.video_id)
    assert done.status is TaskStatus.COMPLETED and done.video_url == CDN


async def test_a_create_answered_with_another_tasks_job_is_not_taken(make_rig: MakeRig) -> None:
    # An upstream whose idempotency is broken hands a second task the first one's job: the
    # second task must not take it over, nor be sent again (it could pay twice).
    rig = await make_rig()
    rig.engine()
    first = await rig.submitted((await rig.create()).video_id)
    assert first.external_id is not None
    rig.provider.respond_next(
        "create", job(first.external_id, status=TaskStatus.QUEUED, raw_status="queued")
    )

    second = await rig.done((await rig.create()).video_id)

    assert second.status is TaskStatus.FAILED
    assert second.error is not None and second.error.code == "SUBMISSION_UNCERTAIN"
    assert first.external_id in second.error.message
    [attempt] = second.attempts
    assert attempt.external_id is None  # the job stays the first task's alone
    assert len(rig.provider.calls_to("create")) == 2  # not sent a third time
    rig.provider.complete(first.external_id, url=CDN)
    done = await rig.done(first.video_id)
    assert done.status is TaskStatus.COMPLETED and done.video_url == CDN
