"""Fidelity of the Kling simulator, and of the adapter's wire bytes, to Kling's documented
examples (Kling has no official Python SDK to run against).

Sources of the examples below: the Kling API reference ("Text to Video", "Image to Video",
"General Info", "Rate Limits"; mirrored in inference-sh/grid api/klingai/docs and WHQ25/
rawgenai docs/research/kling), a logged real create call (PROTOCOLS.md §1.4), and a real
failed-task answer quoted in QuantumNous/new-api#2532.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest

from vidgate.config import ProviderConfig
from vidgate.domain.request import ImageInput, ImageRole, VideoParams
from vidgate.providers.base import SubmitRequest
from vidgate.providers.kling import KlingProvider
from vidgate.simulator.app import create_app
from vidgate.simulator.config import SimConfig
from vidgate.simulator.server import RunningSimulator, running_in_thread

AK = "ak-fidelity-access-key-0123456789"
SK = "sk-fidelity-secret-key-0123456789"

# The reference's create example (Text to Video, "Create Task", cURL).
DOC_TEXT2VIDEO_REQUEST = {
    "model_name": "kling-v2-6",
    "prompt": "A cute little rabbit wearing glasses, sitting at a table, reading a newspaper, "
    "with a cup of cappuccino on the table",
    "negative_prompt": "",
    "duration": "5",
    "mode": "pro",
    "sound": "on",
    "aspect_ratio": "1:1",
    "callback_url": "",
    "external_task_id": "",
}
# The reference's image-to-video example with start and end frames.
DOC_IMAGE2VIDEO_REQUEST = {
    "model_name": "kling-v1-5",
    "image": "https://example.com/start.jpg",
    "image_tail": "https://example.com/end.jpg",
    "prompt": "Person walking from left to right",
    "mode": "pro",
    "duration": "5",
}
DOC_CREATE_RESPONSE = {
    "code": 0,
    "message": "string",
    "request_id": "string",
    "data": {
        "task_id": "string",
        "task_status": "submitted",
        "task_info": {"external_task_id": "string"},
        "created_at": 1722769557708,
        "updated_at": 1722769557708,
    },
}
DOC_QUERY_RESPONSE = {
    "code": 0,
    "message": "string",
    "request_id": "string",
    "data": {
        "task_id": "string",
        "task_status": "succeed",
        "task_status_msg": "string",
        "final_unit_deduction": "string",
        "task_info": {"external_task_id": "string"},
        "created_at": 1722769557708,
        "updated_at": 1722769557708,
        "task_result": {"videos": [{"id": "string", "url": "https://...", "duration": "5"}]},
    },
}
# A real failed task (new-api#2532): empty task_info and task_result.
REAL_FAILED_RESPONSE = {
    "code": 0,
    "data": {
        "task_id": "833446756",
        "task_info": {},
        "created_at": 1766737710125,
        "updated_at": 1766737711775,
        "task_result": {},
        "task_status": "failed",
        "task_status_msg": "Image pixel is invalid",
    },
    "message": "SUCCEED",
    "request_id": "ace7625a-3e18-49aa-abc4-0",
}
# A real logged create call and its answer (PROTOCOLS.md §1.4, pages corpus).
REAL_CREATE_PAYLOAD = {
    "prompt": "A calm sunrise over the ocean, cinematic, realistic",
    "model_name": "kling-v1",
    "duration": "5",
    "mode": "std",
    "aspect_ratio": "16:9",
    "external_task_id": "text_probe_1",
}


def shape(value: Any) -> Any:
    """A JSON value's structure: keys and JSON types, not the values themselves."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value[:1]]
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    return type(value).__name__


def token(**claims: Any) -> str:
    now = int(time.time())
    payload: dict[str, Any] = {"iss": AK, "exp": now + 1800, "nbf": now - 5}
    payload.update(claims)
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, SK, algorithm="HS256")


def auth(**claims: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(**claims)}"}


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    config = SimConfig(
        protocol="kling", prefix="", api_key=f"{AK}:{SK}", job_seconds=1.0, expires_after_seconds=2
    )
    with running_in_thread(config) as running:
        yield running


