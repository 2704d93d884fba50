"""Rich output of the client: consoles, one-line errors, fields and the task tables."""

import json
import os
import re
import sys
from datetime import datetime
from typing import Any, NoReturn

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from vidgate.client.errors import EXIT_ERROR, _error_text

_STATUS_STYLES = {"COMPLETED": "green", "FAILED": "red", "CANCELLED": "dim", "PROCESSING": "cyan"}
_PIPE_WIDTH = 200


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
