"""The Runway simulator, driven by the official ``runwayml`` SDK as a client of the real
API would drive it, plus raw HTTP where the SDK cannot go (a missing header, a bad body)."""

from __future__ import annotations

import io
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import av
import httpx
import jwt
import pytest
import runwayml
from runwayml.lib import polling

from vidgate.simulator.config import SimConfig
from vidgate.simulator.protocols.runway import tasks as sim_tasks
from vidgate.simulator.server import RunningSimulator, running_in_thread

KEY = "key_" + "0f" * 64
VERSION = "2024-11-06"
IMAGE = "https://images.example.com/heron.png"
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
DOC_URL = "https://docs.dev.runwayml.com/api"


def runway_config(**overrides: Any) -> SimConfig:
    settings: dict[str, Any] = {
        "protocol": "runway",
        "prefix": "",
        "job_seconds": 0.6,
        "api_key": KEY,
        "expires_after_seconds": 600,
        **overrides,
    }
    return SimConfig(**settings)


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with running_in_thread(runway_config()) as simulator:
        yield simulator


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's wait_for_task_output sleeps 6 +- 1.5 s between reads; jobs here last 0.6 s."""
    monkeypatch.setattr(polling, "POLL_TIME", 0.1)
    monkeypatch.setattr(polling, "POLL_JITTER", 0.0)


@pytest.fixture
def client(sim: RunningSimulator) -> Iterator[runwayml.RunwayML]:
    with runwayml.RunwayML(api_key=KEY, base_url=sim.origin, max_retries=0) as sdk:
        yield sdk


def api_headers(**extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY}", "X-Runway-Version": VERSION, **extra}


def probe(data: bytes) -> tuple[str, int, int]:
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.video[0]
        return stream.codec_context.name, stream.width, stream.height


def test_image_to_video_waits_for_output_and_plays(client: runwayml.RunwayML) -> None:
    created = client.image_to_video.create(
        model="gen4_turbo",
        prompt_image=IMAGE,
        prompt_text="A heron lifts off a misty lake",
        ratio="1584:672",
        duration=5,
        seed=42,
    )
    assert uuid.UUID(created.id).version == 4
    # gen4_turbo: 5 credits a second (the SDK's create type omits estimatedCost).
    assert created.to_dict()["estimatedCost"] == {"credits": 25}

    done = created.wait_for_task_output(timeout=20)
    assert isinstance(done, runwayml.types.task_retrieve_response.Succeeded)
    assert done.id == created.id
    assert done.cost.credits == 25
    assert abs((datetime.now(UTC) - done.created_at).total_seconds()) < 10
    (url,) = done.output
    video = httpx.get(url)
    assert video.status_code == 200
    assert video.headers["content-type"] == "video/mp4"
    # The clip keeps the requested shape: 1584:672 rendered 320 px wide.
    assert probe(video.content) == ("h264", 320, 136)


def test_text_to_video_statuses_in_order(client: runwayml.RunwayML) -> None:
    created = client.text_to_video.create(
        model="veo3.1",
        prompt_text="Rain on a tin roof",
        ratio="720:1280",
        duration=4,
        audio=False,
        negative_prompt="people",
    )
    assert created.to_dict()["estimatedCost"] == {"credits": 80}  # veo3.1 silent: 20 a second
    seen: list[Any] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        task = client.tasks.retrieve(created.id)
        seen.append(task)
        if task.status == "SUCCEEDED":
            break
        time.sleep(0.03)
    statuses = [task.status for task in seen]
    assert statuses[-1] == "SUCCEEDED"
    assert statuses == sorted(statuses, key=["PENDING", "RUNNING", "SUCCEEDED"].index)
    running = [task for task in seen if task.status == "RUNNING"]
    assert running, statuses
    for task in running:
        assert isinstance(task, runwayml.types.task_retrieve_response.Running)
        assert isinstance(task.progress, float) and 0 <= task.progress < 1
        assert task.estimated_cost.credits == 80
    for task in seen:
        if task.status == "PENDING":
            assert isinstance(task, runwayml.types.task_retrieve_response.Pending)