def wait_status(sim: RunningSimulator, family: str, task_id: str, word: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while True:
        answer: dict[str, Any] = httpx.get(
            f"{sim.base_url}/v1/videos/{family}/{task_id}", headers=auth()
        ).json()
        if answer["data"]["task_status"] == word:
            return answer
        assert time.monotonic() < deadline, answer
        time.sleep(0.05)


# -- the adapter's requests ----------------------------------------------------------------


class Capture:
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, json=DOC_CREATE_RESPONSE | {"data": {"task_id": "1"}})


@pytest.mark.parametrize(
    ("request_", "documented", "path"),
    [
        (
            SubmitRequest(
                prompt=str(DOC_TEXT2VIDEO_REQUEST["prompt"]),
                model="kling-v2-6",
                params=VideoParams(
                    duration_seconds=5, aspect_ratio="1:1", resolution="1080p", audio=True
                ),
            ),
            DOC_TEXT2VIDEO_REQUEST,
            "/v1/videos/text2video",
        ),
        (
            SubmitRequest(
                prompt=str(DOC_IMAGE2VIDEO_REQUEST["prompt"]),
                model="kling-v1-5",
                params=VideoParams(
                    duration_seconds=5,
                    resolution="1080p",
                    images=(
                        ImageInput(url="https://example.com/start.jpg"),
                        ImageInput(url="https://example.com/end.jpg", role=ImageRole.LAST_FRAME),
                    ),
                ),
            ),
            DOC_IMAGE2VIDEO_REQUEST,
            "/v1/videos/image2video",
        ),
    ],
)
async def test_adapter_sends_the_documented_request(
    request_: SubmitRequest, documented: dict[str, Any], path: str
) -> None:
    capture = Capture()
    provider = KlingProvider(
        ProviderConfig(
            name="k",
            kind="kling",
            base_url="https://api-singapore.klingai.com",
            access_key=AK,
            secret_key=SK,
        ),
        client=httpx.AsyncClient(transport=httpx.MockTransport(capture)),
    )
    await provider.create(request_, idempotency_key="vg-attempt-1")
    (sent,) = capture.requests
    assert sent.method == "POST"
    assert str(sent.url) == f"https://api-singapore.klingai.com{path}"
    assert sent.headers["content-type"] == "application/json"
    scheme, space, bearer = sent.headers["authorization"].partition(" ")
    assert (scheme, space) == ("Bearer", " ")  # "a space between Bearer and the token"
    assert jwt.get_unverified_header(bearer) == {"alg": "HS256", "typ": "JWT"}
    claims = jwt.decode(bearer, SK, algorithms=["HS256"])
    assert set(claims) == {"iss", "exp", "nbf"}
    assert claims["iss"] == AK
    assert claims["exp"] - claims["nbf"] == 1805
    # The body is the documented one, with empty optional fields left out and our key as
    # external_task_id.
    expected = {k: v for k, v in documented.items() if v != ""}
    expected["external_task_id"] = "vg-attempt-1"
    assert json.loads(sent.content) == expected
    await provider.aclose()


# -- the simulator's answers ---------------------------------------------------------------


def test_create_and_query_answer_as_documented(sim: RunningSimulator) -> None:
    body = dict(DOC_TEXT2VIDEO_REQUEST, external_task_id="rabbit-1")
    created = httpx.post(f"{sim.base_url}/v1/videos/text2video", json=body, headers=auth())
    assert created.status_code == 200
    assert created.headers["content-type"] == "application/json"
    answer = created.json()
    assert shape(answer) == shape(DOC_CREATE_RESPONSE)
    assert (answer["code"], answer["message"]) == (0, "SUCCEED")
    data = answer["data"]
    assert data["task_status"] == "submitted"
    assert data["task_info"] == {"external_task_id": "rabbit-1"}
    assert data["created_at"] == data["updated_at"]
    assert abs(data["created_at"] / 1000 - time.time()) < 5  # milliseconds
    assert data["task_id"].isdigit() and len(data["task_id"]) == 18

    done = wait_status(sim, "text2video", data["task_id"], "succeed")
    assert shape(done) == shape(DOC_QUERY_RESPONSE)
    video = done["data"]["task_result"]["videos"][0]
    assert video["duration"] == "5"
    assert video["url"].startswith(f"{sim.origin}/bs2/upload-kling-api/{data['task_id']}/")
    assert done["data"]["task_status_msg"] == ""
    assert done["data"]["updated_at"] > done["data"]["created_at"]
    # The caller's own id works in place of the task id.
    by_key = httpx.get(f"{sim.base_url}/v1/videos/text2video/rabbit-1", headers=auth()).json()
    assert by_key["data"]["task_id"] == data["task_id"]


