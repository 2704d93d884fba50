"""The typed messages and their one rendering: the seed's shapes, exactly, plus eventId."""

from __future__ import annotations

import json

import pytest

from tests.factories import sample_task
from vidgate.domain import events, messages
from vidgate.domain.events import EventType, TaskEvent
from vidgate.domain.models import TaskError
from vidgate.domain.status import TaskStatus


def test_payloads_keep_the_seed_shapes() -> None:
    queued = sample_task(message="Queued")
    assert events.payload(queued) == {
        "videoId": queued.video_id,
        "externalVideoId": None,
        "status": "queued",
        "progress": 0,
        "message": "Queued",
    }
    done = sample_task(
        status=TaskStatus.COMPLETED,
        progress=100,
        message="",
        external_id="video_up",
        video_url="http://up/v.mp4",
    )
    assert events.payload(done) == {
        "videoId": done.video_id,
        "externalVideoId": "video_up",
        "status": "completed",
        "progress": 100,
        "message": "",
        "result": {"videoUrl": "http://up/v.mp4"},
    }
    failed = sample_task(
        status=TaskStatus.EXPIRED, progress=40, error=TaskError(code="X", message="gone")
    )
    body = events.payload(failed)
    assert body["status"] == "expired"
    assert body["error"] == {"code": "X", "message": "gone"}
    assert "result" not in body
    assert list(body) == ["videoId", "externalVideoId", "status", "progress", "message", "error"]


def test_a_stored_event_renders_with_its_id_next_to_type_and_timestamp() -> None:
    payload = events.payload(sample_task())
    event = TaskEvent(
        id=42,
        video_id=payload["videoId"],
        type=EventType.PROGRESS,
        payload=payload,
        timestamp_ms=1763027892000,
        task_version=3,
    )
    frame = event.message()
    assert frame == {
        "type": "taskProgress",
        "timestamp": 1763027892000,
        "eventId": 42,
        "payload": payload,
    }
    assert list(frame) == ["type", "timestamp", "eventId", "payload"]
    assert json.loads(json.dumps(frame)) == frame


def test_other_frames_carry_no_event_id() -> None:
    for frame in (
        messages.pong(),
        messages.authenticated("alice"),
        messages.unsubscribed("video_1"),
        messages.error("TASK_NOT_FOUND", "No task.", video_id="video_1"),
    ):
        rendered = messages.render(frame)
        assert set(rendered) == {"type", "timestamp", "payload"}, rendered
    assert messages.render(messages.pong())["payload"] == {}
    assert messages.render(messages.authenticated("alice"))["payload"] == {"userId": "alice"}
    error = messages.render(messages.error("RATE_LIMITED", "Slow.", retry_after_seconds=2.0))
    assert error["payload"] == {
        "code": "RATE_LIMITED",
        "message": "Slow.",
        "retryAfterSeconds": 2.0,
    }


def test_subscribed_names_its_event_and_how_a_resume_went() -> None:
    state = events.state(sample_task())
    plain = messages.render(messages.subscribed(state, event_id=None))
    assert plain["eventId"] is None and "resumed" not in plain and "reason" not in plain
    fallback = messages.render(
        messages.subscribed(state, event_id=9, resumed=False, reason=messages.EVENTS_EXPIRED)
    )
    assert (fallback["eventId"], fallback["resumed"], fallback["reason"]) == (
        9,
        False,
        "EVENTS_EXPIRED",
    )


@pytest.mark.parametrize(
    ("name", "camel"),
    [("video_id", "videoId"), ("external_video_id", "externalVideoId"), ("code", "code")],
)
def test_camel(name: str, camel: str) -> None:
    assert messages.camel(name) == camel


def test_read_takes_frames_and_refuses_the_rest() -> None:
    got = messages.read({"type": "taskProgress", "eventId": 5, "payload": {"videoId": "v"}})
    assert got == messages.Received(type="taskProgress", event_id=5, payload={"videoId": "v"})
    assert messages.read({"type": "subscribed", "eventId": True, "payload": {}}) == (
        messages.Received(type="subscribed", event_id=None, payload={})
    )
    for junk in (None, [], "x", {"type": "pong"}, {"type": "x", "payload": []}):
        assert messages.read(junk) is None
