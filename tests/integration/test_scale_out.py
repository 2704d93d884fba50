"""Scale-out: api and worker processes on PostgreSQL and Redis, with real processes.

2 api + 2 worker processes share a fresh PostgreSQL database and a private Redis; tasks are
created alternately on both api processes and followed over WebSocket on the api they were
created on, while the messages come from the workers (other processes), through Redis wake-ups
and the event log. One worker is killed with SIGKILL mid-run; the other finishes everything.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.databases import fresh_postgres_sync, in_ci, query, require_postgres
from tests.integration.test_engine_race import overlaps, step_lines, steps_of
from tests.support import (
    SimulatorServer,
    VidgateServer,
    WriteConfig,
    free_port,
    launch_vidgate,
)

TASKS = 200
TERMINAL_TYPES = {"taskCompleted", "taskFailed", "taskCancelled"}


class PrivateRedis:
    """A redis-server of our own on a free port, so restarting it disturbs nothing else."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            if in_ci():
                pytest.fail("redis-server is not installed, and CI must run the Redis tests")
            pytest.skip("redis-server is not installed")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ping = subprocess.run(
                ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, check=False
            )
            if ping.stdout.strip() == b"PONG":
                return
            time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    require_postgres()
    with fresh_postgres_sync() as url:
        yield url


class Follower:
    """One WebSocket per api process, following the tasks created there."""

    def __init__(self, server: VidgateServer) -> None:
        self.server = server
        self.messages: dict[str, list[dict[str, Any]]] = {}
        self.socket: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self.socket = await connect(self.server.ws_url, max_queue=None)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.socket is not None
        async for raw in self.socket:
            message = json.loads(raw)
            video_id = message.get("payload", {}).get("videoId")
            if video_id:
                self.messages.setdefault(video_id, []).append(message)

    async def follow(self, video_id: str) -> None:
        assert self.socket is not None
        await self.socket.send(json.dumps({"type": "subscribe", "videoId": video_id}))

    def done(self, video_id: str) -> bool:
        return any(m["type"] in TERMINAL_TYPES for m in self.messages.get(video_id, []))

    async def close(self) -> None:
        if self.socket is not None:
            await self.socket.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)


def assert_every_later_message(
    database_url: str, video_id: str, received: list[dict[str, Any]]
) -> None:
    """After its snapshot, a follower got exactly the task's logged messages, in order."""
    assert received and received[0]["type"] == "subscribed", received[:1]
    snapshot_at = received[0]["timestamp"]
    pushed = [(m["type"], m["payload"]) for m in received[1:]]
    rows = query(
        database_url,
        "SELECT type, payload, timestamp_ms FROM task_events WHERE video_id = $1 ORDER BY id",
        video_id,
    )
    logged = [(kind, json.loads(body) if isinstance(body, str) else body) for kind, body, _ in rows]
    later = [(kind, body) for kind, body, stamp in rows if stamp > snapshot_at]
    # What arrived is the tail of the log, and holds everything logged after the snapshot.
    assert pushed, (video_id, received)
    assert pushed == logged[len(logged) - len(pushed) :], (video_id, pushed, logged)
    assert len(pushed) >= len(later), (video_id, pushed, later)
    assert pushed[-1][0] == "taskCompleted", (video_id, pushed)
    assert pushed[-1][1]["externalVideoId"] and pushed[-1][1]["videoId"] == video_id


def test_two_apis_and_two_workers_on_postgres_and_redis(
    tmp_path: Path,
    postgres_url: str,
    redis: PrivateRedis,
    simulator_process: Any,
    provider_config: WriteConfig,
) -> None:
    # Slow upstream answers keep steps in flight long enough that one worker, capped at
    # 8 steps at once, cannot take every task: both workers get work.
    simulator: SimulatorServer = simulator_process(job_seconds=3.0, extra=["--latency-ms", "150"])
    env = {
        "VIDGATE_CONFIG": str(provider_config(simulator.base_url)),
        "VIDGATE_REDIS_URL": redis.url,
        "VIDGATE_LEASE_SECONDS": "3",
        "VIDGATE_MAX_IN_FLIGHT": "8",
        "VIDGATE_LOG_FORMAT": "json",
        "VIDGATE_LOG_LEVEL": "DEBUG",
    }
    started: list[VidgateServer] = []
    try:
        for role in ("api", "api", "worker", "worker"):
            started.append(launch_vidgate(tmp_path, database_url=postgres_url, role=role, **env))
        apis, workers = started[:2], started[2:]
        killed_at = asyncio.run(run_load(postgres_url, apis, workers))

        stats = simulator.stats()
        assert stats["jobsCreated"] == TASKS  # the killed worker's tasks were not sent twice
        steps, _ = steps_of([line for w in workers for line in step_lines(w.log)])
        assert len({s.owner for s in steps}) == 2, "both workers should have had work"
        # The killed worker's steps in flight end with it (they never log their end).
        steps = [dataclasses.replace(s, end=s.end or killed_at) for s in steps]
        assert overlaps(steps) == [], "a task was stepped by two workers at once"
    finally:
        for server in started:
            server.stop()


