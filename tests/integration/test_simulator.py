"""The upstream simulator over real sockets: lifecycle, media, validation, faults, control."""

from __future__ import annotations

import asyncio
import io
import random
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import av
import httpx
import pytest
import typer
from typer.testing import CliRunner

from vidgate.simulator import cli, faults, hostile
from vidgate.simulator.config import SimConfig
from vidgate.simulator.server import RunningSimulator, running_in_thread, start

VIDEO_KEYS = {
    "id",
    "object",
    "model",
    "status",
    "progress",
    "created_at",
    "completed_at",
    "expires_at",
    "prompt",
    "size",
    "seconds",
    "remixed_from_video_id",
    "error",
}


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with running_in_thread(SimConfig(job_seconds=0.3)) as simulator:
        yield simulator


@pytest.fixture
def client(sim: RunningSimulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.base_url, timeout=10) as http:
        yield http


def stats(sim: RunningSimulator) -> dict[str, Any]:
    response = httpx.get(f"{sim.origin}/_sim/stats")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def set_faults(sim: RunningSimulator, **changes: float) -> dict[str, Any]:
    response = httpx.post(f"{sim.origin}/_sim/faults", json=changes)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def create(client: httpx.Client, prompt: str = "a calico cat", **fields: Any) -> dict[str, Any]:
    response = client.post("/videos", json={"prompt": prompt, **fields})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def wait_for(
    client: httpx.Client, video_id: str, statuses: set[str], timeout: float = 10
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = client.get(f"/videos/{video_id}").json()
        if body["status"] in statuses or time.monotonic() > deadline:
            return body
        time.sleep(0.02)


def probe_mp4(data: bytes) -> tuple[str, float, int]:
    """(codec, duration in seconds, decoded frame count) of an MP4 held in memory."""
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.video[0]
        assert container.duration is not None
        duration = container.duration / av.time_base
        frames = len(list(container.decode(stream)))
        return stream.codec_context.name, duration, frames


def envelope(message: str, param: str | None, code: str | None) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": param,
            "code": code,
        }
    }


# --- lifecycle and media -----------------------------------------------------------------


def test_job_moves_queued_in_progress_completed_with_rising_progress() -> None:
    with (
        running_in_thread(SimConfig(job_seconds=1.0)) as simulator,
        httpx.Client(base_url=simulator.base_url) as http,
    ):
        created = create(http, "a lighthouse at dusk", seconds="8", size="1280x720")
        assert created == {
            "id": created["id"],
            "object": "video",
            "model": "sora-2",
            "status": "queued",
            "progress": 0,
            "created_at": created["created_at"],
            "completed_at": None,
            "expires_at": None,
            "prompt": "a lighthouse at dusk",
            "size": "1280x720",
            "seconds": "8",
            "remixed_from_video_id": None,
            "error": None,
        }
        assert created["id"].startswith("video_") and len(created["id"]) == 6 + 32
        assert abs(created["created_at"] - time.time()) < 5

        seen = [("queued", 0)]
        while seen[-1][0] != "completed":
            body = http.get(f"/videos/{created['id']}").json()
            assert set(body) == VIDEO_KEYS
            seen.append((body["status"], body["progress"]))
            assert len(seen) < 500
            time.sleep(0.02)

    statuses = [status for status, _ in seen]
    progress = [value for _, value in seen]
    assert statuses[0] == "queued"
    assert "in_progress" in statuses
    # Statuses only move forward, progress never goes back.
    order = ["queued", "in_progress", "completed"]
    assert [order.index(s) for s in statuses] == sorted(order.index(s) for s in statuses)
    assert progress == sorted(progress)
    assert progress[-1] == 100
    running = [value for status, value in seen if status == "in_progress"]
    assert all(0 <= value <= 99 for value in running)
    assert len(set(running)) > 3  # progress visibly rises while the job runs
    assert body["completed_at"] is not None
    assert body["expires_at"] == body["completed_at"] + 3600
    assert body["error"] is None


def test_content_before_completion_is_404_then_real_media(
    sim: RunningSimulator, client: httpx.Client
) -> None:
    video = create(client, "neon koi in a pond")
    early = client.get(f"/videos/{video['id']}/content")
    assert early.status_code == 404
    assert early.json()["error"]["param"] == "video_id"
    assert wait_for(client, video["id"], {"completed"})["status"] == "completed"

    mp4 = client.get(f"/videos/{video['id']}/content")
    assert mp4.status_code == 200
    assert mp4.headers["content-type"] == "video/mp4"
    assert mp4.headers["accept-ranges"] == "bytes"
    assert mp4.content[4:8] == b"ftyp"
    # +faststart: the moov atom precedes the media data.
    assert mp4.content.index(b"moov") < mp4.content.index(b"mdat")
    codec, duration, frames = probe_mp4(mp4.content)
    assert codec == "h264"
    assert duration > 0
    assert frames > 0

    thumbnail = client.get(f"/videos/{video['id']}/content", params={"variant": "thumbnail"})
    assert thumbnail.headers["content-type"] == "image/webp"
    assert thumbnail.content[:4] == b"RIFF" and thumbnail.content[8:12] == b"WEBP"

    sprites = client.get(f"/videos/{video['id']}/content", params={"variant": "spritesheet"})
    assert sprites.headers["content-type"] == "image/jpeg"
    assert sprites.content[:3] == b"\xff\xd8\xff"

    # The same prompt renders the same bytes; media are cached, not re-rendered differently.
    assert client.get(f"/videos/{video['id']}/content").content == mp4.content


