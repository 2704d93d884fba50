"""One behaviour suite for every ``TaskStore``: the in-memory fake, SQLite and PostgreSQL.

If a test passes for one and fails for another, the fake has drifted from the real
stores (or a real store has a bug the fake hides, or the two databases disagree); either
way unit tests built on the fake would lie. Each test starts on a clean database: a new
SQLite file, or this run's PostgreSQL database emptied (tests/databases.py). PostgreSQL
tests skip when it is unreachable, and fail when CI=true.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Coroutine, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.pool import QueuePool

from tests.databases import (
    drop_postgres_database,
    empty_postgres,
    fresh_postgres,
    fresh_postgres_sync,
    new_sqlite_url,
)
from vidgate.domain import ids
from vidgate.domain.events import EventType
from vidgate.domain.models import Attempt, AttemptState, Task, TaskError
from vidgate.domain.status import TaskStatus
from vidgate.store.base import (
    ApiKey,
    BadCursor,
    IdempotencyClaim,
    IdempotencyMismatch,
    Quota,
    QuotaReached,
    StoreUnavailable,
    TaskStore,
    Write,
)
from vidgate.store.sql import (
    DEFAULT_MAX_OVERFLOW,
    DEFAULT_POOL_SIZE,
    SqlTaskStore,
    async_url,
    make_engine,
)
from vidgate.testing import MemoryTaskStore

T0 = datetime(2030, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
PLUS_TWO = timezone(timedelta(hours=2))


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """One PostgreSQL database for this test process; ``store`` empties it for each test."""
    with fresh_postgres_sync() as url:
        yield url


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TaskStore]:
    if request.param == "memory":
        yield MemoryTaskStore()
        return
    if request.param == "sqlite":
        sql = await SqlTaskStore.open(new_sqlite_url(tmp_path))
    else:
        url = request.getfixturevalue("postgres_url")
        sql = await SqlTaskStore.open(url)  # migrates the first time
        await empty_postgres(url)  # as clean as a new database, and much faster
    try:
        yield sql
    finally:
        await sql.close()


def make_task(**changes: Any) -> Task:
    task = Task(
        video_id=ids.new_video_id(),
        user_id="alice",
        prompt="a cat on a skateboard",
        model="sora-2",
        seconds="4",
        size="720x1280",
        created_at=T0,
        updated_at=T0,
        deadline_at=at(1800),
        next_check_at=T0,
    )
    return dataclasses.replace(task, **changes)


def make_attempt(task: Task, number: int = 1, **changes: Any) -> Attempt:
    attempt = Attempt(
        video_id=task.video_id,
        number=number,
        provider="fake",
        idempotency_key=f"vidgate-{task.video_id}-{number}",
        created_at=at(1),
    )
    return dataclasses.replace(attempt, **changes)


async def created(store: TaskStore, **changes: Any) -> Task:
    task = make_task(**changes)
    await store.create(task)
    got = await store.get(task.video_id)
    assert got is not None
    return got


def assert_utc(value: datetime | None) -> None:
    assert value is not None
    assert value.tzinfo is not None
    assert value.utcoffset() == timedelta(0)


# -- create / get ----------------------------------------------------------------------------


async def test_create_then_get_round_trips_every_field(store: TaskStore) -> None:
    task = make_task(
        status=TaskStatus.FAILED,
        progress=42,
        message="boom",
        input_reference="https://img.example/ref.png",
        provider="fake",
        external_id="video_ext_1",
        video_url="https://cdn.example/v.mp4",
        error=TaskError(code="UPSTREAM_FAILED", message="boom"),
        metadata={"externalTaskId": "video_ext_1", "nested": {"list": [1, 2.5, None, "x"]}},
        created_at=datetime(2030, 1, 1, 14, 0, 0, 123456, tzinfo=PLUS_TWO),  # 12:00 UTC
        updated_at=at(5),
        completed_at=at(6),
        deadline_at=at(1800),
        next_check_at=at(7),
        lease_owner="worker-1",
        lease_until=at(37),
        attempt=3,
        version=7,
    )
    await store.create(task)

    got = await store.get(task.video_id)

    assert got == task
    for value in (
        got.created_at,
        got.updated_at,
        got.completed_at,
        got.deadline_at,
        got.next_check_at,
        got.lease_until,
    ):
        assert_utc(value)
    assert got.created_at == T0


async def test_get_unknown_is_none(store: TaskStore) -> None:
    assert await store.get(ids.new_video_id()) is None


async def test_optional_fields_round_trip_as_none(store: TaskStore) -> None:
    task = make_task(next_check_at=None)
    await store.create(task)

    got = await store.get(task.video_id)

    assert got == task
    assert got.error is None and got.completed_at is None and got.lease_owner is None


async def test_returned_metadata_is_a_copy(store: TaskStore) -> None:
    task = await created(store, metadata={"a": 1})
    task.metadata["a"] = 2

    again = await store.get(task.video_id)

    assert again is not None and again.metadata == {"a": 1}


# -- write: compare-and-set, fence, version ------------------------------------------------


async def test_write_applies_and_bumps_the_version(store: TaskStore) -> None:
    task = await created(store)
    after = dataclasses.replace(task, status=TaskStatus.PROCESSING, progress=10, updated_at=at(2))

    written = await store.write(Write(before=task, after=after))

    assert written is not None
    assert written.task == dataclasses.replace(after, version=task.version + 1)
    assert written.event is None
    assert await store.get(task.video_id) == written.task


async def test_write_with_a_stale_version_is_refused_and_changes_nothing(store: TaskStore) -> None:
    task = await created(store)
    first = await store.write(Write(before=task, after=dataclasses.replace(task, progress=10)))
    assert first is not None

    stale = await store.write(
        Write(
            before=task,
            after=dataclasses.replace(task, progress=99),
            insert_attempt=make_attempt(task),
            event=(EventType.PROGRESS, {"progress": 99}),
        )
    )

    assert stale is None
    now = await store.get(task.video_id)
    assert now == first.task
    assert now.attempts == ()
    assert await store.events_after(task.video_id, 0) == []


async def test_fenced_write_needs_the_lease_owner(store: TaskStore) -> None:
    await created(store)
    [task] = await store.claim(owner="a", now=at(1), until=at(31), limit=10)

    refused = await store.write(
        Write(before=task, after=dataclasses.replace(task, progress=5), fence="b")
    )
    accepted = await store.write(
        Write(before=task, after=dataclasses.replace(task, progress=5), fence="a")
    )

    assert refused is None
    assert accepted is not None
    assert accepted.task.progress == 5


async def test_fenced_write_on_an_unleased_task_is_refused(store: TaskStore) -> None:
    task = await created(store)

    refused = await store.write(
        Write(before=task, after=dataclasses.replace(task, progress=5), fence="a")
    )

    assert refused is None


async def test_unfenced_write_ignores_the_lease(store: TaskStore) -> None:
    await created(store)
    [task] = await store.claim(owner="a", now=at(1), until=at(31), limit=10)

    written = await store.write(
        Write(before=task, after=dataclasses.replace(task, status=TaskStatus.CANCELLED))
    )

    assert written is not None
    assert written.task.status is TaskStatus.CANCELLED


async def test_every_write_and_claim_adds_one_to_the_version(store: TaskStore) -> None:
    task = await created(store)
    assert task.version == 1
    [claimed] = await store.claim(owner="a", now=at(1), until=at(31), limit=10)
    assert claimed.version == 2
    one = await store.write(Write(before=claimed, after=claimed, fence="a"))
    assert one is not None and one.task.version == 3
    two = await store.write(Write(before=one.task, after=one.task))
    assert two is not None and two.task.version == 4
    # The version in ``after`` is ignored: the store decides it.
    three = await store.write(
        Write(before=two.task, after=dataclasses.replace(two.task, version=1))
    )
    assert three is not None and three.task.version == 5
    got = await store.get(task.video_id)
    assert got is not None and got.version == 5


# -- attempts ------------------------------------------------------------------------------


async def test_attempts_are_inserted_updated_and_merged(store: TaskStore) -> None:
    task = await created(store)
    first = make_attempt(task, 1)

    w1 = await store.write(
        Write(before=task, after=dataclasses.replace(task, attempt=1), insert_attempt=first)
    )
    assert w1 is not None
    assert w1.task.attempts == (first,)
    assert w1.task.current_attempt == first

    sent = dataclasses.replace(
        first, state=AttemptState.SUBMITTED, external_id="video_ext_1", submitted_at=at(2)
    )
    w2 = await store.write(Write(before=w1.task, after=w1.task, update_attempt=sent))
    assert w2 is not None
    assert w2.task.attempts == (sent,)

    failed = dataclasses.replace(
        sent,
        state=AttemptState.FAILED,
        finished_at=at(3),
        error=TaskError(code="UPSTREAM_FAILED", message="no"),
    )
    second = make_attempt(task, 2, provider="other")
    w3 = await store.write(
        Write(
            before=w2.task,
            after=dataclasses.replace(w2.task, attempt=2),
            insert_attempt=second,
            update_attempt=failed,
        )
    )
    assert w3 is not None
    assert w3.task.attempts == (failed, second)
    assert w3.task.current_attempt == second

    got = await store.get(task.video_id)
    assert got is not None
    assert got.attempts == (failed, second)
    assert_utc(got.attempts[0].finished_at)


async def test_attempts_of_other_tasks_stay_apart(store: TaskStore) -> None:
    one, two = await created(store), await created(store)
    await store.write(Write(before=one, after=one, insert_attempt=make_attempt(one)))

    got = await store.get(two.video_id)

    assert got is not None and got.attempts == ()


@pytest.mark.parametrize("how", ["insert", "update"])
async def test_a_write_breaking_a_constraint_changes_nothing(store: TaskStore, how: str) -> None:
    one, two = await created(store), await created(store)
    job = make_attempt(one, external_id="video_ext_1")
    assert await store.write(Write(before=one, after=one, insert_attempt=job))
    if how == "update":
        w = await store.write(Write(before=two, after=two, insert_attempt=make_attempt(two)))
        assert w is not None
        two = w.task
    same_job = make_attempt(two, external_id="video_ext_1")

    # The same upstream job for two attempts: every store refuses it as StoreUnavailable
    # (SqlTaskStore translates IntegrityError at the edge).
    with pytest.raises(StoreUnavailable):
        await store.write(
            Write(
                before=two,
                after=dataclasses.replace(two, progress=50),
                insert_attempt=same_job if how == "insert" else None,
                update_attempt=same_job if how == "update" else None,
                event=(EventType.PROGRESS, {"progress": 50}),
            )
        )

    assert await store.get(two.video_id) == two
    assert await store.events_after(two.video_id, 0) == []
    # Rewriting an attempt with its own job is fine.
    again = dataclasses.replace(job, state=AttemptState.SUBMITTED)
    latest = await store.get(one.video_id)
    assert latest is not None
    assert await store.write(Write(before=latest, after=latest, update_attempt=again))


# -- events --------------------------------------------------------------------------------


async def test_events_get_global_increasing_ids_and_the_new_version(store: TaskStore) -> None:
    one, two = await created(store), await created(store)

    e1 = await store.write(Write(before=one, after=one, event=(EventType.PROGRESS, {"n": 1})))
    e2 = await store.write(Write(before=two, after=two, event=(EventType.PROGRESS, {"n": 2})))
    assert e1 is not None and e2 is not None
    e3 = await store.write(
        Write(before=e1.task, after=e1.task, event=(EventType.COMPLETED, {"n": 3}))
    )
    assert e3 is not None

    events = [e1.event, e2.event, e3.event]
    assert all(e is not None for e in events)
    assert [e.id for e in events if e] == sorted({e.id for e in events if e})
    assert e1.event is not None and e3.event is not None
    assert e1.event.task_version == e1.task.version == 2
    assert e3.event.task_version == e3.task.version == 3
    assert e3.event.type is EventType.COMPLETED
    assert e3.event.payload == {"n": 3}
    assert e3.event.video_id == one.video_id
    assert e3.event.message() == {
        "type": "taskCompleted",
        "timestamp": e3.event.timestamp_ms,
        "eventId": e3.event.id,
        "payload": {"n": 3},
    }

    stored = await store.events_after(one.video_id, 0)
    assert stored == [e1.event, e3.event]
    assert await store.events_after(one.video_id, e1.event.id) == [e3.event]
    assert await store.events_after(one.video_id, e3.event.id) == []
    assert await store.events_after(two.video_id, 0) == [e2.event]


async def test_a_write_without_an_event_stores_none(store: TaskStore) -> None:
    task = await created(store)

    written = await store.write(Write(before=task, after=task))

    assert written is not None and written.event is None
    assert await store.events_after(task.video_id, 0) == []


async def test_events_for_reads_events_of_several_tasks_oldest_first(store: TaskStore) -> None:
    one, two, three = await created(store), await created(store), await created(store)
    stored = []
    for task in (one, two, three, one, two):
        latest = await store.get(task.video_id)
        assert latest is not None
        w = await store.write(
            Write(before=latest, after=latest, event=(EventType.PROGRESS, {"n": len(stored)}))
        )
        assert w is not None and w.event is not None
        stored.append(w.event)
    followed = [one.video_id, two.video_id, ids.new_video_id()]
    mine = [e for e in stored if e.video_id in followed]

    assert await store.events_for(followed, 0, 100) == mine
    assert await store.events_for(followed, mine[0].id, 100) == mine[1:]
    assert await store.events_for(followed, 0, 2) == mine[:2]
    assert await store.events_for(followed, mine[-1].id, 100) == []
    assert await store.events_for([], 0, 100) == []


# -- claim -----------------------------------------------------------------------------------


async def test_claim_takes_only_due_active_tasks(store: TaskStore) -> None:
    due = await created(store, next_check_at=at(0))
    await created(store, next_check_at=at(60))  # not yet
    await created(store, next_check_at=None)  # nothing scheduled
    await created(store, next_check_at=at(0), status=TaskStatus.COMPLETED)
    await created(store, next_check_at=at(0), status=TaskStatus.FAILED)
    await created(store, next_check_at=at(0), status=TaskStatus.CANCELLED)
    processing = await created(store, next_check_at=at(10), status=TaskStatus.PROCESSING)

    claimed = await store.claim(owner="a", now=at(10), until=at(40), limit=10)

    assert {t.video_id for t in claimed} == {due.video_id, processing.video_id}


async def test_claim_leases_bumps_the_version_and_loads_attempts(store: TaskStore) -> None:
    task = await created(store)
    attempt = make_attempt(task)
    w = await store.write(
        Write(before=task, after=dataclasses.replace(task, attempt=1), insert_attempt=attempt)
    )
    assert w is not None

    [claimed] = await store.claim(owner="a", now=at(1), until=at(31), limit=10)

    expected = dataclasses.replace(w.task, lease_owner="a", lease_until=at(31), version=3)
    assert claimed == expected
    assert claimed.attempts == (attempt,)
    assert await store.get(task.video_id) == expected


async def test_claim_skips_leased_tasks_until_the_lease_expires(store: TaskStore) -> None:
    task = await created(store)
    [first] = await store.claim(owner="a", now=at(1), until=at(31), limit=10)

    assert await store.claim(owner="b", now=at(2), until=at(32), limit=10) == []
    assert await store.claim(owner="b", now=at(31), until=at(61), limit=10) == []  # not < now
    [taken] = await store.claim(owner="b", now=at(32), until=at(62), limit=10)

    assert taken.video_id == task.video_id
    assert taken.lease_owner == "b" and taken.lease_until == at(62)
    assert taken.version == first.version + 1
    # The old owner's fenced write is now refused.
    stale = await store.write(Write(before=first, after=first, fence="a"))
    assert stale is None


async def test_claim_takes_the_earliest_due_up_to_the_limit(store: TaskStore) -> None:
    # Which tasks a claim takes is ordered; the order of the returned list is not (SQL's
    # UPDATE ... RETURNING gives rows in storage order), so it is compared as a set.
    tasks = [await created(store, next_check_at=at(s)) for s in (5, 1, 4, 2, 3)]
    by_due = sorted(tasks, key=lambda t: t.next_check_at or T0)

    first = await store.claim(owner="a", now=at(10), until=at(40), limit=2)
    second = await store.claim(owner="a", now=at(10), until=at(40), limit=2)
    third = await store.claim(owner="a", now=at(10), until=at(40), limit=2)

    ids_of = [t.video_id for t in by_due]
    assert {t.video_id for t in first} == set(ids_of[:2])
    assert {t.video_id for t in second} == set(ids_of[2:4])
    assert {t.video_id for t in third} == set(ids_of[4:])
    assert await store.claim(owner="a", now=at(10), until=at(40), limit=2) == []


# -- leases, jobs ----------------------------------------------------------------------------


async def test_extend_leases_pushes_only_the_owners_leases(store: TaskStore) -> None:
    for _ in range(3):
        await created(store)
    mine = await store.claim(owner="a", now=at(1), until=at(31), limit=2)
    [theirs] = await store.claim(owner="b", now=at(1), until=at(31), limit=10)

    asked = [t.video_id for t in mine] + [theirs.video_id, ids.new_video_id()]
    extended = await store.extend_leases(owner="a", video_ids=asked, until=at(61))

    assert extended == 2
    for task in mine:
        got = await store.get(task.video_id)
        assert got == dataclasses.replace(task, lease_until=at(61))  # the version stays
    assert await store.get(theirs.video_id) == theirs
    assert await store.extend_leases(owner="a", video_ids=[], until=at(91)) == 0


async def test_release_owned_frees_the_owners_tasks_and_fences_it_off(store: TaskStore) -> None:
    for _ in range(3):
        await created(store)
    mine = await store.claim(owner="a", now=at(1), until=at(31), limit=2)
    [theirs] = await store.claim(owner="b", now=at(1), until=at(31), limit=10)

    assert await store.release_owned(owner="a") == 2

    for task in mine:
        got = await store.get(task.video_id)
        assert got == dataclasses.replace(
            task, lease_owner=None, lease_until=None, version=task.version + 1
        )
        assert await store.write(Write(before=task, after=task, fence="a")) is None
    assert await store.get(theirs.video_id) == theirs
    assert await store.release_owned(owner="a") == 0
    # Released tasks are due again at once.
    again = await store.claim(owner="c", now=at(2), until=at(32), limit=10)
    assert {t.video_id for t in again} == {t.video_id for t in mine}


async def test_known_external_ids_are_those_some_attempt_recorded(store: TaskStore) -> None:
    one, two = await created(store), await created(store)
    await store.write(
        Write(before=one, after=one, insert_attempt=make_attempt(one, external_id="job_1"))
    )
    await store.write(
        Write(
            before=two,
            after=two,
            insert_attempt=make_attempt(two, provider="other", external_id="job_2"),
        )
    )

    found = await store.known_external_ids(provider="fake", external_ids=["job_1", "job_2", "x"])

    assert found == {"job_1"}
    assert await store.known_external_ids(provider="other", external_ids=["job_2"]) == {"job_2"}
    assert await store.known_external_ids(provider="fake", external_ids=[]) == set()


async def test_running_jobs_counts_current_open_attempts_of_active_tasks(
    store: TaskStore,
) -> None:
    async def with_attempts(status: TaskStatus, *attempts: tuple[str, AttemptState]) -> None:
        task = await created(store, status=status)
        for number, (provider, state) in enumerate(attempts, start=1):
            attempt = make_attempt(task, number, provider=provider, state=state)
            w = await store.write(
                Write(
                    before=task,
                    after=dataclasses.replace(task, attempt=number),
                    insert_attempt=attempt,
                )
            )
            assert w is not None
            task = w.task

    await with_attempts(TaskStatus.PROCESSING, ("fake", AttemptState.SUBMITTED))
    await with_attempts(TaskStatus.QUEUED, ("fake", AttemptState.SUBMITTING))
    await with_attempts(TaskStatus.PROCESSING, ("fake", AttemptState.FINISHED))
    await with_attempts(TaskStatus.PROCESSING, ("fake", AttemptState.UNKNOWN))
    await with_attempts(TaskStatus.COMPLETED, ("fake", AttemptState.SUBMITTED))
    await with_attempts(TaskStatus.CANCELLED, ("fake", AttemptState.SUBMITTING))
    # Failed over: the open job on "fake" is no longer the current attempt.
    await with_attempts(
        TaskStatus.PROCESSING, ("fake", AttemptState.SUBMITTED), ("other", AttemptState.SUBMITTED)
    )
    await created(store, status=TaskStatus.QUEUED)  # no attempt yet

    assert await store.running_jobs(provider="fake") == 2
    assert await store.running_jobs(provider="other") == 1
    assert await store.running_jobs(provider="nobody") == 0


# -- next_due --------------------------------------------------------------------------------


async def test_next_due_is_none_without_work(store: TaskStore) -> None:
    assert await store.next_due(at(0)) is None
    await created(store, status=TaskStatus.COMPLETED, next_check_at=at(1))
    await created(store, next_check_at=None)
    assert await store.next_due(at(0)) is None


async def test_next_due_is_the_earliest_unleased_active_check(store: TaskStore) -> None:
    await created(store, next_check_at=at(50))
    await created(store, next_check_at=at(30), status=TaskStatus.PROCESSING)
    await created(store, next_check_at=at(5), status=TaskStatus.CANCELLED)

    due = await store.next_due(at(0))

    assert due == at(30)
    assert_utc(due)


async def test_next_due_ignores_leased_tasks_until_their_lease_expires(store: TaskStore) -> None:
    await created(store, next_check_at=at(1))
    await created(store, next_check_at=at(50))
    [leased] = await store.claim(owner="a", now=at(1), until=at(31), limit=1)
    assert leased.next_check_at == at(1)

    assert await store.next_due(at(2)) == at(50)
    assert await store.next_due(at(32)) == at(1)  # the lease ran out: due again


async def test_count_by_status_counts_every_task_once(store: TaskStore) -> None:
    assert await store.count_by_status() == {}
    await created(store)
    await created(store, user_id="bob")
    await created(store, status=TaskStatus.PROCESSING)
    await created(store, status=TaskStatus.COMPLETED, next_check_at=None)

    assert await store.count_by_status() == {
        TaskStatus.QUEUED: 2,
        TaskStatus.PROCESSING: 1,
        TaskStatus.COMPLETED: 1,
    }


# -- list_page -------------------------------------------------------------------------------


async def test_list_pages_newest_first_with_a_cursor(store: TaskStore) -> None:
    # Two tasks share a created_at: video_id breaks the tie, so none is skipped or repeated.
    stamps = [0, 1, 1, 2, 3, 4, 5]
    made = [await created(store, created_at=at(s), updated_at=at(s)) for s in stamps]
    await created(store, user_id="bob")
    expected = sorted(made, key=lambda t: (t.created_at, t.video_id), reverse=True)

    seen: list[Task] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await store.list_page(user_id="alice", status=None, limit=3, cursor=cursor)
        pages += 1
        assert len(page.items) <= 3
        seen.extend(page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    assert pages == 3
    assert [t.video_id for t in seen] == [t.video_id for t in expected]
    assert seen[0] == expected[0]


async def test_list_filters_by_status(store: TaskStore) -> None:
    failed = [
        await created(store, status=TaskStatus.FAILED, created_at=at(s), updated_at=at(s))
        for s in range(3)
    ]
    await created(store, status=TaskStatus.COMPLETED, created_at=at(10))
    await created(store, status=TaskStatus.QUEUED, created_at=at(11))

    first = await store.list_page(user_id="alice", status=TaskStatus.FAILED, limit=2, cursor=None)
    assert first.next_cursor is not None
    rest = await store.list_page(
        user_id="alice", status=TaskStatus.FAILED, limit=2, cursor=first.next_cursor
    )

    assert [t.video_id for t in first.items + rest.items] == [t.video_id for t in failed[::-1]]
    assert rest.next_cursor is None


async def test_a_full_last_page_has_no_cursor(store: TaskStore) -> None:
    for s in range(2):
        await created(store, created_at=at(s))

    page = await store.list_page(user_id="alice", status=None, limit=2, cursor=None)

    assert len(page.items) == 2 and page.next_cursor is None


async def test_list_of_nobody_is_empty(store: TaskStore) -> None:
    await created(store)

    page = await store.list_page(user_id="carol", status=None, limit=5, cursor=None)

    assert page.items == [] and page.next_cursor is None


@pytest.mark.parametrize(
    "cursor",
    ["not-base64!", "bm8tc2VwYXJhdG9y", "MjAzMC0wMS0wMVQxMjowMDowMHx2aWRlb18x", "%%%"],
    ids=["garbage", "no-separator", "naive-time", "symbols"],
)
async def test_a_bad_cursor_is_refused(store: TaskStore, cursor: str) -> None:
    await created(store)

    with pytest.raises(BadCursor):
        await store.list_page(user_id="alice", status=None, limit=5, cursor=cursor)


# -- concurrency -----------------------------------------------------------------------------


async def test_concurrent_claims_hand_out_each_task_once(store: TaskStore) -> None:
    made = {(await created(store, next_check_at=at(s % 7))).video_id for s in range(24)}

    batches = await asyncio.gather(
        *(store.claim(owner=f"w{n}", now=at(10), until=at(40), limit=5) for n in range(8))
    )

    handed = [task.video_id for batch in batches for task in batch]
    assert len(handed) == len(set(handed))
    assert set(handed) == made  # room for 40: nothing is left behind
    for n, batch in enumerate(batches):
        for task in batch:
            assert task.lease_owner == f"w{n}"
            assert await store.get(task.video_id) == task


async def test_concurrent_writes_from_one_version_apply_once(store: TaskStore) -> None:
    task = await created(store)

    results = await asyncio.gather(
        *(
            store.write(
                Write(
                    before=task,
                    after=dataclasses.replace(task, progress=p),
                    insert_attempt=make_attempt(task, p),
                    event=(EventType.PROGRESS, {"progress": p}),
                )
            )
            for p in range(1, 9)
        )
    )

    [won] = [r for r in results if r is not None]
    assert won.event is not None
    assert await store.get(task.video_id) == won.task
    assert len(won.task.attempts) == 1
    assert await store.events_after(task.video_id, 0) == [won.event]


# -- the SQL adapter's edges -------------------------------------------------------------------


async def test_postgres_errors_surface_as_store_unavailable() -> None:
    async with fresh_postgres() as url:
        store = await SqlTaskStore.open(url)
        try:
            task = await created(store)
            await drop_postgres_database(make_url(url).database or "")

            calls: list[Coroutine[Any, Any, object]] = [
                store.ping(),
                store.get(task.video_id),
                store.create(make_task()),
                store.write(Write(before=task, after=task)),
                store.claim(owner="a", now=at(1), until=at(31), limit=10),
                store.release_owned(owner="a"),
            ]
            for call in calls:
                with pytest.raises(StoreUnavailable):
                    await call
        finally:
            await store.close()

    nobody = await SqlTaskStore.open("postgresql://postgres@127.0.0.1:1/none", migrate_schema=False)
    try:
        with pytest.raises(StoreUnavailable, match="ConnectionRefused"):
            await nobody.ping()
    finally:
        await nobody.close()


def test_pool_options_reach_the_postgres_engine() -> None:
    engine = make_engine("postgresql://u@db.example/v", pool_size=3, max_overflow=4, pool_timeout=5)
    pool = engine.pool
    assert isinstance(pool, QueuePool)
    assert (pool.size(), pool._max_overflow, pool.timeout()) == (3, 4, 5)
    default = make_engine("postgres://u@db.example/v").pool
    assert isinstance(default, QueuePool)
    assert (default.size(), default._max_overflow) == (DEFAULT_POOL_SIZE, DEFAULT_MAX_OVERFLOW)


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("sqlite:///data/v.db", "sqlite+aiosqlite:///data/v.db"),
        ("postgresql://u:p@h:5432/v", "postgresql+asyncpg://u:p@h:5432/v"),
        ("postgres://u@h/v", "postgresql+asyncpg://u@h/v"),
        ("postgresql://u@h/v?sslmode=require", "postgresql+asyncpg://u@h/v?ssl=require"),
        (
            "postgresql+asyncpg://u@h/v?ssl=verify-full",
            "postgresql+asyncpg://u@h/v?ssl=verify-full",
        ),
        ("sqlite+aiosqlite:///:memory:", "sqlite+aiosqlite:///:memory:"),
    ],
)
def test_async_url_takes_the_urls_people_write(given: str, used: str) -> None:
    assert async_url(given) == used


# -- idempotent create, quotas, support lookup, API keys ---------------------------------


def claim(key: str = "key-1", fingerprint: str = "f1", ttl_hours: float = 24) -> IdempotencyClaim:
    return IdempotencyClaim(
        key=key, fingerprint=fingerprint, expires_at=T0 + timedelta(hours=ttl_hours)
    )


async def test_idempotent_create_replays_the_first_task(store: TaskStore) -> None:
    first = await store.create(make_task(), idempotency=claim())
    again = await store.create(make_task(), idempotency=claim())
    assert not first.replayed
    assert again.replayed
    assert again.task.video_id == first.task.video_id
    page = await store.list_page(user_id="alice", status=None, limit=10, cursor=None)
    assert [t.video_id for t in page.items] == [first.task.video_id]


async def test_same_key_other_request_is_refused(store: TaskStore) -> None:
    first = await store.create(make_task(), idempotency=claim(fingerprint="f1"))
    with pytest.raises(IdempotencyMismatch) as refused:
        await store.create(make_task(), idempotency=claim(fingerprint="f2"))
    assert refused.value.video_id == first.task.video_id
    page = await store.list_page(user_id="alice", status=None, limit=10, cursor=None)
    assert len(page.items) == 1


async def test_idempotency_keys_are_per_user(store: TaskStore) -> None:
    alices = await store.create(make_task(), idempotency=claim())
    bobs = await store.create(make_task(user_id="bob"), idempotency=claim())
    assert not bobs.replayed
    assert bobs.task.video_id != alices.task.video_id


async def test_an_expired_key_starts_a_new_task_and_purge_forgets_it(store: TaskStore) -> None:
    first = await store.create(make_task(), idempotency=claim(ttl_hours=1))
    later = at(2 * 3600)
    second = await store.create(
        make_task(created_at=later, updated_at=later), idempotency=claim(fingerprint="other")
    )
    assert not second.replayed
    assert second.task.video_id != first.task.video_id
    # the key now belongs to the second task until T0 + 24 h
    assert await store.purge_idempotency_keys(at(3 * 3600)) == 0
    assert await store.purge_idempotency_keys(T0 + timedelta(hours=25)) == 1


async def test_concurrent_creates_with_one_key_store_one_task(store: TaskStore) -> None:
    results = await asyncio.gather(
        *(store.create(make_task(), idempotency=claim()) for _ in range(20))
    )
    assert sum(not r.replayed for r in results) == 1
    assert len({r.task.video_id for r in results}) == 1
    page = await store.list_page(user_id="alice", status=None, limit=50, cursor=None)
    assert len(page.items) == 1


async def test_active_task_quota(store: TaskStore) -> None:
    quota = Quota(max_active=2)
    first = (await store.create(make_task(), quota=quota)).task
    await store.create(make_task(), quota=quota)
    await store.create(make_task(user_id="bob"), quota=quota)  # bob's count is his own
    with pytest.raises(QuotaReached) as reached:
        await store.create(make_task(), quota=quota)
    assert (reached.value.which, reached.value.limit) == ("active", 2)
    assert reached.value.retry_after > 0
    done = dataclasses.replace(first, status=TaskStatus.COMPLETED, progress=100)
    assert await store.write(Write(before=first, after=done)) is not None
    await store.create(make_task(), quota=quota)  # room again


async def test_daily_quota_frees_up_as_the_window_moves(store: TaskStore) -> None:
    quota = Quota(max_per_day=2)

    def made(seconds: float) -> Task:
        return make_task(created_at=at(seconds), updated_at=at(seconds))

    await store.create(made(0), quota=quota)
    await store.create(made(10), quota=quota)
    with pytest.raises(QuotaReached) as reached:
        await store.create(made(20), quota=quota)
    assert reached.value.which == "daily"
    assert reached.value.retry_after == pytest.approx(24 * 3600 - 20)
    await store.create(made(24 * 3600 + 1), quota=quota)  # the first left the window


async def test_find_by_external_id(store: TaskStore) -> None:
    task = await created(store)
    attempt = make_attempt(task, external_id="video_ext_1", state=AttemptState.SUBMITTED)
    after = dataclasses.replace(task, external_id="video_ext_1", provider="fake", attempt=1)
    assert await store.write(Write(before=task, after=after, insert_attempt=attempt)) is not None
    await created(store)  # another task
    found = await store.find_by_external_id("video_ext_1")
    assert [t.video_id for t in found] == [task.video_id]
    assert found[0].attempts[0].external_id == "video_ext_1"
    assert await store.find_by_external_id("video_ext_2") == []


async def test_api_keys(store: TaskStore) -> None:
    keys: Any = store
    key = ApiKey(key_id="k1", user_id="alice", secret_hash="h" * 64, label="ci", created_at=T0)
    await keys.add_api_key(key)
    await keys.add_api_key(dataclasses.replace(key, key_id="k2", user_id="bob", admin=True))
    assert await keys.get_api_key("k1") == key
    assert await keys.get_api_key("nope") is None
    assert [k.key_id for k in await keys.list_api_keys()] == ["k1", "k2"]
    assert [k.key_id for k in await keys.list_api_keys("bob")] == ["k2"]
    assert (await keys.get_api_key("k2")).admin is True
    assert await keys.revoke_api_key("k1", at=at(5)) is True
    assert await keys.revoke_api_key("k1", at=at(9)) is True  # already revoked: kept as is
    assert (await keys.get_api_key("k1")).revoked_at == at(5)
    assert await keys.revoke_api_key("nope", at=at(5)) is False


async def test_a_write_with_a_quota_is_refused_at_the_limit(store: TaskStore) -> None:
    quota = Quota(max_active=1)
    done = await created(store, status=TaskStatus.CANCELLED)
    await store.create(make_task(), quota=quota)  # the one active task allowed
    again = dataclasses.replace(done, status=TaskStatus.QUEUED, updated_at=at(5))
    with pytest.raises(QuotaReached) as reached:
        await store.write(Write(before=done, after=again, quota=quota))
    assert reached.value.which == "active"
    assert (await store.get(done.video_id)).status is TaskStatus.CANCELLED  # type: ignore[union-attr]
    await store.write(Write(before=done, after=again, quota=Quota(max_active=2)))
    assert (await store.get(done.video_id)).status is TaskStatus.QUEUED  # type: ignore[union-attr]


# -- many writers at once (group commit on SQLite) -------------------------------------------


async def test_concurrent_creates_and_writes_all_land_and_a_bad_one_fails_alone(
    store: TaskStore,
) -> None:
    tasks = [make_task() for _ in range(40)]
    duplicate = dataclasses.replace(tasks[7], prompt="same id twice")

    outcomes = await asyncio.gather(
        *(store.create(t) for t in tasks[:20]),
        store.create(duplicate),
        *(store.create(t) for t in tasks[20:]),
        return_exceptions=True,
    )

    failed = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(failed) == 1 and isinstance(failed[0], StoreUnavailable)
    for task in tasks:
        got = await store.get(task.video_id)
        assert got is not None and got.prompt == "a cat on a skateboard"

    # Writes queued together: each applies to its own task, a stale one is refused alone.
    stale = await store.get(tasks[0].video_id)
    assert stale is not None
    moved = await store.write(Write(before=stale, after=dataclasses.replace(stale, progress=5)))
    assert moved is not None
    writes = [
        Write(
            before=stale,
            after=dataclasses.replace(stale, progress=99),
            event=(EventType.PROGRESS, {"progress": 99}),
        )
    ]
    for task in tasks[1:]:
        current = await store.get(task.video_id)
        assert current is not None
        writes.append(
            Write(
                before=current,
                after=dataclasses.replace(current, progress=50),
                event=(EventType.PROGRESS, {"progress": 50}),
            )
        )
    results = await asyncio.gather(*(store.write(w) for w in writes))

    assert results[0] is None
    assert all(r is not None and r.event is not None for r in results[1:])
    event_ids = [r.event.id for r in results[1:] if r is not None and r.event is not None]
    assert len(set(event_ids)) == len(event_ids) == 39
    assert (await store.get(tasks[0].video_id)).progress == 5  # type: ignore[union-attr]
    assert await store.events_after(tasks[0].video_id, 0) == []
    for task in tasks[1:]:
        got = await store.get(task.video_id)
        assert got is not None and got.progress == 50
        [event] = await store.events_after(task.video_id, 0)
        assert event.payload == {"progress": 50}


async def test_sqlite_commits_queued_writes_together(tmp_path: Path) -> None:
    sql = await SqlTaskStore.open(new_sqlite_url(tmp_path))
    try:
        group = sql._group
        assert group is not None
        await asyncio.gather(*(sql.create(make_task()) for _ in range(100)))
        assert group.writes == 100
        assert group.batches < 50  # one transaction per write would be 100
    finally:
        await sql.close()
