"""Scale-out benchmark: 1 api process and W worker processes on PostgreSQL (and Redis).

Starts ``vidgate simulator``, one ``vidgate serve --role api`` and ``--workers`` W
``vidgate worker`` processes, all on free 127.0.0.1 ports and one fresh PostgreSQL database
(created on the test server of ``tests/databases.py`` and dropped at the end), then runs
three phases against the same processes:

1. short jobs (``--short-tasks`` of ``--short-job-seconds``): completion throughput, i.e.
   tasks COMPLETED per second from the first POST to the last task's ``completed_at``;
2. creation: ``--tasks`` tasks of ``--job-seconds`` (long) jobs created with
   ``--concurrency`` POSTs in flight: tasks created per second and POST latency;
3. in-flight tracking: while those long jobs run (none can finish yet), every
   ``--sample-every`` seconds for ``--window`` seconds, reads the ``tasks`` table and the
   simulator's request counters. Figures: polls handled per second (``GET /videos/{id}`` at
   the simulator), and how late the workers are: for every in-flight task, ``lag`` =
   ``max(0, now - next_check_at)`` (a task that is due and has not been looked at yet;
   ``next_check_at`` moves on at each look) and ``staleness`` = ``now - updated_at`` (every
   look writes ``updated_at``; the schedule never waits more than 20 s + 10 %% jitter, so
   a task older than 2 x 20 s has been neglected).

All processes are stopped and the database dropped at the end, also on Ctrl-C or an error.
Run from the repository root: ``.venv/bin/python bench/scale.py --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for tests.databases; bench/ itself is already on the path

from tests.databases import (  # noqa: E402
    create_postgres_database,
    drop_postgres_database,
    url_of,
)

from e2e import (  # noqa: E402
    Child,
    _interrupt,
    child_env,
    distribution,
    free_port,
    log,
    ms,
    positive_float,
    positive_int,
    provider_toml,
    source_fingerprint,
    vidgate_executable,
)

ACTIVE = ("QUEUED", "PROCESSING")
POLL_ROUTE = "GET /videos/{video_id}"
MAX_POLL_INTERVAL = 20.0  # vidgate.domain.schedule.PollPolicy.maximum
STALE_AFTER = 2 * MAX_POLL_INTERVAL

SAMPLE_SQL = """
WITH t AS (
    SELECT greatest(0, extract(epoch FROM now() - next_check_at))::float8 AS lag,
           extract(epoch FROM now() - updated_at)::float8 AS age
    FROM tasks WHERE status = ANY($1::text[])
)
SELECT count(*) AS inflight,
       count(*) FILTER (WHERE lag > 1) AS overdue_1s,
       count(*) FILTER (WHERE lag > 5) AS overdue_5s,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY lag) AS lag_p50,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY lag) AS lag_p99,
       max(lag) AS lag_max,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY age) AS age_p50,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY age) AS age_p99,
       max(age) AS age_max,
       count(*) FILTER (WHERE age > $2) AS stale
