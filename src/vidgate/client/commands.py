"""The typer commands of the client: ``submit``, ``status`` and ``list``."""

from typing import Annotated, Any

import typer
from rich.markup import escape

from vidgate.client.api import _Api
from vidgate.client.errors import EXIT_TASK_ENDED_BADLY, ClientError, _error_text
from vidgate.client.follow import _wait
from vidgate.client.render import _console, _fail, _field, _list_table, _print_json, _task_table
from vidgate.domain.status import TaskStatus

DEFAULT_SERVER = "http://127.0.0.1:8000"


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
