"""Where a finished video is played from."""

from __future__ import annotations


def stream_url(public_url: str, video_id: str) -> str:
    """vidgate's own streaming route for a task (used when the upstream has no public URL)."""
    return f"{public_url.rstrip('/')}/api/video/tasks/{video_id}/stream"


def choose_video_url(
    *, content_mode: str, upstream_url: str | None, public_url: str, video_id: str
) -> str | None:
    """The ``videoUrl`` to hand out for a completed job, or None when there is none usable."""
    if content_mode == "proxy":
        return stream_url(public_url, video_id)
    if upstream_url:
        return upstream_url
    if content_mode == "url":
        return None
    return stream_url(public_url, video_id)
