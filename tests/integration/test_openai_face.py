"""The official ``openai`` SDK pointed at a real vidgate process (``base_url=.../v1``) runs
its ``videos`` API unchanged: create_and_poll, retrieve, list with pagination,
download_content, delete. Answers are checked against the spec's own schemas (a copy of
its video schemas sits next to this file), errors against OpenAI's envelope, in mode
``none`` and in mode ``apikey`` (where one user never sees another's videos)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import openai
import pytest
from jsonschema import Draft202012Validator

from tests.databases import DATABASES
from tests.integration.test_auth import create_key
from tests.support import StartVidgate, VidgateServer, launch_vidgate

pytestmark = pytest.mark.filterwarnings(
    # The SDK marks the videos API deprecated (OpenAI's own service); not ours to heed.
    "ignore:The Sora API is scheduled to permanently shut down:DeprecationWarning"
)

SPEC = json.loads((Path(__file__).with_name("openai_video_schemas.json")).read_text())
database_kind = pytest.fixture(params=DATABASES)(lambda request: request.param)


def assert_shape(name: str, body: Any) -> None:
    """``body`` is valid against the spec's component schema ``name``."""
    schema = {"$ref": f"#/components/schemas/{name}", "components": SPEC["components"]}
    errors = sorted(Draft202012Validator(schema).iter_errors(body), key=str)
    assert not errors, [e.message for e in errors]


def assert_openai_error(response: httpx.Response, status: int, code: str | None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"]
    assert body["error"]["code"] == code


def probe_mp4(data: bytes) -> tuple[str, int]:
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.video[0]
        return stream.codec_context.name, len(list(container.decode(stream)))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VidgateServer]:
    """Demo mode (the built-in simulator upstream, 1 s jobs), auth mode ``none``."""
    vidgate = launch_vidgate(tmp_path_factory.mktemp("openai-face"), job_seconds=1.0)
    yield vidgate
    vidgate.stop()


@pytest.fixture
def client(server: VidgateServer) -> Iterator[openai.OpenAI]:
    # Mode none ignores the key, but the SDK insists on having one.
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0) as sdk:
        yield sdk


