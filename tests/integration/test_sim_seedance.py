"""The seedance simulator as the official Volcengine SDK (``volcenginesdkarkruntime.Ark``)
sees it: task create / get / list / delete, Ark's error envelope and codes, the key check,
injected faults in Ark's words, and pre-signed video URLs that expire."""

from __future__ import annotations

import calendar
import io
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import av
import httpx
import pytest
from volcenginesdkarkruntime import Ark
from volcenginesdkarkruntime._exceptions import (
    ArkAPIStatusError,
    ArkAuthenticationError,
    ArkBadRequestError,
    ArkInternalServerError,
    ArkNotFoundError,
    ArkRateLimitError,
)
from volcenginesdkarkruntime.types.content_generation.content_generation_task import (
    ContentGenerationTask,
)

from vidgate.simulator.config import SimConfig
from vidgate.simulator.server import RunningSimulator, running_in_thread

KEY = "ark-sim-key"
MODEL = "dreamina-seedance-2-0-260128"
TEXT = {"type": "text", "text": "a paper boat on a rainy street"}
REQUEST_ID = r" Request id: 021\d{13}[0-9a-f]{24}$"


def seedance(**options: Any) -> SimConfig:
    settings: dict[str, Any] = {
        "protocol": "seedance",
        "prefix": "/api/v3",
        "job_seconds": 1.0,
        "api_key": KEY,
        **options,
    }
    return SimConfig(**settings)


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with running_in_thread(seedance()) as simulator:
        yield simulator


@pytest.fixture
def ark(sim: RunningSimulator) -> Iterator[Ark]:
    client = Ark(base_url=sim.base_url, api_key=KEY, max_retries=0)
    yield client
    client.close()


def wait(
    ark: Ark, task_id: str, *, leaving: tuple[str, ...] = ("queued", "running")
) -> ContentGenerationTask:
    deadline = time.monotonic() + 10
    while True:
        found = ark.content_generation.tasks.get(task_id=task_id)
        if found.status not in leaving or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def error_body(caught: pytest.ExceptionInfo[ArkAPIStatusError]) -> dict[str, Any]:
    """The ``error`` object as the SDK hands it over (it unwraps the envelope)."""
    body = caught.value.body
    assert isinstance(body, dict)
    assert set(body) == {"code", "message", "param", "type"}
    return body


