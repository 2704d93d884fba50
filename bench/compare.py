"""Compare: vidgate's create and get routes against a bare FastAPI ceiling, same upstream.

One ``vidgate simulator`` (``--job-seconds 600`` by default, so every task stays in flight)
serves as the upstream of every server below. Each server is started, loaded alone and
stopped in turn:

* ``ceiling``: ``bench/ceiling.py``, bare FastAPI + uvicorn with the same routes and body
  shapes, tasks in a dict (no database, no engine);
* ``sqlite`` / ``sqlite-api``: ``vidgate serve`` (api + engine) / ``--role api`` on a fresh
  SQLite file;
* ``postgres`` / ``postgres-api``: the same on a fresh PostgreSQL database, created on the
  ``--pg-url`` server and dropped afterwards;
* ``litellm``: the LiteLLM proxy in front of the simulator, only when a ``litellm``
  executable is on PATH. Its routes are OpenAI's ``/v1/videos``, and it calls the upstream
  inside each request, so it is not the same work: its row is a reference point only.

Workloads: ``create`` (POST the seed's body) and ``get`` (GET one task created just
before), each after an unmeasured ``--warmup``, for ``--duration`` seconds with
``--connections`` keep-alive connections. The load generator is ``wrk`` when on PATH,
otherwise a built-in asyncio client (httpx). Non-2xx answers and socket errors are counted
and shown. After each vidgate create run: tasks in the database, and jobs the simulator
received (``GET /_sim/stats`` jobsCreated) at the end of the load and once the engine has
caught up (at most ``--settle`` seconds later).

Run from the repository root: ``.venv/bin/python bench/compare.py --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import re
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

from e2e import (
    Child,
    _interrupt,
    child_env,
    free_port,
    log,
    percentile,
    positive_float,
    positive_int,
    provider_toml,
    source_fingerprint,
    vidgate_executable,
)

HERE = Path(__file__).resolve().parent
SERVERS = ("ceiling", "sqlite", "sqlite-api", "postgres", "postgres-api", "litellm")
BODY = {
    "prompt": "A cat playing piano in a jazz bar",
    "model": "sora-2",
    "seconds": "4",
    "size": "720x1280",
}
DB_PREFIX = "vidgate_bench_"
UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


# -- load generators ---------------------------------------------------------------------


@dataclass
class Load:
    """One load run: every answer counts as a request, whatever its status."""

    loader: str
    requests: int
    seconds: float
    requests_per_second: float
    p50_ms: float | None
    p99_ms: float | None
    non_2xx: int
    errors: dict[str, int]  # socket errors (wrk) or exceptions (built-in), by kind
    statuses: dict[str, int] = field(default_factory=dict)  # built-in loader only
    server_cpu_seconds: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "loader": self.loader,
            "requests": self.requests,
            "seconds": self.seconds,
            "requestsPerSecond": self.requests_per_second,
            "p50Ms": self.p50_ms,
            "p99Ms": self.p99_ms,
            "non2xx": self.non_2xx,
            "errors": self.errors,
            "statuses": self.statuses,
            "serverCpuSeconds": self.server_cpu_seconds,
        }


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    body: dict[str, Any] | None = None


def lua_script(request: Request) -> str:
    lines = [f'wrk.method = "{request.method}"']
    if request.body is not None:
        lines.append(f"wrk.body = [[{json.dumps(request.body)}]]")
        lines.append('wrk.headers["Content-Type"] = "application/json"')
    return "\n".join(lines) + "\n"


def wrk_seconds(number: str, unit: str) -> float:
    return float(number) * UNITS[unit]


def parse_wrk(text: str) -> Load:
    """The figures of one ``wrk --latency`` report."""

    def search(pattern: str) -> re.Match[str] | None:
        return re.search(pattern, text, re.MULTILINE)

    total = search(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)")
    rate = search(r"^Requests/sec:\s+([\d.]+)")
    if total is None or rate is None:
        raise RuntimeError(f"could not read the wrk report:\n{text}")
    latency: dict[str, float] = {}
    for pct in ("50", "99"):
        found = search(rf"^\s+{pct}(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)")
        if found:
            latency[pct] = wrk_seconds(found[1], found[2]) * 1000
    errors: dict[str, int] = {}
    sockets = search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
    if sockets:
        for kind, count in zip(
            ("connect", "read", "write", "timeout"), sockets.groups(), strict=True
        ):
            if int(count):
                errors[kind] = int(count)
    non_2xx = search(r"Non-2xx or 3xx responses: (\d+)")
    return Load(
        loader="wrk",
        requests=int(total[1]),
        seconds=wrk_seconds(total[2], total[3]),
        requests_per_second=float(rate[1]),
        p50_ms=latency.get("50"),
        p99_ms=latency.get("99"),
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        errors=errors,
    )


def run_wrk(request: Request, options: argparse.Namespace, seconds: float, workdir: Path) -> Load:
    script = workdir / "load.lua"
    script.write_text(lua_script(request), encoding="utf-8")
    args = [
        options.wrk,
        f"-t{options.threads}",
        f"-c{options.connections}",
        f"-d{max(1, math.ceil(seconds))}s",  # wrk takes whole seconds only
        f"--timeout={max(1, math.ceil(options.request_timeout))}s",
        "--latency",
        "-s",
        str(script),
        request.url,
    ]
    done = subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=seconds + options.request_timeout + 30,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


async def builtin_load(
    request: Request, connections: int, seconds: float, request_timeout: float
) -> Load:
    """``connections`` loops, each on its own keep-alive connection (one client each: a
    shared httpx pool serialises the loops and was a quarter as fast), sending one request
    after the other until the end."""
    content = None if request.body is None else json.dumps(request.body).encode()
    headers = {} if request.body is None else {"content-type": "application/json"}
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    start = time.perf_counter()
    deadline = start + seconds

    async def loop() -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(limits=limits, timeout=request_timeout) as client:
            while time.perf_counter() < deadline:
                sent = time.perf_counter()
                try:
                    response = await client.request(
                        request.method, request.url, content=content, headers=headers
                    )
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] += 1
                    await asyncio.sleep(0.01)  # a refused connection must not spin
                    continue
                latencies.append(time.perf_counter() - sent)
                statuses[str(response.status_code)] += 1

    await asyncio.gather(*(loop() for _ in range(connections)))
    elapsed = time.perf_counter() - start
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    return Load(
        loader="builtin",
        requests=len(latencies),
        seconds=elapsed,
        requests_per_second=len(latencies) / elapsed if elapsed > 0 else 0.0,
        p50_ms=None if p50 is None else p50 * 1000,
        p99_ms=None if p99 is None else p99 * 1000,
        non_2xx=sum(n for code, n in statuses.items() if not code.startswith("2")),
        errors=dict(errors),
        statuses=dict(sorted(statuses.items())),
    )


def load(request: Request, options: argparse.Namespace, seconds: float, workdir: Path) -> Load:
    if options.wrk:
        return run_wrk(request, options, seconds, workdir)
    return asyncio.run(builtin_load(request, options.connections, seconds, options.request_timeout))


def measure(request: Request, options: argparse.Namespace, workdir: Path, server: Child) -> Load:
    """An unmeasured warm-up, then the measured run."""
    if options.warmup > 0:
        load(request, options, options.warmup, workdir)
    cpu_before = server.cpu_seconds()
    result = load(request, options, options.duration, workdir)
    cpu_after = server.cpu_seconds()
    if cpu_before is not None and cpu_after is not None:
        result.server_cpu_seconds = cpu_after - cpu_before
    return result


# -- servers -----------------------------------------------------------------------------


@dataclass
class Target:
    """A started server and how to talk to it."""

    child: Child
    origin: str
    create_path: str
    get_path: Callable[[str], str]
    create_body: dict[str, Any]
    read_id: Callable[[dict[str, Any]], str]
    count_tasks: Callable[[], int | None] = lambda: None
    engine: bool = False  # submits to the upstream in the background


def vidgate_ids(answer: dict[str, Any]) -> str:
    return str(answer["data"]["videoId"])


def vidgate_paths() -> dict[str, Any]:
    return {
        "create_path": "/api/video/tasks",
        "get_path": lambda video_id: f"/api/video/tasks/{video_id}",
        "create_body": BODY,
        "read_id": vidgate_ids,
    }


def sqlite_count(path: Path) -> Callable[[], int | None]:
    def count() -> int | None:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            return int(conn.execute("SELECT count(*) FROM tasks").fetchone()[0])

    return count


def postgres_count(url: str) -> Callable[[], int | None]:
    async def fetch() -> int:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM tasks"))
        finally:
            await conn.close()

    return lambda: asyncio.run(fetch())


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def admin_execute(admin_url: str, sql: str) -> None:
    conn = await asyncpg.connect(admin_url, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def postgres_problem(admin_url: str) -> str | None:
    """None when the server answers; otherwise why not."""
    try:
        asyncio.run(admin_execute(admin_url, "SELECT 1"))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return f"{type(exc).__name__}: {exc}".strip()
    return None


@dataclass
class Bench:
    options: argparse.Namespace
    workdir: Path
    vidgate: str
    sim_origin: str
    config: Path
    databases: list[str] = field(default_factory=list)  # created and not yet dropped
    current: Child | None = None  # the server being measured, stopped whatever happens

    def launch(self, child: Child, ready_url: str, timeout: float = 60.0) -> None:
        self.current = child
        child.start()
        child.wait_ready(ready_url, timeout=timeout)

    def vidgate_target(self, name: str) -> Target:
        role = "api" if name.endswith("-api") else "all"
        port = free_port()
        origin = f"http://127.0.0.1:{port}"
        if name.startswith("sqlite"):
            path = self.workdir / f"{name}.db"
            database_url = f"sqlite+aiosqlite:///{path}"
            count = sqlite_count(path)
        else:
            database = f"{DB_PREFIX}{secrets.token_hex(6)}"
            asyncio.run(admin_execute(self.options.pg_url, f'CREATE DATABASE "{database}"'))
            self.databases.append(database)
            database_url = with_database(self.options.pg_url, database)
            count = postgres_count(database_url)
        extra = dict(item.split("=", 1) for item in self.options.env)
        child = Child(
            name=name,
            args=[
                self.vidgate,
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--role",
                role,
                "--log-level",
                self.options.log_level,
            ],
            env=child_env(
                VIDGATE_DATABASE_URL=database_url,
                VIDGATE_CONFIG=str(self.config),
                VIDGATE_PUBLIC_URL=origin,
                **extra,
            ),
            cwd=self.workdir,
            log=self.workdir / f"{name}.log",
        )
        self.launch(child, f"{origin}/readyz")
        return Target(
            child=child, origin=origin, count_tasks=count, engine=role == "all", **vidgate_paths()
        )

    def ceiling_target(self) -> Target:
        port = free_port()
        origin = f"http://127.0.0.1:{port}"
        child = Child(
            name="ceiling",
            args=[
                sys.executable,
                str(HERE / "ceiling.py"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=child_env(),
            cwd=self.workdir,
            log=self.workdir / "ceiling.log",
        )
        self.launch(child, f"{origin}/readyz")
        return Target(child=child, origin=origin, **vidgate_paths())

    def litellm_target(self, executable: str) -> Target:
        # Not exercised where this bench was written (no litellm there). The proxy's
        # OpenAI-style video routes, one model routed to the simulator; no master key.
        port = free_port()
        origin = f"http://127.0.0.1:{port}"
        config = self.workdir / "litellm.yaml"
        config.write_text(
            "model_list:\n"
            "  - model_name: sora-2\n"
            "    litellm_params:\n"
            "      model: openai/sora-2\n"
            f"      api_base: {self.sim_origin}/v1\n"
            "      api_key: sk-bench\n",
            encoding="utf-8",
        )
        child = Child(
            name="litellm",
            args=[executable, "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
            env=child_env(),
            cwd=self.workdir,
            log=self.workdir / "litellm.log",
        )
        self.launch(child, f"{origin}/health/liveliness", timeout=120)
        return Target(
            child=child,
            origin=origin,
            create_path="/v1/videos",
            get_path=lambda video_id: f"/v1/videos/{video_id}",
            create_body=dict(BODY),
            read_id=lambda answer: str(answer["id"]),
        )

    def drop_databases(self) -> None:
        while self.databases:
            database = self.databases.pop()
            try:
                asyncio.run(
                    admin_execute(
                        self.options.pg_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'
                    )
                )
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log(f"could not drop database {database}: {exc}")

    def jobs_created(self) -> int:
        stats = httpx.get(f"{self.sim_origin}/_sim/stats", timeout=10).json()
        return int(stats.get("jobsCreated", 0))

    def start(self, name: str) -> Target:
        if name == "ceiling":
            return self.ceiling_target()
        if name == "litellm":
            executable = shutil.which("litellm")
            assert executable is not None  # checked by the caller
            return self.litellm_target(executable)
        return self.vidgate_target(name)

    def run_server(self, name: str) -> dict[str, Any]:
        options = self.options
        result: dict[str, Any] = {"server": name}
        jobs_before = self.jobs_created()
        try:
            target = self.start(name)
            log(f"{name}: create")
            create = measure(
                Request("POST", target.origin + target.create_path, target.create_body),
                options,
                self.workdir,
                target.child,
            )
            result["create"] = create.to_json()
            if name != "ceiling" and name != "litellm":
                result["engine"] = self.engine_report(target, jobs_before)
            answer = httpx.post(
                target.origin + target.create_path, json=target.create_body, timeout=30
            )
            if answer.status_code // 100 != 2:
                raise RuntimeError(
                    f"{name}: creating the task for get answered {answer.status_code}: "
                    f"{answer.text[:300]}"
                )
            video_id = target.read_id(answer.json())
            log(f"{name}: get {video_id}")
            get = measure(
                Request("GET", target.origin + target.get_path(video_id)),
                options,
                self.workdir,
                target.child,
            )
            result["get"] = get.to_json()
        finally:
            self.stop_current()
            self.drop_databases()
        return result

    def stop_current(self) -> None:
        child, self.current = self.current, None
        if child is not None:
            child.stop()

    def engine_report(self, target: Target, jobs_before: int) -> dict[str, Any]:
        """Tasks stored and jobs submitted upstream, when the create load ended and once the
        engine caught up (at most --settle seconds later). Requests still in flight when the
        load generator stopped may commit after the first count, so tasks are counted again."""
        tasks = target.count_tasks()
        submitted = self.jobs_created() - jobs_before
        report: dict[str, Any] = {
            "role": "all" if target.engine else "api",
            "tasksAtLoadEnd": tasks,
            "submittedAtLoadEnd": submitted,
            "tasks": tasks,
            "submittedAfterSettle": None,
            "settleSeconds": None,
        }
        if not target.engine or tasks is None:
            if not target.engine:
                time.sleep(0.5)  # let the last requests commit
                report["tasks"] = target.count_tasks()
            return report
        started = time.monotonic()
        while time.monotonic() - started < self.options.settle:
            time.sleep(0.25)
            tasks, submitted = target.count_tasks(), self.jobs_created() - jobs_before
            if tasks is not None and submitted >= tasks:
                break
        report["tasks"] = tasks
        report["submittedAfterSettle"] = submitted
        report["settleSeconds"] = round(time.monotonic() - started, 2)
        return report


# -- output ------------------------------------------------------------------------------


def rate(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def millis(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def failures_text(load_: dict[str, Any] | None) -> str:
    if load_ is None:
        return "-"
    parts = []
    if load_["non2xx"]:
        parts.append(f"{load_['non2xx']} non-2xx")
    parts.extend(f"{count} {kind}" for kind, count in load_["errors"].items())
    return ", ".join(parts) or "0"


def render(result: dict[str, Any]) -> str:
    params = result["parameters"]
    rows = result["servers"]
    ceiling = next((r for r in rows if r["server"] == "ceiling" and "create" in r), None)

    def ratio(row: dict[str, Any], workload: str) -> str:
        if ceiling is None or workload not in row:
            return "-"
        top = ceiling[workload]["requestsPerSecond"]
        return f"{row[workload]['requestsPerSecond'] / top:.2f}x" if top else "-"

    lines = [
        "| server | create req/s | create p50/p99 ms | x ceiling | get req/s | get p50/p99 ms "
        "| x ceiling | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    notes: list[str] = []
    for row in rows:
        name = row["server"]
        if "skipped" in row or "failed" in row:
            lines.append(f"| {name} | {'skipped' if 'skipped' in row else 'FAILED'} | | | | | | |")
            continue
        create, get = row.get("create"), row.get("get")
        cells = [name]
        for load_, workload in ((create, "create"), (get, "get")):
            if load_ is None:
                cells.extend(["-", "-", "-"])
                continue
            cells.append(rate(load_["requestsPerSecond"]))
            cells.append(f"{millis(load_['p50Ms'])} / {millis(load_['p99Ms'])}")
            cells.append(ratio(row, workload))
        errs = f"create {failures_text(create)}; get {failures_text(get)}"
        if failures_text(create) == "0" and failures_text(get) == "0":
            errs = "0"
        cells.append(errs)
        lines.append("| " + " | ".join(cells) + " |")
        engine = row.get("engine")
        if engine is not None:
            if engine["role"] == "api":
                notes.append(
                    f"- {name}: {engine['tasks']} tasks in the database; --role api has no "
                    f"engine, so none are submitted upstream "
                    f"(simulator jobs created: {engine['submittedAtLoadEnd']})"
                )
            else:
                caught_up = engine["submittedAfterSettle"] >= engine["tasks"]
                notes.append(
                    f"- {name}: {engine['tasks']} tasks in the database "
                    f"({engine['tasksAtLoadEnd']} when the create load ended); submitted "
                    f"upstream: {engine['submittedAtLoadEnd']} when the create load ended, "
                    f"{engine['submittedAfterSettle']} after {engine['settleSeconds']:g} s more"
                    + ("" if caught_up else " (engine still behind when the get load started)")
                )
    for row in rows:
        if "skipped" in row:
            notes.append(f"- {row['server']}: {row['skipped']}")
        elif "failed" in row:
            notes.append(f"- {row['server']}: failed: {row['failed']} (--keep keeps its log)")
    src, machine = result["source"], result["machine"]
    commit = (src.get("commit") or "?")[:12]
    dirty = src.get("uncommittedFiles")
    head = (
        f"vidgate {commit}" + (f" + {dirty} uncommitted file(s)" if dirty else "") + "; "
        f"loader {result['loader']}, {params['connections']} connections, "
        f"{params['threads']} thread(s), {params['duration']:g} s per run after a "
        f"{params['warmup']:g} s warm-up; upstream: simulator, {params['jobSeconds']:g} s jobs; "
        f"{machine['cpus']} CPUs, Python {machine['python']}, 1-min load average "
        f"{machine['loadAverage1m'][0]:g} before, {machine['loadAverage1m'][1]:g} after"
    )
    out = [head, "", *lines]
    if notes:
        out += ["", *notes]
    return "\n".join(out)


# -- command line ------------------------------------------------------------------------


def server_list(text: str) -> list[str]:
    names = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [n for n in names if n not in SERVERS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown server(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(SERVERS)}"
        )
    return [n for n in SERVERS if n in names]  # always in the table's order


def short_reason(exc: BaseException) -> str:
    """The first line of an error, and the last exception line of a child's log tail."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [repr(exc)]
    raised = [line for line in lines[1:] if re.match(r"^[\w.]+(Error|Exception)\b", line)]
    return lines[0] + (f" ... {raised[-1]}" if raised else "")


