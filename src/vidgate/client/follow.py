"""The WebSocket half of the client: follow one task live, and ``--wait`` on it."""

import asyncio
import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

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
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus, InvalidURI, WebSocketException

from vidgate.client.api import _Api
from vidgate.client.errors import ClientError, _error_text
from vidgate.client.render import _field
from vidgate.domain import messages
from vidgate.domain.status import TaskStatus

_FROM_PUSHED = {status.pushed: status for status in TaskStatus}
_STATUS_FOR_TYPE = {
    "taskCompleted": TaskStatus.COMPLETED,
    "taskFailed": TaskStatus.FAILED,
    "taskCancelled": TaskStatus.CANCELLED,
}
_TASK_MESSAGES = frozenset({"subscribed", "taskProgress", *_STATUS_FOR_TYPE})
_WS_RECONNECTS = 6


# ---------------------------------------------------------------------------------- WebSocket


def _ws_url(base: str, video_id: str, after_event_id: int | None = None) -> str:
    parts = urlsplit(base)
    scheme = "wss" if parts.scheme == "https" else "ws"
    params: dict[str, str | int] = {"videoId": video_id}
    if after_event_id is not None:
        params["afterEventId"] = after_event_id
    query = urlencode(params)
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/ws", query, ""))


def _pushed_status(kind: str, payload: Mapping[str, Any]) -> TaskStatus | None:
    word = payload.get("status")
    if isinstance(word, str):
        if word in _FROM_PUSHED:
            return _FROM_PUSHED[word]
        if word.upper() in TaskStatus.__members__:
            return TaskStatus(word.upper())
    return _STATUS_FOR_TYPE.get(kind)


Listener = Callable[[str, dict[str, Any]], None]


async def _follow(
    base: str, video_id: str, on_message: Listener, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """Follow one task until a terminal message arrives; return that message's payload.

    Subscribes at connect (``?videoId=``); after a dropped connection it reconnects with
    backoff and resumes after the last ``eventId`` seen (``afterEventId``), so it misses
    nothing (or gets a ``subscribed`` snapshot when those events are gone).
    """
    failures = 0
    last_event: int | None = None
    while True:
        reason = "closed by the server"
        url = _ws_url(base, video_id, last_event)
        try:
            async with connect(url, open_timeout=10, additional_headers=headers) as socket:
                async for raw in socket:
                    failures = 0
                    frame = messages.read(json.loads(raw))
                    if frame is None:
                        continue
                    kind, payload = frame.type, dict(frame.payload)
                    if kind == "error":
                        raise ClientError(f"error {_error_text(payload)}")
                    if kind not in _TASK_MESSAGES or payload.get("videoId") != video_id:
                        continue
                    if frame.event_id is not None:
                        last_event = max(last_event or 0, frame.event_id)
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
        # Dropped or closed: reconnect with backoff and resume after the last event seen.
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

        final = asyncio.run(_follow(api.base, video_id, on_message, api.auth_headers))

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
