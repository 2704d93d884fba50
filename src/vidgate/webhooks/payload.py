"""The thin webhook body of a stored event: ``{type, timestamp, data}``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from vidgate.domain.events import TaskEvent

# The pushed payload's fields a webhook carries; the receiver re-reads the task for more.
_FIELDS = ("videoId", "externalVideoId", "status", "progress", "result", "error")
_REQUIRED = ("videoId", "externalVideoId", "status", "progress")


def iso(ms: int) -> str:
    when = datetime.fromtimestamp(ms / 1000, UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def body(event: TaskEvent) -> str:
    """The exact JSON sent for ``event``, the same on every attempt."""
    data: dict[str, Any] = {}
    for name in _FIELDS:
        if name in event.payload or name in _REQUIRED:
            data[name] = event.payload.get(name)
    message = {"type": str(event.type), "timestamp": iso(event.timestamp_ms), "data": data}
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)