def test_task_objects_match_the_documented_shapes(sim: RunningSimulator) -> None:
    created = httpx.post(
        f"{sim.origin}/v1/text_to_video",
        headers=api_headers(),
        json={"model": "gen4.5", "promptText": "Dunes at noon", "ratio": "1280:720", "duration": 3},
    )
    assert created.status_code == 200
    task_id = created.json()["id"]
    assert created.json() == {"id": task_id, "estimatedCost": {"credits": 36}}
    first: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 10
    while "SUCCEEDED" not in first and time.monotonic() < deadline:
        body = httpx.get(f"{sim.origin}/v1/tasks/{task_id}", headers=api_headers()).json()
        first.setdefault(body["status"], body)
        time.sleep(0.02)
    running, done = first["RUNNING"], first["SUCCEEDED"]
    assert list(running) == ["id", "createdAt", "status", "progress", "estimatedCost"]
    assert running["estimatedCost"] == {"credits": 36}
    assert list(done) == ["id", "createdAt", "status", "output", "cost"]
    assert (done["id"], done["cost"]) == (task_id, {"credits": 36})
    assert ISO_MS.match(done["createdAt"])
    assert done["createdAt"] == running["createdAt"]


@pytest.mark.parametrize(
    ("prompt", "code", "charged"),
    [
        ("A riot [fail]", "SAFETY.INPUT.TEXT", 60),
        ("A glitch [error]", "INTERNAL.BAD_OUTPUT.CODE01", 0),
    ],
)
def test_failures_raise_task_failed_error(
    client: runwayml.RunwayML, prompt: str, code: str, charged: int
) -> None:
    created = client.text_to_video.create(
        model="gen4.5", prompt_text=prompt, ratio="1280:720", duration=5
    )
    with pytest.raises(runwayml.TaskFailedError) as caught:
        created.wait_for_task_output(timeout=20)
    failed = caught.value.task_details
    assert isinstance(failed, runwayml.types.task_retrieve_response.Failed)
    assert failed.failure_code == code
    assert failed.failure
    assert failed.cost.credits == charged


def test_stuck_task_keeps_running(client: runwayml.RunwayML) -> None:
    created = client.text_to_video.create(
        model="gen4.5", prompt_text="Forever [stuck]", ratio="1280:720", duration=5
    )
    with pytest.raises(runwayml.TaskTimeoutError) as caught:
        created.wait_for_task_output(timeout=1.0)
    assert caught.value.task_details.status == "RUNNING"
    client.tasks.delete(created.id)


def test_throttled_waits_in_the_queue() -> None:
    with (
        running_in_thread(runway_config(job_seconds=30)) as slow,
        runwayml.RunwayML(api_key=KEY, base_url=slow.origin, max_retries=0) as sdk,
    ):
        created = sdk.text_to_video.create(
            model="veo3.1_fast", prompt_text="A crowd [throttled]", ratio="1280:720"
        )
        task = sdk.tasks.retrieve(created.id)
        assert isinstance(task, runwayml.types.task_retrieve_response.Throttled)
        assert task.estimated_cost.credits == 120  # veo3.1_fast with sound, 8 s default
        plain = sdk.text_to_video.create(
            model="veo3.1_fast", prompt_text="A calm street", ratio="1280:720"
        )
        pending = httpx.get(f"{slow.origin}/v1/tasks/{plain.id}", headers=api_headers()).json()
        assert pending == {
            "id": plain.id,
            "createdAt": pending["createdAt"],
            "status": "PENDING",
            "estimatedCost": {"credits": 120},
        }
        assert list(pending) == ["id", "createdAt", "status", "estimatedCost"]
        assert ISO_MS.match(pending["createdAt"])


