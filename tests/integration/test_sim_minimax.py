"""Fidelity of the MiniMax simulator (`--protocol minimax`) to MiniMax's API reference.

MiniMax publishes no Python SDK, so fidelity is checked on the wire: the adapter's requests
for the documented request examples (bytes, headers) are what the examples say and the
simulator accepts them; the simulator's answers have the shape of the documented response
examples; and its refusals, faults, status words and expiring download URLs are MiniMax's.
The examples are copied from the OpenAPI files behind platform.minimax.io/docs
(`video-generation-t2v`, `-i2v`, `-fl2v`, `-s2v`, `-query`, `-download`).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from vidgate.config import ProviderConfig
from vidgate.domain.request import ImageInput, ImageRole, VideoParams
from vidgate.providers import minimax
from vidgate.providers.base import JobRef, JobStatus, SubmitRequest
from vidgate.simulator.config import SimConfig
from vidgate.simulator.server import RunningSimulator, start

KEY = "sk-api-fidelity-5a7c"
AUTH = {"Authorization": f"Bearer {KEY}"}
SUCCESS = {"status_code": 0, "status_msg": "success"}
LOGIN_FAIL = {
    "status_code": 1004,
    "status_msg": "login fail: Please carry the API secret key in the 'Authorization' field "
    "of the request header",
}

# -- the documented examples -------------------------------------------------------------

T2V_EXAMPLE: dict[str, Any] = {
    "model": "MiniMax-Hailuo-2.3",
    "prompt": "A man picks up a book [Pedestal up], then reads [Static shot].",
    "duration": 6,
    "resolution": "1080P",
}
I2V_EXAMPLE: dict[str, Any] = {
    "prompt": "A mouse runs toward the camera, smiling and blinking.",
    "first_frame_image": "https://cdn.hailuoai.com/prod/2024-09-18-16/user/multi_chat_file/"
    "9c0b5c14-ee88-4a5b-b503-4f626f018639.jpeg",
    "model": "MiniMax-Hailuo-2.3",
    "duration": 6,
    "resolution": "1080P",
}
FL2V_EXAMPLE: dict[str, Any] = {
    "prompt": "A little girl grow up.",
    "first_frame_image": "https://filecdn.minimax.chat/public/"
    "fe9d04da-f60e-444d-a2e0-18ae743add33.jpeg",
    "last_frame_image": "https://filecdn.minimax.chat/public/"
    "97b7cd08-764e-4b8b-a7bf-87a0bd898575.jpeg",
    "model": "MiniMax-Hailuo-02",
    "duration": 6,
    "resolution": "1080P",
}
S2V_EXAMPLE: dict[str, Any] = {
    "prompt": "A girl runs toward the camera and winks with a smile.",
    "subject_reference": [
        {
            "type": "character",
            "image": [
                "https://cdn.hailuoai.com/prod/2025-08-12-17/video_cover/"
                "1754990600020238321-411603868533342214-cover.jpg"
            ],
        }
    ],
    "model": "S2V-01",
}
CREATE_ANSWER = {"task_id": "106916112212032", "base_resp": SUCCESS}
QUERY_ANSWER = {
    "task_id": "176843862716480",
    "status": "Success",
    "file_id": "176844028768320",
    "video_width": 1920,
    "video_height": 1080,
    "base_resp": SUCCESS,
}
RETRIEVE_ANSWER = {
    "file": {
        "file_id": 176844028768320,  # "${file_id}" in the example; int64 in the schema
        "bytes": 0,
        "created_at": 1700469398,
        "filename": "output_aigc.mp4",
        "purpose": "video_generation",
        "download_url": "www.downloadurl.com",
    },
    "base_resp": SUCCESS,
}


def neutral(example: dict[str, Any]) -> SubmitRequest:
    """The neutral request a vidgate client would send for a documented example."""
    images = []
    if "first_frame_image" in example:
        images.append(ImageInput(url=example["first_frame_image"]))
    if "last_frame_image" in example:
        images.append(ImageInput(url=example["last_frame_image"], role=ImageRole.LAST_FRAME))
    for subject in example.get("subject_reference", []):
        images.append(ImageInput(url=subject["image"][0], role=ImageRole.REFERENCE))
    params = VideoParams(
        duration_seconds=example.get("duration"),
        resolution=example["resolution"].lower() if "resolution" in example else None,
        images=tuple(images),
    )
    return SubmitRequest(prompt=example["prompt"], model=example["model"], params=params)


def shape(value: Any) -> Any:
    """A JSON value with its leaves replaced by their types: what "the same shape" means."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value]
    return type(value).__name__


