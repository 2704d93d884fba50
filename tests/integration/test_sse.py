"""Server-sent events over real sockets: one task's stream and the all-tasks stream, read
with httpx-sse, checked against the ``task_events`` rows the real vidgate process wrote."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from httpx_sse import ServerSentEvent, aconnect_sse

from tests.databases import DATABASES, Kind, query
from tests.integration.test_auth import create_key
from tests.integration.test_scale_out import PrivateRedis
from tests.kinds import wait_for
from tests.support import (
    SimulatorServer,
    StartVidgate,
    VidgateServer,
    WriteConfig,
    launch_vidgate,
)

TERMINAL = {"taskCompleted", "taskFailed", "taskCancelled"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VidgateServer]:
    """One server for the tests that do not disturb each other; 3 s jobs leave time to
    drop a connection in the middle of one."""
    started = launch_vidgate(tmp_path_factory.mktemp("sse"), job_seconds=3.0)
    yield started
    started.stop()


Stored = tuple[int, str, str, dict[str, Any]]  # (id, videoId, type, payload)


def stored(server: VidgateServer, video_id: str | None = None) -> list[Stored]:
    """The ``task_events`` rows, oldest first (of one task, or of all)."""
    sql = "SELECT id, video_id, type, payload FROM task_events"
    args: tuple[str, ...] = ()
    if video_id is not None:
        sql, args = sql + " WHERE video_id = $1", (video_id,)
    rows = query(server.env["VIDGATE_DATABASE_URL"], sql + " ORDER BY id", *args)
    return [
        (int(i), v, kind, body if isinstance(body, dict) else json.loads(body))
        for i, v, kind, body in rows
    ]


def as_stored(event: ServerSentEvent) -> Stored:
    payload = json.loads(event.data)
    return (int(event.id), payload["videoId"], event.event, payload)


async def create(client: httpx.AsyncClient, prompt: str = "a heron in the rain") -> str:
    response = await client.post("/api/video/tasks", json={"prompt": prompt})
    assert response.status_code == 201, response.text
    video_id: str = response.json()["data"]["videoId"]
    return video_id


async def read_events(
    client: httpx.AsyncClient,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    until: Callable[[list[ServerSentEvent]], bool] = lambda _: False,
    within: float = 20,
) -> tuple[list[ServerSentEvent], bool]:
    """The events of a stream (frames without data left out), until ``until`` holds or the
    server ends the stream; and whether the server ended it."""
    seen: list[ServerSentEvent] = []

    async def read() -> bool:
        async with aconnect_sse(client, "GET", url, headers=dict(headers or {})) as source:
            assert source.response.status_code == 200, await source.response.aread()
            async for event in source.aiter_sse():
                if event.data:
                    seen.append(event)
                    if until(seen):
                        return False
        return True

    ended = await asyncio.wait_for(read(), within)
    return seen, ended


def terminal_seen(events: list[ServerSentEvent]) -> bool:
    return any(e.event in TERMINAL for e in events)


# ---------------------------------------------------------------------------- one task


async def test_a_task_stream_from_its_state_to_its_end(server: VidgateServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        video_id = await create(client)
        url = f"/api/video/tasks/{video_id}/events"
        async with client.stream("GET", url) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["cache-control"] == "no-cache"
            assert response.headers["x-accel-buffering"] == "no"
            raw = (await asyncio.wait_for(response.aread(), 20)).decode()
        assert raw.startswith("retry: 3000"), raw[:80]
        frames = [_frame(f) for f in raw.replace("\r\n", "\n").split("\n\n") if "data:" in f]

        events, ended = await read_events(client, url)  # again, now that it has finished
        assert ended
    rows = stored(server, video_id)
    assert rows[-1][2] == "taskCompleted"
    # Opened on a finished task: its final state, with the id of the event it reflects.
    [snapshot] = events
    assert snapshot.event == "subscribed" and int(snapshot.id) == rows[-1][0]
    assert json.loads(snapshot.data) == rows[-1][3]

    # The first stream: the state first, then every later event as stored, then the end.
    (shown, kind, state), *later = frames
    assert kind == "subscribed" and state["videoId"] == video_id
    expected = [r for r in rows if r[0] > (shown or 0)]
    assert later == [(r[0], r[2], r[3]) for r in expected]
    assert later[-1][1] == "taskCompleted"
    for _, _, data in later:
        assert data["videoId"] == video_id and data["externalVideoId"]


def _frame(text: str) -> tuple[int | None, str, dict[str, Any]]:
    """(id, event, data) of one raw SSE frame."""
    fields = dict(line.split(": ", 1) for line in text.split("\n") if ": " in line)
    event_id = fields.get("id")
    return (
        (None if event_id is None else int(event_id)),
        fields["event"],
        json.loads(fields["data"]),
    )


async def test_reconnecting_with_last_event_id_sees_every_event_once(
    server: VidgateServer,
) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        video_id = await create(client)
        url = f"/api/video/tasks/{video_id}/events"
        # Drop the connection after the first event that follows the state.
        first, ended = await read_events(
            client, url, until=lambda seen: len(seen) >= 2 and seen[-1].event == "taskProgress"
        )
        assert not ended and first[0].event == "subscribed"
        await asyncio.sleep(1.2)  # events happen while nobody listens
        last = first[-1].id
        rest, ended = await read_events(client, url, headers={"Last-Event-ID": last})
        assert ended and rest, "the resumed stream ends after the terminal event"
        assert all(e.event != "subscribed" for e in rest), "an exact resume sends no snapshot"

        # The same through the query parameter (EventSource cannot set headers).
        again, _ = await read_events(client, f"{url}?lastEventId={last}")
        assert [as_stored(e) for e in again] == [as_stored(e) for e in rest]
        # The header wins over the URL a browser opened the stream with.
        tail, _ = await read_events(
            client, f"{url}?lastEventId=0", headers={"Last-Event-ID": rest[-2].id}
        )
        assert [e.id for e in tail] == [rest[-1].id]
        # Nothing left after the terminal event: 204 tells a browser to stop.
        done = await client.get(url, headers={"Last-Event-ID": rest[-1].id})
        assert done.status_code == 204 and done.content == b""

    rows = stored(server, video_id)
    shown = int(first[0].id) if first[0].id else 0
    got = [as_stored(e) for e in first[1:] + rest]
    assert got == [r for r in rows if r[0] > shown], "every event once, in order, as stored"
    assert len(rest) >= 2, "events were missed while disconnected, and replayed"


async def test_bad_last_event_ids_are_refused(server: VidgateServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        video_id = await create(client)
        for url in (f"/api/video/tasks/{video_id}/events", "/api/video/events"):
            for bad in ("abc", "-1", "1.5", "", "9" * 25, "0x10"):
                answer = await client.get(url, headers={"Last-Event-ID": bad})
                assert answer.status_code == 400, (url, bad, answer.text)
                body = answer.json()
                assert body["success"] is False
                assert body["error"]["code"] == "INVALID_LAST_EVENT_ID"
                assert body["error"]["details"] == {"field": "Last-Event-ID"}
            for bad in ("x1", "١٢", "+5"):
                answer = await client.get(url, params={"lastEventId": bad})
                assert answer.status_code == 400
                assert answer.json()["error"]["details"] == {"field": "lastEventId"}
        missing = await client.get("/api/video/tasks/video_nope/events")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "TASK_NOT_FOUND"


async def test_auth_token_and_ownership(start_vidgate: StartVidgate) -> None:
    server = start_vidgate(VIDGATE_AUTH_MODE="apikey", job_seconds=1.0)
    _, alice = create_key(server, "alice")
    _, bob = create_key(server, "bob")
    as_alice = {"Authorization": f"Bearer {alice}"}
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        # Bob follows all of his tasks while Alice's task runs.
        bobs = asyncio.create_task(  # ends at the first event it gets: there must be none
            read_events(client, f"/api/video/events?token={bob}", until=bool, within=3)
        )
        await asyncio.sleep(0.3)
        response = await client.post("/api/video/tasks", json={"prompt": "a fox"}, headers=as_alice)
        video_id = response.json()["data"]["videoId"]
        url = f"/api/video/tasks/{video_id}/events"

        assert (await client.get(url)).status_code == 401
        assert (await client.get(url, params={"token": "vg_bad"})).status_code == 401
        other = await client.get(url, headers={"Authorization": f"Bearer {bob}"})
        assert other.status_code == 404 and other.json()["error"]["code"] == "TASK_NOT_FOUND"
        other = await client.get(url, params={"token": bob})
        assert other.status_code == 404
        assert (await client.get("/api/video/events")).status_code == 401

        by_header, _ = await read_events(client, url, headers=as_alice)
        by_token, _ = await read_events(client, f"{url}?token={alice}")
        for seen in (by_header, by_token):  # each ended with the task's final state
            assert json.loads(seen[-1].data)["status"] == "completed", seen
        with pytest.raises(TimeoutError):
            await bobs  # nothing of Alice's reached Bob's stream; it never ends
    assert alice not in server.output() and bob not in server.output()


# ------------------------------------------------------------------------- all tasks


@pytest.mark.parametrize("database_kind", DATABASES)
async def test_the_all_tasks_stream_and_its_resume(
    database_kind: Kind, start_vidgate: StartVidgate
) -> None:
    server = start_vidgate(job_seconds=1.5, VIDGATE_SSE_PING_SECONDS="0.3")
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        async with client.stream("GET", "/api/video/events") as response:
            lines = response.aiter_lines()
            first = [await anext(lines), await anext(lines)]
            assert first == ["id: 0", "retry: 3000"], first  # sets the client's last id
            while await asyncio.wait_for(anext(lines), 2) != ": ping":
                pass  # an idle stream still says it is alive

        # Five tasks at once; the client drops the stream in the middle and resumes.
        follow = asyncio.create_task(
            read_events(client, "/api/video/events", until=lambda seen: len(seen) >= 5)
        )
        await asyncio.sleep(0.3)
        done = await asyncio.gather(*(create(client, f"a fox, take {n}") for n in range(5)))
        before, ended = await follow
        assert not ended

        def all_ended(seen: list[ServerSentEvent]) -> bool:
            return sum(e.event in TERMINAL for e in before + seen) == len(done)

        after, _ = await read_events(
            client, "/api/video/events", headers={"Last-Event-ID": before[-1].id}, until=all_ended
        )
        for video_id in done:
            await wait_for(client, video_id, {"COMPLETED"})

        rows = stored(server)
        assert {r[1] for r in rows} == set(done)
        events = before + after
        assert [as_stored(e) for e in events] == rows, "every event once, in id order"

        # Resume from the middle: the rest, each once, in order.
        middle = rows[len(rows) // 2][0]
        rest, _ = await read_events(
            client,
            "/api/video/events",
            headers={"Last-Event-ID": str(middle)},
            until=lambda seen: seen[-1].id == str(rows[-1][0]),
        )
        assert [as_stored(e) for e in rest] == [r for r in rows if r[0] > middle]
        everything, _ = await read_events(
            client,
            "/api/video/events?lastEventId=0",
            until=lambda seen: seen[-1].id == str(rows[-1][0]),
        )
        assert [as_stored(e) for e in everything] == rows

        # An id this server never issued: no replay to trust, so the state of unfinished
        # tasks (none here) and then everything stored.
        unknown, _ = await read_events(
            client,
            "/api/video/events",
            headers={"Last-Event-ID": "99999"},
            until=lambda seen: seen[-1].id == str(rows[-1][0]),
        )
        assert [as_stored(e) for e in unknown] == rows

        # A stream that never ends does not hold up a shutdown, and ends cleanly.
        async with client.stream("GET", "/api/video/events") as response:
            lines = response.aiter_lines()
            assert await anext(lines) == f"id: {rows[-1][0]}"
            started = time.monotonic()
            await asyncio.to_thread(server.stop)
            assert time.monotonic() - started < 8
            rest = [line async for line in lines if line not in ("", ": ping")]
            assert rest == ["retry: 3000"]  # and then the end of the response
    assert "without completing response" not in server.output()


# ------------------------------------------------- PostgreSQL: ids visible out of order


def _insert(video_id: str, version: int) -> tuple[str, tuple[Any, ...]]:
    return (
        "INSERT INTO task_events (video_id, type, payload, timestamp_ms, task_version)"
        " VALUES ($1, 'taskProgress', $2::json, $3, $4) RETURNING id",
        (
            video_id,
            json.dumps({"videoId": video_id, "note": f"v{version}"}),
            int(time.time() * 1000),
            version,
        ),
    )


@pytest.mark.parametrize("database_kind", ["postgresql"])
async def test_an_id_committed_late_is_sent_in_order(
    database_kind: Kind, start_vidgate: StartVidgate
) -> None:
    """On PostgreSQL a smaller id can become visible after a larger one: the all-tasks
    stream holds the larger one until then, so ids go out in order and a resume from any
    of them is exact."""
    server = start_vidgate(job_seconds=0.5)
    url = server.env["VIDGATE_DATABASE_URL"]
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        video_id = await create(client)
        await wait_for(client, video_id, {"COMPLETED"})
        follow = asyncio.create_task(
            read_events(client, "/api/video/events", until=lambda seen: len(seen) >= 2)
        )
        await asyncio.sleep(0.5)
        slow, quick = await asyncpg.connect(url), await asyncpg.connect(url)
        try:
            transaction = slow.transaction()
            await transaction.start()
            sql, args = _insert(video_id, 100)
            late = await slow.fetchval(sql, *args)  # id taken, not yet visible
            sql, args = _insert(video_id, 101)
            early = await quick.fetchval(sql, *args)  # a larger id, visible at once
            assert early == late + 1
            await asyncio.sleep(2.5)  # the stream polls every second: it has seen `early`
            assert not follow.done(), "the larger id was sent before the smaller one"
            await transaction.commit()
            events, _ = await asyncio.wait_for(follow, 10)
        finally:
            await slow.close()
            await quick.close()
        assert [int(e.id) for e in events] == [late, early]
        assert [json.loads(e.data)["note"] for e in events] == ["v100", "v101"]


# --------------------------------------------- wake-ups from another process (Redis)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("database_kind", ["postgresql"])
def test_a_worker_elsewhere_wakes_streams_and_held_creates(
    database_kind: Kind,
    database_url: str,
    tmp_path: Path,
    private_redis: PrivateRedis,
    simulator_process: Callable[..., SimulatorServer],
    provider_config: WriteConfig,
) -> None:
    """The api process writes no event itself: its notifier is woken through Redis. Its
    fallback read is slowed to 30 s, so prompt answers prove the wake-ups arrived."""
    simulator = simulator_process(job_seconds=1.0)
    env = {
        "VIDGATE_CONFIG": str(provider_config(simulator.base_url)),
        "VIDGATE_REDIS_URL": private_redis.url,
    }
    worker = launch_vidgate(tmp_path, database_url=database_url, role="worker", **env)
    api = launch_vidgate(
        tmp_path,
        database_url=database_url,
        role="api",
        VIDGATE_EVENT_POLL_SECONDS="30",
        **env,
    )
    try:

        async def run() -> None:
            async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
                follow = asyncio.create_task(
                    read_events(client, "/api/video/events", until=terminal_seen, within=15)
                )
                await asyncio.sleep(0.3)
                started = time.monotonic()
                response = await client.post(
                    "/api/video/tasks", json={"prompt": "a fox"}, headers={"Prefer": "wait=20"}
                )
                assert response.status_code == 200, response.text
                assert time.monotonic() - started < 10
                events, _ = await follow
                assert events[-1].event == "taskCompleted"
                assert json.loads(events[-1].data)["videoId"] == response.json()["data"]["videoId"]

        asyncio.run(run())
    finally:
        api.stop()
        worker.stop()
