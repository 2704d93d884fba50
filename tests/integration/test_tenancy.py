"""Many users on one gateway, against real processes (vidgate in jwt mode + the simulator):
isolation on every route and on WebSocket subscribe, the admin lookup, idempotent
create (sequential, mismatched, 20 at once) and the per-user task quotas."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from websockets.asyncio.client import connect

from tests.databases import DATABASES
from tests.support import SimulatorServer, StartVidgate, VidgateServer, WriteConfig

SECRET = "tenancy-test-secret-" + "x" * 32
ISSUER = "https://login.example.test"
AUDIENCE = "vidgate"
BODY = {"prompt": "a lighthouse in a storm", "model": "sora_video2", "seconds": "4"}

database_kind = pytest.fixture(params=DATABASES)(lambda request: request.param)


def token(user: str, **claims: Any) -> str:
    payload = {"sub": user, "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 3600}
    return jwt.encode({**payload, **claims}, SECRET, algorithm="HS256")


def as_user(server: VidgateServer, user: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.url, timeout=15, headers={"Authorization": f"Bearer {token(user)}"}
    )


def start_gateway(
    start_vidgate: StartVidgate,
    simulator: SimulatorServer,
    provider_config: WriteConfig,
    limits: str = "",
) -> VidgateServer:
    config = provider_config(simulator.base_url, content="proxy")  # videos via /stream
    if limits:
        config.write_text(config.read_text() + limits)
    return start_vidgate(
        VIDGATE_CONFIG=str(config),
        VIDGATE_AUTH_MODE="jwt",
        VIDGATE_JWT_SECRET=SECRET,
        VIDGATE_JWT_ISSUER=ISSUER,
        VIDGATE_JWT_AUDIENCE=AUDIENCE,
        VIDGATE_ADMIN_USERS="support-1",
    )


@pytest.fixture
def gateway(
    start_vidgate: StartVidgate,
    simulator_process: Callable[..., SimulatorServer],
    provider_config: WriteConfig,
) -> tuple[VidgateServer, SimulatorServer]:
    simulator = simulator_process(job_seconds=1.0)
    return start_gateway(start_vidgate, simulator, provider_config), simulator


async def wait_status(client: httpx.AsyncClient, video_id: str, *statuses: str) -> dict[str, Any]:
    for _ in range(300):
        data: dict[str, Any] = (await client.get(f"/api/video/tasks/{video_id}")).json()["data"]
        if data["status"] in statuses:
            return data
        await asyncio.sleep(0.05)
    raise AssertionError(f"{video_id} never reached {statuses}")


def error_of(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert body["success"] is False, body
    return dict(body["error"])


@pytest.mark.parametrize("database_kind", ["sqlite"], indirect=True)
async def test_another_users_task_is_answered_like_a_missing_one(
    gateway: tuple[VidgateServer, SimulatorServer],
) -> None:
    server, _ = gateway
    async with as_user(server, "alice") as alice, as_user(server, "bob") as bob:
        created = await alice.post("/api/video/tasks", json=BODY)
        assert created.status_code == 201
        video_id = created.json()["data"]["videoId"]
        assert created.json()["data"]["userId"] == "alice"
        done = await wait_status(alice, video_id, "COMPLETED")
        missing = "video_" + str(uuid.uuid4())

        routes = [
            ("GET", "/api/video/tasks/{}"),
            ("GET", "/api/video/tasks/{}/content"),
            ("GET", "/api/video/tasks/{}/stream"),
            ("POST", "/api/video/tasks/{}/cancel"),
            ("POST", "/api/video/tasks/{}/retry"),
        ]
        for method, route in routes:
            theirs = await bob.request(method, route.format(video_id))
            absent = await bob.request(method, route.format(missing))
            assert theirs.status_code == absent.status_code == 404, (route, theirs.text)
            assert error_of(theirs)["code"] == error_of(absent)["code"] == "TASK_NOT_FOUND"
            assert set(error_of(theirs)) == set(error_of(absent))
        # Bob's attempts changed nothing, and lists show each user their own tasks only.
        assert (await wait_status(alice, video_id, "COMPLETED"))["updatedAt"] == done["updatedAt"]
        bobs_list = (await bob.get("/api/video/tasks")).json()["data"]
        assert bobs_list == {"items": [], "nextCursor": None}
        alices_list = (await alice.get("/api/video/tasks")).json()["data"]["items"]
        assert [t["videoId"] for t in alices_list] == [video_id]

        # WebSocket: subscribing to another user's task is refused like a missing one.
        ws_url = f"{server.ws_url}?token={token('bob')}"
        async with connect(ws_url) as ws:
            for candidate in (video_id, missing):
                await ws.send(json.dumps({"type": "subscribe", "videoId": candidate}))
                reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
                assert reply["type"] == "error", reply
                assert reply["payload"]["code"] == "TASK_NOT_FOUND"
                assert reply["payload"]["videoId"] == candidate
        async with connect(f"{server.ws_url}?token={token('bob')}&videoId={video_id}") as ws:
            reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert reply["type"] == "error" and reply["payload"]["code"] == "TASK_NOT_FOUND"

        # The owner's videoUrl plays in a <video> element, which sends no credentials;
        # without its access token the stream is refused like a missing task.
        video_url = done["videoUrl"]
        assert video_url.startswith(f"{server.url}/api/video/tasks/{video_id}/stream?")
        async with httpx.AsyncClient(timeout=15) as browser:
            played = await browser.get(video_url, headers={"Range": "bytes=0-99"})
            assert played.status_code == 206 and len(played.content) == 100
            forged = video_url.split("access_token=")[0] + "access_token=" + "A" * 32
            assert (await browser.get(forged)).status_code == 404
            bare = await browser.get(video_url.split("?")[0])
            assert bare.status_code == 401 and error_of(bare)["code"] == "AUTH_REQUIRED"

        # Support looks the task up by either id; nobody else may.
        refused = await bob.get("/api/admin/tasks", params={"videoId": video_id})
        assert refused.status_code == 403 and error_of(refused)["code"] == "ADMIN_REQUIRED"
        async with as_user(server, "support-1") as support:
            by_external = await support.get(
                "/api/admin/tasks", params={"externalVideoId": done["externalVideoId"]}
            )
            assert by_external.status_code == 200
            items = by_external.json()["data"]["items"]
            assert [(t["videoId"], t["userId"]) for t in items] == [(video_id, "alice")]
            by_video = await support.get("/api/admin/tasks", params={"videoId": video_id})
            assert (
                by_video.json()["data"]["items"][0]["externalVideoId"] == (done["externalVideoId"])
            )
            none_found = await support.get("/api/admin/tasks", params={"videoId": missing})
            assert none_found.json() == {"success": True, "data": {"items": []}}
            both = await support.get(
                "/api/admin/tasks", params={"videoId": video_id, "externalVideoId": "x"}
            )
            assert both.status_code == 422 and error_of(both)["code"] == "VALIDATION_ERROR"
            # The admin role does not open other users' tasks on the user routes.
            assert (await support.get(f"/api/video/tasks/{video_id}")).status_code == 404


async def test_idempotent_create(gateway: tuple[VidgateServer, SimulatorServer]) -> None:
    server, simulator = gateway
    async with as_user(server, "alice") as alice, as_user(server, "bob") as bob:
        key = {"Idempotency-Key": "order-1234"}
        first = await alice.post("/api/video/tasks", json=BODY, headers=key)
        assert first.status_code == 201
        assert "Idempotent-Replayed" not in first.headers
        video_id = first.json()["data"]["videoId"]

        again = await alice.post("/api/video/tasks", json=BODY, headers=key)
        assert again.status_code == 201
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.json()["data"]["videoId"] == video_id

        quoted = await alice.post(
            "/api/video/tasks", json=BODY, headers={"Idempotency-Key": '"order-1234"'}
        )
        assert quoted.json()["data"]["videoId"] == video_id  # the draft's sf-string form

        other_body = await alice.post(
            "/api/video/tasks", json={**BODY, "prompt": "something else"}, headers=key
        )
        assert other_body.status_code == 422
        assert error_of(other_body)["code"] == "IDEMPOTENCY_KEY_REUSED"

        bobs = await bob.post("/api/video/tasks", json=BODY, headers=key)
        assert bobs.status_code == 201 and "Idempotent-Replayed" not in bobs.headers
        assert bobs.json()["data"]["videoId"] != video_id  # keys are scoped per user

        for bad in (b"", b"x" * 256, "caf\u00e9".encode()):
            refused = await alice.post(
                "/api/video/tasks", json=BODY, headers={"Idempotency-Key": bad}
            )
            assert refused.status_code == 400, bad
            assert error_of(refused)["code"] == "INVALID_IDEMPOTENCY_KEY"

        # 20 identical creates at once: one task, one upstream job. The tasks above are
        # submitted first, so that the count below sees only the burst's job.
        await wait_status(alice, video_id, "COMPLETED")
        await wait_status(bob, bobs.json()["data"]["videoId"], "COMPLETED")
        jobs_before = int(simulator.stats()["jobsCreated"])  # type: ignore[call-overload]
        burst = {"Idempotency-Key": "burst-" + uuid.uuid4().hex}
        answers = await asyncio.gather(
            *(alice.post("/api/video/tasks", json=BODY, headers=burst) for _ in range(20))
        )
        assert [a.status_code for a in answers] == [201] * 20
        ids = {a.json()["data"]["videoId"] for a in answers}
        assert len(ids) == 1
        assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 19
        await wait_status(alice, ids.pop(), "COMPLETED")
        assert int(simulator.stats()["jobsCreated"]) == jobs_before + 1  # type: ignore[call-overload]
        listed = (await alice.get("/api/video/tasks", params={"limit": 100})).json()["data"]
        assert len(listed["items"]) == 2


LIMITS = """
[limits]
active_tasks = 100

