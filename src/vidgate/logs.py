"""Logging set-up and the one way to name a task in a log line.

Every task line names both IDs. ``ref(video_id, external_id)`` renders in the message as
the seed's short console form, ``video_e7a620c7-... (external: video_4df24bdc-...)``, and
puts the full IDs in the record as ``videoId`` / ``externalVideoId`` fields, which the
JSON format emits.

Credentials never reach the output: ``RedactSecrets``, on the one handler, rewrites every
record (uvicorn's included, whose WebSocket lines carry the query string) so that
``token=...`` query values, ``Bearer ...`` values, vidgate API keys and anything shaped
like a JWT read ``[REDACTED]``.
"""

from __future__ import annotations

import json
import logging
import re
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


REDACTED = "[REDACTED]"
_SECRETS = (
    # ?token=... / &access_token=... in a URL or a query string
    (re.compile(r"(token=)[^&\s\"'#]+", re.IGNORECASE), rf"\g<1>{REDACTED}"),
    # Authorization: Bearer ... (any case)
    (re.compile(r"(bearer\s+)[^\s\"',;]+", re.IGNORECASE), rf"\g<1>{REDACTED}"),
    # a vidgate API key, wherever it appears
    (re.compile(r"\bvg_[0-9a-f]{12}_[A-Za-z0-9_-]+"), REDACTED),
    # a JWT: three base64url segments, the first two starting as JSON objects do
    (re.compile(r"\beyJ[A-Za-z0-9_-]*\.eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*"), REDACTED),
)


def redact(text: str) -> str:
    """``text`` with every credential it carries replaced by ``[REDACTED]``."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecrets(logging.Filter):
    """Rewrites the message, string fields and traceback of each record it passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, redact(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


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
            # RedactSecrets leaves the redacted traceback in exc_text.
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class ConsoleFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")


def configure(*, fmt: str = "console", level: str = "INFO") -> None:
    """Configure the root logger once, at the entry point (also uvicorn's loggers)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    handler.addFilter(RedactSecrets())
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