FROM t
"""


# -- load --------------------------------------------------------------------------------


async def create_tasks(
    client: httpx.AsyncClient, count: int, concurrency: int, prompt: str, *, unique: bool
) -> dict[str, Any]:
    """Create ``count`` tasks with ``concurrency`` POSTs in flight; figures of the phase."""
    latencies: list[float] = []
    failures: Counter[str] = Counter()
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < count:
            index = next_index
            next_index += 1
            started = time.perf_counter()
            try:
                response = await client.post(
                    "/api/video/tasks",
                    json={"prompt": f"{prompt} #{index}" if unique else prompt, "seconds": "4"},
                )
            except httpx.HTTPError as exc:
                failures[type(exc).__name__] += 1
                continue
            if response.status_code == 201:
                latencies.append(time.perf_counter() - started)
            else:
                failures[f"HTTP {response.status_code}"] += 1

    wall_start, clock_start = time.time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - clock_start
    return {
        "created": len(latencies),
        "failures": dict(failures),
        "seconds": seconds,
        "startedAt": wall_start,
        "tasksPerSecond": len(latencies) / seconds if seconds > 0 else None,
        "postLatencySeconds": distribution(latencies),
    }


def poll_count(stats: dict[str, Any]) -> int:
    return int((stats.get("requests") or {}).get(POLL_ROUTE, 0))


def cpu_delta(before: dict[str, float | None], after: dict[str, float | None]) -> dict[str, Any]:
    return {
        k: (None if before.get(k) is None or after.get(k) is None else after[k] - before[k])  # type: ignore[operator]
        for k in after
    }


async def short_phase(
    options: argparse.Namespace,
    client: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    db: asyncpg.Connection,
) -> dict[str, Any] | None:
    """Short jobs, created in a burst, until all are terminal: completion throughput."""
    if options.short_tasks == 0:
        return None
    await sim.post("/_sim/faults", json={"job_seconds": options.short_job_seconds})
    log(f"short phase: {options.short_tasks} tasks of {options.short_job_seconds:g} s")
    creation = await create_tasks(
        client, options.short_tasks, options.concurrency, "short", unique=options.unique_prompts
    )
    deadline = time.monotonic() + options.short_timeout
    timed_out = True
    while time.monotonic() < deadline:
        active = await db.fetchval(
            "SELECT count(*) FROM tasks WHERE status = ANY($1::text[])", list(ACTIVE)
        )
        if active == 0:
            timed_out = False
            break
        await asyncio.sleep(0.25)
    row = await db.fetchrow(
        "SELECT count(*) FILTER (WHERE status = 'COMPLETED') AS completed,"
        " count(*) FILTER (WHERE status <> 'COMPLETED') AS other,"
        " extract(epoch FROM max(completed_at))::float8 AS last_done FROM tasks"
    )
    completed, last_done = int(row["completed"]), row["last_done"]
    span = None if last_done is None else last_done - creation["startedAt"]
    # Where each task's time went: waiting to be submitted, then running to completion.
    stages = await db.fetchrow(
        "SELECT"
        " percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY"
        "   extract(epoch FROM a.submitted_at - t.created_at)) AS queued,"
        " percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY"
        "   extract(epoch FROM t.completed_at - a.submitted_at)) AS running"
        " FROM tasks t JOIN attempts a ON a.video_id = t.video_id AND a.number = t.attempt"
        " WHERE t.status = 'COMPLETED'"
    )
    return {
        "createdToSubmitted": _pair(stages["queued"]),
        "submittedToCompleted": _pair(stages["running"]),
        "tasks": options.short_tasks,
        "jobSeconds": options.short_job_seconds,
        "created": creation["created"],
        "completed": completed,
        "notCompleted": int(row["other"]),
        "timedOut": timed_out,
        "firstPostToLastCompletedSeconds": span,
        "completedPerSecond": completed / span if span else None,
        # The best a perfect gateway could do: every job started at its 201.
        "idealSeconds": creation["seconds"] + options.short_job_seconds,
    }


LAG_METRIC = "vidgate_engine_check_lag_seconds"


async def check_lag_buckets(client: httpx.AsyncClient, urls: Sequence[str]) -> dict[float, float]:
    """The workers' check lag histogram from their ``/metrics``: cumulative count per bucket
    bound (``le``), summed over the workers. The engine observes, as it starts each step, how
    long after the task's due time that is."""
    totals: dict[float, float] = {}
    for url in urls:
        text = (await client.get(url)).text
        for family in text_string_to_metric_families(text):
            if family.name != LAG_METRIC:
                continue
            for sample in family.samples:
                if sample.name.endswith("_bucket"):
                    bound = float(sample.labels["le"])
                    totals[bound] = totals.get(bound, 0.0) + sample.value
    return totals


def lag_summary(before: dict[float, float], after: dict[float, float]) -> dict[str, Any]:
    """Checks started between two readings, the share of them within 1 s and 5 s of their
    due time, and the bucket bounds p50 and p99 fall under."""
    delta = {bound: after[bound] - before.get(bound, 0.0) for bound in sorted(after)}
    total = delta.get(math.inf, 0.0)

    def under(q: float) -> float | None:
        return next((b for b, n in delta.items() if total and n >= q * total), None)

    def share(bound: float) -> float | None:
        return delta.get(bound, 0.0) / total if total else None

    return {
        "checks": int(total),
        "within1s": share(1.0),
        "within5s": share(5.0),
        "p50AtMost": under(0.5),
        "p99AtMost": under(0.99),
    }