# -- fixtures -------------------------------------------------------------------------------

StartSim = Callable[..., Awaitable[RunningSimulator]]


@pytest.fixture
async def start_sim() -> AsyncIterator[StartSim]:
    running: list[RunningSimulator] = []

    async def launch(**options: Any) -> RunningSimulator:
        values: dict[str, Any] = {
            "protocol": "minimax",
            "prefix": "",
            "job_seconds": 1.0,
            "api_key": KEY,
        }
        values.update(options)
        sim = await start(SimConfig(**values))
        running.append(sim)
        return sim

    yield launch
    for sim in running:
        await sim.stop()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as http:
        yield http


class Recording(httpx.AsyncBaseTransport):
    """A real transport that keeps every request it sends."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.sent: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def poll(
    http: httpx.AsyncClient, sim: RunningSimulator, task_id: str, until: str
) -> list[str]:
    """Query until the status word is ``until``; every word seen."""
    words: list[str] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        answer = await http.get(
            f"{sim.base_url}/v1/query/video_generation", params={"task_id": task_id}, headers=AUTH
        )
        words.append(answer.json()["status"])
        if words[-1] == until:
            return words
        await asyncio.sleep(0.01)
    raise AssertionError(f"{until} never came: {words[-5:]}")


# -- requests and answers against the documented examples ---------------------------------


async def test_the_adapters_requests_for_the_documented_examples_are_the_examples(
    start_sim: StartSim, client: httpx.AsyncClient
) -> None:
    sim = await start_sim(job_seconds=0.3)
    transport = Recording()
    provider = minimax.MiniMaxProvider(
        ProviderConfig(
            name="mm", kind="minimax", base_url=sim.base_url, api_key=KEY, idempotency=False
        ),
        client=httpx.AsyncClient(transport=transport),
    )
    try:
        created = [
            await provider.create(neutral(example), idempotency_key=f"attempt-{index}")
            for index, example in enumerate((T2V_EXAMPLE, I2V_EXAMPLE, FL2V_EXAMPLE, S2V_EXAMPLE))
        ]
        for view in created:
            assert view.status is JobStatus.QUEUED  # the simulator accepted every body
        await asyncio.sleep(sim.config.job_seconds + 0.1)
        done = await provider.get(JobRef(external_id=created[0].external_id))
    finally:
        await provider.aclose()

    posts = [request for request in transport.sent if request.method == "POST"]
    assert [json.loads(request.content) for request in posts] == [
        T2V_EXAMPLE,
        I2V_EXAMPLE,
        FL2V_EXAMPLE,
        S2V_EXAMPLE,
    ]
    # The text-to-video example byte for byte, in its documented key order.
    assert posts[0].content == json.dumps(T2V_EXAMPLE, separators=(",", ":")).encode()
    for request in posts:
        assert request.url.path == "/v1/video_generation"
        assert request.headers["authorization"] == f"Bearer {KEY}"
        assert request.headers["content-type"] == "application/json"
    query, retrieve = transport.sent[-2:]
    assert (query.method, query.url.path, dict(query.url.params)) == (
        "GET",
        "/v1/query/video_generation",
        {"task_id": created[0].external_id},
    )
    assert (retrieve.method, retrieve.url.path) == ("GET", "/v1/files/retrieve")
    assert retrieve.url.params["file_id"].isdigit()
    for request in (query, retrieve):
        assert request.content == b""
        assert request.headers["authorization"] == f"Bearer {KEY}"
    assert done.status is JobStatus.COMPLETED
    assert done.usage is not None and done.usage.resolution == "1920x1080"


async def test_the_simulators_answers_have_the_documented_shapes(
    start_sim: StartSim, client: httpx.AsyncClient
) -> None:
    sim = await start_sim(job_seconds=0.3)
    created = await client.post(
        f"{sim.base_url}/v1/video_generation", json=T2V_EXAMPLE, headers=AUTH
    )
    assert created.status_code == 200
    assert created.headers["content-type"] == "application/json"
    assert shape(created.json()) == shape(CREATE_ANSWER)
    assert created.json()["base_resp"] == SUCCESS
    task_id = created.json()["task_id"]
    assert task_id.isdigit() and len(task_id) == 15

    await poll(client, sim, task_id, "Success")
    queried = (
        await client.get(
            f"{sim.base_url}/v1/query/video_generation", params={"task_id": task_id}, headers=AUTH
        )
    ).json()
    assert shape(queried) == shape(QUERY_ANSWER)
    assert {k: queried[k] for k in ("task_id", "video_width", "video_height", "base_resp")} == {
        "task_id": task_id,
        "video_width": 1920,
        "video_height": 1080,
        "base_resp": SUCCESS,
    }
    retrieved = (
        await client.get(
            f"{sim.base_url}/v1/files/retrieve",
            params={"file_id": queried["file_id"]},
            headers=AUTH,
        )
    ).json()
    assert shape(retrieved) == shape(RETRIEVE_ANSWER)
    file = retrieved["file"]
    assert str(file["file_id"]) == queried["file_id"]
    assert {k: file[k] for k in ("bytes", "filename", "purpose")} == {
        "bytes": 0,
        "filename": "output_aigc.mp4",
        "purpose": "video_generation",
    }
    video = await client.get(file["download_url"])
    assert (video.status_code, video.headers["content-type"]) == (200, "video/mp4")
    assert video.content[4:8] == b"ftyp"


async def test_status_words_come_in_order_without_progress(
    start_sim: StartSim, client: httpx.AsyncClient
) -> None:
    sim = await start_sim(job_seconds=2.0)
    created = await client.post(
        f"{sim.base_url}/v1/video_generation", json=T2V_EXAMPLE, headers=AUTH
    )
    words = await poll(client, sim, created.json()["task_id"], "Success")
    order = list(dict.fromkeys(words))
    assert order == ["Preparing", "Queueing", "Processing", "Success"]
    running = await client.get(
        f"{sim.base_url}/v1/query/video_generation",
        params={"task_id": created.json()["task_id"]},
        headers=AUTH,
    )
    assert "progress" not in running.json()


async def test_failures_and_stuck_tasks_in_minimax_words(
    start_sim: StartSim, client: httpx.AsyncClient
) -> None:
    sim = await start_sim(job_seconds=0.6)
    ids = {}
    for trigger in ("[fail]", "[error]", "[stuck]"):
        body = {**T2V_EXAMPLE, "prompt": f"a heron {trigger}"}
        answer = await client.post(f"{sim.base_url}/v1/video_generation", json=body, headers=AUTH)
        ids[trigger] = answer.json()["task_id"]
    await asyncio.sleep(0.7)
    answers = {
        trigger: (
            await client.get(
                f"{sim.base_url}/v1/query/video_generation",
                params={"task_id": task_id},
                headers=AUTH,
            )
        ).json()
        for trigger, task_id in ids.items()
    }
    assert answers["[fail]"] == {
        "task_id": ids["[fail]"],
        "status": "Fail",
        "file_id": "",
        "video_width": 0,
        "video_height": 0,
        "base_resp": {"status_code": 1027, "status_msg": "output new_sensitive"},
    }
    assert answers["[error]"]["base_resp"] == {"status_code": 1024, "status_msg": "internal error"}
    assert answers["[stuck]"]["status"] == "Processing"
    truth = (await client.get(f"{sim.origin}/_sim/jobs/{ids['[stuck]']}")).json()
    assert truth["outcome"] == "stuck"
    refused = await client.post(
        f"{sim.base_url}/v1/video_generation",
        json={**T2V_EXAMPLE, "prompt": "a heron [sensitive]"},
        headers=AUTH,
    )
    assert refused.json() == {
        "task_id": "",
        "base_resp": {"status_code": 1026, "status_msg": "input new_sensitive"},
    }


# -- refusals --------------------------------------------------------------------------------


async def test_missing_or_wrong_keys_are_a_login_failure_under_http_200(
    start_sim: StartSim, client: httpx.AsyncClient
) -> None:
    sim = await start_sim()
    for headers in ({}, {"Authorization": "Bearer sk-api-wrong"}, {"Authorization": KEY}):
        created = await client.post(
            f"{sim.base_url}/v1/video_generation", json=T2V_EXAMPLE, headers=headers
        )
        assert (created.status_code, created.json()) == (
            200,
            {"task_id": "", "base_resp": LOGIN_FAIL},
        )
        queried = await client.get(
            f"{sim.base_url}/v1/query/video_generation",
            params={"task_id": "1"},
            headers=headers,
        )
        assert (queried.status_code, queried.json()) == (200, {"base_resp": LOGIN_FAIL})
        retrieved = await client.get(
            f"{sim.base_url}/v1/files/retrieve", params={"file_id": "1"}, headers=headers
        )
        assert (retrieved.status_code, retrieved.json()) == (200, {"base_resp": LOGIN_FAIL})
    assert sim.stats()["jobsCreated"] == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({**T2V_EXAMPLE, "model": "MiniMax-H3"}, "model MiniMax-H3 is not supported"),
        (
            {**T2V_EXAMPLE, "duration": 10},
            "resolution 1080P is not supported by model MiniMax-Hailuo-2.3 at 10s",
        ),
        ({**T2V_EXAMPLE, "duration": "6"}, "duration must be an integer"),
        (
            {**T2V_EXAMPLE, "resolution": "512P", "model": "MiniMax-Hailuo-02"},
            "resolution 512P is not supported by model MiniMax-Hailuo-02 at 6s",
        ),
        ({**I2V_EXAMPLE, "model": "T2V-01"}, "model T2V-01 does not support image-to-video"),
        (
            {"model": "MiniMax-Hailuo-2.3-Fast", "prompt": "a heron"},
            "model MiniMax-Hailuo-2.3-Fast does not support text-to-video",
        ),
        (
            {**FL2V_EXAMPLE, "resolution": "512P"},
            "resolution 512P is not supported by model MiniMax-Hailuo-02 at 6s",
        ),
        (
            {**S2V_EXAMPLE, "subject_reference": [{"type": "character", "image": ["a", "b"]}]},
            "subject_reference image must hold exactly one image URL",
        ),
        ({"model": "T2V-01"}, "prompt is required"),
        ({**T2V_EXAMPLE, "prompt": "x" * 2001}, "prompt is longer than 2000 characters"),
        ({**T2V_EXAMPLE, "prompt_optimizer": "yes"}, "prompt_optimizer must be a boolean"),
    ],
)
async def test_invalid_bodies_are_2013_invalid_params(
    start_sim: StartSim, client: httpx.AsyncClient, body: dict[str, Any], message: str
) -> None:
    sim = await start_sim()
    answer = await client.post(f"{sim.base_url}/v1/video_generation", json=body, headers=AUTH)
    assert (answer.status_code, answer.json()) == (
        200,
        {
            "task_id": "",
            "base_resp": {"status_code": 2013, "status_msg": f"invalid params, {message}"},
        },
    )


async def test_documented_variants_are_accepted(
    start_sim: StartSim, client: httpx.AsyncClient
) -> None:
    sim = await start_sim()
    for body in (
        {**I2V_EXAMPLE, "model": "MiniMax-Hailuo-02", "resolution": "512P", "duration": 10},
        {**I2V_EXAMPLE, "model": "I2V-01-live", "resolution": "720P"},
        {"model": "T2V-01", "prompt": "a heron", "prompt_optimizer": False, "aigc_watermark": True},
        {**I2V_EXAMPLE, "first_frame_image": "data:image/png;base64,iVBORw0KGgo="},
    ):
        answer = await client.post(f"{sim.base_url}/v1/video_generation", json=body, headers=AUTH)
        assert answer.json()["base_resp"] == SUCCESS, body
    not_json = await client.post(
        f"{sim.base_url}/v1/video_generation",
        content=b"{model:",
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert not_json.json()["base_resp"] == {
        "status_code": 2013,
        "status_msg": "invalid params, the request body is not valid JSON",
    }


# -- download URLs -----------------------------------------------------------------------------


async def test_download_urls_expire_and_then_the_file_is_gone(
    start_sim: StartSim, client: httpx.AsyncClient
) -> None:
    sim = await start_sim(job_seconds=0.3, expires_after_seconds=1.0)
    created = await client.post(
        f"{sim.base_url}/v1/video_generation", json=T2V_EXAMPLE, headers=AUTH
    )
    task_id = created.json()["task_id"]
    await poll(client, sim, task_id, "Success")
    file_id = (
        await client.get(
            f"{sim.base_url}/v1/query/video_generation", params={"task_id": task_id}, headers=AUTH
        )
    ).json()["file_id"]
    before = time.time()
    url = (
        await client.get(
            f"{sim.base_url}/v1/files/retrieve", params={"file_id": file_id}, headers=AUTH
        )
    ).json()["file"]["download_url"]
    expires = int(httpx.URL(url).params["Expires"])
    assert before + 1.0 <= expires <= time.time() + 2.0  # whole seconds, never less

    partial = await client.get(url, headers={"Range": "bytes=0-99"})
    assert (partial.status_code, len(partial.content)) == (206, 100)
    assert partial.headers["content-range"].startswith("bytes 0-99/")
    tampered = await client.get(url.replace(f"Expires={expires}", f"Expires={expires + 3600}"))
    assert tampered.status_code == 403
    assert "<Code>SignatureDoesNotMatch</Code>" in tampered.text

    truth = (await client.get(f"{sim.origin}/_sim/jobs/{task_id}")).json()
    # The URL dies first; the file itself goes expires_after_seconds after the task ended.
    gone_at = max(expires, truth["finishesAt"] + sim.config.expires_after_seconds)
    await asyncio.sleep(max(0.0, gone_at - time.time()) + 0.05)
    expired = await client.get(url)
    assert (expired.status_code, expired.headers["content-type"]) == (403, "application/xml")
    assert "<Code>AccessDenied</Code>" in expired.text
    assert "<Message>Request has expired.</Message>" in expired.text
    gone = await client.get(
        f"{sim.base_url}/v1/files/retrieve", params={"file_id": file_id}, headers=AUTH
    )
    assert gone.json() == {
        "base_resp": {
            "status_code": 2013,
            "status_msg": f"invalid params, file_id {file_id} does not exist",
        }
    }


# -- fault injection -------------------------------------------------------------------------


async def test_injected_faults_arrive_in_minimax_envelopes(
    start_sim: StartSim, client: httpx.AsyncClient
) -> None:
    sim = await start_sim(retry_after_503_seconds=2.0)
    create = f"{sim.base_url}/v1/video_generation"

    async def with_fault(name: str) -> httpx.Response:
        settings = {rate: 0.0 for rate in ("error_429_rate", "error_500_rate", "error_503_rate")}
        settings["garbage_rate"] = 0.0
        settings[name] = 1.0
        assert (await client.post(f"{sim.origin}/_sim/faults", json=settings)).status_code == 200
        return await client.post(create, json=T2V_EXAMPLE, headers=AUTH)

    limited = await with_fault("error_429_rate")
    assert (limited.status_code, limited.json()) == (
        200,
        {
            "task_id": "",
            "base_resp": {"status_code": 1002, "status_msg": "rate limit exceeded(RPM)"},
        },
    )
    assert "retry-after" not in limited.headers  # MiniMax gives no hint
    broken = await with_fault("error_500_rate")
    assert (broken.status_code, broken.json()) == (
        500,
        {"task_id": "", "base_resp": {"status_code": 1024, "status_msg": "internal error"}},
    )
    busy = await with_fault("error_503_rate")
    assert (busy.status_code, busy.headers["retry-after"]) == (503, "2")
    assert busy.json()["base_resp"] == {"status_code": 1000, "status_msg": "unknown error"}
    garbage = await with_fault("garbage_rate")
    assert garbage.status_code == 200
    with pytest.raises(ValueError):
        garbage.json()
    queried = await client.get(
        f"{sim.base_url}/v1/query/video_generation", params={"task_id": "1"}, headers=AUTH
    )
    assert queried.status_code == 200  # garbage still: a 200 nobody can parse

    stats = sim.stats()
    assert stats["faultsInjected"] == {
        **stats["faultsInjected"],
        "error429": 1,
        "error500": 1,
        "error503": 1,
        "garbage": 2,
    }
    assert stats["requests"]["POST /v1/video_generation"] == 4
    assert stats["jobsCreated"] == 0
    # The control surface keeps its own envelope.
    refused = await client.post(f"{sim.origin}/_sim/faults", json={"nonsense": 1})
    assert refused.status_code == 400
    assert refused.json()["error"]["message"].startswith("Unknown setting 'nonsense'")


# -- callback verification ---------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A callback receiver on loopback: echoes the challenge at /good, garbles it at /bad."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append(body)
            reply = body if self.path == "/good" else {"challenge": "something else"}
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


async def test_a_callback_url_must_echo_the_challenge(
    start_sim: StartSim, client: httpx.AsyncClient, receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    sim = await start_sim()
    origin, received = receiver
    create = f"{sim.base_url}/v1/video_generation"
    good = await client.post(
        create, json={**T2V_EXAMPLE, "callback_url": f"{origin}/good"}, headers=AUTH
    )
    assert good.json()["base_resp"] == SUCCESS
    bad = await client.post(
        create, json={**T2V_EXAMPLE, "callback_url": f"{origin}/bad"}, headers=AUTH
    )
    assert bad.json() == {
        "task_id": "",
        "base_resp": {
            "status_code": 2013,
            "status_msg": "invalid params, fail to check callback url",
        },
    }
    assert [set(body) for body in received] == [{"challenge"}, {"challenge"}]
    assert received[0]["challenge"] != received[1]["challenge"]
    assert sim.stats()["jobsCreated"] == 1
