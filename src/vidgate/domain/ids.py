"""vidgate's own task identifiers (the ``videoId`` of the dual-ID design)."""

from __future__ import annotations

import re
import uuid

PREFIX = "video_"
_VIDEO_ID = re.compile(r"video_[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def new_video_id() -> str:
    """A fresh ``video_`` + lowercase UUIDv4: ``video_e7a620c7-2829-40d8-bbfb-77891f4621cc``."""
    return f"{PREFIX}{uuid.uuid4()}"


def is_video_id(value: str) -> bool:
    return bool(_VIDEO_ID.fullmatch(value))


def shorten(value: str | None) -> str:
    """The console form the seed uses: ``video_e7a620c7-...``; ``-`` for a missing id."""
    if not value:
        return "-"
    head, sep, _ = value.partition("-")
    if sep and len(head) < len(value) - 1:
        return f"{head}-..."
    return value if len(value) <= 18 else f"{value[:18]}..."
