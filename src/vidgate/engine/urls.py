"""Where a finished video is played from."""

from __future__ import annotations

import secrets

ACCESS_PARAM = "access_token"


def stream_url(public_url: str, video_id: str, *, access_token: str | None = None) -> str:
    """vidgate's own streaming route for a task (used when the upstream has no public URL).

    A ``<video>`` element cannot send an ``Authorization`` header, so the URL handed to
    the task's owner carries a random per-video ``access_token``: the route plays the
    video for whoever holds it, as a signed storage URL would.
    """
    url = f"{public_url.rstrip('/')}/api/video/tasks/{video_id}/stream"
    return url if access_token is None else f"{url}?{ACCESS_PARAM}={access_token}"


def new_access_token() -> str:
    return secrets.token_urlsafe(24)
