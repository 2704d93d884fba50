"""End-to-end benchmark: vidgate + a separate upstream simulator, driven over HTTP and WebSocket.

Starts ``vidgate simulator`` and ``vidgate serve`` (fresh SQLite file, one TOML provider
pointing at the simulator) as their own processes on free loopback ports, creates N tasks
through ``POST /api/video/tasks``, subscribes each one on one of a handful of WebSocket
connections right after its 201, and waits until every task has pushed a terminal message
(or the deadline passes). Both processes are always stopped at the end.

Measured:

* creation throughput: N / wall time of the creation phase (first POST sent to last 201);
* completion latency: from the upstream job's completion instant to the client learning it
  (``taskCompleted``, or the ``subscribed`` snapshot when the subscription was answered after
  the task completed), split into polling, commit and delivery (``--help`` says how the
  completion instant is obtained);
* subscribe -> subscribed: how long a subscription waits for its answer;
* wall time until all N are terminal, and how many ended COMPLETED versus otherwise;
* upstream requests per completed task, from the simulator's ``GET /_sim/stats`` counters;
* CPU seconds used by each process during the run (from /proc), to see what saturates.

Run from the repository root: ``.venv/bin/python bench/e2e.py --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import importlib.util
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

TERMINAL_TYPES = ("taskCompleted", "taskFailed", "taskCancelled")
TERMINAL_PUSHED = {
    "completed": "taskCompleted",
    "failed": "taskFailed",
    "cancelled": "taskCancelled",
}
PROCESSES = ("vidgate", "simulator", "bench")  # cpuSeconds keys that are whole processes
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
EXACT_NOTE = (
    "Upstream completion instant: the simulator's own exact finishesAt (GET /_sim/jobs/{id}, "
    "float seconds, same machine clock). 'polled' is the task's completedAt (vidgate's clock "
    "when it took up the poll answer saying completed, before checking the video exists), "
    "'committed' the pushed message's timestamp (its event row, ms), 'received' the bench's "
    "clock on arrival. 'submittedAt - job created' is how far the fallback estimate (used with "
    "simulators without /_sim/jobs) would be off."
)
BOUND_NOTE = (
    "This simulator has no /_sim/jobs and gives created_at/completed_at in whole seconds only, "
    "so the upstream completion instant is the attempt's submittedAt + job seconds: "
    "submittedAt is vidgate's clock (microseconds) just after the simulator answered "
    "POST /videos, hence at or after the job's real creation, which makes 'latency' a lower "
    "bound. 'upper bound' uses the earliest possible creation instead, max(metadata.createdAt "
    "[whole s], POST sent); 'creation uncertainty' is the gap between the two. 'polled' is the "
    "task's completedAt (vidgate's clock when it took up the poll answer saying completed, "
    "before checking the video exists), 'committed' the pushed message's timestamp (its event "
    "row, ms), 'received' the bench's clock on arrival."
)


# -- processes ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def child_env(**extra: str) -> dict[str, str]:
    """The caller's environment without any VIDGATE_* setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDGATE_")}
    env.update(extra)
    return env


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass
class Child:
    """One process the benchmark owns: started in its own session, always stopped."""

    name: str
    args: list[str]
    env: dict[str, str]
    cwd: Path
    log: Path
    # uvicorn re-raises the stop signal once it has shut down; SIGINT then surfaces as
    # KeyboardInterrupt, which lets a wrapping cProfile still write its stats.
    stop_signal: int = signal.SIGTERM
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:  # the child keeps its own descriptor
            # Own session: a Ctrl-C in the terminal reaches only the benchmark, which then
            # stops its children in order instead of all of them dying at once.
            self.process = subprocess.Popen(
                self.args,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, url: str, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early; log:\n{self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError(
            f"{self.name}: {url} not ready after {timeout:.0f} s; log:\n{self.tail()}"
        )

    def cpu_seconds(self, *, main_thread: bool = False) -> float | None:
        """User + system CPU time so far of the process, or of its main thread (the one
        running the event loop), from Linux /proc; None where /proc is unavailable."""
        if self.process is None:
            return None
        pid = self.process.pid
        path = f"/proc/{pid}/task/{pid}/stat" if main_thread else f"/proc/{pid}/stat"
        try:
            raw = Path(path).read_text()
        except OSError:
            return None
        fields = raw[raw.rfind(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(self.stop_signal)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def source_fingerprint() -> dict[str, Any]:
    """Which vidgate code ran: the package's git commit, how many files differ from it, and
    a hash of every .py file in the package (read-only git commands only)."""
    spec = importlib.util.find_spec("vidgate")
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        return {"package": None}
    package = Path(locations[0])
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "--no-optional-locks", "-C", str(package), *args],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    status = git("status", "--porcelain", "--", ".")
    return {
        "package": str(package),
        "commit": git("rev-parse", "HEAD"),
        "uncommittedFiles": None if status is None else len(status.splitlines()),
        "sha256": digest.hexdigest()[:16],
    }


def vidgate_executable() -> str:
    """The ``vidgate`` console script next to this interpreter (the project's venv)."""
    candidate = Path(sys.executable).with_name("vidgate")
    if candidate.exists():
        return str(candidate)
    found = shutil.which("vidgate")
    if found is None:
        raise SystemExit("vidgate executable not found; run with the project's .venv/bin/python")
    return found


# -- measurement records -----------------------------------------------------------------


@dataclass
class TaskRecord:
    video_id: str
    slot: int
    post_sent: float  # time.time() when the POST was sent
    created: float  # time.time() when its 201 arrived
    messages: int = 0
    subscribe_sent: float | None = None
    subscribed_at: float | None = None  # the first `subscribed` answer arrived
    terminal_type: str | None = None
    terminal_status: str | None = None
    terminal_at: float | None = None  # time.time() when the terminal message arrived
    terminal_event_ms: int | None = None  # the message's own timestamp (vidgate's commit)
    via_snapshot: bool = False  # terminal already in the `subscribed` answer
    # From GET /api/video/tasks/{id} after the run:
    rest_status: str | None = None
    attempts: int = 0
    submitted_at: float | None = None
    completed_at: float | None = None  # when vidgate's poll saw the upstream job completed
    external_id: str | None = None
    # From the simulator's GET /_sim/jobs/{id} (exact float times), where it has that route:
    sim_created: float | None = None
    sim_finishes: float | None = None
    upstream_created_floor: float | None = None


@dataclass
class Slot:
    """One WebSocket connection and the tasks subscribed on it (kept for resubscribing)."""

    index: int
    ws: ClientConnection
    video_ids: list[str] = field(default_factory=list)
    reconnects: int = 0


@dataclass
class Run:
    total: int
    records: dict[str, TaskRecord] = field(default_factory=dict)
    terminal: int = 0
    all_terminal: asyncio.Event = field(default_factory=asyncio.Event)
    last_terminal_at: float | None = None
    ws_errors: Counter[str] = field(default_factory=Counter)
    post_failures: Counter[str] = field(default_factory=Counter)
    post_latencies: list[float] = field(default_factory=list)
    closing: bool = False

    def mark_terminal(self, record: TaskRecord, kind: str, status: str, at: float) -> None:
        if record.terminal_type is not None:
            return
        record.terminal_type, record.terminal_status, record.terminal_at = kind, status, at
        self.terminal += 1
        self.last_terminal_at = at
        if self.terminal >= self.total:
            self.all_terminal.set()


# -- the benchmark proper ----------------------------------------------------------------


def subscribe_message(video_id: str) -> str:
    return json.dumps({"type": "subscribe", "videoId": video_id})


def handle_message(run: Run, raw: str | bytes, at: float) -> None:
    message = json.loads(raw)
    kind = message.get("type")
    payload = message.get("payload") or {}
    if kind == "error":
        run.ws_errors[str(payload.get("code"))] += 1
        return
    record = run.records.get(str(payload.get("videoId")))
    if record is None:
        return
    record.messages += 1
    if kind == "subscribed":
        if record.subscribed_at is None:
            record.subscribed_at = at
        snapshot = TERMINAL_PUSHED.get(str(payload.get("status")))
        if snapshot is not None and record.terminal_type is None:
            record.via_snapshot = True
            run.mark_terminal(record, snapshot, str(payload["status"]), at)
    elif kind in TERMINAL_TYPES:
        if record.terminal_type is None:
            record.terminal_event_ms = int(message.get("timestamp") or 0) or None
        run.mark_terminal(record, kind, str(payload.get("status")), at)


async def read_socket(run: Run, slot: Slot, ws_url: str) -> None:
    """Record every message; on an unexpected close, reconnect and resubscribe what is open."""
    while True:
        try:
            async for raw in slot.ws:
                handle_message(run, raw, time.time())
        except ConnectionClosed:
            pass
        if run.closing:
            return
        code, reason = slot.ws.close_code, slot.ws.close_reason
        run.ws_errors[f"closed by server: {code} {reason or ''}".rstrip()] += 1
        slot.reconnects += 1
        slot.ws = await connect(ws_url, open_timeout=10, max_queue=None)
        for video_id in list(slot.video_ids):
            if run.records[video_id].terminal_type is None:
                await slot.ws.send(subscribe_message(video_id))


async def create_tasks(
    run: Run, client: httpx.AsyncClient, slots: Sequence[Slot], options: argparse.Namespace
) -> None:
    count, next_index = run.total, 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < count:
            index = next_index
            next_index += 1
            prompt = f"{options.prompt} #{index}" if options.unique_prompts else options.prompt
            body = {"prompt": prompt, "seconds": "4"}
            sent, started = time.time(), time.perf_counter()
            try:
                response = await client.post("/api/video/tasks", json=body)
            except httpx.HTTPError as exc:
                run.post_failures[type(exc).__name__] += 1
                run.total -= 1
                continue
            run.post_latencies.append(time.perf_counter() - started)
            if response.status_code != 201:
                run.post_failures[f"HTTP {response.status_code}"] += 1
                run.total -= 1
                continue
            video_id = response.json()["data"]["videoId"]
            slot = slots[index % len(slots)]
            run.records[video_id] = TaskRecord(
                video_id=video_id, slot=slot.index, post_sent=sent, created=time.time()
            )
            slot.video_ids.append(video_id)
            run.records[video_id].subscribe_sent = time.time()
            with contextlib.suppress(ConnectionClosed):  # the reader resubscribes
                await slot.ws.send(subscribe_message(video_id))

    await asyncio.gather(*(worker() for _ in range(options.concurrency)))
    if run.terminal >= run.total:
        run.all_terminal.set()


def parse_time(value: object) -> float | None:
    """An ISO-8601 timestamp from the API as unix seconds; one without an offset is UTC."""
    if not isinstance(value, str):
        return None
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


async def fetch_final_states(
    run: Run, client: httpx.AsyncClient, sim: httpx.AsyncClient, concurrency: int
) -> None:
    """Each task's final state from vidgate, then its job's exact times from the simulator
    (its /_sim routes are not counted among the upstream requests)."""
    queue = list(run.records.values())

    async def worker() -> None:
        while queue:
            record = queue.pop()
            response = await client.get(f"/api/video/tasks/{record.video_id}")
            if response.status_code != 200:
                continue
            data = response.json()["data"]
            record.rest_status = data["status"]
            record.completed_at = parse_time(data.get("completedAt"))
            attempts = data.get("attempts") or []
            record.attempts = len(attempts)
            if attempts:
                record.submitted_at = parse_time(attempts[-1].get("submittedAt"))
            created = (data.get("metadata") or {}).get("createdAt")
            if isinstance(created, int | float):
                record.upstream_created_floor = float(created)
            record.external_id = data.get("externalVideoId")
            if record.external_id is None:
                continue
            try:
                truth = await sim.get(f"/_sim/jobs/{record.external_id}")
            except httpx.HTTPError:
                continue
            if truth.status_code == 200:
                job = truth.json()
                finishes, created_at = job.get("finishesAt"), job.get("createdAt")
                if isinstance(finishes, int | float) and isinstance(created_at, int | float):
                    record.sim_finishes, record.sim_created = float(finishes), float(created_at)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


@dataclass(frozen=True)
class Targets:
    api: str
    ws: str
    simulator: str


async def run_benchmark(
    options: argparse.Namespace,
    targets: Targets,
    cpu: Callable[[], dict[str, float | None]],
    source: dict[str, Any],
) -> dict[str, Any]:
    run = Run(total=options.tasks)
    limits = httpx.Limits(
        max_connections=options.concurrency, max_keepalive_connections=options.concurrency
    )
    async with (
        httpx.AsyncClient(base_url=targets.api, limits=limits, timeout=60.0) as client,
        httpx.AsyncClient(base_url=targets.simulator, timeout=10.0) as sim,
    ):
        slots = [
            Slot(index=i, ws=await connect(targets.ws, open_timeout=10, max_queue=None))
            for i in range(options.sockets)
        ]
        readers = [asyncio.create_task(read_socket(run, slot, targets.ws)) for slot in slots]
        try:
            sim_settings = (await sim.get("/_sim/faults")).json()
            baseline = (await sim.get("/_sim/stats")).json()
            cpu_before = cpu()
            wall_start, clock_start = time.time(), time.perf_counter()
            await create_tasks(run, client, slots, options)
            creation_seconds = time.perf_counter() - clock_start
            log(f"created {len(run.records)} tasks in {creation_seconds:.2f} s; waiting")
            timed_out = False
            try:
                await asyncio.wait_for(run.all_terminal.wait(), timeout=options.timeout)
            except TimeoutError:
                timed_out = True
            end = time.perf_counter()
            cpu_after = cpu()
            stats = (await sim.get("/_sim/stats")).json()
        finally:
            run.closing = True
            for slot in slots:
                await slot.ws.close()
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
        await fetch_final_states(run, client, sim, options.concurrency)

    wall_end = run.last_terminal_at if not timed_out and run.last_terminal_at else None
    return summarise(
        options,
        run,
        source=source,
        slots=slots,
        job_seconds=float(sim_settings["job_seconds"]),
        creation_seconds=creation_seconds,
        all_terminal_seconds=None if wall_end is None else wall_end - wall_start,
        observed_seconds=end - clock_start,
        timed_out=timed_out,
        baseline=baseline,
        stats=stats,
        cpu_before=cpu_before,
        cpu_after=cpu_after,
    )


# -- figures -----------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation between closest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def distribution(values: Sequence[float]) -> dict[str, float | int | None]:
    return {
        "count": len(values),
        "min": min(values) if values else None,
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
    }


def summarise(
    options: argparse.Namespace,
    run: Run,
    *,
    source: dict[str, Any],
    slots: Sequence[Slot],
    job_seconds: float,
    creation_seconds: float,
    all_terminal_seconds: float | None,
    observed_seconds: float,
    timed_out: bool,
    baseline: dict[str, Any],
    stats: dict[str, Any],
    cpu_before: dict[str, float | None],
    cpu_after: dict[str, float | None],
) -> dict[str, Any]:
    records = list(run.records.values())
    final = Counter(r.rest_status or "UNKNOWN" for r in records)
    pushed = Counter(r.terminal_type or "none" for r in records)
    completed = final.get("COMPLETED", 0)

    # Upstream completion -> the client learns it: by a taskCompleted push, or by the
    # `subscribed` snapshot when the subscription was answered after the task completed.
    eligible = [
        r
        for r in records
        if r.rest_status == "COMPLETED"
        and r.terminal_type == "taskCompleted"
        and r.terminal_at is not None
        and r.submitted_at is not None  # of the last attempt, whose job is the one measured
    ]
    exact = bool(eligible) and all(r.sim_finishes is not None for r in eligible)
    latency_all: list[float] = []
    latency_push: list[float] = []
    latency_high: list[float] = []  # bound mode only
    creation_window: list[float] = []  # bound mode only
    submit_lag: list[float] = []  # exact mode only: submittedAt - the job's real creation
    polled: list[float] = []  # upstream done -> vidgate's poll saw it (completedAt)
    committed: list[float] = []  # completedAt -> the event row's timestamp (pushes only)
    delivered: list[float] = []  # event timestamp -> arrival on the socket (pushes only)
    for r in eligible:
        assert r.terminal_at is not None and r.submitted_at is not None
        if exact:
            assert r.sim_finishes is not None and r.sim_created is not None
            done = r.sim_finishes
            submit_lag.append(r.submitted_at - r.sim_created)
        else:
            done = r.submitted_at + job_seconds
            earliest_creation = max(r.post_sent, r.upstream_created_floor or 0.0)
            latency_high.append(r.terminal_at - (earliest_creation + job_seconds))
            creation_window.append(r.submitted_at - earliest_creation)
        latency_all.append(r.terminal_at - done)
        if r.completed_at is not None:
            polled.append(r.completed_at - done)
        if r.via_snapshot:
            continue
        latency_push.append(r.terminal_at - done)
        if r.terminal_event_ms is not None and r.completed_at is not None:
            committed.append(r.terminal_event_ms / 1000 - r.completed_at)
            delivered.append(r.terminal_at - r.terminal_event_ms / 1000)

    requests_before: dict[str, int] = baseline.get("requests", {})
    requests: dict[str, int] = {
        route: count - requests_before.get(route, 0)
        for route, count in stats.get("requests", {}).items()
        if count - requests_before.get(route, 0)
    }
    total_requests = sum(requests.values())

    def delta(name: str) -> int | None:
        after, before = stats.get(name), baseline.get(name, 0)
        return after - before if isinstance(after, int) and isinstance(before, int) else None

    cpu: dict[str, float | None] = {}
    for name, after in cpu_after.items():
        before = cpu_before.get(name)
        cpu[name] = None if after is None or before is None else after - before

    return {
        "parameters": {
            "tasks": options.tasks,
            "jobSeconds": job_seconds,
            "concurrency": options.concurrency,
            "sockets": options.sockets,
            "timeoutSeconds": options.timeout,
            "providerConcurrency": options.provider_concurrency,
            "vidgateLogLevel": options.log_level,
            "extraEnv": options.env,
            "simulatorArgs": options.sim_arg,
            "profile": None if options.profile is None else str(options.profile),
            "prompt": options.prompt,
            "uniquePrompts": options.unique_prompts,
        },
        "source": source,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "creation": {
            "created": len(records),
            "failures": dict(run.post_failures),
            "seconds": creation_seconds,
            "tasksPerSecond": len(records) / creation_seconds if creation_seconds > 0 else None,
            "postLatencySeconds": distribution(run.post_latencies),
        },
        "outcome": {
            "timedOut": timed_out,
            "allTerminalSeconds": all_terminal_seconds,
            "observedSeconds": observed_seconds,
            "finalStatus": dict(sorted(final.items())),
            "completed": completed,
            "notCompleted": len(records) - completed,
            "terminalPushed": dict(sorted(pushed.items())),
            "terminalViaSnapshot": sum(r.via_snapshot for r in records),
            "multiAttempt": sum(r.attempts > 1 for r in records),
            "subscribeToSubscribedSeconds": distribution(
                [
                    r.subscribed_at - r.subscribe_sent
                    for r in records
                    if r.subscribed_at is not None and r.subscribe_sent is not None
                ]
            ),
            "wsMessagesPerTask": sum(r.messages for r in records) / len(records)
            if records
            else None,
            "wsErrors": dict(run.ws_errors),
            "wsReconnects": sum(s.reconnects for s in slots),
        },
        "completionToClient": {
            "completionInstant": "simulator finishesAt" if exact else "submittedAt + jobSeconds",
            "method": EXACT_NOTE if exact else BOUND_NOTE,
            "seconds": distribution(latency_all),
            "pushedOnlySeconds": distribution(latency_push),
            "submittedAtLagSeconds": distribution(submit_lag) if exact else None,
            "upperBoundSeconds": None if exact else distribution(latency_high),
            "creationUncertaintySeconds": None if exact else distribution(creation_window),
            "upstreamDoneToPolledSeconds": distribution(polled),
            "polledToCommittedSeconds": distribution(committed),
            "committedToClientSeconds": distribution(delivered),
        },
        "upstream": {
            "jobsCreated": stats.get("jobsCreated", 0) - baseline.get("jobsCreated", 0),
            "requests": dict(sorted(requests.items())),
            "requestsTotal": total_requests,
            "requestsPerCompletedTask": total_requests / completed if completed else None,
            "requestsPerCompletedTaskByRoute": {
                route: count / completed for route, count in sorted(requests.items())
            }
            if completed
            else {},
            "faultsInjected": {k: v for k, v in (stats.get("faultsInjected") or {}).items() if v},
            # Counters newer simulators keep (absent -> None): requests sent before a
            # Retry-After expired, and several requests for one job in flight at once.
            "retryAfterViolations": delta("retryAfterViolations"),
            "overlappingRequests": delta("overlappingRequests"),
        },
        "cpuSeconds": cpu,
        "cpuBusyCores": (
            sum(v for k, v in cpu.items() if v is not None and k in PROCESSES) / observed_seconds
        )
        if observed_seconds > 0
        else None,
    }


def ms(value: object) -> str:
    return "-" if not isinstance(value, int | float) else f"{value * 1000:.0f} ms"


def render(result: dict[str, Any]) -> str:
    p, c, o = result["parameters"], result["creation"], result["outcome"]
    lat, up, cpu = result["completionToClient"], result["upstream"], result["cpuSeconds"]
    rows: list[tuple[str, str]] = []

    def section(title: str) -> None:
        rows.append(("", ""))
        rows.append((title, ""))

    def add(label: str, value: str) -> None:
        rows.append(("  " + label, value))

    def dist_row(label: str, d: dict[str, Any]) -> None:
        add(
            label,
            f"p50 {ms(d['p50'])}  p90 {ms(d['p90'])}  p99 {ms(d['p99'])}  "
            f"max {ms(d['max'])}  (n={d['count']})",
        )

    rows.append(
        (
            "run",
            f"{p['tasks']} tasks, {p['jobSeconds']:g} s jobs, {p['sockets']} sockets, "
            f"creation concurrency {p['concurrency']}, {result['machine']['cpus']} CPUs, "
            f"Python {result['machine']['python']}",
        )
    )
    src = result["source"]
    if src.get("package"):
        commit = (src.get("commit") or "?")[:12]
        dirty = src.get("uncommittedFiles")
        rows.append(
            (
                "vidgate source",
                f"{commit}"
                + (f" + {dirty} uncommitted file(s)" if dirty else "")
                + f", files sha256 {src['sha256']}",
            )
        )
    section("creation")
    tps = c["tasksPerSecond"]
    add(
        "tasks created",
        f"{c['created']}" + (f"  failures {c['failures']}" if c["failures"] else ""),
    )
    add("creation wall time", f"{c['seconds']:.2f} s")
    add("tasks created / s", "-" if tps is None else f"{tps:.0f}")
    dist_row("POST latency", c["postLatencySeconds"])
    section("outcome")
    total = o["allTerminalSeconds"]
    add(
        "all terminal after",
        "NOT ALL TERMINAL (timed out)" if total is None else f"{total:.2f} s from the first POST",
    )
    add("COMPLETED / other", f"{o['completed']} / {o['notCompleted']}  {o['finalStatus']}")
    add(
        "terminal seen on WS",
        f"{o['terminalPushed']}  (of which in the subscribed snapshot: {o['terminalViaSnapshot']})",
    )
    dist_row("subscribe -> subscribed", o["subscribeToSubscribedSeconds"])
    add("WS messages / task", f"{o['wsMessagesPerTask']:.1f}" if o["wsMessagesPerTask"] else "-")
    if o["wsErrors"] or o["wsReconnects"]:
        add("WS errors", f"{o['wsErrors']}  reconnects {o['wsReconnects']}")
    section("upstream completion -> client sees COMPLETED (push or subscribed snapshot)")
    dist_row("latency", lat["seconds"])
    if lat.get("submittedAtLagSeconds"):
        dist_row("submittedAt - job created", lat["submittedAtLagSeconds"])
    if lat.get("upperBoundSeconds"):
        dist_row("upper bound", lat["upperBoundSeconds"])
        dist_row("creation uncertainty", lat["creationUncertaintySeconds"])
    dist_row("upstream done -> polled", lat["upstreamDoneToPolledSeconds"])
    dist_row("taskCompleted pushes only", lat["pushedOnlySeconds"])
    dist_row("  polled -> committed", lat["polledToCommittedSeconds"])  # check + write
    dist_row("  committed -> received", lat["committedToClientSeconds"])
    section("upstream requests (simulator /_sim/stats)")
    add("jobs created", str(up["jobsCreated"]))
    per = up["requestsPerCompletedTask"]
    add("total", f"{up['requestsTotal']}" + ("" if per is None else f"  = {per:.2f} / completed"))
    for route, count in up["requests"].items():
        ratio = up["requestsPerCompletedTaskByRoute"].get(route)
        add(route, f"{count}" + ("" if ratio is None else f"  = {ratio:.2f} / completed"))
    if up["faultsInjected"]:
        add("faults injected", str(up["faultsInjected"]))
    for key, label in (
        ("overlappingRequests", "overlapping requests"),
        ("retryAfterViolations", "Retry-After violations"),
    ):
        if up.get(key) is not None:
            add(label, str(up[key]))
    section("CPU seconds during the run")
    for name, seconds in cpu.items():
        add(name, "-" if seconds is None else f"{seconds:.1f} s")
    busy = result["cpuBusyCores"]
    add("average busy cores", "-" if busy is None else f"{busy:.2f} of {result['machine']['cpus']}")
    width = max(len(label) for label, value in rows if value) + 2  # titles have no value
    lines = [f"{label:<{width}}{value}".rstrip() for label, value in rows]
    lines.append("")
    lines.extend(textwrap.wrap("note: " + lat["method"], width=100))
    return "\n".join(lines)


# -- command line ------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/e2e.py",
        description=(
            "End-to-end benchmark of vidgate: starts `vidgate simulator` and `vidgate serve` "
            "(fresh SQLite in a temporary directory, a TOML provider pointing at the simulator) "
            "on free 127.0.0.1 ports, creates --tasks tasks over HTTP with --concurrency "
            "requests in flight, subscribes each on one of --sockets WebSocket connections right "
            "after its 201, waits until all are terminal (at most --timeout seconds), then stops "
            "both processes and prints the figures."
        ),
        epilog=(
            "Figures: tasks created per second (N / creation-phase wall time, first POST sent to "
            "last 201); time from the upstream job's completion to the client learning it "
            "(taskCompleted, or the subscribed snapshot when the task was done before its "
            "subscription was answered), p50/p90/p99/max, split into upstream done -> vidgate "
            "polled it (task completedAt) -> event committed (message timestamp) -> received; "
            "subscribe -> subscribed; wall time until all N are terminal; COMPLETED vs other; "
            "upstream requests per completed task (GET /_sim/stats, total and per route); CPU "
            "seconds per process. The completion instant is the simulator's exact finishesAt "
            "(GET /_sim/jobs/{id}); with a simulator without that route it falls back to the "
            "attempt's submittedAt + job seconds (a lower bound on the latency, with an upper "
            "bound from max(metadata.createdAt, POST sent)). The output says which was used. "
            "Exit status 0 when every task completed, 1 otherwise, 2 on a setup error, 130 on "
            "Ctrl-C / SIGTERM."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--tasks", "-n", type=positive_int, default=200, help="tasks to create")
    parser.add_argument(
        "--job-seconds",
        type=positive_float,
        default=5.0,
        help="simulator job duration (queued for its first 10%%)",
    )
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        default=16,
        help="creation requests in flight at once (also used for the final GETs)",
    )
    parser.add_argument(
        "--sockets",
        type=positive_int,
        default=4,
        help="WebSocket connections; tasks are spread over them round-robin",
    )
    parser.add_argument(
        "--timeout",
        type=positive_float,
        default=120.0,
        help="longest wait, after the creation phase, for every task to be terminal",
    )
    parser.add_argument(
        "--prompt",
        default="a red fox running through snow",
        help="prompt of every task",
    )
    parser.add_argument(
        "--unique-prompts",
        action="store_true",
        help="append the task number to each prompt. The simulator renders one clip per "
        "distinct prompt (when vidgate checks the content of a completed job), so this adds a "
        "render per task to the simulator's load; by default all tasks share one clip",
    )
    parser.add_argument(
        "--provider-concurrency",
        type=positive_int,
        default=None,
        help="max_concurrency of the provider in the TOML file (None: vidgate's own default)",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        help="vidgate serve --log-level (logs go to a file in the temporary directory)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment variable for vidgate serve, e.g. VIDGATE_MAX_IN_FLIGHT=512 "
        "(repeatable)",
    )
    parser.add_argument(
        "--sim-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for `vidgate simulator`, e.g. --sim-arg=--error-503-rate=0.05 "
        "(repeatable)",
    )
    parser.add_argument(
        "--vidgate",
        type=Path,
        default=None,
        metavar="PATH",
        help="vidgate executable to run (None: the `vidgate` next to this Python)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="FILE",
        help="run vidgate serve under cProfile (main thread only; slows it down) and write "
        "the stats to FILE, for `python -m pstats FILE`",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory (logs, database)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print the figures as one JSON object instead"
    )
    options = parser.parse_args(argv)
    for item in options.env:
        if "=" not in item:
            parser.error(f"--env needs NAME=VALUE, got {item!r}")
    return options


def provider_toml(base_url: str, max_concurrency: int | None) -> str:
    lines = ["[[providers]]", 'name = "sim"', f'base_url = "{base_url}"']
    if max_concurrency is not None:
        lines.append(f"max_concurrency = {max_concurrency}")
    return "\n".join(lines) + "\n"


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    vidgate = str(options.vidgate) if options.vidgate else vidgate_executable()
    workdir = Path(tempfile.mkdtemp(prefix="vidgate-bench-"))
    children: list[Child] = []
    source = source_fingerprint()  # the code the processes about to start will load
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        sim_port, api_port = free_port(), free_port()
        simulator = Child(
            name="simulator",
            args=[
                vidgate,
                "simulator",
                "--host",
                "127.0.0.1",
                "--port",
                str(sim_port),
                "--job-seconds",
                str(options.job_seconds),
                *options.sim_arg,
            ],
            env=child_env(),
            cwd=workdir,
            log=workdir / "simulator.log",
        )
        children.append(simulator)
        log(f"starting simulator on 127.0.0.1:{sim_port} (work dir {workdir})")
        simulator.start()
        sim_origin = f"http://127.0.0.1:{sim_port}"
        simulator.wait_ready(f"{sim_origin}/_sim/stats")

        config = workdir / "providers.toml"
        config.write_text(
            provider_toml(f"{sim_origin}/v1", options.provider_concurrency), encoding="utf-8"
        )
        api = f"http://127.0.0.1:{api_port}"
        extra = dict(item.split("=", 1) for item in options.env)
        profiler = (
            []
            if options.profile is None
            else [sys.executable, "-m", "cProfile", "-o", str(options.profile.resolve())]
        )
        server = Child(
            name="vidgate",
            args=[
                *profiler,
                vidgate,
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(api_port),
                "--log-level",
                options.log_level,
            ],
            env=child_env(
                VIDGATE_DATABASE_URL=f"sqlite+aiosqlite:///{workdir / 'vidgate.db'}",
                VIDGATE_CONFIG=str(config),
                VIDGATE_PUBLIC_URL=api,
                **extra,
            ),
            cwd=workdir,
            log=workdir / "vidgate.log",
            stop_signal=signal.SIGTERM if options.profile is None else signal.SIGINT,
        )
        children.append(server)
        log(f"starting vidgate serve on 127.0.0.1:{api_port}")
        server.start()
        server.wait_ready(f"{api}/readyz")

        def cpu() -> dict[str, float | None]:
            return {
                "vidgate": server.cpu_seconds(),
                "vidgate main thread": server.cpu_seconds(main_thread=True),
                "simulator": simulator.cpu_seconds(),
                "bench": time.process_time(),
            }

        targets = Targets(api=api, ws=f"ws://127.0.0.1:{api_port}/ws", simulator=sim_origin)
        log(f"creating {options.tasks} tasks")
        result = asyncio.run(run_benchmark(options, targets, cpu, source))
    except KeyboardInterrupt:
        log("interrupted; stopping processes")
        return 130
    except (RuntimeError, OSError, httpx.HTTPError) as exc:
        log(f"setup or run failed: {exc}")
        return 2
    finally:
        for child in reversed(children):
            child.stop()
        signal.signal(signal.SIGTERM, previous)
        if options.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result, indent=2) if options.json else render(result))
    outcome = result["outcome"]
    return 0 if outcome["completed"] == options.tasks and not outcome["timedOut"] else 1


if __name__ == "__main__":
    sys.exit(main())
