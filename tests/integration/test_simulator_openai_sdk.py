"""The official `openai` SDK pointed at the simulator works as it would against the real API."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import av
import openai
import pytest

from vidgate.simulator.config import SimConfig
from vidgate.simulator.server import RunningSimulator, running_in_thread, start

# The SDK marks every videos method deprecated (the Sora API's shutdown date); that is the
# SDK talking about OpenAI's service, not about the convention the simulator keeps alive.
pytestmark = pytest.mark.filterwarnings(
    "ignore:The Sora API is scheduled to permanently shut down:DeprecationWarning"
)


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with running_in_thread(SimConfig(job_seconds=1.0)) as simulator:
        yield simulator


@pytest.fixture
def client(sim: RunningSimulator) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=sim.base_url, api_key="sk-test", max_retries=0) as sdk:
        yield sdk


def probe_mp4(data: bytes) -> tuple[str, float, int]:
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.video[0]
        frames = len(list(container.decode(stream)))
        assert container.duration is not None
        return stream.codec_context.name, container.duration / av.time_base, frames


def test_create_and_poll_then_download(sim: RunningSimulator, client: openai.OpenAI) -> None:
    # No poll_interval_ms: the helper follows the server's openai-poll-after-ms (100 ms here).
    video = client.videos.create_and_poll(
        model="sora-2", prompt="A calico cat playing a piano on stage", seconds="4"
    )
    assert video.status == "completed"
    assert video.progress == 100
    assert video.seconds == "4" and video.size == "720x1280"
    assert video.error is None and video.completed_at is not None

    content = client.videos.download_content(video.id)
    codec, duration, frames = probe_mp4(content.read())
    assert codec == "h264"
    assert duration > 0
    assert frames > 0

    thumbnail = client.videos.download_content(video.id, variant="thumbnail").read()
    assert thumbnail[:4] == b"RIFF" and thumbnail[8:12] == b"WEBP"
    # Polling went through the helper's retrieve calls, about ten of them.
    assert 3 <= sim.stats()["requests"]["GET /videos/{video_id}"] <= 40


def test_bad_seconds_raise_bad_request(client: openai.OpenAI) -> None:
    bad_seconds: Any = "10"
    with pytest.raises(openai.BadRequestError) as caught:
        client.videos.create(prompt="x", seconds=bad_seconds)
    error = caught.value
    assert error.status_code == 400
    assert error.body == {
        "message": "Invalid value: '10'. Supported values are: '4', '8', and '12'.",
        "type": "invalid_request_error",
        "param": "seconds",
        "code": "invalid_value",
    }
    assert error.param == "seconds"
    assert error.code == "invalid_value"
    assert error.request_id is not None and error.request_id.startswith("req_")


def test_missing_video_raises_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve("video_nope")


def test_list_remix_and_delete(client: openai.OpenAI) -> None:
    source = client.videos.create_and_poll(prompt="origami cranes", size="1280x720")
    remix = client.videos.remix(source.id, prompt="origami cranes at night")
    assert remix.remixed_from_video_id == source.id
    assert remix.size == "1280x720"

    # Auto-pagination follows `after`/`has_more` through pages of one.
    listed = [video.id for video in client.videos.list(limit=1, order="asc")]
    assert listed[-2:] == [source.id, remix.id]

    deleted = client.videos.delete(remix.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (remix.id, True, "video.deleted")


def test_api_key_enforced_for_the_sdk() -> None:
    with (
        running_in_thread(SimConfig(api_key="sk-right")) as simulator,
        openai.OpenAI(base_url=simulator.base_url, api_key="sk-wrong", max_retries=0) as sdk,
    ):
        with pytest.raises(openai.AuthenticationError):
            sdk.videos.list()
        sdk_ok = sdk.with_options(api_key="sk-right")
        assert sdk_ok.videos.list().data == []


async def test_async_client_against_the_in_loop_server() -> None:
    simulator = await start(SimConfig(job_seconds=0.5))
    try:
        async with openai.AsyncOpenAI(
            base_url=simulator.base_url, api_key="sk-test", max_retries=0
        ) as sdk:
            video = await sdk.videos.create_and_poll(prompt="[fail] a banned scene")
            assert video.status == "failed"
            assert video.error is not None and video.error.code == "moderation_blocked"
            done = await sdk.videos.create_and_poll(prompt="a quiet harbour", seconds="12")
            assert done.status == "completed"
            content = await sdk.videos.download_content(done.id)
            assert probe_mp4(content.read())[1] > 0
    finally:
        await simulator.stop()
