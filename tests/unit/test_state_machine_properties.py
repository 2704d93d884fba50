"""Properties of the task state machine (``domain.transitions``) and its pushed messages.

Random sequences of what an upstream may say (known, unknown and odd status words;
progress out of range, negative, NaN, infinite, going backwards; ``completed`` with and
without a URL), mixed with the engine's and the client's own moves (fail, cancel,
retry), are applied to a fresh task. After every step: terminal states are final,
progress never goes backwards within an attempt, 100 % only for a completed task with
a video, and a message is pushed exactly when something a subscriber sees changed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidgate.domain import events, transitions
from vidgate.domain.events import EventType
from vidgate.domain.models import Task, TaskError
from vidgate.domain.status import TaskStatus
from vidgate.domain.transitions import IllegalTransition, Observation, clamp_progress
from vidgate.engine.observe import task_status_of
from vidgate.providers.openai import job_status

T0 = datetime(2030, 1, 1, tzinfo=UTC)
QUEUED_WORDS = ["queued", "pending", "submitted"]
RUNNING_WORDS = ["in_progress", "processing", "running", "generating"]
DONE_WORDS = ["completed", "succeeded", "success"]
FAILED_WORDS = ["failed", "failure", "error", "cancelled", "canceled", "expired"]
ODD_WORDS = [" COMPLETED ", "In_Progress", "rendering", "done?", "", "nil"]

# What an upstream's JSON may hold where a status word should be. Weighted so that most
# sequences run for a while and many reach ``completed``; a third is odd or not a word.
words = st.sampled_from(
    RUNNING_WORDS * 6 + DONE_WORDS * 3 + QUEUED_WORDS * 2 + FAILED_WORDS + ODD_WORDS
)
raw_words = st.one_of(words, words, st.text(max_size=8), st.one_of(st.none(), st.integers()))
raw_progress = st.one_of(
    st.none(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.integers(min_value=0, max_value=100),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1, max_value=101),
    st.booleans(),
    st.text(max_size=4),
)
urls = st.sampled_from(["https://cdn.example/v.mp4", "https://cdn.example/w.mp4", None, ""])
errors = st.one_of(
    st.none(),
    st.builds(
        TaskError,
        code=st.sampled_from(["content_policy_violation", "UPSTREAM_FAILED", "x"]),
        message=st.text(min_size=1, max_size=20),
    ),
)


# The ends that carry an error: a failure, or an upstream that dropped the job unrun.
FAILURES = (TaskStatus.FAILED, TaskStatus.EXPIRED)


@st.composite
def observations(draw: st.DrawFn) -> Observation:
    """An observation as the adapter builds it, or with raw ints it did not clamp."""
    word = draw(raw_words)
    raw = draw(raw_progress)
    progress = draw(st.sampled_from(["clamped", "raw"]))
    if progress == "raw" and isinstance(raw, int) and not isinstance(raw, bool):
        value: int | None = raw
    else:
        value = clamp_progress(raw)
    return Observation(
        status=task_status_of(job_status(word)),
        raw_status=word if isinstance(word, str) else None,
        progress=value,
        video_url=draw(urls),
        error=draw(errors),
    )


@dataclass(frozen=True)
class Op:
    kind: str  # observe | submitted | fail | cancel | retry
    seen: Observation | None = None
    external_id: str = ""


# Mostly upstream looks, now and then a move that ends the task or starts it afresh.
KINDS = ["observe"] * 7 + ["submitted"] * 2 + ["fail", "cancel", "retry"]


@st.composite
def operations(draw: st.DrawFn) -> Op:
    kind = draw(st.sampled_from(KINDS))
    if kind == "observe":
        return Op(kind, draw(observations()))
    if kind == "submitted":
        return Op(kind, draw(observations()), draw(st.sampled_from(["video_a", "video_b"])))
    return Op(kind)


def fresh_task() -> Task:
    return Task(
        video_id="video_00000000-0000-4000-8000-000000000000",
        user_id="alice",
        prompt="p",
        model="sora-2",
        seconds="4",
        size="720x1280",
        created_at=T0,
        updated_at=T0,
        deadline_at=T0 + timedelta(hours=1),
        next_check_at=T0,
    )


def apply(task: Task, op: Op, now: datetime) -> Task:
    match op.kind:
        case "observe":
            assert op.seen is not None
            return transitions.observe(task, op.seen, now=now)
        case "submitted":
            assert op.seen is not None
            return transitions.submitted(
                task, provider="fake", external_id=op.external_id, seen=op.seen, now=now
            )
        case "fail":
            return transitions.fail(task, code="TASK_TIMEOUT", message="late", now=now)
        case "cancel":
            return transitions.cancel(task, now=now)
        case _:
            return transitions.retry(task, now=now, deadline_at=now + timedelta(hours=1))


def visible(task: Task) -> dict[str, Any]:
    """What a subscriber sees of a task, written out independently of ``events``."""
    seen: dict[str, Any] = {
        "videoId": task.video_id,
        "externalVideoId": task.external_id,
        "status": task.status.pushed,
        "progress": task.progress,
        "message": task.message,
    }
    if task.status is TaskStatus.COMPLETED:
        seen["videoUrl"] = task.video_url
    if task.status in FAILURES:
        seen["error"] = task.error
    return seen


EXPECTED_TYPE = {
    TaskStatus.QUEUED: EventType.PROGRESS,
    TaskStatus.PROCESSING: EventType.PROGRESS,
    TaskStatus.COMPLETED: EventType.COMPLETED,
    TaskStatus.FAILED: EventType.FAILED,
    TaskStatus.CANCELLED: EventType.CANCELLED,
    TaskStatus.EXPIRED: EventType.FAILED,
}


def check_step(before: Task, op: Op, now: datetime) -> Task:
    """Apply ``op`` and check every rule; returns the task to continue with."""
    leaves_terminal = op.kind == "retry" or (
        op.kind == "cancel" and before.status is TaskStatus.CANCELLED
    )
    if before.status.terminal and not leaves_terminal:
        with pytest.raises(IllegalTransition):
            apply(before, op, now)
        return before
    if op.kind == "retry" and before.status not in (TaskStatus.FAILED, TaskStatus.CANCELLED):
        with pytest.raises(IllegalTransition):
            apply(before, op, now)
        return before

    after = apply(before, op, now)

    # Progress: a whole number 0..100, never backwards except when retry starts afresh.
    assert isinstance(after.progress, int) and 0 <= after.progress <= 100
    if op.kind == "retry":
        assert after.status is TaskStatus.QUEUED and after.progress == 0
        assert after.error is None and after.video_url is None and after.external_id is None
    else:
        assert after.progress >= before.progress

    # 100 % exactly when completed with a video.
    assert (after.progress == 100) == (after.status is TaskStatus.COMPLETED)
    if after.status is TaskStatus.COMPLETED:
        assert after.video_url
    assert (after.completed_at is not None) == after.status.terminal
    assert (after.error is not None) == (after.status in FAILURES)

    # A processing task is never sent back to queued by the upstream.
    if before.status is TaskStatus.PROCESSING and op.kind != "retry":
        assert after.status is not TaskStatus.QUEUED

    if op.kind in ("observe", "submitted"):
        assert op.seen is not None
        seen = op.seen
        if seen.status is None or seen.status is TaskStatus.QUEUED:
            assert after.status is before.status  # unknown words change nothing
        if seen.status is TaskStatus.COMPLETED and not seen.video_url:
            assert after.status is TaskStatus.FAILED
            assert after.error == TaskError(
                code="UPSTREAM_NO_RESULT",
                message="The upstream reported the job completed but gave no video.",
            )
        if seen.status is TaskStatus.EXPIRED:
            assert after.status is TaskStatus.EXPIRED
            assert after.error is not None
        if seen.status is TaskStatus.FAILED:
            assert after.status is TaskStatus.FAILED
            assert after.error is not None
            if seen.error is not None:
                assert after.error == seen.error
            else:
                assert after.error.code == "UPSTREAM_FAILED"
    if op.kind == "submitted":
        assert after.external_id == op.external_id

    # A message iff something a subscriber sees changed, describing the new state.
    message = events.change(before, after)
    assert (message is not None) == (visible(before) != visible(after))
    if message is not None:
        kind, payload = message
        assert kind is EXPECTED_TYPE[after.status]
        assert payload["videoId"] == after.video_id
        assert payload["externalVideoId"] == after.external_id
        assert payload["status"] == after.status.pushed
        assert payload["progress"] == after.progress
        assert ("result" in payload) == (after.status is TaskStatus.COMPLETED)
        assert ("error" in payload) == (after.status in FAILURES)
    return after


@settings(max_examples=200, deadline=None)
@given(st.lists(operations(), max_size=20))
def test_any_sequence_of_moves_keeps_the_rules(ops: list[Op]) -> None:
    task = fresh_task()
    for step, op in enumerate(ops, start=1):
        task = check_step(task, op, T0 + timedelta(seconds=step))


@settings(max_examples=100, deadline=None)
@given(st.lists(observations(), min_size=1, max_size=6))
def test_terminal_states_are_final(seen: list[Observation]) -> None:
    now = T0 + timedelta(seconds=1)
    task = fresh_task()
    for end in (
        transitions.fail(task, code="X", message="x", now=now),
        transitions.cancel(task, now=now),
        transitions.observe(
            task, Observation(status=TaskStatus.COMPLETED, video_url="https://v"), now=now
        ),
    ):
        assert end.status.terminal
        for item in seen:
            with pytest.raises(IllegalTransition):
                transitions.observe(end, item, now=now)
            with pytest.raises(IllegalTransition):
                transitions.submitted(end, provider="p", external_id="e", seen=item, now=now)
        with pytest.raises(IllegalTransition):
            transitions.fail(end, code="Y", message="y", now=now)
        if end.status is TaskStatus.CANCELLED:
            assert transitions.cancel(end, now=now) is end  # idempotent, and no message
            assert events.change(end, end) is None
        else:
            with pytest.raises(IllegalTransition):
                transitions.cancel(end, now=now)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=4),
        st.lists(st.integers(), max_size=2),
    )
)
def test_clamp_progress_never_raises_and_stays_in_range(value: object) -> None:
    # Upstream JSON is untrusted: Python's json reads ``Infinity`` and ``1e999`` as inf.
    result = clamp_progress(value)
    if result is None:
        return
    assert isinstance(result, int) and 0 <= result <= 100
    assert isinstance(value, int | float) and not isinstance(value, bool)
    if not math.isinf(value):
        assert result == max(0, min(100, int(value)))
