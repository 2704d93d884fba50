"""Client commands of the ``vidgate`` CLI: ``submit``, ``status`` and ``list``.

They speak only the public contract (REST under ``/api/video`` and the ``/ws`` WebSocket), so
they work against any vidgate deployment. With authentication on, they send the API key or
JWT from ``--token`` / ``VIDGATE_TOKEN`` as ``Authorization: Bearer`` (on the WebSocket too,
never in its URL). Exit codes: 0 done (task COMPLETED when waiting),
1 the task ended FAILED or CANCELLED, 2 the command could not do its job (bad usage, the server
refused the request, or it could not be reached). Errors are one line on stderr, no traceback.
"""

import asyncio
import json
import os
import re
import sys
from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import Annotated, Any, NoReturn, Self
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import httpx
import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus, InvalidURI, WebSocketException

from vidgate.domain.status import TaskStatus

DEFAULT_SERVER = "http://127.0.0.1:8000"
EXIT_TASK_ENDED_BADLY = 1
EXIT_ERROR = 2

_FROM_PUSHED = {status.pushed: status for status in TaskStatus}
_STATUS_FOR_TYPE = {
    "taskCompleted": TaskStatus.COMPLETED,
    "taskFailed": TaskStatus.FAILED,
    "taskCancelled": TaskStatus.CANCELLED,
}
_TASK_MESSAGES = frozenset({"subscribed", "taskProgress", *_STATUS_FOR_TYPE})
_STATUS_STYLES = {"COMPLETED": "green", "FAILED": "red", "CANCELLED": "dim", "PROCESSING": "cyan"}
_WS_RECONNECTS = 6
_PIPE_WIDTH = 200


class ClientError(Exception):
    """The command cannot do its job; the message is the one line shown to the user."""


ServerOption = Annotated[
    str, typer.Option("--server", envvar="VIDGATE_SERVER", help="Base URL of the vidgate server.")
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="VIDGATE_TOKEN",
        show_default=False,
        help="API key or JWT, sent as 'Authorization: Bearer'.",
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print the raw `data` of the answer as JSON.")
]


# ---------------------------------------------------------------------------------- output


def _console(*, stderr: bool = False) -> Console:
    # Piped output is for grep and copy-paste: do not fold IDs and URLs at 80 columns.
    stream = sys.stderr if stderr else sys.stdout
    piped = not stream.isatty() and "COLUMNS" not in os.environ
    return Console(stderr=stderr, width=_PIPE_WIDTH if piped else None, highlight=False)


def _fail(message: str) -> NoReturn:
    # One line, whatever the server or the OS said.
    line = re.sub(r"\s+", " ", message).strip()
    _console(stderr=True).print(Text(line, style="red"), soft_wrap=True)
    raise typer.Exit(EXIT_ERROR)


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _field(console: Console, name: str, value: str, style: str = "") -> None:
    console.print(Text.assemble((f"{name:<17}", "bold"), (value, style)), soft_wrap=True)


def _error_text(error: Any) -> str:
    if not isinstance(error, dict):
        return "-"
    return f"{error.get('code') or 'ERROR'}: {error.get('message') or ''}".strip()


def _short(value: Any) -> str:
    """The seed's console form, ``video_e7a620c7-...``; ``pending`` before the upstream answers."""
    if not value:
        return "pending"
    text = str(value)
    head, dash, _ = text.partition("-")
    if dash and len(head) <= 24:
        return f"{head}-..."
    return text if len(text) <= 17 else f"{text[:14]}..."


def _when(value: Any) -> str:
    if not isinstance(value, str) or not value:
        return "-"
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


# ---------------------------------------------------------------------------------- REST


