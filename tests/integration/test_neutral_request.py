"""The neutral request on a real server: translation of the seed's fields, capability
checks before anything goes upstream, the model catalogue and its retirements, and an
attempt's binding that outlives its provider's config."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import SimulatorServer, StartVidgate


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def provider_block(name: str, base_url: str, **lines: str) -> str:
    extra = "".join(f"{key} = {value}\n" for key, value in lines.items())
    return f'[[providers]]\nname = "{name}"\nbase_url = "{base_url}"\n{extra}\n'


def wait_status(server_url: str, video_id: str, *wanted: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    task: Any = {}
    while time.monotonic() < deadline:
        task = httpx.get(f"{server_url}/api/video/tasks/{video_id}").json()["data"]
        if task["status"] in wanted:
            return task
        time.sleep(0.1)
    raise AssertionError(f"{video_id} never reached {wanted}: {task}")


@pytest.fixture
def simulator(simulator_process: Any) -> SimulatorServer:
    server: SimulatorServer = simulator_process(job_seconds=1.0)
    return server


def test_neutral_fields_are_translated_for_the_v1_videos_upstream(
    start_vidgate: StartVidgate, simulator: SimulatorServer, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "v.toml", provider_block("main", simulator.base_url))
    server = start_vidgate(VIDGATE_CONFIG=str(config), VIDGATE_MIRROR_BEFORE_SECONDS="0")
    created = httpx.post(
        f"{server.url}/api/video/tasks",
        json={
            "prompt": "a lighthouse",
            "model": "sora_video2_pro",
            "durationSeconds": 8,
            "aspectRatio": "16:9",
            "resolution": "1080p",
        },
    )
    assert created.status_code == 201, created.text
    data = created.json()["data"]
    # The seed's fields say the same thing in its words.
    assert data["seconds"] == "8" and data["size"] == "1792x1024"
    assert data["params"] == {"durationSeconds": 8.0, "aspectRatio": "16:9", "resolution": "1080p"}
    task = wait_status(server.url, data["videoId"], "COMPLETED")
    job = httpx.get(f"{simulator.base_url}/videos/{task['externalVideoId']}").json()
    assert (job["model"], job["seconds"], job["size"]) == ("sora-2-pro", "8", "1792x1024")
    assert task["attempts"][0]["upstreamModel"] == "sora-2-pro"


@pytest.mark.parametrize(
    ("body", "field", "supported"),
    [
        ({"seconds": "5"}, "seconds", [4.0, 8.0, 12.0]),
        ({"durationSeconds": 10}, "durationSeconds", [4.0, 8.0, 12.0]),
        ({"resolution": "1080p"}, "resolution", ["720p"]),
        ({"aspectRatio": "1:1"}, "aspectRatio", ["16:9", "9:16"]),
        (
            {"images": [{"url": "https://8.8.8.8/a.png", "role": "last_frame"}]},
            "images.role",
            ["first_frame"],
        ),
        ({"negativePrompt": "blur"}, "negativePrompt", None),
    ],
)
def test_what_the_model_cannot_do_is_refused_before_anything_goes_upstream(
    shared_unsupported: tuple[str, SimulatorServer],
    body: dict[str, Any],
    field: str,
    supported: object,
) -> None:
    url, simulator = shared_unsupported
    before = simulator.stats()["jobsCreated"]
    answer = httpx.post(
        f"{url}/api/video/tasks", json={"prompt": "x", "model": "sora_video2", **body}
    )
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "UNSUPPORTED_PARAMETER"
    assert error["details"]["field"] == field
    assert error["details"]["supported"] == supported
    assert error["details"]["model"] == "sora_video2"
    assert simulator.stats()["jobsCreated"] == before
    assert httpx.get(f"{url}/api/video/tasks").json()["data"]["items"] == []


@pytest.fixture(scope="module")
def shared_unsupported(
    tmp_path_factory: pytest.TempPathFactory,
) -> Any:
    from tests.support import launch_simulator, launch_vidgate

    workdir = tmp_path_factory.mktemp("unsupported")
    simulator = launch_simulator(workdir, job_seconds=1.0)
    config = write_config(workdir / "v.toml", provider_block("main", simulator.base_url))
    server = launch_vidgate(workdir, VIDGATE_CONFIG=str(config))
    yield server.url, simulator
    server.stop()
    simulator.stop()


def test_catalogue_retirement_and_capability_overrides(
    start_vidgate: StartVidgate, simulator: SimulatorServer, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path / "v.toml",
        provider_block("main", simulator.base_url)
        + "[models.sora_video2]\n"
        + 'retires_at = "2026-01-01T00:00:00Z"\nreplaced_by = "sora_video2_pro"\n\n'
        + "[models.sora_video2_pro.capabilities]\n"
        + 'durations = [4]\naspect_ratios = ["16:9"]\nresolutions = ["720p", "1080p"]\n',
    )
    server = start_vidgate(VIDGATE_CONFIG=str(config))
    retired = httpx.post(
        f"{server.url}/api/video/tasks", json={"prompt": "x", "model": "sora_video2"}
    )
    assert retired.status_code == 422
    assert retired.json()["error"]["code"] == "MODEL_RETIRED"
    assert retired.json()["error"]["details"] == {
        "model": "sora_video2",
        "retiredAt": "2026-01-01T00:00:00Z",
        "replacedBy": "sora_video2_pro",
    }
    # The override is the model's table now: 8 s is refused, 4 s accepted.
    eight = httpx.post(
        f"{server.url}/api/video/tasks",
        json={"prompt": "x", "model": "sora_video2_pro", "seconds": "8"},
    )
    assert eight.status_code == 422 and eight.json()["error"]["details"]["supported"] == [4.0]
    four = httpx.post(
        f"{server.url}/api/video/tasks",
        json={"prompt": "x", "model": "sora_video2_pro", "seconds": 4, "size": "1280x720"},
    )
    assert four.status_code == 201, four.text

    models = {m["id"]: m for m in httpx.get(f"{server.url}/api/models").json()["data"]["items"]}
    assert models["sora_video2"]["retiresAt"] == "2026-01-01T00:00:00Z"
    assert models["sora_video2"]["replacedBy"] == "sora_video2_pro"
    pro = models["sora_video2_pro"]
    assert pro["retiresAt"] is None
    assert pro["capabilities"]["durations"] == [4.0]
    assert pro["providers"] == [
        {
            "provider": "main",
            "protocol": "openai-videos",
            "upstreamModel": "sora-2-pro",
            "capabilities": pro["capabilities"],
        }
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"extra": "not an object"},
        {"extra": {"k": "x" * 20_000}},
        {"images": [{"url": "ftp://example.com/a.png"}]},
        {"images": [{"url": "https://example.com/a.png", "role": "middle"}]},
        {"durationSeconds": -1},
        {"durationSeconds": "NaN"},
        {"aspectRatio": "wide"},
        {"seed": -3},
        {"size": "big"},
    ],
)
def test_malformed_neutral_fields_get_a_validation_error(
    shared_unsupported: tuple[str, SimulatorServer], body: dict[str, Any]
) -> None:
    url, _ = shared_unsupported
    answer = httpx.post(f"{url}/api/video/tasks", json={"prompt": "x", **body})
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "VALIDATION_ERROR"


def test_extra_the_adapter_refuses_fails_the_task_without_an_upstream_job(
    shared_unsupported: tuple[str, SimulatorServer],
) -> None:
    url, simulator = shared_unsupported
    before = simulator.stats()["jobsCreated"]
    created = httpx.post(
        f"{url}/api/video/tasks", json={"prompt": "x", "extra": {"model": "sneaky"}}
    )
    assert created.status_code == 201
    task = wait_status(url, created.json()["data"]["videoId"], "FAILED")
    assert task["error"]["code"] == "UPSTREAM_REJECTED"
    assert "extra may not set model" in task["error"]["message"]
    assert simulator.stats()["jobsCreated"] == before


def test_a_removed_provider_s_task_is_followed_to_the_end(
    start_vidgate: StartVidgate, simulator_process: Any, tmp_path: Path
) -> None:
    simulator: SimulatorServer = simulator_process(job_seconds=4.0, extra=["--api-key", "sk-b"])
    first = write_config(
        tmp_path / "one.toml",
        provider_block("main", simulator.base_url, api_key_env='"SIM_KEY"'),
    )
    server = start_vidgate(VIDGATE_CONFIG=str(first), SIM_KEY="sk-b")
    created = httpx.post(f"{server.url}/api/video/tasks", json={"prompt": "a long one"})
    video_id = created.json()["data"]["videoId"]
    submitted = wait_status(server.url, video_id, "QUEUED", "PROCESSING")
    deadline = time.monotonic() + 10
    while submitted["externalVideoId"] is None and time.monotonic() < deadline:
        time.sleep(0.05)
        submitted = httpx.get(f"{server.url}/api/video/tasks/{video_id}").json()["data"]
    assert submitted["externalVideoId"] is not None
    server.stop()

    # The provider is gone from the config (another one, elsewhere, took its place);
    # its credential is still configured under the same environment variable.
    other = write_config(
        tmp_path / "two.toml",
        provider_block("other", "http://127.0.0.1:9/v1", api_key_env='"OTHER_KEY"'),
    )
    again = start_vidgate(VIDGATE_CONFIG=str(other), SIM_KEY="sk-b", OTHER_KEY="x")
    task = wait_status(again.url, video_id, "COMPLETED", "FAILED")
    assert task["status"] == "COMPLETED", task
    assert task["externalVideoId"] == submitted["externalVideoId"]
    assert [a["provider"] for a in task["attempts"]] == ["main"]
    assert simulator.stats()["jobsCreated"] == 1
    video = httpx.get(task["videoUrl"])
    assert video.status_code == 200 and video.content[4:8] == b"ftyp"
    assert (
        "sk-b" not in again.output()
        and "sk-b" not in httpx.get(f"{again.url}/api/video/tasks/{video_id}").text
    )


@pytest.mark.parametrize(
    "raw",
    [
        '{"prompt": "x", "extra": {"k": "\\ud800"}}',  # a lone surrogate, as a value
        '{"prompt": "x", "extra": {"\\udfff": 1}}',  # ... as a key
        '{"prompt": "x", "extra": {"k": ["a\\u0000"]}}',  # a NUL, nested
        '{"prompt": "x", "negativePrompt": "\\ud800"}',
        '{"prompt": "x", "images": [{"url": "https://8.8.8.8/\\ud800.png"}]}',
    ],
)
def test_text_no_database_or_upstream_takes_is_refused_up_front(
    shared_unsupported: tuple[str, SimulatorServer], raw: str
) -> None:
    url, _ = shared_unsupported
    answer = httpx.post(
        f"{url}/api/video/tasks", content=raw, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "VALIDATION_ERROR"
    assert httpx.get(f"{url}/api/video/tasks").status_code == 200