def test_content_unknown_variant_and_unknown_video(client: httpx.Client) -> None:
    video = create(client)
    bad = client.get(f"/videos/{video['id']}/content", params={"variant": "gif"})
    assert bad.status_code == 400
    assert bad.json() == envelope(
        "Invalid value: 'gif'. Supported values are: 'video', 'thumbnail', and 'spritesheet'.",
        "variant",
        "invalid_value",
    )
    for response in (
        client.get("/videos/video_missing"),
        client.get("/videos/video_missing/content"),
        client.delete("/videos/video_missing"),
    ):
        assert response.status_code == 404
        assert response.json() == envelope(
            "Video with id 'video_missing' not found.", "video_id", None
        )


def test_range_requests(client: httpx.Client) -> None:
    video = create(client, "range me")
    wait_for(client, video["id"], {"completed"})
    url = f"/videos/{video['id']}/content"
    whole = client.get(url).content

    head = client.get(url, headers={"Range": "bytes=0-99"})
    assert head.status_code == 206
    assert head.headers["content-range"] == f"bytes 0-99/{len(whole)}"
    assert head.headers["content-type"] == "video/mp4"
    assert head.content == whole[:100]

    tail = client.get(url, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206
    assert tail.content == whole[-10:]

    rest = client.get(url, headers={"Range": "bytes=100-"})
    assert rest.content == whole[100:]

    beyond = client.get(url, headers={"Range": f"bytes={len(whole)}-"})
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{len(whole)}"


def test_expired_content_is_404() -> None:
    config = SimConfig(job_seconds=0.1, expires_after_seconds=0.2)
    with running_in_thread(config) as simulator, httpx.Client(base_url=simulator.base_url) as http:
        video = create(http)
        assert wait_for(http, video["id"], {"completed"})["status"] == "completed"
        assert http.get(f"/videos/{video['id']}/content").status_code == 200
        time.sleep(0.35)
        expired = http.get(f"/videos/{video['id']}/content")
        assert expired.status_code == 404
        assert "expired" in expired.json()["error"]["message"]


# --- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message", "param", "code"),
    [
        (
            {"prompt": "x", "seconds": "10"},
            "Invalid value: '10'. Supported values are: '4', '8', and '12'.",
            "seconds",
            "invalid_value",
        ),
        (
            {"prompt": "x", "seconds": 4},
            "Invalid type for 'seconds': expected a string, but got an integer instead.",
            "seconds",
            "invalid_type",
        ),
        ({"model": "sora-2"}, "Missing required parameter: 'prompt'.", "prompt", None),
        (
            {"prompt": ""},
            "Invalid 'prompt': string too short. Expected a string with minimum length 1, "
            "but got an empty string instead.",
            "prompt",
            "string_below_min_length",
        ),
        (
            {"prompt": "x" * 32001},
            "Invalid 'prompt': string too long. Expected a string with maximum length 32000, "
            "but got a string with length 32001 instead.",
            "prompt",
            "string_above_max_length",
        ),
        (
            {"prompt": ["x"]},
            "Invalid type for 'prompt': expected a string, but got an array instead.",
            "prompt",
            "invalid_type",
        ),
        (
            {"prompt": "x", "size": "640x480"},
            "Invalid value: '640x480'. Supported values are: "
            "'720x1280', '1280x720', '1024x1792', and '1792x1024'.",
            "size",
            "invalid_value",
        ),
        (
            {"prompt": "x", "size": "1920x1080"},
            "Invalid value: '1920x1080'. Supported values are: "
            "'720x1280', '1280x720', '1024x1792', and '1792x1024'.",
            "size",
            "invalid_value",
        ),
        (
            {"prompt": "x", "model": None},
            "Invalid type for 'model': expected a string, but got null instead.",
            "model",
            "invalid_type",
        ),
        (
            {"prompt": "x", "input_reference": "https://example.com/cat.png"},
            "Invalid type for 'input_reference': expected an object or a file, "
            "but got a string instead.",
            "input_reference",
            "invalid_type",
        ),
        (
            {"prompt": "x", "model": "sora-3"},
            "Invalid value: 'sora-3'. Supported values are: 'sora-2', 'sora-2-pro', "
            "'sora-2-2025-10-06', 'sora-2-pro-2025-10-06', and 'sora-2-2025-12-08'.",
            "model",
            "invalid_value",
        ),
    ],
)
def test_create_validation_errors(
    client: httpx.Client, body: dict[str, Any], message: str, param: str, code: str | None
) -> None:
    response = client.post("/videos", json=body)
    assert response.status_code == 400
    expected_code = "missing_required_parameter" if code is None else code
    assert response.json() == envelope(message, param, expected_code)
    assert response.headers["x-request-id"].startswith("req_")