def _base_url(server: str) -> str:
    parts = urlsplit(server.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ClientError(f"error: --server must be an http(s) URL, got {server!r}")
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


class _Api:
    """The REST half of the contract: unwraps ``{"success": ..., "data"/"error": ...}``."""

    def __init__(self, server: str, token: str | None = None) -> None:
        self.base = _base_url(server)
        self.auth_headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(
            base_url=self.base + "/",
            timeout=httpx.Timeout(30.0, connect=5.0),
            headers={
                "Accept": "application/json",
                "User-Agent": "vidgate-cli",
                **self.auth_headers,
            },
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._client.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str | int] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any:
        try:
            response = self._client.request(method, path, params=params, json=body)
        except httpx.TimeoutException as exc:
            raise ClientError(f"error: vidgate at {self.base} did not answer in time") from exc
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            raise ClientError(f"error: cannot reach vidgate at {self.base} ({reason})") from exc
        return self._unwrap(response)

    def _unwrap(self, response: httpx.Response) -> Any:
        try:
            envelope = response.json()
        except ValueError:
            envelope = None
        if isinstance(envelope, dict):
            if envelope.get("success") is True:
                return envelope.get("data")
            error = envelope.get("error")
            if envelope.get("success") is False and isinstance(error, dict):
                raise ClientError(f"error {_error_text(error)}")
        raise ClientError(
            f"error HTTP_{response.status_code}: unexpected answer from {response.request.url}"
            " (is --server a vidgate server?)"
        )

    def task(self, video_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self.call("GET", f"api/video/tasks/{quote(video_id, safe='')}")
        return data


# ---------------------------------------------------------------------------------- WebSocket


def _ws_url(base: str, video_id: str) -> str:
    parts = urlsplit(base)
    scheme = "wss" if parts.scheme == "https" else "ws"
    query = urlencode({"videoId": video_id})
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/ws", query, ""))


def _pushed_status(kind: str, payload: dict[str, Any]) -> TaskStatus | None:
    word = payload.get("status")
    if isinstance(word, str):
        if word in _FROM_PUSHED:
            return _FROM_PUSHED[word]
        if word.upper() in TaskStatus.__members__:
            return TaskStatus(word.upper())
    return _STATUS_FOR_TYPE.get(kind)


Listener = Callable[[str, dict[str, Any]], None]


async def _follow(
    url: str, video_id: str, on_message: Listener, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """Follow one task until a terminal message arrives; return that message's payload.

    Subscribes at connect (``?videoId=``); after a dropped connection it reconnects with
    backoff, and the ``subscribed`` snapshot brings it up to date.
    """
    failures = 0
    while True:
        reason = "closed by the server"
        try:
            async with connect(url, open_timeout=10, additional_headers=headers) as socket:
                async for raw in socket:
                    failures = 0
                    message = json.loads(raw)
                    if not isinstance(message, dict):
                        continue
                    kind = str(message.get("type"))
                    payload = message.get("payload")
                    if not isinstance(payload, dict):
                        continue
                    if kind == "error":
                        raise ClientError(f"error {_error_text(payload)}")
                    if kind not in _TASK_MESSAGES or payload.get("videoId") != video_id:
                        continue
                    on_message(kind, payload)
                    status = _pushed_status(kind, payload)
                    if status is not None and status.terminal:
                        return payload
        except InvalidURI as exc:
            raise ClientError(f"error: bad WebSocket URL {url} ({exc})") from exc
        except InvalidStatus as exc:
            code = exc.response.status_code
            raise ClientError(f"error: WebSocket {url} refused (HTTP {code})") from exc
        except (OSError, TimeoutError, WebSocketException, ValueError) as exc:
            reason = str(exc) or type(exc).__name__
        # Dropped or closed: reconnect with backoff; the subscribed snapshot catches us up.
        failures += 1
        if failures > _WS_RECONNECTS:
            raise ClientError(f"error: lost the WebSocket {url} ({reason})")
        await asyncio.sleep(min(8.0, 0.25 * 2**failures))


def _describe(status: TaskStatus | None, message: Any) -> str:
    word = status.value if status else "QUEUED"
    if not message or str(message).lower() == word.lower() or (status and status.terminal):
        return word
    return f"{word:<10} {escape(str(message))}"


def _wait(api: _Api, task: dict[str, Any], console: Console) -> dict[str, Any]:
    """Show a progress bar fed by the WebSocket; return the final task object."""
    video_id = str(task["videoId"])
    known_external = task.get("externalVideoId")
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task(_describe(None, None), total=100, completed=0)

        def on_message(kind: str, payload: dict[str, Any]) -> None:
            nonlocal known_external
            external = payload.get("externalVideoId")
            if external and external != known_external:
                known_external = external
                _field(progress.console, "externalVideoId", str(external))
            status = _pushed_status(kind, payload)
            progress.update(
                bar,
                completed=int(payload.get("progress") or 0),
                description=_describe(status, payload.get("message")),
            )

        url = _ws_url(api.base, video_id)
        final = asyncio.run(_follow(url, video_id, on_message, api.auth_headers))

    try:
        return api.task(video_id)
    except ClientError:
        # The outcome is known from the push; say it even if the REST read fails.
        status = _pushed_status("", final)
        result = final.get("result")
        return {
            "videoId": video_id,
            "externalVideoId": final.get("externalVideoId"),
            "status": status.value if status else final.get("status"),
            "progress": final.get("progress"),
            "videoUrl": result.get("videoUrl") if isinstance(result, dict) else None,
            "error": final.get("error"),
        }


# ---------------------------------------------------------------------------------- commands


def submit(
    prompt: Annotated[str, typer.Argument(help="What the video should show.")],
    model: Annotated[str, typer.Option(help="Model name.")] = "sora_video2",
    seconds: Annotated[
        str | None, typer.Option(help="Length in seconds, as the seed sends it (e.g. 8).")
    ] = None,
    size: Annotated[
        str | None, typer.Option(help="Frame size, WIDTHxHEIGHT (e.g. 1280x720).")
    ] = None,
    duration: Annotated[
        float | None, typer.Option(help="Length in seconds (durationSeconds).")
    ] = None,
    aspect_ratio: Annotated[str | None, typer.Option(help="Aspect ratio, e.g. 16:9.")] = None,
    resolution: Annotated[str | None, typer.Option(help="Resolution, e.g. 720p.")] = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Follow the task live until it ends.")
    ] = False,
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = None,
    json_output: JsonOption = False,
) -> None:
    """Create a video task and print both IDs; with --wait, follow it to the end."""
    out = _console()
    # With --json, stdout carries only the JSON; the live view goes to stderr.
    live = _console(stderr=True) if json_output else out
    # Only what was asked for: anything else is the model's default (GET /api/models).
    given = {
        "seconds": seconds,
        "size": size,
        "durationSeconds": duration,
        "aspectRatio": aspect_ratio,
        "resolution": resolution,
    }
    body: dict[str, Any] = {"prompt": prompt, "model": model}
    body.update({k: v for k, v in given.items() if v is not None})
    video_id = ""
    try:
        with _Api(server, token) as api:
            task: dict[str, Any] = api.call("POST", "api/video/tasks", body=body)
            video_id = str(task["videoId"])
            if not wait:
                if json_output:
                    _print_json(task)
                    return
                _field(out, "videoId", str(task["videoId"]))
                _field(out, "externalVideoId", task.get("externalVideoId") or "pending")
                out.print(f"[dim]follow it: vidgate status {escape(str(task['videoId']))}[/dim]")
                return
            _field(live, "videoId", str(task["videoId"]))
            _field(live, "externalVideoId", task.get("externalVideoId") or "pending")
            final = _wait(api, task, live)
    except ClientError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        hint = f": vidgate status {video_id}" if video_id else ""
        _console(stderr=True).print(f"interrupted; the task keeps running{hint}", soft_wrap=True)
        raise typer.Exit(130) from None

    outcome = str(final.get("status") or "")
    if json_output:
        _print_json(final)
    else:
        style = "green" if outcome == TaskStatus.COMPLETED else "red"
        _field(out, "status", outcome, style)
        _field(out, "videoId", str(final.get("videoId")))
        _field(out, "externalVideoId", final.get("externalVideoId") or "pending")
        if final.get("videoUrl"):
            _field(out, "videoUrl", str(final["videoUrl"]))
        if final.get("error"):
            _field(out, "error", _error_text(final["error"]), "red")
    if outcome != TaskStatus.COMPLETED:
        raise typer.Exit(EXIT_TASK_ENDED_BADLY)


def status(
    video_id: Annotated[str, typer.Argument(help="vidgate's task id, video_...")],
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show one task: both IDs, status, progress, video URL, error and attempts."""
    try:
        with _Api(server, token) as api:
            task = api.task(video_id)
    except ClientError as exc:
        _fail(str(exc))
    if json_output:
        _print_json(task)
        return
    _console().print(_task_table(task))


def list_tasks(
    limit: Annotated[int, typer.Option(min=1, max=100, help="How many tasks to show.")] = 20,
    status: Annotated[
        TaskStatus | None, typer.Option(case_sensitive=False, help="Only tasks in this status.")
    ] = None,
    cursor: Annotated[
        str | None, typer.Option(help="Continue after a previous page (its nextCursor).")
    ] = None,
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = None,
    json_output: JsonOption = False,
) -> None:
    """List your tasks, newest first."""
    params: dict[str, str | int] = {"limit": limit}
    if status is not None:
        params["status"] = status.value
    if cursor:
        params["cursor"] = cursor
    try:
        with _Api(server, token) as api:
            page: dict[str, Any] = api.call("GET", "api/video/tasks", params=params)
    except ClientError as exc:
        _fail(str(exc))
    if json_output:
        _print_json(page)
        return
    out = _console()
    items = page.get("items") or []
    if not items:
        out.print("no tasks")
    else:
        out.print(_list_table(items, width=out.width))
    if page.get("nextCursor"):
        out.print(f"[dim]more: vidgate list --cursor {escape(str(page['nextCursor']))}[/dim]")


# ---------------------------------------------------------------------------------- tables


def _styled_status(value: Any) -> Text:
    word = str(value) if value else "-"
    return Text(word, style=_STATUS_STYLES.get(word, ""))


def _task_table(task: dict[str, Any]) -> Table:
    table = Table(box=box.ROUNDED, show_header=False, title=f"task {task.get('videoId')}")
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    attempts = task.get("attempts") or []
    rows: list[tuple[str, str | Text]] = [
        ("videoId", str(task.get("videoId"))),
        ("externalVideoId", task.get("externalVideoId") or "pending"),
        ("status", _styled_status(task.get("status"))),
        ("progress", f"{task.get('progress', 0)}%"),
        ("prompt", str(task.get("prompt") or "-")),
        ("model", str(task.get("model") or "-")),
        ("seconds / size", f"{task.get('seconds', '-')} / {task.get('size', '-')}"),
        ("videoUrl", str(task.get("videoUrl") or "-")),
        ("error", _error_text(task.get("error"))),
        ("attempts", "\n".join(_attempt_line(a) for a in attempts) or "-"),
        ("created", _when(task.get("createdAt"))),
        ("updated", _when(task.get("updatedAt"))),
        ("completed", _when(task.get("completedAt"))),
    ]
    for name, value in rows:
        table.add_row(name, value if isinstance(value, Text) else Text(value))
    return table


def _attempt_line(attempt: Any) -> str:
    if not isinstance(attempt, dict):
        return str(attempt)
    line = (
        f"#{attempt.get('attempt')} {attempt.get('provider') or '?'} "
        f"{attempt.get('externalVideoId') or 'pending'} {attempt.get('status') or '?'}"
    )
    if attempt.get("error"):
        line += f" ({_error_text(attempt['error'])})"
    return line


def _list_table(items: list[dict[str, Any]], *, width: int) -> Table:
    # Full videoIds always (they are what `vidgate status` takes); the rest adapts to the width.
    wide, roomy = width >= 150, width >= 110
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0))
    table.add_column("videoId", no_wrap=True, min_width=42)
    table.add_column("externalVideoId", no_wrap=True)
    table.add_column("status", no_wrap=True, min_width=10)
    table.add_column("progress" if roomy else "%", justify="right", no_wrap=True, min_width=4)
    if roomy:
        table.add_column("created", no_wrap=True)
        table.add_column("prompt", no_wrap=True, overflow="ellipsis", max_width=40)
    for task in items:
        external = task.get("externalVideoId")
        cells: list[str | Text] = [
            Text(str(task.get("videoId"))),
            Text(str(external) if wide and external else _short(external)),
            _styled_status(task.get("status")),
            f"{task.get('progress', 0)}%",
        ]
        if roomy:
            cells += [_when(task.get("createdAt")), Text(str(task.get("prompt") or ""))]
        table.add_row(*cells)
    return table