def test_delete_cancels_and_the_task_is_gone(client: runwayml.RunwayML) -> None:
    created = client.text_to_video.create(
        model="gen4.5", prompt_text="Never mind [stuck]", ratio="720:1280", duration=2
    )
    response = client.tasks.with_raw_response.delete(created.id)
    assert response.status_code == 204
    assert response.http_response.content == b""
    with pytest.raises(runwayml.NotFoundError) as caught:
        client.tasks.retrieve(created.id)
    assert caught.value.body == {"error": "Could not find Task"}
    with pytest.raises(runwayml.NotFoundError):
        client.tasks.delete(created.id)


def test_validation_errors_use_runways_envelope(client: runwayml.RunwayML) -> None:
    with pytest.raises(runwayml.BadRequestError) as caught:
        client.text_to_video.create(  # type: ignore[call-overload]
            model="veo3.1", prompt_text="x", ratio="1280:720", duration=5
        )
    assert caught.value.status_code == 400
    assert caught.value.body == {
        "error": "Validation of body failed",
        "issues": [
            {
                "code": "invalid_enum_value",
                "options": [4, 6, 8],
                "received": 5,
                "path": ["duration"],
                "message": "Invalid enum value. Expected '4' | '6' | '8', received '5'",
            }
        ],
        "docUrl": DOC_URL,
    }


@pytest.mark.parametrize(
    ("path", "body", "issues"),
    [
        (
            "/v1/text_to_video",
            {"model": "gen4_turbo", "promptText": "x", "ratio": "1280:720"},
            [("invalid_union_discriminator", ["model"])],
        ),
        (
            "/v1/text_to_video",
            {"model": "gen4.5", "ratio": "1104:832", "extra": 1},
            [
                ("unrecognized_keys", []),
                ("invalid_type", ["promptText"]),
                ("invalid_enum_value", ["ratio"]),
                ("invalid_type", ["duration"]),
            ],
        ),
        (
            "/v1/image_to_video",
            {
                "model": "gen4.5",
                "promptText": "x" * 1001,
                "promptImage": "http://images.example.com/a.png",
                "ratio": "960:960",
                "duration": 11,
                "seed": -1,
            },
            [
                ("too_big", ["promptText"]),
                ("too_big", ["duration"]),
                ("too_small", ["seed"]),
                ("custom", ["promptImage"]),
            ],
        ),
        (
            "/v1/image_to_video",
            {
                "model": "veo3.1",
                "promptImage": [{"uri": "https://10.0.0.8/a.png", "position": "last"}],
                "ratio": "1280:720",
                "audio": "yes",
            },
            [
                ("invalid_type", ["audio"]),
                ("custom", ["promptImage", 0, "uri"]),
                ("custom", ["promptImage"]),
            ],
        ),
        (
            "/v1/image_to_video",
            {
                "model": "gen4_turbo",
                "promptImage": [{"uri": IMAGE, "position": "last"}],
                "ratio": "1280:720",
                "duration": 5.5,
            },
            [
                ("invalid_type", ["duration"]),
                ("invalid_enum_value", ["promptImage", 0, "position"]),
            ],
        ),
    ],
)
def test_body_validation(
    sim: RunningSimulator, path: str, body: dict[str, Any], issues: list[tuple[str, list[Any]]]
) -> None:
    answer = httpx.post(f"{sim.origin}{path}", headers=api_headers(), json=body)
    assert answer.status_code == 400
    data = answer.json()
    assert (data["error"], data["docUrl"]) == ("Validation of body failed", DOC_URL)
    assert [(issue["code"], issue["path"]) for issue in data["issues"]] == issues
    assert all(isinstance(issue["message"], str) and issue["message"] for issue in data["issues"])


def test_malformed_json_is_a_400(sim: RunningSimulator) -> None:
    answer = httpx.post(
        f"{sim.origin}/v1/text_to_video",
        headers=api_headers(**{"Content-Type": "application/json"}),
        content=b"{not json",
    )
    assert (answer.status_code, answer.json()) == (
        400,
        {"error": "The request body is not valid JSON."},
    )