def test_the_real_logged_call_gets_the_real_answer_s_shape(sim: RunningSimulator) -> None:
    created = httpx.post(
        f"{sim.base_url}/v1/videos/text2video", json=REAL_CREATE_PAYLOAD, headers=auth()
    ).json()
    assert set(created) == {"code", "message", "request_id", "data"}
    assert created["data"]["task_info"] == {"external_task_id": "text_probe_1"}
    assert set(created["data"]) == {
        "task_id",
        "task_status",
        "task_info",
        "created_at",
        "updated_at",
    }


def test_statuses_in_kling_s_words(sim: RunningSimulator) -> None:
    created = httpx.post(
        f"{sim.base_url}/v1/videos/text2video", json={"prompt": "a lark"}, headers=auth()
    ).json()
    task_id = created["data"]["task_id"]
    # The create answer is the first word (a busy machine may poll only after the job's
    # short queued phase is over).
    seen: list[str] = [created["data"]["task_status"]]
    while seen[-1] != "succeed":
        answer = httpx.get(f"{sim.base_url}/v1/videos/text2video/{task_id}", headers=auth())
        word = answer.json()["data"]["task_status"]
        if not seen or seen[-1] != word:
            seen.append(word)
        assert len(seen) <= 3, seen
        time.sleep(0.02)
    assert seen == ["submitted", "processing", "succeed"]
    no_key = httpx.get(f"{sim.base_url}/v1/videos/text2video/{task_id}", headers=auth()).json()
    assert no_key["data"]["task_info"] == {}

    failed = httpx.post(
        f"{sim.base_url}/v1/videos/text2video", json={"prompt": "[fail] a lark"}, headers=auth()
    ).json()["data"]["task_id"]
    ended = wait_status(sim, "text2video", failed, "failed")
    assert shape(ended) == shape(REAL_FAILED_RESPONSE)
    assert ended["data"]["task_result"] == {}
    assert ended["data"]["task_status_msg"] == (
        "The content triggered the platform's content security policy"
    )

    stuck = httpx.post(
        f"{sim.base_url}/v1/videos/image2video",
        json={"image": "https://example.com/a.jpg", "prompt": "[stuck]"},
        headers=auth(),
    ).json()["data"]["task_id"]
    time.sleep(1.2)
    answer = httpx.get(f"{sim.base_url}/v1/videos/image2video/{stuck}", headers=auth()).json()
    assert answer["data"]["task_status"] == "processing"
    assert "task_result" not in answer["data"]


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("text2video", {"model_name": "kling-v2-6"}, 400, 1201),  # prompt is required
        ("text2video", {"prompt": "x", "duration": "7"}, 400, 1201),
        ("text2video", {"prompt": "x", "duration": 5}, 400, 1201),  # a string, not a number
        ("text2video", {"prompt": "x", "model_name": "kling-v3", "duration": "7"}, 200, 0),
        ("text2video", {"prompt": "x", "model_name": "kling-v9"}, 404, 1203),
        ("text2video", {"prompt": "x", "model_name": "kling-v1-5"}, 400, 1201),  # i2v only
        ("text2video", {"prompt": "x", "model_name": "kling-v2-5-turbo", "sound": "on"}, 400, 1201),
        ("text2video", {"prompt": "x", "model_name": "kling-v2-6", "sound": "on"}, 400, 1201),
        ("text2video", {"prompt": "x", "aspect_ratio": "4:3"}, 400, 1201),
        ("text2video", {"prompt": "x", "mode": "max"}, 400, 1201),
        ("text2video", {"prompt": "x", "cfg_scale": 2}, 400, 1201),
        ("text2video", {"prompt": "x" * 2501}, 400, 1201),
        ("text2video", {"prompt": "[blocked] x"}, 400, 1301),
        ("text2video", {"prompt": "[concurrency] x"}, 429, 1303),
        ("image2video", {"prompt": "x"}, 400, 1201),  # image and image_tail both empty
        ("image2video", {"image": "data:image/png;base64,iVBO"}, 400, 1201),
        ("image2video", {"image_tail": "iVBORw0KGgo="}, 200, 0),
        ("text2video", ["not", "an", "object"], 400, 1200),
    ],
)
def test_request_validation(
    sim: RunningSimulator, path: str, body: object, status: int, code: int
) -> None:
    answer = httpx.post(f"{sim.base_url}/v1/videos/{path}", json=body, headers=auth())
    assert answer.status_code == status, answer.text
    envelope = answer.json()
    assert envelope["code"] == code
    if code:
        assert set(envelope) == {"code", "message", "request_id"}
        assert envelope["message"]


