"""Pure pieces of the simulator: job clock, byte ranges, multipart nesting, media rendering."""

from __future__ import annotations

import io

import av
import pytest

from vidgate.simulator import jobs, media, ranges, validation


def make_job(outcome: jobs.Outcome, duration: float = 10.0) -> jobs.Job:
    return jobs.Job(
        id="video_x",
        model="sora-2",
        prompt="p",
        size="720x1280",
        seconds="4",
        created_at=1000.0,
        duration=duration,
        expires_after=3600.0,
        outcome=outcome,
    )


@pytest.mark.parametrize(
    ("elapsed", "status", "progress"),
    [
        (0.0, "queued", 0),
        (0.99, "queued", 0),
        (1.0, "in_progress", 0),
        (5.5, "in_progress", 50),
        (9.99, "in_progress", 99),
        (10.0, "completed", 100),
        (99.0, "completed", 100),
    ],
)
def test_phase_of_a_completing_job(elapsed: float, status: str, progress: int) -> None:
    phase = jobs.phase(make_job(jobs.Outcome.COMPLETE), 1000.0 + elapsed)
    assert (phase.status, phase.progress) == (status, progress)
    if status == "completed":
        assert (phase.finished_at, phase.expires_at) == (1010.0, 4610.0)


def test_failing_and_stuck_phases() -> None:
    failed = jobs.phase(make_job(jobs.Outcome.FAIL), 1006.0)
    assert (failed.status, failed.progress, failed.finished_at, failed.expires_at) == (
        "failed",
        44,
        1005.0,
        None,
    )
    stuck = jobs.phase(make_job(jobs.Outcome.STUCK), 1_000_000.0)
    assert (stuck.status, stuck.progress, stuck.finished_at) == ("in_progress", 99, None)
    instant = jobs.phase(make_job(jobs.Outcome.COMPLETE, duration=0), 1000.0)
    assert instant.status == "completed"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-9", (0, 9)),
        ("bytes=90-", (90, 99)),
        ("bytes=-5", (95, 99)),
        ("bytes=50-500", (50, 99)),
        ("bytes=0-1,5-6", None),
        ("items=0-1", None),
    ],
)
def test_byte_range(header: str | None, expected: tuple[int, int] | None) -> None:
    assert ranges.byte_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=5-2", "bytes=-0"])
def test_unsatisfiable_byte_range(header: str) -> None:
    with pytest.raises(ValueError):
        ranges.byte_range(header, 100)


def test_nest_fields() -> None:
    nested = validation.nest_fields(
        [
            ("prompt", "p"),
            ("input_reference[image_url]", "u"),
            ("input_reference[file_id]", "f"),
            ("tags[]", "a"),
            ("tags[]", "b"),
            ("a[b][c]", "d"),
        ]
    )
    assert nested == {
        "prompt": "p",
        "input_reference": {"image_url": "u", "file_id": "f"},
        "tags": ["a", "b"],
        "a": {"b": {"c": "d"}},
    }


@pytest.mark.parametrize(
    ("size", "dimensions"),
    [
        ("720x1280", (320, 568)),
        ("1280x720", (320, 180)),
        ("1792x1024", (320, 182)),
        ("1080x1920", (320, 568)),
    ],
)
def test_render_dimensions(size: str, dimensions: tuple[int, int]) -> None:
    assert media.MediaSpec(prompt="p", size=size).dimensions() == dimensions


def test_render_is_deterministic_playable_and_prompt_dependent() -> None:
    first = media.render(media.MediaSpec(prompt="a fox", size="1280x720"))
    assert first == media.render(media.MediaSpec(prompt="a fox", size="1280x720"))
    assert first.video != media.render(media.MediaSpec(prompt="a hen", size="1280x720")).video
    with av.open(io.BytesIO(first.video), mode="r") as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.width, stream.height) == ("h264", 320, 180)
        assert len(list(container.decode(stream))) == media.FPS * media.CLIP_SECONDS
    assert first.thumbnail[8:12] == b"WEBP"
    assert first.spritesheet[:3] == b"\xff\xd8\xff"