[plans.free]
active_tasks = 2
tasks_per_day = 3

[users."alice"]
plan = "free"

[users."carol"]
requests_per_minute = 5
"""


@pytest.mark.parametrize("database_kind", ["sqlite"], indirect=True)
async def test_task_quotas_are_reached_and_recovered(
    start_vidgate: StartVidgate,
    simulator_process: Callable[..., SimulatorServer],
    provider_config: WriteConfig,
) -> None:
    simulator = simulator_process(job_seconds=30.0)  # tasks stay active
    server = start_gateway(start_vidgate, simulator, provider_config, limits=LIMITS)
    async with as_user(server, "alice") as alice, as_user(server, "bob") as bob:
        first = (await alice.post("/api/video/tasks", json=BODY)).json()["data"]
        assert (await alice.post("/api/video/tasks", json=BODY)).status_code == 201
        full = await alice.post("/api/video/tasks", json=BODY)
        assert full.status_code == 429
        assert error_of(full)["code"] == "ACTIVE_TASK_LIMIT"
        assert error_of(full)["details"]["limit"] == 2
        assert int(full.headers["Retry-After"]) >= 1
        # Bob's plan is the default: alice's limit is hers alone.
        for _ in range(3):
            assert (await bob.post("/api/video/tasks", json=BODY)).status_code == 201

        # Cancelling one frees a slot; the day's allowance (3) then runs out.
        cancelled = await alice.post(f"/api/video/tasks/{first['videoId']}/cancel")
        assert cancelled.status_code == 200
        assert (await alice.post("/api/video/tasks", json=BODY)).status_code == 201
        # A retry makes a task active again, so it is held to the same limit.
        retried = await alice.post(f"/api/video/tasks/{first['videoId']}/retry")
        assert retried.status_code == 429
        assert error_of(retried)["code"] == "ACTIVE_TASK_LIMIT"
        listed = (await alice.get("/api/video/tasks")).json()["data"]["items"]
        for task in listed:
            await alice.post(f"/api/video/tasks/{task['videoId']}/cancel")
        daily = await alice.post("/api/video/tasks", json=BODY)
        assert daily.status_code == 429
        assert error_of(daily)["code"] == "DAILY_TASK_LIMIT"
        assert error_of(daily)["details"]["limit"] == 3
        retry_after = int(daily.headers["Retry-After"])
        assert 23 * 3600 < retry_after <= 24 * 3600
        assert error_of(daily)["details"]["retryAfterSeconds"] == retry_after
        # Nothing accepted was lost: alice has exactly her three tasks.
        assert len(listed) == 3

    # A request rate of 5 a minute: the sixth request is refused, for carol alone.
    async with as_user(server, "carol") as carol, as_user(server, "bob") as bob:
        for _ in range(5):
            assert (await carol.get("/api/video/tasks")).status_code == 200
        limited = await carol.get("/api/video/tasks")
        assert limited.status_code == 429
        assert error_of(limited)["code"] == "RATE_LIMITED"
        assert error_of(limited)["details"]["limit"] == 5
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        refused_create = await carol.post("/api/video/tasks", json=BODY)
        assert refused_create.status_code == 429  # refused before anything is stored
        assert (await bob.get("/api/video/tasks")).status_code == 200
