"""Chaos: a real `vidgate serve` killed with SIGKILL at random moments and restarted on the same
SQLite file, while tasks keep arriving, against a real simulator process that keeps count.

At the end every task is terminal, none the server acknowledged is lost, and every upstream job
the simulator created is one attempt vidgate recorded (no duplicate, no orphan).

Size it by hand with VIDGATE_CHAOS_TASKS (default 200) and VIDGATE_CHAOS_KILLS (default 10);
VIDGATE_CHAOS_SEED replays a schedule (the seed is printed, and written with the run's figures
to `chaos-figures.json` in the test's tmp dir).
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import SimulatorServer, StartVidgate, VidgateServer, WriteConfig

TASKS = int(os.environ.get("VIDGATE_CHAOS_TASKS", "200"))
KILLS = int(os.environ.get("VIDGATE_CHAOS_KILLS", "10"))
SEED = int(os.environ.get("VIDGATE_CHAOS_SEED") or random.SystemRandom().randrange(2**32))
JOB_SECONDS = 2.5
LEASE_SECONDS = 2
FAIL_SHARE = 0.1  # prompts asking the simulator for a failed job
UPSTREAM_LATENCY_MS = 80  # widens the windows a kill can land in (mid-create, mid-poll)
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}


def all_tasks(url: str) -> list[dict[str, Any]]:
    """Every task, through the list route's cursor."""
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 100}
        if cursor:
            params["cursor"] = cursor
        page = httpx.get(f"{url}/api/video/tasks", params=params, timeout=10).json()["data"]
        found += page["items"]
        cursor = page["nextCursor"]
        if not cursor:
            return found


def upstream_job_ids(simulator: SimulatorServer) -> set[str]:
    """Every job the simulator still stores (it stores them all unless deleted)."""
    ids: set[str] = set()
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 100, "order": "asc"}
        if after:
            params["after"] = after
        page = httpx.get(f"{simulator.base_url}/videos", params=params, timeout=10).json()
        ids.update(job["id"] for job in page["data"])
        if not page["has_more"]:
            return ids
        after = page["last_id"]