def test_a_task_from_create_to_a_playable_video(sim: RunningSimulator, ark: Ark) -> None:
    created = ark.content_generation.tasks.create(
        model=MODEL,
        content=[
            TEXT,
            {
                "type": "image_url",
                "image_url": {"url": "https://img.example/f.png"},
                "role": "first_frame",
            },
        ],
        ratio="9:16",
        duration=6,
        resolution="480p",
        seed=11,
        generate_audio=False,
        watermark=False,
    )
    assert created.id.startswith("cgt-") and len(created.id) == len("cgt-20261001120000-abcde")
    first = ark.content_generation.tasks.get(task_id=created.id)
    assert first.status == "queued"
    assert first.content is None and first.usage is None and first.error is None
    done = wait(ark, created.id)
    assert done.status == "succeeded"
    assert done.error is None
    assert (done.model, done.ratio, done.duration, done.resolution) == (MODEL, "9:16", 6, "480p")
    assert (done.seed, done.generate_audio, done.framespersecond) == (11, False, 24)
    assert (done.service_tier, done.execution_expires_after, done.draft) == (
        "default",
        172800,
        False,
    )
    assert done.usage.completion_tokens == done.usage.total_tokens == 6 * 496 * 864 * 24 // 1024
    assert done.updated_at >= done.created_at
    url = done.content.video_url
    assert url.startswith(f"{sim.origin}/ark-content-generation/{MODEL}/{created.id}.mp4?")
    video = httpx.get(url)  # pre-signed: no key needed
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(video.content)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name in ("h264", "vp9")
        # The clip keeps the requested 9:16 at the simulator's 320 px width.
        assert (stream.codec_context.width, stream.codec_context.height) == (320, 558)
    part = httpx.get(url, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == video.content[10:20]
    stats = httpx.get(f"{sim.origin}/_sim/stats").json()
    assert stats["requests"]["POST /contents/generations/tasks"] >= 1
    assert stats["requests"]["GET /contents/generations/tasks/{task_id}"] >= 2


def test_defaults_and_the_last_frame(ark: Ark) -> None:
    created = ark.content_generation.tasks.create(
        model="dreamina-seedance-2-5-260628", content=[TEXT], duration=-1, return_last_frame=True
    )
    done = wait(ark, created.id)
    assert (done.ratio, done.duration, done.resolution, done.generate_audio) == (
        "16:9",
        5,
        "720p",
        True,
    )
    frame = httpx.get(done.content.last_frame_url)
    assert frame.status_code == 200 and frame.content[8:12] == b"WEBP"


@pytest.mark.parametrize(
    ("prompt", "status", "code"),
    [
        ("[fail] a duel", "failed", "OutputVideoSensitiveContentDetected"),
        ("[error] a storm", "failed", "InternalServiceError"),
        ("[expired] a long queue", "expired", None),
    ],
)
def test_failed_and_expired_tasks(ark: Ark, prompt: str, status: str, code: str | None) -> None:
    created = ark.content_generation.tasks.create(
        model=MODEL, content=[{"type": "text", "text": prompt}]
    )
    done = wait(ark, created.id)
    assert done.status == status
    assert done.content is None and done.usage is None
    assert (done.error.code if done.error else None) == code


def test_list_filters_and_pages(ark: Ark) -> None:
    ids = [
        ark.content_generation.tasks.create(model=MODEL, content=[TEXT]).id,
        ark.content_generation.tasks.create(
            model="dreamina-seedance-2-0-fast-260128", content=[TEXT]
        ).id,
    ]
    mine = ark.content_generation.tasks.list(task_ids=ids, page_size=10)
    assert mine.total == 2
    assert [item.id for item in mine.items] == ids[::-1]  # newest first
    fast = ark.content_generation.tasks.list(
        model="dreamina-seedance-2-0-fast-260128", page_size=500
    )
    assert ids[1] in [item.id for item in fast.items] and ids[0] not in [i.id for i in fast.items]
    wait(ark, ids[0])
    done = ark.content_generation.tasks.list(status="succeeded", task_ids=ids)
    assert ids[0] in [item.id for item in done.items]
    assert all(item.status == "succeeded" and item.content.video_url for item in done.items)
    second_page = ark.content_generation.tasks.list(task_ids=ids, page_num=2, page_size=1)
    assert (second_page.total, [item.id for item in second_page.items]) == (2, [ids[0]])


def test_delete_cancels_queued_refuses_running_and_deletes_finished(
    sim: RunningSimulator, ark: Ark
) -> None:
    with (
        running_in_thread(seedance(job_seconds=3.0)) as slow,  # queued for 0.3 s
        Ark(base_url=slow.base_url, api_key=KEY, max_retries=0) as slow_ark,
    ):
        tasks = slow_ark.content_generation.tasks
        queued = tasks.create(model=MODEL, content=[TEXT]).id
        tasks.delete(queued)
        assert tasks.get(task_id=queued).status == "cancelled"
        assert queued in [i.id for i in tasks.list(status="cancelled").items]
        with pytest.raises(ArkBadRequestError) as refused:
            tasks.delete(queued)  # a cancelled task cannot be deleted
        assert error_body(refused)["code"] == "InvalidParameter"

        running = tasks.create(model=MODEL, content=[TEXT]).id
        assert wait(slow_ark, running, leaving=("queued",)).status == "running"
        with pytest.raises(ArkBadRequestError) as refused:
            tasks.delete(running)
        body = error_body(refused)
        assert (body["code"], body["param"], body["type"]) == (
            "InvalidParameter",
            "id",
            "BadRequest",
        )
        assert "is running and cannot be cancelled" in body["message"]
        assert tasks.get(task_id=running).status == "running"

    finished = wait(ark, ark.content_generation.tasks.create(model=MODEL, content=[TEXT]).id)
    assert finished.status == "succeeded"
    deleted = httpx.delete(
        f"{sim.base_url}/contents/generations/tasks/{finished.id}",
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert (deleted.status_code, deleted.json()) == (200, {})
    with pytest.raises(ArkNotFoundError) as gone:
        ark.content_generation.tasks.get(task_id=finished.id)
    assert error_body(gone)["type"] == "NotFound"


@pytest.mark.parametrize(
    ("changes", "status", "code", "param"),
    [
        ({"ratio": "5:4"}, 400, "InvalidParameter", "ratio"),
        ({"duration": 16}, 400, "InvalidParameter", "duration"),
        ({"duration": "5"}, 400, "InvalidParameter", "duration"),
        ({"resolution": "4k"}, 400, "InvalidParameter", "resolution"),
        ({"seed": -2}, 400, "InvalidParameter", "seed"),
        ({"execution_expires_after": 60}, 400, "InvalidParameter", "execution_expires_after"),
        ({"service_tier": "turbo"}, 400, "InvalidParameter", "service_tier"),
        ({"generate_audio": "yes"}, 400, "InvalidParameter", "generate_audio"),
        ({"model": "seedance-9"}, 404, "InvalidEndpointOrModel.NotFound", "model"),
        ({"content": []}, 400, "InvalidParameter", "content"),
        ({"content": [{"type": "gif"}]}, 400, "InvalidParameter", "content.type"),
        (
            {
                "content": [
                    TEXT,
                    {"type": "image_url", "image_url": {"url": "u"}, "role": "last_frame"},
                ]
            },
            400,
            "InvalidParameter",
            "content.role",
        ),
        (
            {
                "content": [
                    {"type": "image_url", "image_url": {"url": "a"}, "role": "first_frame"},
                    {"type": "image_url", "image_url": {"url": "b"}, "role": "reference_image"},
                ]
            },
            400,
            "InvalidParameter",
            "content.role",
        ),
        (
            {"content": [{"type": "text", "text": "[blocked] x"}]},
            400,
            "InputTextSensitiveContentDetected",
            "content",
        ),
    ],
)
def test_refusals_in_arks_envelope(
    ark: Ark, changes: dict[str, Any], status: int, code: str, param: str
) -> None:
    fields: dict[str, Any] = {"model": MODEL, "content": [TEXT], **changes}
    with pytest.raises(ArkAPIStatusError) as caught:
        ark.content_generation.tasks.create(**fields)
    assert caught.value.status_code == status
    body = error_body(caught)
    assert (body["code"], body["param"]) == (code, param)
    assert body["type"] == ("NotFound" if status == 404 else "BadRequest")
    assert re.search(REQUEST_ID, body["message"]) is not None


def test_missing_content_is_a_missing_parameter(sim: RunningSimulator) -> None:
    answer = httpx.post(
        f"{sim.base_url}/contents/generations/tasks",
        json={"model": MODEL},
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert (error["code"], error["param"], error["type"]) == (
        "MissingParameter",
        "content",
        "BadRequest",
    )


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_the_key_is_checked(sim: RunningSimulator, key: str | None) -> None:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    answer = httpx.get(f"{sim.base_url}/contents/generations/tasks", headers=headers)
    assert answer.status_code == 401
    error = answer.json()["error"]
    assert (error["code"], error["type"], error["param"]) == (
        "AuthenticationError",
        "Unauthorized",
        "",
    )
    assert error["message"].startswith("The API key or AK/SK in the request is missing or invalid.")
    with (
        Ark(base_url=sim.base_url, api_key="wrong-key", max_retries=0) as ark,
        pytest.raises(ArkAuthenticationError) as caught,
    ):
        ark.content_generation.tasks.list()
    assert caught.value.code == "AuthenticationError"


@pytest.fixture
def faults(sim: RunningSimulator) -> Iterator[httpx.Client]:
    control = httpx.Client(base_url=f"{sim.origin}/_sim")
    yield control
    control.post(
        "/faults",
        json={"error_429_rate": 0, "error_500_rate": 0, "error_503_rate": 0, "garbage_rate": 0},
    )
    control.close()


def test_injected_faults_speak_arks_words(
    sim: RunningSimulator, ark: Ark, faults: httpx.Client
) -> None:
    faults.post("/faults", json={"error_429_rate": 1, "retry_after_seconds": 2})
    with pytest.raises(ArkRateLimitError) as limited:
        ark.content_generation.tasks.create(model=MODEL, content=[TEXT])
    assert error_body(limited)["code"] == "RateLimitExceeded.EndpointRPMExceeded"
    assert error_body(limited)["type"] == "TooManyRequests"
    assert limited.value.response.headers["retry-after"] == "2"

    faults.post("/faults", json={"error_429_rate": 0, "error_500_rate": 1})
    with pytest.raises(ArkInternalServerError) as broken:
        ark.content_generation.tasks.list()
    assert error_body(broken)["code"] == "InternalServiceError"

    faults.post(
        "/faults", json={"error_500_rate": 0, "error_503_rate": 1, "retry_after_503_seconds": 1}
    )
    with pytest.raises(ArkInternalServerError) as busy:
        ark.content_generation.tasks.list()
    assert busy.value.status_code == 503
    assert error_body(busy)["code"] == "ServerOverloaded"
    assert busy.value.response.headers["retry-after"] == "1"

    faults.post("/faults", json={"error_503_rate": 0, "garbage_rate": 1})
    garbled = httpx.get(
        f"{sim.base_url}/contents/generations/tasks", headers={"Authorization": f"Bearer {KEY}"}
    )
    assert garbled.status_code == 200 and garbled.content.startswith(b"<html>")
    stats = faults.get("/stats").json()
    assert stats["faultsInjected"]["error429"] >= 1 and stats["faultsInjected"]["garbage"] >= 1


def test_video_urls_are_signed_and_expire() -> None:
    with (
        running_in_thread(seedance(job_seconds=0.3, expires_after_seconds=5.0)) as short,
        Ark(base_url=short.base_url, api_key=KEY, max_retries=0) as ark,
    ):
        done = wait(ark, ark.content_generation.tasks.create(model=MODEL, content=[TEXT]).id)
        url = done.content.video_url
        assert "X-Tos-Expires=5&" in url and "X-Tos-Signature=" in url
        assert httpx.get(url).status_code == 200
        unsigned = httpx.get(url.split("?")[0])
        assert unsigned.status_code == 403 and unsigned.json()["Code"] == "AccessDenied"
        forged = httpx.get(url.replace("X-Tos-Expires=5", "X-Tos-Expires=86400"))
        assert forged.status_code == 403 and forged.json()["Code"] == "SignatureDoesNotMatch"
        signed = parse_qs(urlsplit(url).query)["X-Tos-Date"][0]
        lapses = calendar.timegm(time.strptime(signed, "%Y%m%dT%H%M%SZ")) + 5
        time.sleep(max(0.0, lapses - time.time()) + 0.05)
        expired = httpx.get(url)
        assert expired.status_code == 403
        assert {k: expired.json()[k] for k in ("Code", "Message")} == {
            "Code": "AccessDenied",
            "Message": "Request has expired",
        }
        # The task itself still reads, with the same (now dead) URL.
        assert ark.content_generation.tasks.get(task_id=done.id).content.video_url == url