def peak_memory_mb(child: Child) -> float | None:
    """The most resident memory the process has had so far (Linux's VmHWM), in MB."""
    if child.process is None:
        return None
    try:
        status = Path(f"/proc/{child.process.pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    return None


def _pair(values: Sequence[float] | None) -> dict[str, float | None]:
    """p50 and p99 from a ``percentile_cont(ARRAY[0.5, 0.99])`` result."""
    p50, p99 = (None, None) if values is None else (float(values[0]), float(values[1]))
    return {"p50": p50, "p99": p99}


async def tracking_phase(
    options: argparse.Namespace,
    sim: httpx.AsyncClient,
    db: asyncpg.Connection,
    cpu: Callable[[], dict[str, float | None]],
    first_post: float,
    metrics_urls: Sequence[str],
) -> dict[str, Any]:
    """Sample the tasks table while the long jobs run; polls handled from the simulator."""
    # No long job can finish before first_post + job_seconds: stop the window before that,
    # so completion checks and terminal writes do not mix into the figures.
    latest_end = first_post + options.job_seconds - 1.0
    window = min(options.window, latest_end - time.time())
    if window < 2 * options.sample_every:
        raise RuntimeError(
            f"no room for a tracking window: creation took too long for {options.job_seconds:g} s "
            "jobs; raise --job-seconds or lower --tasks"
        )
    if options.settle > 0:
        await asyncio.sleep(min(options.settle, window / 3))
        window = min(options.window, latest_end - time.time())
    log(f"tracking phase: sampling for {window:.0f} s")
    before = (await sim.get("/_sim/stats")).json()
    lag_before = await check_lag_buckets(sim, metrics_urls)
    cpu_before, start = cpu(), time.perf_counter()
    samples: list[dict[str, Any]] = []
    while True:
        row = await db.fetchrow(SAMPLE_SQL, list(ACTIVE), STALE_AFTER)
        samples.append({k: (float(v) if v is not None else None) for k, v in row.items()})
        if time.perf_counter() - start + options.sample_every > window:
            break
        await asyncio.sleep(options.sample_every)
    seconds = time.perf_counter() - start
    after = (await sim.get("/_sim/stats")).json()
    cpu_used = cpu_delta(cpu_before, cpu())
    check_lag = lag_summary(lag_before, await check_lag_buckets(sim, metrics_urls))
    polls = poll_count(after) - poll_count(before)

    def worst(key: str) -> float | None:
        values = [s[key] for s in samples if s[key] is not None]
        return max(values) if values else None

    def mean(key: str) -> float | None:
        values = [s[key] for s in samples if s[key] is not None]
        return sum(values) / len(values) if values else None

    inflight = [s["inflight"] for s in samples]
    return {
        "windowSeconds": seconds,
        "samples": len(samples),
        "inflightMin": min(inflight),
        "inflightMax": max(inflight),
        "pollsHandled": polls,
        "pollsPerSecond": polls / seconds,
        "lagP50Mean": mean("lag_p50"),
        "lagP99Mean": mean("lag_p99"),
        "lagP99Worst": worst("lag_p99"),
        "lagMaxWorst": worst("lag_max"),
        "overdue1sMeanFraction": mean_fraction(samples, "overdue_1s"),
        "overdue5sMeanFraction": mean_fraction(samples, "overdue_5s"),
        "ageP50Mean": mean("age_p50"),
        "ageP99Mean": mean("age_p99"),
        "ageP99Worst": worst("age_p99"),
        "ageMaxWorst": worst("age_max"),
        "staleMaxFraction": max(
            (s["stale"] / s["inflight"] for s in samples if s["inflight"]), default=None
        ),
        "cpuSeconds": cpu_used,
        "cpuBusyCores": sum(v for k, v in cpu_used.items() if v is not None and k != "postgres")
        / seconds,
        "checkLag": check_lag,
        "sampleRows": samples,
    }


def mean_fraction(samples: Sequence[dict[str, Any]], key: str) -> float | None:
    values = [s[key] / s["inflight"] for s in samples if s["inflight"]]
    return sum(values) / len(values) if values else None


async def run_benchmark(
    options: argparse.Namespace,
    api: str,
    sim_origin: str,
    database_url: str,
    cpu: Callable[[], dict[str, float | None]],
    metrics_urls: Sequence[str],
) -> dict[str, Any]:
    limits = httpx.Limits(
        max_connections=options.concurrency, max_keepalive_connections=options.concurrency
    )
    db = await asyncpg.connect(database_url)
    try:
        async with (
            httpx.AsyncClient(base_url=api, limits=limits, timeout=60.0) as client,
            httpx.AsyncClient(base_url=sim_origin, timeout=10.0) as sim,
        ):
            short = await short_phase(options, client, sim, db)
            await sim.post("/_sim/faults", json={"job_seconds": options.job_seconds})
            log(f"creation phase: {options.tasks} tasks of {options.job_seconds:g} s")
            stats_before = (await sim.get("/_sim/stats")).json()
            lag_before = await check_lag_buckets(sim, metrics_urls)
            cpu_before = cpu()
            creation = await create_tasks(
                client, options.tasks, options.concurrency, "long", unique=options.unique_prompts
            )
            creation["cpuSeconds"] = cpu_delta(cpu_before, cpu())
            lag_after = await check_lag_buckets(sim, metrics_urls)
            creation["checkLag"] = lag_summary(lag_before, lag_after)
            stats_after = (await sim.get("/_sim/stats")).json()
            creation["upstreamCreatesDuringCreation"] = int(
                stats_after["requests"].get("POST /videos", 0)
            ) - int(stats_before["requests"].get("POST /videos", 0))
            log(
                f"created {creation['created']} in {creation['seconds']:.1f} s "
                f"({creation['tasksPerSecond'] or 0:.0f}/s)"
            )
            tracking = await tracking_phase(
                options, sim, db, cpu, creation["startedAt"], metrics_urls
            )
    finally:
        await db.close()
    return {"short": short, "creation": creation, "tracking": tracking}


# -- output ------------------------------------------------------------------------------


def lag_line(lag: dict[str, Any]) -> str:
    """How late the workers' checks started (their own histogram, by bucket bound)."""
    if not lag["checks"]:
        return "no checks started"
    return (
        f"{lag['checks']} checks: {pct(lag['within1s'])} within 1 s of due, "
        f"{pct(lag['within5s'])} within 5 s; p50 <= {secs(lag['p50AtMost'])}, "
        f"p99 <= {secs(lag['p99AtMost'])}"
    )


def secs(value: object) -> str:
    return "-" if not isinstance(value, int | float) else f"{value:.1f} s"


def pct(value: object) -> str:
    return "-" if not isinstance(value, int | float) else f"{value * 100:.1f} %"


def render(result: dict[str, Any]) -> str:
    p = result["parameters"]
    rows: list[tuple[str, str]] = [
        (
            "run",
            f"{p['workers']} worker(s) + 1 api on PostgreSQL"
            + (" + Redis" if p["redisUrl"] else "")
            + f", {result['machine']['cpus']} CPUs",
        )
    ]
    src = result["source"]
    if src.get("package"):
        dirty = src.get("uncommittedFiles")
        rows.append(
            (
                "vidgate source",
                f"{(src.get('commit') or '?')[:12]}"
                + (f" + {dirty} uncommitted file(s)" if dirty else "")
                + f", files sha256 {src['sha256']}",
            )
        )

    def section(title: str) -> None:
        rows.extend([("", ""), (title, "")])

    def add(label: str, value: str) -> None:
        rows.append(("  " + label, value))

    short = result["short"]
    if short is not None:
        section(f"short jobs: {short['tasks']} tasks of {short['jobSeconds']:g} s")
        add("COMPLETED / other", f"{short['completed']} / {short['notCompleted']}")
        add(
            "first POST -> last completed",
            secs(short["firstPostToLastCompletedSeconds"])
            + f"  (ideal {short['idealSeconds']:.1f} s)"
            + ("  TIMED OUT" if short["timedOut"] else ""),
        )
        for label, key in (
            ("created -> submitted", "createdToSubmitted"),
            ("submitted -> completed", "submittedToCompleted"),
        ):
            pair = short[key]
            add(label, f"p50 {secs(pair['p50'])}  p99 {secs(pair['p99'])}")
        rate = short["completedPerSecond"]
        add("completed / s", "-" if rate is None else f"{rate:.1f}")
    c = result["creation"]
    section(
        f"creation: {p['tasks']} tasks of {p['jobSeconds']:g} s, {p['concurrency']} POSTs in flight"
    )
    add("created", f"{c['created']}" + (f"  failures {c['failures']}" if c["failures"] else ""))
    add("wall time", secs(c["seconds"]))
    add("tasks created / s", "-" if c["tasksPerSecond"] is None else f"{c['tasksPerSecond']:.0f}")
    d = c["postLatencySeconds"]
    add("POST latency", f"p50 {ms(d['p50'])}  p99 {ms(d['p99'])}  max {ms(d['max'])}")
    add("upstream creates meanwhile", str(c["upstreamCreatesDuringCreation"]))
    add("check start lag (/metrics)", lag_line(c["checkLag"]))
    t = result["tracking"]
    section(
        f"in-flight tracking: {t['samples']} samples over {t['windowSeconds']:.0f} s, "
        f"{t['inflightMin']:.0f}-{t['inflightMax']:.0f} tasks in flight"
    )
    add("polls handled / s", f"{t['pollsPerSecond']:.1f}  ({t['pollsHandled']} GET /videos/{{id}})")
    add(
        "lag (now - next_check_at)",
        f"p50 {secs(t['lagP50Mean'])}  p99 {secs(t['lagP99Mean'])} (mean of samples)  "
        f"worst p99 {secs(t['lagP99Worst'])}  max {secs(t['lagMaxWorst'])}",
    )
    add("check start lag (/metrics)", lag_line(t["checkLag"]))
    add(
        "overdue > 1 s / > 5 s",
        f"{pct(t['overdue1sMeanFraction'])} / {pct(t['overdue5sMeanFraction'])} of in-flight "
        "(mean of samples)",
    )
    add(
        "staleness (now - updated_at)",
        f"p50 {secs(t['ageP50Mean'])}  p99 {secs(t['ageP99Mean'])} (mean of samples)  "
        f"worst p99 {secs(t['ageP99Worst'])}  max {secs(t['ageMaxWorst'])}",
    )
    add(f"stale > {STALE_AFTER:.0f} s", f"{pct(t['staleMaxFraction'])} of in-flight (worst sample)")
    add(
        "CPU busy cores",
        f"{t['cpuBusyCores']:.2f} of {result['machine']['cpus']}  "
        + ", ".join(f"{k} {v:.1f} s" for k, v in t["cpuSeconds"].items() if v is not None),
    )
    memory = result.get("peakMemoryMb") or {}
    if memory:
        add(
            "peak memory",
            ", ".join(f"{k} {v:.0f} MB" for k, v in memory.items() if v is not None),
        )
    width = max(len(label) for label, value in rows if value) + 2
    return "\n".join(f"{label:<{width}}{value}".rstrip() for label, value in rows)


# -- command line ------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/scale.py",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog=(
            "Lag: for each in-flight (QUEUED/PROCESSING) task, max(0, now - next_check_at): "
            "how long a due task has been waiting to be looked at (a task inside a step counts "
            "as waiting until its step commits). Staleness: now - updated_at, the time since "
            "the task was last looked at (each poll writes it). Both are read from PostgreSQL "
            "(its now()) every --sample-every seconds; the table shows the mean over samples of "
            "each sample's p50/p99 and the worst sample. Polls handled / s: the simulator's "
            "GET /videos/{id} count over the window. Exit status 0 on success, 2 on a setup "
            "error, 130 on Ctrl-C / SIGTERM."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--workers", "-w", type=positive_int, default=1, help="worker processes")
    parser.add_argument(
        "--tasks", "-n", type=positive_int, default=2000, help="long tasks (creation + tracking)"
    )
    parser.add_argument("--job-seconds", type=positive_float, default=90.0, help="long job length")
    parser.add_argument(
        "--window", type=positive_float, default=45.0, help="tracking window, at most"
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=5.0,
        help="seconds after the creation phase before the tracking window opens",
    )
    parser.add_argument(
        "--sample-every", type=positive_float, default=3.0, help="seconds between samples"
    )
    parser.add_argument(
        "--concurrency", type=positive_int, default=16, help="creation POSTs in flight"
    )
    parser.add_argument(
        "--short-tasks",
        type=int,
        default=300,
        help="tasks of the short-job phase (0: skip it)",
    )
    parser.add_argument("--short-job-seconds", type=positive_float, default=5.0)
    parser.add_argument(
        "--unique-prompts",
        action="store_true",
        help="number each task's prompt. The simulator renders one clip per distinct prompt "
        "(about 70 ms of its CPU each, one at a time), and vidgate mirrors a completed "
        "/v1/videos result, so this makes the simulator's renderer the limit of the short "
        "phase (about 14 completions/s); by default all tasks share one clip, as in e2e.py",
    )
    parser.add_argument(
        "--short-timeout",
        type=positive_float,
        default=90.0,
        help="longest wait for the short tasks after their creation phase",
    )
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/0",
        help="VIDGATE_REDIS_URL of every vidgate process ('' for none)",
    )
    parser.add_argument(
        "--provider-concurrency",
        type=positive_int,
        default=None,
        help="max_concurrency of the provider (None: vidgate's default), per process",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment variable for every vidgate process (repeatable)",
    )
    parser.add_argument("--log-level", default="WARNING", help="vidgate --log-level")
    parser.add_argument("--keep", action="store_true", help="keep the logs directory")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    options = parser.parse_args(argv)
    for item in options.env:
        if "=" not in item:
            parser.error(f"--env needs NAME=VALUE, got {item!r}")
    if options.short_tasks < 0:
        parser.error("--short-tasks must be 0 or more")
    return options


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    vidgate = vidgate_executable()
    workdir = Path(tempfile.mkdtemp(prefix="vidgate-scale-"))
    children: list[Child] = []
    database: str | None = None
    source = source_fingerprint()
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        database = asyncio.run(create_postgres_database())
        database_url = url_of(database)
        log(f"database {database}; work dir {workdir}")

        sim_port = free_port()
        simulator = Child(
            name="simulator",
            args=[vidgate, "simulator", "--host", "127.0.0.1", "--port", str(sim_port)],
            env=child_env(),
            cwd=workdir,
            log=workdir / "simulator.log",
        )
        children.append(simulator)
        simulator.start()
        sim_origin = f"http://127.0.0.1:{sim_port}"
        simulator.wait_ready(f"{sim_origin}/_sim/stats")

        config = workdir / "providers.toml"
        config.write_text(
            provider_toml(f"{sim_origin}/v1", options.provider_concurrency), encoding="utf-8"
        )
        api_port = free_port()
        api = f"http://127.0.0.1:{api_port}"
        env = child_env(
            VIDGATE_DATABASE_URL=database_url,
            VIDGATE_CONFIG=str(config),
            VIDGATE_PUBLIC_URL=api,
            **({"VIDGATE_REDIS_URL": options.redis_url} if options.redis_url else {}),
            **dict(item.split("=", 1) for item in options.env),
        )
        common = ["--host", "127.0.0.1", "--log-level", options.log_level]
        server = Child(
            name="api",
            args=[vidgate, "serve", "--role", "api", "--port", str(api_port), *common],
            env=env,
            cwd=workdir,
            log=workdir / "api.log",
        )
        children.append(server)
        server.start()
        server.wait_ready(f"{api}/readyz")  # the first process migrates the schema
        workers: list[tuple[Child, int]] = []
        for index in range(options.workers):
            port = free_port()
            child = Child(
                name=f"worker{index + 1}",
                args=[vidgate, "worker", "--port", str(port), *common],
                env=env,
                cwd=workdir,
                log=workdir / f"worker{index + 1}.log",
            )
            children.append(child)
            child.start()
            workers.append((child, port))
        for child, port in workers:
            child.wait_ready(f"http://127.0.0.1:{port}/readyz")
        log(f"api on {api_port}, {options.workers} worker(s), simulator on {sim_port}")

        def cpu() -> dict[str, float | None]:
            figures = {child.name: child.cpu_seconds() for child in children}
            figures["bench"] = time.process_time()
            return figures

        metrics_urls = [f"http://127.0.0.1:{port}/metrics" for _, port in workers]
        figures = asyncio.run(
            run_benchmark(options, api, sim_origin, database_url, cpu, metrics_urls)
        )
        figures["peakMemoryMb"] = {child.name: peak_memory_mb(child) for child in children}
    except KeyboardInterrupt:
        log("interrupted; stopping processes")
        return 130
    except (RuntimeError, OSError, httpx.HTTPError, asyncpg.PostgresError) as exc:
        log(f"setup or run failed: {exc}")
        for child in children:
            if child.process is not None and child.process.poll() is not None:
                log(f"{child.name} exited; log tail:\n{child.tail()}")
        return 2
    finally:
        for child in reversed(children):
            child.stop()
        if database is not None:
            try:
                asyncio.run(drop_postgres_database(database))
            except (OSError, asyncpg.PostgresError) as exc:
                log(f"could not drop database {database}: {exc}")
        signal.signal(signal.SIGTERM, previous)
        if options.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    result = {
        "parameters": {
            "workers": options.workers,
            "tasks": options.tasks,
            "jobSeconds": options.job_seconds,
            "concurrency": options.concurrency,
            "window": options.window,
            "sampleEvery": options.sample_every,
            "shortTasks": options.short_tasks,
            "shortJobSeconds": options.short_job_seconds,
            "uniquePrompts": options.unique_prompts,
            "redisUrl": options.redis_url or None,
            "providerConcurrency": options.provider_concurrency,
            "env": options.env,
        },
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "source": source,
        **figures,
    }
    if options.json:
        print(json.dumps(result, indent=2))
    else:
        print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