def wait_all_terminal(url: str, timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        tasks = all_tasks(url)
        active = [t for t in tasks if t["status"] not in TERMINAL]
        if not active or time.monotonic() > deadline:
            return tasks
        time.sleep(0.5)


def read_store(db: Path) -> dict[str, Any]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        tasks = conn.execute("SELECT video_id, status, lease_owner, attempt FROM tasks").fetchall()
        attempts = conn.execute(
            "SELECT video_id, number, external_id, state, idempotency_key FROM attempts"
        ).fetchall()
        events = conn.execute(
            "SELECT video_id, type, payload FROM task_events ORDER BY id"
        ).fetchall()
    return {"tasks": tasks, "attempts": attempts, "events": events}


class Life:
    """One vidgate process between its start and its SIGKILL (at a seeded moment)."""

    def __init__(self, server: VidgateServer, kill_after: float | None) -> None:
        self.server = server
        self.killed = threading.Event()
        self._timer: threading.Timer | None = None
        if kill_after is not None:
            self._timer = threading.Timer(kill_after, self._kill)
            self._timer.start()

    def _kill(self) -> None:
        self.server.kill()
        self.killed.set()

    def wait(self) -> None:
        if self._timer is not None:
            self._timer.join()


@pytest.mark.slow
@pytest.mark.timeout(max(300, int(TASKS * 1.2 + KILLS * 15)))
def test_sigkill_at_random_moments_loses_nothing_and_duplicates_nothing(
    start_vidgate: StartVidgate,
    simulator_process: Any,
    provider_config: WriteConfig,
    tmp_path: Path,
) -> None:
    print(f"\nchaos seed {SEED} (replay with VIDGATE_CHAOS_SEED={SEED})")
    rng = random.Random(SEED)
    started = time.monotonic()
    simulator: SimulatorServer = simulator_process(
        job_seconds=JOB_SECONDS, extra=["--latency-ms", str(UPSTREAM_LATENCY_MS)]
    )
    config = provider_config(simulator.base_url)
    db = tmp_path / "chaos.db"
    env = {"VIDGATE_CONFIG": str(config), "VIDGATE_LEASE_SECONDS": str(LEASE_SECONDS)}

    acknowledged: dict[str, bool] = {}  # videoId -> its prompt asked for [fail]
    ambiguous = 0  # creates cut off by a kill: the task may or may not exist
    kills = 0
    quota = [TASKS // (KILLS + 1) + (1 if n < TASKS % (KILLS + 1) else 0) for n in range(KILLS + 1)]
    carried = 0
    sent = 0
    http = httpx.Client(timeout=10)
    with http:
        for life_number in range(KILLS + 1):
            last = life_number == KILLS
            if life_number and rng.random() < 0.5:
                time.sleep(rng.uniform(0, LEASE_SECONDS))  # sometimes the old leases expire
            server = start_vidgate(db=db, **env)
            life = Life(server, None if last else rng.uniform(0.3, 3.5))
            todo = quota[life_number] + carried
            while todo and not life.killed.is_set():
                fail = rng.random() < FAIL_SHARE
                prompt = f"chaos {sent}{' [fail]' if fail else ''}"
                sent += 1
                try:
                    response = http.post(f"{server.url}/api/video/tasks", json={"prompt": prompt})
                except httpx.ConnectError:
                    continue  # already dead: nothing was created
                except httpx.HTTPError:
                    ambiguous += 1
                    continue  # the kill landed mid-request; this prompt is not retried
                assert response.status_code == 201, response.text
                acknowledged[response.json()["data"]["videoId"]] = fail
                todo -= 1
                time.sleep(rng.uniform(0.01, 0.15))
            carried = todo
            if not last:
                life.killed.wait()
                life.wait()
                kills += 1
        assert carried == 0

        final = server
        tasks = wait_all_terminal(final.url, timeout=60 + TASKS * 0.1)
    final.stop()  # SIGTERM: leases released, the file quiet for the cross-check
    wall = time.monotonic() - started
    stats = simulator.stats()
    upstream = upstream_job_ids(simulator)
    store = read_store(db)

    by_id = {t["videoId"]: t for t in tasks}
    lost = sorted(set(acknowledged) - set(by_id))
    not_terminal = [(t["videoId"], t["status"]) for t in tasks if t["status"] not in TERMINAL]
    wrong = [
        (t["videoId"], t["prompt"], t["status"], t["error"])
        for t in tasks
        if (t["status"], (t["error"] or {}).get("code"))
        != (("FAILED", "moderation_blocked") if "[fail]" in t["prompt"] else ("COMPLETED", None))
    ]
    recorded = [a["externalVideoId"] for t in tasks for a in t["attempts"] if a["externalVideoId"]]
    requests = stats["requests"]
    assert isinstance(requests, dict)
    figures = {
        "seed": SEED,
        "tasks": len(acknowledged),
        "tasksInStore": len(tasks),
        "ambiguousCreates": ambiguous,
        "kills": kills,
        "lost": len(lost),
        "notTerminal": len(not_terminal),
        "wrongOutcome": len(wrong),
        "completed": sum(t["status"] == "COMPLETED" for t in tasks),
        "failed": sum(t["status"] == "FAILED" for t in tasks),
        "upstreamJobsCreated": stats["jobsCreated"],
        "attemptsWithExternalId": len(recorded),
        "duplicateUpstreamJobs": stats["jobsCreated"] - len(set(recorded)),
        "unrecordedUpstreamJobs": len(upstream - set(recorded)),
        "upstreamCreateRequests": requests.get("POST /videos", 0),
        "upstreamRequests": stats["requestsTotal"],
        "jobSeconds": JOB_SECONDS,
        "leaseSeconds": LEASE_SECONDS,
        "wallSeconds": round(wall, 1),
    }
    (tmp_path / "chaos-figures.json").write_text(json.dumps(figures, indent=2) + "\n")
    print("chaos figures:", json.dumps(figures))

    assert kills == KILLS >= 0
    assert len(acknowledged) == TASKS
    assert not lost, f"acknowledged but missing: {lost[:10]} (seed {SEED})"
    assert not not_terminal, f"still active: {not_terminal[:10]} (seed {SEED})"
    assert not wrong, f"wrong outcome: {wrong[:5]} (seed {SEED})"
    # No duplicate upstream job: every job the simulator created is exactly one recorded attempt.
    assert len(recorded) == len(set(recorded)), "one upstream job recorded by two attempts"
    assert stats["jobsCreated"] == len(recorded), figures
    assert upstream == set(recorded), figures

    # The SQLite file itself, read after the last process stopped.
    store_tasks = {row[0]: row for row in store["tasks"]}
    assert set(store_tasks) == set(by_id)
    assert all(row[1] in TERMINAL for row in store["tasks"])
    assert [row[0] for row in store["tasks"] if row[2] is not None] == [], "leases left behind"
    external = [row[2] for row in store["attempts"] if row[2] is not None]
    assert sorted(external) == sorted(recorded)
    assert len(external) == stats["jobsCreated"]
    states = Counter(row[3] for row in store["attempts"])
    assert set(states) <= {"finished", "failed"}, states
    keys = [row[4] for row in store["attempts"]]
    assert len(keys) == len(set(keys)), "an Idempotency-Key used by two attempts"
    for video_id, row in store_tasks.items():
        numbers = sorted(a[1] for a in store["attempts"] if a[0] == video_id)
        assert numbers == list(range(1, row[3] + 1)), (video_id, numbers, row[3])
    # One terminal message per task, and progress never backwards within an upstream job.
    terminal_events = Counter(
        video_id for video_id, kind, _ in store["events"] if kind in ("taskCompleted", "taskFailed")
    )
    assert set(terminal_events) == set(by_id)
    assert set(terminal_events.values()) == {1}, terminal_events.most_common(3)
    progress: dict[tuple[str, str | None], int] = {}
    for video_id, _, raw in store["events"]:
        payload = json.loads(raw)
        key = (video_id, payload.get("externalVideoId"))
        assert payload["progress"] >= progress.get(key, 0), (video_id, payload)
        progress[key] = payload["progress"]