def test_no_credits_is_refused_at_create(client: runwayml.RunwayML) -> None:
    with pytest.raises(runwayml.BadRequestError) as caught:
        client.text_to_video.create(
            model="gen4.5", prompt_text="Expensive [nocredits]", ratio="1280:720", duration=5
        )
    assert caught.value.body == {
        "error": "You do not have enough credits to run this task.",
        "docUrl": DOC_URL,
    }


def test_credentials_and_version_are_required(sim: RunningSimulator) -> None:
    with (
        runwayml.RunwayML(api_key="key_wrong", base_url=sim.origin, max_retries=0) as wrong,
        pytest.raises(runwayml.AuthenticationError) as caught,
    ):
        wrong.tasks.retrieve(str(uuid.uuid4()))
    assert caught.value.body == {"error": "The provided API key is not valid."}

    missing = httpx.get(f"{sim.origin}/v1/tasks/x", headers={"X-Runway-Version": VERSION})
    assert missing.status_code == 401
    assert missing.json() == {
        "error": "No API key provided. Send it as 'Authorization: Bearer <key>'."
    }
    basic = httpx.get(
        f"{sim.origin}/v1/tasks/x",
        headers={"Authorization": f"Basic {KEY}", "X-Runway-Version": VERSION},
    )
    assert basic.status_code == 401

    unversioned = httpx.get(f"{sim.origin}/v1/tasks/x", headers={"Authorization": f"Bearer {KEY}"})
    assert unversioned.status_code == 400
    assert unversioned.json()["error"].startswith("The X-Runway-Version header is required.")

    with (
        runwayml.RunwayML(
            api_key=KEY, base_url=sim.origin, max_retries=0, runway_version="2024-09-13"
        ) as old,
        pytest.raises(runwayml.BadRequestError) as outdated,
    ):
        old.tasks.retrieve(str(uuid.uuid4()))
    assert isinstance(outdated.value.body, dict)
    assert outdated.value.body["error"].startswith("Unsupported API version '2024-09-13'")


def test_output_urls_expire_and_reading_the_task_signs_fresh_ones() -> None:
    with (
        running_in_thread(runway_config(expires_after_seconds=1)) as short,
        runwayml.RunwayML(api_key=KEY, base_url=short.origin, max_retries=0) as sdk,
    ):
        created = sdk.image_to_video.create(
            model="gen4_turbo", prompt_image=IMAGE, ratio="960:960", duration=3
        )
        done = created.wait_for_task_output(timeout=20)
        assert isinstance(done, runwayml.types.task_retrieve_response.Succeeded)
        (url,) = done.output
        claims = jwt.decode(url.split("_jwt=")[1], options={"verify_signature": False})
        assert 0 < claims["exp"] - time.time() <= 2.01
        assert set(claims) == {"keyHash", "bucket", "stage", "exp"}
        assert httpx.get(url).status_code == 200
        ranged = httpx.get(url, headers={"Range": "bytes=0-99"})
        assert (ranged.status_code, len(ranged.content)) == (206, 100)

        time.sleep(max(0.0, claims["exp"] - time.time()) + 0.1)
        expired = httpx.get(url)
        assert (expired.status_code, expired.text) == (403, "Forbidden")

        again = sdk.tasks.retrieve(created.id)
        assert isinstance(again, runwayml.types.task_retrieve_response.Succeeded)
        (fresh,) = again.output
        assert fresh != url
        assert httpx.get(fresh).status_code == 200
        # A token is bound to its task and to the simulator's key.
        other = sdk.image_to_video.create(
            model="gen4_turbo", prompt_image=IMAGE, ratio="960:960", duration=3
        )
        stolen = fresh.replace(created.id, other.id)
        assert httpx.get(stolen).status_code == 403
        forged = jwt.encode({**claims, "exp": int(time.time()) + 60}, "x" * 32, algorithm="HS256")
        assert httpx.get(url.split("?")[0] + f"?_jwt={forged}").status_code == 403
        assert httpx.get(url.split("?")[0]).status_code == 403


