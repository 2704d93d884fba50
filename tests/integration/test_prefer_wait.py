"""``Prefer: wait=N`` on create (RFC 7240) against a real vidgate process and its simulator."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support import VidgateServer, launch_vidgate

CREATE = "/api/video/tasks"
BODY = {"prompt": "a kingfisher diving"}


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VidgateServer]:
    """1 s jobs; the fallback read is slowed to 30 s, so a held request that answers soon
    after its task ends was woken by the task's event, not by reading on a timer."""
    server = launch_vidgate(
        tmp_path_factory.mktemp("prefer"), job_seconds=1.0, VIDGATE_EVENT_POLL_SECONDS="30"
    )
    yield server
    server.stop()


async def held(
    client: httpx.AsyncClient, prefer: str | list[str], **headers: str
) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    values = [prefer] if isinstance(prefer, str) else prefer
    pairs = [("Prefer", v) for v in values] + list(headers.items())
    response = await client.post(CREATE, json=BODY, headers=pairs)
    return response, time.monotonic() - started


def finished(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    envelope = response.json()
    assert envelope["success"] is True
    task: dict[str, Any] = envelope["data"]
    assert task["status"] == "COMPLETED" and task["progress"] == 100
    assert task["videoId"].startswith("video_") and task["externalVideoId"]
    assert task["videoUrl"] and task["completedAt"]
    return task


async def test_a_short_job_comes_back_finished(quick: VidgateServer) -> None:
    async with httpx.AsyncClient(base_url=quick.url, timeout=30) as client:
        (one, took), (two, _) = await asyncio.gather(
            held(client, "wait=20"), held(client, "respond-async, wait=20; x=1")
        )
        assert one.headers["preference-applied"] == "wait=20"
        assert two.headers["preference-applied"] == "wait=20"
        task = finished(one)
        finished(two)
        assert 0.9 <= took < 10, took  # the job's second, plus a little: woken, not polled
        # The same task through the REST read: what the held answer said.
        again = (await client.get(f"{CREATE}/{task['videoId']}")).json()["data"]
        assert again["status"] == "COMPLETED" and again["videoUrl"] == task["videoUrl"]


async def test_more_than_60_seconds_is_capped(quick: VidgateServer) -> None:
    async with httpx.AsyncClient(base_url=quick.url, timeout=30) as client:
        for prefer in ("wait=3600", "WAIT=99999999999999999999", 'wait="61"'):
            response, _ = await held(client, prefer)
            assert response.headers["preference-applied"] == "wait=60", prefer
            finished(response)


async def test_without_wait_nothing_is_held(quick: VidgateServer) -> None:
    async with httpx.AsyncClient(base_url=quick.url, timeout=30) as client:
        for prefer in ("respond-async", "return=minimal", "wait=0", "waiting=5"):
            response, took = await held(client, prefer)
            assert response.status_code == 201, (prefer, response.text)
            assert response.json()["data"]["status"] == "QUEUED"
            assert took < 1.0, (prefer, took)
            applied = response.headers.get("preference-applied")
            assert applied == ("wait=0" if prefer == "wait=0" else None), prefer
        # Only the first wait counts (RFC 7240 §2), across several Prefer headers.
        response, _ = await held(client, ["respond-async", "wait=0", "wait=20"])
        assert response.status_code == 201 and response.headers["preference-applied"] == "wait=0"


async def test_bad_waits_are_refused_and_create_nothing(quick: VidgateServer) -> None:
    async with httpx.AsyncClient(base_url=quick.url, timeout=30) as client:
        before = len((await client.get(CREATE, params={"limit": 100})).json()["data"]["items"])
        for prefer in ("wait=-1", "wait=abc", "wait=1.5", "wait", "wait=", 'wait=""', "wait=1e3"):
            response, _ = await held(client, prefer)
            assert response.status_code == 400, (prefer, response.text)
            error = response.json()
            assert error["success"] is False
            assert error["error"]["code"] == "INVALID_PREFER"
            assert error["error"]["details"]["field"] == "Prefer"
            assert "preference-applied" not in response.headers
        after = len((await client.get(CREATE, params={"limit": 100})).json()["data"]["items"])
        assert after == before


async def test_with_an_idempotency_key(quick: VidgateServer) -> None:
    async with httpx.AsyncClient(base_url=quick.url, timeout=30) as client:
        first, _ = await held(client, "wait=20", **{"Idempotency-Key": "prefer-1"})
        task = finished(first)
        assert "idempotent-replayed" not in first.headers
        # A replay answers the same task; held or not, as the replay itself asks.
        replay, took = await held(client, "wait=20", **{"Idempotency-Key": "prefer-1"})
        assert replay.headers["idempotent-replayed"] == "true"
        assert finished(replay)["videoId"] == task["videoId"] and took < 1.0
        plain = await client.post(CREATE, json=BODY, headers={"Idempotency-Key": "prefer-1"})
        assert plain.status_code == 201 and plain.headers["idempotent-replayed"] == "true"
        assert plain.json()["data"]["videoId"] == task["videoId"]
        assert "preference-applied" not in plain.headers


async def test_a_long_job_is_answered_201_after_the_wait(tmp_path_factory: Any) -> None:
    server = launch_vidgate(tmp_path_factory.mktemp("prefer-long"), job_seconds=30.0)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            response, took = await held(client, "wait=2")
            assert response.status_code == 201, response.text
            assert response.headers["preference-applied"] == "wait=2"
            task = response.json()["data"]
            assert task["status"] in ("QUEUED", "PROCESSING")
            assert 1.9 <= took < 5, took
    finally:
        server.kill()  # not stop(): no need to wait for its 30 s job to drain