def non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/compare.py",
        description=(
            "Requests/s, p50 and p99 of POST /api/video/tasks (create) and "
            "GET /api/video/tasks/{id} (get) on a bare FastAPI ceiling, vidgate on SQLite and "
            "PostgreSQL (api + engine, and --role api), and the LiteLLM proxy when installed, "
            "all in front of one `vidgate simulator`; each server is started, loaded alone "
            "and stopped in turn. Prints a markdown table, with each server's ratio to the "
            "ceiling."
        ),
        epilog=(
            "Every answer counts as a request; non-2xx answers and socket errors are counted "
            "and shown in the errors column (wrk counts statuses >= 400 as non-2xx). p50 and "
            "p99 are wrk's latency distribution (or the built-in loader's, over every answer). "
            "The create load of a server that runs the engine leaves a submission backlog; the "
            "notes under the table say how far behind the engine was and the get load starts "
            "once it caught up or after --settle seconds. Exit status 0 when every selected "
            "server was measured or skipped, 1 when one failed, 2 on a setup error, 130 on "
            "Ctrl-C / SIGTERM."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--servers",
        type=server_list,
        default=list(SERVERS),
        help=f"comma-separated subset of {','.join(SERVERS)}",
    )
    parser.add_argument(
        "--duration",
        type=positive_float,
        default=10.0,
        help="seconds per run (wrk: rounded up to whole seconds)",
    )
    parser.add_argument(
        "--warmup",
        type=non_negative_float,
        default=2.0,
        help="unmeasured seconds before a run (wrk: rounded up to whole seconds; 0: none)",
    )
    parser.add_argument("--connections", type=positive_int, default=32, help="connections")
    parser.add_argument(
        "--threads", type=positive_int, default=1, help="wrk threads (the built-in loader: 1)"
    )
    parser.add_argument(
        "--loader",
        choices=("auto", "wrk", "builtin"),
        default="auto",
        help="auto: wrk when on PATH, else the built-in asyncio client (httpx)",
    )
    parser.add_argument(
        "--request-timeout",
        type=positive_float,
        default=10.0,
        help="seconds before a request counts as a timeout error",
    )
    parser.add_argument(
        "--pg-url",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="PostgreSQL server for the postgres runs: a fresh database "
        f"{DB_PREFIX}<random> is created on it per server and dropped afterwards",
    )
    parser.add_argument(
        "--job-seconds",
        type=positive_float,
        default=600.0,
        help="simulator job length (long: tasks stay in flight during the runs)",
    )
    parser.add_argument(
        "--settle",
        type=non_negative_float,
        default=5.0,
        help="after a create run with the engine, longest wait for it to submit the backlog",
    )
    parser.add_argument(
        "--log-level", default="INFO", help="vidgate serve --log-level (logs go to files)"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment variable for vidgate serve (repeatable)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory (logs, databases)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    options = parser.parse_args(argv)
    for item in options.env:
        if "=" not in item:
            parser.error(f"--env needs NAME=VALUE, got {item!r}")
    if options.threads > options.connections:
        parser.error("--threads cannot exceed --connections")
    if urlsplit(options.pg_url).hostname not in ("127.0.0.1", "localhost", "::1"):
        parser.error("--pg-url must be a loopback address")
    options.wrk = None
    if options.loader != "builtin":
        options.wrk = shutil.which("wrk")
        if options.wrk is None and options.loader == "wrk":
            parser.error("--loader wrk: wrk is not on PATH")
    return options


def loader_name(options: argparse.Namespace) -> str:
    if not options.wrk:
        return f"builtin (httpx {httpx.__version__})"
    done = subprocess.run(
        [options.wrk, "-v"], capture_output=True, text=True, timeout=10, check=False
    )
    first = (done.stdout or done.stderr).splitlines()
    return first[0].split(" Copyright")[0].strip() if first else "wrk"


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    vidgate = vidgate_executable()
    workdir = Path(tempfile.mkdtemp(prefix="vidgate-compare-"))
    source = source_fingerprint()
    load_before = os.getloadavg()
    previous = signal.signal(signal.SIGTERM, _interrupt)
    simulator: Child | None = None
    bench: Bench | None = None
    rows: list[dict[str, Any]] = []
    try:
        sim_port = free_port()
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
                f"{options.job_seconds:g}",
            ],
            env=child_env(),
            cwd=workdir,
            log=workdir / "simulator.log",
        )
        log(f"starting simulator on 127.0.0.1:{sim_port} (work dir {workdir})")
        simulator.start()
        sim_origin = f"http://127.0.0.1:{sim_port}"
        simulator.wait_ready(f"{sim_origin}/_sim/stats")
        config = workdir / "providers.toml"
        config.write_text(provider_toml(f"{sim_origin}/v1", None), encoding="utf-8")
        bench = Bench(options, workdir, vidgate, sim_origin, config)

        postgres_why: str | None = None
        if any(name.startswith("postgres") for name in options.servers):
            postgres_why = postgres_problem(options.pg_url)
        for name in options.servers:
            if name == "litellm" and shutil.which("litellm") is None:
                rows.append({"server": name, "skipped": "skipped: litellm not installed"})
            elif name.startswith("postgres") and postgres_why is not None:
                rows.append(
                    {"server": name, "skipped": f"skipped: PostgreSQL unreachable ({postgres_why})"}
                )
            else:
                try:
                    rows.append(bench.run_server(name))
                except (RuntimeError, OSError, httpx.HTTPError, asyncpg.PostgresError) as exc:
                    log(f"{name} failed: {exc}")
                    rows.append({"server": name, "failed": short_reason(exc)})
                    continue
            if "skipped" in rows[-1]:
                log(f"{name}: {rows[-1]['skipped']}")
    except KeyboardInterrupt:
        log("interrupted; stopping processes")
        return 130
    except (RuntimeError, OSError, httpx.HTTPError) as exc:
        log(f"setup failed: {exc}")
        return 2
    finally:
        if bench is not None:
            bench.stop_current()
            bench.drop_databases()
        if simulator is not None:
            simulator.stop()
        signal.signal(signal.SIGTERM, previous)
        if options.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    result = {
        "parameters": {
            "servers": options.servers,
            "duration": options.duration,
            "warmup": options.warmup,
            "connections": options.connections,
            "threads": options.threads if options.wrk else 1,
            "requestTimeout": options.request_timeout,
            "jobSeconds": options.job_seconds,
            "settle": options.settle,
            "body": BODY,
            "env": options.env,
        },
        "loader": loader_name(options),
        "source": source,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            # Other processes on the machine compete for the same CPUs: 1-minute load
            # average before and after the whole run.
            "loadAverage1m": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        },
        "servers": rows,
    }
    print(json.dumps(result, indent=2) if options.json else render(result))
    return 1 if any("failed" in row for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
