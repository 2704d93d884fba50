"""Two engines racing on one SQLite file: no task is ever stepped by both at once.

Two `vidgate serve` processes share the database and the simulator process; tasks are created
on both. The proof comes from outside the engines: each logs (JSON, DEBUG) a `step.begin` and a
`step.end` line per step with `videoId`, `owner` and the wall-clock `time`; the intervals of one
task from different owners must never overlap. The simulator is a second witness: with latency
on every request, two steppers of one task would show as overlapping requests for its job.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.support import SimulatorServer, StartVidgate, VidgateServer, WriteConfig

TASKS = 80
JOB_SECONDS = 2.0
LATENCY_MS = 200  # every upstream request takes this long: a wide window for overlaps
LEASE_SECONDS = 3
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}


@dataclass(frozen=True)
class Step:
    video_id: str
    owner: str
    begin: datetime
    end: datetime | None  # None: the log ended inside the step


def step_lines(log: Path) -> list[dict[str, Any]]:
    lines = []
    for raw in log.read_text(errors="replace").splitlines():
        if not raw.startswith("{"):
            continue
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        if entry.get("action") in ("step.begin", "step.end"):
            lines.append(entry)
    return lines


def steps_of(lines: list[dict[str, Any]]) -> tuple[list[Step], list[dict[str, Any]]]:
    """Pair each begin with the next end of the same task and owner; unmatched ends returned."""
    open_steps: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    steps: list[Step] = []
    stray: list[dict[str, Any]] = []
    for entry in lines:
        key = (entry["videoId"], entry["owner"])
        at = datetime.fromisoformat(entry["time"])
        if entry["action"] == "step.begin":
            open_steps[key].append(at)
        elif open_steps[key]:
            steps.append(Step(key[0], key[1], open_steps[key].pop(0), at))
        else:
            stray.append(entry)
    for (video_id, owner), begins in open_steps.items():
        steps += [Step(video_id, owner, begin, None) for begin in begins]
    return steps, stray


def overlaps(steps: list[Step]) -> list[tuple[Step, Step]]:
    """Pairs of steps of one task whose intervals intersect (an open step never ends)."""
    by_task: dict[str, list[Step]] = defaultdict(list)
    for step in steps:
        by_task[step.video_id].append(step)
    found = []
    for task_steps in by_task.values():
        task_steps.sort(key=lambda s: s.begin)
        for i, first in enumerate(task_steps):
            for second in task_steps[i + 1 :]:
                if first.end is None or second.begin < first.end:
                    found.append((first, second))
    return found


def tasks_of(url: str, ids: list[str]) -> list[dict[str, Any]]:
    return [httpx.get(f"{url}/api/video/tasks/{i}", timeout=10).json()["data"] for i in ids]


def test_two_engines_on_one_database_never_step_a_task_at_once(
    start_vidgate: StartVidgate,
    simulator_process: Any,
    provider_config: WriteConfig,
    tmp_path: Path,
) -> None:
    simulator: SimulatorServer = simulator_process(
        job_seconds=JOB_SECONDS, extra=["--latency-ms", str(LATENCY_MS)]
    )
    config = provider_config(simulator.base_url)
    env = {
        "VIDGATE_CONFIG": str(config),
        "VIDGATE_LEASE_SECONDS": str(LEASE_SECONDS),
        "VIDGATE_LOG_FORMAT": "json",
        "VIDGATE_LOG_LEVEL": "DEBUG",
    }
    db = tmp_path / "race.db"
    engines: list[VidgateServer] = [start_vidgate(db=db, **env), start_vidgate(db=db, **env)]
    ids: list[str] = []
    with httpx.Client(timeout=10) as http:
        for n in range(TASKS):
            server = engines[n % 2]
            response = http.post(f"{server.url}/api/video/tasks", json={"prompt": f"race {n}"})
            assert response.status_code == 201, response.text
            ids.append(response.json()["data"]["videoId"])
            time.sleep(0.02)

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        tasks = tasks_of(engines[0].url, ids)
        if all(t["status"] in TERMINAL for t in tasks):
            break
        time.sleep(0.5)
    for server in engines:
        server.stop()
    stats = simulator.stats()

    lines = [entry for server in engines for entry in step_lines(server.log)]
    steps, stray = steps_of(lines)
    owners = {step.owner for step in steps}
    clashes = overlaps(steps)
    across = [(a, b) for a, b in clashes if a.owner != b.owner]
    within = [(a, b) for a, b in clashes if a.owner == b.owner]
    stepped_by = defaultdict(set)
    for step in steps:
        stepped_by[step.video_id].add(step.owner)
    print(
        f"\nrace: {len(steps)} steps by {len(owners)} owners, "
        f"{sum(len(o) > 1 for o in stepped_by.values())} tasks stepped by both (at different "
        f"times), overlaps across owners {len(across)}, within one owner {len(within)}, "
        f"open steps {sum(s.end is None for s in steps)}, "
        f"overlapping upstream requests {stats['overlappingRequests']}"
    )

    assert steps, "no step.begin / step.end lines in the logs (JSON, DEBUG)"
    assert len(owners) == 2, f"both engines should have stepped tasks, saw {owners}"
    assert not stray, f"step.end without a step.begin: {stray[:3]}"
    assert not [s for s in steps if s.end is None], "a step that never ended"
    assert not across, f"a task stepped by two engines at once: {across[:3]}"
    assert not within, f"a task stepped twice at once by one engine: {within[:3]}"
    assert stats["overlappingRequests"] == 0, stats["overlappingRequestSamples"]

    assert [t["status"] for t in tasks] == ["COMPLETED"] * TASKS
    assert all(len(t["attempts"]) == 1 for t in tasks)
    externals = {t["externalVideoId"] for t in tasks}
    assert len(externals) == TASKS
    assert stats["jobsCreated"] == TASKS


def test_the_overlap_check_itself_finds_intersecting_steps() -> None:
    def at(second: float) -> datetime:
        return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=second)

    lines = [
        {"action": action, "videoId": video_id, "owner": owner, "time": at(t).isoformat()}
        for action, video_id, owner, t in [
            ("step.begin", "a", "one", 0.0),
            ("step.end", "a", "one", 1.0),
            ("step.begin", "a", "two", 1.0),  # touching is not overlapping
            ("step.end", "a", "two", 2.0),
            ("step.begin", "b", "one", 0.0),
            ("step.begin", "b", "two", 0.5),  # b: stepped by both at once
            ("step.end", "b", "one", 1.0),
            ("step.end", "b", "two", 1.5),
            ("step.begin", "c", "two", 5.0),  # c: never ended
            ("step.end", "d", "one", 5.0),  # d: an end without a begin
        ]
    ]
    steps, stray = steps_of(lines)
    assert [(s.video_id, s.owner) for s in steps if s.end is None] == [("c", "two")]
    assert [entry["videoId"] for entry in stray] == ["d"]
    assert [(a.video_id, a.owner, b.owner) for a, b in overlaps(steps)] == [("b", "one", "two")]