@pytest.fixture
def http(server: VidgateServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as raw:
        yield raw


def test_create_and_poll_retrieve_download(client: openai.OpenAI, http: httpx.Client) -> None:
    video = client.videos.create_and_poll(
        prompt="A calico cat playing a piano on stage", seconds="4", size="1280x720"
    )
    assert video.status == "completed", video
    assert video.id.startswith("video_")
    assert (video.progress, video.seconds, video.size, video.model) == (
        100,
        "4",
        "1280x720",
        "sora-2",
    )
    assert video.error is None and video.completed_at is not None
    assert video.completed_at >= video.created_at

    raw = http.get(f"/v1/videos/{video.id}").json()
    assert_shape("VideoResource", raw)
    # Both ids name the task: vidgate's as ``id``, the upstream's beside it.
    task = http.get(f"/api/video/tasks/{video.id}").json()["data"]
    assert raw["external_video_id"] == task["externalVideoId"] is not None
    assert task["status"] == "COMPLETED" and task["prompt"] == video.prompt
    assert "openai-poll-after-ms" not in http.get(f"/v1/videos/{video.id}").headers

    content = client.videos.download_content(video.id)
    codec, frames = probe_mp4(content.read())
    assert codec == "h264" and frames > 0
    ranged = http.get(f"/v1/videos/{video.id}/content", headers={"Range": "bytes=0-99"})
    assert ranged.status_code == 206 and len(ranged.content) == 100


def test_a_running_video_tells_the_poller_when_to_look_again(http: httpx.Client) -> None:
    created = http.post("/v1/videos", json={"prompt": "slow clouds", "seconds": "8"})
    assert created.status_code == 200, created.text
    body = created.json()
    assert_shape("VideoResource", body)
    assert (body["status"], body["progress"], body["completed_at"]) == ("queued", 0, None)
    answer = http.get(f"/v1/videos/{body['id']}")
    if answer.json()["status"] in ("queued", "in_progress"):
        assert 200 <= int(answer.headers["openai-poll-after-ms"]) <= 2000


def test_failed_and_cancelled_videos_read_as_failed(
    client: openai.OpenAI, http: httpx.Client
) -> None:
    failed = client.videos.create_and_poll(prompt="[fail] a banned scene", poll_interval_ms=200)
    assert failed.status == "failed"
    assert failed.error is not None and failed.error.message
    assert failed.error.code == "moderation_blocked"  # the upstream's own code
    # A video cancelled through vidgate's own API ends "failed" here, error "cancelled".
    video = client.videos.create(prompt="a long river")
    assert http.post(f"/api/video/tasks/{video.id}/cancel").status_code == 200
    after = client.videos.retrieve(video.id)
    assert after.status == "failed"
    assert after.error is not None and after.error.code == "cancelled"
    assert after.completed_at is not None


def test_list_pages_by_after_in_both_orders(client: openai.OpenAI, http: httpx.Client) -> None:
    mine = [client.videos.create(prompt=f"page item {n}").id for n in range(3)]
    ascending = [v.id for v in client.videos.list(limit=1, order="asc")]  # auto-paginates
    assert [i for i in ascending if i in mine] == mine
    descending = [v.id for v in client.videos.list(limit=2)]  # desc is the default
    assert [i for i in descending if i in mine] == mine[::-1]
    assert descending == ascending[::-1]

    first = http.get("/v1/videos", params={"limit": 2, "order": "asc", "after": mine[0]}).json()
    assert_shape("VideoListResource", first)
    assert [v["id"] for v in first["data"]] == mine[1:]
    assert (first["first_id"], first["last_id"]) == (mine[1], mine[2])
    last = http.get("/v1/videos", params={"order": "asc", "after": mine[2]}).json()
    assert last["data"] == [] and last["has_more"] is False
    assert (last["first_id"], last["last_id"]) == (None, None)
    none = http.get("/v1/videos", params={"limit": 0}).json()
    assert none["data"] == [] and none["has_more"] is True
    assert_openai_error(
        http.get("/v1/videos", params={"after": "video_nope"}), 404, "task_not_found"
    )


def test_delete_cancels_and_hides_the_video(client: openai.OpenAI, http: httpx.Client) -> None:
    video = client.videos.create(prompt="to be deleted", seconds="12")
    deleted = client.videos.delete(video.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (video.id, True, "video.deleted")
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(video.id)
    with pytest.raises(openai.NotFoundError):
        client.videos.delete(video.id)
    with pytest.raises(openai.NotFoundError):
        client.videos.download_content(video.id)
    assert video.id not in [v.id for v in client.videos.list(limit=100)]
    assert http.get(f"/api/video/tasks/{video.id}").status_code == 404
    assert video.id not in [
        t["videoId"] for t in http.get("/api/video/tasks").json()["data"]["items"]
    ]
    # Deleting what one pages through (the SDK asks for the page after the last id seen,
    # deleted meanwhile) still reaches the next page.
    older = client.videos.create(prompt="listed after a deleted one")
    newer = client.videos.create(prompt="deleted while paging")
    (seen,) = client.videos.list(limit=1).data
    assert seen.id == newer.id
    client.videos.delete(newer.id)
    after = http.get("/v1/videos", params={"limit": 1, "after": newer.id})
    assert after.status_code == 200, after.text
    assert [v["id"] for v in after.json()["data"]] == [older.id]

    done = client.videos.create_and_poll(prompt="finished, then deleted", poll_interval_ms=200)
    raw = http.delete(f"/v1/videos/{done.id}")
    assert raw.status_code == 200
    assert_shape("DeletedVideoResource", raw.json())
    assert_openai_error(http.get(f"/v1/videos/{done.id}/content"), 404, "task_not_found")


def test_bad_input_gets_openai_errors(client: openai.OpenAI, http: httpx.Client) -> None:
    bad: Any = "10"
    with pytest.raises(openai.BadRequestError) as caught:
        client.videos.create(prompt="x", seconds=bad)
    assert caught.value.param == "seconds" and caught.value.code == "unsupported_parameter"
    with pytest.raises(openai.NotFoundError) as caught:  # as OpenAI answers it
        client.videos.create(prompt="x", model="no-such-model")
    assert caught.value.param == "model" and caught.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as caught:
        client.videos.create(prompt="x", input_reference=("cat.png", b"\x89PNG....", "image/png"))
    assert caught.value.param == "input_reference"
    # The SDK cannot send the object form; a client sends it as bracketed multipart fields.
    private = {"prompt": (None, "x"), "input_reference[image_url]": (None, "http://127.0.0.1/a")}
    refused = http.post("/v1/videos", files=private)
    assert_openai_error(refused, 400, "validation_error")
    assert refused.json()["error"]["param"] == "input_reference"
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve("video_00000000-0000-4000-8000-000000000000")
    with pytest.raises(openai.BadRequestError):
        client.videos.remix("video_nope", prompt="again")

    running = client.videos.create(prompt="not yet")
    assert_openai_error(http.get(f"/v1/videos/{running.id}/content"), 404, "video_not_ready")
    thumb = http.get(f"/v1/videos/{running.id}/content", params={"variant": "thumbnail"})
    assert_openai_error(thumb, 404, "variant_not_available")
    bogus = http.get(f"/v1/videos/{running.id}/content", params={"variant": "gif"})
    assert_openai_error(bogus, 400, "invalid_value")

    for response, status, code in [
        (http.post("/v1/videos", json={}), 400, "missing_required_parameter"),
        (
            http.post("/v1/videos", content=b"{nope", headers={"content-type": "application/json"}),
            400,
            "invalid_json",
        ),
        (http.post("/v1/videos", json=["a"]), 400, "invalid_json"),
        (http.post("/v1/videos", json={"prompt": ""}), 400, "invalid_value"),
        (http.post("/v1/videos", json={"prompt": 5}), 400, "invalid_value"),
        (http.post("/v1/videos", json={"prompt": "x", "size": "big"}), 400, "invalid_value"),
        (
            http.post("/v1/videos", json={"prompt": "x", "input_reference": "x"}),
            400,
            "invalid_type",
        ),
        (
            http.post("/v1/videos", json={"prompt": "x", "input_reference": {"file_id": "file-1"}}),
            400,
            "unsupported_parameter",
        ),
        (
            http.post(
                "/v1/videos",
                json={"prompt": "x", "input_reference": {"image_url": "data:image/png;base64,AA"}},
            ),
            400,
            "invalid_value",
        ),
        (http.get("/v1/videos", params={"limit": 101}), 400, "invalid_value"),
        (http.get("/v1/videos", params={"limit": "x"}), 400, "invalid_value"),
        (http.get("/v1/videos", params={"order": "sideways"}), 400, "invalid_value"),
        (http.get("/v1/videos/characters"), 404, "task_not_found"),
        (http.get("/v1/videos/characters/char_1"), 404, "unknown_url"),
        (http.post("/v1/videos/edits", json={"prompt": "x"}), 400, "not_supported"),
        (http.post("/v1/videos/characters", json={"name": "x"}), 400, "not_supported"),
        (http.post("/v1/videos/nope", json={"prompt": "x"}), 405, "method_not_allowed"),
        (http.put("/v1/videos", json={"prompt": "x"}), 405, "method_not_allowed"),
        (http.get("/v1/nothing"), 404, "unknown_url"),
        (
            http.post("/v1/videos", json={"prompt": "x"}, headers={"Idempotency-Key": ""}),
            400,
            "invalid_idempotency_key",
        ),
    ]:
        assert_openai_error(response, status, code)


def test_idempotency_key_replays_the_same_video(client: openai.OpenAI) -> None:
    headers = {"Idempotency-Key": "openai-face-once"}
    first = client.videos.with_raw_response.create(prompt="once", extra_headers=headers)
    again = client.videos.with_raw_response.create(prompt="once", extra_headers=headers)
    assert again.parse().id == first.parse().id
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        client.videos.create(prompt="another body", extra_headers=headers)
    assert caught.value.code == "idempotency_key_reused"


# ------------------------------------------------------------------------------ apikey mode


def test_apikey_mode_keeps_users_apart(start_vidgate: StartVidgate) -> None:
    server = start_vidgate(
        job_seconds=1.0,
        VIDGATE_AUTH_MODE="apikey",
        VIDGATE_USERS=json.dumps({"bob": {"active_tasks": 1}}),
    )
    base = f"{server.url}/v1"
    (_, alice_key), (_, bob_key) = create_key(server, "alice"), create_key(server, "bob")
    with (
        openai.OpenAI(base_url=base, api_key=alice_key, max_retries=0) as alice,
        openai.OpenAI(base_url=base, api_key=bob_key, max_retries=0) as bob,
        openai.OpenAI(base_url=base, api_key="vg_000000000000_" + "x" * 43, max_retries=0) as bad,
    ):
        with pytest.raises(openai.AuthenticationError):
            bad.videos.list()
        video = alice.videos.create_and_poll(prompt="alice's fox", poll_interval_ms=200)
        assert video.status == "completed"
        gone = alice.videos.create(prompt="alice deletes this")
        alice.videos.delete(gone.id)

        with pytest.raises(openai.NotFoundError):
            bob.videos.retrieve(video.id)
        with pytest.raises(openai.NotFoundError):
            bob.videos.download_content(video.id)
        with pytest.raises(openai.NotFoundError):
            bob.videos.delete(video.id)
        with pytest.raises(openai.NotFoundError):
            bob.videos.list(after=video.id)
        assert bob.videos.list().data == []
        assert [v.id for v in alice.videos.list()] == [video.id]  # the deleted one is gone
        more = [alice.videos.create(prompt=f"alice {n}").id for n in range(2)]
        paged = [v.id for v in alice.videos.list(limit=1, order="asc")]
        assert paged == [video.id, *more]

        # Bob's quota holds here as on /api: one unfinished video at a time.
        bob.videos.create(prompt="bob's first")
        with pytest.raises(openai.RateLimitError) as caught:
            bob.videos.create(prompt="bob's second")
        assert caught.value.code == "active_task_limit"
        assert int(caught.value.response.headers["retry-after"]) >= 1
    no_auth = httpx.get(f"{base}/videos", timeout=10)
    assert_openai_error(no_auth, 401, "auth_required")
    assert no_auth.headers["www-authenticate"] == "Bearer"
    assert alice_key not in server.output() and bob_key not in server.output()