def test_not_json_duplicate_keys_unknown_tasks_and_routes(sim: RunningSimulator) -> None:
    raw = httpx.post(
        f"{sim.base_url}/v1/videos/text2video",
        content=b"{not json",
        headers={**auth(), "Content-Type": "application/json"},
    )
    assert (raw.status_code, raw.json()["code"]) == (400, 1200)
    body = {"prompt": "x", "external_task_id": "dup-1"}
    first = httpx.post(f"{sim.base_url}/v1/videos/text2video", json=body, headers=auth())
    again = httpx.post(f"{sim.base_url}/v1/videos/text2video", json=body, headers=auth())
    assert first.status_code == 200
    assert (again.status_code, again.json()["code"]) == (400, 1201)
    assert again.json()["message"] == "external_task_id dup-1 already exists"
    task_id = first.json()["data"]["task_id"]
    for url in (
        f"{sim.base_url}/v1/videos/text2video/123456789012345678",
        f"{sim.base_url}/v1/videos/image2video/{task_id}",  # another family's task
        f"{sim.base_url}/v1/videos/image2video/dup-1",
    ):
        missing = httpx.get(url, headers=auth())
        assert missing.status_code == 404
        assert set(missing.json()) == {"code", "message", "request_id"}
        assert missing.json()["code"] == 1203
    for method, url in (
        ("GET", f"{sim.base_url}/v1/nothing"),
        ("DELETE", f"{sim.base_url}/v1/videos/text2video/{task_id}"),
    ):
        answer = httpx.request(method, url, headers=auth())
        assert (answer.status_code, answer.json()["code"]) == (404, 1202)


def test_task_list_newest_first_and_paged(sim: RunningSimulator) -> None:
    ids = [
        httpx.post(
            f"{sim.base_url}/v1/videos/image2video",
            json={"image": "https://example.com/x.jpg", "prompt": f"list {i}"},
            headers=auth(),
        ).json()["data"]["task_id"]
        for i in range(3)
    ]
    page = httpx.get(
        f"{sim.base_url}/v1/videos/image2video",
        params={"pageNum": "1", "pageSize": "2"},
        headers=auth(),
    ).json()
    assert (page["code"], page["message"]) == (0, "SUCCEED")
    assert [task["task_id"] for task in page["data"]] == [ids[2], ids[1]]
    bad = httpx.get(
        f"{sim.base_url}/v1/videos/image2video", params={"pageSize": "0"}, headers=auth()
    )
    assert (bad.status_code, bad.json()["code"]) == (400, 1201)


# -- credentials ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "code", "message"),
    [
        ({}, 1001, "Authorization is empty"),
        ({"Authorization": ""}, 1001, "Authorization is empty"),
        ({"Authorization": "Basic abc"}, 1002, "Authorization is invalid"),
        ({"Authorization": "Bearer"}, 1002, "Authorization is invalid"),
        ({"Authorization": "Bearer not.a.jwt"}, 1002, "Authorization is invalid"),
        ({"Authorization": f"Bearer {AK}:{SK}"}, 1002, "Authorization is invalid"),
        (
            {"Authorization": "Bearer " + jwt.encode({"iss": AK, "exp": 4e9}, "x" * 32)},
            1000,
            "Authentication failed",
        ),
        (auth(iss="someone-else"), 1000, "Authentication failed"),
        (auth(exp=int(time.time()) - 1), 1004, "Authorization has expired"),
        (auth(nbf=int(time.time()) + 600), 1003, "Authorization is not yet valid"),
        (auth(exp=None), 1002, "Authorization is invalid"),  # no expiry at all
    ],
)
def test_refused_credentials(
    sim: RunningSimulator, headers: dict[str, str], code: int, message: str
) -> None:
    answer = httpx.post(
        f"{sim.base_url}/v1/videos/text2video", json={"prompt": "x"}, headers=headers
    )
    assert answer.status_code == 401
    envelope = answer.json()
    assert set(envelope) == {"code", "message", "request_id"}
    assert (envelope["code"], envelope["message"]) == (code, message)


