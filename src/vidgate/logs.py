"""Logging set-up and the one way to name a task in a log line.

Every task line names both IDs. ``ref(video_id, external_id)`` renders in the message as
the seed's short console form, ``video_e7a620c7-... (external: video_4df24bdc-...)``, and
puts the full IDs in the record as ``videoId`` / ``externalVideoId`` fields, which the
JSON format emits.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from vidgate.domain.ids import shorten


@dataclass(frozen=True)
class TaskRef:
    video_id: str
    external_id: str | None

    def __str__(self) -> str:
        return f"{shorten(self.video_id)} (external: {shorten(self.external_id)})"

    @property
    def extra(self) -> dict[str, Any]:
        return {"videoId": self.video_id, "externalVideoId": self.external_id}


def ref(video_id: str, external_id: str | None) -> TaskRef:
    return TaskRef(video_id, external_id)


_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = (
                    value if isinstance(value, str | int | float | bool | None) else str(value)
                )
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class ConsoleFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")


def configure(*, fmt: str = "console", level: str = "INFO") -> None:
    """Configure the root logger once, at the entry point (also uvicorn's loggers)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    # One line per request is noise at INFO for a polling gateway.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    for noisy in ("httpx", "httpcore", "aiosqlite", "sqlalchemy", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