def test_injected_faults_come_in_runways_envelope() -> None:
    with (
        running_in_thread(runway_config()) as faulty,
        runwayml.RunwayML(api_key=KEY, base_url=faulty.origin, max_retries=0) as sdk,
    ):

        def create() -> Any:
            return sdk.text_to_video.create(
                model="gen4.5", prompt_text="x", ratio="1280:720", duration=2
            )

        def inject(**rates: float) -> None:
            answer = httpx.post(f"{faulty.origin}/_sim/faults", json=rates)
            assert answer.status_code == 200

        inject(error_429_rate=1.0, retry_after_seconds=3)
        with pytest.raises(runwayml.RateLimitError) as limited:
            create()
        assert limited.value.body == {
            "error": "You have exceeded your rate limit. Please try again later."
        }
        assert limited.value.response.headers["retry-after"] == "3"
        assert limited.value.response.headers["retry-after-ms"] == "3000"

        inject(error_429_rate=0.0, error_500_rate=1.0)
        with pytest.raises(runwayml.InternalServerError) as broken:
            create()
        assert (broken.value.status_code, broken.value.body) == (
            500,
            {"error": "An unexpected error occurred."},
        )

        inject(error_500_rate=0.0, error_503_rate=1.0)
        with pytest.raises(runwayml.InternalServerError) as shedding:
            sdk.tasks.retrieve(str(uuid.uuid4()))
        assert shedding.value.status_code == 503
        assert shedding.value.body == {
            "error": "Runway is temporarily shedding load. Please try again later."
        }

        inject(error_503_rate=0.0, garbage_rate=1.0)
        garbled = httpx.get(f"{faulty.origin}/v1/tasks/x", headers=api_headers())
        assert garbled.status_code == 200
        with pytest.raises(ValueError):
            garbled.json()

        inject(garbage_rate=0.0)
        stats = httpx.get(f"{faulty.origin}/_sim/stats").json()
        assert stats["faultsInjected"]["error429"] == 1
        assert stats["faultsInjected"]["error500"] == 1
        assert stats["faultsInjected"]["error503"] == 1
        assert stats["faultsInjected"]["garbage"] == 1
        assert stats["jobsCreated"] == 0
        assert stats["requests"]["POST /v1/text_to_video"] == 2
        assert stats["requests"]["GET /v1/tasks/{task_id}"] == 2

        # The control surface keeps the simulator's own envelope.
        refused = httpx.post(f"{faulty.origin}/_sim/faults", json={"nope": 1})
        assert refused.status_code == 400
        assert refused.json()["error"]["message"].startswith("Unknown setting 'nope'")


def test_unknown_routes_and_methods(sim: RunningSimulator) -> None:
    missing = httpx.get(f"{sim.origin}/v1/videos", headers=api_headers())
    assert (missing.status_code, missing.json()) == (404, {"error": "Not found"})
    wrong = httpx.put(f"{sim.origin}/v1/tasks/x", headers=api_headers())
    assert (wrong.status_code, wrong.json()) == (405, {"error": "Method not allowed"})
    assert set(wrong.headers["allow"].split(", ")) == {"GET", "DELETE"}


def test_jobs_are_counted_and_inspectable(sim: RunningSimulator, client: runwayml.RunwayML) -> None:
    before = httpx.get(f"{sim.origin}/_sim/stats").json()["jobsCreated"]
    created = client.text_to_video.create(
        model="gen4.5", prompt_text="Counted", ratio="1280:720", duration=2
    )
    after = httpx.get(f"{sim.origin}/_sim/stats").json()
    assert after["jobsCreated"] == before + 1
    truth = httpx.get(f"{sim.origin}/_sim/jobs/{created.id}").json()
    assert (truth["id"], truth["outcome"]) == (created.id, "complete")
    assert sim.state.protocol_state["runway"].tasks[created.id] == sim_tasks.TaskInfo(
        model="gen4.5", credits=24, throttled=False
    )
