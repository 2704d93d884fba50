"""``vidgate submit / status / list`` as a user runs them, against a real ``vidgate serve``."""

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.databases import DATABASES


@pytest.fixture(params=DATABASES)
def database_kind(request: pytest.FixtureRequest) -> str:
    """Every test here runs on SQLite and on PostgreSQL."""
    return str(request.param)


VIDGATE = str(Path(sys.executable).with_name("vidgate"))
VIDEO_ID = re.compile(r"^videoId\s+(video_[0-9a-f-]{36})$", re.MULTILINE)
EXTERNAL_ID = re.compile(r"^externalVideoId\s+(\S+)$", re.MULTILINE)
VIDEO_URL = re.compile(r"^videoUrl\s+(https?://\S+)$", re.MULTILINE)


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # Output piped, as a script reads it: no terminal size either (pytest-xdist workers have
    # COLUMNS=80 and LINES=24 in their environment, which would narrow the tables).
    unset = {"VIDGATE_SERVER", "COLUMNS", "LINES"}
    clean = {k: v for k, v in os.environ.items() if k not in unset}
    return subprocess.run(
        [VIDGATE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **(env or {})},
        check=False,
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def assert_one_line_error(result: subprocess.CompletedProcess[str], start: str) -> None:
    assert result.returncode == 2, result
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(start), lines[0]
    assert "Traceback" not in result.stderr


def test_submit_wait_then_status_and_list(vidgate_server: Any) -> None:
    server = vidgate_server.url
    submitted = run("submit", "a fox", "--wait", "--server", server)
    assert submitted.returncode == 0, submitted.stderr + submitted.stdout
    out = submitted.stdout

    video_ids = set(VIDEO_ID.findall(out))
    assert len(video_ids) == 1, out
    video_id = video_ids.pop()
    # "pending" first, then the upstream's id once known, then again in the summary.
    externals = EXTERNAL_ID.findall(out)
    assert externals[0] == "pending"
    external_id = externals[-1]
    assert external_id not in ("pending", video_id)
    assert f"externalVideoId  {external_id}" in out
    video_url = VIDEO_URL.search(out)
    assert video_url, out
    assert re.search(r"^status\s+COMPLETED$", out, re.MULTILINE)

    status = run("status", video_id, "--json", "--server", server)
    assert status.returncode == 0, status.stderr
    task = json.loads(status.stdout)
    assert task["videoId"] == video_id
    assert task["externalVideoId"] == external_id
    assert task["status"] == "COMPLETED"
    assert task["progress"] == 100
    assert task["videoUrl"] == video_url.group(1)

    table = run("status", video_id, "--server", server)
    assert table.returncode == 0, table.stderr
    for expected in (video_id, external_id, "COMPLETED", "100%", video_url.group(1)):
        assert expected in table.stdout

    # The server comes from the environment as well as from --server.
    listed = run("list", env={"VIDGATE_SERVER": server})
    assert listed.returncode == 0, listed.stderr
    assert video_id in listed.stdout
    assert "COMPLETED" in listed.stdout

    page = json.loads(run("list", "--json", "--server", server).stdout)
    assert [item["videoId"] for item in page["items"]] == [video_id]
    assert "nextCursor" in page


def test_submit_without_wait_prints_both_ids(vidgate_server: Any) -> None:
    result = run(
        "submit",
        "a quick fox",
        "--seconds",
        "8",
        "--size",
        "1280x720",
        "--server",
        vidgate_server.url,
    )
    assert result.returncode == 0, result.stderr
    video_id = VIDEO_ID.search(result.stdout)
    assert video_id
    assert EXTERNAL_ID.search(result.stdout)

    created = json.loads(
        run("status", video_id.group(1), "--json", "--server", vidgate_server.url).stdout
    )
    assert created["seconds"] == "8"
    assert created["size"] == "1280x720"


def test_submit_takes_the_neutral_fields_and_shows_a_refusal(vidgate_server: Any) -> None:
    result = run(
        "submit",
        "a wide fox",
        "--duration",
        "8",
        "--aspect-ratio",
        "16:9",
        "--json",
        "--server",
        vidgate_server.url,
    )
    assert result.returncode == 0, result.stderr
    task = json.loads(result.stdout)
    assert (task["seconds"], task["size"]) == ("8", "1280x720")
    assert task["params"] == {"durationSeconds": 8.0, "aspectRatio": "16:9"}

    refused = run("submit", "a fox", "--seconds", "5", "--server", vidgate_server.url)
    assert refused.returncode != 0
    assert "UNSUPPORTED_PARAMETER" in refused.stderr or "seconds" in refused.stderr, refused


def test_submit_wait_json_prints_only_the_final_task(vidgate_server: Any) -> None:
    result = run("submit", "a json fox", "--wait", "--json", "--server", vidgate_server.url)
    assert result.returncode == 0, result.stderr
    task = json.loads(result.stdout)
    assert task["status"] == "COMPLETED"
    assert task["videoUrl"].startswith("http")
    assert task["videoId"] in result.stderr  # the live view goes to stderr


def test_server_errors_are_one_line(vidgate_server: Any) -> None:
    server = vidgate_server.url
    missing = run("status", "video_00000000-0000-4000-8000-000000000000", "--server", server)
    assert_one_line_error(missing, "error TASK_NOT_FOUND: ")

    empty = run("submit", "", "--server", server)
    assert_one_line_error(empty, "error ")
    assert re.match(r"error [A-Z_]+: \S", empty.stderr)


def test_unreachable_server_exits_2_with_one_line() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    for args in (("submit", "a fox", "--wait"), ("status", "video_x"), ("list",)):
        result = run(*args, "--server", url)
        assert_one_line_error(result, f"error: cannot reach vidgate at {url}")

    assert_one_line_error(run("list", "--server", "not a url"), "error: --server must be")