async def busy(worker: VidgateServer, *, steps: int) -> None:
    """Wait until ``worker`` has begun ``steps`` steps (it claims tasks, not just idles)."""
    deadline = time.monotonic() + 30
    while len([e for e in step_lines(worker.log) if e["action"] == "step.begin"]) < steps:
        assert time.monotonic() < deadline, "the worker never took any work"
        await asyncio.sleep(0.1)


async def run_load(
    database_url: str, apis: list[VidgateServer], workers: list[VidgateServer]
) -> datetime:
    """Create and follow every task, killing the first worker halfway; when it was killed."""
    followers = [Follower(api) for api in apis]
    for follower in followers:
        await follower.open()
    owner: dict[str, Follower] = {}
    killed_at = datetime.now(UTC)
    async with httpx.AsyncClient(timeout=10) as client:
        for i in range(TASKS):
            follower = followers[i % 2]
            response = await client.post(
                f"{follower.server.url}/api/video/tasks", json={"prompt": f"a heron {i}"}
            )
            assert response.status_code == 201, response.text
            video_id = response.json()["data"]["videoId"]
            owner[video_id] = follower
            await follower.follow(video_id)
            if i == TASKS // 2:
                # Mid-run, once it is busy, with tasks of every stage leased to it.
                await busy(workers[0], steps=20)
                workers[0].kill()
                killed_at = datetime.now(UTC)

        deadline = time.monotonic() + 90
        while not all(f.done(v) for v, f in owner.items()):
            assert time.monotonic() < deadline, "not every task reached its followers"
            await asyncio.sleep(0.2)

        for video_id, follower in owner.items():
            task = (await client.get(f"{apis[1].url}/api/video/tasks/{video_id}")).json()["data"]
            assert task["status"] == "COMPLETED", task
            assert_every_later_message(database_url, video_id, follower.messages[video_id])
    for follower in followers:
        await follower.close()
    return killed_at


def test_subscribers_survive_a_redis_restart(
    tmp_path: Path,
    postgres_url: str,
    redis: PrivateRedis,
    simulator_process: Any,
    provider_config: WriteConfig,
) -> None:
    simulator: SimulatorServer = simulator_process(job_seconds=4.0)
    env = {
        "VIDGATE_CONFIG": str(provider_config(simulator.base_url)),
        "VIDGATE_REDIS_URL": redis.url,
    }
    api = launch_vidgate(tmp_path, database_url=postgres_url, role="api", **env)
    worker = launch_vidgate(tmp_path, database_url=postgres_url, role="worker", **env)
    try:
        asyncio.run(follow_through_restart(postgres_url, api, redis))
        ready = httpx.get(f"{api.url}/readyz").json()
        assert ready["success"] is True
    finally:
        api.stop()
        worker.stop()


async def follow_through_restart(
    database_url: str, api: VidgateServer, redis: PrivateRedis
) -> None:
    follower = Follower(api)
    await follower.open()
    async with httpx.AsyncClient(timeout=10) as client:
        ids = []
        for i in range(10):
            response = await client.post(f"{api.url}/api/video/tasks", json={"prompt": f"owl {i}"})
            ids.append(response.json()["data"]["videoId"])
            await follower.follow(ids[-1])
        await asyncio.sleep(1.0)
        redis.stop()  # every wake-up from now on is lost until Redis is back
        down = await client.get(f"{api.url}/readyz")
        assert down.status_code == 503
        assert down.json()["error"]["code"] == "NOT_READY"
        await asyncio.sleep(1.5)
        redis.start()
        deadline = time.monotonic() + 30
        while not all(follower.done(v) for v in ids):
            assert time.monotonic() < deadline, "a subscriber missed the end of its task"
            await asyncio.sleep(0.2)
    for video_id in ids:
        assert_every_later_message(database_url, video_id, follower.messages[video_id])
    await follower.close()