def test_pro_models_accept_full_hd_and_unknown_fields_are_ignored(client: httpx.Client) -> None:
    video = create(
        client, model="sora-2-pro", size="1920x1080", seconds="12", quality="high", extra={}
    )
    assert (video["model"], video["size"], video["seconds"]) == ("sora-2-pro", "1920x1080", "12")
    assert set(video) == VIDEO_KEYS


def test_malformed_json_is_400(client: httpx.Client) -> None:
    response = client.post(
        "/videos", content=b'{"prompt": "x",', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"].startswith("We could not parse the JSON body of your request.")
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", None, None)


def test_multipart_with_bracketed_fields_and_uploaded_image(client: httpx.Client) -> None:
    by_url = client.post(
        "/videos",
        data={
            "prompt": "from a picture",
            "seconds": "12",
            "size": "1024x1792",
            "input_reference[image_url]": "https://example.com/cat.png",
        },
        files={"unused": ("x.txt", b"x", "text/plain")},
    )
    assert by_url.status_code == 200, by_url.text
    assert (by_url.json()["seconds"], by_url.json()["size"]) == ("12", "1024x1792")

    uploaded = client.post(
        "/videos",
        data={"prompt": "from an upload"},
        files={"input_reference": ("ref.png", b"\x89PNG\r\n\x1a\nfake", "image/png")},
    )
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.json()["prompt"] == "from an upload"

    # Some multipart clients send an object as one JSON-encoded text part.
    encoded = client.post(
        "/videos",
        data={"prompt": "json part", "input_reference": '{"file_id": "file-123"}'},
        files={"unused": ("x.txt", b"x", "text/plain")},
    )
    assert encoded.status_code == 200, encoded.text

    missing = client.post("/videos", data={"seconds": "4"}, files={"x": ("x", b"x")})
    assert missing.json() == envelope(
        "Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter"
    )


def test_every_response_has_a_request_id(sim: RunningSimulator, client: httpx.Client) -> None:
    responses = [
        client.get("/videos"),
        client.get("/videos/video_nope"),
        client.get("/no/such/route"),
        httpx.get(f"{sim.origin}/_sim/stats"),
    ]
    ids = [response.headers["x-request-id"] for response in responses]
    assert all(request_id.startswith("req_") for request_id in ids)
    assert len(set(ids)) == len(ids)
    assert responses[2].json() == envelope(
        f"Invalid URL (GET {sim.config.prefix}/no/such/route)", None, None
    )


def test_wrong_method_is_405_listing_every_allowed_method(client: httpx.Client) -> None:
    response = client.put("/videos")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert client.patch("/videos/video_x").headers["allow"] == "GET, DELETE"


# --- idempotency, list, delete, remix ------------------------------------------------------


def test_idempotency_key_returns_the_same_job(sim: RunningSimulator, client: httpx.Client) -> None:
    before = stats(sim)["jobsCreated"]
    headers = {"Idempotency-Key": "crash-recovery-1"}
    first = client.post("/videos", json={"prompt": "once"}, headers=headers).json()
    again = client.post("/videos", json={"prompt": "once"}, headers=headers).json()
    other = client.post(
        "/videos", json={"prompt": "once"}, headers={"Idempotency-Key": "crash-recovery-2"}
    ).json()
    assert again["id"] == first["id"]
    assert other["id"] != first["id"]
    after = stats(sim)
    assert after["jobsCreated"] == before + 2
    assert after["requests"]["POST /videos"] >= 3


def test_list_pagination_orders_and_cursors() -> None:
    with (
        running_in_thread(SimConfig(job_seconds=5)) as simulator,
        httpx.Client(base_url=simulator.base_url) as http,
    ):
        ids = [create(http, f"clip {n}")["id"] for n in range(5)]
        page = http.get("/videos", params={"limit": 2}).json()
        assert set(page) == {"object", "data", "first_id", "last_id", "has_more"}
        assert page["object"] == "list"
        assert [v["id"] for v in page["data"]] == [ids[4], ids[3]]
        assert (page["first_id"], page["last_id"], page["has_more"]) == (ids[4], ids[3], True)
        assert all(set(v) == VIDEO_KEYS for v in page["data"])

        following = http.get("/videos", params={"limit": 2, "after": page["last_id"]}).json()
        assert [v["id"] for v in following["data"]] == [ids[2], ids[1]]
        last = http.get("/videos", params={"limit": 2, "after": ids[1]}).json()
        assert ([v["id"] for v in last["data"]], last["has_more"]) == ([ids[0]], False)

        ascending = http.get("/videos", params={"order": "asc"}).json()
        assert [v["id"] for v in ascending["data"]] == ids
        assert ascending["has_more"] is False

        empty = http.get("/videos", params={"after": "video_unknown"}).json()
        assert empty == {
            "object": "list",
            "data": [],
            "first_id": None,
            "last_id": None,
            "has_more": False,
        }

        too_many = http.get("/videos", params={"limit": 101})
        assert too_many.status_code == 400
        assert too_many.json()["error"]["param"] == "limit"
        bad_order = http.get("/videos", params={"order": "up"})
        assert bad_order.json() == envelope(
            "Invalid value: 'up'. Supported values are: 'asc' and 'desc'.",
            "order",
            "invalid_value",
        )


def test_delete(client: httpx.Client) -> None:
    video = create(client, "short-lived")
    deleted = client.delete(f"/videos/{video['id']}")
    assert deleted.status_code == 200
    assert deleted.json() == {"id": video["id"], "object": "video.deleted", "deleted": True}
    assert client.get(f"/videos/{video['id']}").status_code == 404
    assert client.delete(f"/videos/{video['id']}").status_code == 404


def test_remix(client: httpx.Client) -> None:
    source = create(client, "a red kite", size="1792x1024", seconds="8")
    too_early = client.post(f"/videos/{source['id']}/remix", json={"prompt": "a blue kite"})
    assert too_early.status_code == 400
    assert too_early.json()["error"]["param"] == "video_id"

    wait_for(client, source["id"], {"completed"})
    no_prompt = client.post(f"/videos/{source['id']}/remix", json={})
    assert no_prompt.json()["error"]["message"] == "Missing required parameter: 'prompt'."

    remix = client.post(f"/videos/{source['id']}/remix", json={"prompt": "a blue kite"})
    assert remix.status_code == 200
    body = remix.json()
    assert set(body) == VIDEO_KEYS
    assert body["id"] != source["id"]
    assert body["remixed_from_video_id"] == source["id"]
    assert (body["prompt"], body["size"], body["seconds"], body["status"]) == (
        "a blue kite",
        "1792x1024",
        "8",
        "queued",
    )
    assert client.post("/videos/video_nope/remix", json={"prompt": "x"}).status_code == 404


# --- prefix, url field, api key ------------------------------------------------------------


def test_prefix_and_url_field_imitate_the_seed_upstream() -> None:
    config = SimConfig(job_seconds=0.2, prefix="sora/v1/", url_field=True)
    with running_in_thread(config) as simulator, httpx.Client(base_url=simulator.origin) as http:
        assert simulator.base_url == f"{simulator.origin}/sora/v1"
        assert http.post("/v1/videos", json={"prompt": "x"}).status_code == 404

        queued = http.post("/sora/v1/videos", json={"prompt": "seed"}).json()
        assert "url" not in queued
        http.base_url = httpx.URL(simulator.base_url)
        done = wait_for(http, queued["id"], {"completed"})
        assert done["url"] == f"/videos/{queued['id']}.mp4"
        assert set(done) == VIDEO_KEYS | {"url"}

        public = httpx.get(simulator.origin + done["url"])
        assert public.status_code == 200
        assert public.headers["content-type"] == "video/mp4"
        assert probe_mp4(public.content)[1] > 0
        ranged = httpx.get(simulator.origin + done["url"], headers={"Range": "bytes=0-1023"})
        assert ranged.status_code == 206
        assert ranged.content == public.content[:1024]
        assert stats(simulator)["requests"]["GET /videos/{video_id}.mp4"] == 2


def test_api_key_is_required_on_api_routes_only() -> None:
    config = SimConfig(job_seconds=0.1, api_key="sk-sim-secret", url_field=True)
    with running_in_thread(config) as simulator, httpx.Client(base_url=simulator.base_url) as http:
        anonymous = http.get("/videos")
        assert anonymous.status_code == 401
        assert anonymous.json()["error"]["message"].startswith("You didn't provide an API key.")

        wrong = http.get("/videos", headers={"Authorization": "Bearer sk-wrong-key-123"})
        assert wrong.status_code == 401
        assert wrong.json() == envelope(
            "Incorrect API key provided: sk-w********-123. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            None,
            "invalid_api_key",
        )

        http.headers["Authorization"] = "Bearer sk-sim-secret"
        video = create(http)
        done = wait_for(http, video["id"], {"completed"})
        # The public url and the control routes need no key.
        assert httpx.get(simulator.origin + done["url"]).status_code == 200
        assert httpx.get(f"{simulator.origin}/_sim/stats").status_code == 200


# --- faults --------------------------------------------------------------------------------


@pytest.fixture
def faulty() -> Iterator[RunningSimulator]:
    with running_in_thread(SimConfig(job_seconds=0.2, seed=7)) as simulator:
        yield simulator


def test_injected_http_faults_are_answered_and_counted(faulty: RunningSimulator) -> None:
    http = httpx.Client(base_url=faulty.base_url, timeout=5)
    with http:
        set_faults(faulty, error_500_rate=1.0)
        response = http.get("/videos")
        assert response.status_code == 500
        assert response.json()["error"]["type"] == "server_error"

        set_faults(faulty, error_500_rate=0.0, error_503_rate=1.0)
        assert http.post("/videos", json={"prompt": "x"}).status_code == 503

        set_faults(faulty, error_503_rate=0.0, error_429_rate=1.0, retry_after_seconds=1.5)
        limited = http.get("/videos")
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "2"
        assert limited.headers["retry-after-ms"] == "1500"
        assert limited.json()["error"]["code"] == "rate_limit_exceeded"

        set_faults(faulty, error_429_rate=0.0, garbage_rate=1.0)
        garbage = http.get("/videos")
        assert garbage.status_code == 200
        with pytest.raises(ValueError):
            garbage.json()

        set_faults(faulty, garbage_rate=0.0, timeout_rate=1.0, hang_seconds=0.5)
        with pytest.raises(httpx.ReadTimeout):
            http.get("/videos", timeout=0.1)

        set_faults(faulty, timeout_rate=0.0)
        assert http.get("/videos").status_code == 200

    counted = stats(faulty)["faultsInjected"]
    assert counted == {
        "error500": 1,
        "error503": 1,
        "error429": 1,
        "timeout": 1,
        "garbage": 1,
        "hostile": 0,
        "jobFail": 0,
        "jobStuck": 0,
    }
    # Control routes are never faulted, even while every API request is.
    set_faults(faulty, error_500_rate=1.0)
    assert httpx.get(f"{faulty.origin}/_sim/stats").status_code == 200


def test_faults_from_config_and_latency() -> None:
    config = SimConfig(error_429_rate=1.0, retry_after_seconds=0.25, latency_ms=150)
    with running_in_thread(config) as simulator:
        started = time.monotonic()
        response = httpx.get(f"{simulator.base_url}/videos")
        assert time.monotonic() - started >= 0.15
        assert response.status_code == 429
        assert (response.headers["retry-after"], response.headers["retry-after-ms"]) == ("1", "250")


def test_failing_and_stuck_jobs(faulty: RunningSimulator) -> None:
    with httpx.Client(base_url=faulty.base_url) as http:
        moderated = create(http, "please [fail] this")
        set_faults(faulty, job_fail_rate=1.0)
        unlucky = create(http, "an ordinary prompt")
        set_faults(faulty, job_fail_rate=0.0)
        stuck = create(http, "forever [stuck]")

        failed = wait_for(http, moderated["id"], {"completed", "failed"})
        assert failed["status"] == "failed"
        assert failed["error"] == {
            "code": "moderation_blocked",
            "message": "Your request was blocked by our moderation system.",
        }
        assert set(failed) == VIDEO_KEYS
        assert failed["completed_at"] is not None and failed["expires_at"] is None
        assert http.get(f"/videos/{moderated['id']}/content").status_code == 404

        other = wait_for(http, unlucky["id"], {"completed", "failed"})
        assert other["status"] == "failed"
        assert other["error"]["code"] == "video_generation_failed"

        time.sleep(0.3)
        still = http.get(f"/videos/{stuck['id']}").json()
        assert (still["status"], still["progress"], still["completed_at"]) == (
            "in_progress",
            99,
            None,
        )
    snapshot = stats(faulty)
    assert snapshot["faultsInjected"]["jobFail"] == 2
    assert snapshot["faultsInjected"]["jobStuck"] == 1
    assert snapshot["jobsByStatus"] == {
        "queued": 0,
        "in_progress": 1,
        "completed": 0,
        "failed": 2,
    }


def test_runtime_fault_settings_and_reset(faulty: RunningSimulator) -> None:
    current = httpx.get(f"{faulty.origin}/_sim/faults").json()
    assert current["error_500_rate"] == 0.0
    assert current["job_seconds"] == 0.2

    updated = set_faults(faulty, error_503_rate=0.25, latency_ms=5, job_seconds=0.1)
    assert (updated["error_503_rate"], updated["latency_ms"], updated["job_seconds"]) == (
        0.25,
        5.0,
        0.1,
    )
    unknown = httpx.post(f"{faulty.origin}/_sim/faults", json={"api_key": "x"})
    assert unknown.status_code == 400
    assert "Unknown setting 'api_key'" in unknown.json()["error"]["message"]
    out_of_range = httpx.post(f"{faulty.origin}/_sim/faults", json={"garbage_rate": 2})
    assert out_of_range.status_code == 400
    assert httpx.get(f"{faulty.origin}/_sim/faults").json()["garbage_rate"] == 0.0

    set_faults(faulty, error_503_rate=0.0)
    httpx.get(f"{faulty.base_url}/videos")
    assert stats(faulty)["requests"] == {"GET /videos": 1}
    reset = httpx.post(f"{faulty.origin}/_sim/reset").json()
    assert (reset["jobsCreated"], reset["requests"], reset["requestsTotal"]) == (0, {}, 0)


def test_seeded_fault_draws_are_reproducible() -> None:
    config = SimConfig(error_500_rate=0.3, garbage_rate=0.3, seed=42)
    rng_a, rng_b = random.Random(config.seed), random.Random(config.seed)
    draws_a = [faults.draw_request_fault(config, rng_a) for _ in range(50)]
    draws_b = [faults.draw_request_fault(config, rng_b) for _ in range(50)]
    assert draws_a == draws_b
    assert set(draws_a) == {faults.Fault.ERROR_500, faults.Fault.GARBAGE, None}


# --- client behaviour: Retry-After compliance, overlapping requests ------------------------


def test_requests_before_retry_after_expires_are_counted_per_key() -> None:
    config = SimConfig(job_seconds=5, retry_after_seconds=0.5, seed=1)
    with (
        running_in_thread(config) as simulator,
        httpx.Client(base_url=simulator.base_url, timeout=5) as http,
    ):
        job = create(http, "a heron")
        other = create(http, "a crane")
        set_faults(simulator, error_429_rate=1.0)
        assert http.get(f"/videos/{job['id']}").status_code == 429
        # Too early, for the same job: a violation, whatever the method.
        assert http.get(f"/videos/{job['id']}").status_code == 429
        assert http.delete(f"/videos/{job['id']}").status_code == 429
        # Another job was never told to wait; its own 429 starts its own clock.
        assert http.get(f"/videos/{other['id']}").status_code == 429
        # Creates are watched by Idempotency-Key; a create without one is not watched.
        keyed = {"Idempotency-Key": "create-1"}
        assert http.post("/videos", json={"prompt": "x"}, headers=keyed).status_code == 429
        assert http.post("/videos", json={"prompt": "x"}, headers=keyed).status_code == 429
        assert http.post("/videos", json={"prompt": "x"}).status_code == 429
        assert http.post("/videos", json={"prompt": "x"}).status_code == 429
        early = stats(simulator)

        set_faults(simulator, error_429_rate=0.0)
        time.sleep(0.55)
        assert http.get(f"/videos/{job['id']}").status_code == 200
        assert http.post("/videos", json={"prompt": "x"}, headers=keyed).status_code == 200
        late = stats(simulator)

    assert early["retryAfterViolations"] == 3
    samples = early["retryAfterViolationSamples"]
    assert [(s["key"], s["route"]) for s in samples] == [
        (job["id"], "GET /videos/{video_id}"),
        (job["id"], "DELETE /videos/{video_id}"),
        ("create-1", "POST /videos"),
    ]
    assert all(0 < s["earlyBySeconds"] <= 0.5 for s in samples)
    # Waiting out the Retry-After is compliant.
    assert late["retryAfterViolations"] == 3
    assert late["faultsInjected"]["error429"] == 8


def test_503_carries_retry_after_only_when_configured() -> None:
    with (
        running_in_thread(SimConfig(job_seconds=5, error_503_rate=1.0)) as simulator,
        httpx.Client(base_url=simulator.base_url, timeout=5) as http,
    ):
        plain = http.get("/videos/video_x")
        assert plain.status_code == 503
        assert "retry-after" not in plain.headers
        assert http.get("/videos/video_x").status_code == 503  # no wait was asked for
        assert stats(simulator)["retryAfterViolations"] == 0

        set_faults(simulator, retry_after_503_seconds=2.5)
        asked = http.get("/videos/video_y")
        assert (asked.headers["retry-after"], asked.headers["retry-after-ms"]) == ("3", "2500")
        http.get("/videos/video_y")
        snapshot = stats(simulator)
        assert snapshot["retryAfterViolations"] == 1
        sample = snapshot["retryAfterViolationSamples"][0]
        assert sample["key"] == "video_y"
        assert 2.0 < sample["earlyBySeconds"] <= 2.5
        reset = httpx.post(f"{simulator.origin}/_sim/reset").json()
        assert (reset["retryAfterViolations"], reset["retryAfterViolationSamples"]) == (0, [])


async def test_requests_in_flight_together_for_one_job_are_overlapping() -> None:
    simulator = await start(SimConfig(job_seconds=5, latency_ms=300))
    try:
        async with httpx.AsyncClient(base_url=simulator.base_url, timeout=5) as http:
            first, second = [
                (await http.post("/videos", json={"prompt": p})).json()["id"] for p in ("a", "b")
            ]
            # One after the other, and together but for different jobs: no overlap.
            await http.get(f"/videos/{first}")
            await http.get(f"/videos/{first}")
            await asyncio.gather(http.get(f"/videos/{first}"), http.get(f"/videos/{second}"))
            assert simulator.stats()["overlappingRequests"] == 0

            together = await asyncio.gather(*(http.get(f"/videos/{first}") for _ in range(3)))
            assert {r.status_code for r in together} == {200}
            keyed = {"Idempotency-Key": "same"}
            creates = await asyncio.gather(
                *(http.post("/videos", json={"prompt": "c"}, headers=keyed) for _ in range(2))
            )
            assert creates[0].json()["id"] == creates[1].json()["id"]
        snapshot = simulator.stats()
        assert snapshot["overlappingRequests"] == 3
        assert [(s["key"], s["route"]) for s in snapshot["overlappingRequestSamples"]] == [
            (first, "GET /videos/{video_id}"),
            (first, "GET /videos/{video_id}"),
            ("same", "POST /videos"),
        ]
        assert snapshot["jobsCreated"] == 3
    finally:
        await simulator.stop()


async def test_a_request_hanging_after_its_client_gave_up_still_overlaps_the_next() -> None:
    simulator = await start(SimConfig(job_seconds=5, hang_seconds=0.6))
    try:
        async with httpx.AsyncClient(base_url=simulator.base_url, timeout=5) as http:
            job = (await http.post("/videos", json={"prompt": "a"})).json()["id"]
            simulator.state.update_runtime({"timeout_rate": 1.0})
            with pytest.raises(httpx.ReadTimeout):
                await http.get(f"/videos/{job}", timeout=0.1)
            simulator.state.update_runtime({"timeout_rate": 0.0})
            assert (await http.get(f"/videos/{job}")).status_code == 200
            assert simulator.stats()["overlappingRequests"] == 1
            await asyncio.sleep(0.7)  # the hung one has been answered by now
            assert (await http.get(f"/videos/{job}")).status_code == 200
            assert simulator.stats()["overlappingRequests"] == 1
    finally:
        await simulator.stop()


# --- hostile answers ---------------------------------------------------------------------


def classify_hostile(response: httpx.Response, truth: dict[str, Any], last: int) -> str:
    """Which variant a hostile answer is, judged from the outside."""
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    if len(response.content) > 1_000_000:
        body = response.json()
        assert len(response.content) > 2_000_000
        return "hugeBody"
    try:
        body = response.json()
    except ValueError:
        return "notJson"
    for key, name in (("status", "missingStatus"), ("progress", "missingProgress")):
        if key not in body:
            return name
    if "id" not in body:
        return "missingId"
    checks = [
        (body["progress"] == "abc", "progressNotANumber"),
        (body["status"] == 5, "statusNotAString"),
        (body["id"] == 123, "idNotAString"),
        (body["status"] == "rendering", "unknownStatus"),
        (body["progress"] == 150, "progressAbove100"),
        (body["progress"] == -5, "progressBelow0"),
        (body["status"] == "completed" and "url" not in body, "completedWithoutUrl"),
        (isinstance(body["progress"], int) and body["progress"] < last, "progressBackwards"),
    ]
    found = [name for matched, name in checks if matched]  # -5 is also below `last`
    assert found, (body, truth)
    return found[0]


def test_hostile_answers_corrupt_only_the_answer_never_the_job() -> None:
    config = SimConfig(job_seconds=2.0, url_field=True, seed=11)
    with (
        running_in_thread(config) as simulator,
        httpx.Client(base_url=simulator.base_url, timeout=10) as http,
    ):
        job = create(http, "a glass harbour")
        time.sleep(0.6)
        truth = http.get(f"/videos/{job['id']}").json()
        assert truth["status"] == "in_progress" and truth["progress"] > 0
        set_faults(simulator, hostile_rate=1.0)
        # Other routes are never hostile, even at rate 1; neither is an unknown job's 404.
        assert http.get("/videos").json()["object"] == "list"
        assert create(http, "still an honest create")["status"] == "queued"
        assert http.get("/videos/video_missing").status_code == 404
        seen = [
            classify_hostile(http.get(f"/videos/{job['id']}"), truth, truth["progress"])
            for _ in range(80)
        ]
        snapshot = stats(simulator)
        set_faults(simulator, hostile_rate=0.0)
        after = http.get(f"/videos/{job['id']}").json()
        assert set(after) == VIDEO_KEYS
        assert after["status"] == "in_progress"
        assert truth["progress"] <= after["progress"] <= 99
        completed = wait_for(http, job["id"], {"completed", "failed"})
        assert completed["status"] == "completed"
        assert completed["url"] == f"/videos/{job['id']}.mp4"

    assert set(seen) == set(snapshot["hostileVariants"])  # every variant, dealt from a deck
    assert snapshot["faultsInjected"]["hostile"] == 80
    assert sum(snapshot["hostileVariants"].values()) == 80
    assert {name: seen.count(name) for name in set(seen)} == {
        name: count for name, count in snapshot["hostileVariants"].items() if count
    }


def test_hostile_variants_are_dealt_evenly_and_only_where_they_apply() -> None:
    deck = hostile.Deck(random.Random(5))
    first_round = [deck.deal(last_progress=0, url_field=False) for _ in range(11)]
    # Every variant that applies, once each, before any repeats.
    assert sorted(first_round) == sorted(
        set(hostile.VARIANTS) - {"progressBackwards", "completedWithoutUrl"}
    )
    # The two that waited for their context are dealt as soon as it is there.
    waiting = {deck.deal(last_progress=30, url_field=True) for _ in range(2)}
    assert waiting == {"progressBackwards", "completedWithoutUrl"}
    assert Counter(deck.deal(last_progress=1, url_field=True) for _ in range(13 * 4)) == {
        variant: 4 for variant in hostile.VARIANTS
    }
    truth = {"id": "video_1", "status": "queued", "progress": 0, "completed_at": None}
    done = hostile.corrupt("completedWithoutUrl", truth, last_progress=0, now=1000.5)
    assert (done["status"], done["progress"], done["completed_at"]) == ("completed", 100, 1000)
    assert "url" not in done
    assert hostile.corrupt("progressBackwards", truth, last_progress=41, now=0)["progress"] == 20


def test_hostile_rate_from_the_cli_env_and_runtime_and_counted_in_the_roll() -> None:
    assert SimConfig.from_env({"VIDGATE_SIM_HOSTILE_RATE": "0.25"}).hostile_rate == 0.25
    assert (
        SimConfig.from_env({"VIDGATE_SIM_RETRY_AFTER_503_SECONDS": "1.5"}).retry_after_503_seconds
        == 1.5
    )
    with pytest.raises(ValueError, match="must not exceed 1"):
        SimConfig(garbage_rate=0.6, hostile_rate=0.6)
    with pytest.raises(ValueError, match="hostile_rate"):
        SimConfig(hostile_rate=-0.1)
    # Last in the roll: seeded draws of the older faults are unchanged by its presence.
    base = SimConfig(error_500_rate=0.2, garbage_rate=0.2, seed=3)
    more = SimConfig(error_500_rate=0.2, garbage_rate=0.2, hostile_rate=0.3, seed=3)
    rng_a, rng_b = random.Random(3), random.Random(3)
    plain = [faults.draw_request_fault(base, rng_a) for _ in range(200)]
    mixed = [faults.draw_request_fault(more, rng_b) for _ in range(200)]
    assert [None if d is faults.Fault.HOSTILE else d for d in mixed] == plain
    assert faults.Fault.HOSTILE in mixed

    app = typer.Typer()
    app.command()(cli.command)
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert "--hostile-rate" in result.output and "VIDGATE_SIM_HOSTILE_RATE" in result.output
    assert "VIDGATE_SIM_RETRY_AFTER_503_SECONDS" in result.output
    rejected = CliRunner().invoke(app, ["--hostile-rate", "0.7", "--garbage-rate", "0.5"])
    assert rejected.exit_code != 0

    with running_in_thread(SimConfig()) as simulator:
        settings = set_faults(simulator, hostile_rate=0.5, retry_after_503_seconds=2)
        assert (settings["hostile_rate"], settings["retry_after_503_seconds"]) == (0.5, 2.0)


def test_sim_jobs_tells_the_exact_truth_whatever_the_faults() -> None:
    with (
        running_in_thread(SimConfig(job_seconds=20.0)) as simulator,
        httpx.Client(base_url=simulator.base_url, timeout=5) as http,
    ):
        done, failing, stuck = (create(http, p) for p in ("ok", "x [fail]", "y [stuck]"))
        set_faults(simulator, error_500_rate=1.0, hostile_rate=0.0)
        truths = [
            httpx.get(f"{simulator.origin}/_sim/jobs/{job['id']}").json()
            for job in (done, failing, stuck)
        ]
        missing = httpx.get(f"{simulator.origin}/_sim/jobs/video_nope")
    assert [(t["outcome"], t["status"]) for t in truths] == [
        ("complete", "queued"),
        ("fail", "queued"),
        ("stuck", "queued"),
    ]
    created = truths[0]["createdAt"]
    assert isinstance(created, float) and int(created) == done["created_at"]
    assert truths[0]["finishesAt"] == pytest.approx(created + 20.0)
    assert truths[1]["finishesAt"] == pytest.approx(truths[1]["createdAt"] + 10.0)
    assert truths[2]["finishesAt"] is None
    assert missing.status_code == 404


# --- config, in-loop server, cli -----------------------------------------------------------


def test_config_from_env_and_validation() -> None:
    config = SimConfig.from_env(
        {
            "VIDGATE_SIM_JOB_SECONDS": "2.5",
            "VIDGATE_SIM_PREFIX": "sora/v1/",
            "VIDGATE_SIM_URL_FIELD": "true",
            "VIDGATE_SIM_API_KEY": "sk-env",
            "VIDGATE_SIM_ERROR_429_RATE": "0.5",
            "VIDGATE_SIM_SEED": "3",
            "UNRELATED": "x",
        }
    )
    assert config == SimConfig(
        job_seconds=2.5,
        prefix="/sora/v1",
        url_field=True,
        api_key="sk-env",
        error_429_rate=0.5,
        seed=3,
    )
    assert SimConfig(prefix="/").prefix == ""
    with pytest.raises(ValueError, match="error_500_rate"):
        SimConfig(error_500_rate=1.5)
    with pytest.raises(ValueError, match="must not exceed 1"):
        SimConfig(error_500_rate=0.6, error_503_rate=0.6)
    with pytest.raises(ValueError, match="VIDGATE_SIM_JOB_SECONDS"):
        SimConfig.from_env({"VIDGATE_SIM_JOB_SECONDS": "soon"})


async def test_start_serves_hundreds_of_jobs_from_the_current_loop() -> None:
    simulator = await start(SimConfig(job_seconds=0.2, prefix=""))
    try:
        assert simulator.base_url == simulator.origin
        async with httpx.AsyncClient(base_url=simulator.base_url) as http:
            created = await asyncio.gather(
                *(http.post("/videos", json={"prompt": f"clip {n % 3}"}) for n in range(200))
            )
            assert {response.status_code for response in created} == {200}
            await asyncio.sleep(0.25)
            ids = [response.json()["id"] for response in created[:6]]
            downloads = await asyncio.gather(*(http.get(f"/videos/{i}/content") for i in ids))
            assert {response.status_code for response in downloads} == {200}
        snapshot = simulator.stats()
        assert snapshot["jobsCreated"] == 200
        assert snapshot["jobsByStatus"]["completed"] == 200
    finally:
        await simulator.stop()
    await simulator.stop()  # idempotent


def test_cli_help_names_every_env_var() -> None:
    app = typer.Typer()
    app.command()(cli.command)
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0
    for variable in (
        "VIDGATE_SIM_HOST",
        "VIDGATE_SIM_PORT",
        "VIDGATE_SIM_JOB_SECONDS",
        "VIDGATE_SIM_PREFIX",
        "VIDGATE_SIM_URL_FIELD",
        "VIDGATE_SIM_API_KEY",
        "VIDGATE_SIM_ERROR_500_RATE",
        "VIDGATE_SIM_ERROR_429_RATE",
        "VIDGATE_SIM_GARBAGE_RATE",
        "VIDGATE_SIM_JOB_STUCK_RATE",
        "VIDGATE_SIM_SEED",
    ):
        assert variable in result.output