def test_no_key_configured_accepts_any_request() -> None:
    with running_in_thread(SimConfig(protocol="kling", prefix="", job_seconds=1)) as open_sim:
        answer = httpx.post(f"{open_sim.base_url}/v1/videos/text2video", json={"prompt": "x"})
        assert answer.status_code == 200


def test_a_malformed_api_key_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="ACCESS_KEY:SECRET_KEY"):
        create_app(SimConfig(protocol="kling", prefix="", api_key="no-colon"))


# -- result files --------------------------------------------------------------------------


def test_result_urls_serve_an_mp4_then_expire(sim: RunningSimulator) -> None:
    created = httpx.post(
        f"{sim.base_url}/v1/videos/text2video", json={"prompt": "a kite"}, headers=auth()
    ).json()
    done = wait_status(sim, "text2video", created["data"]["task_id"], "succeed")
    url = done["data"]["task_result"]["videos"][0]["url"]
    whole = httpx.get(url)  # public: no Authorization
    assert whole.status_code == 200
    assert whole.headers["content-type"] == "video/mp4"
    assert whole.content[4:8] == b"ftyp"
    part = httpx.get(url, headers={"Range": "bytes=0-9"})
    assert part.status_code == 206
    assert part.content == whole.content[:10]
    time.sleep(2.1)  # expires_after_seconds = 2
    gone = httpx.get(url)
    assert (gone.status_code, gone.text) == (404, "Not Found")
    # The task itself is still there, with its (now dead) URL.
    again = wait_status(sim, "text2video", created["data"]["task_id"], "succeed")
    assert again["data"]["task_result"]["videos"][0]["url"] == url
    assert httpx.get(url.replace(".mp4", "x.mp4")).status_code == 404


# -- fault injection -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "status", "code", "headers"),
    [
        ("error_429_rate", 429, 1302, {"retry-after": "1", "retry-after-ms": "1000"}),
        ("error_500_rate", 500, 5000, {}),
        ("error_503_rate", 503, 5001, {}),
    ],
)
def test_injected_faults_in_kling_s_envelope(
    sim: RunningSimulator, setting: str, status: int, code: int, headers: dict[str, str]
) -> None:
    httpx.post(f"{sim.origin}/_sim/faults", json={setting: 1.0}).raise_for_status()
    try:
        # Faults come before the credential check, as at a real front door.
        answer = httpx.post(f"{sim.base_url}/v1/videos/text2video", json={"prompt": "x"})
    finally:
        httpx.post(f"{sim.origin}/_sim/faults", json={setting: 0.0}).raise_for_status()
    assert answer.status_code == status
    envelope = answer.json()
    assert set(envelope) == {"code", "message", "request_id"}
    assert envelope["code"] == code
    for name, value in headers.items():
        assert answer.headers[name] == value


def test_garbage_and_stats(sim: RunningSimulator) -> None:
    httpx.post(f"{sim.origin}/_sim/faults", json={"garbage_rate": 1.0}).raise_for_status()
    try:
        answer = httpx.get(f"{sim.base_url}/v1/videos/text2video/1", headers=auth())
    finally:
        httpx.post(f"{sim.origin}/_sim/faults", json={"garbage_rate": 0.0}).raise_for_status()
    assert answer.status_code == 200
    with pytest.raises(ValueError):
        answer.json()
    stats = httpx.get(f"{sim.origin}/_sim/stats").json()
    assert stats["faultsInjected"]["garbage"] >= 1
    assert stats["requests"]["GET /v1/videos/text2video/{task_id}"] >= 1
    # The control surface keeps its own envelope.
    refused = httpx.post(f"{sim.origin}/_sim/faults", json={"nope": 1})
    assert refused.status_code == 400
    assert "error" in refused.json()
