"""IDs, the one status mapping, and the adaptive poll schedule."""

from __future__ import annotations

import random
import re

import pytest

from vidgate.domain import ids
from vidgate.domain.schedule import JobDurations, PollPolicy, backoff_delay, next_poll_delay
from vidgate.domain.status import TERMINAL, TaskStatus
from vidgate.engine.observe import task_status_of
from vidgate.providers.openai import job_status


def test_video_id_format() -> None:
    made = {ids.new_video_id() for _ in range(1000)}
    assert len(made) == 1000
    for value in made:
        assert re.fullmatch(
            r"video_[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", value
        )
        assert ids.is_video_id(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "video_",
        "video_E7A620C7-2829-40D8-BBFB-77891F4621CC",
        "e7a620c7-2829-40d8-bbfb-77891f4621cc",
        "video_e7a620c7-2829-40d8-bbfb-77891f4621cc\n",
        "video_68d7512d07848190b3e45da0ecbebcde",
    ],
)
def test_not_a_video_id(value: str) -> None:
    assert not ids.is_video_id(value)


@pytest.mark.parametrize(
    ("full", "short"),
    [
        ("video_e7a620c7-2829-40d8-bbfb-77891f4621cc", "video_e7a620c7-..."),
        ("video_4df24bdc-4f66-4e02-a608-6ce4a12f154a", "video_4df24bdc-..."),
        ("video_68d7512d07848190b3e45da0ecbebcde", "video_68d7512d0784..."),
        ("short", "short"),
        (None, "-"),
    ],
)
def test_shortened_for_the_console(full: str | None, short: str) -> None:
    assert ids.shorten(full) == short


def test_rest_and_pushed_words() -> None:
    assert [s.pushed for s in TaskStatus] == [
        "queued",
        "in_progress",
        "completed",
        "failed",
        "cancelled",
        "expired",
    ]
    assert {s for s in TaskStatus if s.terminal} == TERMINAL
    assert {
        TaskStatus.COMPLETED,
        TaskStatus.FAILED,
        TaskStatus.CANCELLED,
        TaskStatus.EXPIRED,
    } == TERMINAL


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("queued", TaskStatus.QUEUED),
        ("in_progress", TaskStatus.PROCESSING),
        ("completed", TaskStatus.COMPLETED),
        ("failed", TaskStatus.FAILED),
        ("  Completed ", TaskStatus.COMPLETED),
        ("processing", TaskStatus.PROCESSING),
        ("cancelled", TaskStatus.FAILED),  # an upstream cancel we did not ask for
        ("expired", TaskStatus.EXPIRED),
        ("rendering_on_mars", None),
        ("", None),
        (None, None),
        (3, None),
        (["completed"], None),
    ],
)
def test_upstream_words(word: object, status: TaskStatus | None) -> None:
    """A /v1/videos status word, as its adapter and then the engine read it."""
    assert task_status_of(job_status(word)) is status


def test_first_poll_is_soon_after_submission() -> None:
    policy = PollPolicy(first=1.0, jitter=0.0)
    assert next_poll_delay(since_submit=0, progress=0, policy=policy) == 1.0


def test_poll_follows_expected_remaining_time() -> None:
    policy = PollPolicy(minimum=0.5, maximum=20, fraction_of_remaining=0.3, jitter=0.0)
    # 20 % after 10 s: 40 s to go -> look again in 12 s.
    assert next_poll_delay(since_submit=10, progress=20, policy=policy) == pytest.approx(12.0)
    # Nearly done: look often, but never more often than the minimum.
    assert next_poll_delay(since_submit=60, progress=99, policy=policy) == 0.5
    # Very slow job: capped.
    assert next_poll_delay(since_submit=600, progress=1, policy=policy) == 20.0
    # No progress yet: back off with age.
    assert next_poll_delay(since_submit=8, progress=0, policy=policy) == pytest.approx(4.0)


def test_a_learned_duration_puts_the_next_look_just_after_the_expected_end() -> None:
    policy = PollPolicy(minimum=0.5, maximum=20, jitter=0.1)
    rng = random.Random(3)
    # Just submitted, such jobs take 5 s: one look at 5 s to 5.5 s, never before.
    first = [next_poll_delay(since_submit=0, progress=0, policy=policy, expected=5, rng=rng)]
    first += [
        next_poll_delay(since_submit=0, progress=0, policy=policy, expected=5, rng=rng)
        for _ in range(50)
    ]
    assert all(5.0 <= d <= 5.5 for d in first) and len(set(first)) > 40
    # Still far from the end of a long job: the maximum interval still holds.
    assert next_poll_delay(since_submit=10, progress=3, policy=policy, expected=300) <= 22
    # Past the expected end: the progress rate decides again, never below the minimum.
    late = next_poll_delay(since_submit=6, progress=95, policy=policy, expected=5, rng=rng)
    assert 0.45 <= late <= 0.55


def test_job_durations_learn_the_lower_quartile_per_kind() -> None:
    durations = JobDurations(window=8, least=3)
    kind = ("sim", "sora-2", "4")
    durations.observe(kind, 5.4)
    durations.observe(kind, 5.1)
    assert durations.expected(kind) is None  # too few to go by
    for seconds in (5.2, 9.0, 5.3, 5.6, 5.0, 7.5):
        durations.observe(kind, seconds)
    assert durations.expected(kind) == 5.1  # 5.0 5.1 5.2 5.3 5.4 5.6 7.5 9.0
    assert durations.expected(("sim", "sora-2", "8")) is None
    for _ in range(8):
        durations.observe(kind, 20.0)  # the window moves on
    assert durations.expected(kind) == 20.0


def test_poll_jitter_spreads_tasks_created_together() -> None:
    rng = random.Random(7)
    delays = {round(next_poll_delay(since_submit=10, progress=20, rng=rng), 3) for _ in range(50)}
    assert len(delays) > 40
    assert all(12 * 0.9 <= d <= 12 * 1.1 for d in delays)


def test_backoff_grows_and_is_capped() -> None:
    rng = random.Random(1)
    assert 0.5 <= backoff_delay(1, rng=rng) <= 1.0
    assert 4.0 <= backoff_delay(4, rng=rng) <= 8.0
    assert 15.0 <= backoff_delay(30, rng=rng) <= 30.0
